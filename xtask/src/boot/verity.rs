//! The `verity`, `verity-append` and `verity-corrupt` cases: a read-only ext4 root (no
//! journal) on dm-verity. The hash tree is a second disk, or in `verity-append` follows
//! the filesystem on the same disk (kiln's `--verity FILE` and `--verity append`); the initramfs makes the verity device from
//! the `dm-mod.create=` table on the command line (initrd.rs) and mounts it read-only as
//! the root. The guest checks that its root is that device, verified (`dmsetup status`
//! says `V`), and that it holds exactly the tree's names and bytes. `verity-corrupt`
//! flips one byte in a file's block of the data image after the tree was made: reading
//! that file fails with an I/O error, the kernel names the block, and the device turns
//! corrupted (`C`), while everything else still reads.
//!
//! kiln writes the tree (`--verity FILE|append` with a fixed salt and UUID) and its
//! `--report` gives the root hash, salt, data block count and hash offset that the table
//! names.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};

use super::initrd::copy_with_libraries;
use super::uefi::Manifest;
use super::{pattern, run_cmd, Access, Boot, Harness, Start};

/// Data and hash block size: ext4's block size here, and veritysetup's default.
const BLOCK: u64 = 4096;

/// A fixed salt and UUID, so that the same image gives the same tree and root hash.
const SALT: &str = "6b696c6e2d766572697479";
const UUID: &str = "6b696c6e-7665-7269-7479-000000000014";

/// The disks as the guest's kernel names them: the data image, then the hash tree when it
/// is a file of its own.
const DATA_DISK: &str = "/dev/vda";
const HASH_DISK: &str = "/dev/vdb";

/// Where the hash tree goes, as kiln's `--verity FILE|append` puts it.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    /// A file of its own, the guest's second disk.
    File,
    /// After the filesystem in the image, from the first block past its end.
    Append,
}

/// The device-mapper name of the root, and the block device it becomes (the first and
/// only device-mapper device).
const DM_NAME: &str = "root";
const DM_DEVICE: &str = "/dev/dm-0";

/// The case's own files, outside the manifest they hold: the manifest, and the file whose
/// block `verity-corrupt` flips.
const CASE_DIR: &str = "verity";
const VICTIM: &str = "verity/victim";

/// The victim's bytes: a few blocks' worth (its first block is flipped).
fn victim() -> String {
    "the block verity-corrupt flips\n".repeat(300)
}

/// What a verity table needs of a hash tree: what kiln's report will give.
struct VerityTree {
    root_hash: String,
    salt: String,
    data_blocks: u64,
    /// Where the verity superblock starts in the hash device, in bytes (the tree follows
    /// it one hash block on).
    hash_offset: u64,
    /// The hash device as the guest names it.
    hash_disk: &'static str,
}

impl VerityTree {
    /// The kernel's `dm-mod.create=` argument for a read-only verity device of the data
    /// and hash disks (dm-init.rst; verity.rst gives the table's fields).
    fn dm_create(&self) -> String {
        let sectors = self.data_blocks * BLOCK / 512;
        let hash_start = self.hash_offset / BLOCK + 1;
        format!(
            "dm-mod.create=\"{DM_NAME},,,ro,0 {sectors} verity 1 {DATA_DISK} {} \
             {BLOCK} {BLOCK} {} {hash_start} sha256 {} {}\"",
            self.hash_disk, self.data_blocks, self.root_hash, self.salt
        )
    }
}

/// The build arguments of `image`'s hash tree where `place` says (a file beside `image`
/// for [`Place::File`]) and of the report that tells the tree's numbers; the tree's file.
fn verity_args(image: &Path, place: Place) -> (Vec<String>, Option<PathBuf>) {
    let file = (place == Place::File).then(|| image.with_extension("hash"));
    let at = file
        .as_ref()
        .map_or("append".to_string(), |f| f.display().to_string());
    let report = image.with_extension("json").display().to_string();
    let args = [
        "--verity",
        &at,
        "--verity-salt",
        SALT,
        "--verity-uuid",
        UUID,
    ]
    .into_iter()
    .chain(["--report", &report])
    .map(String::from)
    .collect();
    (args, file)
}

/// The tree kiln wrote for `image`, from its build's report.
fn hash_tree(image: &Path, place: Place) -> Result<VerityTree> {
    let report = image.with_extension("json");
    let json: serde_json::Value = serde_json::from_str(&fs::read_to_string(&report)?)
        .with_context(|| report.display().to_string())?;
    let verity = &json["verity"];
    let text = |name: &str| {
        verity[name]
            .as_str()
            .map(String::from)
            .with_context(|| format!("{}: no verity.{name}", report.display()))
    };
    let number = |name: &str| {
        verity[name]
            .as_u64()
            .with_context(|| format!("{}: no verity.{name}", report.display()))
    };
    Ok(VerityTree {
        root_hash: text("root_hash")?,
        salt: text("salt")?,
        data_blocks: number("data_blocks")?,
        hash_offset: number("hash_offset")?,
        hash_disk: match place {
            Place::File => HASH_DISK,
            Place::Append => DATA_DISK,
        },
    })
}

/// The intact root, its tree on a second disk: every check passes and the device stays
/// verified.
pub(super) fn intact(h: &Harness, scratch: &Path) -> Result<Boot> {
    verity_case(h, scratch, Place::File, false)
}

/// The intact root with its tree after the filesystem on the one disk.
pub(super) fn append(h: &Harness, scratch: &Path) -> Result<Boot> {
    verity_case(h, scratch, Place::Append, false)
}

/// The root with one byte flipped in the victim's block after the tree was made.
pub(super) fn corrupt(h: &Harness, scratch: &Path) -> Result<Boot> {
    verity_case(h, scratch, Place::File, true)
}

/// Builds the tree, the image and its hash tree at `place` (flipping the victim's byte if
/// `corrupt`), and boots the image on dm-verity.
fn verity_case(h: &Harness, scratch: &Path, place: Place, corrupt: bool) -> Result<Boot> {
    let root = scratch.join("root");
    stage_root(h, &root, place, corrupt)?;
    let image = scratch.join("verity.img");
    let (r, i) = (root.display().to_string(), image.display().to_string());
    // kiln's verity images have no journal (nothing may write to a verity device, so
    // nothing could replay it) and the read-only feature.
    let (verity, tree_file) = verity_args(&image, place);
    let mut args = vec!["build", &r, "-o", &i, "-t", "ext4", "--size", "64M"];
    args.extend(verity.iter().map(String::as_str));
    h.kiln(&args)?;
    let tree = hash_tree(&image, place)?;
    if corrupt {
        flip_byte(&image, VICTIM)?;
    }
    Ok(Boot {
        image,
        extra_disks: tree_file.into_iter().collect(),
        start: Start::Kernel {
            root: DM_DEVICE.into(),
            fs_type: "ext4",
            args: format!("ro {}", tree.dm_create()),
        },
        offset: 0,
        format: "raw",
    })
}

/// The busybox tree with dmsetup (for `dmsetup status`), a 4 MiB payload (a thousand
/// blocks, many hash blocks), the manifest of it all, and the victim; the checks.
fn stage_root(h: &Harness, root: &Path, place: Place, corrupt: bool) -> Result<()> {
    h.busybox_tree(root, &checks(place, corrupt), Access::ReadOnly)?;
    copy_with_libraries(Path::new("/usr/sbin/dmsetup"), root)?;
    fs::write(root.join("etc/payload"), pattern(4 << 20, 9))?;
    let manifest = Manifest::of(&[root])?;
    let dir = root.join(CASE_DIR);
    fs::create_dir_all(&dir)?;
    fs::write(dir.join("names"), &manifest.names)?;
    fs::write(dir.join("sha256"), &manifest.sums)?;
    fs::write(root.join(VICTIM), victim()).context("write the victim")
}

/// The guest's checks: the root is the read-only verity device of the disks at `place`
/// with the
/// table's salt, its names and bytes are the manifest's (plus the lost+found that every
/// ext image has), then the victim
/// reads (or, if `corrupt`, fails with an I/O error the kernel blames on its block), and
/// the device's status is verified (or corrupted). (busybox diff needs a writable /tmp.)
fn checks(place: Place, corrupt: bool) -> String {
    let disks = match place {
        Place::File => "vda vdb",
        Place::Append => "vda",
    };
    let mut checks = format!(
        r#"mount -t sysfs sys /sys
mount -t tmpfs tmp /tmp
expect root-mount 'grep " / " /proc/mounts | cut -d" " -f1-4 | cut -d, -f1' '{DM_DEVICE} / ext4 ro'
expect dm-name 'cat /sys/block/dm-0/dm/name' {DM_NAME}
expect dm-disks 'echo $(ls /sys/block/dm-0/slaves)' '{disks}'
expect dm-target 'dmsetup table {DM_NAME} | cut -d" " -f3,11,13' 'verity sha256 {SALT}'
expect names 'cd / && find . -xdev | grep -v -e "^./{CASE_DIR}" -e "^./lost+found\$" | sort | diff /{CASE_DIR}/names - && echo same' same
expect bytes 'cd / && sha256sum -c /{CASE_DIR}/sha256 | grep -v ": OK\$"; echo end' end
expect files 'cd / && n=$(wc -l < /{CASE_DIR}/sha256) && test $n -gt 20 && sha256sum -c /{CASE_DIR}/sha256 | grep -c ": OK\$" | grep -qx $n && echo all' all
expect verified 'dmsetup status {DM_NAME} | cut -d" " -f3-' 'verity V'
"#
    );
    if corrupt {
        let _ = write!(
            checks,
            r#"expect victim-eio 'echo $( {{ cat /{VICTIM} >/dev/null; echo rc=$?; }} 2>&1 )' 'cat: read error: Input/output error rc=1'
expect blamed 'dmesg | grep -q "verity: .*: data block [0-9]* is corrupted" && echo yes' yes
expect corrupted 'dmsetup status {DM_NAME} | cut -d" " -f3-' 'verity C'
"#
        );
    } else {
        let _ = writeln!(
            checks,
            "expect victim-reads 'cat /{VICTIM} | wc -c' {}",
            victim().len()
        );
    }
    checks
}

/// Flips one byte of `file`'s first block in the ext image `image` (found with debugfs).
fn flip_byte(image: &Path, file: &str) -> Result<()> {
    let out = run_cmd(
        Command::new("debugfs")
            .args(["-R", &format!("bmap /{file} 0")])
            .arg(image),
    )?;
    let block: u64 = out.trim().parse().context("debugfs bmap")?;
    ensure!(block > 0, "/{file} has no first block");
    let disk = fs::OpenOptions::new().read(true).write(true).open(image)?;
    let mut byte = [0];
    let at = block * BLOCK + 100;
    disk.read_exact_at(&mut byte, at)?;
    disk.write_all_at(&[byte[0] ^ 1], at)?;
    Ok(())
}
