//! How kiln reads its sources: several directories layered in order (point
//! h), and mount points inside a source kept as empty directories (`cp -x`).

use crate::compare::Snapshot;
use crate::fixture;
use crate::helpers::*;
use crate::sys::{self, Ts};

kiln_test!(
    /// h: a base tree and an overlay that adds /etc/hostname, replaces
    /// /etc/fstab, adds empty /proc and /sys, replaces one name of a hard-link
    /// pair and gives /etc its own metadata.
    layered_sources,
    |case| {
        if !(require_mount() && require_tool("e2fsck")) {
            return;
        }
        let base = case.mkdir("base");
        fixture::small(&base);
        let overlay = case.mkdir("overlay");
        std::fs::create_dir_all(overlay.join("etc")).expect("mkdir");
        write_file(&overlay.join("etc/hostname"), b"kiln-test\n");
        write_file(&overlay.join("etc/fstab"), b"# overlay fstab\nproc /proc proc defaults 0 0\n");
        sys::chmod(&overlay.join("etc/fstab"), 0o600);
        // base has usr/passwd_link as a second name of etc/passwd.
        std::fs::create_dir_all(overlay.join("usr")).expect("mkdir");
        write_file(&overlay.join("usr/passwd_link"), b"not a link any more\n");
        for dir in ["proc", "sys"] {
            std::fs::create_dir(overlay.join(dir)).expect("mkdir");
            sys::chmod(&overlay.join(dir), 0o555);
        }
        sys::chmod(&overlay.join("etc"), 0o750);
        sys::set_times(&overlay.join("etc"), Ts::new(1_400_000_000, 5), Ts::new(1_400_000_001, 6));
        sys::chmod(&overlay, 0o755);
        sys::set_times(&overlay, Ts::new(1_400_000_002, 7), Ts::new(1_400_000_003, 8));

        let snap = Snapshot::take(&[&base, &overlay]);
        let image = case.path("image.img");
        case.build(&[&base, &overlay], &image, &[]);
        e2fsck_clean(&image);
        // Before the checks below read the sources (moving their atimes).
        snap.assert_sources_unchanged();
        let mount = Mount::ro(&image, case.fs_type);
        let m = mount.path();
        let text = |rel: &str| String::from_utf8_lossy(&read_file(&m.join(rel))).into_owned();
        eqnice!("kiln-test\n", text("etc/hostname"), "/etc/hostname from the overlay");
        eqnice!(
            "# overlay fstab\nproc /proc proc defaults 0 0\n",
            text("etc/fstab"),
            "/etc/fstab replaced by the overlay"
        );
        eqnice!("root:x:0:0:root:/root:/bin/sh\n", text("etc/passwd"), "/etc/passwd kept from the base");
        eqnice!("fstab,hostname,passwd", list_dir(&m.join("etc")).join(","));
        assert!(read_file(&m.join("usr/share/doc/readme")) == read_file(&base.join("usr/share/doc/readme")));
        for dir in ["proc", "sys"] {
            assert!(list_dir(&m.join(dir)).is_empty(), "/{dir} must be empty");
        }
        let etc = sys::lstat(&m.join("etc")).expect("lstat");
        assert_eq!((etc.perm, etc.mtime), (0o750, Ts::new(1_400_000_001, 6)), "/etc metadata from the overlay");
        assert_eq!(sys::lstat(&m.join("etc/passwd")).expect("lstat").nlink, 1, "its other name was replaced");
        // And everything else, entry by entry.
        snap.assert_image_matches(m, u64::from(case.block_size));
    }
);

/// h: a later layer replaces a directory by a file (its subtree goes) and a
/// file by a directory.
#[test]
fn layered_sources_replace_across_types() {
    let case = Case::new("ext3", 4096);
    if !(require_mount() && require_tool("e2fsck")) {
        return;
    }
    let base = case.mkdir("base");
    std::fs::create_dir_all(base.join("opt/was_dir/deeper")).expect("mkdir");
    write_file(&base.join("opt/was_dir/deeper/file"), b"gone\n");
    write_file(&base.join("opt/was_file"), b"gone too\n");
    let overlay = case.mkdir("overlay");
    std::fs::create_dir_all(overlay.join("opt/was_file")).expect("mkdir");
    write_file(&overlay.join("opt/was_file/now_inside"), b"new\n");
    write_file(&overlay.join("opt/was_dir"), b"now a file\n");

    let snap = Snapshot::take(&[&base, &overlay]);
    let image = case.path("image.img");
    case.build(&[&base, &overlay], &image, &[]);
    e2fsck_clean(&image);
    let mount = Mount::ro(&image, case.fs_type);
    assert!(mount.path().join("opt/was_dir").is_file());
    assert!(mount.path().join("opt/was_file/now_inside").is_file());
    snap.assert_image_matches(mount.path(), 4096);
}

/// Like `cp -x`: a filesystem mounted below a source appears as an empty
/// directory; its content is not copied.
#[test]
fn mount_point_in_source_is_empty_dir() {
    let case = Case::new("ext3", 4096);
    if !(require_mount() && require_tool("e2fsck")) {
        return;
    }
    let src = case.mkdir("src");
    write_file(&src.join("kept"), b"kept\n");
    std::fs::create_dir(src.join("mnt")).expect("mkdir");
    let tmpfs = Mount::tmpfs(&src.join("mnt"));
    write_file(&src.join("mnt/not_copied"), b"on another filesystem\n");

    let snap = Snapshot::take(&[&src]);
    let image = case.path("image.img");
    case.build(&[&src], &image, &[]);
    e2fsck_clean(&image);
    let mount = Mount::ro(&image, case.fs_type);
    assert!(
        list_dir(&mount.path().join("mnt")).is_empty(),
        "/mnt must be empty in the image"
    );
    snap.assert_image_matches(mount.path(), 4096);
    drop(mount);
    tmpfs.unmount();
}
