//! The pristine images the image targets corrupt: a small valid image
//! (ext4 with 4 KiB blocks, or ext2 with 1 KiB blocks) of a tree with every
//! kind of entry, written once to files (in /dev/shm when there is one),
//! and the patches a fuzz input makes of them.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kiln_ext::{BuildOptions, FsType};
use kiln_sink::{Durability, SparseFile};
use kiln_tree::Spec;

/// One pristine image: its bytes and the file that holds them.
pub struct Image {
    /// The pristine bytes.
    pub bytes: Vec<u8>,
    /// The file a run patches in place.
    pub path: PathBuf,
}

/// The images and the directory that holds their files.
pub struct Images {
    _dir: tempfile::TempDir,
    /// ext4 (4 KiB blocks), then ext2 (1 KiB blocks).
    pub images: Vec<Image>,
}

/// Extra entries no host tree gives without root: xattrs (in the inode
/// and in an xattr block), devices.
const SPEC: &str = "\
dir /x 0755 0 0 xattr=user.small=hello
file /x/attrs 0644 1 2 text hi xattr=user.a=1 xattr=user.big=BIGVALUE
char /x/null 0666 0 0 1 3
symlink /x/slow 0777 0 0 TARGET
";

/// The source tree: directory levels, a directory of many entries (an
/// htree on ext4), small, multi-block and sparse files, hard links.
fn source(root: &Path) {
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::create_dir(root.join("many")).unwrap();
    for i in 0..120 {
        fs::write(root.join(format!("many/entry-{i:04}")), b"x").unwrap();
    }
    fs::write(root.join("small"), b"ten bytes!").unwrap();
    let pattern = |len: usize, seed: u8| (0..len).map(|i| (i / 7) as u8 ^ seed).collect::<Vec<_>>();
    fs::write(root.join("mid"), pattern(20 << 10, 1)).unwrap();
    fs::write(root.join("a/b/c/deep"), pattern(5000, 3)).unwrap();
    // Data at 300 KiB and 1 MiB of a 2 MiB file: double indirect blocks
    // with 1 KiB blocks, holes between.
    let f = File::create(root.join("sparse")).unwrap();
    for at in [300 << 10, 1 << 20] {
        f.write_all_at(&pattern(3000, 4), at).unwrap();
    }
    f.set_len(2 << 20).unwrap();
    std::os::unix::fs::symlink("small", root.join("fast")).unwrap();
    fs::hard_link(root.join("mid"), root.join("a/mid-link")).unwrap();
}

/// A temporary directory in memory where there is /dev/shm: runs write
/// their files many times a second.
pub fn memory_tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .unwrap()
}

/// Builds the images once.
pub fn images() -> &'static Images {
    static IMAGES: OnceLock<Images> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let dir = memory_tempdir();
        let src = dir.path().join("src");
        source(&src);
        let mut tree = kiln_tree::read_dir_tree(&src).unwrap();
        let spec = SPEC
            .replace("BIGVALUE", &"v".repeat(600))
            .replace("TARGET", &"t".repeat(200));
        Spec::parse(&spec, "fuzz.spec".as_ref())
            .unwrap()
            .apply(&mut tree)
            .unwrap();
        let mut images = Vec::new();
        for (name, ty, block_size) in [("ext4", FsType::Ext4, 4096), ("ext2", FsType::Ext2, 1024)] {
            let mut opts = BuildOptions::new(ty);
            opts.block_size = block_size;
            let plan = kiln_ext::plan(&tree, &opts).unwrap();
            let path = dir.path().join(format!("{name}.img"));
            let sink = SparseFile::create(&path, plan.image_size, true).unwrap();
            kiln_ext::emit(&plan, &sink).unwrap();
            sink.commit(Durability::Writeback).unwrap();
            let bytes = fs::read(&path).unwrap();
            images.push(Image { bytes, path });
        }
        Images { _dir: dir, images }
    })
}

/// An input as (image, patches): one byte picks the image, then patches of
/// 5 bytes each: a little-endian u32 offset (modulo the image length) and
/// the byte to put there.
pub fn decode_input(data: &[u8]) -> Option<(&'static Image, Vec<(usize, u8)>)> {
    let (&pick, rest) = data.split_first()?;
    let all = &images().images;
    let image = &all[usize::from(pick) % all.len()];
    let len = image.bytes.len();
    let patches = rest
        .chunks_exact(5)
        .map(|c| {
            let at = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize % len;
            (at, c[4])
        })
        .collect();
    Some((image, patches))
}

/// Applies `patches` to the image's file, runs `f` on it, and restores it.
pub fn with_patched(image: &Image, patches: &[(usize, u8)], f: impl FnOnce(&Path)) {
    let file = fs::OpenOptions::new()
        .write(true)
        .open(&image.path)
        .unwrap();
    for &(at, byte) in patches {
        file.write_all_at(&[byte], at as u64).unwrap();
    }
    f(&image.path);
    // Back to the pristine image for the next run.
    for &(at, _) in patches {
        file.write_all_at(&image.bytes[at..=at], at as u64).unwrap();
    }
}
