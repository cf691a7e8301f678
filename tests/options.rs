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

/// The image `mke2fs -d` then `resize2fs -M` make of `src`: its size in
/// bytes (the minimum e2fsprogs can shrink that tree's filesystem to).
fn resize2fs_minimum(case: &Case, src: &std::path::Path, fs_type: &str) -> u64 {
    let image = case.path(&format!("mke2fs-{fs_type}.img"));
    let file = std::fs::File::create(&image).unwrap();
    file.set_len(512 << 20).unwrap();
    let out = run(tool("mke2fs")
        .args(["-q", "-F", "-t", fs_type, "-b", "4096", "-d"])
        .arg(src)
        .arg(&image));
    assert_success(&out, "mke2fs -d");
    assert_success(
        &run(tool("resize2fs").arg("-M").arg(&image)),
        "resize2fs -M",
    );
    number(&dumpe2fs_header(&image), "Block count") * 4096
}

/// Issue 8, point 3: `--size auto` is the smallest image that holds the
/// tree: never larger than what `resize2fs -M` shrinks an `mke2fs -d`
/// image of the same tree to, plus 2%, and never too small (it builds,
/// and e2fsck and verify pass: `Case::build` checks both). `--free` and
/// `--free-inodes` add exactly the headroom asked for.
fn auto_size_is_minimal(case: Case) {
    if !(require_tool("mke2fs") && require_tool("resize2fs")) {
        return;
    }
    let src = case.mkdir("src");
    fixture::full(&src, case.block_size);
    let snap = crate::compare::Snapshot::take(&[&src]);
    let image = case.path("auto.img");
    case.build(&[&src], &image, &["--size", "auto"]);
    e2fsck_clean(&image);
    let kiln = std::fs::metadata(&image).unwrap().len();
    if require_mount() {
        let mount = Mount::ro(&image, case.fs_type);
        snap.assert_image_matches(mount.path(), u64::from(case.block_size));
    }
    let minimum = resize2fs_minimum(&case, &src, case.fs_type);
    assert!(
        kiln * 100 <= minimum * 102,
        "--size auto made {kiln} bytes, resize2fs -M reaches {minimum}"
    );

    let roomy = case.path("free.img");
    case.build(
        &[&src],
        &roomy,
        &["--size", "auto", "--free", "8M", "--free-inodes", "300"],
    );
    e2fsck_clean(&roomy);
    let header = dumpe2fs_header(&roomy);
    assert!(
        number(&header, "Free blocks") * 4096 >= 8 << 20,
        "{header:#?}"
    );
    assert!(number(&header, "Free inodes") >= 300, "{header:#?}");
    // A percentage of the tree's blocks: at least half the blocks of its
    // files' data are free.
    let percent = case.path("percent.img");
    case.build(&[&src], &percent, &["--free", "50%"]);
    let free = number(&dumpe2fs_header(&percent), "Free blocks");
    let data = file_blocks(&src, 4096);
    assert!(
        free * 2 >= data,
        "--free 50%: {free} blocks free, files take {data}"
    );
}

/// The blocks of `block_size` bytes that the data of the files below
/// `dir` take on the host (holes take none).
fn file_blocks(dir: &std::path::Path, block_size: u64) -> u64 {
    let mut blocks = 0;
    for name in list_dir(dir) {
        let path = dir.join(name);
        let meta = path.symlink_metadata().expect("lstat");
        if meta.is_dir() {
            blocks += file_blocks(&path, block_size);
        } else if meta.is_file() {
            blocks += std::os::unix::fs::MetadataExt::blocks(&meta) * 512 / block_size;
        }
    }
    blocks
}

#[test]
fn auto_size_is_minimal_ext2() {
    auto_size_is_minimal(Case::new("ext2", 4096));
}

#[test]
fn auto_size_is_minimal_ext3() {
    auto_size_is_minimal(Case::new("ext3", 4096));
}

#[test]
fn auto_size_is_minimal_ext4() {
    auto_size_is_minimal(Case::new("ext4", 4096));
}

/// Issue 17 point 9: `--hash-alg`'s help told users it works "as mke2fs -E
/// hash_alg=", an option mke2fs refuses; it takes the hash from
/// mke2fs.conf. Both halves are checked against mke2fs itself, and the
/// superblocks agree.
#[test]
fn hash_alg_is_what_mke2fs_conf_sets() {
    let case = Case::new("ext4", 4096);
    if !(require_tool("mke2fs") && require_tool("dumpe2fs")) {
        return;
    }
    let help = kiln(["build", "--help"]);
    assert_success(&help, "kiln build --help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(!help.contains("-E hash_alg"), "{help}");
    assert!(help.contains("mke2fs.conf"), "{help}");

    let theirs = case.path("mke2fs.img");
    std::fs::File::create(&theirs)
        .and_then(|f| f.set_len(16 << 20))
        .expect("image file");
    let refused = run(tool("mke2fs")
        .args(["-q", "-F", "-E", "hash_alg=tea"])
        .arg(&theirs));
    assert!(!refused.status.success(), "mke2fs took -E hash_alg");
    let conf = case.path("mke2fs.conf");
    write_file(&conf, b"[defaults]\n\thash_alg = tea\n");
    let made = run(tool("mke2fs")
        .env("MKE2FS_CONFIG", &conf)
        .args(["-q", "-F", "-t", "ext4"])
        .arg(&theirs));
    assert_success(&made, "mke2fs with hash_alg = tea in mke2fs.conf");

    let src = case.mkdir("src");
    fixture::small(&src);
    let ours = case.path("kiln.img");
    case.build(&[&src], &ours, &["--hash-alg", "tea"]);
    let hash = |image| field(&dumpe2fs_header(image), "Default directory hash").to_string();
    assert_eq!(hash(&ours), "tea");
    assert_eq!(hash(&ours), hash(&theirs));
}

/// Issue 17 point 5: `--size auto` alone is the smallest image (almost no
/// free blocks or inodes), and the summary says so in a warning; with
/// `--free 20%`, a tree of many small files (an npm tree had 37,923 free
/// blocks and 37 free inodes) gets about 20 % more inodes as well, so the
/// room can be used. The summary prints both free counts, as dumpe2fs
/// reads them.
#[test]
fn auto_size_room_scales_inodes_and_warns() {
    let case = Case::new("ext4", 4096);
    if !require_tool("dumpe2fs") {
        return;
    }
    let src = case.mkdir("src");
    for d in 0..30 {
        let dir = src.join(format!("pkg{d}"));
        std::fs::create_dir(&dir).expect("mkdir");
        for f in 0..60 {
            write_file(
                &dir.join(format!("m{f}.js")),
                &fixture::bytes(d * 100 + f, 700),
            );
        }
    }
    let counts = |image: &std::path::Path| {
        let h = dumpe2fs_header(image);
        let inodes = number(&h, "Inode count");
        let free_inodes = number(&h, "Free inodes");
        (number(&h, "Free blocks"), inodes - free_inodes, free_inodes)
    };
    let summary = |out: &std::process::Output, image: &std::path::Path| {
        let (free_blocks, _, free_inodes) = counts(image);
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(text.contains(&format!("({free_blocks} free)")), "{text}");
        assert!(text.contains(&format!("({free_inodes} free)")), "{text}");
        text
    };

    let tight = case.path("tight.img");
    let out = run(case.build_command(&[&src], &tight).args(["--size", "auto"]));
    assert_success(&out, "kiln build --size auto");
    let text = summary(&out, &tight);
    assert!(
        text.contains("warning: ") && text.contains("almost full"),
        "{text}"
    );

    let roomy = case.path("roomy.img");
    let out = run(case
        .build_command(&[&src], &roomy)
        .args(["--size", "auto", "--free", "20%"]));
    assert_success(&out, "kiln build --size auto --free 20%");
    let text = summary(&out, &roomy);
    assert!(!text.contains("almost full"), "{text}");
    let (_, used, free_inodes) = counts(&roomy);
    assert!(
        free_inodes * 100 >= used * 19,
        "--free 20%: {free_inodes} free inodes for {used} used"
    );
    e2fsck_clean(&roomy);
}
