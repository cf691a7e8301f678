//! The memory row of `cargo xtask bench` (`--memory` runs it alone): kiln's peak RSS per
//! entry at scale, past the names, for issue 23's budget (at most 120 bytes per entry all
//! in at 5,000,000 files).
//!
//! kiln builds, once each (peak RSS varies little between runs; the times are one run's):
//! manyfiles' `small` tree (500,000 files) and `bigdir` (one directory of 1,000,000 empty
//! files), each as the ext4 rows build them, and the 5,000,000-file tar as the scale check
//! builds it (`-t ext4 -O inline_data --size auto`). Each row divides the peak RSS less the
//! bytes of the entries' names by the entries; then the same less a baseline too: kiln's
//! peak RSS on a tree of one file, what it takes whatever the tree. mke2fs -d's peak RSS on
//! the 500,000 files is there for reference (not on bigdir, where it is quadratic in time,
//! nor on the tar, which it cannot read).

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use super::{
    many_files_tar, mke2fs_build, remove, tree_name, warm, Bench, FsType, Geometry, Run, MIB,
};
use crate::corpus;
use crate::tree::{self, Stats};

/// Issue 23's budget: peak RSS bytes per entry, all in, past the names, at 5,000,000 files.
const RSS_BUDGET: f64 = 120.0;

/// kiln's peak RSS on each tree, and what it is at least.
pub(super) struct MemoryTable {
    /// kiln on a tree of one file.
    baseline: MemoryRow,
    rows: Vec<MemoryRow>,
}

/// kiln's run on one tree, and mke2fs's if it ran.
struct MemoryRow {
    name: String,
    /// Entries, the root included, as [`Stats`] counts them.
    entries: u64,
    /// Bytes of the entries' names.
    name_bytes: u64,
    kiln: Run,
    mke2fs: Mke2fs,
    /// The bytes per entry all in that the row must not exceed, if it has a budget.
    budget: Option<f64>,
}

/// What mke2fs -d did on a tree.
enum Mke2fs {
    /// It was not asked to.
    NotRun,
    /// `--timeout` stopped it after this many seconds.
    TimedOut(u64),
    /// It failed (said in the notes).
    Failed,
    Ran(Run),
}

impl Bench<'_> {
    /// Measures kiln's peak RSS on the tree of one file, manyfiles' trees and the tar.
    pub(super) fn memory(&mut self) -> Result<MemoryTable> {
        let tiny = self.scratch.join("one-file");
        fs::create_dir_all(&tiny)?;
        fs::write(tiny.join("file"), "kiln\n")?;
        let baseline = self.memory_tree("1 file (the baseline)", &tiny, false)?;
        let trees = corpus::prepare(corpus::Name::Manyfiles)?;
        let tree = |name: &str| {
            trees
                .iter()
                .find(|tree| tree.ends_with(name))
                .with_context(|| format!("manyfiles made no {name} tree"))
        };
        let small = self.memory_tree("small: 500,000 files", tree("small")?, true)?;
        let tar = self.memory_tar()?;
        let bigdir = self.memory_tree(
            "bigdir: a 1,000,000-entry directory",
            tree("bigdir")?,
            false,
        )?;
        Ok(MemoryTable {
            baseline,
            rows: vec![small, tar, bigdir],
        })
    }

    /// kiln, and mke2fs if `with_mke2fs`, on `tree` as the ext4 rows build it.
    fn memory_tree(&mut self, name: &str, tree: &Path, with_mke2fs: bool) -> Result<MemoryRow> {
        let stats = tree::stats(tree)?;
        warm(tree)?;
        let geometry = Geometry::for_tree(&stats);
        let options = geometry.options(FsType::Ext4);
        let image = self.scratch.join("memory.img");
        eprintln!("bench memory {name}: {} entries", stats.entries);
        let kiln = self.kiln_build(tree, &image, &options, geometry.size);
        let kiln = self.memory_run(kiln, &image)?;
        let mke2fs = if with_mke2fs {
            let mke2fs = mke2fs_build(tree, &image, &options, geometry.size);
            self.mke2fs_peak(name, mke2fs, &image)?
        } else {
            Mke2fs::NotRun
        };
        Ok(row(name, &stats, kiln, mke2fs, None))
    }

    /// kiln on the 5,000,000-file tar (made if missing), as the scale check builds it.
    fn memory_tar(&mut self) -> Result<MemoryRow> {
        let (tar, stats) = many_files_tar()?;
        let image = self.scratch.join("memory.img");
        let kiln = self.memory_run(self.many_files_build(&tar, &image), &image)?;
        let name = format!(
            "{}: 5,000,000 files, -O inline_data --size auto",
            tree_name(&tar)
        );
        Ok(row(&name, &stats, kiln, Mke2fs::NotRun, Some(RSS_BUDGET)))
    }

    /// One run of kiln's `command`, which makes `image`; the image is removed after it.
    fn memory_run(&self, command: Command, image: &Path) -> Result<Run> {
        remove(image)?;
        let run = self.timed(command, None)?.context("no timeout")?;
        eprintln!("  kiln: {:.3} s, peak RSS {} KiB", run.secs, run.rss_kib);
        remove(image)?;
        Ok(run)
    }

    /// One run of mke2fs's `command` under `--timeout`; a failure goes to the notes.
    fn mke2fs_peak(&mut self, name: &str, command: Command, image: &Path) -> Result<Mke2fs> {
        remove(image)?;
        let mke2fs = match self.timed(command, Some(self.args.timeout)) {
            Ok(Some(run)) => Mke2fs::Ran(run),
            Ok(None) => Mke2fs::TimedOut(self.args.timeout),
            Err(err) => {
                writeln!(self.notes, "memory {name}: mke2fs failed: {err:#}")?;
                Mke2fs::Failed
            }
        };
        remove(image)?;
        Ok(mke2fs)
    }
}

/// The row of a tree of `stats`.
fn row(name: &str, stats: &Stats, kiln: Run, mke2fs: Mke2fs, budget: Option<f64>) -> MemoryRow {
    MemoryRow {
        name: name.to_string(),
        entries: stats.entries,
        name_bytes: stats.name_bytes,
        kiln,
        mke2fs,
        budget,
    }
}

/// Bytes per entry of a peak RSS of `rss_kib` KiB, less `less_kib` KiB and the names.
fn per_entry(rss_kib: u64, less_kib: u64, name_bytes: u64, entries: u64) -> f64 {
    let past = (rss_kib.saturating_sub(less_kib) * 1024).saturating_sub(name_bytes);
    past as f64 / entries.max(1) as f64
}

/// MiB of a peak RSS in KiB, with one decimal.
fn rss_mib(rss_kib: u64) -> String {
    format!("{:.1}", (rss_kib * 1024) as f64 / MIB as f64)
}

/// Prints the memory table and what its figures are.
pub(super) fn report(table: &MemoryTable) {
    let base = &table.baseline;
    println!();
    println!(
        "| kiln, one run each | entries | name bytes | kiln s | kiln peak RSS MiB | \
         bytes/entry past the names, all in | bytes/entry past the names and the baseline | \
         mke2fs -d peak RSS MiB |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|");
    println!(
        "| {} | {} | {} | {:.3} | {} | - | - | - |",
        base.name,
        base.entries,
        base.name_bytes,
        base.kiln.secs,
        rss_mib(base.kiln.rss_kib)
    );
    for row in &table.rows {
        let all_in = per_entry(row.kiln.rss_kib, 0, row.name_bytes, row.entries);
        let past_base = per_entry(
            row.kiln.rss_kib,
            base.kiln.rss_kib,
            row.name_bytes,
            row.entries,
        );
        let over = match row.budget {
            Some(budget) if all_in > budget => format!(" (over {budget:.0})"),
            Some(budget) => format!(" (budget {budget:.0})"),
            None => String::new(),
        };
        let mke2fs = match &row.mke2fs {
            Mke2fs::NotRun => "-".to_string(),
            Mke2fs::TimedOut(secs) => format!("stopped after {secs} s"),
            Mke2fs::Failed => "failed".to_string(),
            Mke2fs::Ran(run) => rss_mib(run.rss_kib),
        };
        println!(
            "| {} | {} | {} | {:.3} | {} | {all_in:.1}{over} | {past_base:.1} | {mke2fs} |",
            row.name,
            row.entries,
            row.name_bytes,
            row.kiln.secs,
            rss_mib(row.kiln.rss_kib)
        );
    }
    println!();
    println!(
        "Peak RSS is `/usr/bin/time -f %M` of one run. \"All in\" is (peak RSS − name bytes) \
         / entries; \"and the baseline\" also takes off the first row, kiln's peak RSS on a \
         tree of one file ({} MiB: the binary, its buffers and threads). Issue 23's budget is \
         the all-in figure at 5,000,000 files.",
        rss_mib(base.kiln.rss_kib)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_entry_takes_off_the_baseline_and_the_names() {
        // 2 MiB less 1 MiB less 48,576 name bytes: 1,000,000 bytes over 10,000 entries.
        assert_eq!(per_entry(2048, 1024, 48_576, 10_000), 100.0);
        assert_eq!(per_entry(1, 2, 0, 10), 0.0);
    }
}
