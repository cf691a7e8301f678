//! The image as a live filesystem: written through a read-write mount
//! (point e) and grown with `resize2fs` (point f), staying clean for e2fsck.
//!
//! resize2fs refuses (exit 1, "Please run 'e2fsck -f IMAGE' first.") when the
//! superblock's last-check time is older than its last-mount time, when the
//! state is not clean, or when the journal needs recovery; `e2fsck -fn` does
//! not count as a check (it writes nothing). A fresh image, like one from
//! mke2fs (mount time 0, last check at creation), must be accepted without
//! `-f`: that is what the resize test asserts. After a read-write mount the
//! mount time is newer, so resizing then needs a real `e2fsck -f` first.

use std::fs::OpenOptions;
use std::io::Write;

use crate::build::full_source;
use crate::fixture::bytes;
use crate::helpers::*;
use crate::sys;

kiln_test!(
    /// e: create, append, mkdir, delete, rename, truncate, fill a hole and set
    /// and remove xattrs through a read-write mount; the image stays clean and
    /// keeps the changes.
    read_write_mount,
    |case| {
        if !(require_mount() && require_tool("e2fsck")) {
            return;
        }
        let (src, _snap) = full_source(&case);
        let image = case.path("image.img");
        case.build(&[&src], &image, &["--size", "64M"]);

        let new_data = bytes(42, 100_000);
        let appended = bytes(43, 5000);
        let mount = Mount::rw(&image, case.fs_type);
        let m = mount.path();
        write_file(&m.join("new_file"), &new_data);
        OpenOptions::new()
            .append(true)
            .open(m.join("sizes/size_4097"))
            .and_then(|mut f| f.write_all(&appended))
            .expect("append");
        std::fs::create_dir_all(m.join("newdir/sub")).expect("mkdir");
        write_file(&m.join("newdir/sub/file"), b"in a new directory\n");
        for i in (0..300).step_by(3) {
            std::fs::remove_file(m.join(format!("dirs/big/entry_{i:04}_with_a_longer_name")))
                .expect("unlink");
        }
        std::fs::remove_file(m.join("hardlinks/same_dir_link")).expect("unlink a hard link");
        std::fs::remove_dir_all(m.join("dirs/nested/a/b")).expect("rm -r");
        std::fs::rename(m.join("sizes/size_1"), m.join("newdir/renamed")).expect("rename");
        std::fs::File::options()
            .write(true)
            .open(m.join("sizes/size_274433"))
            .and_then(|f| f.set_len(5000))
            .expect("truncate");
        {
            use std::os::unix::fs::FileExt;
            let f = std::fs::File::options()
                .write(true)
                .open(m.join("holes/middle_hole"))
                .expect("open");
            f.write_all_at(b"into the hole", 20_000).expect("write into a hole");
        }
        sys::set_xattr(&m.join("sizes/size_0"), "user.added", b"new xattr");
        sys::remove_xattr(&m.join("xattrs/user_small"), "user.comment");
        mount.unmount();

        e2fsck_clean(&image);

        let mount = Mount::ro(&image, case.fs_type);
        let m = mount.path();
        assert!(read_file(&m.join("new_file")) == new_data, "new_file content");
        let mut expected = read_file(&src.join("sizes/size_4097"));
        expected.extend_from_slice(&appended);
        assert!(read_file(&m.join("sizes/size_4097")) == expected, "appended file content");
        eqnice!("in a new directory\n", String::from_utf8_lossy(&read_file(&m.join("newdir/sub/file"))));
        assert_eq!(list_dir(&m.join("dirs/big")).len(), 200);
        assert!(!m.join("hardlinks/same_dir_link").exists());
        assert_eq!(std::fs::metadata(m.join("hardlinks/orig")).expect("stat").len(), 20);
        assert_eq!(sys::lstat(&m.join("hardlinks/orig")).expect("lstat").nlink, 3);
        eqnice!("mid", list_dir(&m.join("dirs/nested/a")).join(","));
        assert!(read_file(&m.join("newdir/renamed")) == read_file(&src.join("sizes/size_1")));
        assert!(!m.join("sizes/size_1").exists());
        assert!(
            read_file(&m.join("sizes/size_274433"))
                == read_file(&src.join("sizes/size_274433"))[..5000],
            "truncated file"
        );
        let hole = read_file(&m.join("holes/middle_hole"));
        assert_eq!(&hole[20_000..20_013], b"into the hole");
        assert_eq!(
            sys::get_xattr(&m.join("sizes/size_0"), "user.added").as_deref(),
            Some(&b"new xattr"[..])
        );
        assert_eq!(sys::get_xattr(&m.join("xattrs/user_small"), "user.comment"), None);
    }
);

kiln_test!(
    /// f: a fresh image grown to twice its size by resize2fs (no `-f`) stays
    /// clean and keeps every entry.
    resize2fs_grows_image,
    |case| {
        if !(require_mount() && require_tool("e2fsck") && require_tool("resize2fs")) {
            return;
        }
        let (src, snap) = full_source(&case);
        let image = case.path("image.img");
        case.build(&[&src], &image, &["--size", "64M"]);
        let before = e2fsck_clean(&image);

        std::fs::File::options()
            .write(true)
            .open(&image)
            .and_then(|f| f.set_len(128 << 20))
            .expect("truncate the image file to 128 MiB");
        let out = run(tool("resize2fs").arg(&image).arg("128M"));
        assert!(
            out.status.success(),
            "resize2fs refused a fresh image; if it asks for `e2fsck -f` first, the image's \
             last-check time is older than its last-mount time or its state is not clean \
             (mke2fs sets mount time 0 and the check time at creation): {}",
            describe(&out)
        );

        let after = e2fsck_clean(&image);
        assert_eq!(after.blocks, 2 * before.blocks, "block count after growing");
        assert_eq!(after.inodes_used, before.inodes_used);
        let mount = Mount::ro(&image, case.fs_type);
        snap.assert_image_matches(mount.path(), u64::from(case.block_size));
    }
);
