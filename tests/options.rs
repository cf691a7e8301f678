//! The documented defaults and options of `kiln build`, as dumpe2fs reads
//! them back from the superblock.

use std::collections::BTreeMap;

use crate::fixture;
use crate::helpers::*;

fn field<'a>(header: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    header
        .get(name)
        .unwrap_or_else(|| panic!("dumpe2fs -h has no {name:?}: {header:#?}"))
}

fn number(header: &BTreeMap<String, String>, name: &str) -> u64 {
    field(header, name)
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number: {header:#?}"))
}

/// Without options: ext3 (a journal), 4096-byte blocks, 256-byte inodes, 5 % reserved.
#[test]
fn defaults() {
    let case = Case::new("ext3", 4096);
    if !(require_tool("e2fsck") && require_tool("dumpe2fs")) {
        return;
    }
    let src = case.mkdir("src");
    fixture::small(&src);
    let image = case.path("image.img");
    let out = kiln([
        "build".as_ref(),
        src.as_os_str(),
        "-o".as_ref(),
        image.as_os_str(),
        "--size".as_ref(),
        "64M".as_ref(),
    ]);
    assert_success(&out, "kiln build with default options");
    e2fsck_clean(&image);
    let h = dumpe2fs_header(&image);
    assert!(
        field(&h, "Filesystem features")
            .split(' ')
            .any(|f| f == "has_journal"),
        "{h:#?}"
    );
    assert_eq!(number(&h, "Block size"), 4096);
    assert_eq!(number(&h, "Inode size"), 256);
    assert_eq!(number(&h, "Block count"), 16384);
    let reserved = number(&h, "Reserved block count") as f64 / 16384.0;
    assert!(
        (reserved - 0.05).abs() < 0.001,
        "reserved {reserved} instead of 5 %"
    );
    // One inode per 16384 bytes, rounded up to fill the inode tables.
    let inodes = number(&h, "Inode count");
    assert!(
        (4096..4096 + 4096 / 8).contains(&inodes),
        "{inodes} inodes for 64 MiB"
    );
}

kiln_test!(
    /// Label, UUID, hash seed, inode size and count, reserved blocks, journal
    /// size (ext3) and bytes per inode reach the superblock.
    options_reach_the_superblock,
    |case| {
        if !(require_tool("e2fsck") && require_tool("dumpe2fs")) {
            return;
        }
        let src = case.mkdir("src");
        fixture::small(&src);
        let image = case.path("image.img");
        let uuid = "0b7b6a2e-6d31-4b1e-9c1e-3a8f6f3c2d10";
        let seed = "94d9ad5d-f8b9-40ed-9cb3-fefd551885c0";
        let mut args = vec![
            "--size", "32M", "-L", "kiln-label", "-U", uuid, "--seed", seed, "-I", "128", "-N",
            "5000", "-m", "0",
        ];
        if case.fs_type == "ext3" {
            args.extend(["-J", "4M"]);
        }
        case.build(&[&src], &image, &args);
        e2fsck_clean(&image);
        let h = dumpe2fs_header(&image);
        assert_eq!(field(&h, "Filesystem volume name"), "kiln-label");
        assert_eq!(field(&h, "Filesystem UUID"), uuid);
        assert_eq!(field(&h, "Directory Hash Seed"), seed);
        assert_eq!(number(&h, "Inode size"), 128);
        assert_eq!(number(&h, "Block size"), u64::from(case.block_size));
        assert!(number(&h, "Inode count") >= 5000);
        assert_eq!(number(&h, "Reserved block count"), 0);
        let journal = field(&h, "Filesystem features").split(' ').any(|f| f == "has_journal");
        assert_eq!(journal, case.fs_type == "ext3", "journal presence for {case}");
        if journal {
            assert_eq!(field(&h, "Total journal size"), "4096k");
        }

        let dense = case.path("dense.img");
        case.build(&[&src], &dense, &["--size", "32M", "-i", "4096"]);
        e2fsck_clean(&dense);
        let h = dumpe2fs_header(&dense);
        assert!(number(&h, "Inode count") >= (32 << 20) / 4096, "-i 4096: {h:#?}");
    }
);
