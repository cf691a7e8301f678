//! Issue 19 (readers): `kiln info`, `ls`, `cat`, `extract` and `verify` on
//! FAT images made by mkfs.fat + mcopy and by kiln-fat, plain and as a
//! GPT partition; hostile edits (chain loops, directory loops, escaping
//! names) refused cleanly, never a panic, nothing written outside DEST.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::helpers::*;

/// A source tree: long, short and unicode names, nested directories, a
/// file of many clusters, an empty file.
fn source(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    for (rel, data) in [
        ("README.TXT", b"readme\n".to_vec()),
        ("lower.txt", b"lower\n".to_vec()),
        ("Long Name With Spaces.md", b"long\n".to_vec()),
        ("ünïcødé ✓.txt", "ünïcødé\n".as_bytes().to_vec()),
        (
            "EFI/BOOT/BOOTX64.EFI",
            (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect(),
        ),
        ("EFI/BOOT/empty", Vec::new()),
        ("a/b/c/deep.txt", b"deep\n".to_vec()),
    ] {
        let path = src.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_file(&path, &data);
    }
    // Even seconds, in FAT's range: what mcopy keeps exactly.
    set_times(&src, 1_600_000_000);
    src
}

/// Sets the mtime and atime of everything under `dir` (children first).
fn set_times(dir: &Path, secs: i64) {
    let t = fs::FileTimes::new()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64))
        .set_accessed(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64));
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            set_times(&p, secs);
        }
        fs::File::options()
            .read(true)
            .open(&p)
            .unwrap()
            .set_times(t)
            .unwrap();
    }
}

/// Runs a FAT tool (mtools' checks off).
fn fat_tool(name: &str, args: &[&str]) -> Output {
    // UTF-8, so that mcopy stores the long names as they are.
    let out = run(tool(name)
        .args(args)
        .env("LC_ALL", "C.UTF-8")
        .env("MTOOLS_SKIP_CHECK", "1"));
    assert_success(&out, name);
    out
}

/// A FAT image of `src` made by mkfs.fat (`-F bits`, `kib` KiB, label
/// `KILNTEST`, id 1234ABCD) and mcopy; `None` if the tools are missing.
fn mkfs_image(dir: &Path, src: &Path, bits: &str, kib: &str) -> Option<PathBuf> {
    if !require_tool("mkfs.fat") || !require_tool("mcopy") {
        return None;
    }
    let image = dir.join(format!("fat{bits}.img"));
    let img = image.to_str().unwrap();
    fat_tool(
        "mkfs.fat",
        &[
            "-C", "-F", bits, "-n", "KILNTEST", "-i", "1234ABCD", img, kib,
        ],
    );
    let mut args = vec!["-i".to_string(), img.into(), "-s".into(), "-m".into()];
    for e in fs::read_dir(src).unwrap() {
        args.push(e.unwrap().path().to_str().unwrap().into());
    }
    args.push("::/".into());
    fat_tool(
        "mcopy",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    Some(image)
}

/// Every file and directory below `dir`: relative path → bytes (`None`
/// for a directory), sorted.
fn contents(dir: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(dir.join(&rel)).unwrap() {
            let e = e.unwrap();
            let rel = rel.join(e.file_name());
            let key = rel.to_str().unwrap().to_string();
            if e.file_type().unwrap().is_dir() {
                out.push((key, None));
                stack.push(rel);
            } else {
                out.push((key, Some(fs::read(e.path()).unwrap())));
            }
        }
    }
    out.sort();
    out
}

/// `kiln ARGS` that must succeed; its stdout.
fn ok(args: &[&std::ffi::OsStr]) -> Vec<u8> {
    let out = kiln(args);
    assert_success(&out, &format!("kiln {args:?}"));
    out.stdout
}

/// `kiln ARGS` that must fail cleanly (an error message, no panic).
fn refused(args: &[&std::ffi::OsStr]) -> String {
    let out = kiln(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "kiln {args:?} succeeded: {}",
        describe(&out)
    );
    assert!(!err.contains("panicked"), "kiln {args:?}: {err}");
    err
}

/// `args` as OS strings.
macro_rules! os {
    ($($a:expr),*) => { &[$(std::ffi::OsStr::new($a)),*] };
}

/// Every command on the image `image` (a path or `IMAGE:PART`) of `src`.
fn judge(image: &str, src: &Path, variant: &str, scratch: &Path) {
    let info = String::from_utf8(ok(os!("info", image))).unwrap();
    assert!(
        info.contains(&format!("Filesystem type: vfat ({variant})")),
        "{info}"
    );
    assert!(info.contains("Label: KILNTEST"), "{info}");
    assert!(info.contains("Volume id: 1234-ABCD"), "{info}");
    let json: serde_json::Value =
        serde_json::from_slice(&ok(os!("info", "--json", image))).unwrap();
    assert_eq!(json["variant"], variant);
    let (used, free, total) = (
        json["used_clusters"].as_u64().unwrap(),
        json["free_clusters"].as_u64().unwrap(),
        json["clusters"].as_u64().unwrap(),
    );
    assert!(used > 0 && used + free == total, "{json}");

    let ls = String::from_utf8(ok(os!("ls", image))).unwrap();
    assert_eq!(
        ls.lines().collect::<Vec<_>>(),
        [
            "EFI",
            "Long Name With Spaces.md",
            "README.TXT",
            "a",
            "lower.txt",
            "ünïcødé ✓.txt"
        ]
    );
    let long = String::from_utf8(ok(os!("ls", "-lR", image, "/EFI"))).unwrap();
    assert!(
        long.contains("d----          0 2020-09-13 12:26:40 BOOT\n"),
        "{long}"
    );
    assert!(
        long.contains("     200000 2020-09-13 12:26:40 BOOT/BOOTX64.EFI\n"),
        "{long}"
    );
    // FAT names are found without case.
    let cat = ok(os!("cat", image, "/efi/boot/bootx64.efi"));
    assert_eq!(cat, fs::read(src.join("EFI/BOOT/BOOTX64.EFI")).unwrap());
    assert_eq!(
        ok(os!("cat", image, "/ünïcødé ✓.txt")),
        "ünïcødé\n".as_bytes()
    );
    assert!(refused(os!("cat", image, "/EFI")).contains("not a regular file"));
    assert!(refused(os!("cat", image, "/nothing")).contains("no such file"));

    let dest = scratch.join("out");
    ok(os!("extract", image, "/", dest.to_str().unwrap()));
    assert_eq!(contents(&dest), contents(src));
    let mtime = fs::metadata(dest.join("a/b/c/deep.txt"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        mtime,
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000)
    );
    let sub = scratch.join("sub");
    ok(os!("extract", image, "/EFI/BOOT", sub.to_str().unwrap()));
    assert_eq!(list_dir(&sub), ["BOOTX64.EFI", "empty"]);

    let out = ok(os!("verify", image, "--against", src.to_str().unwrap()));
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
}

#[test]
fn mkfs_fat_images_of_every_variant() {
    for (bits, kib) in [("12", "4096"), ("16", "32768"), ("32", "65536")] {
        let dir = tempfile::tempdir().unwrap();
        let src = source(dir.path());
        let Some(image) = mkfs_image(dir.path(), &src, bits, kib) else {
            return;
        };
        judge(
            image.to_str().unwrap(),
            &src,
            &format!("FAT{bits}"),
            dir.path(),
        );
    }
}

#[test]
fn a_fat_partition_of_a_gpt_disk() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let Some(fat) = mkfs_image(dir.path(), &src, "16", "16384") else {
        return;
    };
    if !require_tool("sfdisk") {
        return;
    }
    let disk = dir.path().join("disk.img");
    let file = fs::File::create(&disk).unwrap();
    file.set_len(24 << 20).unwrap();
    let script = "label: gpt\nsize=16MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp\n";
    let mut cmd = tool("sfdisk");
    cmd.arg("--quiet")
        .arg(&disk)
        .stdin(std::process::Stdio::piped());
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), script.as_bytes()).unwrap();
    assert_success(&child.wait_with_output().unwrap(), "sfdisk");
    std::os::unix::fs::FileExt::write_all_at(&file, &fs::read(&fat).unwrap(), 1 << 20).unwrap();
    let whole = String::from_utf8(ok(os!("info", disk.to_str().unwrap()))).unwrap();
    assert!(whole.contains("Filesystem type: vfat (FAT16)"), "{whole}");
    let part = format!("{}:esp", disk.display());
    judge(&part, &src, "FAT16", dir.path());
    assert_eq!(
        ok(os!("ls", &format!("{}:1", disk.display()), "/a")),
        b"b\n"
    );
}

#[test]
fn kiln_fat_images_verify_and_differences_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let image = dir.path().join("kiln.img");
    let mut tree = kiln_tree::read_dir_tree(&src).unwrap();
    tree.finish();
    let opts = kiln_fat::FatOptions {
        variant: Some(kiln_fat::FatVariant::Fat32),
        label: Some("KILNTEST".into()),
        volume_id: Some(0x1234_ABCD),
        ..Default::default()
    };
    let plan = kiln_fat::plan(&tree, &opts).unwrap();
    let sink = kiln_sink::SparseFile::create(&image, plan.size(), true).unwrap();
    kiln_fat::emit(&plan, &sink).unwrap();
    sink.commit(kiln_sink::Durability::Writeback).unwrap();
    let img = image.to_str().unwrap();
    judge(img, &src, "FAT32", dir.path());
    // A changed source, a new one, a removed one: each a difference.
    write_file(&src.join("README.TXT"), b"changed\n");
    write_file(&src.join("new.txt"), b"new\n");
    fs::remove_file(src.join("lower.txt")).unwrap();
    let out = kiln(os!("verify", img, "--against", src.to_str().unwrap()));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("/README.TXT: size: image 7, source 8"),
        "{text}"
    );
    assert!(text.contains("/new.txt: missing from the image"), "{text}");
    assert!(
        text.contains("/lower.txt: in the image, not in the sources"),
        "{text}"
    );
}

/// The layout of a FAT12/16 image: (FAT offset, FAT bytes, FAT count,
/// root directory offset, first data cluster offset, cluster bytes).
fn layout(image: &Path) -> (u64, u64, u64, u64, u64, u64) {
    let b = fs::read(image).unwrap();
    let u16_at = |o: usize| u64::from(u16::from_le_bytes([b[o], b[o + 1]]));
    let (bps, spc, rsv, fats, root, fatsz) = (
        u16_at(11),
        u64::from(b[13]),
        u16_at(14),
        u64::from(b[16]),
        u16_at(17),
        u16_at(22),
    );
    let root_at = (rsv + fats * fatsz) * bps;
    (
        rsv * bps,
        fatsz * bps,
        fats,
        root_at,
        root_at + root * 32,
        spc * bps,
    )
}

/// Writes `bytes` at `at`.
fn patch(image: &Path, at: u64, bytes: &[u8]) {
    let f = fs::OpenOptions::new().write(true).open(image).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, bytes, at).unwrap();
}

/// The offset of the short entry named `short` in the root directory.
fn root_entry(image: &Path, short: &[u8; 11]) -> u64 {
    let (_, _, _, root, data, _) = layout(image);
    let b = fs::read(image).unwrap();
    let i = b[root as usize..data as usize]
        .chunks(32)
        .position(|e| &e[..11] == short)
        .unwrap();
    root + i as u64 * 32
}

#[test]
fn hostile_fat_images_are_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path());
    let Some(clean) = mkfs_image(dir.path(), &src, "16", "16384") else {
        return;
    };
    let fresh = |name: &str| {
        let p = dir.path().join(name);
        fs::copy(&clean, &p).unwrap();
        p
    };
    let (fat, fat_len, fats, _, _, _) = layout(&clean);
    let set_fat = |image: &Path, n: u64, v: u16| {
        for i in 0..fats {
            patch(image, fat + i * fat_len + n * 2, &v.to_le_bytes());
        }
    };
    let cluster_of = |image: &Path, short: &[u8; 11]| {
        let at = root_entry(image, short);
        let b = fs::read(image).unwrap();
        u64::from(u16::from_le_bytes([
            b[at as usize + 26],
            b[at as usize + 27],
        ]))
    };

    // A file whose chain loops: cat and extract refuse, verify too.
    let looped = fresh("loop.img");
    let efi = cluster_of(&looped, b"EFI        ");
    let big = {
        // The big file's first cluster: mcopy allocates in order, EFI's
        // directory then BOOT's, then BOOTX64.EFI.
        let r = kiln_fat::FatReader::open(&looped).unwrap();
        r.lookup(b"/EFI/BOOT/BOOTX64.EFI").unwrap().cluster as u64
    };
    assert!(efi > 0);
    set_fat(&looped, big + 1, big as u16);
    let img = looped.to_str().unwrap();
    assert!(refused(os!("cat", img, "/EFI/BOOT/BOOTX64.EFI")).contains("loops"));
    let dest = dir.path().join("dest");
    assert!(refused(os!("extract", img, "/", dest.to_str().unwrap())).contains("loops"));
    assert!(!dest.exists());
    let out = kiln(os!("verify", img, "--against", src.to_str().unwrap()));
    assert!(!out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("panicked"));

    // A directory that contains itself: ls -R, extract and verify refuse.
    let dirloop = fresh("dirloop.img");
    let a = cluster_of(&dirloop, b"A          ");
    let (_, _, _, _, data, cb) = layout(&dirloop);
    let a_dir = data + (a - 2) * cb;
    let b = fs::read(&dirloop).unwrap();
    let slot = b[a_dir as usize..(a_dir + cb) as usize]
        .chunks(32)
        .position(|e| &e[..11] == b"B          ")
        .unwrap();
    patch(
        &dirloop,
        a_dir + slot as u64 * 32 + 26,
        &(a as u16).to_le_bytes(),
    );
    let img = dirloop.to_str().unwrap();
    assert!(refused(os!("ls", "-R", img)).contains("reached twice"));
    assert!(refused(os!("extract", img, "/", dest.to_str().unwrap())).contains("reached twice"));
    assert!(!dest.exists());

    // Names that would leave DEST: refused, nothing written beside it.
    for (i, name) in [b"..         ", b"A/B        ", b"A\0B        "]
        .iter()
        .enumerate()
    {
        let bad = fresh(&format!("name{i}.img"));
        let at = root_entry(&bad, b"A          ");
        patch(&bad, at, *name);
        let sandbox = dir.path().join(format!("sandbox{i}"));
        fs::create_dir(&sandbox).unwrap();
        let dest = sandbox.join("dest");
        refused(os!(
            "extract",
            bad.to_str().unwrap(),
            "/",
            dest.to_str().unwrap()
        ));
        assert!(list_dir(&sandbox).is_empty(), "{:?}", list_dir(&sandbox));
    }

    // A bad boot sector: bytes per sector 0.
    let bpb = fresh("bpb.img");
    patch(&bpb, 11, &[0, 0]);
    let err = refused(os!("ls", bpb.to_str().unwrap()));
    assert!(
        err.contains("not an ext2/3/4 filesystem") || err.contains("BPB_BytsPerSec"),
        "{err}"
    );
    let bpb = fresh("spc.img");
    patch(&bpb, 13, &[3]);
    assert!(refused(os!("info", bpb.to_str().unwrap())).contains("BPB_SecPerClus is 3"));

    // Damage verify reports as inconsistencies: a lost cluster.
    let lost = fresh("lost.img");
    set_fat(&lost, 4000, 0xFFFF);
    let out = kiln(os!(
        "verify",
        lost.to_str().unwrap(),
        "--against",
        src.to_str().unwrap()
    ));
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("inconsistency: 1 clusters are allocated")
    );
}
