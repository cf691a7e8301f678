//! The dm-verity row of `cargo xtask bench` (`--verity` runs it alone): what a hash tree
//! made while the image is written costs, on the Linux source tree (or each `--corpus`).
//!
//! Four ways to an ext4 image without a journal (a verity image is read-only, so all four
//! leave the journal out: `-O ^has_journal`) of the same geometry:
//! 1. `kiln build` alone, the baseline;
//! 2. `kiln build --verity append`, the tree hashed from the writes and appended;
//! 3. `kiln build`, then `veritysetup format IMG HASH`, which reads the image back;
//! 4. `mke2fs -d`, then `veritysetup format IMG HASH`.
//!
//! Each runs `--runs` times (median); a chain is timed as one shell command. The last
//! image of (2) is judged by `veritysetup verify` against its own root hash, and every
//! last image by `e2fsck -fn`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};

use super::{fsck, median, remove, tree_name, warm, Bench, FsType, Geometry};
use crate::tree;

/// The verity row of one tree: each way's median seconds and peak RSS (KiB).
pub(super) struct VerityRow {
    name: String,
    entries: u64,
    /// kiln, kiln --verity append, kiln + veritysetup, mke2fs + veritysetup.
    ways: [(f64, u64); 4],
}

/// What the table calls each way, in `VerityRow::ways` order.
const WAYS: [&str; 4] = [
    "`kiln build` (no tree)",
    "`kiln build --verity append`",
    "`kiln build` + `veritysetup format`",
    "`mke2fs -d` + `veritysetup format`",
];

impl Bench<'_> {
    /// Times the four ways on `tree`.
    pub(super) fn verity(&mut self, tree: &Path) -> Result<VerityRow> {
        let stats = tree::stats(tree)?;
        warm(tree)?;
        let geometry = Geometry::for_tree(&stats);
        let mut options = geometry.options(FsType::Ext4);
        options.extend(["-O".to_string(), "^has_journal".to_string()]);
        let image = self.scratch.join("verity.img");
        let hash = self.scratch.join("verity.hash");
        let kiln = |extra: &[&str]| -> Vec<String> {
            let mut args = vec![self.kiln.display().to_string(), "build".into()];
            args.push(tree.display().to_string());
            args.extend(["-o".into(), image.display().to_string()]);
            args.extend(options.iter().cloned());
            args.extend(["--size".into(), geometry.size.to_string()]);
            args.extend(extra.iter().map(|s| s.to_string()));
            args
        };
        let mut mke2fs: Vec<String> = vec!["mke2fs".into(), "-q".into(), "-F".into()];
        mke2fs.extend(options.iter().cloned());
        mke2fs.extend(["-d".into(), tree.display().to_string()]);
        mke2fs.extend([
            image.display().to_string(),
            format!("{}k", geometry.size / 1024),
        ]);
        let format = vec![
            "veritysetup".to_string(),
            "format".into(),
            image.display().to_string(),
            hash.display().to_string(),
        ];
        let chains: [Vec<Vec<String>>; 4] = [
            vec![kiln(&[])],
            vec![kiln(&["--verity", "append"])],
            vec![kiln(&[]), format.clone()],
            vec![mke2fs, format],
        ];
        eprintln!(
            "bench verity {}: {} entries, ext4 -O ^has_journal, --size {} MiB",
            tree_name(tree),
            stats.entries,
            geometry.size >> 20
        );
        let mut ways = [(0.0, 0); 4];
        for (way, chain) in ways.iter_mut().zip(&chains) {
            let mut secs = Vec::new();
            for _ in 0..self.args.runs {
                remove(&image)?;
                remove(&hash)?;
                let run = self.timed(shell(chain), None)?.context("no timeout")?;
                secs.push(run.secs);
                way.1 = way.1.max(run.rss_kib);
            }
            way.0 = median(&secs);
            eprintln!("  {}: median {:.3} s", chain[0][0], way.0);
            if let Some(problem) = fsck(&image)? {
                writeln!(
                    self.notes,
                    "verity {}: image not clean:\n{problem}",
                    tree_name(tree)
                )?;
            }
            if chain.len() == 1 && chain[0].iter().any(|a| a == "--verity") {
                self.judge_appended(&chain[0], &image)?;
            }
        }
        remove(&image)?;
        remove(&hash)?;
        Ok(VerityRow {
            name: tree_name(tree),
            entries: stats.entries,
            ways,
        })
    }

    /// Builds the appended image once more and has `veritysetup verify` check it with
    /// the arguments of the `veritysetup open` line kiln prints (scratch paths need no
    /// quoting: `open IMAGE NAME HASH ROOT --hash-offset=N`).
    fn judge_appended(&mut self, kiln: &[String], image: &Path) -> Result<()> {
        remove(image)?;
        let out = Command::new(&kiln[0])
            .args(&kiln[1..])
            .arg("--quiet")
            .output()?;
        ensure!(out.status.success(), "kiln --verity append failed");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr
            .lines()
            .find_map(|l| l.strip_prefix("kiln: open with: veritysetup open "))
            .context("kiln printed no veritysetup open line")?;
        let words: Vec<&str> = line.split_whitespace().collect();
        ensure!(words.len() == 5, "unexpected open line {line:?}");
        let out = Command::new("veritysetup")
            .args(["verify", words[0], words[2], words[3], words[4]])
            .output()?;
        if !out.status.success() {
            writeln!(
                self.notes,
                "verity: veritysetup verify of kiln's appended tree failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )?;
        }
        Ok(())
    }
}

/// `sh -c 'A && B'` for a chain of commands, timed as one.
pub(super) fn shell(chain: &[Vec<String>]) -> Command {
    // Each command's words are passed as positional arguments and named by number in the
    // script, so no path is ever quoted into it.
    let mut body = String::new();
    let mut at = 1;
    for (i, words) in chain.iter().enumerate() {
        if i > 0 {
            body += " && ";
        }
        let args: Vec<String> = (at..at + words.len())
            .map(|n| format!("\"${{{n}}}\""))
            .collect();
        body += &args.join(" ");
        at += words.len();
    }
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(body).arg("sh");
    for words in chain {
        cmd.args(words);
    }
    cmd
}

/// Prints the verity table.
pub(super) fn report(rows: &[VerityRow]) {
    for row in rows {
        println!();
        println!(
            "| dm-verity, {} ext4 ({} entries) | s | /kiln | /(kiln + veritysetup) | peak RSS MiB |",
            row.name, row.entries
        );
        println!("|---|--:|--:|--:|--:|");
        let base = row.ways[0].0;
        let chained = row.ways[2].0;
        for (name, (secs, rss)) in WAYS.iter().zip(row.ways) {
            println!(
                "| {name} | {secs:.3} | {:.2} | {:.2} | {:.1} |",
                secs / base,
                secs / chained,
                rss as f64 / 1024.0
            );
        }
    }
}
