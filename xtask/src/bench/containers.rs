//! The container row of `cargo xtask bench` (`--containers` runs it alone): kiln writing
//! qcow2 straight from the build, against a raw build converted by `qemu-img convert`, on
//! each `--corpus` (default: linux; issue 21 asks for linux and rootfs).
//!
//! Seven ways to the same ext4 as qcow2, plain and compressed:
//! 1. `kiln build` to a raw image, the baseline;
//! 2. `kiln build -o X.qcow2`;
//! 3. `kiln build`, then `qemu-img convert -O qcow2`;
//! 4. `mke2fs -d`, then the same conversion;
//! 5. `kiln build -o X.qcow2 --compress deflate`;
//! 6. `kiln build`, then `qemu-img convert -c -O qcow2`;
//! 7. `mke2fs -d`, then the same.
//!
//! Each runs `--runs` times (median); a chain is timed as one shell command. Each way's
//! last qcow2 is measured (its length: what is uploaded or copied) and judged by
//! `qemu-img check`, and kiln's are compared with the raw build by `qemu-img compare`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::Result;

use super::verity::shell;
use super::{median, remove, tree_name, warm, Bench, FsType, Geometry};
use crate::tree;

/// The container row of one tree: each way's median seconds, peak RSS (KiB) and output
/// length (bytes).
pub(super) struct ContainerRow {
    name: String,
    entries: u64,
    ways: Vec<(f64, u64, u64)>,
}

/// What the table calls each way, in `ContainerRow::ways` order.
const WAYS: [&str; 7] = [
    "`kiln build` (raw)",
    "`kiln build -o X.qcow2`",
    "`kiln build` + `qemu-img convert -O qcow2`",
    "`mke2fs -d` + `qemu-img convert -O qcow2`",
    "`kiln build -o X.qcow2 --compress deflate`",
    "`kiln build` + `qemu-img convert -c -O qcow2`",
    "`mke2fs -d` + `qemu-img convert -c -O qcow2`",
];

impl Bench<'_> {
    /// Times the seven ways on `tree`.
    pub(super) fn containers(&mut self, tree: &Path) -> Result<ContainerRow> {
        let stats = tree::stats(tree)?;
        warm(tree)?;
        let geometry = Geometry::for_tree(&stats);
        let options = geometry.options(FsType::Ext4);
        let raw = self.scratch.join("container.img");
        let qcow2 = self.scratch.join("container.qcow2");
        let path = |p: &Path| p.display().to_string();
        let kiln = |out: &Path, extra: &[&str]| -> Vec<String> {
            let mut args = vec![path(&self.kiln), "build".into(), path(tree)];
            args.extend(["-o".into(), path(out)]);
            args.extend(options.iter().cloned());
            args.extend(["--size".into(), geometry.size.to_string()]);
            args.extend(extra.iter().map(|s| s.to_string()));
            args
        };
        let mut mke2fs: Vec<String> = vec!["mke2fs".into(), "-q".into(), "-F".into()];
        mke2fs.extend(options.iter().cloned());
        mke2fs.extend(["-d".into(), path(tree), path(&raw)]);
        mke2fs.push(format!("{}k", geometry.size / 1024));
        let convert = |compress: bool| -> Vec<String> {
            let mut args: Vec<String> = vec!["qemu-img".into(), "convert".into()];
            if compress {
                args.push("-c".into());
            }
            args.extend(["-f", "raw", "-O", "qcow2"].map(String::from));
            args.extend([path(&raw), path(&qcow2)]);
            args
        };
        let chains: [Vec<Vec<String>>; 7] = [
            vec![kiln(&raw, &[])],
            vec![kiln(&qcow2, &[])],
            vec![kiln(&raw, &[]), convert(false)],
            vec![mke2fs.clone(), convert(false)],
            vec![kiln(&qcow2, &["--compress", "deflate"])],
            vec![kiln(&raw, &[]), convert(true)],
            vec![mke2fs, convert(true)],
        ];
        eprintln!(
            "bench containers {}: {} entries, ext4, --size {} MiB",
            tree_name(tree),
            stats.entries,
            geometry.size >> 20
        );
        let mut ways = Vec::new();
        for (i, chain) in chains.iter().enumerate() {
            let mut secs = Vec::new();
            let mut rss = 0;
            for _ in 0..self.args.runs {
                remove(&raw)?;
                remove(&qcow2)?;
                let run = self.timed(shell(chain), None)?.expect("no timeout");
                secs.push(run.secs);
                rss = rss.max(run.rss_kib);
            }
            let out = if i == 0 { &raw } else { &qcow2 };
            let len = std::fs::metadata(out)?.len();
            ways.push((median(&secs), rss, len));
            eprintln!("  {}: median {:.3} s, {len} bytes", WAYS[i], median(&secs));
            if i > 0 {
                let own = (i == 1 || i == 4).then_some(chains[0][0].as_slice());
                self.judge_qcow2(&qcow2, own, &raw, WAYS[i])?;
            }
        }
        remove(&raw)?;
        remove(&qcow2)?;
        Ok(ContainerRow {
            name: tree_name(tree),
            entries: stats.entries,
            ways,
        })
    }

    /// `qemu-img check` of a way's qcow2; for kiln's own, `qemu-img compare` with the
    /// raw image that `raw_build` (kiln's raw build of the same tree) makes at `raw`.
    fn judge_qcow2(
        &mut self,
        qcow2: &Path,
        raw_build: Option<&[String]>,
        raw: &Path,
        way: &str,
    ) -> Result<()> {
        let check = Command::new("qemu-img")
            .args(["check", "-f", "qcow2"])
            .arg(qcow2)
            .output()?;
        if !check.status.success() {
            writeln!(
                self.notes,
                "containers: {way}: qemu-img check failed:\n{}",
                String::from_utf8_lossy(&check.stdout)
            )?;
        }
        let Some(build) = raw_build else {
            return Ok(());
        };
        remove(raw)?;
        let built = Command::new(&build[0])
            .args(&build[1..])
            .arg("--quiet")
            .status()?;
        let compare = Command::new("qemu-img")
            .args(["compare", "-f", "raw", "-F", "qcow2"])
            .arg(raw)
            .arg(qcow2)
            .output()?;
        if !built.success() || !compare.status.success() {
            writeln!(
                self.notes,
                "containers: {way}: not the raw build's image: {}",
                String::from_utf8_lossy(&compare.stdout)
            )?;
        }
        Ok(())
    }
}

/// Prints the container table.
pub(super) fn report(rows: &[ContainerRow]) {
    for row in rows {
        println!();
        println!(
            "| qcow2, {} ext4 ({} entries) | s | /(kiln + qemu-img) | peak RSS MiB | output MiB | /qemu-img's |",
            row.name, row.entries
        );
        println!("|---|--:|--:|--:|--:|--:|");
        for (i, (name, &(secs, rss, len))) in WAYS.iter().zip(&row.ways).enumerate() {
            // Each kiln-direct way against the kiln + qemu-img way of its kind.
            let chained = if i >= 4 { row.ways[5] } else { row.ways[2] };
            println!(
                "| {name} | {secs:.3} | {:.2} | {:.1} | {:.1} | {:.3} |",
                secs / chained.0,
                rss as f64 / 1024.0,
                len as f64 / (1 << 20) as f64,
                len as f64 / chained.2 as f64
            );
        }
    }
}
