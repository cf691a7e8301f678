//! Building the full fixture: a clean `e2fsck` (point a), metadata as
//! `debugfs` reports it (point c), and the loop-mounted image compared with
//! the sources entry by entry (point d).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::compare::{Key, Snapshot};
use crate::fixture;
use crate::helpers::*;
use crate::sys::{self, Kind};

/// Generates the full fixture in `<case>/src` and snapshots it.
pub fn full_source(case: &Case) -> (PathBuf, Snapshot) {
    let src = case.mkdir("src");
    fixture::full(&src, case.block_size);
    let snap = Snapshot::take(&[&src]);
    check_fixture(&snap, case.block_size);
    (src, snap)
}

/// Guards the checks against a fixture (or a snapshot) that silently lost
/// what it is meant to hold: xattrs read back, holes seen, devices made.
fn check_fixture(snap: &Snapshot, block_size: u32) {
    let node = |path: &str| {
        let key: Key = path.split('/').map(|c| c.as_bytes().to_vec()).collect();
        snap.entries
            .get(&key)
            .unwrap_or_else(|| panic!("the fixture has no {path}"))
    };
    let xattr = |path: &str, name: &str| {
        node(path)
            .xattrs
            .iter()
            .find(|(n, _)| n == name.as_bytes())
            .map(|(_, v)| v.len())
    };
    assert_eq!(
        xattr("xattrs/user_large", "user.big"),
        Some(fixture::large_xattr_len(block_size))
    );
    assert_eq!(xattr("xattrs/capability", "security.capability"), Some(20));
    assert_eq!(
        xattr("xattrs/acl_dir", "system.posix_acl_access"),
        Some(4 + 5 * 8)
    );
    assert_eq!(
        xattr("xattrs/acl_dir", "system.posix_acl_default"),
        Some(4 + 5 * 8)
    );
    assert_eq!(xattr("xattrs/trusted", "trusted.overlay.opaque"), Some(1));
    assert_eq!(node("holes/all_hole").ranges, []);
    assert_eq!(node("holes/middle_hole").ranges.len(), 2);
    assert_eq!(node("sizes/dense_zeros").ranges, [0..65536]);
    assert_eq!(node("special/char_big").meta.rdev, (300, 70000));
    assert_eq!(node("hardlinks/orig").meta.nlink, 4);
    assert_eq!(node("modes/mode_7777").meta.perm, 0o7777);
    assert_eq!(
        node("owners/u4000000000_g4000000001").meta.uid,
        4_000_000_000
    );
}

/// The number of distinct inodes below the root of a snapshot (hard links counted once).
fn distinct_inodes(snap: &Snapshot) -> u64 {
    let set: std::collections::HashSet<_> = snap
        .entries
        .iter()
        .filter(|(k, _)| !k.is_empty())
        .map(|(_, n)| (n.meta.dev, n.meta.ino))
        .collect();
    set.len() as u64
}

kiln_test!(
    /// a: the fixture builds, with a fixed size and with the automatic size,
    /// into images e2fsck finds clean, with exactly the inodes and blocks expected.
    builds_clean_image,
    |case| {
        if !(require_root() && require_tool("e2fsck")) {
            return;
        }
        let (src, snap) = full_source(&case);
        let image = case.path("image.img");
        case.build(&[&src], &image, &["--size", "64M"]);
        assert_eq!(
            std::fs::metadata(&image).expect("stat image").len(),
            64 << 20,
            "--size 64M is the apparent size of the image file"
        );
        let summary = e2fsck_clean(&image);
        assert_eq!(summary.blocks, (64 << 20) / u64::from(case.block_size), "block count");
        // Inodes 1..=11 are reserved (root and lost+found among them); then
        // one per distinct source inode.
        assert_eq!(
            summary.inodes_used,
            11 + distinct_inodes(&snap),
            "used inodes: 11 reserved + one per distinct inode of the tree"
        );

        let auto = case.path("auto.img");
        case.build(&[&src], &auto, &[]);
        let summary = e2fsck_clean(&auto);
        assert_eq!(summary.inodes_used, 11 + distinct_inodes(&snap));
    }
);

/// What debugfs must report for `path`, from the source's lstat.
fn check_stat(image: &Path, src: &Path, path: &str, links: u32) -> DebugfsStat {
    let text = debugfs_stat(image, path);
    let got = DebugfsStat::parse(&text);
    let m = sys::lstat(&src.join(&path[1..])).expect("lstat source");
    let kind = match m.kind {
        Kind::File => "regular",
        Kind::Dir => "directory",
        Kind::Symlink => "symlink",
        Kind::CharDev => "character special",
        Kind::BlockDev => "block special",
        Kind::Fifo => "FIFO",
        Kind::Socket => "socket",
    };
    let expected = DebugfsStat {
        kind: kind.to_string(),
        perm: u32::from(m.perm),
        uid: m.uid,
        gid: m.gid,
        size: if m.kind == Kind::Dir {
            got.size
        } else {
            m.size
        },
        links,
        device: matches!(m.kind, Kind::CharDev | Kind::BlockDev).then_some(m.rdev),
        fast_link: got.fast_link.clone(),
    };
    assert_eq!(got, expected, "debugfs stat {path}:\n{text}");
    got
}

kiln_test!(
    /// c: inode fields of chosen entries, as debugfs reads them from the image.
    debugfs_metadata,
    |case| {
        if !(require_root() && require_tool("debugfs")) {
            return;
        }
        let (src, _snap) = full_source(&case);
        let image = case.path("image.img");
        case.build(&[&src], &image, &["--size", "64M"]);

        check_stat(&image, &src, "/", 2 + 10 + 1);
        check_stat(&image, &src, "/sizes/size_4097", 1);
        check_stat(&image, &src, "/holes/beyond_4g", 1);
        for perm in ["0000", "0777", "4755", "2755", "1644", "7777", "6711"] {
            let s = check_stat(&image, &src, &format!("/modes/mode_{perm}"), 1);
            assert_eq!(format!("{:04o}", s.perm), perm);
        }
        let s = check_stat(&image, &src, "/modes/dir_1777", 2);
        assert_eq!(s.perm, 0o1777);
        check_stat(&image, &src, "/modes/dir_0000", 2);
        let s = check_stat(&image, &src, "/owners/u4000000000_g4000000001", 1);
        assert_eq!((s.uid, s.gid), (4_000_000_000, 4_000_000_001));
        check_stat(&image, &src, "/owners/u4294967294_g4294967294", 1);
        check_stat(&image, &src, "/owners/dir_u70000", 2);
        let s = check_stat(&image, &src, "/hardlinks/orig", 4);
        assert_eq!(s.size, 20);
        check_stat(&image, &src, "/hardlinks/sub/empty_link", 2);
        check_stat(&image, &src, "/hardlinks/sub/symlink_link", 2);
        let s = check_stat(&image, &src, "/special/char_big", 2);
        assert_eq!(s.device, Some((300, 70000)));
        let s = check_stat(&image, &src, "/special/block_big", 1);
        assert_eq!(s.device, Some((259, 1_000_000)));
        let s = check_stat(&image, &src, "/special/char_1_3", 1);
        assert_eq!(s.device, Some((1, 3)));
        check_stat(&image, &src, "/special/block_8_0", 1);
        check_stat(&image, &src, "/special/fifo", 1);
        check_stat(&image, &src, "/special/socket", 1);
        check_stat(&image, &src, "/dirs/empty", 2);
        check_stat(&image, &src, "/dirs/big", 2);
        check_stat(&image, &src, "/dirs/nested/a", 3);

        // Symlinks below 60 bytes live in the inode, from 60 bytes in a block.
        for (path, fast) in [
            ("/links/fast_1", true),
            ("/links/fast_59", true),
            ("/links/slow_60", false),
            ("/links/slow_500", false),
            ("/links/slow_max", false),
        ] {
            let s = check_stat(&image, &src, path, 1);
            let target = std::fs::read_link(src.join(&path[1..])).expect("readlink");
            let target = target.to_str().expect("ASCII target");
            if fast {
                assert_eq!(s.fast_link.as_deref(), Some(target), "{path}: fast symlink target");
            } else {
                assert_eq!(s.fast_link, None, "{path}: {} bytes must not be a fast symlink", target.len());
            }
        }
        let s = check_stat(&image, &src, "/links/slow_max", 1);
        assert_eq!(s.size, fixture::max_symlink_len(case.block_size) as u64);
    }
);

kiln_test!(
    /// d: the image mounted read-only by the kernel holds exactly the sources.
    mount_matches_source,
    |case| {
        if !(require_mount() && require_tool("e2fsck")) {
            return;
        }
        let (src, snap) = full_source(&case);
        let image = case.path("image.img");
        case.build(&[&src], &image, &["--size", "64M"]);
        e2fsck_clean(&image);
        snap.assert_sources_unchanged();
        let mount = Mount::ro(&image, case.fs_type);
        snap.assert_image_matches(mount.path(), u64::from(case.block_size));
    }
);

/// The image gets the mode any new file gets (0666 less the umask), not the
/// 0600 of the temporary file it was written as.
#[test]
fn image_has_a_new_files_mode() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    write_file(&src.join("f"), b"x");
    let image = dir.path().join("mode.img");
    let script = "umask 027; exec \"$0\" build \"$1\" -o \"$2\"";
    let out = run(Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .arg(&src)
        .arg(&image));
    assert_success(&out, "kiln build under umask 027");
    let mode = std::fs::metadata(&image).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "image mode {mode:o}");
}
