//! GPT reading against tables written by `sfdisk` and by the `gpt` crate.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kiln_disk::partition::{
    find_partition, read_gpt, read_table, split_image_arg, type_guid, type_name, PartitionError,
};
use kiln_disk::Region;

const MIB: u64 = 1 << 20;

/// The `sfdisk` binary, or `None` (after saying so) if it is missing outside CI.
fn sfdisk() -> Option<PathBuf> {
    let candidates = [
        PathBuf::from("/usr/sbin/sfdisk"),
        PathBuf::from("/sbin/sfdisk"),
    ];
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Some(found.clone());
    }
    if Command::new("sfdisk")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        return Some(PathBuf::from("sfdisk"));
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "sfdisk is required in CI"
    );
    eprintln!("skipping: sfdisk not found");
    None
}

/// A sparse image of `size` bytes partitioned by `sfdisk` with `script`.
fn sfdisk_image(sfdisk: &Path, dir: &Path, size: u64, script: &str) -> PathBuf {
    sfdisk_image_named(sfdisk, dir, "disk.img", size, script)
}

fn sfdisk_image_named(sfdisk: &Path, dir: &Path, name: &str, size: u64, script: &str) -> PathBuf {
    let path = dir.join(name);
    File::create(&path).unwrap().set_len(size).unwrap();
    let mut child = Command::new(sfdisk)
        .args(["--quiet", "--no-reread", "--no-tell-kernel"])
        .arg(&path)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "sfdisk failed");
    path
}

const SCRIPT: &str = "label: gpt
label-id: 5B2A1D3E-0F4C-4A6B-9E8D-7C6B5A493827
size=4MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp, attrs=\"RequiredPartition\"
size=8MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=0D8F7A3C-1B2E-4C5D-8E9F-A0B1C2D3E4F5, name=root, attrs=\"GUID:60,63\"
size=2MiB, type=2E54B353-1271-4842-806F-E436D6AF6985, name=\"my data\"
";

fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    let mut f = OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn reads_sfdisk_table() {
    let Some(sfdisk) = sfdisk() else { return };
    let dir = tempfile::tempdir().unwrap();
    let img = sfdisk_image(&sfdisk, dir.path(), 32 * MIB, SCRIPT);

    let table = read_gpt(&img).unwrap().expect("a GPT");
    assert_eq!(table.sector_size, 512);
    assert!(!table.from_backup);
    assert_eq!(table.disk_guid, "5b2a1d3e-0f4c-4a6b-9e8d-7c6b5a493827");

    let parts = read_table(&img).unwrap().expect("a GPT");
    assert_eq!(parts.len(), 3);
    let esp = &parts[0];
    assert_eq!(esp.number, 1);
    assert_eq!(esp.label, "esp");
    assert_eq!(esp.type_guid, "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
    assert_eq!(esp.type_name, Some("esp"));
    assert_eq!(
        esp.region,
        Region {
            offset: MIB,
            len: 4 * MIB
        }
    );
    assert_eq!(esp.attributes, 1);

    let root = &parts[1];
    assert_eq!(root.number, 2);
    assert_eq!(root.label, "root");
    assert_eq!(root.type_name, Some("root-x86-64"));
    assert_eq!(root.uuid, "0d8f7a3c-1b2e-4c5d-8e9f-a0b1c2d3e4f5");
    assert_eq!(root.region.offset, 5 * MIB);
    assert_eq!(root.region.len, 8 * MIB);
    assert_eq!(root.region.end(), 13 * MIB);
    assert_eq!(root.attributes, (1 << 60) | (1 << 63));

    let data = &parts[2];
    assert_eq!(data.number, 3);
    assert_eq!(data.label, "my data");
    assert_eq!(data.type_name, None);
    assert_eq!(data.type_guid, "2e54b353-1271-4842-806f-e436d6af6985");
    assert_eq!(data.region.offset, 13 * MIB);

    // By number and by label.
    assert_eq!(&find_partition(&img, "2").unwrap(), root);
    assert_eq!(&find_partition(&img, "root").unwrap(), root);
    assert_eq!(&find_partition(&img, "my data").unwrap(), data);
    assert_eq!(&find_partition(&img, "01").unwrap(), esp);

    for missing in ["4", "0", "99999999999999999999", "ROOT", ""] {
        let err = find_partition(&img, missing).unwrap_err();
        assert!(
            matches!(err, PartitionError::NoSuchPartition { .. }),
            "{missing}: {err}"
        );
        let msg = err.to_string();
        assert!(msg.contains("disk.img"), "{msg}");
        assert!(msg.contains(&format!("{missing:?}")), "{msg}");
        assert!(msg.contains(r#"1 "esp", 2 "root", 3 "my data""#), "{msg}");
    }
}

#[test]
fn numbers_keep_gaps_and_duplicate_labels_are_ambiguous() {
    let Some(sfdisk) = sfdisk() else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = "label: gpt
start=2048, size=2048, name=a
start=8192, size=2048, name=twin
start=16384, size=2048, name=twin
";
    let img = sfdisk_image(&sfdisk, dir.path(), 16 * MIB, script);
    // Delete partition 1: entry 0 becomes unused, the others keep numbers 2 and 3.
    let status = Command::new(&sfdisk)
        .args(["--quiet", "--no-reread", "--no-tell-kernel", "--delete"])
        .arg(&img)
        .arg("1")
        .status()
        .unwrap();
    assert!(status.success());

    let parts = read_table(&img).unwrap().unwrap();
    let numbers: Vec<u32> = parts.iter().map(|p| p.number).collect();
    assert_eq!(numbers, [2, 3]);
    assert_eq!(parts[0].type_name, Some("linux-generic"));
    assert_eq!(
        find_partition(&img, "3").unwrap().region.offset,
        16384 * 512
    );

    let err = find_partition(&img, "twin").unwrap_err();
    match &err {
        PartitionError::Ambiguous { numbers, .. } => assert_eq!(numbers, &[2, 3]),
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("numbers 2, 3"), "{err}");
    let err = find_partition(&img, "1").unwrap_err();
    assert!(err.to_string().contains(r#"2 "twin", 3 "twin""#), "{err}");
}

#[test]
fn empty_table_lists_none() {
    let Some(sfdisk) = sfdisk() else { return };
    let dir = tempfile::tempdir().unwrap();
    let img = sfdisk_image(&sfdisk, dir.path(), 4 * MIB, "label: gpt\n");
    assert_eq!(read_table(&img).unwrap(), Some(Vec::new()));
    let err = find_partition(&img, "1").unwrap_err();
    assert!(err.to_string().contains("(partitions: none)"), "{err}");
}

#[test]
fn image_without_gpt_has_no_table() {
    let dir = tempfile::tempdir().unwrap();
    // Zeros, a short file, an empty file: no table.
    for (name, len) in [("zeros.img", 8 * MIB), ("short.img", 100), ("empty.img", 0)] {
        let img = dir.path().join(name);
        File::create(&img).unwrap().set_len(len).unwrap();
        assert_eq!(read_table(&img).unwrap(), None, "{name}");
        let err = find_partition(&img, "1").unwrap_err();
        assert!(matches!(err, PartitionError::NoTable { .. }), "{err}");
        assert!(err.to_string().contains(name), "{err}");
    }
    // A missing file is an IO error.
    let err = read_table(&dir.path().join("missing.img")).unwrap_err();
    assert!(matches!(err, PartitionError::Io { .. }), "{err}");
}

#[test]
fn stale_backup_header_alone_is_no_table() {
    let Some(sfdisk) = sfdisk() else { return };
    let dir = tempfile::tempdir().unwrap();
    let img = sfdisk_image(&sfdisk, dir.path(), 8 * MIB, "label: gpt\nsize=1MiB\n");
    // A filesystem written over the start (MBR, primary header and entries),
    // leaving the backup header at the end.
    write_at(&img, 0, &vec![0u8; 64 * 1024]);
    assert_eq!(read_table(&img).unwrap(), None);
}

#[test]
fn corrupt_primary_header_falls_back_to_backup() {
    let Some(sfdisk) = sfdisk() else { return };
    let dir = tempfile::tempdir().unwrap();
    let img = sfdisk_image(&sfdisk, dir.path(), 32 * MIB, SCRIPT);
    let intact = read_table(&img).unwrap().unwrap();

    // The signature of the primary header is gone; the protective MBR and the
    // backup header remain: the table is read from the backup.
    write_at(&img, 512, b"XXXXXXXX");
    let table = read_gpt(&img).unwrap().unwrap();
    assert!(table.from_backup);
    assert_eq!(table.partitions, intact);
    assert_eq!(find_partition(&img, "root").unwrap(), intact[1]);

    // A bad checksum in the primary header (signature intact): the same.
    let img2 = sfdisk_image_named(&sfdisk, dir.path(), "disk2.img", 32 * MIB, SCRIPT);
    write_at(&img2, 512 + 40, &[0xFF; 4]);
    let table = read_gpt(&img2).unwrap().unwrap();
    assert!(table.from_backup);

    // Both headers destroyed: corrupt (the protective MBR says there was a GPT).
    let len = std::fs::metadata(&img).unwrap().len();
    write_at(&img, len - 512, b"XXXXXXXX");
    let err = read_table(&img).unwrap_err();
    assert!(matches!(err, PartitionError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("disk.img"), "{err}");
}

#[test]
fn corrupt_entry_array_is_an_error() {
    let Some(sfdisk) = sfdisk() else { return };
    let dir = tempfile::tempdir().unwrap();
    let img = sfdisk_image(&sfdisk, dir.path(), 32 * MIB, SCRIPT);
    // Change the first entry's name: the primary header is intact but the
    // entry array no longer matches its checksum.
    write_at(&img, 1024 + 56, b"Z");
    let err = read_table(&img).unwrap_err();
    assert!(matches!(err, PartitionError::Corrupt { .. }), "{err}");
}

/// Recomputes the primary header's CRC after editing it, so the header is
/// "intact" with odd values.
fn rewrite_primary_header(path: &Path, edit: impl FnOnce(&mut [u8; 92])) {
    let bytes = std::fs::read(path).unwrap();
    let mut header = [0u8; 92];
    header.copy_from_slice(&bytes[512..604]);
    edit(&mut header);
    header[16..20].fill(0);
    let crc = crc32fast::hash(&header);
    header[16..20].copy_from_slice(&crc.to_le_bytes());
    write_at(path, 512, &header);
}

/// An in-place change to the 92 checksummed bytes of a GPT header.
type HeaderEdit = fn(&mut [u8; 92]);

#[test]
fn hostile_headers_are_errors_not_panics() {
    let Some(sfdisk) = sfdisk() else { return };
    let dir = tempfile::tempdir().unwrap();
    let edits: [(&str, HeaderEdit); 4] = [
        // The gpt crate asserts 128-byte entries.
        ("entry size", |h| {
            h[84..88].copy_from_slice(&256u32.to_le_bytes())
        }),
        // Would allocate 512 GiB.
        ("entry count", |h| {
            h[80..84].copy_from_slice(&u32::MAX.to_le_bytes())
        }),
        // Entry array far past the end.
        ("array start", |h| {
            h[72..80].copy_from_slice(&(u64::MAX / 2).to_le_bytes())
        }),
        // Entry array at the last sector: runs past the end.
        ("array end", |h| {
            h[72..80].copy_from_slice(&(32 * 2048u64 - 1).to_le_bytes())
        }),
    ];
    for (what, edit) in edits {
        let img = sfdisk_image(&sfdisk, dir.path(), 32 * MIB, SCRIPT);
        rewrite_primary_header(&img, edit);
        let err = read_table(&img).unwrap_err();
        assert!(
            matches!(err, PartitionError::Corrupt { .. }),
            "{what}: {err}"
        );
    }

    // An entry whose last LBA precedes its first: an error, not an underflow.
    let img = sfdisk_image(&sfdisk, dir.path(), 32 * MIB, SCRIPT);
    let mut bytes = std::fs::read(&img).unwrap();
    let entry = 1024;
    bytes[entry + 40..entry + 48].copy_from_slice(&1u64.to_le_bytes());
    let array_crc = crc32fast::hash(&bytes[1024..1024 + 128 * 128]);
    std::fs::write(&img, &bytes).unwrap();
    rewrite_primary_header(&img, |h| {
        h[88..92].copy_from_slice(&array_crc.to_le_bytes())
    });
    let err = read_table(&img).unwrap_err();
    assert!(err.to_string().contains("partition 1"), "{err}");
}

#[test]
fn reads_4096_byte_sector_table() {
    use gpt::disk::LogicalBlockSize;
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("4k.img");
    let len = 16 * MIB;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&img)
        .unwrap();
    file.set_len(len).unwrap();
    let mut file = file;
    gpt::mbr::ProtectiveMBR::with_lb_size(u32::try_from(len / 4096 - 1).unwrap())
        .overwrite_lba0(&mut file)
        .unwrap();
    let mut disk = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(LogicalBlockSize::Lb4096)
        .create_from_device(file, None)
        .unwrap();
    let esp = gpt::partition_types::EFI;
    let id = disk
        .add_partition("boot", 2 * MIB, esp, 0, Some(256))
        .unwrap();
    disk.write().unwrap();

    let table = read_gpt(&img).unwrap().unwrap();
    assert_eq!(table.sector_size, 4096);
    let p = find_partition(&img, "boot").unwrap();
    assert_eq!(p.number, id);
    assert_eq!(p.type_name, Some("esp"));
    assert_eq!(p.region.len, 2 * MIB);
    assert_eq!(p.region.offset % 4096, 0);
    assert!(p.region.end() <= len);
}

#[test]
fn split_image_arg_cases() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    File::create(&img).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();

    // IMAGE:NUMBER and IMAGE:LABEL, split at the last colon.
    let arg = format!("{}:2", s(&img));
    assert_eq!(
        split_image_arg(OsStr::new(&arg)),
        (img.clone(), Some("2".into()))
    );
    let arg = format!("{}:root", s(&img));
    assert_eq!(
        split_image_arg(OsStr::new(&arg)),
        (img.clone(), Some("root".into()))
    );
    // An empty selector is still a selector (find_partition rejects it).
    let arg = format!("{}:", s(&img));
    assert_eq!(
        split_image_arg(OsStr::new(&arg)),
        (img.clone(), Some(String::new()))
    );

    // A plain existing image.
    assert_eq!(split_image_arg(img.as_os_str()), (img.clone(), None));

    // Missing: the whole argument, so that opening it reports it.
    let missing = format!("{}:2", s(&dir.path().join("nope.img")));
    assert_eq!(
        split_image_arg(OsStr::new(&missing)),
        (PathBuf::from(&missing), None)
    );
    assert_eq!(split_image_arg(OsStr::new("")), (PathBuf::new(), None));
    assert_eq!(
        split_image_arg(OsStr::new(":2")),
        (PathBuf::from(":2"), None)
    );

    #[cfg(unix)]
    {
        // A file whose name contains colons: whole name wins when it exists ...
        let colon = dir.path().join("a:b:2");
        File::create(&colon).unwrap();
        assert_eq!(split_image_arg(colon.as_os_str()), (colon.clone(), None));
        // ... and with a selector appended, the last colon splits.
        let arg = format!("{}:root", s(&colon));
        assert_eq!(
            split_image_arg(OsStr::new(&arg)),
            (colon.clone(), Some("root".into()))
        );
        // "a:b" does not exist: not split at an inner colon.
        let arg = s(&dir.path().join("a:b:3"));
        assert_eq!(
            split_image_arg(OsStr::new(&arg)),
            (PathBuf::from(&arg), None)
        );

        // Non-UTF-8 selector bytes are converted lossily.
        use std::os::unix::ffi::OsStrExt;
        let mut raw = img.as_os_str().as_bytes().to_vec();
        raw.extend_from_slice(b":r\xFFt");
        assert_eq!(
            split_image_arg(OsStr::from_bytes(&raw)),
            (img.clone(), Some("r\u{FFFD}t".into()))
        );
    }
}

#[test]
fn type_table_spot_checks() {
    assert_eq!(
        type_name("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
        Some("esp")
    );
    assert_eq!(
        type_guid("root-arm64"),
        Some("b921b045-1df0-41c3-af44-4c6f280d3fae")
    );
    assert_eq!(
        type_guid("bios-boot"),
        Some("21686148-6449-6e6f-744e-656564454649")
    );
}
