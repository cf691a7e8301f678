//! The image-source row of `cargo xtask bench` (`--image-source`; issue 24): what reading a
//! tree out of an ext4 image costs against reading the same tree from its directory.
//!
//! On each `--corpus` (default: linux), kiln first builds the ext4 image of the main rows
//! (same [`Geometry`] and options) from the directory: the source image, not timed. Then
//! two builds of the same new image, output to the scratch folder (one filesystem for both)
//! with a warm cache: from the directory, and from the source image. Each has
//! `--timestamp`, a UUID and a hash seed fixed, since kiln derives the UUID and the seed
//! from its inputs, which differ in name only: the two images must then be the same bytes
//! (same tree, same image), which is checked after the last round, as is `e2fsck -fn`.
//! A warm-up round, then `--runs` rounds of both, their order alternating every round so
//! that neither gains from the other's cache or from drifting load; the medians of the wall
//! clock and of the CPU time (user + system, all threads; the steadier figure on a shared
//! machine), and the largest peak RSS.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};

use super::{fsck, median, remove, tree_name, warm, Bench, CpuRun, FsType, Geometry, MIB};
use crate::tree;

/// The time of every entry, and of the filesystem, in both builds.
const TIMESTAMP: &str = "1700000000";
/// The UUID and the directory hash seed of both builds (otherwise a build from an image
/// keeps the image's UUID, where one from a directory derives it from the tree).
const UUID: &str = "6b696c6e-696d-6167-6573-726300000024";
const SEED: &str = "6b696c6e-7365-6564-0000-000000000024";

/// What the table calls each source, in [`ImageSourceRow::ways`] order; the first is the
/// baseline the others are divided by.
const WAYS: [&str; 2] = ["directory", "ext4 image"];

/// One tree: each way's medians and peak RSS.
pub(super) struct ImageSourceRow {
    name: String,
    entries: u64,
    size_mib: u64,
    runs: u32,
    /// Median wall-clock seconds, median CPU seconds, largest peak RSS (KiB) of each way.
    ways: [(f64, f64, u64); 2],
}

impl Bench<'_> {
    /// Times kiln reading `tree` from its directory and from an ext4 image of it.
    pub(super) fn image_source(&mut self, tree: &Path) -> Result<ImageSourceRow> {
        let name = tree_name(tree);
        let stats = tree::stats(tree)?;
        let geometry = Geometry::for_tree(&stats);
        let options = geometry.options(FsType::Ext4);
        let source = self.scratch.join("source.img");
        eprintln!(
            "bench image source {name}: {} entries, --size {} MiB {}",
            stats.entries,
            geometry.size / MIB,
            options.join(" ")
        );
        remove(&source)?;
        self.timed(
            self.kiln_build(tree, &source, &options, geometry.size),
            None,
        )?
        .context("no timeout")?;
        warm(tree)?;
        let outputs = ["from-directory.img", "from-image.img"].map(|n| self.scratch.join(n));
        let inputs = [tree, source.as_path()];
        let command = |way: usize| {
            let mut cmd = self.kiln_build(inputs[way], &outputs[way], &options, geometry.size);
            cmd.args(["--timestamp", TIMESTAMP, "-U", UUID, "--seed", SEED]);
            cmd
        };
        let mut runs: [Vec<CpuRun>; 2] = Default::default();
        // Round 0 is the warm-up (it also reads the source image into the cache).
        for round in 0..=self.args.runs {
            for k in 0..WAYS.len() {
                let way = (k + round as usize) % WAYS.len();
                remove(&outputs[way])?;
                let run = self.cpu_timed(&command(way))?;
                eprintln!(
                    "  round {round}: {}: {:.3} s, CPU {:.3} s",
                    WAYS[way], run.wall, run.cpu
                );
                if round > 0 {
                    runs[way].push(run);
                }
            }
        }
        self.check_outputs(&name, &outputs)?;
        for image in outputs.iter().chain([&source]) {
            remove(image)?;
        }
        Ok(ImageSourceRow {
            name,
            entries: stats.entries,
            size_mib: geometry.size / MIB,
            runs: self.args.runs,
            ways: runs.map(|runs| summary(&runs)),
        })
    }

    /// Fails unless the two builds made the same bytes (the same tree, whichever way it was
    /// read); notes an image that e2fsck finds unclean.
    fn check_outputs(&mut self, name: &str, outputs: &[PathBuf; 2]) -> Result<()> {
        let status = Command::new("cmp")
            .arg("--quiet")
            .args(outputs)
            .status()
            .context("could not run cmp")?;
        ensure!(
            status.success(),
            "image source {name}: the build from the image differs from the build from the \
             directory ({} and {} are not the same bytes)",
            outputs[0].display(),
            outputs[1].display()
        );
        if let Some(problem) = fsck(&outputs[0])? {
            writeln!(self.notes, "image source {name}: {problem}")?;
        }
        Ok(())
    }
}

/// The median wall-clock and CPU seconds and the largest peak RSS of some runs.
fn summary(runs: &[CpuRun]) -> (f64, f64, u64) {
    let wall: Vec<f64> = runs.iter().map(|run| run.wall).collect();
    let cpu: Vec<f64> = runs.iter().map(|run| run.cpu).collect();
    let rss = runs.iter().map(|run| run.rss_kib).max().unwrap_or(0);
    (median(&wall), median(&cpu), rss)
}

/// Prints the image-source table of each tree.
pub(super) fn report(rows: &[ImageSourceRow]) {
    for row in rows {
        let (base_wall, base_cpu, _) = row.ways[0];
        println!();
        println!(
            "| source, {} ({} entries, {} MiB ext4) | wall s (median of {}) | /directory | \
             CPU s | /directory | peak RSS MiB |",
            row.name, row.entries, row.size_mib, row.runs
        );
        println!("|---|--:|--:|--:|--:|--:|");
        for (name, &(wall, cpu, rss)) in WAYS.iter().zip(&row.ways) {
            println!(
                "| {name} | {wall:.3} | {:.3} | {cpu:.3} | {:.3} | {:.1} |",
                wall / base_wall,
                cpu / base_cpu,
                rss as f64 / 1024.0
            );
        }
    }
    if !rows.is_empty() {
        println!();
        println!(
            "Both builds made the same bytes (`cmp`), with `--timestamp {TIMESTAMP}` and a \
             fixed UUID and hash seed."
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_the_medians_and_the_largest_rss() {
        let runs = [(3.0, 5.0, 10), (1.0, 4.0, 30), (2.0, 6.0, 20)]
            .map(|(wall, cpu, rss_kib)| CpuRun { wall, cpu, rss_kib });
        assert_eq!(summary(&runs), (2.0, 5.0, 30));
    }
}
