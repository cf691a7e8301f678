//! Issue 6: whole GPT disks from a layout file (`kiln build --config`), and
//! where they go: sparse files, zstd streams, standard output, block devices
//! (with `--force`) and a region of an existing file (`--offset`).
//!
//! Judged with the real tools: `sgdisk -v` and `sfdisk --json` read the
//! partition table, `e2fsck -fn` and `dumpe2fs -h` each filesystem, the
//! kernel mounts a partition of a loop device (as root), `zstd` decompresses
//! the streams, and the `--report` JSON is checked against all of them and
//! against the SHA-256 of the bytes written.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::compare::Snapshot;
use crate::fixture::{self, MIB};
use crate::helpers::*;

/// The disk size of the layout under test.
const DISK_SIZE: u64 = 96 * MIB;
/// The length of the raw image copied into the esp partition.
const ESP_IMAGE_LEN: usize = 3 << 20;
/// GPT's sector, in which sfdisk counts.
pub const SECTOR: u64 = 512;

/// The raw esp image: a deterministic pattern without a zero byte, so the
/// zeros after it in the partition are told apart from it.
fn esp_pattern() -> Vec<u8> {
    fixture::bytes(61, ESP_IMAGE_LEN)
        .into_iter()
        .map(|b| b | 1)
        .collect()
}

/// The sources of one disk: the esp image file, the root tree (a
/// subdirectory, a symlink and a hard link among its files) and the home
/// tree, all inside the case's directory.
struct Sources {
    esp: PathBuf,
    root: PathBuf,
    home: PathBuf,
}

/// Writes the sources of the disk under test.
fn sources(case: &Case) -> Sources {
    let esp = case.path("esp.raw");
    write_file(&esp, &esp_pattern());
    let root = case.mkdir("rootfs");
    fixture::small(&root);
    let home = case.mkdir("home");
    std::fs::create_dir_all(home.join("alice/.config")).expect("mkdir");
    write_file(&home.join("alice/notes.txt"), b"remember the milk\n");
    write_file(
        &home.join("alice/.config/data"),
        &fixture::bytes(62, 70_000),
    );
    std::os::unix::fs::symlink("notes.txt", home.join("alice/todo")).expect("symlink");
    Sources { esp, root, home }
}

/// The layout under test, with paths relative to the file: an esp filled
/// from the raw image, root sized for its tree plus 8 MiB, home growing to
/// the end of a 96 MiB disk.
const LAYOUT: &str = r#"[disk]
table = "gpt"
size = "96M"

[[partition]]
label = "esp"
type = "esp"
size = "4M"
image = "esp.raw"

[[partition]]
label = "root"
type = "root-x86-64"
size = "auto"
free = "8M"
[partition.filesystem]
type = "ext4"
sources = ["rootfs"]

[[partition]]
label = "home"
type = "home"
size = "grow"
[partition.filesystem]
type = "ext4"
sources = ["home"]
"#;

/// Writes `text` as a layout file named `name` in the case's directory.
fn config(case: &Case, name: &str, text: &str) -> PathBuf {
    let path = case.path(name);
    write_file(&path, text.as_bytes());
    path
}

/// `kiln build --config CONFIG -o OUTPUT EXTRA...`, ready to run.
fn build_disk(config: &Path, output: &Path, extra: &[&str]) -> Command {
    let mut cmd = kiln_command();
    cmd.arg("build")
        .arg("--config")
        .arg(config)
        .arg("-o")
        .arg(output)
        .args(extra);
    cmd
}

/// Runs a command and asserts that it succeeded.
fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = run(cmd);
    assert_success(&out, what);
    out
}

/// One partition as `sfdisk --json` lists it (in sectors).
#[derive(Debug)]
pub struct SfdiskPart {
    pub start: u64,
    pub size: u64,
    type_guid: String,
    name: String,
}

/// The partitions of a disk image or device, from `sfdisk --json`.
pub fn sfdisk_parts(disk: &Path) -> Vec<SfdiskPart> {
    let out = run_ok(tool("sfdisk").arg("--json").arg(disk), "sfdisk --json");
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("sfdisk --json is not JSON ({e}): {}", describe(&out)));
    let table = &json["partitiontable"];
    assert_eq!(table["label"], "gpt", "sfdisk: {json:#}");
    assert_eq!(table["sectorsize"], 512, "sfdisk: {json:#}");
    table["partitions"]
        .as_array()
        .unwrap_or_else(|| panic!("no partitions: {json:#}"))
        .iter()
        .map(|p| SfdiskPart {
            start: p["start"].as_u64().expect("start"),
            size: p["size"].as_u64().expect("size"),
            type_guid: p["type"].as_str().expect("type").to_ascii_lowercase(),
            name: p["name"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

/// Asserts that `sgdisk -v` finds a valid GPT (not one it would create)
/// and no problem in it.
pub fn assert_sgdisk_clean(disk: &Path) {
    let out = run(tool("sgdisk").arg("-v").arg(disk));
    let text = describe(&out);
    assert!(
        out.status.success()
            && text.contains("No problems found")
            && !text.contains("Problem")
            && !text.contains("Creating new GPT entries"),
        "sgdisk -v {}: {text}",
        disk.display()
    );
}

/// `len` bytes of the file or device at `path` from `offset`.
fn read_range(path: &Path, offset: u64, len: u64) -> Vec<u8> {
    let file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut buf = vec![0u8; usize::try_from(len).expect("length")];
    file.read_exact_at(&mut buf, offset)
        .unwrap_or_else(|e| panic!("read {len} bytes at {offset} of {}: {e}", path.display()));
    buf
}

/// Copies `len` bytes at `offset` of `disk` into a new file `dest`.
pub fn extract(disk: &Path, offset: u64, len: u64, dest: &Path) {
    write_file(dest, &read_range(disk, offset, len));
}

/// The SHA-256 of `data`, in lowercase hex.
fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A `--report` file, parsed.
fn report(path: &Path) -> Value {
    serde_json::from_slice(&read_file(path))
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The index of the first byte of `data` that is not `byte`, if any.
fn first_not(data: &[u8], byte: u8) -> Option<usize> {
    data.iter().position(|&b| b != byte)
}

/// Asserts that `kiln verify IMAGE --against SRC` passes.
fn assert_verify(image: &str, src: &Path) {
    let out = run(kiln_command()
        .arg("verify")
        .arg(image)
        .arg("--against")
        .arg(src));
    assert_success(
        &out,
        &format!("kiln verify {image} --against {}", src.display()),
    );
}

/// A loop device, detached when dropped (also when a test panics).
struct Loop {
    dev: PathBuf,
}

impl Loop {
    /// `losetup [-P] --find --show FILE`.
    fn attach(file: &Path, partscan: bool) -> Loop {
        let mut cmd = tool("losetup");
        if partscan {
            cmd.arg("-P");
        }
        let out = run_ok(cmd.args(["--find", "--show"]).arg(file), "losetup --find");
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(dev.starts_with("/dev/loop"), "losetup printed {dev:?}");
        Loop {
            dev: PathBuf::from(dev),
        }
    }

    /// The device node of partition `n` (`/dev/loopNpM`), waiting for it to
    /// appear. A kernel without GPT support scans nothing; then `partx -a`
    /// adds the partitions that util-linux reads from the table.
    fn partition(&self, n: u32) -> PathBuf {
        let node = PathBuf::from(format!("{}p{n}", self.dev.display()));
        let start = Instant::now();
        let mut asked_partx = false;
        while !node.exists() {
            let waited = start.elapsed();
            if waited > Duration::from_millis(500) && !asked_partx && tool_path("partx").is_some() {
                asked_partx = true;
                // Fails harmlessly when the kernel has added some already.
                let _ = run(tool("partx").arg("-a").arg(&self.dev));
            }
            assert!(
                waited < Duration::from_secs(10),
                "{} did not appear (partx tried: {asked_partx})",
                node.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }

    /// The device as a string, for `DEV:PART` arguments.
    fn name(&self) -> String {
        self.dev.display().to_string()
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let losetup = tool_path("losetup").unwrap_or_else(|| PathBuf::from("losetup"));
        let ok = Command::new(losetup)
            .arg("-d")
            .arg(&self.dev)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("warning: could not detach {}", self.dev.display());
        }
    }
}

/// The block-device cases' setup: the sources, and a 64 MiB loop device
/// filled with 0xAA (so that stale bytes show); `None` after a skip.
fn device_case() -> Option<(Case, Sources, Loop)> {
    if !(require_root() && require_tool("losetup") && require_tool("sgdisk")) {
        return None;
    }
    let case = Case::new("ext4", 4096);
    let src = sources(&case);
    let backing = case.path("device.img");
    filled_file(&backing, 64 * MIB, 0xAA);
    let dev = Loop::attach(&backing, false);
    Some((case, src, dev))
}

/// A file of `len` bytes, each `byte`.
fn filled_file(path: &Path, len: u64, byte: u8) {
    write_file(path, &vec![byte; usize::try_from(len).expect("length")]);
}

#[test]
fn layout_builds_verifies_and_mounts() {
    if !(require_tool("sgdisk") && require_tool("sfdisk") && require_tool("dumpe2fs")) {
        return;
    }
    let case = Case::new("ext4", 4096);
    let src = sources(&case);
    let snapshot = Snapshot::take(&[&src.root]);
    let cfg = config(&case, "disk.toml", LAYOUT);
    let disk = case.path("disk.img");
    let report_path = case.path("report.json");
    run_ok(
        &mut build_disk(&cfg, &disk, &["--report", report_path.to_str().unwrap()]),
        "kiln build --config",
    );
    assert_eq!(std::fs::metadata(&disk).unwrap().len(), DISK_SIZE);
    snapshot.assert_sources_unchanged();

    // The partition table, as the GPT tools read it.
    assert_sgdisk_clean(&disk);
    let parts = sfdisk_parts(&disk);
    let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["esp", "root", "home"], "{parts:#?}");
    let types: Vec<&str> = parts.iter().map(|p| p.type_guid.as_str()).collect();
    assert_eq!(
        types,
        [
            "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
            "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
            "933ac7e1-2eb4-4f13-b844-0e14e2aef915",
        ]
    );
    for p in &parts {
        assert_eq!(p.start % 2048, 0, "{p:?} is not 1 MiB aligned");
    }
    for w in parts.windows(2) {
        assert!(w[0].start + w[0].size <= w[1].start, "overlap: {w:#?}");
    }
    assert_eq!(parts[0].size * SECTOR, 4 * MIB, "esp: {:?}", parts[0]);
    // root: what the tree needs plus 8 MiB of free space, rounded to 1 MiB.
    assert!(parts[1].size * SECTOR >= 9 * MIB, "root: {:?}", parts[1]);
    let disk_sectors = DISK_SIZE / SECTOR;
    let end = parts[2].start + parts[2].size;
    assert!(
        end <= disk_sectors - 33 && end + 2048 + 34 >= disk_sectors,
        "home (grow) ends at sector {end} of {disk_sectors}: not within the last MiB"
    );

    // The esp holds the raw image, then zeros.
    let esp = read_range(&disk, parts[0].start * SECTOR, parts[0].size * SECTOR);
    assert!(
        esp[..ESP_IMAGE_LEN] == read_file(&src.esp)[..],
        "esp content differs"
    );
    assert_eq!(
        first_not(&esp[ESP_IMAGE_LEN..], 0),
        None,
        "esp tail not zero"
    );

    // Each filesystem: clean, equal to its tree, its numbers in the report.
    let rep = report(&report_path);
    let rparts = rep["partitions"].as_array().expect("partitions");
    assert_eq!(rparts.len(), 3, "report: {rep:#}");
    for (i, (r, p)) in rparts.iter().zip(&parts).enumerate() {
        assert_eq!(r["number"], i as u64 + 1, "report: {r:#}");
        assert_eq!(r["label"], p.name.as_str(), "report: {r:#}");
        assert_eq!(r["type_guid"], p.type_guid.as_str(), "report: {r:#}");
        assert_eq!(r["offset"], p.start * SECTOR, "report: {r:#}");
        assert_eq!(r["size"], p.size * SECTOR, "report: {r:#}");
    }
    assert_eq!(rparts[0]["filesystem"], Value::Null);
    for (i, label) in [(1, "root"), (2, "home")] {
        let p = &parts[i];
        let part = case.path(&format!("{label}.part"));
        extract(&disk, p.start * SECTOR, p.size * SECTOR, &part);
        let fsck = e2fsck_clean(&part);
        let header = dumpe2fs_header(&part);
        let fs = &rparts[i]["filesystem"];
        let field = |k: &str| -> u64 { header[k].parse().expect(k) };
        assert_eq!(fs["fs_type"], "ext4");
        assert_eq!(fs["uuid"], header["Filesystem UUID"].as_str(), "{label}");
        assert_eq!(fs["blocks"], field("Block count"), "{label}: {fs:#}");
        assert_eq!(fs["blocks_free"], field("Free blocks"), "{label}: {fs:#}");
        assert_eq!(fs["inodes"], field("Inode count"), "{label}: {fs:#}");
        assert_eq!(fs["inodes_free"], field("Free inodes"), "{label}: {fs:#}");
        assert_eq!(fs["blocks_used"], fsck.blocks_used, "{label}: {fs:#}");
        assert_eq!(fs["inodes_used"], fsck.inodes_used, "{label}: {fs:#}");
        // The filesystem fills its partition.
        assert_eq!(
            field("Block count") * field("Block size"),
            p.size * SECTOR,
            "{label}: the filesystem does not fill its partition"
        );
    }
    let d = disk.display();
    assert_verify(&format!("{d}:root"), &src.root);
    assert_verify(&format!("{d}:3"), &src.home);

    // The disk's numbers in the report.
    assert_eq!(rep["disk"]["table"], "gpt");
    assert_eq!(rep["disk"]["size"], DISK_SIZE);
    assert_eq!(rep["disk"]["zstd_bytes"], Value::Null);
    assert_eq!(
        rep["disk"]["sha256"],
        sha256_hex(&read_file(&disk)).as_str()
    );

    // The kernel's view of the partitions, through a loop device.
    if !require_mount() {
        return;
    }
    let dev = Loop::attach(&disk, true);
    let root_node = dev.partition(2);
    dev.partition(3);
    let mount = Mount::ro(&root_node, "ext4");
    snapshot.assert_image_matches(mount.path(), 4096);
    mount.unmount();
}

#[test]
fn streams_are_byte_identical() {
    if !require_tool("zstd") {
        return;
    }
    let case = Case::new("ext4", 4096);
    sources(&case);
    let cfg = config(&case, "disk.toml", LAYOUT);
    let path = |name: &str| case.path(name);
    let arg = |p: &Path| p.to_str().expect("UTF-8 path").to_string();

    let raw = path("raw.img");
    let raw_report = path("raw.json");
    run_ok(
        &mut build_disk(&cfg, &raw, &["--report", &arg(&raw_report)]),
        "raw build",
    );
    let raw_bytes = read_file(&raw);
    assert_eq!(raw_bytes.len() as u64, DISK_SIZE);
    let raw_sha = sha256_hex(&raw_bytes);
    assert_eq!(report(&raw_report)["disk"]["sha256"], raw_sha.as_str());

    // `-o X.zst`: zstd by the name, its report with the compressed size;
    // flushed before the rename (--sync), which changes no byte.
    let zst = path("disk.img.zst");
    let zst_report = path("zst.json");
    run_ok(
        &mut build_disk(&cfg, &zst, &["--sync", "--report", &arg(&zst_report)]),
        "zst build",
    );
    let unpacked = run_ok(tool("zstd").arg("-d").arg("-c").arg(&zst), "zstd -d");
    assert!(
        unpacked.stdout == raw_bytes,
        "zstd -d of the .zst differs from the raw build"
    );
    let list = run_ok(tool("zstd").arg("-lv").arg(&zst), "zstd -lv");
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains(&format!("({DISK_SIZE} B)")) && listed.contains("Decompressed Size"),
        "zstd -lv does not report the decompressed size: {}",
        describe(&list)
    );
    let rep = report(&zst_report);
    let zst_len = std::fs::metadata(&zst).unwrap().len();
    assert_eq!(rep["disk"]["zstd_bytes"], zst_len, "{rep:#}");
    assert_eq!(rep["disk"]["sha256"], raw_sha.as_str(), "{rep:#}");
    assert_eq!(rep["disk"]["size"], DISK_SIZE);

    // `-o -`: raw, then zstd at level 5, on standard output.
    let stdout = Path::new("-");
    let plain = run_ok(
        &mut build_disk(&cfg, stdout, &["--compress", "none"]),
        "build to stdout",
    );
    assert!(plain.stdout == raw_bytes, "the raw stream differs");
    let out_report = path("stdout.json");
    let packed = run_ok(
        &mut build_disk(
            &cfg,
            stdout,
            &["--compress", "zstd:5", "--report", &arg(&out_report)],
        ),
        "zstd:5 build to stdout",
    );
    let packed_file = path("stdout.zst");
    write_file(&packed_file, &packed.stdout);
    let unpacked = run_ok(
        tool("zstd").arg("-d").arg("-c").arg(&packed_file),
        "zstd -d",
    );
    assert!(unpacked.stdout == raw_bytes, "the zstd:5 stream differs");
    let rep = report(&out_report);
    assert_eq!(rep["disk"]["zstd_bytes"], packed.stdout.len() as u64);
    assert_eq!(rep["disk"]["sha256"], raw_sha.as_str());

    // Determinism: rebuilds, on one thread and on the default pool.
    for (name, threads) in [("again.img", None), ("one-thread.img", Some("1"))] {
        let again = path(name);
        let mut cmd = build_disk(&cfg, &again, &[]);
        if let Some(n) = threads {
            cmd.env("RAYON_NUM_THREADS", n);
        }
        run_ok(&mut cmd, name);
        let bytes = read_file(&again);
        let at = bytes.iter().zip(&raw_bytes).position(|(a, b)| a != b);
        assert!(
            bytes.len() == raw_bytes.len() && at.is_none(),
            "{name} differs from the first build (first at {at:?})"
        );
    }
}

/// Asserts that the layout `text` is refused, that its stderr contains each
/// of `words`, and that nothing new appears in the case's directory.
fn assert_refused(case: &Case, text: &str, words: &[&str]) {
    let cfg = config(case, "bad.toml", text);
    let before = list_dir(case.dir());
    let output = case.path("bad.img");
    let out = run(&mut build_disk(&cfg, &output, &[]));
    let all = describe(&out);
    assert!(!out.status.success(), "kiln accepted {text}\n{all}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    for w in words {
        assert!(stderr.contains(w), "stderr lacks {w:?}: {all}");
    }
    assert!(
        !output.exists(),
        "a refused build left {}",
        output.display()
    );
    assert_eq!(list_dir(case.dir()), before, "a refused build left files");
}

#[test]
fn config_errors_name_the_key() {
    let case = Case::new("ext4", 4096);
    let tree = case.mkdir("tree");
    fixture::small(&tree);
    let one = |size: &str, ty: &str, extra: &str| {
        format!("[[partition]]\nlabel = \"p\"\ntype = \"{ty}\"\nsize = \"{size}\"\n{extra}")
    };
    assert_refused(
        &case,
        &one("12Q", "esp", ""),
        &["bad.toml", "partition[1].size", "12Q"],
    );
    assert_refused(
        &case,
        &one("4M", "floppy", ""),
        &["partition[1].type", "floppy"],
    );
    assert_refused(
        &case,
        "[disk]\nsize = \"16M\"\n\
         [[partition]]\nlabel = \"first\"\ntype = \"esp\"\nsize = \"10M\"\n\
         [[partition]]\nlabel = \"second\"\ntype = \"home\"\nsize = \"10M\"\n",
        &["\"second\"", "10 MiB", "16 MiB", "does not fit"],
    );
    assert_refused(
        &case,
        "[disk]\nsize = \"64M\"\n\
         [[partition]]\nlabel = \"first\"\ntype = \"esp\"\nsize = \"grow\"\n\
         [[partition]]\nlabel = \"second\"\ntype = \"home\"\nsize = \"10M\"\n",
        &["partition[1].size", "last partition"],
    );
    let missing = case.path("no-such-tree");
    assert_refused(
        &case,
        &one(
            "auto",
            "home",
            "[partition.filesystem]\nsources = [\"no-such-tree\"]\n",
        ),
        &["partition[1]", missing.to_str().unwrap(), "No such file"],
    );
    assert_refused(
        &case,
        &one("4M", "home", "colour = \"red\"\n"),
        &["colour", "unknown field"],
    );
    assert_refused(
        &case,
        &one(
            "auto",
            "home",
            "max = \"1M\"\n[partition.filesystem]\nsources = [\"tree\"]\n",
        ),
        &["partition[1]", "max", "1048576"],
    );
    assert_refused(
        &case,
        &one(
            "auto",
            "home",
            "[partition.filesystem]\nsources = [\"tree\"]\noptions = [\"--sync\"]\n",
        ),
        &[
            "partition[1].filesystem.options",
            "typed keys",
            "\"--sync\" has no key",
        ],
    );
}

/// A layout of one root partition from `rootfs`, on a disk of `size`.
fn one_partition_layout(size: &str) -> String {
    format!(
        "[disk]\nsize = \"{size}\"\n[[partition]]\nlabel = \"root\"\ntype = \"root-x86-64\"\n\
         [partition.filesystem]\ntype = \"ext4\"\nsources = [\"rootfs\"]\n"
    )
}

#[test]
fn block_device_output() {
    let Some((case, src, dev)) = device_case() else {
        return;
    };
    let untouched = |what: &str| {
        assert_eq!(
            first_not(&read_range(&dev.dev, 0, MIB), 0xAA),
            None,
            "{what} wrote to {}",
            dev.dev.display()
        );
    };

    // Without --force: refused, untouched.
    let out = run(case
        .build_command(&[&src.root], &dev.dev)
        .args(["--size", "8M"]));
    let text = describe(&out);
    assert!(
        !out.status.success(),
        "a build onto a device without --force: {text}"
    );
    assert!(
        text.contains("--force") && text.contains("block device"),
        "the refusal does not explain itself: {text}"
    );
    untouched("a refused build");
    // Issue 17, point 8: refused before any source is read.
    let out = run(&mut case.build_command(&[&case.path("no-such-source")], &dev.dev));
    let text = describe(&out);
    assert!(
        text.contains("block device") && !text.contains("no-such-source"),
        "the source was read before the output was refused: {text}"
    );

    // A disk larger than the device: refused, untouched.
    let big = config(&case, "big.toml", &one_partition_layout("96M"));
    let out = run(&mut build_disk(&big, &dev.dev, &["--force"]));
    assert!(
        !out.status.success(),
        "a 96 MiB disk on 64 MiB: {}",
        describe(&out)
    );
    untouched("a disk too large for the device");

    // With --force: a filesystem smaller than the device, in place.
    run_ok(
        case.build_command(&[&src.root], &dev.dev)
            .args(["--size", "8M", "--force"]),
        "kiln build onto a block device",
    );
    e2fsck_clean(&dev.dev);
    assert_verify(&dev.name(), &src.root);
    assert_mount_matches(&dev.dev, &src.root);

    // A whole disk the size of the device.
    let cfg = config(&case, "dev.toml", &one_partition_layout("64M"));
    run_ok(
        &mut build_disk(&cfg, &dev.dev, &["--force"]),
        "kiln build --config onto a block device",
    );
    assert_sgdisk_clean(&dev.dev);
    let parts = sfdisk_parts(&dev.dev);
    assert_eq!(parts.len(), 1, "{parts:#?}");
    assert_eq!((parts[0].start, parts[0].name.as_str()), (2048, "root"));
    assert_verify(&format!("{}:root", dev.name()), &src.root);
}

/// A layout without a disk size on a larger block device: the backup GPT
/// must end up at the device's end (or the build must be refused).
#[test]

fn block_device_disk_without_size() {
    let Some((case, src, dev)) = device_case() else {
        return;
    };
    let text = "[[partition]]\nlabel = \"root\"\ntype = \"root-x86-64\"\n\
                [partition.filesystem]\nsources = [\"rootfs\"]\n";
    let cfg = config(&case, "nosize.toml", text);
    let out = run(&mut build_disk(&cfg, &dev.dev, &["--force"]));
    if out.status.success() {
        assert_sgdisk_clean(&dev.dev);
        assert_verify(&format!("{}:root", dev.name()), &src.root);
    }
}

#[test]
fn offset_into_existing_file() {
    let case = Case::new("ext4", 4096);
    let src = sources(&case);
    let host = case.path("host.img");
    filled_file(&host, 40 * MIB, 0x55);
    run_ok(
        case.build_command(&[&src.root], &host)
            .args(["--offset", "8M", "--size", "16M"]),
        "kiln build --offset",
    );
    assert_eq!(std::fs::metadata(&host).unwrap().len(), 40 * MIB);
    let data = read_file(&host);
    let (lo, hi) = (8 * MIB as usize, 24 * MIB as usize);
    assert_eq!(first_not(&data[..lo], 0x55), None, "bytes before 8 MiB");
    assert_eq!(first_not(&data[hi..], 0x55), None, "bytes after 24 MiB");
    // The ext superblock's magic, 1080 bytes into the region.
    assert_eq!(
        data[lo + 1080..lo + 1082],
        [0x53, 0xEF],
        "no superblock at 8 MiB"
    );
    let part = case.path("region.img");
    write_file(&part, &data[lo..hi]);
    let fsck = e2fsck_clean(&part);
    assert_eq!(fsck.blocks, 4096, "a 16 MiB filesystem: {fsck:?}");
    assert_verify(part.to_str().unwrap(), &src.root);
    if require_mount() {
        assert_mount_matches(&part, &src.root);
    }

    // A file too small for the region, and a missing one: errors, no change.
    let small = case.path("small.img");
    filled_file(&small, 10 * MIB, 0x55);
    let out = run(case
        .build_command(&[&src.root], &small)
        .args(["--offset", "8M", "--size", "16M"]));
    let text = describe(&out);
    assert!(!out.status.success(), "--offset past a small file: {text}");
    assert!(
        text.contains("10485760"),
        "the error lacks the file size: {text}"
    );
    assert_eq!(std::fs::metadata(&small).unwrap().len(), 10 * MIB);
    assert_eq!(
        first_not(&read_file(&small), 0x55),
        None,
        "small file changed"
    );
    let missing = case.path("missing.img");
    let out = run(case
        .build_command(&[&src.root], &missing)
        .args(["--offset", "8M", "--size", "16M"]));
    assert!(
        !out.status.success(),
        "--offset into no file: {}",
        describe(&out)
    );
    assert!(!missing.exists(), "--offset created {}", missing.display());
}

/// Writing in place (`--offset`, a block device) over old bytes: what the
/// image does not write must not keep them where a fresh image has zeros
/// (the boot area before the superblock, where old signatures live; the
/// tail of a file's last block; the journal), as mke2fs ensures.
#[test]

fn in_place_output_leaves_no_stale_bytes() {
    if !require_tool("debugfs") {
        return;
    }
    let case = Case::new("ext4", 4096);
    let src = sources(&case);
    let host = case.path("host.img");
    filled_file(&host, 24 * MIB, 0x55);
    run_ok(
        case.build_command(&[&src.root], &host)
            .args(["--offset", "8M", "--size", "16M"]),
        "kiln build --offset",
    );
    let part = case.path("region.img");
    extract(&host, 8 * MIB, 16 * MIB, &part);
    let data = read_file(&part);
    let block = |request: &str| -> usize {
        let text = debugfs(&part, request);
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("debugfs {request}: {text:?}"))
    };
    // /etc/passwd is 30 bytes: the rest of its block must be zero.
    let tail = block("bmap /etc/passwd 0") * 4096;
    // The journal (inode 8) past its superblock.
    let journal = block("bmap <8> 1") * 4096;
    let stale: Vec<&str> = [
        ("the boot area (bytes 0-1023)", &data[..1024]),
        (
            "the tail of /etc/passwd's block",
            &data[tail + 30..tail + 4096],
        ),
        ("the journal's second block", &data[journal..journal + 4096]),
    ]
    .into_iter()
    .filter(|(_, bytes)| first_not(bytes, 0).is_some())
    .map(|(what, _)| what)
    .collect();
    assert!(stale.is_empty(), "old bytes (0x55) left in: {stale:?}");
}

/// The kernel mounts the ext4 filesystem `image` (a file or a block device)
/// read-only and it holds exactly the tree `src`.
fn assert_mount_matches(image: &Path, src: &Path) {
    let mount = Mount::ro(image, "ext4");
    Snapshot::take(&[src]).assert_image_matches(mount.path(), 4096);
}
