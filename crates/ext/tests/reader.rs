//! The image reader against the writer: every file's bytes, holes, directory
//! entries and inode numbers read back from ext2, ext3 and ext4 images of a
//! tree with every kind of mapping (direct, indirect and double indirect
//! blocks with whole-index holes, extent trees, inline data, fast and slow
//! symlinks, hash-indexed directories).

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use kiln_ext::{BuildOptions, FileMap, FsType, ImageReader};
use kiln_sink::SparseFile;

/// A file's bytes: a pattern that differs from block to block.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i / 7) as u8 ^ seed).collect()
}

/// Writes the source tree; returns (path, content, data byte ranges) of
/// each regular file.
fn source(root: &Path) -> Vec<(&'static str, Vec<u8>)> {
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::create_dir(root.join("many")).unwrap();
    for i in 0..400 {
        fs::write(root.join(format!("many/entry-{i:04}")), b"x").unwrap();
    }
    let files = [
        ("empty", Vec::new()),
        ("small", b"ten bytes!".to_vec()),
        ("mid", pattern(100, 1)),
        ("big", pattern(300 * 1024, 2)),
        ("a/b/c/deep", pattern(5000, 3)),
    ];
    for (name, data) in &files {
        fs::write(root.join(name), data).unwrap();
    }
    // Data at 5 MiB and 9 MiB in a 12 MiB file: with 1 KiB blocks whole
    // indirect blocks under the double indirect one are holes.
    let mut sparse = vec![0u8; 12 << 20];
    let mut f = fs::File::create(root.join("sparse")).unwrap();
    for at in [5 << 20, 9 << 20] {
        let chunk = pattern(3000, 4);
        sparse[at..at + chunk.len()].copy_from_slice(&chunk);
        f.seek(SeekFrom::Start(at as u64)).unwrap();
        f.write_all(&chunk).unwrap();
    }
    f.set_len(12 << 20).unwrap();
    std::os::unix::fs::symlink("mid", root.join("fast")).unwrap();
    std::os::unix::fs::symlink("t".repeat(200), root.join("slow")).unwrap();
    fs::hard_link(root.join("big"), root.join("a/big-link")).unwrap();
    let mut all: Vec<_> = files.into_iter().collect();
    all.push(("sparse", sparse));
    all.push(("a/big-link", pattern(300 * 1024, 2)));
    all
}

/// Builds `tree_dir` into `img` with `opts`.
fn build(tree_dir: &Path, img: &Path, opts: &BuildOptions) {
    let tree = kiln_tree::read_dir_tree(tree_dir).unwrap();
    let plan = kiln_ext::plan(&tree, opts).unwrap();
    let sink = SparseFile::create(img, plan.image_size, true).unwrap();
    kiln_ext::emit(&plan, &sink).unwrap();
    sink.commit(kiln_sink::Durability::Writeback).unwrap();
}

/// The option sets: every type, both block sizes, inline data.
fn option_sets() -> Vec<(&'static str, BuildOptions)> {
    let mut out = Vec::new();
    for (name, ty, bs) in [
        ("ext2-1k", FsType::Ext2, 1024),
        ("ext3-4k", FsType::Ext3, 4096),
        ("ext4-1k", FsType::Ext4, 1024),
        ("ext4-4k", FsType::Ext4, 4096),
    ] {
        let mut o = BuildOptions::new(ty);
        o.block_size = bs;
        out.push((name, o));
    }
    let mut inline = BuildOptions::new(FsType::Ext4);
    inline.features.edit("inline_data").unwrap();
    out.push(("ext4-inline", inline));
    out
}

#[test]
fn reads_back_what_the_writer_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let files = source(&src);
    for (name, opts) in option_sets() {
        let img = dir.path().join(format!("{name}.img"));
        build(&src, &img, &opts);
        let r = ImageReader::open(&img).unwrap();
        let walk = r.walk(2).unwrap();
        let ino_of = |path: &str| {
            walk.iter()
                .find(|e| e.path == path.as_bytes())
                .unwrap_or_else(|| panic!("{name}: {path} not walked"))
                .ino
        };
        // The root, 10 names in it (lost+found too), 400 in many, a/big-link,
        // a/b, a/b/c and a/b/c/deep.
        assert_eq!(walk.len(), 1 + 10 + 400 + 4, "{name}");
        assert_eq!(ino_of("big"), ino_of("a/big-link"), "{name}: hard link");
        assert_eq!(r.lookup(b"/a/b/c/deep").unwrap(), ino_of("a/b/c/deep"));
        for (path, want) in &files {
            let ino = ino_of(path);
            let inode = r.inode(ino).unwrap();
            assert_eq!(inode.size, want.len() as u64, "{name}: {path}");
            let map = r.file_map(ino, &inode).unwrap();
            let mut got = vec![0xAAu8; want.len()];
            r.read_file(&map, 0, &mut got).unwrap();
            assert!(got == *want, "{name}: {path} content");
            if *path == "sparse" {
                let ranges = map.data_ranges(inode.size, opts.block_size);
                // The host reports data in 4 KiB pages, the writer keeps
                // whole blocks of it.
                let page = 4096;
                let expect: Vec<_> = [5u64 << 20, 9 << 20]
                    .iter()
                    .map(|&at| at..at + page)
                    .collect();
                assert_eq!(ranges, expect, "{name}: holes");
            }
        }
        for (path, target) in [("fast", "mid".to_string()), ("slow", "t".repeat(200))] {
            let ino = ino_of(path);
            let inode = r.inode(ino).unwrap();
            let map = r.file_map(ino, &inode).unwrap();
            let mut got = vec![0u8; inode.size as usize];
            r.read_file(&map, 0, &mut got).unwrap();
            assert_eq!(got, target.as_bytes(), "{name}: {path}");
        }
        let inline = r.file_map(ino_of("mid"), &r.inode(ino_of("mid")).unwrap());
        assert_eq!(
            matches!(inline.unwrap(), FileMap::Inline(_)),
            name == "ext4-inline",
            "{name}: inline data"
        );
    }
}

#[test]
fn refuses_paths_that_do_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    source(&src);
    let img = dir.path().join("x.img");
    build(&src, &img, &BuildOptions::new(FsType::Ext4));
    let r = ImageReader::open(&img).unwrap();
    let err = r.lookup(b"/a/nope").unwrap_err();
    assert!(err.to_string().contains("/a/nope"), "{err}");
    // A file is not a directory to read.
    let small = r.lookup(b"small").unwrap();
    assert!(r.read_dir(small).is_err());
}
