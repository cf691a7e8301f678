//! Issue 10, point 3: GRUB reads kiln's images. `grub-fstest` (GRUB's own
//! ext2 driver, the one that finds a kernel at boot) lists a directory and
//! reads files back from every image type kiln offers, and they match the
//! source. The one feature GRUB cannot read, inline_data, is refused by it
//! (the README says so).

use std::path::Path;

use crate::fixture;
use crate::helpers::*;

/// Every type kiln offers: ext2/3/4 at 1 KiB and 4 KiB blocks, and the ext4
/// feature edits of the feature matrix.
const IMAGE_TYPES: &[(&str, u32, &[&str])] = &[
    ("ext2", 1024, &[]),
    ("ext2", 4096, &[]),
    ("ext3", 1024, &[]),
    ("ext3", 4096, &[]),
    ("ext3", 4096, &["-O", "extent"]),
    ("ext4", 1024, &[]),
    ("ext4", 4096, &[]),
    ("ext4", 4096, &["-O", "^metadata_csum"]),
    ("ext4", 4096, &["-O", "^64bit"]),
    ("ext4", 4096, &["-O", "^flex_bg"]),
    ("ext4", 4096, &["-O", "^has_journal"]),
    ("ext4", 4096, &["-O", "^dir_index"]),
    ("ext4", 4096, &["-O", "large_dir"]),
    ("ext4", 4096, &["-O", "^metadata_csum,^64bit,^extent"]),
    ("ext4", 4096, &["-I", "128"]),
];

/// The files GRUB reads back: small, across block-map levels and extent
/// tree depths, and in a directory big enough for an htree index.
const FILES: &[(&str, usize)] = &[
    ("boot/vmlinuz", 3_000_000),
    ("boot/config", 5_000),
    ("etc/hostname", 5),
    ("big/f-0417", 417),
];

/// The source tree: [`FILES`], plus 600 more names in `big/` and a symlink.
fn source(root: &Path) {
    for (i, (path, len)) in FILES.iter().enumerate() {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).expect("mkdir");
        write_file(&path, &fixture::bytes(i as u64 + 7, *len));
    }
    for i in 0..600 {
        write_file(
            &root.join(format!("big/f-{i:04}")),
            format!("{i}\n").as_bytes(),
        );
    }
    std::os::unix::fs::symlink("vmlinuz", root.join("boot/vmlinuz.old")).expect("symlink");
}

/// `grub-fstest IMAGE ARGS...`.
fn grub_fstest(image: &Path, args: &[&str]) -> std::process::Output {
    run(tool("grub-fstest").arg(image).args(args))
}

/// What GRUB lists and reads of `image` matches `src`.
fn assert_grub_reads(image: &Path, src: &Path, what: &str) {
    let ls = grub_fstest(image, &["ls", "--", "-l", "/boot"]);
    assert_success(&ls, &format!("{what}: grub-fstest ls -l /boot"));
    let listing = String::from_utf8_lossy(&ls.stdout);
    for name in ["vmlinuz", "config", "vmlinuz.old"] {
        assert!(
            listing.split_whitespace().any(|w| w == name),
            "{what}: GRUB does not list /boot/{name}:\n{listing}"
        );
    }
    assert!(
        listing.contains("3000000"),
        "{what}: GRUB does not give vmlinuz's size:\n{listing}"
    );
    let big = grub_fstest(image, &["ls", "/big"]);
    assert_success(&big, &format!("{what}: grub-fstest ls /big"));
    let names = String::from_utf8_lossy(&big.stdout)
        .split_whitespace()
        .count();
    assert_eq!(names, 600, "{what}: GRUB lists {names} names in /big");
    for (path, _) in FILES {
        let cat = grub_fstest(image, &["cat", &format!("/{path}")]);
        assert_success(&cat, &format!("{what}: grub-fstest cat /{path}"));
        assert!(
            cat.stdout == read_file(&src.join(path)),
            "{what}: GRUB reads other bytes in /{path}"
        );
    }
}

/// 10.3: GRUB lists and reads every image type kiln offers.
#[test]
fn grub_reads_every_image_type() {
    if !require_tool("grub-fstest") {
        return;
    }
    for &(fs_type, block_size, extra) in IMAGE_TYPES {
        let case = Case::new(fs_type, block_size);
        let src = case.mkdir("src");
        source(&src);
        let image = case.path("image.img");
        case.build(&[&src], &image, extra);
        assert_grub_reads(&image, &src, &format!("{case} {}", extra.join(" ")));
    }
}

/// 10.3: inline_data is the one feature GRUB refuses (its ext2 driver does
/// not know the incompat flag): it must say so rather than read wrong bytes.
#[test]
fn grub_refuses_inline_data() {
    if !require_tool("grub-fstest") {
        return;
    }
    let case = Case::new("ext4", 4096);
    let src = case.mkdir("src");
    source(&src);
    let image = case.path("inline.img");
    case.build(&[&src], &image, &["-O", "inline_data"]);
    let cat = grub_fstest(&image, &["cat", "/etc/hostname"]);
    assert!(
        !cat.status.success(),
        "GRUB read an inline_data image; the README says it cannot: {}",
        describe(&cat)
    );
}
