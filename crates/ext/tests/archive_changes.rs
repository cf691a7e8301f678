//! A plain tar archive is read in place: its members' data are read from it
//! when the image is written (issue 17, point 8). An archive that changes
//! between reading the tree and copying the data fails the build with an
//! error naming the archive, and leaves no output: never the wrong bytes.

use std::fs::{File, FileTimes};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use kiln_ext::{BuildOptions, EmitError, FsType};
use kiln_sink::SparseFile;

/// A tar block.
const BLOCK: usize = 512;

/// A ustar archive of one regular file `name` holding `data`.
fn one_file_archive(name: &str, data: &[u8]) -> Vec<u8> {
    let mut header = [0u8; BLOCK];
    let mut put = |at: usize, field: &[u8]| header[at..at + field.len()].copy_from_slice(field);
    put(0, name.as_bytes());
    put(100, b"0000644\0");
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{:011o}\0", data.len()).as_bytes());
    put(136, b"14000000000\0");
    put(148, b"        ");
    put(156, b"0");
    put(257, b"ustar\x0000");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut archive = header.to_vec();
    archive.extend_from_slice(data);
    archive.resize(archive.len().next_multiple_of(BLOCK) + 2 * BLOCK, 0);
    archive
}

/// An archive of a 100,000-byte file in a new temporary directory.
fn archive_with_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("src.tar");
    std::fs::write(&archive, one_file_archive("data", &[7u8; 100_000])).unwrap();
    (dir, archive)
}

/// Reads `archive` into a tree, runs `change`, then plans and emits into
/// `out`, and commits the image if emit succeeded.
fn build_after(archive: &Path, out: &Path, change: impl FnOnce()) -> Result<(), EmitError> {
    let tree = kiln_tree::read_tar(archive).unwrap();
    change();
    let opts = BuildOptions::new(FsType::Ext2);
    let plan = kiln_ext::plan(&tree, &opts).unwrap();
    let sink = SparseFile::create(out, plan.image_size, false).unwrap();
    kiln_ext::emit(&plan, &sink)?;
    sink.commit(kiln_sink::Durability::Writeback).unwrap();
    Ok(())
}

/// Asserts that `err` names `archive` as changed and that no image is left.
fn assert_named(err: &EmitError, archive: &Path, what: &str, out: &Path) {
    let text = err.to_string();
    assert!(
        text.contains(&archive.display().to_string()) && text.contains(what),
        "{text}"
    );
    assert!(!out.exists());
}

#[test]
fn truncated_archive_is_named() {
    let (dir, archive) = archive_with_file();
    let out = dir.path().join("out.img");
    let err = build_after(&archive, &out, || {
        let file = File::options().write(true).open(&archive).unwrap();
        file.set_len(2 * BLOCK as u64).unwrap();
    })
    .unwrap_err();
    assert_named(&err, &archive, "bytes when read, now 1024", &out);
}

#[test]
fn archive_rewritten_in_place_is_named() {
    let (dir, archive) = archive_with_file();
    let out = dir.path().join("out.img");
    let err = build_after(&archive, &out, || {
        std::fs::write(&archive, one_file_archive("data", &[8u8; 100_000])).unwrap();
        // Another mtime even within one tick of the host's clock.
        let later = SystemTime::now() + Duration::from_secs(60);
        let file = File::options().write(true).open(&archive).unwrap();
        file.set_times(FileTimes::new().set_modified(later))
            .unwrap();
    })
    .unwrap_err();
    assert_named(&err, &archive, "modified after it was read", &out);
}
