//! The kernel and the initramfs every boot case shares: Debian's kernel package and
//! busybox-static, fetched once, and an initramfs made here that finds the root (also by
//! `root=PARTUUID=`, or a device-mapper device it makes from `dm-mod.create=`) and hands
//! over to the guest's check.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};

use super::{run_cmd, write_executable};

/// Fetches Debian's kernel and busybox-static (once) and makes the initramfs (once per
/// kernel version); returns the kernel, the initramfs and the busybox binary.
pub(super) fn prepare_kernel(work: &Path) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let kpkg = work.join("kpkg");
    let bb = work.join("bb");
    if !kpkg.join("boot").is_dir() || !bb.join("bin/busybox").is_file() {
        let depends = run_cmd(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
        let package = depends
            .lines()
            .find_map(|l| l.trim().strip_prefix("Depends: "))
            .context("apt-cache names no kernel package for linux-image-amd64")?
            .to_string();
        eprintln!(
            "boot: fetching {package} and busybox-static into {}",
            work.display()
        );
        run_cmd(Command::new("apt-get").current_dir(work).args([
            "download",
            &package,
            "busybox-static",
        ]))?;
        for (prefix, dest) in [(package.as_str(), &kpkg), ("busybox-static", &bb)] {
            let deb = fs::read_dir(work)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| {
                    let name = p.file_name().unwrap_or_default().to_string_lossy();
                    name.starts_with(&format!("{prefix}_")) && name.ends_with(".deb")
                })
                .with_context(|| format!("apt-get download left no {prefix} package"))?;
            run_cmd(Command::new("dpkg").arg("-x").arg(&deb).arg(dest))?;
        }
    }
    let version = fs::read_dir(kpkg.join("lib/modules"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .context("the kernel package has no modules")?;
    let kernel = kpkg.join(format!("boot/vmlinuz-{version}"));
    ensure!(kernel.is_file(), "no kernel at {}", kernel.display());
    let busybox = bb.join("bin/busybox");
    let initrd = work.join(format!("initrd-{version}-{:016x}.gz", initrd_hash()));
    if !initrd.is_file() {
        make_initrd(&kpkg.join("lib/modules").join(&version), &busybox, &initrd)?;
    }
    Ok((kernel, initrd, busybox))
}

/// A hash (FNV-1a) of what goes into the initramfs besides the kernel's modules, so that a
/// kept initramfs is rebuilt when the script or the module list changes.
fn initrd_hash() -> u64 {
    let text = MODULES.join("\n") + &TOOLS.join("\n") + INIT;
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The modules the initramfs loads, in dependency order: all are modules in Debian's
/// generic config. crc32c for metadata_csum, jbd2 for journals, ext4 (which also mounts
/// ext2 and ext3), the virtio disk, and vfat with the code page and character set its
/// default mount options name (437 and ascii; names are UTF-8 all the same, by Debian's
/// `FAT_DEFAULT_UTF8`), for the guests that read their ESP; device-mapper and dm-verity
/// (with reed_solomon for its error correction), for a root on dm-verity.
const MODULES: &[&str] = &[
    "crypto/crc32c_generic",
    "lib/crc16",
    "fs/mbcache",
    "fs/jbd2/jbd2",
    "fs/ext4/ext4",
    "drivers/virtio/virtio_ring",
    "drivers/virtio/virtio",
    "drivers/virtio/virtio_pci_legacy_dev",
    "drivers/virtio/virtio_pci_modern_dev",
    "drivers/virtio/virtio_pci",
    "drivers/block/virtio_blk",
    "fs/nls/nls_cp437",
    "fs/nls/nls_ascii",
    "fs/fat/fat",
    "fs/fat/vfat",
    "drivers/md/dm-mod",
    "drivers/md/dm-bufio",
    "lib/reed_solomon/reed_solomon",
    "drivers/md/dm-verity",
];

/// The host's programs the initramfs carries (into /bin, with the libraries `ldd` names):
/// busybox has no device-mapper applet.
const TOOLS: &[&str] = &["/usr/sbin/dmsetup"];

/// The initramfs's /init: loads the modules, makes the device of `dm-mod.create=` if the
/// command line has one, finds the root (a device, or a GPT partition by
/// `root=PARTUUID=`, read from the partition table with busybox, which has no blkid for
/// it), mounts it read-write (read-only with `ro`) and hands over to `init=`.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t devtmpfs dev /dev; mount -t proc proc /proc; mount -t sysfs sys /sys
for k in /mod/*.ko; do insmod "$k" || echo "initrd: insmod $k failed"; done
root=/dev/vda; fst=auto; init=/sbin/init; mode=rw
for a in $(cat /proc/cmdline); do
  case $a in root=*) root=${a#root=};; rootfstype=*) fst=${a#rootfstype=};; init=*) init=${a#init=};; ro|rw) mode=$a;; esac
done
# dm-mod.create="NAME,UUID,MINOR,FLAGS,TABLE" in dm-init's syntax
# (Documentation/admin-guide/device-mapper/dm-init.rst), one device of one table line:
# Debian's dm-mod is a module and the kernel's own dm-init is built in only, so dmsetup
# makes the device here (MINOR is left to the kernel). It waits for the table's disks.
dm_create() {
  IFS=, read -r name uuid minor flags table
  for w in $table; do
    case $w in /dev/*) i=0; while [ ! -b "$w" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done;; esac
  done
  ro=; [ "$flags" = ro ] && ro=--readonly
  dmsetup create "$name" ${uuid:+--uuid "$uuid"} $ro --table "$table" || echo "initrd: dmsetup create $name failed"
}
dm=$(sed -n 's/.*dm-mod\.create="\([^"]*\)".*/\1/p' /proc/cmdline)
[ -z "$dm" ] || echo "$dm" | dm_create
# The unique GUID of every GPT partition (entries of 128 bytes from LBA 2), as text.
partuuid_dev() {
  for p in /sys/class/block/*; do
    [ -f "$p/partition" ] || continue
    n=$(cat "$p/partition"); disk=$(basename "$(readlink -f "$p/..")")
    set -- $(hexdump -v -s $((1024 + (n - 1) * 128 + 16)) -n 16 -e '16/1 "%02x "' "/dev/$disk")
    [ $# -eq 16 ] || continue
    g="$4$3$2$1-$6$5-$8$7-$9${10}-${11}${12}${13}${14}${15}${16}"
    [ "$g" = "$want" ] && { echo "/dev/${p##*/}"; return; }
  done
}
i=0
case $root in
  PARTUUID=*)
    want=$(echo "${root#PARTUUID=}" | tr A-F a-f); root=
    while [ -z "$root" ] && [ $i -lt 100 ]; do root=$(partuuid_dev); [ -n "$root" ] || sleep 0.1; i=$((i + 1)); done
    [ -n "$root" ] || { echo "initrd: no partition $want"; poweroff -f; } ;;
  *) while [ ! -b "$root" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done ;;
esac
echo "initrd: root $root ($fst)"
mount -t "$fst" -o "$mode" "$root" /newroot || { echo "initrd: mount $root failed"; poweroff -f; }
umount /proc /sys; mount --move /dev /newroot/dev 2>/dev/null || umount /dev
exec switch_root /newroot "$init"
"#;

/// Packs busybox, the tools, /init and the modules into a gzipped newc cpio archive at `out`.
fn make_initrd(modules: &Path, busybox: &Path, out: &Path) -> Result<()> {
    let tree = tempfile::Builder::new().prefix("kiln-initrd.").tempdir()?;
    let root = tree.path();
    for dir in ["bin", "dev", "proc", "sys", "newroot", "mod"] {
        fs::create_dir_all(root.join(dir))?;
    }
    fs::copy(busybox, root.join("bin/busybox"))?;
    for (i, module) in MODULES.iter().enumerate() {
        let from = modules.join(format!("kernel/{module}.ko"));
        ensure!(from.is_file(), "no module {}", from.display());
        let name = module.rsplit('/').next().unwrap_or(module);
        fs::copy(&from, root.join(format!("mod/{:02}-{name}.ko", i + 10)))?;
    }
    for tool in TOOLS {
        copy_with_libraries(Path::new(tool), root)?;
    }
    write_executable(&root.join("init"), INIT)?;
    let script = format!(
        "cd {} && find . | {} cpio -o -H newc 2>/dev/null | gzip -9 > {}",
        shell_quote(root),
        shell_quote(busybox),
        shell_quote(out)
    );
    run_cmd(Command::new("sh").args(["-c", &script]))?;
    Ok(())
}

/// Copies the host's `program` into `root`'s /bin, and the shared libraries it loads (as
/// `ldd` lists them, the dynamic loader included) to the same paths under `root`.
pub(super) fn copy_with_libraries(program: &Path, root: &Path) -> Result<()> {
    let name = program.file_name().context("a program's name")?;
    fs::create_dir_all(root.join("bin"))?;
    fs::copy(program, root.join("bin").join(name))
        .with_context(|| format!("copy {} (apt-get install dmsetup)", program.display()))?;
    let libraries = run_cmd(Command::new("ldd").arg(program))?;
    // Lines are `NAME => PATH (ADDRESS)`, or `PATH (ADDRESS)` for the loader; the vDSO
    // has no path.
    for library in libraries.split_whitespace().filter(|w| w.starts_with('/')) {
        let to = root.join(library.trim_start_matches('/'));
        fs::create_dir_all(to.parent().context("a library's folder")?)?;
        fs::copy(library, &to).with_context(|| format!("copy {library}"))?;
    }
    Ok(())
}

/// `path` in single quotes for `sh -c`.
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}
