//! kiln's FAT reader against images made by kiln's writer and by
//! mkfs.fat + mcopy: every name, byte and time read back, and the check
//! clean; then hostile edits of valid images, each refused with a
//! `Corrupt` error or reported by the check, never a panic.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use common::*;
use kiln_fat::read::CheckReport;
use kiln_fat::{FatOptions, FatReader, FatVariant, ReadError};

/// A source tree: long and short names, nested directories, a file of
/// many clusters, an empty file and an empty directory.
fn source(dir: &Path) {
    for name in [
        "README.TXT",
        "lower.txt",
        "Mixed Case Name.md",
        "ünïcødé ✓.txt",
    ] {
        put(&dir.join(name), name.as_bytes());
    }
    put(&dir.join("EFI/BOOT/BOOTX64.EFI"), &bytes(300_000, 7));
    put(&dir.join("EFI/BOOT/empty"), b"");
    put(&dir.join("a/b/c/d/deep file.txt"), b"deep");
    fs::create_dir_all(dir.join("empty dir")).unwrap();
    settle(dir);
}

/// Everything the reader finds: relative path → bytes (`None` for a
/// directory), as `contents` gives a host tree.
fn read_all(r: &FatReader) -> BTreeMap<String, Option<Vec<u8>>> {
    let walk = r.walk(&r.root()).unwrap();
    let mut out = BTreeMap::new();
    for w in walk.iter().skip(1) {
        let key = String::from_utf8(w.path.clone()).unwrap();
        let value = (!w.entry.is_dir()).then(|| {
            let map = r.file_map(&w.entry).unwrap();
            let mut buf = vec![0u8; map.size() as usize];
            r.read_file(&map, 0, &mut buf).unwrap();
            buf
        });
        out.insert(key, value);
    }
    out
}

/// The check of the whole volume.
fn check(r: &FatReader) -> CheckReport {
    r.check(&r.walk(&r.root()).unwrap(), 100).unwrap()
}

#[test]
fn reads_back_kiln_images_of_every_variant() {
    let src = tempfile::tempdir().unwrap();
    source(src.path());
    for (variant, size) in [
        (FatVariant::Fat12, 4u64 << 20),
        (FatVariant::Fat16, 64 << 20),
        (FatVariant::Fat32, 600 << 20),
    ] {
        let out = tempfile::tempdir().unwrap();
        let image = out.path().join("fat.img");
        let opts = FatOptions {
            variant: Some(variant),
            size: Some(size),
            label: Some("KILN READ".into()),
            volume_id: Some(0x1234_ABCD),
            ..FatOptions::default()
        };
        let g = build(src.path(), &opts, &image);
        let r = FatReader::open(&image).unwrap();
        let v = r.volume();
        assert_eq!((v.variant, v.clusters), (variant, g.clusters));
        assert_eq!(v.volume_id, Some(0x1234_ABCD));
        assert_eq!(r.label().unwrap().as_deref(), Some(&b"KILN READ"[..]));
        assert_eq!(read_all(&r), contents(src.path()), "{variant}");
        let report = check(&r);
        assert_eq!(report, CheckReport::default(), "{variant}");
        // Times: the source's mtime as the writer stores it.
        let file = r.lookup(b"/efi/boot/bootx64.efi").unwrap();
        let host = fs::metadata(src.path().join("EFI/BOOT/BOOTX64.EFI")).unwrap();
        let secs = host
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert_eq!({ file.mtime.secs }, secs / 2 * 2);
        let usage = r.usage();
        assert_eq!(u64::from(usage.free + usage.used), u64::from(v.clusters));
    }
}

#[test]
fn reads_images_of_mkfs_fat_and_mcopy() {
    if !require_tools(&["mkfs.fat", "mcopy"]) {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    source(src.path());
    for (flag, kib) in [("12", "4096"), ("16", "32768"), ("32", "65536")] {
        let out = tempfile::tempdir().unwrap();
        let image = out.path().join("fat.img");
        let img = image.to_str().unwrap();
        let made = run("mkfs.fat", &["-C", "-F", flag, "-n", "MTOOLS", img, kib]);
        assert!(made.status.success(), "{}", describe(&made));
        let mut args = vec!["-i", img, "-s", "-m"];
        let names: Vec<String> = fs::read_dir(src.path())
            .unwrap()
            .map(|e| e.unwrap().path().to_str().unwrap().to_string())
            .collect();
        args.extend(names.iter().map(String::as_str));
        args.push("::/");
        let copied = run("mcopy", &args);
        assert!(copied.status.success(), "{}", describe(&copied));
        let r = FatReader::open(&image).unwrap();
        assert_eq!(r.volume().variant.to_string(), format!("FAT{flag}"));
        assert_eq!(r.label().unwrap().as_deref(), Some(&b"MTOOLS"[..]));
        assert_eq!(read_all(&r), contents(src.path()), "FAT{flag}");
        assert_eq!(check(&r).problems, Vec::<String>::new(), "FAT{flag}");
    }
}

/// A FAT16 image of the source tree, and its reader.
fn fat16(dir: &Path) -> (std::path::PathBuf, FatReader) {
    let src = tempfile::tempdir().unwrap();
    source(src.path());
    let image = dir.join("fat.img");
    let opts = FatOptions {
        variant: Some(FatVariant::Fat16),
        size: Some(16 << 20),
        ..FatOptions::default()
    };
    build(src.path(), &opts, &image);
    let r = FatReader::open(&image).unwrap();
    (image, r)
}

/// The byte offset of `name`'s short entry in the fixed root directory.
fn root_entry(image: &Path, r: &FatReader, short: &[u8; 11]) -> u64 {
    let v = r.volume();
    let root = u64::from(v.reserved_sectors + v.fat_count * v.fat_sectors) * 512;
    let bytes = fs::read(image).unwrap();
    let dir = &bytes[root as usize..root as usize + v.root_entries as usize * 32];
    let i = dir.chunks(32).position(|e| &e[..11] == short).unwrap();
    root + i as u64 * 32
}

/// Reading every file of the image: the first error.
fn read_error(image: &Path) -> String {
    let r = match FatReader::open(image) {
        Ok(r) => r,
        Err(e) => return e.to_string(),
    };
    let walk = match r.walk(&r.root()) {
        Ok(w) => w,
        Err(e) => return e.to_string(),
    };
    for w in &walk {
        if !w.entry.is_dir() {
            if let Err(e) = r.file_map(&w.entry) {
                assert!(matches!(e, ReadError::Corrupt { .. }), "{e}");
                return e.to_string();
            }
        }
    }
    panic!("no error reading {}", image.display());
}

#[test]
fn hostile_chains_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (image, r) = fat16(dir.path());
    let big = r.lookup(b"/EFI/BOOT/BOOTX64.EFI").unwrap();
    let first = big.cluster;
    // A loop: the second cluster leads back to the first.
    set_fat(&image, &r, first + 1, first as u16);
    assert!(read_error(&image).contains("loops"));
    // A cluster beyond the end of the volume.
    set_fat(&image, &r, first + 1, 0xFFF0);
    assert!(read_error(&image).contains("not a data cluster"));
    // A free cluster inside the chain.
    set_fat(&image, &r, first + 1, 0);
    assert!(read_error(&image).contains("free"));
    // The chain ends early: the size needs more clusters.
    set_fat(&image, &r, first + 1, 0xFFFF);
    assert!(read_error(&image).contains("need"));
    // ... and the check reports the short chain and the lost clusters.
    let r2 = FatReader::open(&image).unwrap();
    let report = check(&r2);
    assert!(
        report.problems.iter().any(|p| p.contains("lost")),
        "{report:?}"
    );
}

#[test]
fn huge_size_with_a_short_chain_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (image, r) = fat16(dir.path());
    let at = root_entry(&image, &r, b"README  TXT");
    patch(&image, at + 28, &u32::MAX.to_le_bytes());
    assert!(read_error(&image).contains("need"));
}

#[test]
fn directory_loops_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (image, r) = fat16(dir.path());
    // /a/b/c/d points back at /a.
    let a = r.lookup(b"/a").unwrap();
    let c = r.lookup(b"/a/b/c").unwrap();
    let d = r.lookup(b"/a/b/c/d").unwrap();
    assert_ne!(a.cluster, d.cluster);
    let c_at = v_cluster_offset(&r, c.cluster);
    let bytes = fs::read(&image).unwrap();
    let slot = bytes[c_at as usize..c_at as usize + 512]
        .chunks(32)
        .position(|e| &e[..11] == b"D          ")
        .unwrap();
    patch(
        &image,
        c_at + slot as u64 * 32 + 26,
        &(a.cluster as u16).to_le_bytes(),
    );
    let e = FatReader::open(&image)
        .unwrap()
        .walk(&r.root())
        .unwrap_err();
    assert!(e.to_string().contains("reached twice"), "{e}");
    // A directory chain that loops on itself.
    set_fat(&image, &r, a.cluster, a.cluster as u16);
    let e = FatReader::open(&image)
        .unwrap()
        .walk(&r.root())
        .unwrap_err();
    assert!(e.to_string().contains("loop"), "{e}");
}

/// The byte offset of cluster `n` (the writer's layout, recomputed).
fn v_cluster_offset(r: &FatReader, n: u32) -> u64 {
    let v = r.volume();
    let root = u64::from(v.reserved_sectors + v.fat_count * v.fat_sectors) * 512;
    root + u64::from(v.root_entries) * 32 + u64::from(n - 2) * u64::from(v.cluster_bytes())
}

#[test]
fn bad_boot_sectors_are_refused() {
    for (at, bytes, want) in [
        (11u64, &[0u8, 0][..], "BPB_BytsPerSec"),
        (13, &[3], "BPB_SecPerClus"),
        (22, &[0, 0], "FAT32"),
        (17, &[1, 0], "whole sectors"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (image, _) = fat16(dir.path());
        patch(&image, at, bytes);
        let e = FatReader::open(&image).unwrap_err();
        assert!(matches!(e, ReadError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains(want), "{want}: {e}");
    }
    // A volume larger than its file.
    let dir = tempfile::tempdir().unwrap();
    let (image, _) = fat16(dir.path());
    fs::OpenOptions::new()
        .write(true)
        .open(&image)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let e = FatReader::open(&image).unwrap_err();
    assert!(matches!(e, ReadError::LargerThanContainer { .. }), "{e}");
}

#[test]
fn a_bad_long_name_checksum_falls_back_to_the_short_name() {
    let dir = tempfile::tempdir().unwrap();
    let (image, r) = fat16(dir.path());
    let at = root_entry(&image, &r, b"MIXEDC~1MD ");
    // The slot before the short entry: its checksum byte.
    let bytes = fs::read(&image).unwrap();
    let sum = bytes[(at - 32 + 13) as usize];
    patch(&image, at - 32 + 13, &[sum ^ 0xFF]);
    let r = FatReader::open(&image).unwrap();
    let names: Vec<Vec<u8>> = r
        .read_dir(&r.root())
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(names.contains(&b"MIXEDC~1.MD".to_vec()), "{names:?}");
}

#[test]
fn escaping_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (image, r) = fat16(dir.path());
    for (name, want) in [
        (b"..         ", ". or .."),
        (b"A/B        ", "/"),
        (b"A\0B        ", "NUL"),
    ] {
        let at = root_entry(&image, &r, b"README  TXT");
        patch(&image, at, name);
        let e = FatReader::open(&image)
            .unwrap()
            .read_dir(&r.root())
            .unwrap_err();
        assert!(e.to_string().contains(want), "{want}: {e}");
        patch(&image, at, b"README  TXT");
    }
}
