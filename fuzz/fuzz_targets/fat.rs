//! The FAT reader and `kiln extract` on corrupted FAT images: a small
//! valid FAT12 or FAT16 image made by kiln-fat (512-byte clusters, long
//! and short names, nested directories, files of one and many clusters)
//! with bytes of its first 64 KiB (boot sector, FATs, root directory,
//! first clusters) overwritten gives a walk, maps, file bytes and a check
//! report, or errors; never a panic, a hang or an absurd allocation. The
//! extraction runs in a sandbox with canaries, as the `extract` target's:
//! nothing may appear beside the destination, and a failed extraction
//! leaves none.
//!
//! Input: one byte picks the image, then patches of 5 bytes: a
//! little-endian u32 offset (modulo the patched region) and the byte to
//! put there.
#![no_main]

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kiln_fat::{FatOptions, FatReader, FatVariant};
use libfuzzer_sys::fuzz_target;

/// Bytes of each file read back at most.
const READ_LIMIT: u64 = 64 << 10;
/// The region patches land in: the metadata of these small volumes.
const PATCHED: usize = 64 << 10;

/// The pristine images (bytes and the file a run patches), their
/// directory, and the sandbox extractions run in.
struct Fixture {
    images: Vec<(Vec<u8>, PathBuf)>,
    sandbox: PathBuf,
    _dir: tempfile::TempDir,
}

/// Builds the images and the sandbox once.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let src = dir.path().join("src");
        for (rel, len) in [
            ("README.TXT", 10),
            ("lower.txt", 600),
            ("A long name, with spaces.bin", 5000),
            ("EFI/BOOT/BOOTX64.EFI", 20_000),
            ("a/b/c/deep", 1),
            ("empty", 0),
        ] {
            let p = src.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, (0..len).map(|i| i as u8).collect::<Vec<u8>>()).unwrap();
        }
        let mut tree = kiln_tree::read_dir_tree(&src).unwrap();
        tree.finish();
        let mut images = Vec::new();
        for (variant, size) in [(FatVariant::Fat12, 1u64 << 20), (FatVariant::Fat16, 4 << 20)] {
            let path = dir.path().join(format!("{variant}.img"));
            let opts = FatOptions {
                variant: Some(variant),
                size: Some(size),
                cluster_size: Some(512),
                ..FatOptions::default()
            };
            let plan = kiln_fat::plan(&tree, &opts).unwrap();
            let sink = kiln_sink::SparseFile::create(&path, plan.size(), true).unwrap();
            kiln_fat::emit(&plan, &sink).unwrap();
            sink.commit(kiln_sink::Durability::Writeback).unwrap();
            images.push((fs::read(&path).unwrap(), path));
        }
        let sandbox = dir.path().join("sandbox");
        fs::create_dir_all(sandbox.join("canary")).unwrap();
        std::os::unix::fs::symlink("..", sandbox.join("up")).unwrap();
        std::os::unix::fs::symlink("/", sandbox.join("root")).unwrap();
        Fixture {
            images,
            sandbox,
            _dir: dir,
        }
    })
}

/// Everything the reader does with an image; errors are fine.
fn read_all(path: &Path) {
    let Ok(reader) = FatReader::open(path) else {
        return;
    };
    let _ = reader.label();
    let _ = reader.usage();
    let Ok(walk) = reader.walk(&reader.root()) else {
        return;
    };
    for w in &walk {
        if w.entry.is_dir() {
            continue;
        }
        let Ok(map) = reader.file_map(&w.entry) else {
            continue;
        };
        let n = map.size().min(READ_LIMIT) as usize;
        let _ = reader.read_file(&map, 0, &mut vec![0u8; n]);
    }
    let _ = reader.check(&walk, 100);
    let _ = reader.lookup(b"/EFI/BOOT/BOOTX64.EFI");
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    names
}

/// Extracts the image into the sandbox and checks that nothing escaped.
fn extract(path: &Path) {
    let sandbox = &fixture().sandbox;
    let dest = sandbox.join("dest");
    if let Ok(reader) = FatReader::open(path) {
        if kiln_fat_extract(&reader, &dest).is_err() {
            assert!(!dest.exists(), "a failed extraction left {}", dest.display());
        }
    }
    let _ = fs::remove_dir_all(&dest);
    assert_eq!(names(sandbox), ["canary", "root", "up"]);
    assert!(names(&sandbox.join("canary")).is_empty());
}

/// `kiln_extract::extract_fat` of the whole image.
fn kiln_fat_extract(reader: &FatReader, dest: &Path) -> Result<(), kiln_extract::ExtractError> {
    kiln_extract::extract_fat(reader, b"/", dest).map(drop)
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let (bytes, path) = &f.images[usize::from(pick) % f.images.len()];
    let region = PATCHED.min(bytes.len());
    let file = fs::OpenOptions::new().write(true).open(path).unwrap();
    let patches: Vec<usize> = rest
        .chunks_exact(5)
        .map(|c| {
            let at = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize % region;
            file.write_all_at(&[c[4]], at as u64).unwrap();
            at
        })
        .collect();
    read_all(path);
    extract(path);
    // Back to the pristine image for the next run.
    for at in patches {
        file.write_all_at(&bytes[at..=at], at as u64).unwrap();
    }
});
