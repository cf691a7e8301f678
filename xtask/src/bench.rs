//! `cargo xtask bench`: kiln against `mke2fs -d` on the same trees, with the same geometry.
//!
//! Each tool builds each image once untimed (which also brings the tree into the page cache),
//! then `--runs` times; the best wall-clock time counts. Both final images are then checked
//! with `e2fsck -fn`, and their block and inode counts compared, since a ratio between two
//! different file systems would mean little.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::ValueEnum;

use crate::corpus;
use crate::tree::{self, Stats, BLOCK_SIZE};

/// The inode size that `bench` asks both tools for.
const INODE_SIZE: u64 = 256;
/// Room for what `Stats` does not count: the journal, group descriptors, bitmaps, indirect
/// blocks, and lost+found.
const HEADROOM: u64 = 256 << 20;
/// Image sizes are rounded up to whole MiB so that both tools take them alike.
const MIB: u64 = 1 << 20;
/// How many lines of a failed tool's output to show.
const SHOWN_LINES: usize = 20;

/// Options of `cargo xtask bench`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// A corpus name (rootfs, linux, manyfiles, torture) or the path of a directory;
    /// repeat for several. Write `./linux` for a directory that has a corpus's name.
    #[arg(long, value_parser = parse_source, default_value = "rootfs")]
    corpus: Vec<Source>,
    /// The file system type of both images.
    #[arg(long = "type", value_enum, default_value_t = FsType::Ext3)]
    fs_type: FsType,
    /// Timed runs of each tool per tree (after one untimed warm-up run); the best counts.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Time this kiln binary instead of building the workspace's in release mode.
    #[arg(long)]
    kiln: Option<PathBuf>,
}

/// What `--corpus` names.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Source {
    /// A corpus made by a script in `shared/corpus/`.
    Corpus(corpus::Name),
    /// A directory that already exists.
    Path(PathBuf),
}

/// Reads a corpus name first, and a directory otherwise.
fn parse_source(arg: &str) -> Result<Source, String> {
    if let Ok(name) = corpus::Name::from_str(arg, true) {
        return Ok(Source::Corpus(name));
    }
    let path = PathBuf::from(arg);
    if path.is_dir() {
        Ok(Source::Path(path))
    } else {
        Err("neither a corpus name (rootfs, linux, manyfiles, torture) nor a directory".into())
    }
}

/// The file system types that kiln writes.
#[derive(Clone, Copy, ValueEnum)]
enum FsType {
    Ext2,
    Ext3,
    Ext4,
}

impl FsType {
    /// The name both tools take after `-t`.
    fn name(self) -> &'static str {
        match self {
            FsType::Ext2 => "ext2",
            FsType::Ext3 => "ext3",
            FsType::Ext4 => "ext4",
        }
    }
}

/// The image parameters given alike to kiln and mke2fs.
#[derive(Debug, PartialEq, Eq)]
struct Geometry {
    /// Image size in bytes, a whole number of MiB.
    size: u64,
    /// Inode count, passed as `-N` to both.
    inodes: u64,
}

impl Geometry {
    /// Room for the tree's data and inode tables with a margin of 30 %, plus `HEADROOM`;
    /// a fifth more inodes than the tree has, plus a few for the reserved ones.
    fn for_tree(stats: &Stats) -> Geometry {
        let inodes = stats.inodes + stats.inodes / 5 + 64;
        let need = stats.block_bytes + inodes * INODE_SIZE;
        let size = (need * 13 / 10 + HEADROOM).div_ceil(MIB) * MIB;
        Geometry { size, inodes }
    }

    /// The options that kiln and mke2fs both take, under the same names.
    fn options(&self, fs_type: FsType) -> Vec<String> {
        let options = [
            ("-t", fs_type.name().to_string()),
            ("-b", BLOCK_SIZE.to_string()),
            ("-I", INODE_SIZE.to_string()),
            ("-N", self.inodes.to_string()),
        ];
        options
            .into_iter()
            .flat_map(|(flag, value)| [flag.to_string(), value])
            .collect()
    }
}

/// One tool's result on one tree.
struct Measured {
    /// The best of the timed runs.
    best: Duration,
    /// `e2fsck -fn`'s complaint about the image, if it had one.
    fsck_problem: Option<String>,
    /// `dumpe2fs -h`'s block and inode counts, to see that both tools made the same shape.
    counts: String,
}

/// One line of the table.
struct Row {
    tree: PathBuf,
    stats: Stats,
    kiln: Result<Measured>,
    mke2fs: Result<Measured>,
}

/// Runs the benchmark and prints its table. Fails if a tool failed, an image is not clean,
/// or the two tools' images differ in block or inode count.
pub(crate) fn run(args: &Args) -> Result<()> {
    let mut trees = Vec::new();
    for source in &args.corpus {
        match source {
            Source::Corpus(name) => trees.extend(corpus::prepare(*name)?),
            Source::Path(path) => trees.push(path.clone()),
        }
    }
    let kiln = match &args.kiln {
        Some(path) => path.clone(),
        None => build_kiln()?,
    };
    // Images of the big corpora take gigabytes (sparsely), so they are removed as soon as the
    // directory is dropped; TMPDIR can point it at a tmpfs to take the disk out of the timing.
    let scratch = tempfile::Builder::new().prefix("kiln-bench.").tempdir()?;
    let image = scratch.path().join("image");

    let mut rows = Vec::new();
    for tree in trees {
        rows.push(bench_tree(tree, &kiln, &image, args)?);
    }
    remove_image(&image)?;
    report(&rows)
}

/// Times both tools on one tree, each making the image with the same geometry.
///
/// A tool's failure is kept in the row, so that the other trees are still measured.
fn bench_tree(tree: PathBuf, kiln: &Path, image: &Path, args: &Args) -> Result<Row> {
    let stats = tree::stats(&tree)?;
    let geometry = Geometry::for_tree(&stats);
    let options = geometry.options(args.fs_type);
    eprintln!(
        "bench {}: {} entries, --size {} MiB {}",
        tree.display(),
        stats.entries,
        geometry.size / MIB,
        options.join(" "),
    );
    let kiln_cmd = || {
        let mut cmd = Command::new(kiln);
        cmd.arg("build")
            .arg(&tree)
            .arg("-o")
            .arg(image)
            .args(&options);
        cmd.arg("--size").arg(geometry.size.to_string());
        cmd
    };
    let mke2fs_cmd = || {
        let mut cmd = Command::new("mke2fs");
        cmd.args(["-q", "-F"]).args(&options);
        // A size with a `k` suffix is read in KiB whatever the block size.
        let size = format!("{}k", geometry.size / 1024);
        cmd.arg("-d").arg(&tree).arg(image).arg(size);
        cmd
    };
    let kiln = measure(args.runs, image, kiln_cmd);
    let mke2fs = measure(args.runs, image, mke2fs_cmd);
    Ok(Row {
        tree,
        stats,
        kiln,
        mke2fs,
    })
}

/// Builds kiln in release mode and returns the binary's path.
fn build_kiln() -> Result<PathBuf> {
    let root = crate::repo_root();
    eprintln!("building kiln (release)");
    // CARGO is the cargo that runs this xtask; use the same one.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--release", "--bin", "kiln"])
        .status()
        .context("could not run cargo")?;
    ensure!(
        status.success(),
        "cargo build --release --bin kiln failed ({status})"
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), |dir| root.join(dir));
    Ok(target
        .join("release")
        .join(format!("kiln{}", std::env::consts::EXE_SUFFIX)))
}

/// Times one tool on one tree and checks the image it leaves.
fn measure(runs: u32, image: &Path, command: impl Fn() -> Command) -> Result<Measured> {
    time_once(image, command())?;
    let mut best = Duration::MAX;
    for _ in 0..runs {
        best = best.min(time_once(image, command())?);
    }
    Ok(Measured {
        best,
        fsck_problem: fsck(image)?,
        counts: counts(image)?,
    })
}

/// Runs `command` once from a missing image and returns its wall-clock time.
fn time_once(image: &Path, mut command: Command) -> Result<Duration> {
    // Neither tool should find an old image, and deleting one is not part of the work.
    remove_image(image)?;
    let start = Instant::now();
    let output = command
        .output()
        .with_context(|| format!("could not run {command:?}"))?;
    let elapsed = start.elapsed();
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}):\n{}",
            output.status,
            head(&output.stderr)
        );
    }
    ensure!(image.is_file(), "{command:?} succeeded but left no image");
    Ok(elapsed)
}

/// Removes the image if there is one.
fn remove_image(image: &Path) -> Result<()> {
    match fs::remove_file(image) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("remove {}", image.display()))
        }
        _ => Ok(()),
    }
}

/// `e2fsck -fn`: None if the image is clean, else what it said.
fn fsck(image: &Path) -> Result<Option<String>> {
    let output = Command::new("e2fsck")
        .arg("-fn")
        .arg(image)
        .output()
        .context("could not run e2fsck")?;
    if output.status.success() {
        return Ok(None);
    }
    let mut said = output.stdout;
    said.extend_from_slice(&output.stderr);
    Ok(Some(format!(
        "e2fsck -fn: {}\n{}",
        output.status,
        head(&said)
    )))
}

/// The inode and block counts of an image, as `dumpe2fs -h` prints them.
fn counts(image: &Path) -> Result<String> {
    let output = Command::new("dumpe2fs")
        .arg("-h")
        .arg(image)
        .output()
        .context("could not run dumpe2fs")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let counts: Vec<String> = text
        .lines()
        .filter(|line| line.starts_with("Inode count:") || line.starts_with("Block count:"))
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    Ok(counts.join(", "))
}

/// The first `SHOWN_LINES` lines of a tool's output.
fn head(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    text.lines()
        .take(SHOWN_LINES)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prints the table to stdout, then every failure and difference to stderr.
fn report(rows: &[Row]) -> Result<()> {
    let mut notes = String::new();
    println!(
        "{:<32} {:>9} {:>11} {:>9} {:>9} {:>6}  e2fsck",
        "tree", "entries", "data MiB", "kiln s", "mke2fs s", "ratio"
    );
    for row in rows {
        let tree = row.tree.display();
        let seconds = |m: &Result<Measured>| match m {
            Ok(m) => format!("{:.3}", m.best.as_secs_f64()),
            Err(_) => "failed".to_string(),
        };
        let ratio = match (&row.kiln, &row.mke2fs) {
            (Ok(k), Ok(m)) => format!("{:.2}", k.best.as_secs_f64() / m.best.as_secs_f64()),
            _ => "-".to_string(),
        };
        let mut clean = true;
        for (tool, measured) in [("kiln", &row.kiln), ("mke2fs", &row.mke2fs)] {
            match measured {
                Err(err) => writeln!(notes, "{tree}: {tool} failed: {err:#}")?,
                Ok(Measured {
                    fsck_problem: Some(problem),
                    ..
                }) => {
                    clean = false;
                    writeln!(notes, "{tree}: {tool}'s image is not clean:\n{problem}")?;
                }
                Ok(_) => {}
            }
        }
        if let (Ok(k), Ok(m)) = (&row.kiln, &row.mke2fs) {
            if k.counts != m.counts {
                writeln!(
                    notes,
                    "{tree}: different geometry: kiln {}; mke2fs {}",
                    k.counts, m.counts
                )?;
            }
        }
        println!(
            "{:<32} {:>9} {:>11.1} {:>9} {:>9} {:>6}  {}",
            tree.to_string(),
            row.stats.entries,
            row.stats.bytes as f64 / MIB as f64,
            seconds(&row.kiln),
            seconds(&row.mke2fs),
            ratio,
            if clean { "clean" } else { "NOT CLEAN" },
        );
    }
    if notes.is_empty() {
        return Ok(());
    }
    eprint!("\n{notes}");
    bail!("some images failed, are not clean, or differ in geometry")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_corpus_names_before_paths() {
        assert_eq!(
            parse_source("rootfs"),
            Ok(Source::Corpus(corpus::Name::Rootfs))
        );
        assert_eq!(
            parse_source("Torture"),
            Ok(Source::Corpus(corpus::Name::Torture))
        );
        let fixtures = crate::repo_root().join("fixtures/example");
        let arg = fixtures.to_str().unwrap().to_string();
        assert_eq!(parse_source(&arg), Ok(Source::Path(fixtures)));
        assert!(parse_source("/no/such/tree").is_err());
    }

    #[test]
    fn geometry_holds_the_tree_with_room_to_spare() {
        let stats = Stats {
            entries: 1000,
            inodes: 900,
            bytes: 10 << 20,
            block_bytes: 12 << 20,
        };
        let geometry = Geometry::for_tree(&stats);
        assert_eq!(geometry.inodes, 900 + 180 + 64);
        assert_eq!(geometry.size % MIB, 0);
        assert!(geometry.size >= stats.block_bytes + geometry.inodes * INODE_SIZE + HEADROOM);
    }
}
