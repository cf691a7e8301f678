//! Bad input (point i): kiln exits non-zero with an `error: ...` message
//! naming the path and the cause, and leaves no output file (nor a temporary
//! file beside it).
//!
//! These do not depend on the filesystem type and block size, except the
//! size limit of 1 KiB-block block maps, tested for both types.

use std::path::Path;
use std::process::Output;

use crate::fixture::{self, GIB};
use crate::helpers::*;
use crate::sys;

/// Asserts a failed run whose stderr says `error:` and mentions each of `names`.
pub fn assert_error(out: &Output, names: &[&str], what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{what}: kiln must fail: {}",
        describe(out)
    );
    assert!(
        stderr.contains("error:"),
        "{what}: no `error:` message: {}",
        describe(out)
    );
    for name in names {
        assert!(
            stderr.contains(name),
            "{what}: the message must name {name:?}: {}",
            describe(out)
        );
    }
}

/// Asserts that `dir` holds exactly `expected` (sorted names): nothing left behind.
pub fn assert_dir_holds(dir: &Path, expected: &[&str], what: &str) {
    let names = list_dir(dir);
    assert_eq!(names, expected, "{what}: files left in {}", dir.display());
}

#[test]
fn output_exists_without_force() {
    let case = Case::new("ext3", 4096);
    let src = case.mkdir("src");
    write_file(&src.join("file"), b"content\n");
    let out_dir = case.mkdir("out");
    let image = out_dir.join("existing.img");
    write_file(&image, b"precious, not an image");

    let out = run(&mut case.build_command(&[&src], &image));
    assert_error(&out, &["existing.img"], "output exists");
    assert!(
        read_file(&image) == b"precious, not an image",
        "the existing file was changed"
    );
    assert_dir_holds(&out_dir, &["existing.img"], "output exists");

    // With --force it is replaced by an image.
    let out = run(case.build_command(&[&src], &image).arg("--force"));
    assert_success(&out, "kiln build --force");
    if require_tool("e2fsck") {
        e2fsck_clean(&image);
    }
    assert_dir_holds(&out_dir, &["existing.img"], "--force");
}

#[test]
fn image_too_small() {
    let case = Case::new("ext2", 4096);
    let src = case.mkdir("src");
    write_file(&src.join("one_mib"), &fixture::bytes(1, 1 << 20));
    let out_dir = case.mkdir("out");
    let image = out_dir.join("small.img");

    let out = run(case.build_command(&[&src], &image).args(["--size", "100K"]));
    assert_error(&out, &[], "--size 100K for 1 MiB of data");
    // The message says how large the image must be: a number other than the
    // 100 (KiB) we asked for. Paths are removed first, they may hold digits.
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&*case.dir().to_string_lossy(), "");
    let numbers: Vec<&str> = stderr
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty() && *w != "100" && *w != "102400")
        .collect();
    assert!(
        !numbers.is_empty(),
        "the message must say how large the image must be: {stderr}"
    );
    assert_dir_holds(&out_dir, &[], "too small");
}

#[test]
fn unreadable_file() {
    let case = Case::new("ext3", 4096);
    if !(require_root() && require_tool("setpriv")) {
        return;
    }
    // kiln runs as nobody; the file is root's with mode 0000.
    let src = case.mkdir("src");
    write_file(&src.join("readable"), b"fine\n");
    let secret = src.join("unreadable-secret");
    write_file(&secret, b"secret\n");
    sys::chmod(&secret, 0o000);
    let Some((out, image)) = kiln_build_as_nobody(&case, &src, &[]) else {
        return;
    };
    let out_dir = image.parent().expect("the output directory");
    assert_error(&out, &["unreadable-secret"], "unreadable file");
    assert_dir_holds(out_dir, &[], "unreadable file");
}

/// A sparse 17 GiB file: beyond the ~16 GiB a 1 KiB-block block map can
/// address (12 + 256 + 256² + 256³ blocks).
fn too_large(fs_type: &'static str) {
    let case = Case::new(fs_type, 1024);
    let src = case.mkdir("src");
    write_file(&src.join("small"), b"small\n");
    fixture::sparse(&src.join("too-large-for-1k"), 17 * GIB, &[(0, 4096)]);
    let out_dir = case.mkdir("out");
    let image = out_dir.join("image.img");
    let out = run(&mut case.build_command(&[&src], &image));
    assert_error(
        &out,
        &["too-large-for-1k"],
        &format!("17 GiB file in {fs_type} with 1 KiB blocks"),
    );
    assert_dir_holds(&out_dir, &[], "file too large");
}

#[test]
fn file_too_large_ext2_1k() {
    too_large("ext2");
}

#[test]
fn file_too_large_ext3_1k() {
    too_large("ext3");
}

#[test]
fn nonexistent_source() {
    let case = Case::new("ext3", 4096);
    let src = case.path("does-not-exist");
    let out_dir = case.mkdir("out");
    let out = run(&mut case.build_command(&[&src], &out_dir.join("image.img")));
    assert_error(&out, &["does-not-exist"], "nonexistent source");
    assert_dir_holds(&out_dir, &[], "nonexistent source");
}
