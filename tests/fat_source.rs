//! Issue 24, FAT part: a FAT image (or a FAT partition of a GPT disk) as a
//! build source. Images made by mkfs.vfat and mcopy are rebuilt as ext4
//! (judged by `e2fsck -fn`, read back by `kiln extract` and `kiln ls`) and
//! as FAT, alone and under an overlay (judged by `fsck.fat -n` and mtools:
//! `mdir`, `mtype`, `mattrib`, `mcopy`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fat::{fsck_clean, judges, mtools, reads_back};
use crate::helpers::*;

/// The host tree copied into the FAT image: a subdirectory two deep, a
/// long name, a file of many clusters, a file made read-only and one made
/// hidden once copied (see [`fat_image`]). Times are whole even seconds,
/// which FAT keeps exactly.
fn source(root: &Path) -> PathBuf {
    let src = root.join("src");
    let files: &[(&str, Vec<u8>)] = &[
        ("hello.txt", b"hello\n".to_vec()),
        ("A rather long file name.text", b"long name\n".to_vec()),
        (
            "sub/deeper/big.bin",
            (0..100_000u32).map(|i| (i * 13 % 251) as u8).collect(),
        ),
        ("sub/note", b"in a subdirectory\n".to_vec()),
        ("READONLY.TXT", b"read-only\n".to_vec()),
        ("hidden.cfg", b"hidden\n".to_vec()),
        ("empty", Vec::new()),
    ];
    for (path, data) in files {
        let path = src.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_file(&path, data);
    }
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_614_834_368);
    let hello = std::fs::File::options()
        .write(true)
        .open(src.join("hello.txt"))
        .unwrap();
    hello.set_modified(when).unwrap();
    src
}

/// The tools that make and judge the images here; false after a skip
/// (outside CI).
fn tools() -> bool {
    judges() && require_tool("mkfs.vfat") && require_tool("mdir") && require_tool("mtype")
}

/// An mtools command in UTC (mtools keeps FAT times as local time).
fn mtools_utc(tool: &str) -> Command {
    let mut cmd = Command::new(tool);
    cmd.env("MTOOLS_SKIP_CHECK", "1").env("TZ", "UTC");
    cmd
}

/// A FAT image made by `mkfs.vfat` holding `src` (copied by `mcopy -s -m`,
/// times kept), `READONLY.TXT` made read-only and `hidden.cfg` hidden.
fn fat_image(src: &Path, image: &Path) {
    let out = run(Command::new("mkfs.vfat")
        .args(["-C", "-n", "SOURCE"])
        .arg(image)
        .arg("4096"));
    assert_success(&out, "mkfs.vfat");
    let img = image.to_str().unwrap();
    let mut copy = mtools_utc("mcopy");
    copy.args(["-i", img, "-s", "-m"]);
    for entry in std::fs::read_dir(src).unwrap() {
        copy.arg(entry.unwrap().path());
    }
    assert_success(&run(copy.arg("::/")), "mcopy -s");
    let attr = |flag: &str, path: &str| {
        let out = run(mtools_utc("mattrib").args(["-i", img, flag, path]));
        assert_success(&out, "mattrib");
    };
    attr("+r", "::/READONLY.TXT");
    attr("+h", "::/hidden.cfg");
}

/// `kiln build ARGS`, which must succeed; returns its standard error.
fn build(args: &[&str]) -> String {
    let mut all = vec!["build"];
    all.extend(args);
    let out = kiln(&all);
    assert_success(&out, &format!("kiln {all:?}"));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `kiln extract` restores the ext image's tree, and it equals `src`:
/// every name and byte (lost+found aside).
fn ext_holds(image: &Path, src: &Path, scratch: &Path) {
    let dest = scratch.join("extracted");
    let out = kiln([
        "extract",
        image.to_str().unwrap(),
        "/",
        dest.to_str().unwrap(),
    ]);
    assert_success(&out, "kiln extract");
    let diff = run(Command::new("diff")
        .args(["-r", "-x", "lost+found"])
        .arg(src)
        .arg(&dest));
    assert_success(&diff, "diff -r source extracted");
}

/// The `kiln ls -l` line of `name` in the root of `image`.
fn ls_line(image: &Path, name: &str) -> String {
    let out = kiln(["ls", "-l", image.to_str().unwrap(), "/"]);
    assert_success(&out, "kiln ls -l");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.ends_with(&format!(" {name}")))
        .unwrap_or_else(|| panic!("{name} not listed:\n{text}"))
        .to_string()
}

/// The entry lines of `mdir -a -/` (names, sizes, times of every
/// directory, hidden entries too), each with its directory's header,
/// sorted (mdir lists in on-disk order, which is each writer's own),
/// without what depends on the volume: its label, serial number and free
/// space.
fn mdir(image: &Path) -> Vec<(String, String)> {
    let out = mtools("mdir", image, 0, &["-a", "-/", "::/"]);
    assert_success(&out, "mdir");
    let mut dir = String::new();
    let mut lines = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if line.starts_with("Directory for ") {
            dir = line.to_string();
        } else if !line.contains("Volume") && !line.contains("bytes free") {
            lines.push((dir.clone(), line.to_string()));
        }
    }
    lines.sort();
    lines
}

/// `mattrib -/` of the whole volume: every path with its attributes, one
/// a line, sorted.
fn mattrib(image: &Path) -> Vec<String> {
    let out = mtools("mattrib", image, 0, &["-/", "::/"]);
    assert_success(&out, "mattrib");
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// Whether `attrs` ([`mattrib`]) shows READONLY.TXT read-only and
/// hidden.cfg hidden.
fn attributes_kept(attrs: &[String]) -> bool {
    let has = |line: &str| attrs.iter().any(|l| l == line);
    has("  A    R     ::/READONLY.TXT") && has("  A   H      ::/hidden.cfg")
}

#[test]
fn an_mtools_image_is_the_source_of_an_ext4_image() {
    if !tools() || !require_tool("e2fsck") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let fat = dir.path().join("fat.img");
    fat_image(&src, &fat);
    let image = dir.path().join("out.img");
    let (fat_arg, img) = (fat.to_str().unwrap(), image.to_str().unwrap());
    let err = build(&[fat_arg, "-o", img, "-t", "ext4"]);
    assert!(
        err.contains("DOS attributes are FAT's"),
        "hidden.cfg: {err}"
    );
    e2fsck_clean(&image);
    ext_holds(&image, &src, dir.path());
    // FAT's read-only is a mode no one may write; times are kept; FAT has
    // no owners.
    assert!(
        ls_line(&image, "READONLY.TXT").starts_with("-r--r--r--     0     0 "),
        "{}",
        ls_line(&image, "READONLY.TXT")
    );
    let hello = ls_line(&image, "hello.txt");
    assert!(hello.starts_with("-rw-r--r--     0     0 "), "{hello}");
    assert!(hello.contains(" 2021-03-04 05:06:08 "), "{hello}");
    assert!(ls_line(&image, "sub").starts_with("drwxr-xr-x "));
}

#[test]
fn a_fat_image_rebuilt_as_fat_keeps_names_bytes_times_and_attributes() {
    if !tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let fat = dir.path().join("fat.img");
    fat_image(&src, &fat);
    let image = dir.path().join("out.img");
    build(&[
        fat.to_str().unwrap(),
        "-o",
        image.to_str().unwrap(),
        "-t",
        "vfat",
    ]);
    fsck_clean(&image);
    assert_eq!(mdir(&image), mdir(&fat));
    assert_eq!(mattrib(&image), mattrib(&fat));
    let attrs = mattrib(&image);
    assert!(attributes_kept(&attrs), "{attrs:#?}");
    let long = mtools("mtype", &image, 0, &["::/A rather long file name.text"]);
    assert_success(&long, "mtype");
    assert_eq!(long.stdout, b"long name\n");
    reads_back(&image, 0, &src, dir.path());

    // The issue's case: the image with a directory laid over it.
    let overlay = dir.path().join("overlay");
    std::fs::create_dir_all(overlay.join("sub")).unwrap();
    write_file(&overlay.join("hello.txt"), b"replaced\n");
    write_file(&overlay.join("sub/added.txt"), b"added\n");
    let merged = dir.path().join("merged.img");
    let (fat_arg, overlay_arg) = (fat.to_str().unwrap(), overlay.to_str().unwrap());
    build(&[
        fat_arg,
        overlay_arg,
        "-o",
        merged.to_str().unwrap(),
        "-t",
        "vfat",
    ]);
    fsck_clean(&merged);
    write_file(&src.join("hello.txt"), b"replaced\n");
    write_file(&src.join("sub/added.txt"), b"added\n");
    reads_back(&merged, 0, &src, &dir.path().join("merged"));
    let attrs = mattrib(&merged);
    assert!(attributes_kept(&attrs), "{attrs:#?}");
}

#[test]
fn a_fat_partition_of_a_gpt_disk_is_a_source() {
    if !tools() || !require_tool("e2fsck") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let layout = dir.path().join("disk.toml");
    write_file(
        &layout,
        b"[[partition]]\nlabel = \"esp\"\ntype = \"esp\"\nsize = \"auto\"\n\
          [partition.filesystem]\nsources = [\"src\"]\n\
          [[partition]]\nlabel = \"data\"\ntype = \"linux-generic\"\nsize = \"4M\"\n",
    );
    let disk = dir.path().join("disk.img");
    let (layout_arg, disk_arg) = (layout.to_str().unwrap(), disk.to_str().unwrap());
    build(&["--config", layout_arg, "-o", disk_arg]);

    let image = dir.path().join("out.img");
    let part = format!("{disk_arg}:1");
    build(&[&part, "-o", image.to_str().unwrap(), "-t", "ext4"]);
    e2fsck_clean(&image);
    ext_holds(&image, &src, dir.path());
    let hello = ls_line(&image, "hello.txt");
    assert!(hello.contains(" 2021-03-04 05:06:08 "), "{hello}");

    // By label, rebuilt as FAT.
    let fat = dir.path().join("esp.img");
    let part = format!("{disk_arg}:esp");
    build(&[&part, "-o", fat.to_str().unwrap(), "-t", "vfat"]);
    fsck_clean(&fat);
    reads_back(&fat, 0, &src, dir.path());
}
