//! Issue 20: dm-verity hash trees written with the image, judged by
//! `veritysetup verify` and against `veritysetup format`'s bytes.

use std::path::{Path, PathBuf};

use crate::fixture;
use crate::helpers::*;

/// A small tree: a directory, small files, one of several blocks (made
/// once per case).
fn source(case: &Case) -> PathBuf {
    if case.path("src").exists() {
        return case.path("src");
    }
    let src = case.mkdir("src");
    std::fs::create_dir(src.join("etc")).unwrap();
    write_file(&src.join("etc/hostname"), b"kiln\n");
    write_file(&src.join("big.bin"), &fixture::bytes(20, 300_000));
    for i in 0..20 {
        write_file(&src.join(format!("f{i}")), format!("file {i}\n").as_bytes());
    }
    src
}

/// Whether the judges are here: veritysetup (cryptsetup-bin) and zstd.
fn judges() -> bool {
    require_tool("veritysetup") && require_tool("zstd")
}

/// `kiln build SRC -o IMAGE -t TYPE -b BS --verity VERITY EXTRA --report`;
/// returns the report's `verity` object.
fn build(case: &Case, image: &Path, verity: &str, extra: &[&str]) -> serde_json::Value {
    let src = source(case);
    let report = case.path("report.json");
    let out = run(case
        .build_command(&[&src], image)
        .args(["--verity", verity, "--force", "--report"])
        .arg(&report)
        .args(extra));
    assert_success(&out, &format!("kiln build --verity ({case})"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("root hash") && stderr.contains("veritysetup open"),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&read_file(&report)).unwrap();
    json["verity"].clone()
}

/// `veritysetup verify DATA HASH ROOT ARGS`.
fn verify(data: &Path, hash: &Path, root: &str, args: &[String]) -> std::process::Output {
    run(tool("veritysetup")
        .arg("verify")
        .arg(data)
        .arg(hash)
        .arg(root)
        .args(args))
}

/// The root hash of a report.
fn root(v: &serde_json::Value) -> String {
    v["root_hash"].as_str().unwrap().to_string()
}

/// `--hash-offset` of an appended tree.
fn offset_arg(v: &serde_json::Value) -> Vec<String> {
    vec![format!("--hash-offset={}", v["hash_offset"])]
}

/// Flips one bit at `at` of `path`.
fn flip(path: &Path, at: usize) {
    let mut bytes = read_file(path);
    bytes[at] ^= 1;
    write_file(path, &bytes);
}

/// ext2/3/4 at 1 KiB and 4 KiB blocks, the tree in its own file with a
/// derived salt: veritysetup verifies it, e2fsck finds the filesystem
/// clean, read-only and (unasked) without a journal.
#[test]
fn separate_trees_verify_for_every_ext_type() {
    if !judges() {
        return;
    }
    for fs_type in ["ext2", "ext3", "ext4"] {
        for bs in [1024, 4096] {
            let case = Case::new(fs_type, bs);
            let (image, hash) = (case.path("root.img"), case.path("root.verity"));
            let v = build(&case, &image, hash.to_str().unwrap(), &[]);
            assert_eq!(v["salt"].as_str().unwrap().len(), 64, "{v}");
            let out = verify(&image, &hash, &root(&v), &[]);
            assert_success(&out, &format!("veritysetup verify ({case})"));
            e2fsck_clean(&image);
            let header = dumpe2fs_header(&image);
            let features = &header["Filesystem features"];
            assert!(features.contains("read-only"), "{case}: {features}");
            assert!(!features.contains("has_journal"), "{case}: {features}");
        }
    }
}

/// The tree appended to the image, for ext4 and FAT: verified at the
/// reported offset, which is a multiple of 4096 past the filesystem.
#[test]
fn appended_trees_verify() {
    if !judges() {
        return;
    }
    for (fs_type, bs) in [("ext4", 4096), ("ext2", 1024), ("vfat", 4096)] {
        let case = Case::new(fs_type, bs);
        let image = case.path("root.img");
        let v = build(&case, &image, "append", &[]);
        let offset = v["hash_offset"].as_u64().unwrap();
        assert_eq!(offset % 4096, 0);
        assert_eq!(offset, v["data_blocks"].as_u64().unwrap() * 4096);
        let out = verify(&image, &image, &root(&v), &offset_arg(&v));
        assert_success(&out, &format!("veritysetup verify --hash-offset ({case})"));
        let cmd = v["veritysetup_open"].as_str().unwrap();
        assert!(cmd.contains(&format!("--hash-offset={offset}")), "{cmd}");
    }
}

/// FAT with the tree in its own file, judged by fsck.fat too.
#[test]
fn fat_tree_verifies() {
    if !(judges() && require_tool("fsck.fat")) {
        return;
    }
    // FAT32 with 512-byte clusters: the verity blocks span several.
    for (fs_type, cluster) in [("fat16", 4096), ("fat32", 512)] {
        let case = Case::new(fs_type, cluster);
        let (image, hash) = (case.path("esp.img"), case.path("esp.verity"));
        let size: &[&str] = if fs_type == "fat32" {
            &["--size", "40M"]
        } else {
            &[]
        };
        let v = build(&case, &image, hash.to_str().unwrap(), size);
        assert_success(
            &verify(&image, &hash, &root(&v), &[]),
            "veritysetup verify (FAT)",
        );
        assert_success(&run(tool("fsck.fat").arg("-n").arg(&image)), "fsck.fat");
    }
}

/// With the salt and UUID given, the hash area is byte for byte what
/// `veritysetup format` writes for the same image, separate and appended,
/// with and without a superblock.
#[test]
fn hash_area_is_veritysetups() {
    if !judges() {
        return;
    }
    let salt = "5a".repeat(32);
    let uuid = "0e2a3d4c-1b5f-4a6e-8d7c-9f0a1b2c3d4e";
    let given = ["--verity-salt", &salt, "--verity-uuid", uuid];
    let case = Case::new("ext4", 4096);
    let (image, hash) = (case.path("root.img"), case.path("root.verity"));
    let v = build(&case, &image, hash.to_str().unwrap(), &given);
    assert_eq!(v["salt"].as_str().unwrap(), salt);
    let theirs = case.path("theirs.verity");
    let out = run(tool("veritysetup")
        .arg("format")
        .arg(&image)
        .arg(&theirs)
        .arg(format!("--salt={salt}"))
        .arg(format!("--uuid={uuid}")));
    assert_success(&out, "veritysetup format");
    assert_eq!(
        read_file(&hash),
        read_file(&theirs),
        "separate hash area differs"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&root(&v)), "root hash differs: {text}");

    // No superblock, into a new file (veritysetup does not truncate one).
    let theirs = case.path("theirs-nosb.verity");
    let v = build(
        &case,
        &image,
        hash.to_str().unwrap(),
        &[&given[..], &["--verity-no-superblock"]].concat(),
    );
    let out = run(tool("veritysetup")
        .arg("format")
        .arg(&image)
        .arg(&theirs)
        .arg("--no-superblock")
        .arg(format!("--salt={salt}")));
    assert_success(&out, "veritysetup format --no-superblock");
    assert_eq!(
        read_file(&hash),
        read_file(&theirs),
        "hash area without superblock differs"
    );
    let blocks = v["data_blocks"].to_string();
    let args = [
        "--no-superblock".into(),
        format!("--salt={salt}"),
        format!("--data-blocks={blocks}"),
    ];
    assert_success(
        &verify(&image, &hash, &root(&v), &args),
        "verify --no-superblock",
    );

    // Appended: veritysetup formats a copy of the data part in place.
    let appended = case.path("appended.img");
    let v = build(&case, &appended, "append", &given);
    let offset = v["hash_offset"].as_u64().unwrap() as usize;
    let ours = read_file(&appended);
    let copy = case.path("copy.img");
    write_file(&copy, &ours[..offset]);
    let out = run(tool("veritysetup")
        .arg("format")
        .arg(&copy)
        .arg(&copy)
        .arg(format!("--hash-offset={offset}"))
        .arg(format!("--data-blocks={}", offset / 4096))
        .arg(format!("--salt={salt}"))
        .arg(format!("--uuid={uuid}")));
    assert_success(&out, "veritysetup format --hash-offset");
    assert_eq!(
        ours,
        read_file(&copy),
        "appended image differs from veritysetup's"
    );
}

/// zstd-compressed and standard-output images: the tree is hashed from
/// the stream's writes, appended or in a file.
#[test]
fn streamed_outputs_verify() {
    if !judges() {
        return;
    }
    let case = Case::new("ext4", 4096);
    let zst = case.path("root.img.zst");
    let v = build(&case, &zst, "append", &[]);
    let raw = case.path("root.img");
    assert_success(
        &run(tool("zstd")
            .args(["-d", "-q", "-f"])
            .arg(&zst)
            .arg("-o")
            .arg(&raw)),
        "zstd -d",
    );
    assert_success(
        &verify(&raw, &raw, &root(&v), &offset_arg(&v)),
        "verify of the .zst",
    );

    let hash = case.path("stdout.verity");
    let out = run(kiln_command()
        .arg("build")
        .arg(source_dir(&case))
        .args(["-o", "-", "--verity"])
        .arg(&hash));
    assert_success(&out, "kiln build -o - --verity FILE");
    let image = case.path("stdout.img");
    write_file(&image, &out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let root_hash = stderr
        .split("root hash ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .expect("a root hash printed");
    assert_success(
        &verify(&image, &hash, root_hash, &[]),
        "verify of stdout's image",
    );
}

/// The tree's source directory of `case` (made by the first build).
fn source_dir(case: &Case) -> PathBuf {
    case.path("src")
}

/// One flipped byte of the data or of the hash area fails verification.
#[test]
fn a_flipped_byte_fails() {
    if !judges() {
        return;
    }
    let case = Case::new("ext4", 4096);
    let (image, hash) = (case.path("root.img"), case.path("root.verity"));
    let v = build(&case, &image, hash.to_str().unwrap(), &[]);
    assert_success(&verify(&image, &hash, &root(&v), &[]), "verify before");
    // A block of the data nobody wrote (zeros), then the superblock's.
    let size = std::fs::metadata(&image).unwrap().len() as usize;
    for at in [size - 100, 1024 + 0x40] {
        flip(&image, at);
        assert!(
            !verify(&image, &hash, &root(&v), &[]).status.success(),
            "data flip at {at} passed"
        );
        flip(&image, at);
    }
    // The last hash block (level 0).
    let hash_len = std::fs::metadata(&hash).unwrap().len() as usize;
    flip(&hash, hash_len - 4096);
    assert!(
        !verify(&image, &hash, &root(&v), &[]).status.success(),
        "hash flip passed"
    );
}

/// The same inputs give the same image, tree and root hash; a journal
/// asked for is kept, with a warning.
#[test]
fn same_inputs_same_tree_and_journal_warning() {
    if !judges() {
        return;
    }
    let case = Case::new("ext4", 4096);
    let src = source(&case);
    let mut roots = Vec::new();
    let mut bytes = Vec::new();
    for name in ["a", "b"] {
        let image = case.path(&format!("{name}.img"));
        let out = run(case
            .build_command(&[&src], &image)
            .args(["--verity", "append"])
            .env("SOURCE_DATE_EPOCH", "1700000000"));
        assert_success(&out, "kiln build --verity append");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        roots.push(
            stderr
                .split("root hash ")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .to_string(),
        );
        bytes.push(read_file(&image));
    }
    assert_eq!(roots[0], roots[1]);
    assert!(bytes[0] == bytes[1], "two builds differ");

    let image = case.path("journal.img");
    let out = run(case
        .build_command(&[&src], &image)
        .args(["-O", "has_journal", "--verity"])
        .arg(case.path("journal.verity")));
    assert_success(&out, "kiln build -O has_journal --verity");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("journal"),
        "{}",
        describe(&out)
    );
    assert!(dumpe2fs_header(&image)["Filesystem features"].contains("has_journal"));
    e2fsck_clean(&image);
}
