//! Issue 17, point 3: sources that change while kiln reads them, and
//! `--live`.
//!
//! From outside the process the moment a file changes cannot be chosen, so
//! kiln changes a source itself: the source holds a hard link to the file
//! that `--offset` writes the image into, and every write of the build
//! moves that file's mtime and ctime after the walk read them. One worker
//! thread (`RAYON_NUM_THREADS=1`) keeps the order fixed: the first piece
//! (the superblock) is written before any file is copied. The finer cases
//! (a file rewritten, resized, vanished or changing during its copy, every
//! one named) are tested below the CLI, in
//! `crates/ext/tests/source_changes.rs` and the unit tests of
//! `crates/ext/src/emit/files.rs` and `crates/tree/src/dir.rs`.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::bad_input::assert_error;
use crate::fixture::{self, MIB};
use crate::helpers::*;

/// Where the image goes in the file it is written into.
const OFFSET: u64 = 32 * MIB;
/// The image's size.
const SIZE: u64 = 16 * MIB;

/// A source `src/` with a small file and `victim`, a hard link to
/// `host.raw`: a sparse 64 MiB file with data in its first 4 KiB, which
/// the image is written into at [`OFFSET`]. Returns the source and the
/// host file.
fn source_written_by_the_build(case: &Case) -> (PathBuf, PathBuf) {
    let src = case.mkdir("src");
    write_file(&src.join("small"), b"small\n");
    let host = case.path("host.raw");
    fixture::sparse(&host, 64 * MIB, &[(0, 4096)]);
    std::fs::hard_link(&host, src.join("victim")).expect("hard link");
    (src, host)
}

/// `kiln build SRC -o HOST --offset 32M --size 16M ARGS` with one worker.
fn build_into_own_source(case: &Case, src: &Path, host: &Path, args: &[&str]) -> Output {
    run(case
        .build_command(&[src], host)
        .args(["--offset", "32M", "--size", "16M"])
        .args(args)
        .env("RAYON_NUM_THREADS", "1"))
}

/// Before: the file was copied under its old mtime, and the build
/// succeeded.
#[test]
fn a_source_file_written_during_the_build_is_an_error_naming_it() {
    let case = Case::new("ext4", 4096);
    let (src, host) = source_written_by_the_build(&case);
    let out = build_into_own_source(&case, &src, &host, &[]);
    assert_error(
        &out,
        &["src/victim", "changed"],
        "a source written during the build",
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit status: {}",
        describe(&out)
    );
}

/// With --live the file is copied as it is when copied (whole: it does not
/// change during its copy here), without a warning, and the image is clean.
#[test]
fn with_live_a_source_file_written_during_the_build_is_stored() {
    let case = Case::new("ext4", 4096);
    let (src, host) = source_written_by_the_build(&case);
    let out = build_into_own_source(&case, &src, &host, &["--live"]);
    assert_success(&out, "kiln build --live");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");
    if !require_tool("e2fsck") || !require_tool("debugfs") {
        return;
    }
    let region = case.path("region.img");
    let data = read_file(&host);
    write_file(&region, &data[OFFSET as usize..(OFFSET + SIZE) as usize]);
    e2fsck_clean(&region);
    // The first 4 KiB of the host file (untouched by the image, which
    // lies beyond them) are what the image holds.
    let stat = debugfs_stat(&region, "/victim");
    assert!(stat.contains(&format!("Size: {}", 64 * MIB)), "{stat}");
    let dump = case.path("victim.out");
    debugfs(
        &region,
        &format!("dump /victim {}", dump.to_str().expect("UTF-8 path")),
    );
    assert_eq!(read_file(&dump)[..4096], data[..4096]);
}
