//! The FAT row of `cargo xtask bench` (`--fat` runs it alone): kiln's FAT writer against
//! dosfstools and mtools, the usual way to fill a FAT image without root, on an EFI system
//! partition as a distribution fills it (xtask/src/tree.rs, `make_esp`: kernels, initrds,
//! unified kernel images, EFI binaries, thousands of small firmware and locale files).
//!
//! Both tools make a FAT32 image of the same size and cluster size from the same tree: kiln
//! with `kiln build TREE -o IMG -t fat32 -b 4096 --size N`, the other side with `mkfs.fat -C`
//! followed by `mcopy -s` of the tree's top-level entries into the image's root, timed as
//! one command. Each is run `--runs` times (median), then its last image is measured and
//! judged by `fsck.fat -n`, and the two images' variant, cluster size and cluster count,
//! as fsck.fat reads them, are compared.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use super::{disk_usage, head, median, mib, remove, Bench};
use crate::tree;

/// The image size: the ESP-like tree (about 490 MiB) with room to spare, large enough that
/// mkfs.fat would choose FAT32 by itself (from 512 MiB).
const IMAGE_SIZE: u64 = 640 << 20;
/// Bytes per cluster, given to both tools: mkfs.fat's own choice for FAT32 of this size.
const CLUSTER_BYTES: u64 = 4096;
/// Bytes per sector (mkfs.fat's `-S`; kiln writes 512-byte sectors only).
const SECTOR_BYTES: u64 = 512;

/// The FAT row: the tree and each tool's result.
pub(super) struct FatRow {
    entries: u64,
    bytes: u64,
    /// Median seconds of reading the tree once (`tar | cat`).
    floor: f64,
    kiln: Result<FatMeasured>,
    mtools: Result<FatMeasured>,
}

/// One tool's result on the ESP-like tree.
struct FatMeasured {
    /// Median wall-clock seconds.
    secs: f64,
    /// The largest peak RSS of the runs, in KiB.
    rss_kib: u64,
    /// Bytes allocated to the last image.
    disk: u64,
    /// What `fsck.fat -n` said of the last image, if it was not clean.
    fsck_problem: Option<String>,
    /// The FAT width, cluster size and FAT size that `fsck.fat -v` reads from the boot
    /// sector: the two images must agree, or the ratio compares different file systems.
    shape: String,
    /// The data clusters, as `fsck.fat -v` counts them. Not part of the shape: mkfs.fat
    /// rounds an image's sectors down to a whole track of 63 (1,310,715 of the 1,310,720 it
    /// is given here), which can cost a cluster; kiln uses every sector of its size.
    clusters: u64,
}

impl Bench<'_> {
    /// Makes the ESP-like tree in the scratch folder, reads it once (the floor, which also
    /// warms the cache), then times both tools on it.
    pub(super) fn fat(&mut self) -> Result<FatRow> {
        let esp = self.scratch.join("esp");
        eprintln!("bench FAT: making the ESP-like tree {}", esp.display());
        tree::make_esp(&esp)?;
        let stats = tree::stats(&esp)?;
        let floor = self.floor(&esp)?;
        eprintln!(
            "bench FAT: {} entries, FAT32, {} MiB, {CLUSTER_BYTES}-byte clusters",
            stats.entries,
            IMAGE_SIZE >> 20
        );
        let kiln_image = self.scratch.join("kiln-fat.img");
        let mtools_image = self.scratch.join("mtools-fat.img");
        let kiln = self.fat_measure(&kiln_image, || {
            let mut cmd = Command::new(&self.kiln);
            cmd.arg("build").arg(&esp).arg("-o").arg(&kiln_image);
            cmd.args(["-t", "fat32", "-b", &CLUSTER_BYTES.to_string()]);
            cmd.args(["--size", &IMAGE_SIZE.to_string()]);
            cmd
        });
        let mtools = self.fat_measure(&mtools_image, || mkfs_and_mcopy(&esp, &mtools_image));
        self.note_fat(&kiln, &mtools)?;
        remove(&kiln_image)?;
        remove(&mtools_image)?;
        Ok(FatRow {
            entries: stats.entries,
            bytes: stats.bytes,
            floor,
            kiln,
            mtools,
        })
    }

    /// Runs one tool `--runs` times, then measures and judges the image it left.
    fn fat_measure(&self, image: &Path, command: impl Fn() -> Command) -> Result<FatMeasured> {
        let timings = self.time_runs(image, None, self.args.runs, &command)?;
        let (fsck_problem, shape, clusters) = fsck_fat(image)?;
        let secs = median(&timings.secs);
        eprintln!("  {:?}: median {secs:.3} s", command().get_program());
        Ok(FatMeasured {
            secs,
            rss_kib: timings.rss_kib,
            disk: disk_usage(image)?,
            fsck_problem,
            shape,
            clusters,
        })
    }

    /// Notes a tool that failed or left an image fsck.fat complains of, and images of
    /// different shapes.
    fn note_fat(&mut self, kiln: &Result<FatMeasured>, mtools: &Result<FatMeasured>) -> Result<()> {
        for (tool, measured) in [("kiln", kiln), ("mkfs.fat + mcopy", mtools)] {
            match measured {
                Err(err) => writeln!(self.notes, "FAT: {tool} failed: {err:#}")?,
                Ok(FatMeasured {
                    fsck_problem: Some(problem),
                    ..
                }) => writeln!(self.notes, "FAT: {tool}'s image is not clean:\n{problem}")?,
                Ok(_) => {}
            }
        }
        if let (Ok(k), Ok(m)) = (kiln, mtools) {
            if k.shape != m.shape {
                writeln!(
                    self.notes,
                    "FAT: different geometry: kiln {}; mkfs.fat {}",
                    k.shape, m.shape
                )?;
            }
        }
        Ok(())
    }
}

/// `mkfs.fat -C` of a FAT32 image of [`IMAGE_SIZE`], then `mcopy -s` of every top-level
/// entry of `tree` into its root, as one shell command (so one timing covers both).
/// mcopy's `-m` keeps the modification times, as kiln does; `-Q` stops at the first error.
/// Not `-b` (batch mode): mtools 4.0.32 fails with it on this image ("Internal error, size
/// too big"). The glob leaves out names starting with a dot, of which the tree has none.
fn mkfs_and_mcopy(tree: &Path, image: &Path) -> Command {
    let sectors_per_cluster = (CLUSTER_BYTES / SECTOR_BYTES).to_string();
    let script = format!(
        "mkfs.fat -C -F 32 -S {SECTOR_BYTES} -s {sectors_per_cluster} \"$1\" {} >/dev/null \
         && mcopy -s -m -Q -i \"$1\" \"$2\"/* ::/",
        IMAGE_SIZE / 1024
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script, "sh"]).arg(image).arg(tree);
    cmd
}

/// `fsck.fat -n -v`: None if the image is clean (else what it said), the image's shape and
/// its data clusters.
fn fsck_fat(image: &Path) -> Result<(Option<String>, String, u64)> {
    let output = Command::new("fsck.fat")
        .args(["-n", "-v"])
        .arg(image)
        .env("LC_ALL", "C")
        .output()
        .context("could not run fsck.fat")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let shape = text
        .lines()
        .filter(|line| {
            line.contains("bit entries")
                || line.contains("bytes per cluster")
                || line.contains("bytes per FAT")
        })
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ");
    // "    163516 data clusters (669761536 bytes)"
    let clusters = text
        .lines()
        .find(|line| line.contains("data clusters"))
        .and_then(|line| line.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no cluster count in fsck.fat -v's output:\n{text}"))?;
    if output.status.success() {
        return Ok((None, shape, clusters));
    }
    let mut said = output.stdout.clone();
    said.extend_from_slice(&output.stderr);
    let problem = format!("fsck.fat -n: {}\n{}", output.status, head(&said));
    Ok((Some(problem), shape, clusters))
}

/// Prints the FAT row's table (Markdown).
pub(super) fn report(row: &FatRow) {
    let cell = |m: &Result<FatMeasured>, f: &dyn Fn(&FatMeasured) -> String| {
        m.as_ref().map_or_else(|_| "failed".to_string(), f)
    };
    let clean = |m: &Result<FatMeasured>| match m {
        Ok(m) if m.fsck_problem.is_none() => "clean",
        Ok(_) => "NOT CLEAN",
        Err(_) => "-",
    };
    let ratio = match (&row.kiln, &row.mtools) {
        (Ok(k), Ok(m)) => format!("{:.3}", k.secs / m.secs),
        _ => "-".into(),
    };
    let to_floor = cell(&row.kiln, &|k| format!("{:.2}", k.secs / row.floor));
    println!();
    println!(
        "| FAT32, esp | entries | data MiB | floor s | kiln s | mkfs.fat + mcopy s | \
         kiln/mtools | kiln/floor | kiln RSS MiB | mtools RSS MiB | kiln disk MiB | \
         mtools disk MiB | clusters | fsck.fat |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|");
    println!(
        "| {} MiB image, {CLUSTER_BYTES} B clusters | {} | {} | {:.3} | {} | {} | {ratio} | \
         {to_floor} | {} | {} | {} | {} | {} / {} | {} / {} |",
        IMAGE_SIZE >> 20,
        row.entries,
        mib(row.bytes),
        row.floor,
        cell(&row.kiln, &|m| format!("{:.3}", m.secs)),
        cell(&row.mtools, &|m| format!("{:.3}", m.secs)),
        cell(&row.kiln, &|m| mib(m.rss_kib * 1024)),
        cell(&row.mtools, &|m| mib(m.rss_kib * 1024)),
        cell(&row.kiln, &|m| mib(m.disk)),
        cell(&row.mtools, &|m| mib(m.disk)),
        cell(&row.kiln, &|m| m.clusters.to_string()),
        cell(&row.mtools, &|m| m.clusters.to_string()),
        clean(&row.kiln),
        clean(&row.mtools),
    );
}
