//! Issue 19: `kiln build -t vfat|fat12|fat16|fat32` and FAT partitions of a
//! layout, judged by `fsck.fat -n` and mtools (`mcopy -s` reads every file
//! back, `mattrib` shows the `attr` lines' attributes); ext-only flags are
//! refused naming the flag; the same inputs give the same bytes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::*;

/// A source tree with what FAT images must get right: long and short
/// names, mixed case, a 0-byte file, a one-cluster file, a many-cluster
/// file with a hole, nested and larger directories.
fn source(root: &Path) -> PathBuf {
    let src = root.join("src");
    let files: &[(&str, Vec<u8>)] = &[
        (
            "EFI/BOOT/BOOTX64.EFI",
            (0..300_000u32).map(|i| (i * 7) as u8).collect(),
        ),
        ("loader/loader.conf", b"default kiln.conf\n".to_vec()),
        ("loader/entries/kiln.conf", b"title kiln\n".to_vec()),
        ("empty", Vec::new()),
        ("One Cluster.TXT", vec![b'x'; 512]),
        ("README", b"short name\n".to_vec()),
        ("lower.txt", b"lower-case 8.3 name\n".to_vec()),
        ("a name with spaces and a long tail.conf", b"lfn\n".to_vec()),
    ];
    for (path, data) in files {
        let path = src.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_file(&path, data);
    }
    let holey = std::fs::File::create(src.join("holey.bin")).unwrap();
    holey.set_len(200_000).unwrap();
    std::fs::create_dir_all(src.join("many")).unwrap();
    for i in 0..300 {
        write_file(
            &src.join(format!("many/file-{i:03}.txt")),
            format!("{i}\n").as_bytes(),
        );
    }
    src
}

/// The tools the tests judge with; false after a skip (outside CI).
pub(crate) fn judges() -> bool {
    ["fsck.fat", "mcopy", "mattrib"]
        .iter()
        .all(|t| require_tool(t))
}

/// An mtools command on `image` (at byte `offset`), its configuration
/// check off (kiln's geometry is not a floppy's).
pub(crate) fn mtools(tool: &str, image: &Path, offset: u64, args: &[&str]) -> std::process::Output {
    let target = format!("{}@@{offset}", image.display());
    run(Command::new(tool)
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-i", &target])
        .args(args))
}

/// `fsck.fat -n` finds nothing to fix in `image`.
pub(crate) fn fsck_clean(image: &Path) {
    let out = run(Command::new("fsck.fat").arg("-n").arg(image));
    assert_success(&out, "fsck.fat -n");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("Free cluster summary") && !text.to_lowercase().contains("wrong"),
        "{text}"
    );
}

/// mtools copies the whole volume out, and it equals `src`, names and bytes.
pub(crate) fn reads_back(image: &Path, offset: u64, src: &Path, scratch: &Path) {
    let out_dir = scratch.join("mcopy");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    let dest = format!("{}/", out_dir.display());
    let out = mtools("mcopy", image, offset, &["-s", "-n", "-p", "::/*", &dest]);
    assert_success(&out, "mcopy -s");
    let diff = run(Command::new("diff").arg("-r").arg(src).arg(&out_dir));
    assert_success(&diff, "diff -r source mcopy");
}

#[test]
fn every_variant_is_fsck_clean_and_reads_back() {
    if !judges() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    for (fs_type, size, want) in [
        ("vfat", None, "fat12"),
        ("fat12", Some("4M"), "fat12"),
        ("fat16", Some("32M"), "fat16"),
        ("fat32", Some("64M"), "fat32"),
        ("vfat", Some("600M"), "fat32"),
    ] {
        let image = dir.path().join(format!("{fs_type}.img"));
        let mut args = vec![
            "build",
            "-t",
            fs_type,
            "-o",
            image.to_str().unwrap(),
            "--force",
        ];
        args.extend(size.map(|s| ["--size", s]).into_iter().flatten());
        args.push(src.to_str().unwrap());
        let out = kiln(&args);
        assert_success(&out, fs_type);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("): {want}, ")) && err.contains("clusters of"),
            "{fs_type}: {err}"
        );
        assert!(err.contains("FAT keeps no owners"), "{err}");
        fsck_clean(&image);
        reads_back(&image, 0, &src, dir.path());
    }
}

#[test]
fn same_inputs_give_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let build = |name: &str, threads: &str| {
        let image = dir.path().join(name);
        let out = kiln_command()
            .env("RAYON_NUM_THREADS", threads)
            .args(["build", "-t", "vfat", "-L", "ESP", "-o"])
            .arg(&image)
            .arg(&src)
            .output()
            .unwrap();
        assert_success(&out, name);
        read_file(&image)
    };
    let one = build("a.img", "1");
    assert_eq!(
        one,
        build("b.img", "2"),
        "the same tree, other thread counts"
    );
    // The volume id is derived from the tree: another tree, another id.
    write_file(&src.join("README"), b"changed\n");
    let other = build("c.img", "1");
    assert_ne!(one[39..43], other[39..43].to_vec(), "volume id (FAT12 BPB)");
}

#[test]
fn given_label_volume_id_cluster_size_and_attributes_are_kept() {
    if !judges() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let image = dir.path().join("esp.img");
    let out = kiln([
        "build",
        src.to_str().unwrap(),
        "-t",
        "fat16",
        "--size",
        "40M",
        "-b",
        "4096",
        "-L",
        "My Esp",
        "-U",
        "1234-abcd",
        "-p",
        "attr /EFI/BOOT/BOOTX64.EFI system hidden readonly",
        "-p",
        "?attr /nothing/** hidden",
        "-o",
        image.to_str().unwrap(),
    ]);
    assert_success(&out, "kiln build -t fat16");
    fsck_clean(&image);
    let info = run(Command::new("fsck.fat").args(["-n", "-v"]).arg(&image));
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(text.contains("4096 bytes per cluster"), "{text}");
    let mdir = mtools("mdir", &image, 0, &["::/"]);
    let text = String::from_utf8_lossy(&mdir.stdout);
    assert!(text.contains("Volume Serial Number is 1234-ABCD"), "{text}");
    assert!(text.contains("Volume in drive : is MY ESP"), "{text}");
    let attrs = mtools(
        "mattrib",
        &image,
        0,
        &["::/EFI/BOOT/BOOTX64.EFI", "::/README"],
    );
    let text = String::from_utf8_lossy(&attrs.stdout);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.contains(name))
            .unwrap_or_default()
            .to_string()
    };
    let efi = line("BOOTX64.EFI");
    assert!(
        ["S", "H", "R"].iter().all(|a| efi[..10].contains(a)),
        "{text}"
    );
    assert!(!line("README")[..10].contains('S'), "{text}");
}

#[test]
fn what_fat_cannot_take_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    write_file(&src.join("f"), b"x");
    let image = dir.path().join("out.img");
    let refused = |args: &[&str], want: &str| {
        let mut all = vec!["build", "-o", image.to_str().unwrap()];
        all.extend(args);
        all.push(src.to_str().unwrap());
        let out = kiln(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want),
            "{args:?}: {err}"
        );
        assert!(!image.exists(), "{args:?} left {}", image.display());
    };
    refused(&["-t", "vfat", "-O", "^64bit"], "-O: an ext option");
    refused(&["-t", "fat32", "-J", "4"], "-J: an ext option");
    refused(&["-t", "fat16", "-I", "128"], "-I: an ext option");
    refused(
        &["-t", "vfat", "-U", "not-an-id"],
        "-U: \"not-an-id\" is not a FAT volume id",
    );
    refused(
        &["-t", "ext4", "-U", "1234-ABCD"],
        "-U: \"1234-ABCD\" is not a UUID",
    );
    refused(&["-t", "vfat", "-b", "3000"], "cluster size 3000");
    refused(&["-t", "vfat", "-L", "way too long label"], "label");
    refused(
        &["-t", "vfat", "--size", "auto", "--free-inodes", "5"],
        "FAT has no inodes",
    );
    refused(&["-t", "fat12", "--size", "512M"], "FAT12");
    refused(
        &["-t", "vfat", "-p", "symlink /l 0777 0 0 f"],
        "/l: FAT cannot hold a symbolic link",
    );
    refused(
        &["-t", "vfat", "-p", "file /a:b 0644 0 0 text x"],
        "/a:b: FAT cannot hold this name",
    );
    refused(
        &["-t", "vfat", "-p", "file /F 0644 0 0 text x"],
        "differs only in case",
    );
    refused(
        &["-t", "vfat", "-p", "attr /f archive"],
        "not a DOS attribute",
    );
}

#[test]
fn an_ext_image_says_it_ignored_dos_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("e.img");
    let out = kiln([
        "build",
        "-t",
        "ext4",
        "-p",
        "file /f 0644 0 0 text x",
        "-p",
        "attr /f hidden",
        "-o",
        image.to_str().unwrap(),
    ]);
    assert_success(&out, "ext4 with an attr line");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DOS attributes are FAT's"), "{err}");
}

#[test]
fn an_esp_with_sources_is_a_fat_partition() {
    if !judges() || !require_tool("sgdisk") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    write_file(&root.join("hello"), b"hi\n");
    let layout = dir.path().join("disk.toml");
    write_file(
        &layout,
        b"[[partition]]\nlabel = \"esp\"\ntype = \"esp\"\nsize = \"auto\"\nfree = \"2M\"\n\
          [partition.filesystem]\nsources = [\"src\"]\nlabel = \"ESP\"\n\
          spec_line = [\"attr /EFI/BOOT/BOOTX64.EFI system\"]\n\
          [[partition]]\nlabel = \"root\"\ntype = \"root-x86-64\"\n\
          [partition.filesystem]\nsources = [\"root\"]\n",
    );
    let image = dir.path().join("disk.img");
    let report = dir.path().join("report.json");
    let out = kiln([
        "build",
        "--config",
        layout.to_str().unwrap(),
        "-o",
        image.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_success(&out, "kiln build --config");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let esp = &json["partitions"][0];
    assert_eq!(esp["filesystem"]["fs_type"], "fat12", "{json}");
    let offset = esp["offset"].as_u64().unwrap();
    let size = esp["size"].as_u64().unwrap();
    // The volume alone, for fsck.fat (which takes no offset).
    let bytes = read_file(&image);
    let volume = dir.path().join("esp.img");
    write_file(&volume, &bytes[offset as usize..(offset + size) as usize]);
    fsck_clean(&volume);
    // BPB_HiddSec: the sectors before the partition.
    let hidden = u32::from_le_bytes(bytes[offset as usize + 28..][..4].try_into().unwrap());
    assert_eq!(u64::from(hidden), offset / 512);
    reads_back(&image, offset, &src, dir.path());
    let sgdisk = run(Command::new("sgdisk").arg("-v").arg(&image));
    assert_success(&sgdisk, "sgdisk -v");
}

#[test]
fn verify_proves_a_clamped_build_and_finds_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let image = dir.path().join("v.img");
    let with_epoch = |args: &[&str]| {
        kiln_command()
            .env("SOURCE_DATE_EPOCH", "1700000001")
            .args(args)
            .output()
            .unwrap()
    };
    let (img, src_arg) = (image.to_str().unwrap(), src.to_str().unwrap());
    let out = with_epoch(&["build", "-t", "fat32", "--size", "40M", "-o", img, src_arg]);
    assert_success(&out, "kiln build -t fat32");
    let verified = with_epoch(&["verify", img, "--against", src_arg]);
    assert_success(&verified, "kiln verify");
    write_file(&src.join("README"), b"changed\n");
    let verified = with_epoch(&["verify", img, "--against", src_arg]);
    let text = String::from_utf8_lossy(&verified.stdout).into_owned()
        + &String::from_utf8_lossy(&verified.stderr);
    assert!(
        !verified.status.success() && text.contains("/README"),
        "{text}"
    );
}
