//! `cargo xtask boot`: kiln's images boot a virtual machine.
//!
//! Each case builds an image with kiln, boots it under QEMU (software emulation) with
//! Debian's kernel and an initramfs made here from Debian's busybox-static, and passes only
//! if the guest's own checks print the marker, the guest powers off within the time limit,
//! and the image afterwards has no `needs_recovery` and passes `e2fsck -fn`. The guest runs
//! `/kiln-check` as init (`init=`), which the case puts in the tree: it checks what the case
//! is about, writes to its root, remounts it read-only and powers off. (At the top: a
//! Debian tree's `/sbin` is a symlink that a directory in an overlay would replace.)
//!
//! Most cases hand QEMU the kernel (`-kernel`). `uefi-systemd-boot` (uefi.rs) does not:
//! OVMF (package ovmf) boots the disk of `fixtures/disk/uefi.toml`, whose ESP holds
//! systemd-boot (package systemd-boot-efi), its entry, the kernel and the initramfs, and
//! the guest also mounts the ESP with Linux's vfat driver and compares every name and byte
//! with a manifest the case puts in the root; the disk is built twice and must be the
//! same bytes. Firmware under software emulation makes it the slowest boot but one.
//!
//! `verity`, `verity-append` and `verity-corrupt` (verity.rs) boot a read-only ext4 root
//! (no journal) on dm-verity: the hash tree is a second disk (in `verity-append`, after
//! the filesystem on the same disk), the command line carries the table as
//! `dm-mod.create=` (dm-init's syntax), and the initramfs loads dm-mod and dm-verity
//! (modules in Debian's kernel, so the kernel's own dm-init is absent) and makes the device
//! with the host's dmsetup, which it carries with its libraries. The guest checks the
//! device, its verified status and every name and byte of the tree; in `verity-corrupt`
//! one byte of a file's block was flipped after the tree was made, and reading that file
//! must fail with an I/O error. kiln writes the tree (`--verity FILE|append`), and the
//! table takes its numbers from the build's `--report`. On a read-only root the check
//! script shows that a write fails instead of writing.
//!
//! `qcow2-gpt` and `vhd-ext4` boot kiln's containers as QEMU reads them
//! (`-drive format=qcow2`, `format=vpc`): a GPT disk written as qcow2, an ext4 written as
//! a fixed VHD. The guest writes to them through QEMU's drivers (which allocate qcow2
//! clusters among kiln's); afterwards `qemu-img check` finds the qcow2 consistent, and
//! both are converted back to raw for the e2fsck judgement.
//!
//! `tailored-rootfs` (tailored.rs; issue 24) boots an image whose source is an image:
//! the Debian tree made into ext4 by `mke2fs -d`, then tailored by kiln with an overlay
//! and a spec line (`kiln build base.img OVERLAY/ -p 'file /etc/hostname …'`). The guest
//! checks the spec's hostname and runs the Debian case's `dpkg --verify` on the files kiln
//! read out of mke2fs's image.
//!
//! The kernel and busybox packages are fetched once with `apt-get download` into
//! `$KILN_BOOT_DIR` (default /tmp/kiln-boot), and the initramfs (initrd.rs) is kept there
//! too.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};

mod initrd;
mod tailored;
mod uefi;
mod verity;

/// The flags of `cargo xtask boot`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Run only these cases (repeatable); all without it.
    #[arg(long = "case", value_name = "NAME")]
    cases: Vec<String>,
    /// Seconds a boot may take before it counts as hung (the Debian rootfs case gets
    /// five times as long: it checks every installed file).
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

/// The guest prints this when all of its checks passed.
const MARKER: &str = "KILN-BOOT-OK";

/// Applets the busybox trees link to, for the guest's checks.
const APPLETS: &[&str] = &[
    "sh",
    "mount",
    "umount",
    "sync",
    "cat",
    "echo",
    "stat",
    "sha256sum",
    "uname",
    "cut",
    "head",
    "ls",
    "grep",
    "sleep",
    "test",
    "[",
    "find",
    "sort",
    "diff",
    "wc",
    "dmesg",
];

/// One boot: what kiln builds and how the kernel finds its root.
struct Case {
    name: &'static str,
    run: fn(&Harness, &Path) -> Result<Boot>,
    /// Multiplies the time limit.
    slow: u64,
}

/// An image ready to boot.
struct Boot {
    image: PathBuf,
    /// More virtio disks after the image (`/dev/vdb`, `/dev/vdc`, ...), for the guest's
    /// checks.
    extra_disks: Vec<PathBuf>,
    start: Start,
    /// Where the root filesystem starts in the image (a partition's offset).
    offset: u64,
    /// The image's format, as QEMU names its driver: `raw`, `qcow2`, `vpc` (VHD).
    format: &'static str,
}

/// How QEMU starts the guest's kernel.
enum Start {
    /// QEMU loads the harness's kernel and initramfs itself (`-kernel`), with this `root=`
    /// and `rootfstype=`, then `args`: `rw` for a root the guest writes, or `ro` and what
    /// sets up the root's device (verity.rs).
    Kernel {
        root: String,
        fs_type: &'static str,
        args: String,
    },
    /// UEFI firmware boots the disk: the bootloader on its ESP loads the kernel, the
    /// initramfs and the command line (which must run `/kiln-check`). The firmware's
    /// variables are a writable copy, in the scratch folder.
    Firmware(uefi::Firmware),
}

impl Start {
    /// A root the guest mounts read-write from a disk it finds as `root`.
    fn root(root: impl Into<String>, fs_type: &'static str) -> Self {
        Start::Kernel {
            root: root.into(),
            fs_type,
            args: "rw".into(),
        }
    }
}

/// Whether the guest's root takes writes: the check script writes to a writable one, and
/// shows that a read-only one refuses the write.
#[derive(Clone, Copy)]
enum Access {
    Writable,
    ReadOnly,
}

/// Everything the cases share: the kiln binary, the kernel, the busybox binary.
struct Harness {
    kiln: PathBuf,
    kernel: PathBuf,
    initrd: PathBuf,
    busybox: PathBuf,
}

const CASES: &[Case] = &[
    Case {
        name: "seed-ext3",
        run: seed_ext3,
        slow: 1,
    },
    Case {
        name: "ext4",
        run: plain_ext4,
        slow: 1,
    },
    Case {
        name: "ext2",
        run: plain_ext2,
        slow: 1,
    },
    Case {
        name: "gpt-partuuid",
        run: gpt_partuuid,
        slow: 1,
    },
    Case {
        name: "qcow2-gpt",
        run: gpt_qcow2,
        slow: 1,
    },
    Case {
        name: "vhd-ext4",
        run: vhd_ext4,
        slow: 1,
    },
    Case {
        name: "tar-by-user",
        run: tar_by_user,
        slow: 1,
    },
    Case {
        name: "uefi-systemd-boot",
        run: uefi::systemd_boot,
        // Firmware under TCG: the firmware and the loader come before the kernel.
        slow: 3,
    },
    Case {
        name: "verity",
        run: verity::intact,
        slow: 1,
    },
    Case {
        name: "verity-append",
        run: verity::append,
        slow: 1,
    },
    Case {
        name: "verity-corrupt",
        run: verity::corrupt,
        slow: 1,
    },
    Case {
        name: "debian-dpkg-verify",
        run: debian_rootfs,
        slow: 5,
    },
    Case {
        name: "tailored-rootfs",
        run: tailored::tailored_rootfs,
        // The same `dpkg --verify` as debian-dpkg-verify.
        slow: 5,
    },
];

/// Runs the cases (all, or those named) and fails if any did.
pub(crate) fn run(args: &Args) -> Result<()> {
    for name in &args.cases {
        ensure!(
            CASES.iter().any(|c| c.name == name),
            "no case {name:?}; the cases: {}",
            CASES.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
        );
    }
    let work = work_dir();
    fs::create_dir_all(&work).with_context(|| format!("mkdir {}", work.display()))?;
    let (kernel, initrd, busybox) = initrd::prepare_kernel(&work)?;
    let harness = Harness {
        kiln: crate::build_kiln(crate::Profile::Debug)?,
        kernel,
        initrd,
        busybox,
    };
    let mut failures = String::new();
    for case in CASES {
        if !args.cases.is_empty() && !args.cases.iter().any(|c| c == case.name) {
            continue;
        }
        let scratch = tempfile::Builder::new().prefix("kiln-boot.").tempdir()?;
        let start = Instant::now();
        let result = (case.run)(&harness, scratch.path()).and_then(|boot| {
            // The boot alone (QEMU's run and the judging after it), without the build.
            let booted = Instant::now();
            let said = harness.boot(&boot, args.timeout * case.slow, scratch.path())?;
            Ok((said, booted.elapsed()))
        });
        match result {
            Ok((said, boot_time)) => eprintln!(
                "PASS {} ({:.1} s, the boot {:.1} s): {said}",
                case.name,
                start.elapsed().as_secs_f64(),
                boot_time.as_secs_f64()
            ),
            Err(err) => {
                eprintln!("FAIL {}: {err:#}", case.name);
                writeln!(failures, "{}: {err:#}", case.name)?;
            }
        }
    }
    ensure!(failures.is_empty(), "boot cases failed:\n{failures}");
    Ok(())
}

/// Where the kernel, busybox and initramfs are kept between runs.
fn work_dir() -> PathBuf {
    std::env::var_os("KILN_BOOT_DIR").map_or_else(|| PathBuf::from("/tmp/kiln-boot"), PathBuf::from)
}

/// Runs `cmd`, failing with its output if it fails; returns its stdout.
fn run_cmd(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("could not run {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Writes `text` to `path` with mode 0755.
fn write_executable(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// The guest's init: `checks` (shell lines that call `expect NAME COMMAND WANTED`), then a
/// write to the root (which must fail on a read-only root), a read-only remount, the
/// marker if nothing failed, and power off (through sysrq, which needs no init system).
fn check_script(shell: &str, checks: &str, access: Access) -> String {
    let write = match access {
        Access::Writable => {
            r#"echo "booted $(uname -r)" > /var/kiln-boot-result || failed="$failed write""#
        }
        Access::ReadOnly => {
            r#"! touch /var/kiln-boot-result 2>/dev/null || failed="$failed read-only""#
        }
    };
    format!(
        r#"#!{shell}
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
failed=
expect() {{
  got=$(sh -c "$2" 2>&1)
  [ "$got" = "$3" ] || {{ echo "CHECK-FAIL $1: got [$got], want [$3]"; failed="$failed $1"; }}
}}
{checks}
{write}
sync
mount -o remount,ro / || failed="$failed remount"
if [ -z "$failed" ]; then echo "{MARKER} $(uname -r)"; else echo "KILN-BOOT-FAILED:$failed"; fi
echo o > /proc/sysrq-trigger
sleep 30
"#
    )
}

impl Harness {
    /// A small root tree: busybox, the usual directories, and `/kiln-check` running
    /// `checks` on a root of that `access`.
    fn busybox_tree(&self, root: &Path, checks: &str, access: Access) -> Result<()> {
        for dir in ["bin", "sbin", "dev", "proc", "sys", "etc", "var", "tmp"] {
            fs::create_dir_all(root.join(dir))?;
        }
        fs::copy(&self.busybox, root.join("bin/busybox"))?;
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
        }
        write_executable(
            &root.join("kiln-check"),
            &check_script("/bin/sh", checks, access),
        )
    }

    /// Runs kiln with `args`.
    fn kiln(&self, args: &[&str]) -> Result<()> {
        run_cmd(
            Command::new(&self.kiln)
                .args(args)
                .env("SOURCE_DATE_EPOCH", "1700000000"),
        )?;
        Ok(())
    }

    /// Boots `boot` and judges the run and the image afterwards; returns the guest's
    /// informative lines (`dpkg: ...`) and its marker line.
    fn boot(&self, boot: &Boot, timeout: u64, scratch: &Path) -> Result<String> {
        let log = scratch.join("serial.log");
        let drive = format!(
            "file={},format={},if=virtio",
            boot.image.display(),
            boot.format
        );
        let status = Command::new("timeout")
            .args(["--signal=KILL", &timeout.to_string(), "qemu-system-x86_64"])
            .args([
                "-accel", "tcg", "-m", "512", "-smp", "1", "-display", "none",
            ])
            .args([
                "-no-reboot",
                "-monitor",
                "none",
                "-serial",
                "stdio",
                "-nic",
                "none",
            ])
            .args(self.start_args(&boot.start))
            .args(["-drive", &drive])
            .args(boot.extra_disks.iter().flat_map(|disk| {
                [
                    "-drive".to_string(),
                    format!("file={},format=raw,if=virtio", disk.display()),
                ]
            }))
            .stdin(std::process::Stdio::null())
            .stdout(fs::File::create(&log)?)
            .stderr(std::process::Stdio::inherit())
            .status()
            .context("could not run qemu-system-x86_64 (apt-get install qemu-system-x86)")?;
        let serial = String::from_utf8_lossy(&fs::read(&log)?).into_owned();
        let tail = || {
            serial
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        };
        if !status.success() {
            bail!(
                "QEMU did not power off within {timeout} s ({status}); serial log:\n{}",
                tail()
            );
        }
        let Some(marker) = serial.lines().find(|l| l.starts_with(MARKER)) else {
            bail!("the guest did not print {MARKER}; serial log:\n{}", tail());
        };
        self.judge_image(boot, scratch)?;
        let said: Vec<&str> = serial
            .lines()
            .filter(|l| l.starts_with("dpkg: "))
            .chain([marker.trim()])
            .collect();
        Ok(said.join("; "))
    }

    /// QEMU's arguments that start the kernel as `start` says.
    fn start_args(&self, start: &Start) -> Vec<OsString> {
        match start {
            Start::Kernel {
                root,
                fs_type,
                args,
            } => {
                let append = format!(
                    "root={root} rootfstype={fs_type} {args} console=ttyS0 panic=-1 quiet \
                     init=/kiln-check"
                );
                let mut args: Vec<OsString> = vec!["-kernel".into(), self.kernel.clone().into()];
                args.extend(["-initrd".into(), self.initrd.clone().into()]);
                args.extend(["-append".into(), append.into()]);
                args
            }
            Start::Firmware(firmware) => firmware.qemu_args(),
        }
    }

    /// After the boot: a container is consistent (`qemu-img check`) and is judged as the
    /// raw image it holds; no journal left to recover, and e2fsck finds nothing.
    fn judge_image(&self, boot: &Boot, scratch: &Path) -> Result<()> {
        let image = match boot.format {
            "raw" => boot.image.clone(),
            format => raw_of_container(&boot.image, format, scratch)?,
        };
        // e2fsprogs opens a filesystem inside a bigger file as `FILE?offset=BYTES`.
        let target = if boot.offset == 0 {
            image.display().to_string()
        } else {
            format!("{}?offset={}", image.display(), boot.offset)
        };
        let header = run_cmd(Command::new("dumpe2fs").args(["-h", &target]))?;
        ensure!(
            !header.contains("needs_recovery"),
            "the journal needs recovery after the guest's shutdown"
        );
        run_cmd(Command::new("e2fsck").args(["-fn", &target]))
            .context("e2fsck -fn after the boot")?;
        Ok(())
    }
}

/// The raw image inside the container `image` (QEMU's driver `format`), after
/// `qemu-img check` has found the container consistent (qcow2: the clusters QEMU
/// allocated for the guest's writes among kiln's).
fn raw_of_container(image: &Path, format: &str, scratch: &Path) -> Result<PathBuf> {
    if format == "qcow2" {
        run_cmd(
            Command::new("qemu-img")
                .args(["check", "-f", format])
                .arg(image),
        )
        .context("qemu-img check after the boot")?;
    }
    let raw = scratch.join("judged.raw");
    run_cmd(
        Command::new("qemu-img")
            .args(["convert", "-f", format, "-O", "raw"])
            .arg(image)
            .arg(&raw),
    )?;
    Ok(raw)
}

/// Where partition `number` of the GPT disk `image` starts, in bytes.
fn partition_offset(image: &Path, number: u32) -> Result<u64> {
    // partx gives the start in 512-byte sectors.
    let start = run_cmd(
        Command::new("partx")
            .args(["-g", "-o", "START", "-n", &number.to_string()])
            .arg(image),
    )?;
    let sectors: u64 = start.trim().parse().context("partx START")?;
    Ok(sectors * 512)
}

/// The SHA-256 of `path`, as `sha256sum` prints it.
fn sha256(path: &Path) -> Result<String> {
    let out = run_cmd(Command::new("sha256sum").arg(path))?;
    Ok(out
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// The seed recipe: a bare ext3 image of a root tree plus a tailoring overlay
/// (fixtures/overlay: /etc/hostname and /etc/fstab), whose guest checks that both files
/// are the overlay's.
fn seed_ext3(h: &Harness, scratch: &Path) -> Result<Boot> {
    let overlay = crate::repo_root().join("fixtures/overlay");
    let mut checks = String::new();
    for file in ["etc/hostname", "etc/fstab"] {
        let want = sha256(&overlay.join(file))?;
        writeln!(
            checks,
            "expect {file} 'sha256sum /{file} | cut -d\" \" -f1' {want}"
        )?;
    }
    let root = scratch.join("root");
    h.busybox_tree(&root, &checks, Access::Writable)?;
    fs::write(root.join("etc/hostname"), "base\n")?;
    fs::write(root.join("etc/fstab"), "# base\n")?;
    let image = scratch.join("sda1.img");
    let (r, o, i) = (
        root.display().to_string(),
        overlay.display().to_string(),
        image.display().to_string(),
    );
    h.kiln(&["build", &r, &o, "-o", &i, "-t", "ext3", "--size", "64M"])?;
    Ok(Boot {
        extra_disks: Vec::new(),
        image,
        start: Start::root("/dev/vda", "ext3"),
        offset: 0,
        format: "raw",
    })
}

/// `len` bytes of a fixed pattern that repeats nowhere near a block (Knuth's
/// multiplicative hash of the index, bits from `shift` up), for files whose bytes matter.
fn pattern(len: u32, shift: u32) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> shift) as u8)
        .collect()
}

/// A payload file whose hash the guest checks, in a busybox tree built as `fs_type`, in
/// the container QEMU's driver `format` reads (`raw`, or `vpc`: a VHD).
fn payload_case(
    h: &Harness,
    scratch: &Path,
    fs_type: &'static str,
    format: &'static str,
) -> Result<Boot> {
    let root = scratch.join("root");
    let payload = pattern(300_000, 13);
    let payload_file = scratch.join("payload");
    fs::write(&payload_file, &payload)?;
    let want = sha256(&payload_file)?;
    let checks = format!("expect payload 'sha256sum /etc/payload | cut -d\" \" -f1' {want}\n");
    h.busybox_tree(&root, &checks, Access::Writable)?;
    fs::copy(&payload_file, root.join("etc/payload"))?;
    let extension = if format == "vpc" { "vhd" } else { "img" };
    let image = scratch.join(format!("{fs_type}.{extension}"));
    let (r, i) = (root.display().to_string(), image.display().to_string());
    h.kiln(&["build", &r, "-o", &i, "-t", fs_type, "--size", "64M"])?;
    Ok(Boot {
        extra_disks: Vec::new(),
        image,
        start: Start::root("/dev/vda", fs_type),
        offset: 0,
        format,
    })
}

/// ext4 with kiln's default features (extents, 64bit, flex_bg, metadata_csum, journal).
fn plain_ext4(h: &Harness, scratch: &Path) -> Result<Boot> {
    payload_case(h, scratch, "ext4", "raw")
}

/// ext2: no journal, block maps.
fn plain_ext2(h: &Harness, scratch: &Path) -> Result<Boot> {
    payload_case(h, scratch, "ext2", "raw")
}

/// ext4 written by kiln as a fixed VHD, which QEMU's `vpc` driver reads and writes.
fn vhd_ext4(h: &Harness, scratch: &Path) -> Result<Boot> {
    payload_case(h, scratch, "ext4", "vpc")
}

/// The root partition's unique GUID in [`gpt_partuuid`]'s layout.
const ROOT_PARTUUID: &str = "6f0c2f8e-3b1a-4c5d-9e7f-0a1b2c3d4e5f";

/// A GPT disk from a layout file (an empty ESP, then root-x86-64 ext4), booted with
/// `root=PARTUUID=`.
fn gpt_partuuid(h: &Harness, scratch: &Path) -> Result<Boot> {
    gpt_disk(h, scratch, "raw")
}

/// The same disk written by kiln as qcow2 and booted from it (`-drive format=qcow2`):
/// the guest's writes make QEMU allocate clusters among kiln's.
fn gpt_qcow2(h: &Harness, scratch: &Path) -> Result<Boot> {
    gpt_disk(h, scratch, "qcow2")
}

/// [`gpt_partuuid`]'s disk, as a raw image or as qcow2 (`format`).
fn gpt_disk(h: &Harness, scratch: &Path, format: &'static str) -> Result<Boot> {
    let root = scratch.join("root");
    h.busybox_tree(
        &root,
        "expect root-device 'grep -c \" / ext4 \" /proc/mounts' 1\n",
        Access::Writable,
    )?;
    let layout = format!(
        "[disk]\nsize = \"96M\"\n\n\
         [[partition]]\nlabel = \"esp\"\ntype = \"esp\"\nsize = \"8M\"\n\n\
         [[partition]]\nlabel = \"root\"\ntype = \"root-x86-64\"\nsize = \"grow\"\n\
         uuid = \"{ROOT_PARTUUID}\"\n\
         [partition.filesystem]\ntype = \"ext4\"\nsources = [\"{}\"]\n",
        root.display()
    );
    let config = scratch.join("disk.toml");
    fs::write(&config, layout)?;
    let image = scratch.join(if format == "qcow2" {
        "disk.qcow2"
    } else {
        "disk.img"
    });
    let report = scratch.join("report.json");
    let (c, i, r) = (
        config.display().to_string(),
        image.display().to_string(),
        report.display().to_string(),
    );
    h.kiln(&["build", "--config", &c, "-o", &i, "--report", &r])?;
    let report: serde_json::Value = serde_json::from_slice(&fs::read(&report)?)?;
    let offset = report["partitions"][1]["offset"]
        .as_u64()
        .context("the report's offset of partition 2")?;
    Ok(Boot {
        extra_disks: Vec::new(),
        offset,
        format,
        image,
        start: Start::root(format!("PARTUUID={ROOT_PARTUUID}"), "ext4"),
    })
}

/// A tar made by an unprivileged user (who owns every file), built by the same user with
/// `--all-root` and a spec for device nodes: inside the guest the setuid binary is root's
/// and the device nodes are there as specified.
fn tar_by_user(h: &Harness, scratch: &Path) -> Result<Boot> {
    let nobody = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    use std::os::unix::fs::PermissionsExt;
    // The scratch folder is private (0700): let the user through to a folder of its own.
    fs::set_permissions(scratch, fs::Permissions::from_mode(0o755))?;
    let work = scratch.join("user");
    fs::create_dir_all(&work)?;
    let kiln = work.join("kiln");
    fs::copy(&h.kiln, &kiln)?;
    run_cmd(Command::new("chown").args(["65534:65534"]).arg(&work))?;
    let root = work.join("root");
    let checks = "expect setuid 'stat -c \"%u:%g %a\" /bin/su-test' '0:0 4755'\n\
                  expect char-device 'stat -c \"%F %t:%T %u:%g %a\" /srv/nodes/console' \
                  'character special file 5:1 0:0 600'\n\
                  expect block-device 'stat -c \"%F %t:%T %u:%g %a\" /srv/nodes/vdz' \
                  'block special file fe:0 0:6 660'\n\
                  expect owner 'stat -c \"%u:%g\" /etc/payload' '0:0'\n";
    h.busybox_tree(&root, checks, Access::Writable)?;
    fs::copy(&h.busybox, root.join("bin/su-test"))?;
    fs::write(root.join("etc/payload"), "made by nobody\n")?;
    run_cmd(Command::new("chown").args(["-R", "65534:65534"]).arg(&root))?;
    run_cmd(
        Command::new("chmod")
            .args(["4755"])
            .arg(root.join("bin/su-test")),
    )?;
    let tar = work.join("root.tar");
    run_cmd(
        Command::new("setpriv")
            .args(nobody)
            .args(["tar", "-cf"])
            .arg(&tar)
            .arg("-C")
            .arg(&root)
            .arg("."),
    )?;
    let image = work.join("user.img");
    run_cmd(
        Command::new("setpriv")
            .args(nobody)
            .arg(&kiln)
            .args(["build"])
            .arg(&tar)
            .arg("-o")
            .arg(&image)
            .args(["-t", "ext4", "--size", "64M", "--all-root"])
            .args(["-p", "char /srv/nodes/console 0600 0 0 5 1"])
            .args(["-p", "block /srv/nodes/vdz 0660 0 6 254 0"])
            .env("SOURCE_DATE_EPOCH", "1700000000"),
    )?;
    Ok(Boot {
        extra_disks: Vec::new(),
        image,
        start: Start::root("/dev/vda", "ext4"),
        offset: 0,
        format: "raw",
    })
}

/// The Debian bookworm minbase tree: the rootfs corpus (../shared/corpus/make_rootfs.sh),
/// or where a clone has no shared folder beside it, debootstrap's own minbase from the
/// mirror apt is configured with (into `$BASE/rootfs-boot`, kept).
fn debian_tree() -> Result<PathBuf> {
    match crate::corpus::prepare(crate::corpus::Name::Rootfs) {
        Ok(trees) => {
            return trees
                .into_iter()
                .next()
                .context("the rootfs corpus gave no tree")
        }
        Err(err) => eprintln!("boot: no rootfs corpus ({err:#})"),
    }
    let dest = crate::corpus::base().join("rootfs-boot");
    let done = crate::corpus::base().join(".rootfs-boot-done");
    if done.is_file() {
        eprintln!(
            "boot: using the tree debootstrap made before, {}",
            dest.display()
        );
        return Ok(dest);
    }
    eprintln!("boot: running debootstrap into {}", dest.display());
    // apt's own URI of a package gives the configured mirror: what precedes /pool/.
    let uri = run_cmd(Command::new("apt-get").args(["download", "--print-uris", "debootstrap"]))?;
    let mirror = uri
        .split('\'')
        .nth(1)
        .and_then(|u| u.split("/pool/").next())
        .context("apt-get --print-uris named no mirror")?
        .to_string();
    let _ = fs::remove_dir_all(&dest);
    run_cmd(
        Command::new("debootstrap")
            .args(["--variant=minbase", "bookworm"])
            .arg(&dest)
            .arg(&mirror),
    )?;
    fs::write(&done, "")?;
    Ok(dest)
}

/// The checks of a Debian root: `dpkg --verify` (every installed file against the package
/// database's checksums) and `dpkg --audit` report nothing. The package count guards
/// against a database that is not there (nothing to verify).
const DPKG_CHECKS: &str =
    "expect dpkg-database 'test $(dpkg-query -W -f=. | wc -c) -gt 50 && echo ok' ok\n\
     expect dpkg-verify 'dpkg --verify; echo rc=$?' 'rc=0'\n\
     expect dpkg-audit 'dpkg --audit; echo rc=$?' 'rc=0'\n\
     echo \"dpkg: $(dpkg-query -W -f=. | wc -c) packages verified\"\n";

/// The Debian minbase rootfs (../shared/corpus/make_rootfs.sh) built by kiln: the guest
/// runs `dpkg --verify` (every installed file against the package database's checksums)
/// and `dpkg --audit`, and both must report nothing.
fn debian_rootfs(h: &Harness, scratch: &Path) -> Result<Boot> {
    let tree = debian_tree()?;
    let overlay = scratch.join("overlay");
    fs::create_dir_all(&overlay)?;
    write_executable(
        &overlay.join("kiln-check"),
        &check_script("/bin/sh", DPKG_CHECKS, Access::Writable),
    )?;
    let image = scratch.join("debian.img");
    let (t, o, i) = (
        tree.display().to_string(),
        overlay.display().to_string(),
        image.display().to_string(),
    );
    h.kiln(&[
        "build", &t, &o, "-o", &i, "-t", "ext4", "--size", "auto", "--free", "64M",
    ])?;
    Ok(Boot {
        extra_disks: Vec::new(),
        image,
        start: Start::root("/dev/vda", "ext4"),
        offset: 0,
        format: "raw",
    })
}
