//! The examples run, and their images are judged by the real tools:
//! e2fsck for a filesystem, sgdisk for a GPT, kiln's verify for both.

use std::path::Path;
use std::process::Command;

#[allow(dead_code)]
#[path = "../examples/build_image.rs"]
mod build_image;
#[allow(dead_code)]
#[path = "../examples/disk_from_code.rs"]
mod disk_from_code;
#[allow(dead_code)]
#[path = "../examples/verify_image.rs"]
mod verify_image;

/// fixtures/example, the README's example tree.
fn example_tree() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/example"
    ))
}

/// Runs a judge; a missing one fails under CI and skips elsewhere.
fn judge(program: &str, args: &[&str]) -> Option<std::process::Output> {
    match Command::new(program).args(args).output() {
        Ok(out) => Some(out),
        Err(e) if std::env::var_os("CI").is_some_and(|v| v == "true") => {
            panic!("{program}: {e} (CI needs every judge)")
        }
        Err(e) => {
            eprintln!("skipped: {program}: {e}");
            None
        }
    }
}

#[test]
fn build_image_then_verify_image() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("example.img");
    let report = build_image::build_image(example_tree(), &image).unwrap();
    assert_eq!(report.disk.size, std::fs::metadata(&image).unwrap().len());
    if let Some(out) = judge("e2fsck", &["-fn", image.to_str().unwrap()]) {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let mut lines = Vec::new();
    let verified = verify_image::verify_image(&image, example_tree(), &mut lines).unwrap();
    assert!(verified.matches(), "{}", String::from_utf8_lossy(&lines));
    assert!(verified.entries > 3 && verified.bytes > 0, "{verified:?}");
    // A second build is byte-identical.
    let again = dir.path().join("again.img");
    build_image::build_image(example_tree(), &again).unwrap();
    assert_eq!(
        std::fs::read(&image).unwrap(),
        std::fs::read(&again).unwrap()
    );
}

#[test]
fn verify_image_reports_a_difference() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("example.img");
    build_image::build_image(example_tree(), &image).unwrap();
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("extra"), b"not in the image").unwrap();
    let mut lines = Vec::new();
    let verified = verify_image::verify_image(&image, &other, &mut lines).unwrap();
    assert!(!verified.matches());
    let text = String::from_utf8(lines).unwrap();
    assert!(text.contains("/extra: missing from the image"), "{text}");
}

#[test]
fn disk_from_code_is_a_valid_gpt_with_a_clean_root() {
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.img");
    let report = disk_from_code::build_disk(example_tree(), &disk).unwrap();
    assert_eq!(report.partitions.len(), 2);
    assert_eq!(report.partitions[1].label, "root");
    let esp = &report.partitions[0];
    let fat = esp.filesystem.as_ref().unwrap();
    assert_eq!(fat.fs_type, "fat16");
    let at = format!("{}@@{}", disk.display(), esp.offset);
    if let Some(out) = judge("mtype", &["-i", &at, "::/loader/loader.conf"]) {
        assert_eq!(String::from_utf8_lossy(&out.stdout), "timeout 3\n");
    }
    if let Some(out) = judge("sgdisk", &["-v", disk.to_str().unwrap()]) {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("No problems found"), "{text}");
    }
    let root = format!("{}:root", disk.display());
    let mut lines = Vec::new();
    let verified =
        verify_image::verify_image(Path::new(&root), example_tree(), &mut lines).unwrap();
    assert!(verified.matches(), "{}", String::from_utf8_lossy(&lines));
}
