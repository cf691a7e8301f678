//! The `tailored-rootfs` case (issue 24): an image made by another tool is a source. The
//! Debian minbase tree (the `debian-dpkg-verify` case's) is made into an ext4 image by
//! e2fsprogs' `mke2fs -t ext4 -d`, and kiln tailors that image as a vendor's pipeline
//! would: `kiln build base.img OVERLAY/ -p 'file /etc/hostname …' -o new.img`, the
//! overlay holding the guest's `/kiln-check`.
//!
//! The guest checks the spec's hostname (the file, and the kernel's hostname once set from
//! it, as an init system would) and runs the Debian case's `dpkg --verify`: every installed
//! file, read by kiln out of mke2fs's image, against the package database's checksums. The
//! base image must come out of the build unchanged (kiln only reads a source), and the new
//! one e2fsck-clean after the boot, as for every case.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Result};

use super::{
    debian_tree, run_cmd, sha256, write_executable, Access, Boot, Harness, Start, DPKG_CHECKS,
};
use crate::tree;

/// The hostname the spec line gives the tailored image.
const HOSTNAME: &str = "kiln-tailored";

/// The inode size mke2fs is asked for (its default for ext4, said so that the size below
/// holds).
const INODE_SIZE: u64 = 256;

/// Room in the base image past the tree's data and inode tables: the journal, bitmaps,
/// group descriptors and slack for what the guest writes.
const BASE_HEADROOM: u64 = 192 << 20;

/// Sizes are whole MiB, which mke2fs takes with a `k` suffix whatever the block size.
const MIB: u64 = 1 << 20;

/// The Debian tree built by `mke2fs -d`, tailored by kiln (see the module's doc).
pub(super) fn tailored_rootfs(h: &Harness, scratch: &Path) -> Result<Boot> {
    let tree = debian_tree()?;
    let base = scratch.join("base.img");
    mke2fs_image(&tree, &base)?;
    let base_sum = sha256(&base)?;
    let overlay = scratch.join("overlay");
    fs::create_dir_all(&overlay)?;
    let checks = format!(
        "expect hostname-file 'cat /etc/hostname' {HOSTNAME}\n\
         expect hostname 'hostname -F /etc/hostname && hostname' {HOSTNAME}\n\
         {DPKG_CHECKS}"
    );
    write_executable(
        &overlay.join("kiln-check"),
        &super::check_script("/bin/sh", &checks, Access::Writable),
    )?;
    let image = scratch.join("tailored.img");
    let spec = format!("file /etc/hostname 0644 0 0 text \"{HOSTNAME}\\n\"");
    let (b, o, i) = (
        base.display().to_string(),
        overlay.display().to_string(),
        image.display().to_string(),
    );
    h.kiln(&[
        "build", &b, &o, "-p", &spec, "-o", &i, "-t", "ext4", "--size", "auto", "--free", "64M",
    ])?;
    ensure!(
        sha256(&base)? == base_sum,
        "kiln changed its source image {}",
        base.display()
    );
    Ok(Boot {
        extra_disks: Vec::new(),
        image,
        start: Start::root("/dev/vda", "ext4"),
        offset: 0,
        format: "raw",
    })
}

/// `mke2fs -q -F -t ext4 -d TREE IMAGE SIZE`, with e2fsprogs' own defaults (mke2fs.conf's
/// ext4 features): the base image as another tool makes it. The size holds the tree's
/// blocks and inodes with half as much again to spare, plus [`BASE_HEADROOM`].
fn mke2fs_image(tree: &Path, image: &Path) -> Result<()> {
    let stats = tree::stats(tree)?;
    let need = stats.block_bytes + stats.inodes * INODE_SIZE;
    let size = (need * 3 / 2 + BASE_HEADROOM).div_ceil(MIB) * MIB;
    eprintln!(
        "boot tailored-rootfs: mke2fs -d {} ({} entries) into {} MiB",
        tree.display(),
        stats.entries,
        size / MIB
    );
    run_cmd(
        Command::new("mke2fs")
            .args([
                "-q",
                "-F",
                "-t",
                "ext4",
                "-I",
                &INODE_SIZE.to_string(),
                "-d",
            ])
            .arg(tree)
            .arg(image)
            .arg(format!("{}k", size / 1024)),
    )?;
    Ok(())
}
