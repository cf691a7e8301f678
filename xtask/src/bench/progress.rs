//! `cargo xtask bench --progress`: what kiln's progress display costs. On each tree and
//! type, kiln builds the same image with `--progress never` and with `--progress always`
//! (the display drawn into the pipe the bench reads stderr from, 10 times a second, as on a
//! terminal), `--runs` times each, the two interleaved and their order alternated so that
//! neither gains from the cache or from drifting load. Both bump the same counters (the
//! pipeline always counts; only the display thread differs), so the ratio is the cost of
//! drawing; what the counters cost is one relaxed atomic add per directory, tar member and
//! write (tens of thousands per second at most), measured against a kiln without them by
//! giving that kiln's path as `--kiln-before`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};

use super::{median, remove, tree_name, Bench, CpuRun, FsType, Geometry};
use crate::tree;

/// One tree and type: the medians of each variant.
struct Row {
    name: String,
    fs_type: FsType,
    /// (label, median wall-clock seconds, median CPU seconds) of each variant, the first
    /// the baseline.
    variants: Vec<(String, f64, f64)>,
}

impl Bench<'_> {
    /// Times the variants on each of `trees` and `types`, and returns the Markdown table.
    pub(super) fn progress_cost(
        &self,
        trees: &[std::path::PathBuf],
        types: &[FsType],
        before: Option<&Path>,
    ) -> Result<String> {
        let mut rows = Vec::new();
        for tree in trees {
            super::warm(tree)?;
            let stats = tree::stats(tree)?;
            let geometry = Geometry::for_tree(&stats);
            for &fs_type in types {
                rows.push(self.progress_row(tree, fs_type, &geometry, before)?);
            }
        }
        let mut out = String::new();
        // Wall-clock time, and CPU time (user + system, all threads): what the display
        // costs is CPU, which a busy machine's wall clock hides in its noise.
        writeln!(
            out,
            "| tree | type | kiln | wall s | CPU s | wall ratio | CPU ratio |\n\
             |---|---|---|---|---|---|---|"
        )?;
        for row in &rows {
            let (_, base_wall, base_cpu) = row.variants[0];
            for (label, wall, cpu) in &row.variants {
                writeln!(
                    out,
                    "| {} | {} | {label} | {wall:.3} | {cpu:.3} | {:.4} | {:.4} |",
                    row.name,
                    row.fs_type.name(),
                    wall / base_wall,
                    cpu / base_cpu
                )?;
            }
        }
        Ok(out)
    }

    /// The variants on one tree and type: a warm-up, then `--runs` rounds of each, in an
    /// order that rotates every round.
    fn progress_row(
        &self,
        tree: &Path,
        fs_type: FsType,
        geometry: &Geometry,
        before: Option<&Path>,
    ) -> Result<Row> {
        let name = tree_name(tree);
        let image = self.scratch.join("progress.img");
        let mut variants: Vec<(String, Command)> = Vec::new();
        let command = |kiln: &Path, mode: Option<&str>| {
            let mut cmd = Command::new(kiln);
            cmd.arg("build")
                .arg(tree)
                .arg("-o")
                .arg(&image)
                .args(geometry.options(fs_type))
                .arg("--size")
                .arg(geometry.size.to_string());
            if let Some(mode) = mode {
                cmd.args(["--progress", mode]);
            }
            cmd
        };
        variants.push((
            "--progress never".into(),
            command(&self.kiln, Some("never")),
        ));
        variants.push((
            "--progress always".into(),
            command(&self.kiln, Some("always")),
        ));
        if let Some(before) = before {
            variants.push(("before".into(), command(before, None)));
        }
        eprintln!("bench progress {name} {}", fs_type.name());
        let mut times = vec![(Vec::new(), Vec::new()); variants.len()];
        for round in 0..=self.args.runs {
            for k in 0..variants.len() {
                let i = (k + round as usize) % variants.len();
                remove(&image)?;
                let run = self.cpu_timed(&variants[i].1)?;
                // Round 0 is the warm-up.
                if round > 0 {
                    times[i].0.push(run.wall);
                    times[i].1.push(run.cpu);
                }
            }
        }
        remove(&image)?;
        let variants = variants
            .into_iter()
            .zip(&times)
            .map(|((label, _), (wall, cpu))| {
                let (wall, cpu) = (median(wall), median(cpu));
                eprintln!("  {label}: median {wall:.3} s, CPU {cpu:.3} s");
                (label, wall, cpu)
            })
            .collect();
        Ok(Row {
            name,
            fs_type,
            variants,
        })
    }
}

impl Bench<'_> {
    /// Runs `command` under `/usr/bin/time` and returns its wall-clock and CPU seconds
    /// (user + system, of all its threads) and its peak RSS.
    pub(super) fn cpu_timed(&self, command: &Command) -> Result<CpuRun> {
        let times = self.scratch.join("times");
        let output = Command::new("/usr/bin/time")
            .args(["-f", "%e %U %S %M", "-o"])
            .arg(&times)
            .arg(command.get_program())
            .args(command.get_args())
            .output()
            .with_context(|| format!("could not run {command:?}"))?;
        ensure!(
            output.status.success(),
            "{command:?} failed ({}):\n{}",
            output.status,
            super::head(&output.stderr)
        );
        let text = std::fs::read_to_string(&times).context("read /usr/bin/time's output")?;
        let numbers: Vec<f64> = text
            .lines()
            .last()
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        let [wall, user, system, rss_kib] = numbers[..] else {
            anyhow::bail!("no times in /usr/bin/time's output {text:?}");
        };
        Ok(CpuRun {
            wall,
            cpu: user + system,
            // time prints the peak RSS as a whole number of KiB.
            rss_kib: rss_kib as u64,
        })
    }
}
