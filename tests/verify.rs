//! Issue 5, points 3 and 5: `kiln verify` passes on what the writer builds
//! (every `Case::build` in the other tests also runs it) and reports each
//! kind of damage made with `debugfs -w` or by flipping bytes: file data, a
//! mode, a removed xattr, a link count, a block bitmap. Partitioned disk
//! images (made with sfdisk) work through `IMAGE:PART` for every command.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::fixture;
use crate::helpers::*;
use crate::sys;

/// A tree with a file that has data and an xattr, a hard link and a
/// subdirectory.
fn source(case: &Case) -> PathBuf {
    let src = case.mkdir("src");
    std::fs::create_dir_all(src.join("dir/sub")).expect("mkdir");
    write_file(&src.join("data"), &fixture::bytes(7, 50_000));
    write_file(&src.join("dir/note"), b"a note\n");
    std::fs::hard_link(src.join("data"), src.join("dir/data-link")).expect("link");
    sys::set_xattr(&src.join("dir/note"), "user.colour", b"blue");
    src
}

/// Runs `kiln verify IMAGE --against SRC` and returns its output.
fn verify(image: &Path, src: &Path) -> Output {
    verify_with(image, src, &[])
}

/// Runs `kiln verify IMAGE FLAGS... --against SRC` and returns its output.
fn verify_with(image: &Path, src: &Path, flags: &[&str]) -> Output {
    run(kiln_command()
        .arg("verify")
        .arg(image)
        .args(flags)
        .arg("--against")
        .arg(src))
}

/// Asserts that verify fails and that its report mentions each of `words`.
fn assert_reported(out: &Output, words: &[&str]) {
    let text = describe(out);
    assert_eq!(out.status.code(), Some(1), "verify should exit 1: {text}");
    for w in words {
        assert!(text.contains(w), "verify did not report {w:?}: {text}");
    }
}

/// Changes the image with `debugfs -w -R REQUEST`.
fn debugfs_write(image: &Path, request: &str) {
    let out = run(tool("debugfs").args(["-w", "-R", request]).arg(image));
    assert_success(&out, &format!("debugfs -w -R {request:?}"));
}

/// The physical block of `path`'s first logical block, from debugfs.
fn first_block(image: &Path, path: &str) -> u64 {
    let text = debugfs(image, &format!("bmap {path} 0"));
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("debugfs bmap: {text:?}"))
}

/// Builds a fresh image of `src` named `name`.
fn fresh(case: &Case, src: &Path, name: &str) -> PathBuf {
    let image = case.path(name);
    case.build(&[src], &image, &[]);
    image
}

kiln_test!(reports_each_kind_of_damage, |case| { damage(&case) });

#[test]
fn reports_each_kind_of_damage_ext4_1k() {
    damage(&Case::new("ext4", 1024));
}

/// With metadata_csum, debugfs recomputes the checksums it touches, so only
/// the damage itself is left to find.
#[test]
fn reports_each_kind_of_damage_ext4_4k() {
    damage(&Case::new("ext4", 4096));
}

/// Damages fresh images one way each and checks the report.
fn damage(case: &Case) {
    if !require_tool("debugfs") {
        return;
    }
    let src = source(case);
    let clean = fresh(case, &src, "clean.img");
    assert_success(&verify(&clean, &src), "kiln verify of a clean image");

    // One flipped byte of file data.
    let image = fresh(case, &src, "data.img");
    let at = first_block(&image, "/data") * u64::from(case.block_size) + 10;
    flip_byte(&image, at);
    assert_reported(
        &verify(&image, &src),
        &["/data: content differs from byte 10"],
    );

    // An edited mode.
    let image = fresh(case, &src, "mode.img");
    debugfs_write(&image, "sif /dir/note mode 0100600");
    assert_reported(&verify(&image, &src), &["/dir/note: mode"]);

    // A removed xattr.
    let image = fresh(case, &src, "xattr.img");
    debugfs_write(&image, "ea_rm /dir/note user.colour");
    assert_reported(&verify(&image, &src), &["/dir/note: xattrs"]);

    // A wrong link count: a difference from the source and an
    // inconsistency with the directory entries.
    let image = fresh(case, &src, "links.img");
    debugfs_write(&image, "sif /data links_count 5");
    assert_reported(&verify(&image, &src), &["link count", "inconsistency"]);

    // A block of file data marked free in the bitmap.
    let image = fresh(case, &src, "bitmap.img");
    let block = first_block(&image, "/data");
    debugfs_write(&image, &format!("freeb {block}"));
    assert_reported(&verify(&image, &src), &["inconsistency", "bitmap"]);
}

/// Flips one bit of the byte at `at` of the file at `path`.
fn flip_byte(path: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x40], at).unwrap();
}

#[test]
fn reports_missing_and_extra_entries() {
    let case = Case::new("ext4", 4096);
    let src = source(&case);
    let image = fresh(&case, &src, "x.img");
    write_file(&src.join("new-file"), b"new");
    std::fs::remove_file(src.join("dir/note")).unwrap();
    assert_reported(
        &verify(&image, &src),
        &[
            "/new-file: missing from the image",
            "/dir/note: in the image, not in the sources",
        ],
    );
}

/// Differences exit 1 (above); an image or a source that cannot be read
/// exits 2, as `cmp` and `diff` do, naming the path.
#[test]
fn trouble_exits_2() {
    let case = Case::new("ext4", 4096);
    let src = source(&case);
    let image = fresh(&case, &src, "x.img");
    let not_an_image = case.path("not-an-image");
    write_file(&not_an_image, &[0u8; 8192]);
    let missing = case.path("no-such-source");
    for (image, src, named) in [
        (&image, &missing, "no-such-source"),
        (&not_an_image, &src, "not-an-image"),
    ] {
        let out = verify(image, src);
        let text = describe(&out);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(text.contains(named), "{text}");
    }
}

/// A GPT disk of 24 MiB with partitions "esp" (1) and "root" (2), the
/// filesystem `fs` copied into "root".
fn disk_with(case: &Case, fs: &Path) -> PathBuf {
    let disk = case.path("disk.img");
    let file = std::fs::File::create(&disk).unwrap();
    file.set_len(24 << 20).unwrap();
    let script = "label: gpt\nsize=2MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp\nsize=20MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root\n";
    let mut cmd = tool("sfdisk");
    cmd.arg("--quiet").arg(&disk);
    let out = run_with_stdin(&mut cmd, script.as_bytes());
    assert_success(&out, "sfdisk");
    let data = std::fs::read(fs).unwrap();
    assert!(data.len() <= 20 << 20, "the filesystem fits the partition");
    let offset = 3 << 20; // 1 MiB alignment, after the 2 MiB esp.
    std::os::unix::fs::FileExt::write_all_at(&file, &data, offset).unwrap();
    disk
}

/// Runs a command with `input` on its stdin.
fn run_with_stdin(cmd: &mut std::process::Command, input: &[u8]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn partitioned_disk_images() {
    if !require_tool("sfdisk") {
        return;
    }
    let case = Case::new("ext4", 4096);
    let src = source(&case);
    let fs = case.path("fs.img");
    case.build(&[&src], &fs, &["--size", "16M"]);
    let disk = disk_with(&case, &fs);
    let part = |p: &str| format!("{}:{p}", disk.display());

    let out = kiln(["info", &disk.display().to_string()]);
    assert_success(&out, "kiln info DISK");
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "Partition table: gpt",
        "\"esp\"",
        "\"root\"",
        "esp",
        "Filesystem type: ext4",
    ] {
        assert!(text.contains(want), "info lacks {want:?}: {text}");
    }
    let json = kiln(["info", "--json", &part("root")]);
    assert_success(&json, "kiln info DISK:root --json");
    assert!(String::from_utf8_lossy(&json.stdout).contains("\"fs_type\": \"ext4\""));

    let ls = kiln(["ls", &part("2"), "/dir"]);
    assert_success(&ls, "kiln ls DISK:2");
    assert_eq!(
        String::from_utf8_lossy(&ls.stdout),
        "data-link\nnote\nsub\n"
    );
    let cat = kiln(["cat", &part("root"), "/dir/note"]);
    assert_success(&cat, "kiln cat DISK:root");
    assert_eq!(cat.stdout, b"a note\n");

    let out = kiln([
        "verify",
        &part("root"),
        "--against",
        &src.display().to_string(),
    ]);
    assert_success(&out, "kiln verify DISK:root");
    let dest = case.path("out");
    let out = kiln([
        "extract",
        &part("root"),
        "/dir",
        &dest.display().to_string(),
    ]);
    assert_success(&out, "kiln extract DISK:root");
    assert_eq!(read_file(&dest.join("note")), b"a note\n");

    for (bad, want) in [
        ("3", "no partition \"3\""),
        ("nope", "no partition \"nope\""),
    ] {
        let out = kiln(["ls", &part(bad), "/"]);
        assert!(!out.status.success(), "ls of partition {bad} succeeded");
        assert!(describe(&out).contains(want), "{}", describe(&out));
    }
    // The esp partition holds no ext filesystem.
    let out = kiln(["ls", &part("esp"), "/"]);
    assert!(!out.status.success(), "ls of the empty esp succeeded");
}

/// Issue 17 point 6: reading a source file after the build moves its atime;
/// verify says that every difference is an atime, and `--no-atime` leaves
/// atimes out. Values are printed as values (dates, octal modes), never as
/// Rust's debug forms (`Some(…)`).
#[test]
fn atimes_can_be_left_out_and_values_read_as_values() {
    if !require_tool("debugfs") {
        return;
    }
    let case = Case::new("ext4", 4096);
    let src = source(&case);
    // An atime before the mtime, so that reading the file (relatime)
    // moves it, as an indexer or a backup would after the build.
    let note = src.join("dir/note");
    let past = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    std::fs::File::open(&note)
        .and_then(|f| f.set_times(std::fs::FileTimes::new().set_accessed(past)))
        .expect("set the atime");
    let image = fresh(&case, &src, "atime.img");
    read_file(&note);
    let atime = std::fs::metadata(&note).and_then(|m| m.accessed()).unwrap();
    assert!(
        atime > past,
        "reading {} did not move its atime (noatime?)",
        note.display()
    );
    let out = verify(&image, &src);
    assert_reported(
        &out,
        &[
            "/dir/note: atime: image 2001-09-09 01:46:40.000000000 UTC, source ",
            "note: every difference is an access time",
        ],
    );
    let out = verify_with(&image, &src, &["--no-atime"]);
    assert_success(&out, "kiln verify --no-atime after the atime moved");

    debugfs_write(&image, "sif /dir/note crtime 20200101000000");
    debugfs_write(&image, "sif /dir/note mode 0100600");
    let out = verify_with(&image, &src, &["--no-atime"]);
    assert_reported(
        &out,
        &[
            "/dir/note: crtime: image 2020-01-01 00:00:00.",
            "/dir/note: mode: image 0600, source 0644",
        ],
    );
    let text = describe(&out);
    assert!(!text.contains("Some("), "a debug form in: {text}");
    assert!(
        !text.contains("every difference is an access time"),
        "{text}"
    );
}
