//! The shared-extents rows of `cargo xtask bench` (`--reflink` runs them alone; issue 23):
//! source tree and image on one filesystem that shares extents, made here on a loop device:
//! XFS with `reflink=1`, then btrfs.
//!
//! On each, two trees: the Linux source tree (copied there with `cp -a`) and a tree of
//! [`LARGE_FILES`] files of 100 MiB of pseudo-random data (20 GiB, generated there). Each
//! tree is built three ways with the same geometry, image on the same filesystem:
//! 1. `kiln build --sync`, which clones the files' whole blocks;
//! 2. `kiln build --sync --no-reflink`, which writes every byte;
//! 3. `mke2fs -d` (which flushes its image, as `--sync` does).
//!
//! For each way: the median wall-clock time, and how much the filesystem's used space grew
//! with the image (`df` after a `sync -f`, before and after the last run). The Linux tree
//! runs `--runs` times, the large tree [`LARGE_RUNS`] time (each run writes 20 GiB). The
//! last images are checked by `e2fsck -fn`, and the first two must be byte-identical.
//! Images are removed, and the freed blocks trimmed (which punches them out of the loop
//! device's backing file), between ways.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};

use super::{fsck, median, mib, remove, tree_name, warm, Bench, FsType, Geometry};
use crate::{corpus, tree};

/// The files of the large tree.
const LARGE_FILES: u64 = 200;
/// The size of each of them.
const LARGE_FILE_BYTES: u64 = 100 << 20;
/// Timed runs of each way on the large tree.
const LARGE_RUNS: u32 = 1;
/// The loop device's backing file (sparse): the large tree, one copied image of it and
/// room for the filesystem's own metadata.
const LOOP_BYTES: u64 = 48 << 30;

/// How many seconds [`LoopFs::used`] waits at most for `df` to settle.
const SETTLE_TRIES: u32 = 30;

/// A filesystem that shares extents, as the bench makes it.
struct Host {
    /// What the table calls it.
    name: &'static str,
    /// `mount -t`.
    fs_type: &'static str,
    /// The mkfs command line, before the device.
    mkfs: &'static [&'static str],
}

/// The filesystems of the rows.
const HOSTS: [Host; 2] = [
    Host {
        name: "XFS (reflink=1)",
        fs_type: "xfs",
        mkfs: &["mkfs.xfs", "-q", "-m", "reflink=1"],
    },
    Host {
        name: "btrfs",
        fs_type: "btrfs",
        mkfs: &["mkfs.btrfs", "-q"],
    },
];

/// What the table calls each way, in [`ReflinkRow::ways`] order.
const WAYS: [&str; 3] = [
    "`kiln build --sync`",
    "`kiln build --sync --no-reflink`",
    "`mke2fs -d`",
];

/// One tree on one filesystem: each way's median seconds and the bytes its image added to
/// the filesystem's used space.
pub(super) struct ReflinkRow {
    host: &'static str,
    name: String,
    bytes: u64,
    runs: u32,
    ways: Vec<(f64, u64)>,
}

/// A loop filesystem mounted in the scratch folder; unmounted, and its backing file
/// removed, when dropped.
struct LoopFs {
    backing: PathBuf,
    mount: PathBuf,
}

impl LoopFs {
    /// Makes `host`'s filesystem on a sparse file in `scratch` and mounts it.
    fn make(scratch: &Path, host: &Host) -> Result<LoopFs> {
        let backing = scratch.join(format!("{}.fs", host.fs_type));
        fs::File::create(&backing)
            .and_then(|f| f.set_len(LOOP_BYTES))
            .with_context(|| format!("create {}", backing.display()))?;
        run(Command::new(host.mkfs[0])
            .args(&host.mkfs[1..])
            .arg(&backing))?;
        let mount = scratch.join(format!("{}.mnt", host.fs_type));
        fs::create_dir_all(&mount)?;
        run(Command::new("mount")
            .args(["-t", host.fs_type, "-o", "loop"])
            .arg(&backing)
            .arg(&mount))?;
        Ok(LoopFs { backing, mount })
    }

    /// Bytes in use, as `df` says once everything written is on the device and the blocks
    /// of removed files are free: XFS and btrfs free them in the background, after `sync`,
    /// so `df` is read until it stops changing.
    fn used(&self) -> Result<u64> {
        let mut last = self.df()?;
        for _ in 0..SETTLE_TRIES {
            std::thread::sleep(std::time::Duration::from_secs(1));
            let now = self.df()?;
            if now == last {
                break;
            }
            last = now;
        }
        Ok(last)
    }

    /// `df`'s bytes in use, after a `sync -f`.
    fn df(&self) -> Result<u64> {
        run(Command::new("sync").arg("-f").arg(&self.mount))?;
        let out = Command::new("df")
            .args(["-B1", "--output=used"])
            .arg(&self.mount)
            .output()
            .context("could not run df")?;
        ensure!(out.status.success(), "df {} failed", self.mount.display());
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .last()
            .and_then(|line| line.trim().parse().ok())
            .with_context(|| format!("no byte count in df's output {text:?}"))
    }

    /// Removes `images` and trims the freed blocks, so that the backing file gives them
    /// back to the host.
    fn remove(&self, images: &[&Path]) -> Result<()> {
        for image in images {
            remove(image)?;
        }
        run(Command::new("fstrim").arg(&self.mount))
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
        let _ = fs::remove_file(&self.backing);
    }
}

/// Runs `cmd`, which must succeed.
fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("could not run {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

impl Bench<'_> {
    /// The rows of every filesystem of [`HOSTS`], each with the Linux tree and the large
    /// tree.
    pub(super) fn reflink(&mut self) -> Result<Vec<ReflinkRow>> {
        let linux = corpus::prepare(corpus::Name::Linux)?
            .into_iter()
            .next()
            .context("the linux corpus has no tree")?;
        let mut rows = Vec::new();
        for host in &HOSTS {
            let fs = LoopFs::make(&self.scratch, host)?;
            let copy = fs.mount.join("linux");
            run(Command::new("cp").arg("-a").arg(&linux).arg(&copy))?;
            rows.push(self.reflink_row(host, &fs, &copy, self.args.runs)?);
            let large = fs.mount.join("large");
            eprintln!("bench reflink: generating {LARGE_FILES} files of 100 MiB");
            tree::make_large_files(&large, LARGE_FILES, LARGE_FILE_BYTES)?;
            rows.push(self.reflink_row(host, &fs, &large, LARGE_RUNS)?);
        }
        Ok(rows)
    }

    /// The three ways on `tree`, images beside it on `fs`.
    fn reflink_row(
        &mut self,
        host: &'static Host,
        fs: &LoopFs,
        tree: &Path,
        runs: u32,
    ) -> Result<ReflinkRow> {
        let stats = tree::stats(tree)?;
        let geometry = Geometry::for_tree(&stats);
        let options = geometry.options(FsType::Ext4);
        let name = tree_name(tree);
        eprintln!(
            "bench reflink {name} on {}: {} entries",
            host.name, stats.entries
        );
        warm(tree)?;
        let image = |i: usize| fs.mount.join(format!("way-{i}.img"));
        let commands: [Command; 3] = std::array::from_fn(|i| {
            if i == 2 {
                let mut cmd = Command::new("mke2fs");
                cmd.args(["-q", "-F"]).args(&options).arg("-d").arg(tree);
                cmd.arg(image(i)).arg(format!("{}k", geometry.size / 1024));
                return cmd;
            }
            let mut cmd = Command::new(&self.kiln);
            cmd.arg("build")
                .arg(tree)
                .arg("-o")
                .arg(image(i))
                .args(&options);
            cmd.args(["--size", &geometry.size.to_string(), "--sync", "-q"]);
            if i == 1 {
                cmd.arg("--no-reflink");
            }
            cmd
        });
        let mut ways = Vec::new();
        for (i, cmd) in commands.iter().enumerate() {
            ways.push(self.reflink_way(fs, cmd, &image(i), runs)?);
            eprintln!(
                "  {}: median {:.3} s, +{} MiB",
                WAYS[i],
                ways[i].0,
                mib(ways[i].1)
            );
            if let Some(said) = fsck(&image(i))? {
                writeln!(
                    self.notes,
                    "reflink {name} on {}, {}: {said}",
                    host.name, WAYS[i]
                )?;
            }
            if i == 1 {
                self.compare(&image(0), &image(1), &format!("{name} on {}", host.name))?;
                fs.remove(&[&image(0), &image(1)])?;
            }
        }
        fs.remove(&[&image(2)])?;
        Ok(ReflinkRow {
            host: host.name,
            name,
            bytes: stats.bytes,
            runs,
            ways,
        })
    }

    /// Runs `cmd` `runs` times, each without an old image; the median seconds, and the
    /// used space that the last run's image added.
    fn reflink_way(
        &self,
        fs: &LoopFs,
        cmd: &Command,
        image: &Path,
        runs: u32,
    ) -> Result<(f64, u64)> {
        let mut secs = Vec::new();
        let mut grew = 0;
        for _ in 0..runs {
            fs.remove(&[image])?;
            let before = fs.used()?;
            let mut again = Command::new(cmd.get_program());
            again.args(cmd.get_args());
            secs.push(self.timed(again, None)?.context("no timeout")?.secs);
            grew = fs.used()?.saturating_sub(before);
        }
        Ok((median(&secs), grew))
    }

    /// Notes it when the images `a` and `b` differ (`cmp`).
    fn compare(&mut self, a: &Path, b: &Path, label: &str) -> Result<()> {
        let out = Command::new("cmp")
            .arg(a)
            .arg(b)
            .output()
            .context("could not run cmp")?;
        if !out.status.success() {
            writeln!(
                self.notes,
                "reflink {label}: the cloned image differs from the --no-reflink one: {}",
                String::from_utf8_lossy(&out.stdout).trim()
            )?;
        }
        Ok(())
    }
}

/// Prints the table of the shared-extents rows.
pub(super) fn report(rows: &[ReflinkRow]) {
    println!();
    println!(
        "| filesystem | tree | data MiB | runs | way | s | /mke2fs | image's extra used space MiB | \
         of the data |"
    );
    println!("|---|---|--:|--:|---|--:|--:|--:|--:|");
    for row in rows {
        let mke2fs = row.ways[2].0;
        for (way, &(secs, grew)) in WAYS.iter().zip(&row.ways) {
            println!(
                "| {} | {} | {} | {} | {way} | {secs:.3} | {:.3} | {} | {:.2} % |",
                row.host,
                row.name,
                mib(row.bytes),
                row.runs,
                secs / mke2fs,
                mib(grew),
                100.0 * grew as f64 / row.bytes as f64,
            );
        }
    }
}
