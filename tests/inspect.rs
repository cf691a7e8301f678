//! Issue 5, first part: `kiln info`, `kiln ls` and `kiln cat` on plain
//! images, judged against dumpe2fs and the source tree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::helpers::*;

/// A small source tree: nested directories, a symlink, files of a few sizes
/// (no holes: ext4-view misreads some in block-mapped files).
fn source(case: &Case) -> PathBuf {
    let src = case.mkdir("src");
    std::fs::create_dir_all(src.join("etc/deep/er")).expect("mkdir");
    write_file(&src.join("hello.txt"), b"hello, image\n");
    write_file(&src.join("etc/empty"), b"");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    write_file(&src.join("etc/deep/big.bin"), &big);
    write_file(&src.join("etc/deep/er/name with spaces"), b"x");
    std::os::unix::fs::symlink("hello.txt", src.join("link")).expect("symlink");
    src
}

/// Every path below `dir`, relative to it, as `ls -R` prints them.
fn source_paths(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    for name in list_dir(dir) {
        let rel = format!("{prefix}{name}");
        let path = dir.join(&name);
        out.push(rel.clone());
        if path.symlink_metadata().expect("lstat").is_dir() {
            source_paths(&path, &format!("{rel}/"), out);
        }
    }
}

/// Runs kiln with these arguments and returns its stdout, asserting success.
fn kiln_ok(args: &[&std::ffi::OsStr]) -> Vec<u8> {
    let out = kiln(args);
    assert_success(&out, &format!("kiln {args:?}"));
    out.stdout
}

/// `kiln info` as `Name` -> `value`.
fn info_text(image: &Path) -> BTreeMap<String, String> {
    let out = kiln_ok(&["info".as_ref(), image.as_os_str()]);
    String::from_utf8(out)
        .expect("kiln info prints UTF-8")
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Builds the source tree with `-L testlabel` and checks info, ls and cat.
fn check(case: &Case) {
    if !require_tool("dumpe2fs") {
        return;
    }
    let src = source(case);
    let image = case.path("image.img");
    case.build(&[&src], &image, &["-L", "testlabel"]);
    info_matches_dumpe2fs(&image, case.fs_type);
    ls_lists_the_source(&image, &src);
    cat_gives_the_source_bytes(&image, &src);
}

fn info_matches_dumpe2fs(image: &Path, fs_type: &str) {
    let h = dumpe2fs_header(image);
    let info = info_text(image);
    let pairs = [
        ("Block count", "Block count"),
        ("Free blocks", "Free blocks"),
        ("Inode count", "Inode count"),
        ("Free inodes", "Free inodes"),
        ("Block size", "Block size"),
        ("Inode size", "Inode size"),
        ("UUID", "Filesystem UUID"),
        ("Label", "Filesystem volume name"),
        ("Features", "Filesystem features"),
        ("Reserved blocks", "Reserved block count"),
        ("Blocks per group", "Blocks per group"),
        ("Inodes per group", "Inodes per group"),
        ("Hash seed", "Directory Hash Seed"),
        ("Default hash", "Default directory hash"),
    ];
    for (ours, theirs) in pairs {
        assert_eq!(
            info.get(ours),
            h.get(theirs),
            "kiln info {ours:?} vs dumpe2fs {theirs:?}\n{info:#?}\n{h:#?}"
        );
    }
    assert_eq!(info["Filesystem type"], fs_type);
    let json_out = kiln_ok(&["info".as_ref(), "--json".as_ref(), image.as_os_str()]);
    let json: serde_json::Value = serde_json::from_slice(&json_out).expect("info --json parses");
    let number = |key: &str| {
        json[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key}: {json}"))
    };
    for (key, name) in [
        ("blocks_count", "Block count"),
        ("free_blocks", "Free blocks"),
        ("inodes_count", "Inode count"),
        ("free_inodes", "Free inodes"),
        ("block_size", "Block size"),
        ("inode_size", "Inode size"),
    ] {
        assert_eq!(number(key).to_string(), h[name], "--json {key}");
    }
    assert_eq!(json["uuid"], h["Filesystem UUID"].as_str());
    assert_eq!(json["label"], "testlabel");
    assert_eq!(json["fs_type"], fs_type);
    let journal = json["journal_size"].as_u64();
    assert_eq!(
        journal.is_some(),
        fs_type != "ext2",
        "journal size {journal:?}"
    );
}

fn ls_lists_the_source(image: &Path, src: &Path) {
    let mut want = vec!["lost+found".to_string()];
    source_paths(src, "", &mut want);
    want.sort();
    let out = kiln_ok(&["ls".as_ref(), "-R".as_ref(), image.as_os_str()]);
    let mut got: Vec<String> = String::from_utf8(out)
        .expect("UTF-8 names")
        .lines()
        .map(str::to_string)
        .collect();
    got.sort();
    eqnice!(want.join("\n"), got.join("\n"), "kiln ls -R vs the source");
    let long = kiln_ok(&[
        "ls".as_ref(),
        "-l".as_ref(),
        image.as_os_str(),
        "/".as_ref(),
    ]);
    let long = String::from_utf8(long).expect("UTF-8");
    assert!(long.contains(" link -> hello.txt\n"), "{long}");
    assert!(
        long.lines()
            .any(|l| l.starts_with("drwx") && l.ends_with(" etc")),
        "{long}"
    );
}

fn cat_gives_the_source_bytes(image: &Path, src: &Path) {
    for rel in ["hello.txt", "etc/empty", "etc/deep/big.bin", "link"] {
        let inside = format!("/{rel}");
        let got = kiln_ok(&["cat".as_ref(), image.as_os_str(), inside.as_ref()]);
        assert!(
            got == read_file(&src.join(rel)),
            "kiln cat {inside} differs"
        );
    }
}

kiln_test!(info_ls_cat, |case| { check(&case) });

#[test]
fn info_ls_cat_ext4_1k() {
    check(&Case::new("ext4", 1024));
}

#[test]
fn info_ls_cat_ext4_4k() {
    check(&Case::new("ext4", 4096));
}

/// Sparse files whose holes fall everywhere a block map or extent tree can
/// have one: a file of holes only (the 100K file, which ext4-view
/// read as 49152 bytes from ext2/3 images), holes at the start, middle and
/// end, holes where the indirect and double-indirect blocks begin (block 12
/// and 12 + bs/4), and data past them.
fn sparse_source(case: &Case, block_size: u64) -> PathBuf {
    use std::io::{Seek, SeekFrom, Write};
    let src = case.mkdir(&format!("sparse-{block_size}"));
    let pointers = block_size / 4;
    let double = (12 + pointers) * block_size;
    let files: [(&str, u64, &[u64]); 7] = [
        ("holes-only", 100 * 1024, &[]),
        ("hole-first", 5 * block_size + 7, &[4 * block_size]),
        ("hole-middle", 40 * block_size, &[0, 39 * block_size]),
        ("hole-last", 30 * block_size, &[0]),
        ("indirect", 20 * block_size, &[12 * block_size]),
        ("double", double + 3 * block_size, &[double + block_size]),
        (
            "scattered",
            double + pointers * block_size,
            &[11 * block_size, 13 * block_size, double],
        ),
    ];
    for (name, size, data_at) in files {
        let mut f = std::fs::File::create(src.join(name)).expect("create");
        for (i, &at) in data_at.iter().enumerate() {
            f.seek(SeekFrom::Start(at)).expect("seek");
            let fill: Vec<u8> = (0..block_size + 100)
                .map(|b| (b as usize * 7 + i) as u8 | 1)
                .collect();
            f.write_all(&fill[..fill.len().min((size - at) as usize)])
                .expect("write");
        }
        f.set_len(size).expect("truncate");
    }
    src
}

/// Issue 17 point 1: `kiln cat` gives every file of sparse images of every
/// type and block size byte for byte (it read block maps with holes
/// through ext4-view: part of the file, then "invalid read of length 4096
/// from block 0").
#[test]
fn cat_reads_sparse_files_of_every_type_and_block_size() {
    for fs_type in ["ext2", "ext3", "ext4"] {
        for block_size in [1024u32, 2048, 4096] {
            let case = Case::new(fs_type, block_size);
            let src = sparse_source(&case, u64::from(block_size));
            let image = case.path("sparse.img");
            case.build(&[&src], &image, &[]);
            for name in list_dir(&src) {
                let inside = format!("/{name}");
                let out = kiln(["cat".as_ref(), image.as_os_str(), inside.as_ref()]);
                assert_success(&out, &format!("{case}: kiln cat {inside}"));
                let want = read_file(&src.join(&name));
                assert!(
                    out.stdout == want,
                    "{case}: kiln cat {inside}: {} bytes, the source has {}",
                    out.stdout.len(),
                    want.len()
                );
            }
        }
    }
}

/// A zeroed superblock: every command fails, names the image, and does not panic.
#[test]
fn corrupt_image_is_an_error() {
    let case = Case::new("ext4", 4096);
    let src = source(&case);
    let image = case.path("image.img");
    case.build(&[&src], &image, &[]);
    let mut bytes = read_file(&image);
    bytes[1024..2048].fill(0);
    write_file(&image, &bytes);
    let image = image.as_os_str();
    let runs: [&[&std::ffi::OsStr]; 4] = [
        &["info".as_ref(), image],
        &["info".as_ref(), "--json".as_ref(), image],
        &["ls".as_ref(), "-R".as_ref(), image],
        &["cat".as_ref(), image, "/hello.txt".as_ref()],
    ];
    for args in runs {
        let out = kiln(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", describe(&out));
        assert!(stderr.contains("image.img"), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// Issue 17 point 9: `ls -l` shows a device's numbers as `major, minor`
/// where a file's size goes, as ls does (it showed size 0).
#[test]
fn ls_long_shows_device_numbers() {
    let case = Case::new("ext4", 4096);
    let (out, dir) = case.build_spec(
        "devices.spec",
        "dir /dev 0755 0 0\nchar /dev/console 0600 0 0 5 1\nblock /dev/sda 0660 0 6 8 0\n",
    );
    assert_success(&out, "kiln build --spec");
    let image = dir.join("image.img");
    let long = kiln_ok(&[
        "ls".as_ref(),
        "-l".as_ref(),
        image.as_os_str(),
        "/dev".as_ref(),
    ]);
    let long = String::from_utf8(long).expect("UTF-8");
    let line = |name: &str| {
        long.lines()
            .find(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{long}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    let console = line(" console");
    assert_eq!(console[0], "crw-------", "{long}");
    assert!(console.windows(2).any(|w| w == ["5,", "1"]), "{long}");
    let sda = line(" sda");
    assert_eq!(sda[0], "brw-rw----", "{long}");
    assert!(sda.windows(2).any(|w| w == ["8,", "0"]), "{long}");
}
