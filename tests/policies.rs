//! Issue 4, points 2, 4 and 5: whiteout layering, ownership and time policies,
//! judged through the kernel (a loop mount) and e2fsck; and a build by a plain
//! user that still produces a root-owned image.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::bad_input::assert_error;
use crate::helpers::*;
use crate::sys;

/// A source owned by uid/gid 1000 with a setuid file and a subdirectory.
fn user_tree(case: &Case) -> std::path::PathBuf {
    let src = case.mkdir("src");
    std::fs::create_dir(src.join("bin")).unwrap();
    write_file(&src.join("bin/tool"), b"#!/bin/sh\n");
    for p in [src.join("bin/tool"), src.join("bin"), src.clone()] {
        sys::lchown(&p, 1000, 1000);
    }
    // After the chown, which clears setuid bits.
    sys::chmod(&src.join("bin/tool"), 0o4755);
    src
}

/// Builds `sources` with `extra` flags, checks e2fsck, mounts read-only.
fn build_and_mount(case: &Case, sources: &[&Path], extra: &[&str]) -> Mount {
    let image = case.path("policy.img");
    case.build(sources, &image, extra);
    e2fsck_clean(&image);
    Mount::ro(&image, case.fs_type)
}

#[test]
fn all_root_and_root_owner_and_mode() {
    if !require_mount() {
        return;
    }
    let case = Case::new("ext4", 4096);
    let src = user_tree(&case);
    let args = ["--all-root", "--root-owner", "7:8", "--root-mode", "0700"];
    let mount = build_and_mount(&case, &[&src], &args);
    let tool = std::fs::symlink_metadata(mount.path().join("bin/tool")).unwrap();
    assert_eq!(
        (tool.uid(), tool.gid(), tool.mode() & 0o7777),
        (0, 0, 0o4755)
    );
    let root = std::fs::symlink_metadata(mount.path()).unwrap();
    assert_eq!(
        (root.uid(), root.gid(), root.mode() & 0o7777),
        (7, 8, 0o700)
    );
}

#[test]
fn uid_and_gid_maps() {
    if !require_mount() {
        return;
    }
    let case = Case::new("ext4", 4096);
    let src = user_tree(&case);
    let args = ["--uid-map", "1000:0:1", "--gid-map", "0:50:2000"];
    let mount = build_and_mount(&case, &[&src], &args);
    let tool = std::fs::symlink_metadata(mount.path().join("bin/tool")).unwrap();
    assert_eq!((tool.uid(), tool.gid()), (0, 1050));
    let out = kiln(["build", "-o", "x.img", "--uid-map", "1:2"]);
    assert!(!out.status.success(), "a malformed map is refused");
}

#[test]
fn timestamp_sets_and_source_date_epoch_clamps() {
    if !require_mount() {
        return;
    }
    let case = Case::new("ext4", 4096);
    let src = case.mkdir("src");
    write_file(&src.join("old"), b"old");
    write_file(&src.join("new"), b"new");
    let ts = |secs, nanos| sys::Ts { secs, nanos };
    sys::set_times(&src.join("old"), ts(500, 123), ts(500, 456));
    sys::set_times(&src.join("new"), ts(4_000_000_000, 7), ts(4_000_000_000, 9));

    let mount = build_and_mount(&case, &[&src], &["--timestamp", "1000"]);
    for name in ["old", "new"] {
        let m = std::fs::symlink_metadata(mount.path().join(name)).unwrap();
        assert_eq!(
            (m.mtime(), m.mtime_nsec(), m.atime(), m.ctime()),
            (1000, 0, 1000, 1000)
        );
    }
    drop(mount);

    let image = case.path("epoch.img");
    let out = run(case
        .build_command(&[&src], &image)
        .env("SOURCE_DATE_EPOCH", "1000000"));
    assert_success(&out, "kiln build with SOURCE_DATE_EPOCH");
    e2fsck_clean(&image);
    let mount = Mount::ro(&image, "ext4");
    let old = std::fs::symlink_metadata(mount.path().join("old")).unwrap();
    assert_eq!(
        (old.mtime(), old.mtime_nsec()),
        (500, 456),
        "older times keep their nanoseconds"
    );
    let new = std::fs::symlink_metadata(mount.path().join("new")).unwrap();
    assert_eq!(
        (new.mtime(), new.mtime_nsec()),
        (1_000_000, 0),
        "newer times are clamped"
    );
    assert!(dumpe2fs_header(&image)["Filesystem created"].contains("1970"));
}

#[test]
fn whiteouts_delete_entries_of_earlier_layers() {
    if !require_mount() {
        return;
    }
    let case = Case::new("ext4", 4096);
    let lower = case.mkdir("lower");
    std::fs::create_dir_all(lower.join("etc")).unwrap();
    std::fs::create_dir_all(lower.join("var/cache")).unwrap();
    write_file(&lower.join("etc/gone"), b"1");
    write_file(&lower.join("etc/kept"), b"2");
    write_file(&lower.join("var/cache/old"), b"3");
    let upper = case.mkdir("upper");
    std::fs::create_dir_all(upper.join("etc")).unwrap();
    std::fs::create_dir_all(upper.join("var/cache")).unwrap();
    write_file(&upper.join("etc/.wh.gone"), b"");
    write_file(&upper.join("var/cache/.wh..wh..opq"), b"");
    write_file(&upper.join("var/cache/new"), b"4");

    let mount = build_and_mount(&case, &[&lower, &upper], &["--whiteouts"]);
    assert_eq!(list_dir(&mount.path().join("etc")), ["kept"]);
    assert_eq!(list_dir(&mount.path().join("var/cache")), ["new"]);
    drop(mount);
    // Without the flag the markers are ordinary files.
    let mount = build_and_mount(&case, &[&lower, &upper], &["--force"]);
    assert_eq!(
        list_dir(&mount.path().join("etc")),
        [".wh.gone", "gone", "kept"]
    );
}

/// Issue 4's "as a non-root user too": nobody builds an image of its own
/// files in which the kernel sees root as the owner.
#[test]
fn a_plain_user_builds_a_root_owned_image() {
    if !(require_mount() && require_tool("setpriv")) {
        return;
    }
    let case = Case::new("ext4", 4096);
    let src = case.mkdir("src");
    write_file(&src.join("suid"), b"x");
    for p in [src.join("suid"), src.clone()] {
        sys::lchown(&p, 65534, 65534);
    }
    // After the chown, which clears setuid bits.
    sys::chmod(&src.join("suid"), 0o4755);
    let Some((out, image)) = kiln_build_as_nobody(&case, &src, &["--all-root"]) else {
        return;
    };
    assert_success(&out, "kiln build as nobody");
    assert_eq!(
        std::fs::metadata(&image).unwrap().uid(),
        65534,
        "nobody wrote the image"
    );
    e2fsck_clean(&image);
    let mount = Mount::ro(&image, "ext4");
    let suid = std::fs::symlink_metadata(mount.path().join("suid")).unwrap();
    assert_eq!(
        (suid.uid(), suid.gid(), suid.mode() & 0o7777),
        (0, 0, 0o4755)
    );
}

/// Issue 4, point 6: `--exclude` leaves out matching image paths (a
/// directory with everything below it); a relative glob is refused.
#[test]
fn excludes_leave_out_matching_paths() {
    if !require_mount() {
        return;
    }
    let case = Case::new("ext4", 4096);
    let src = case.mkdir("src");
    std::fs::create_dir_all(src.join("var/cache/apt")).unwrap();
    std::fs::create_dir_all(src.join("usr/lib")).unwrap();
    write_file(&src.join("var/cache/apt/pkgcache.bin"), b"cache");
    write_file(&src.join("var/kept"), b"kept");
    write_file(&src.join("usr/lib/mod.pyc"), b"pyc");
    write_file(&src.join("usr/lib/mod.py"), b"py");
    let args = ["--exclude", "/var/cache", "--exclude", "/**/*.pyc"];
    let mount = build_and_mount(&case, &[&src], &args);
    assert_eq!(list_dir(&mount.path().join("var")), ["kept"]);
    assert_eq!(list_dir(&mount.path().join("usr/lib")), ["mod.py"]);
    drop(mount);
    let out = run(case
        .build_command(&[&src], &case.path("relative.img"))
        .args(["--exclude", "var/cache"]));
    assert_error(&out, &["--exclude"], "a relative exclude glob");
}
