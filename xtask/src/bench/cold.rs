//! The cold-cache row of `cargo xtask bench` (`--cold` runs it alone; root): kiln against
//! `mke2fs -d` when neither finds the tree in the page cache, on each `--corpus` (default:
//! linux; issue 23 asks for linux and rootfs).
//!
//! Both tools build the ext4 image of the main rows (same [`Geometry`], same options, same
//! commands), and kiln also with `--sync`, since mke2fs flushes its image before it exits
//! and with a cold cache the writes are no longer free. The three ways alternate, `--runs`
//! rounds of them, and before every run the old image is removed and then
//! `sync; echo 3 > /proc/sys/vm/drop_caches` empties the page cache, dentries and inodes
//! (the tool's own binary included). The median counts; the last image of each way is
//! checked with `e2fsck -fn`, and the two tools' block and inode counts compared.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, ensure, Context, Result};

use super::{
    counts, fsck, median, mke2fs_build, remove, tree_name, Bench, FsType, Geometry, Run, MIB,
};
use crate::tree;

/// Where the kernel takes the order to drop its clean caches.
const DROP_CACHES: &str = "/proc/sys/vm/drop_caches";

/// What the table calls each way, in `ColdRow::ways` order.
const WAYS: [&str; 3] = ["kiln", "kiln --sync", "`mke2fs -d`"];

/// The way whose median the others are divided by: mke2fs.
const MKE2FS: usize = 2;

/// The cold-cache row of one tree: each way's median seconds and peak RSS (KiB).
pub(super) struct ColdRow {
    name: String,
    entries: u64,
    size_mib: u64,
    runs: usize,
    ways: [(f64, u64); 3],
}

/// Fails, naming the cause, unless this process may drop the page cache: it must run as
/// root and find [`DROP_CACHES`] writable (it is not in most containers). Drops it once.
pub(super) fn check_drop_caches() -> Result<()> {
    match effective_uid() {
        Some(0) => {}
        Some(uid) => anyhow::bail!(
            "--cold drops the page cache before every run, which only root may do: this \
             runs as uid {uid} (try `sudo -E cargo xtask bench --cold`)"
        ),
        None => eprintln!("bench cold: could not read the effective uid; trying anyway"),
    }
    drop_caches()
}

/// The effective uid of this process, from `/proc/self/status` (None where it cannot be
/// read).
fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    // Uid: real effective saved filesystem
    line.split_whitespace().nth(2)?.parse().ok()
}

/// `sync; echo 3 > /proc/sys/vm/drop_caches`: dirty pages written, then the page cache,
/// dentries and inodes dropped.
fn drop_caches() -> Result<()> {
    let status = Command::new("sync")
        .status()
        .context("could not run sync")?;
    ensure!(status.success(), "sync failed ({status})");
    fs::write(DROP_CACHES, "3").map_err(|err| {
        let why = match err.kind() {
            io::ErrorKind::PermissionDenied => "permission denied (not root?)",
            io::ErrorKind::NotFound => "no such file (not Linux, or no /proc?)",
            _ => "read-only /proc/sys (a container?)",
        };
        anyhow!("--cold drops the page cache before every run, but {DROP_CACHES} cannot be written: {why}: {err}")
    })
}

impl Bench<'_> {
    /// Times kiln, kiln --sync and mke2fs on `tree` from a cold cache, alternating.
    pub(super) fn cold(&mut self, tree: &Path) -> Result<ColdRow> {
        let stats = tree::stats(tree)?;
        let geometry = Geometry::for_tree(&stats);
        let options = geometry.options(FsType::Ext4);
        let images = ["cold-kiln.img", "cold-kiln-sync.img", "cold-mke2fs.img"]
            .map(|name| self.scratch.join(name));
        let command = |way: usize| match way {
            0 | 1 => {
                let mut cmd = self.kiln_build(tree, &images[way], &options, geometry.size);
                if way == 1 {
                    cmd.arg("--sync");
                }
                cmd
            }
            _ => mke2fs_build(tree, &images[way], &options, geometry.size),
        };
        eprintln!(
            "bench cold {}: {} entries, --size {} MiB {}",
            tree_name(tree),
            stats.entries,
            geometry.size / MIB,
            options.join(" ")
        );
        let mut runs: [Vec<Run>; 3] = Default::default();
        for round in 0..self.args.runs {
            for (way, done) in runs.iter_mut().enumerate() {
                let run = self.cold_run(command(way), &images[way], way == MKE2FS)?;
                eprintln!("  round {round}: {}: {:.3} s", WAYS[way], run.secs);
                done.push(run);
            }
        }
        self.check_images(&tree_name(tree), &images)?;
        Ok(ColdRow {
            name: tree_name(tree),
            entries: stats.entries,
            size_mib: geometry.size / MIB,
            runs: self.args.runs as usize,
            ways: runs.map(|runs| summary(&runs)),
        })
    }

    /// One run from a cold cache: the old image removed, the caches dropped, then `command`
    /// timed (stopped after `--timeout` if `timeout`, as the main rows stop mke2fs).
    fn cold_run(&self, command: Command, image: &Path, timeout: bool) -> Result<Run> {
        remove(image)?;
        drop_caches()?;
        let limit = timeout.then_some(self.args.timeout);
        let run = self
            .timed(command, limit)?
            .with_context(|| format!("stopped after --timeout {} s", self.args.timeout))?;
        ensure!(image.is_file(), "the tool succeeded but left no image");
        Ok(run)
    }

    /// Notes each of the last images that e2fsck finds unclean, and kiln's and mke2fs's
    /// images having different counts; then removes them.
    fn check_images(&mut self, name: &str, images: &[PathBuf; 3]) -> Result<()> {
        for (way, image) in images.iter().enumerate() {
            if let Some(problem) = fsck(image)? {
                writeln!(self.notes, "cold {name}: {}: {problem}", WAYS[way])?;
            }
        }
        let (kiln, mke2fs) = (counts(&images[0])?, counts(&images[MKE2FS])?);
        if kiln != mke2fs {
            writeln!(
                self.notes,
                "cold {name}: different geometry: kiln {kiln}; mke2fs {mke2fs}"
            )?;
        }
        images.iter().try_for_each(|image| remove(image))
    }
}

/// The median seconds and the largest peak RSS of some runs.
fn summary(runs: &[Run]) -> (f64, u64) {
    let secs: Vec<f64> = runs.iter().map(|run| run.secs).collect();
    let rss = runs.iter().map(|run| run.rss_kib).max().unwrap_or(0);
    (median(&secs), rss)
}

/// Prints the cold-cache table of each tree.
pub(super) fn report(rows: &[ColdRow]) {
    for row in rows {
        println!();
        println!(
            "| cold cache, {} ({} entries, {} MiB ext4) | s (median of {}) | /mke2fs | peak RSS MiB |",
            row.name, row.entries, row.size_mib, row.runs
        );
        println!("|---|--:|--:|--:|");
        for (name, &(secs, rss)) in WAYS.iter().zip(&row.ways) {
            println!(
                "| {name} | {secs:.3} | {:.3} | {:.1} |",
                secs / row.ways[MKE2FS].0,
                rss as f64 / 1024.0
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn effective_uid_is_read() {
        assert!(effective_uid().is_some());
    }

    #[test]
    fn summary_is_the_median_and_the_largest_rss() {
        let runs = [(3.0, 10), (1.0, 30), (2.0, 20)].map(|(secs, rss_kib)| Run { secs, rss_kib });
        assert_eq!(summary(&runs), (2.0, 30));
    }
}
