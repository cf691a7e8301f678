//! The `uefi-systemd-boot` case: the disk of `fixtures/disk/uefi.toml` booted by OVMF, with
//! no `-kernel`: the firmware runs systemd-boot from the ESP, which loads the kernel and
//! the initramfs from the ESP with the entry's command line, and the initramfs finds the
//! root by the PARTUUID the layout fixes. The guest then mounts the ESP, which kiln's FAT
//! writer made, with Linux's vfat driver and compares its names and bytes with what was
//! put in.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};

use super::{partition_offset, pattern, run_cmd, sha256, Access, Boot, Harness, Start};

/// Debian's systemd-boot (package systemd-boot-efi), installed at the removable-media
/// path, which firmware with no boot entries of its own (a fresh variable store) runs.
const SYSTEMD_BOOT: &str = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";

/// OVMF's code and variable-store templates (package ovmf), the first pair found:
/// Debian 12's 4 MiB builds, then the older 2 MiB names.
const OVMF: &[(&str, &str)] = &[
    (
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.fd",
    ),
    (
        "/usr/share/OVMF/OVMF_CODE.fd",
        "/usr/share/OVMF/OVMF_VARS.fd",
    ),
];

/// UEFI firmware for one boot: OVMF's code, read-only, and a copy of its variable store
/// that the firmware may write (boot entries, systemd-boot's variables).
pub(super) struct Firmware {
    code: PathBuf,
    vars: PathBuf,
}

impl Firmware {
    /// Finds OVMF and copies its variable store into `scratch`.
    fn prepare(scratch: &Path) -> Result<Self> {
        let (code, vars_template) = OVMF
            .iter()
            .map(|(c, v)| (Path::new(c), Path::new(v)))
            .find(|(c, v)| c.is_file() && v.is_file())
            .context("no OVMF firmware in /usr/share/OVMF (apt-get install ovmf)")?;
        let vars = scratch.join("OVMF_VARS.fd");
        fs::copy(vars_template, &vars)
            .with_context(|| format!("copy {}", vars_template.display()))?;
        Ok(Firmware {
            code: code.to_path_buf(),
            vars,
        })
    }

    /// QEMU's arguments: the firmware as the two flash drives OVMF expects.
    pub(super) fn qemu_args(&self) -> Vec<OsString> {
        let flash = |unit: u8, file: &Path, extra: &str| {
            format!(
                "if=pflash,format=raw,unit={unit}{extra},file={}",
                file.display()
            )
        };
        vec![
            "-drive".into(),
            flash(0, &self.code, ",readonly=on").into(),
            "-drive".into(),
            flash(1, &self.vars, "").into(),
        ]
    }
}

/// The layout, and its layer of the ESP that the repository holds.
const FIXTURE: &str = "fixtures/disk/uefi.toml";
const FIXTURE_ESP: &str = "fixtures/disk/uefi-esp";

/// The loader entry in the ESP's layer, which names the root's PARTUUID.
const ENTRY: &str = "loader/entries/kiln.conf";

/// The ESP as the guest's kernel names it: the layout's first partition on the one
/// virtio disk.
const ESP_DEVICE: &str = "/dev/vda1";

/// The root partition's number in the layout, for the check of the image after the boot.
const ROOT_PARTITION: u32 = 2;

/// Copies the fixture into `scratch`, fills its staging folder, builds the disk twice
/// (the same bytes both times) and boots it through the firmware.
pub(super) fn systemd_boot(h: &Harness, scratch: &Path) -> Result<Boot> {
    let repo = crate::repo_root();
    let config = scratch.join("uefi.toml");
    fs::copy(repo.join(FIXTURE), &config)?;
    let esp_layer = scratch.join("uefi-esp");
    run_cmd(
        Command::new("cp")
            .arg("-a")
            .arg(repo.join(FIXTURE_ESP))
            .arg(&esp_layer),
    )?;
    let staging = scratch.join("uefi-staging");
    let esp = staging.join("esp");
    stage_esp(h, &esp)?;
    let manifest = Manifest::of(&[&esp_layer, &esp])?;
    let test_files = esp.join(TEST_FILES);
    let others = other_variants(h, &test_files, scratch)?;
    stage_root(
        h,
        &staging.join("root"),
        &manifest,
        &Manifest::of(&[&test_files])?,
    )?;
    let image = scratch.join("uefi.img");
    build_twice(h, &config, &image)?;
    Ok(Boot {
        offset: partition_offset(&image, ROOT_PARTITION)?,
        format: "raw",
        image,
        extra_disks: others,
        start: Start::Firmware(Firmware::prepare(scratch)?),
    })
}

/// The ESP's folder of test files: names and sizes that exercise the FAT writer.
const TEST_FILES: &str = "kiln-test";

/// The FAT variants the ESP (FAT16 at its 64 MiB) is not, each a bare image of the test
/// files that the guest reads as a disk of its own (`/dev/vdb`, `/dev/vdc`), with the
/// sizes that give them: kiln's default (FAT12) and a forced FAT32.
const OTHER_VARIANTS: [(&str, &[&str]); 2] = [("fat12", &[]), ("fat32", &["--size", "64M"])];

/// Builds the images of [`OTHER_VARIANTS`] from `files` in `scratch`.
fn other_variants(h: &Harness, files: &Path, scratch: &Path) -> Result<Vec<PathBuf>> {
    let src = files.display().to_string();
    OTHER_VARIANTS
        .iter()
        .map(|(fs_type, size)| {
            let image = scratch.join(format!("{fs_type}.img"));
            let out = image.display().to_string();
            let mut args = vec!["build", "-t", fs_type, &src, "-o", &out];
            args.extend(size.iter());
            h.kiln(&args)?;
            Ok(image)
        })
        .collect()
}

/// Builds the disk at `image`, then again beside it, and fails unless both are the same
/// bytes: kiln's promise of reproducible disks, FAT included.
fn build_twice(h: &Harness, config: &Path, image: &Path) -> Result<()> {
    let again = image.with_extension("again.img");
    for out in [image, &again] {
        let (c, o) = (config.display().to_string(), out.display().to_string());
        h.kiln(&["build", "--config", &c, "-o", &o])?;
    }
    let (first, second) = (sha256(image)?, sha256(&again)?);
    ensure!(
        first == second,
        "two builds of {} differ: SHA-256 {first} and {second}",
        config.display()
    );
    fs::remove_file(&again)?;
    Ok(())
}

/// The staging layer of the ESP: systemd-boot, the kernel and the initramfs where the
/// entry names them, and `kiln-test/`, names and sizes that exercise the FAT writer.
fn stage_esp(h: &Harness, esp: &Path) -> Result<()> {
    ensure!(
        Path::new(SYSTEMD_BOOT).is_file(),
        "no {SYSTEMD_BOOT} (apt-get install systemd-boot-efi)"
    );
    let copies = [
        (Path::new(SYSTEMD_BOOT), "EFI/BOOT/BOOTX64.EFI"),
        (h.kernel.as_path(), "kiln/vmlinuz"),
        (h.initrd.as_path(), "kiln/initrd.img"),
    ];
    for (from, to) in copies {
        let to = esp.join(to);
        fs::create_dir_all(to.parent().context("a path in the ESP")?)?;
        fs::copy(from, &to).with_context(|| format!("copy {}", from.display()))?;
    }
    write_test_files(&esp.join(TEST_FILES))
}

/// Files whose names need long-name entries (spaces, length, lowercase, mixed case,
/// UTF-8), an 8.3 name, an empty file, a file of many clusters, a directory of many
/// clusters (80 long names, each taking several entries) and a deep path.
fn write_test_files(dir: &Path) -> Result<()> {
    let deep = dir.join("deep/a/b/c/d/e");
    let many = dir.join("many");
    fs::create_dir_all(&deep)?;
    fs::create_dir_all(&many)?;
    let big = pattern(1_048_699, 11);
    let files: [(&str, &[u8]); 7] = [
        ("A long file name, with spaces.txt", b"long name\n"),
        ("MixedCase.Txt", b"mixed case\n"),
        ("lower.txt", b"lower case\n"),
        ("UPPER.TXT", b"upper case\n"),
        ("Gr\u{fc}\u{df}e \u{3a9}mega.txt", b"UTF-8 name\n"),
        ("empty", b""),
        ("multi-cluster.bin", &big),
    ];
    for (name, bytes) in files {
        fs::write(dir.join(name), bytes)?;
    }
    for i in 0..80 {
        fs::write(
            many.join(format!("entry {i:03} with a long name.txt")),
            format!("{i}\n"),
        )?;
    }
    fs::write(deep.join("leaf"), b"deep\n")?;
    Ok(())
}

/// What the ESP must hold, as the guest reads it: every name under it (`find .` sorted)
/// and `sha256sum -c` lines for every file.
pub(super) struct Manifest {
    pub(super) names: String,
    pub(super) sums: String,
}

impl Manifest {
    /// The manifest of `layers` laid over each other (here they share no file).
    pub(super) fn of(layers: &[&Path]) -> Result<Self> {
        let mut entries = vec![(".".to_string(), None)];
        for layer in layers {
            walk(layer, ".", &mut entries)?;
        }
        entries.sort();
        entries.dedup_by(|a, b| a.0 == b.0);
        let mut manifest = Manifest {
            names: String::new(),
            sums: String::new(),
        };
        for (name, file) in &entries {
            writeln!(manifest.names, "{name}")?;
            if let Some(file) = file {
                writeln!(manifest.sums, "{}  {name}", sha256(file)?)?;
            }
        }
        Ok(manifest)
    }
}

/// Adds the entries under `dir` to `out` as `find` names them (`prefix/NAME`), each file
/// with its path on the host.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, Option<PathBuf>)>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let entry = entry?;
        let name = format!("{prefix}/{}", entry.file_name().to_string_lossy());
        if entry.file_type()?.is_dir() {
            out.push((name.clone(), None));
            walk(&entry.path(), &name, out)?;
        } else {
            out.push((name, Some(entry.path())));
        }
    }
    Ok(())
}

/// The root: the harness's busybox tree, the manifest of the ESP in /etc, and checks
/// that the firmware booted the kernel with the entry's command line and that the ESP,
/// mounted read-only by the vfat driver, holds exactly the manifest's names and bytes.
fn stage_root(h: &Harness, root: &Path, manifest: &Manifest, tests: &Manifest) -> Result<()> {
    let entry = fs::read_to_string(crate::repo_root().join(FIXTURE_ESP).join(ENTRY))?;
    let partuuid = entry
        .split_whitespace()
        .find(|w| w.starts_with("root=PARTUUID="))
        .context("the loader entry has no root=PARTUUID=")?;
    let checks = format!(
        r#"expect uefi 'mount -t sysfs sys /sys && test -d /sys/firmware/efi && echo yes' yes
expect entry 'grep -o "root=PARTUUID=[^ ]*" /proc/cmdline' '{partuuid}'
expect esp-mount 'mount -t vfat -o ro {ESP_DEVICE} /boot/efi && echo ok' ok
expect esp-names 'cd /boot/efi && find . | sort | diff /etc/esp.names - && echo same' same
expect esp-bytes 'cd /boot/efi && sha256sum -c /etc/esp.sha256 | grep -v ": OK\$"; echo end' end
expect esp-files 'wc -l < /etc/esp.sha256' {}
expect esp-umount 'umount /boot/efi && echo ok' ok
"#,
        manifest.sums.lines().count()
    );
    let checks = checks + &other_variant_checks(tests.sums.lines().count());
    h.busybox_tree(root, &checks, Access::Writable)?;
    fs::create_dir_all(root.join("boot/efi"))?;
    fs::create_dir_all(root.join("mnt"))?;
    fs::write(root.join("etc/esp.names"), &manifest.names)?;
    fs::write(root.join("etc/esp.sha256"), &manifest.sums)?;
    fs::write(root.join("etc/fat.names"), &tests.names)?;
    fs::write(root.join("etc/fat.sha256"), &tests.sums)?;
    Ok(())
}

/// The checks of the disks of [`OTHER_VARIANTS`]: each, mounted read-only by the vfat
/// driver, holds exactly the test files' names and bytes (`files` of them).
fn other_variant_checks(files: usize) -> String {
    let mut checks = String::new();
    for ((fs_type, _), disk) in OTHER_VARIANTS.iter().zip(["/dev/vdb", "/dev/vdc"]) {
        let _ = write!(
            checks,
            r#"expect {fs_type}-mount 'mount -t vfat -o ro {disk} /mnt && echo ok' ok
expect {fs_type}-names 'cd /mnt && find . | sort | diff /etc/fat.names - && echo same' same
expect {fs_type}-bytes 'cd /mnt && sha256sum -c /etc/fat.sha256 | grep -v ": OK\$"; echo end' end
expect {fs_type}-files 'cd /mnt && sha256sum -c /etc/fat.sha256 | grep -c ": OK\$"' {files}
expect {fs_type}-umount 'cd / && umount /mnt && echo ok' ok
"#
        );
    }
    checks
}
