//! The image reader on corrupted images: a small valid image (ext4 with
//! 4 KiB blocks, or ext2 with 1 KiB blocks) with bytes overwritten gives
//! entries, maps, file bytes, xattrs and a check report, or errors; never a
//! panic, a hang or an absurd allocation. `ext4-view` reads the same bytes.
//!
//! Input: one byte picks the image, then patches of 5 bytes each: a
//! little-endian u32 offset (modulo the image length) and the byte to put
//! there. The pristine images are written once to files (in /dev/shm when
//! there is one); each run patches its file in place and restores it.
#![no_main]

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ext4_view::{Ext4, Ext4Read};
use kiln_ext::{BuildOptions, FileMap, FsType, ImageReader};
use kiln_sink::SparseFile;
use kiln_tree::Spec;
use libfuzzer_sys::fuzz_target;

/// Bytes of each file read back at most.
const READ_LIMIT: u64 = 64 << 10;

/// One pristine image: its bytes and the file that holds them.
struct Image {
    bytes: Vec<u8>,
    path: PathBuf,
}

/// The images and the directory that holds their files.
struct Images {
    _dir: tempfile::TempDir,
    images: Vec<Image>,
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

/// Builds the images once.
fn images() -> &'static Images {
    static IMAGES: OnceLock<Images> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .unwrap();
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
            sink.commit().unwrap();
            let bytes = fs::read(&path).unwrap();
            images.push(Image { bytes, path });
        }
        Images { _dir: dir, images }
    })
}

/// `ext4-view`'s view of an image with patches applied.
struct Patched {
    base: &'static [u8],
    patches: Vec<(usize, u8)>,
}

impl Ext4Read for Patched {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        let start = usize::try_from(start_byte)?;
        let end = start
            .checked_add(dst.len())
            .filter(|&end| end <= self.base.len())
            .ok_or("read past the end of the image")?;
        dst.copy_from_slice(&self.base[start..end]);
        for &(at, byte) in &self.patches {
            if (start..end).contains(&at) {
                dst[at - start] = byte;
            }
        }
        Ok(())
    }
}

/// Everything the reader does with an image; errors are fine.
fn read_all(path: &Path) {
    let Ok(reader) = ImageReader::open(path) else {
        return;
    };
    let Ok(walk) = reader.walk(2) else {
        return;
    };
    let block_size = reader.superblock().block_size;
    for entry in &walk {
        let Ok(inode) = reader.inode(entry.ino) else {
            continue;
        };
        let _ = reader.xattrs(entry.ino);
        if inode.kind() == kiln_ext::mode::S_IFDIR {
            let _ = reader.read_dir(entry.ino);
        }
        let Ok(map) = reader.file_map(entry.ino, &inode) else {
            continue;
        };
        let _ = map.data_ranges(inode.size, block_size);
        let mut buf = vec![0u8; inode.size.min(READ_LIMIT) as usize];
        let _ = reader.read_file(&map, 0, &mut buf);
        if let FileMap::Blocks { runs, .. } = &map {
            // The last bytes of a large file too.
            if inode.size > READ_LIMIT && !runs.is_empty() {
                let _ = reader.read_file(&map, inode.size - READ_LIMIT, &mut buf);
            }
        }
    }
    let _ = kiln_ext::check_image(&reader, &walk, 10);
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let all = &images().images;
    let image = &all[usize::from(pick) % all.len()];
    let len = image.bytes.len();
    let patches: Vec<(usize, u8)> = rest
        .chunks_exact(5)
        .map(|c| {
            let at = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize % len;
            (at, c[4])
        })
        .collect();
    let file = fs::OpenOptions::new()
        .write(true)
        .open(&image.path)
        .unwrap();
    for &(at, byte) in &patches {
        file.write_all_at(&[byte], at as u64).unwrap();
    }
    read_all(&image.path);
    if let Ok(fs) = Ext4::load(Box::new(Patched {
        base: &image.bytes,
        patches: patches.clone(),
    })) {
        if let Ok(entries) = fs.read_dir("/") {
            for entry in entries.flatten() {
                let _ = entry.file_type();
            }
        }
    }
    // Back to the pristine image for the next run.
    for &(at, _) in &patches {
        file.write_all_at(&image.bytes[at..=at], at as u64).unwrap();
    }
});
