//! Issue 22: kiln as `mke2fs`. Real clients run unchanged, once with kiln's
//! `mke2fs`/`mkfs.ext4` first on `PATH` (symlinks to the kiln binary; argv[0]
//! decides) and once with e2fsprogs' own.
//!
//! Each kiln image is judged by `e2fsck -fn`, by the kernel (mounted and
//! compared with the client's input tree), and against the image the same
//! client made with the real mke2fs: `dumpe2fs -h` must give the same
//! geometry and features. The fields that differ by design are listed in
//! [`EXPLAINED`].

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use crate::compare::{assert_no_diffs, Diff, Snapshot};
use crate::disk::{assert_sgdisk_clean, extract, sfdisk_parts, SECTOR};
use crate::ext4::is_clamped_time;
use crate::fixture;
use crate::helpers::*;
use crate::sys;

/// The names under which kiln is mke2fs.
const NAMES: [&str; 4] = ["mke2fs", "mkfs.ext2", "mkfs.ext3", "mkfs.ext4"];

/// `dumpe2fs -h` fields that must be the same as the real mke2fs's.
const GEOMETRY: [&str; 18] = [
    "Filesystem volume name",
    "Filesystem magic number",
    "Filesystem revision #",
    "Filesystem features",
    "Default mount options",
    "Filesystem OS type",
    "Inode count",
    "Block count",
    "Reserved block count",
    "Block size",
    "Blocks per group",
    "Inodes per group",
    "Reserved GDT blocks",
    "Flex block group size",
    "Inode size",
    "Errors behavior",
    "RAID stride",
    "RAID stripe width",
];

/// Fields that differ from the real mke2fs's by design, and why (printed
/// with each comparison, so a reader of the log sees them explained).
const EXPLAINED: [(&str, &str); 6] = [
    ("Filesystem UUID", "derived from the inputs unless -U gives one"),
    ("Directory Hash Seed", "derived from the inputs unless -E hash_seed gives one"),
    ("Journal features", "kiln's journal superblock declares journal_checksum_v3 (the kernel sets it at the first mount)"),
    ("Overhead clusters", "mke2fs records it; kiln leaves it 0, so the kernel computes it"),
    ("Lifetime writes", "mke2fs counts its own writes"),
    ("Free blocks", "kiln packs files and directories differently (extents, htrees)"),
];

/// A directory of symlinks that make the kiln binary mke2fs.
struct Impostor {
    dir: TempDir,
}

impl Impostor {
    fn new() -> Impostor {
        let dir = tempfile::Builder::new()
            .prefix("kiln-mke2fs-")
            .tempdir()
            .expect("create a directory");
        for name in NAMES {
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kiln"), dir.path().join(name))
                .unwrap_or_else(|e| panic!("symlink {name}: {e}"));
        }
        Impostor { dir }
    }

    /// `PATH` with kiln's mke2fs first.
    fn path(&self) -> OsString {
        let rest = std::env::var_os("PATH").unwrap_or_default();
        let dirs = std::iter::once(self.dir.path().to_path_buf())
            .chain(std::env::split_paths(&rest))
            .chain(["/usr/sbin", "/sbin"].map(PathBuf::from));
        std::env::join_paths(dirs).expect("join PATH")
    }

    /// `PATH` with e2fsprogs' mke2fs (the sbin directories added, as a
    /// root shell has them).
    fn real_path() -> OsString {
        let rest = std::env::var_os("PATH").unwrap_or_default();
        let dirs = ["/usr/sbin", "/sbin"]
            .map(PathBuf::from)
            .into_iter()
            .chain(std::env::split_paths(&rest));
        std::env::join_paths(dirs).expect("join PATH")
    }
}

/// Which mke2fs a client runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Mke2fs {
    Real,
    Kiln,
}

impl Mke2fs {
    /// Points `cmd` (a client) at this mke2fs.
    fn apply(self, impostor: &Impostor, cmd: &mut Command) {
        cmd.env(
            "PATH",
            match self {
                Mke2fs::Real => Impostor::real_path(),
                Mke2fs::Kiln => impostor.path(),
            },
        );
    }
}

/// Asserts that kiln's image `kiln` has the geometry and features of the
/// real mke2fs's `real` and prints the fields that differ by design.
fn assert_same_geometry(what: &str, kiln: &Path, real: &Path) {
    let ours = dumpe2fs_header(kiln);
    let theirs = dumpe2fs_header(real);
    let field = |h: &BTreeMap<String, String>, k: &str| h.get(k).cloned().unwrap_or_default();
    let differ: Vec<String> = GEOMETRY
        .iter()
        .filter(|k| field(&ours, k) != field(&theirs, k))
        .map(|k| {
            format!(
                "{k}: kiln {:?}, mke2fs {:?}",
                field(&ours, k),
                field(&theirs, k)
            )
        })
        .collect();
    assert!(
        differ.is_empty(),
        "{what}: kiln's image differs from mke2fs's:\n{}",
        differ.join("\n")
    );
    for (k, why) in EXPLAINED {
        if field(&ours, k) != field(&theirs, k) {
            eprintln!(
                "{what}: {k}: kiln {:?}, mke2fs {:?} ({why})",
                field(&ours, k),
                field(&theirs, k)
            );
        }
    }
}

/// Who put the files into the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Filler {
    /// mke2fs itself (`-d`): the image holds the tree exactly.
    Mke2fs,
    /// The client, through the kernel, after mke2fs made an empty
    /// filesystem: every ctime and atime is the copy's (listing a
    /// directory it fills moves its atime), and the root directory's
    /// times are the kernel's.
    Kernel,
}

/// Asserts that kiln's `image` is clean, and that the kernel mounts it and
/// finds exactly the tree `snap` (less what `filler` cannot keep, with
/// times after `clamp` (SOURCE_DATE_EPOCH) clamped to it).
fn assert_holds(image: &Path, snap: &Snapshot, filler: Filler, clamp: Option<i64>) {
    e2fsck_clean(image);
    let mount = Mount::ro(image, "ext4");
    let diffs: Vec<Diff> = snap
        .compare_image(mount.path(), block_size(image))
        .into_iter()
        .filter(|d| {
            filler == Filler::Mke2fs
                || !(d.what == "ctime"
                    || d.what == "atime"
                    || (d.path == "/" && d.what.ends_with("time")))
        })
        .filter(|d| !clamp.is_some_and(|limit| is_clamped_time(d, limit)))
        .collect();
    assert_no_diffs(&format!("{} filled by {filler:?}", image.display()), &diffs);
}

/// The block size `dumpe2fs -h` gives for `image`.
fn block_size(image: &Path) -> u64 {
    dumpe2fs_header(image)["Block size"]
        .parse()
        .expect("a block size")
}

/// A copy of fixtures/example (`cp -a`) in the case's directory: tar and
/// repart read it without O_NOATIME, and the access times they move would
/// change the bytes of another test's build of the shared one.
fn example_copy(case: &Case) -> PathBuf {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/example");
    let copy = case.path("example");
    run_ok(
        Command::new("cp").arg("-a").arg(&example).arg(&copy),
        "cp -a fixtures/example",
    );
    copy
}

/// Runs `cmd` and asserts it succeeded.
fn run_ok(cmd: &mut Command, what: &str) {
    let out = run(cmd);
    assert_success(&out, what);
}

/// Whether the tools of every client test are here (skip-or-fail).
fn judges(client: &str) -> bool {
    require_mount()
        && require_tool(client)
        && require_tool("mke2fs")
        && require_tool("e2fsck")
        && require_tool("dumpe2fs")
}

/// genimage's configuration: an ext4 filesystem made by mke2fs
/// (`use-mke2fs`) and a GPT disk holding it.
const GENIMAGE_CFG: &str = r#"
image rootfs.ext4 {
	ext4 {
		label = "rootfs"
		use-mke2fs = true
	}
	size = 96M
}
image disk.img {
	hdimage {
		partition-table-type = "gpt"
	}
	partition root {
		image = "rootfs.ext4"
	}
}
"#;

#[test]
fn genimage_ext4_with_mke2fs_and_its_disk() {
    if !judges("genimage") || !require_tool("sgdisk") || !require_tool("sfdisk") {
        return;
    }
    let case = Case::new("ext4", 1024);
    let root = case.mkdir("root");
    fixture::full(&root, 1024);
    let cfg = case.path("genimage.cfg");
    write_file(&cfg, GENIMAGE_CFG.as_bytes());
    let impostor = Impostor::new();
    let mut images = BTreeMap::new();
    for mke2fs in [Mke2fs::Real, Mke2fs::Kiln] {
        let out = case.mkdir(&format!("{mke2fs:?}/images"));
        let mut cmd = tool("genimage");
        cmd.arg("--config")
            .arg(&cfg)
            .arg("--rootpath")
            .arg(&root)
            .arg("--tmppath")
            .arg(case.path(&format!("{mke2fs:?}/tmp")))
            .arg("--outputpath")
            .arg(&out)
            .arg("--inputpath")
            .arg(&out);
        mke2fs.apply(&impostor, &mut cmd);
        run_ok(&mut cmd, &format!("genimage with {mke2fs:?} mke2fs"));
        images.insert(mke2fs, out);
    }
    let kiln = images[&Mke2fs::Kiln].join("rootfs.ext4");
    assert_same_geometry(
        "genimage",
        &kiln,
        &images[&Mke2fs::Real].join("rootfs.ext4"),
    );
    // genimage gives mke2fs its copy of the root (`cp -a`): the tree the
    // image must hold.
    let copy = case.path("Kiln/tmp/root");
    assert_holds(&kiln, &Snapshot::take(&[&copy]), Filler::Mke2fs, None);
    // The disk holds the filesystem as genimage wrote it.
    let disk = images[&Mke2fs::Kiln].join("disk.img");
    assert_sgdisk_clean(&disk);
    let parts = sfdisk_parts(&disk);
    assert_eq!(parts.len(), 1, "{parts:?}");
    let part = case.path("partition.ext4");
    extract(
        &disk,
        parts[0].start * SECTOR,
        parts[0].size * SECTOR,
        &part,
    );
    assert!(
        read_file(&part) == read_file(&kiln),
        "the disk's partition is not the filesystem genimage made"
    );
}

/// systemd-repart's partition definition: an ext4 root filesystem filled
/// from a directory.
fn repart_definition(src: &Path) -> String {
    format!(
        "[Partition]\nType=root\nFormat=ext4\nCopyFiles={}:/\nSizeMinBytes=64M\n",
        src.display()
    )
}

#[test]
fn systemd_repart_format_and_copy_files() {
    if !judges("systemd-repart") || !require_tool("sgdisk") || !require_tool("sfdisk") {
        return;
    }
    let case = Case::new("ext4", 4096);
    let src = example_copy(&case);
    let snap = Snapshot::take(&[&src]);
    let defs = case.mkdir("repart.d");
    write_file(
        &defs.join("10-root.conf"),
        repart_definition(&src).as_bytes(),
    );
    let impostor = Impostor::new();
    let mut parts = BTreeMap::new();
    for mke2fs in [Mke2fs::Real, Mke2fs::Kiln] {
        let disk = case.path(&format!("{mke2fs:?}.img"));
        let mut cmd = tool("systemd-repart");
        cmd.args([
            "--empty=create",
            "--size=128M",
            "--dry-run=no",
            "--seed=0f0a9f6c-5a4e-4a3b-9d1e-2c1b0a998877",
        ])
        .arg(format!("--definitions={}", defs.display()))
        .arg(&disk);
        mke2fs.apply(&impostor, &mut cmd);
        run_ok(&mut cmd, &format!("systemd-repart with {mke2fs:?} mke2fs"));
        assert_sgdisk_clean(&disk);
        let table = sfdisk_parts(&disk);
        assert_eq!(table.len(), 1, "{table:?}");
        let part = case.path(&format!("{mke2fs:?}.ext4"));
        extract(
            &disk,
            table[0].start * SECTOR,
            table[0].size * SECTOR,
            &part,
        );
        parts.insert(mke2fs, part);
    }
    let kiln = &parts[&Mke2fs::Kiln];
    assert_same_geometry("systemd-repart", kiln, &parts[&Mke2fs::Real]);
    // repart formats an empty filesystem and the kernel copies the files
    // in: after the kernel's writes e2fsck is still clean.
    assert_holds(kiln, &snap, Filler::Kernel, None);
}

/// A client's command lines, copied from its sources: `make` formats
/// `$IMG` (filling it from `$ROOT`, or leaving it empty), `finish` runs
/// what the client runs after it (on kiln's image only: the real mke2fs's
/// image is only compared before).
struct Client {
    name: &'static str,
    make: &'static str,
    finish: &'static str,
    filler: Filler,
    /// The SOURCE_DATE_EPOCH the client sets: kiln, as mke2fs 1.47.1 and
    /// later, clamps later times to it (this host's 1.47.0 does not).
    clamp: Option<i64>,
}

/// Buildroot, `fs/ext2/ext2.mk` (master e991fa07, 2026-08): `ROOTFS_EXT2_CMD`
/// with `ROOTFS_EXT2_OPTS` and the defaults of `fs/ext2/Config.in` (ext4
/// chosen, `-N 0 -m 5 -L rootfs -I 256 -O ^64bit`); the size, a user
/// setting (default "60M"), is 96M so the test tree fits. Buildroot runs it
/// under fakeroot; the test runs as root.
const BUILDROOT: Client = Client {
    name: "Buildroot ext2.mk",
    make: r#"rm -f "$IMG"
mkfs.ext4 -d "$ROOT" -N 0 -m 5 -L "rootfs" -I 256 -O ^64bit "$IMG" "96M""#,
    finish: "",
    filler: Filler::Mke2fs,
    clamp: None,
};

/// Yocto, openembedded-core `meta/classes-recipe/image_types.bbclass`
/// (master 35a2c6ed, 2026-08): `oe_mkext234fs ext4 -i 4096` with
/// SOURCE_DATE_EPOCH set (its reproducible branch: E2FSPROGS_FAKE_TIME and
/// a hash seed, uuid5 of the epoch), ROOTFS_SIZE at its 64 MiB minimum
/// plus room for the test tree, then its fsck.
const YOCTO: Client = Client {
    name: "Yocto image_types.bbclass",
    make: r#"export E2FSPROGS_FAKE_TIME=1302044400
ROOTFS_SIZE=98304; COUNT=0
dd if=/dev/zero of="$IMG" seek=$ROOTFS_SIZE count=$COUNT bs=1024
mkfs.ext4 -F -i 4096 -E hash_seed=359e0fe3-70f8-5656-8d6a-d5147041f649 "$IMG" -d "$ROOT""#,
    finish: r#"fsck.ext4 -pvfD "$IMG" || [ $? -le 3 ]"#,
    filler: Filler::Mke2fs,
    clamp: None,
};

/// nixpkgs, `nixos/lib/make-ext4-fs.nix` (as sd-image.nix calls it: label
/// NIXOS_SD, the default UUID): its size estimate, mkfs, fsck and the
/// resize2fs passes. Without faketime and fakeroot (not installed; the test
/// runs as root), and `16*1048576` for gawk's `16*2**20`.
const NIXPKGS: Client = Client {
    name: "nixpkgs make-ext4-fs.nix",
    make: r#"img="$IMG"
numInodes=$(find "$ROOT" | wc -l)
numDataBlocks=$(du -s -c -B 4096 --apparent-size "$ROOT" | tail -1 | awk '{ print int($1 * 1.20) }')
bytes=$((2 * 4096 * $numInodes + 4096 * $numDataBlocks))
mebibyte=$(( 1024 * 1024 ))
if (( bytes % mebibyte )); then
  bytes=$(( ( bytes / mebibyte + 1) * mebibyte ))
fi
truncate -s $bytes $img
SOURCE_DATE_EPOCH=315532800 mkfs.ext4 -L NIXOS_SD -U 44444444-4444-4444-8888-888888888888 -d "$ROOT" $img"#,
    finish: r#"img="$IMG"
export EXT2FS_NO_MTAB_OK=yes
fsck.ext4 -n -f $img
resize2fs -M $img
new_size=$(dumpe2fs -h $img | awk -F: \
  '/Block count/{count=$2} /Block size/{size=$2} END{print (count*size+16*1048576)/size}')
resize2fs $img $new_size"#,
    filler: Filler::Mke2fs,
    clamp: Some(315_532_800),
};

/// debos, `actions/image_partition_action.go` (main 76a7b0fa, 2026-06):
/// `formatPartition` for `fs: ext4` with a label, extended options (RAID
/// hints) and a UUID (the recipe's `fslabel`, `extendedoptions` and
/// `fsuuid`), on the
/// partition of its example recipe (936 MB), then filled as its
/// `filesystem-deploy` action fills it (`cp -a ROOT/. MOUNTPOINT`).
const DEBOS: Client = Client {
    name: "debos image-partition",
    make: r#"truncate -s 936000000 "$IMG"
UNIX_IO_NOZEROOUT=1 mkfs.ext4 -L root -E stride=16,stripe_width=64 -U 5c2a7f0e-61f5-4bd4-9b3e-0c6f9d0a7e21 "$IMG""#,
    finish: r#"mnt=$(mktemp -d)
mount -o loop "$IMG" "$mnt"
cp -a "$ROOT/." "$mnt"
umount "$mnt"
rmdir "$mnt""#,
    filler: Filler::Kernel,
    clamp: None,
};

/// Runs `script` under bash with `$ROOT`, `$IMG` and this mke2fs.
fn run_script(impostor: &Impostor, mke2fs: Mke2fs, script: &str, root: &Path, image: &Path) {
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", script])
        .env("ROOT", root)
        .env("IMG", image)
        .env("LC_ALL", "C");
    mke2fs.apply(impostor, &mut cmd);
    run_ok(&mut cmd, &format!("{script}\n(with {mke2fs:?} mke2fs)"));
}

#[test]
fn verbatim_command_lines_of_buildroot_yocto_nixpkgs_and_debos() {
    if !judges("resize2fs") {
        return;
    }
    let case = Case::new("ext4", 1024);
    let root = case.mkdir("root");
    fixture::full(&root, 1024);
    let impostor = Impostor::new();
    for client in [BUILDROOT, YOCTO, NIXPKGS, DEBOS] {
        // No space in the name: nixpkgs' lines leave `$img` unquoted.
        let project = client.name.split(' ').next().expect("a name");
        let image = |m: Mke2fs| case.path(&format!("{project}-{m:?}.img"));
        // Taken again for each client: e2fsprogs' mke2fs reads the
        // directories without O_NOATIME, which moves their access times.
        let snap = Snapshot::take(&[&root]);
        for mke2fs in [Mke2fs::Kiln, Mke2fs::Real] {
            run_script(&impostor, mke2fs, client.make, &root, &image(mke2fs));
        }
        let kiln = image(Mke2fs::Kiln);
        assert_same_geometry(client.name, &kiln, &image(Mke2fs::Real));
        if !client.finish.is_empty() {
            run_script(&impostor, Mke2fs::Kiln, client.finish, &root, &kiln);
        }
        assert_holds(&kiln, &snap, client.filler, client.clamp);
    }
}

/// Runs kiln as `program` (through the impostor's symlink) with `args`.
fn as_program<S: AsRef<OsStr>>(impostor: &Impostor, program: &str, args: &[S]) -> Output {
    run(Command::new(impostor.dir.path().join(program))
        .args(args)
        .env("LC_ALL", "C")
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("E2FSPROGS_FAKE_TIME"))
}

#[test]
fn names_help_refusals_in_place_and_empty_filesystems() {
    if !require_tool("e2fsck") || !require_tool("debugfs") {
        return;
    }
    let case = Case::new("ext4", 1024);
    let impostor = Impostor::new();
    let example = example_copy(&case);
    let os = |s: &str| OsString::from(s);
    let argv = |img: &Path| {
        vec![
            os("-q"),
            os("-d"),
            example.clone().into(),
            img.into(),
            os("32M"),
        ]
    };

    // The program name decides the type; `kiln mkfs -t` is the same build.
    let named = case.path("named.img");
    let out = as_program(&impostor, "mkfs.ext4", &argv(&named));
    assert_success(&out, "mkfs.ext4 -d");
    e2fsck_clean(&named);
    let mut sub = vec![os("mkfs"), os("-t"), os("ext4")];
    let subcommand = case.path("subcommand.img");
    sub.extend(argv(&subcommand));
    assert_success(&kiln(&sub), "kiln mkfs -t ext4 -d");
    assert!(
        read_file(&named) == read_file(&subcommand),
        "kiln mkfs: other bytes"
    );
    let ext2 = case.path("ext2.img");
    assert_success(&as_program(&impostor, "mke2fs", &argv(&ext2)), "mke2fs");
    let features = &dumpe2fs_header(&ext2)["Filesystem features"];
    assert!(
        !features.contains("has_journal") && !features.contains("extent"),
        "{features}"
    );

    // -V alone prints the version, as scripts probe mke2fs.
    let out = as_program(&impostor, "mkfs.ext4", &[OsStr::new("-V")]);
    assert_success(&out, "mkfs.ext4 -V");
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("mke2fs 1.47"),
        "{}",
        describe(&out)
    );

    // --help names the differences and every option.
    let out = as_program(&impostor, "mkfs.ext4", &[OsStr::new("--help")]);
    assert_success(&out, "mkfs.ext4 --help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Differences from mke2fs") && help.contains("-E stripe_width"),
        "{help}"
    );

    // Refused: an option that changes the image in a way kiln cannot make,
    // named; nothing written.
    let refused = case.path("refused.img");
    let mut args = vec![os("-C"), os("16384")];
    args.extend(argv(&refused));
    let out = as_program(&impostor, "mkfs.ext4", &args);
    let text = describe(&out);
    assert!(!out.status.success() && text.contains("-C"), "{text}");
    assert!(
        !refused.exists(),
        "a refused run left {}",
        refused.display()
    );

    // An existing file larger than the filesystem is written in place: its
    // length and the bytes past the filesystem stay, as with mke2fs.
    let device = case.path("device.img");
    let mut bytes = vec![0u8; 40 << 20];
    bytes[36 << 20..(36 << 20) + 4].copy_from_slice(b"keep");
    write_file(&device, &bytes);
    assert_success(
        &as_program(&impostor, "mkfs.ext4", &argv(&device)),
        "in place",
    );
    let after = read_file(&device);
    assert_eq!(after.len(), 40 << 20);
    assert_eq!(&after[36 << 20..(36 << 20) + 4], b"keep");
    let fs = case.path("device-fs.img");
    write_file(&fs, &after[..32 << 20]);
    assert!(
        read_file(&fs) == read_file(&named),
        "the filesystem in the file differs from the new file's"
    );

    // Without -d: an empty filesystem, its root made at E2FSPROGS_FAKE_TIME.
    let empty = case.path("empty.img");
    let out = run(Command::new(impostor.dir.path().join("mkfs.ext4"))
        .args([OsStr::new("-q"), empty.as_os_str(), OsStr::new("16M")])
        .env("E2FSPROGS_FAKE_TIME", "1700000000")
        .env_remove("SOURCE_DATE_EPOCH"));
    assert_success(&out, "mkfs.ext4 without -d");
    e2fsck_clean(&empty);
    let root = debugfs_stat(&empty, "/");
    assert!(root.contains("mtime: 0x6553f100"), "{root}");
    let stat = DebugfsStat::parse(&root);
    assert_eq!((stat.perm, stat.uid, stat.gid), (0o755, 0, 0), "{root}");
    // `ls -p`: one `/ino/mode/uid/gid/name/size/` line per entry.
    let names: Vec<String> = debugfs(&empty, "ls -p /")
        .lines()
        .filter_map(|l| l.split('/').nth(5).map(str::to_string))
        .collect();
    assert_eq!(names, [".", "..", "lost+found"]);

    // -d takes a tar archive, also on standard input (mke2fs 1.47.1). Last:
    // tar reading the example moves its access times (relatime), which
    // the builds above store.
    let tar = case.path("example.tar");
    run_ok(
        tool("tar")
            .arg("-C")
            .arg(&example)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
        "tar",
    );
    let from_tar = case.path("tar.img");
    let args = [
        os("-q"),
        os("-d"),
        tar.clone().into(),
        from_tar.clone().into(),
        os("32M"),
    ];
    assert_success(
        &as_program(&impostor, "mkfs.ext4", &args),
        "mkfs.ext4 -d TAR",
    );
    e2fsck_clean(&from_tar);
    let from_stdin = case.path("stdin.img");
    let out = run(Command::new(impostor.dir.path().join("mkfs.ext4"))
        .args([
            os("-q"),
            os("-d"),
            os("-"),
            from_stdin.clone().into(),
            os("32M"),
        ])
        .stdin(std::fs::File::open(&tar).expect("open the tar")));
    assert_success(&out, "mkfs.ext4 -d -");
    assert!(
        read_file(&from_tar) == read_file(&from_stdin),
        "-d - and -d TAR differ"
    );
}

/// The settings of e2fsprogs 1.47's own mke2fs.conf that matter here (its
/// ext4 gets metadata_csum_seed and orphan_file, which Debian's leaves
/// out), for MKE2FS_CONFIG.
const UPSTREAM_CONF: &str = "[defaults]
\tbase_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
\tblocksize = 4096
\tinode_size = 256
\tinode_ratio = 16384
[fs_types]
\text4 = {
\t\tfeatures = has_journal,extent,huge_file,flex_bg,metadata_csum,metadata_csum_seed,64bit,dir_nlink,extra_isize,orphan_file
\t}
\tsmall = {
\t\tblocksize = 1024
\t\tinode_ratio = 4096
\t}
";

#[test]
fn upstream_conf_with_metadata_csum_seed_and_orphan_file() {
    if !judges("tune2fs") {
        return;
    }
    let case = Case::new("ext4", 1024);
    let conf = case.path("mke2fs.conf");
    write_file(&conf, UPSTREAM_CONF.as_bytes());
    let root = case.mkdir("root");
    fixture::full(&root, 1024);
    let snap = Snapshot::take(&[&root]);
    let impostor = Impostor::new();
    let image = |m: Mke2fs| case.path(&format!("{m:?}.img"));
    for mke2fs in [Mke2fs::Kiln, Mke2fs::Real] {
        let mut cmd = Command::new("mkfs.ext4");
        cmd.args([OsStr::new("-q"), OsStr::new("-d"), root.as_os_str()])
            .arg(image(mke2fs))
            .arg("96M")
            .env("MKE2FS_CONFIG", &conf);
        mke2fs.apply(&impostor, &mut cmd);
        run_ok(&mut cmd, &format!("mkfs.ext4 with {mke2fs:?} mke2fs"));
    }
    let kiln = image(Mke2fs::Kiln);
    assert_same_geometry("e2fsprogs' mke2fs.conf", &kiln, &image(Mke2fs::Real));
    let header = dumpe2fs_header(&kiln);
    assert!(
        header["Filesystem features"].contains("orphan_file"),
        "{header:?}"
    );
    assert_eq!(header["Orphan file inode"], "12");
    // The orphan file's size and blocks, as mke2fs makes them.
    let stat = |i: &Path| {
        let text = debugfs_stat(i, "<12>");
        let size = text
            .split("Size: ")
            .nth(1)
            .map(|s| s.split_whitespace().next().map(str::to_string));
        (DebugfsStat::parse(&text).perm, size)
    };
    assert_eq!(stat(&kiln), stat(&image(Mke2fs::Real)));
    assert_holds(&kiln, &snap, Filler::Mke2fs, None);
    // The kernel files an open, unlinked file in it; e2fsck is clean after.
    {
        let mount = Mount::rw(&kiln, "ext4");
        let held = mount.path().join("held");
        let file = std::fs::File::create(&held).expect("create");
        std::fs::remove_file(&held).expect("unlink");
        drop(file);
        mount.unmount();
    }
    e2fsck_clean(&kiln);
    // The seed kept in the superblock keeps the checksums valid after a UUID change.
    run_ok(
        tool("tune2fs").arg("-U").arg("random").arg(&kiln),
        "tune2fs -U random",
    );
    e2fsck_clean(&kiln);
}

/// mke2fs command lines whose inode count takes its rounding: whole inode
/// table blocks, then whole bitmap bytes, with 4 inodes a block (1 KiB
/// blocks of 256-byte inodes, mkfs.ext4's choice below 512 MiB).
const INODE_ROUNDING: [(&str, &[&str]); 6] = [
    ("mkfs.ext4", &["100M"]),
    ("mkfs.ext4", &["20M"]),
    ("mkfs.ext4", &["110M"]),
    ("mkfs.ext2", &["-N", "5000", "32M"]),
    ("mkfs.ext3", &["-i", "8192", "-b", "1024", "200M"]),
    ("mkfs.ext4", &["-T", "news", "300M"]),
];

#[test]
fn inode_counts_as_mke2fs_rounds_them() {
    if !require_tool("mke2fs") || !require_tool("dumpe2fs") || !require_tool("e2fsck") {
        return;
    }
    let case = Case::new("ext4", 1024);
    let impostor = Impostor::new();
    for (i, (program, args)) in INODE_ROUNDING.iter().enumerate() {
        let image = |m: Mke2fs| case.path(&format!("{i}-{m:?}.img"));
        for mke2fs in [Mke2fs::Kiln, Mke2fs::Real] {
            let mut cmd = Command::new(program);
            cmd.args(["-q", "-F"]).arg(image(mke2fs)).args(args.iter());
            mke2fs.apply(&impostor, &mut cmd);
            run_ok(
                &mut cmd,
                &format!("{program} {args:?} with {mke2fs:?} mke2fs"),
            );
        }
        e2fsck_clean(&image(Mke2fs::Kiln));
        let what = format!("{program} {}", args.join(" "));
        assert_same_geometry(&what, &image(Mke2fs::Kiln), &image(Mke2fs::Real));
    }
}

#[test]
fn the_device_is_written_as_mke2fs_opens_it() {
    if !require_root() || !require_tool("e2fsck") {
        return;
    }
    let case = Case::new("ext4", 1024);
    let impostor = Impostor::new();
    let os = |s: &str| OsString::from(s);

    // A link to a short file: the file is extended and written through it.
    let short = case.path("short.img");
    write_file(&short, &[0u8; 1 << 20]);
    let link = case.path("link.img");
    std::os::unix::fs::symlink(&short, &link).expect("symlink");
    let out = as_program(
        &impostor,
        "mkfs.ext4",
        &[os("-q"), link.clone().into(), os("32M")],
    );
    assert_success(&out, "mkfs.ext4 LINK 32M");
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(std::fs::metadata(&short).unwrap().len(), 32 << 20);
    e2fsck_clean(&short);

    // -E offset names where the filesystem starts in a new file.
    let disk = case.path("disk.img");
    let args = [
        os("-q"),
        os("-E"),
        os("offset=1048576"),
        disk.clone().into(),
        os("16M"),
    ];
    assert_success(
        &as_program(&impostor, "mkfs.ext4", &args),
        "-E offset, new file",
    );
    let bytes = read_file(&disk);
    assert_eq!(bytes.len(), 17 << 20);
    assert!(
        bytes[..1 << 20].iter().all(|&b| b == 0),
        "bytes before the offset"
    );
    let fs = case.path("disk-fs.img");
    write_file(&fs, &bytes[1 << 20..]);
    e2fsck_clean(&fs);

    // Neither a file nor a block device: refused, and left as it is.
    let null = case.path("null");
    sys::mknod(&null, sys::Kind::CharDev, 0o666, 1, 3);
    let out = as_program(
        &impostor,
        "mkfs.ext4",
        &[os("-q"), null.clone().into(), os("16M")],
    );
    let text = describe(&out);
    assert!(
        !out.status.success() && text.contains("neither a regular file nor a block device"),
        "{text}"
    );
    assert_eq!(sys::lstat(&null).unwrap().kind, sys::Kind::CharDev);
}
