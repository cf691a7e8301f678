//! `cargo xtask bench`: kiln against `mke2fs -d` on the same trees, with the same geometry.
//!
//! Without `--corpus` it runs the whole matrix of issue 8 in one go: the Debian rootfs, the
//! Linux source tree and the many-small-files tree, each as ext2, ext3 and ext4, plus the
//! floor (`tar -cf - TREE | cat >/dev/null`); then the extra rows: a directory of 1,000,000
//! entries (ext4, with its htree index checked), the streamed zstd output against a raw build
//! followed by `zstd -T0 -3`, the scale checks (`--scale` runs those alone), and the FAT row
//! (bench/fat.rs; `--fat` runs it alone): kiln against `mkfs.fat` + `mcopy` on an ESP-like tree.
//! `--verity` (bench/verity.rs) and `--containers` (bench/containers.rs: kiln straight to
//! qcow2 against a build followed by `qemu-img convert`) and `--mkfs` (bench/mkfs.rs: a
//! client's `mkfs.ext4 -d` line with kiln as mkfs.ext4) run their rows alone. So do issue
//! 23's rows, alone or together in one run: `--cold` (bench/cold.rs: kiln against `mke2fs -d`
//! with the page cache dropped before every run), `--memory` (bench/memory.rs: kiln's peak
//! RSS per entry at scale) and `--reflink` (bench/reflink.rs: shared extents on XFS and btrfs
//! loop filesystems). So does issue 24's `--image-source` (bench/image_source.rs: kiln
//! reading a tree from an ext4 image of it against reading it from its directory), alone or
//! with those.
//!
//! The tree is read once (counting it, then the floor) before anything is timed, so every
//! timing is with a warm cache. Each tool runs `--runs` times and the median counts; each
//! run goes under `/usr/bin/time -f %M`, which gives that one child's peak RSS (getrusage's
//! RUSAGE_CHILDREN would be the maximum over all children so far). The last image of each
//! tool is then measured (allocated bytes, `st_blocks * 512`) and checked with `e2fsck -fn`,
//! and the two images' block and inode counts compared, since a ratio between two different
//! file systems would mean little.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use clap::ValueEnum;

use crate::corpus;
use crate::tree::{self, Stats, BLOCK_SIZE};

mod cold;
mod containers;
mod fat;
mod image_source;
mod memory;
mod mkfs;
mod progress;
mod reflink;
mod verity;

/// The inode size that `bench` asks both tools for.
const INODE_SIZE: u64 = 256;
/// Room for what `Stats` does not count: the journal, group descriptors, bitmaps, indirect
/// blocks, and lost+found.
const HEADROOM: u64 = 256 << 20;
/// Image sizes are rounded up to whole MiB so that both tools take them alike.
const MIB: u64 = 1 << 20;
/// How many lines of a failed tool's output to show.
const SHOWN_LINES: usize = 20;
/// The exit statuses of `timeout --signal=KILL` when it had to stop the command: 124, or
/// 128 + SIGKILL when the signal is what ended it.
const TIMED_OUT: [i32; 2] = [124, 137];

/// Options of `cargo xtask bench`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// A corpus name (rootfs, linux, manyfiles, torture) or the path of a directory;
    /// repeat for several. Write `./linux` for a directory that has a corpus's name.
    /// Without it: the full matrix (rootfs, linux, manyfiles' small-files tree, every type)
    /// and the extra rows (1,000,000-entry directory, streamed zstd, scale checks).
    #[arg(long, value_parser = parse_source)]
    corpus: Vec<Source>,
    /// The file system type of the images; repeat for several. Default: ext2, ext3 and ext4.
    #[arg(long = "type", value_enum)]
    fs_type: Vec<FsType>,
    /// Timed runs of each tool per tree and type; the median counts.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Only the scale checks: a 1 TiB sparse image and a 100 GiB sparse file.
    #[arg(long)]
    scale: bool,
    /// Only the FAT row: kiln `-t fat32` against `mkfs.fat -C` + `mcopy -s` on a generated
    /// ESP-like tree (about 490 MiB: kernels, initrds, EFI binaries, 3,000 small files).
    #[arg(long, conflicts_with_all = ["corpus", "fs_type", "scale", "progress"])]
    fat: bool,
    /// Only the dm-verity row: on each --corpus (default: linux), ext4 without a journal by
    /// kiln, kiln --verity append, kiln + veritysetup format, mke2fs -d + veritysetup format.
    #[arg(long, conflicts_with_all = ["fs_type", "scale", "progress", "fat"])]
    verity: bool,
    /// Only the container row: on each --corpus (default: linux), kiln straight to qcow2
    /// (plain and deflate-compressed) against kiln or `mke2fs -d` followed by
    /// `qemu-img convert` (with and without `-c`), and the output sizes.
    #[arg(long, conflicts_with_all = ["fs_type", "scale", "progress", "fat", "verity"])]
    containers: bool,
    /// Only the drop-in mke2fs row: on each --corpus (default: linux), Buildroot's
    /// `mkfs.ext4 -d` command line with e2fsprogs' mke2fs and with kiln as mkfs.ext4.
    #[arg(long, conflicts_with_all = ["fs_type", "scale", "progress", "fat", "verity", "containers"])]
    mkfs: bool,
    /// Only the cold-cache row (root): on each --corpus (default: linux; issue 23 asks for
    /// linux and rootfs), kiln and `mke2fs -d` as the ext4 rows run them, alternating, with
    /// `sync; echo 3 > /proc/sys/vm/drop_caches` before every run. With --memory, --reflink
    /// and --image-source in the same run.
    #[arg(long, conflicts_with_all = ["fs_type", "scale", "progress", "fat", "verity", "containers", "mkfs"])]
    cold: bool,
    /// Only the memory row: kiln's peak RSS per entry, past the names, on manyfiles' 500,000
    /// files, 5,000,000 files in a tar, and the 1,000,000-entry directory (one run each).
    /// With --cold, --reflink and --image-source in the same run (--corpus is --cold's).
    #[arg(long, conflicts_with_all = ["fs_type", "scale", "progress", "fat", "verity", "containers", "mkfs"])]
    memory: bool,
    /// Only the shared-extents rows (issue 23): on an XFS (reflink=1) and a btrfs loop
    /// filesystem made here, the Linux tree and a 20 GiB tree of 200 files, each built by
    /// kiln (cloning), kiln --no-reflink and mke2fs -d, image beside the tree (root). With
    /// --cold, --memory and --image-source in the same run (--corpus is --cold's).
    #[arg(long, conflicts_with_all = ["fs_type", "scale", "progress", "fat", "verity", "containers", "mkfs"])]
    reflink: bool,
    /// Only the image-source row (issue 24): on each --corpus (default: linux), kiln
    /// building the same image from the tree's directory and from an ext4 image of it
    /// (built first by kiln, not timed), interleaved; the two images must be the same
    /// bytes. With --cold, --memory and --reflink in the same run (--corpus is shared).
    #[arg(long, conflicts_with_all = ["fs_type", "scale", "progress", "fat", "verity", "containers", "mkfs"])]
    image_source: bool,
    /// Stop a run of mke2fs after this many seconds (it is quadratic in the size of a
    /// directory); a run that is stopped is not repeated and counts as "more than" this.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Time this kiln binary instead of building the workspace's in release mode.
    #[arg(long)]
    kiln: Option<PathBuf>,
    /// Only what the progress display costs: on each --corpus (default: linux) and --type
    /// (default: ext4), kiln `--progress never` against `--progress always`, interleaved.
    #[arg(long)]
    progress: bool,
    /// With --progress: also time this kiln, one built before the progress counters, as a
    /// baseline for what the counters themselves cost.
    #[arg(long, value_name = "KILN", requires = "progress")]
    kiln_before: Option<PathBuf>,
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
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
        // A group holds at most one inode per block (8 × BLOCK_SIZE of each), so a tree of
        // many empty files needs more blocks than its data and inode tables do.
        let size = (need * 13 / 10).max(inodes * BLOCK_SIZE) + HEADROOM;
        let size = size.div_ceil(MIB) * MIB;
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

/// The kiln binary, the scratch folder and the options: what every measurement needs.
struct Bench<'a> {
    kiln: PathBuf,
    scratch: PathBuf,
    args: &'a Args,
    /// Failures, unclean images and differences, printed after the tables.
    notes: String,
}

/// One child's run: wall-clock seconds and peak RSS.
struct Run {
    secs: f64,
    rss_kib: u64,
}

/// One child's run with its CPU time ([`Bench::cpu_timed`]): wall-clock seconds, CPU
/// seconds (user + system, all threads) and peak RSS.
struct CpuRun {
    wall: f64,
    cpu: f64,
    rss_kib: u64,
}

/// The runs of one tool on one tree and type.
struct Timings {
    /// Wall-clock seconds of each run.
    secs: Vec<f64>,
    /// The largest peak RSS of the runs, in KiB.
    rss_kib: u64,
    /// Whether the last run was stopped by the timeout.
    timed_out: bool,
}

/// One tool's result on one tree and type.
struct Measured {
    /// Wall-clock seconds of each timed run.
    secs: Vec<f64>,
    /// Whether the last run was stopped by `--timeout` (and so is a lower bound).
    timed_out: bool,
    /// The largest peak RSS of the runs, in KiB.
    rss_kib: u64,
    /// Bytes allocated to the last image.
    disk: u64,
    /// `e2fsck -fn`'s complaint about the image, if it had one.
    fsck_problem: Option<String>,
    /// `dumpe2fs -h`'s block and inode counts, to see that both tools made the same shape.
    counts: String,
    /// For the big directory: whether `debugfs` finds an htree index on the root.
    htree: Option<bool>,
}

impl Measured {
    fn median(&self) -> f64 {
        median(&self.secs)
    }

    /// The median as a table cell; `>N` for a run stopped by the timeout.
    fn cell(&self) -> String {
        if self.timed_out {
            format!(">{:.0}", self.median())
        } else {
            format!("{:.3}", self.median())
        }
    }
}

/// One line of the main table.
struct Row {
    name: String,
    fs_type: FsType,
    stats: Stats,
    floor: Option<f64>,
    kiln: Result<Measured>,
    /// kiln with `--sync`: flushed before the rename, as mke2fs flushes.
    kiln_sync: Option<Result<Measured>>,
    mke2fs: Option<Result<Measured>>,
}

/// What the tree model of one source keeps on the heap (kiln-tree's `tree-bytes` example).
struct ModelRow {
    name: String,
    /// Entries, bytes of their names, heap bytes of the finished tree.
    counts: Result<(u64, u64, u64)>,
}

/// The budget for the tree model: heap bytes per entry, past the names.
const MODEL_BUDGET: f64 = 200.0;

/// The streamed zstd output against a raw build followed by `zstd`.
struct StreamRow {
    name: String,
    /// `kiln build -o X.zst`: median seconds, peak RSS (KiB), compressed bytes.
    streamed: (f64, u64, u64),
    /// `kiln build -o X.img` then `zstd -T0 -3 X.img`: the same.
    separate: (f64, u64, u64),
    /// e2fsck of the decompressed streamed image.
    fsck_problem: Option<String>,
}

/// Runs the benchmark and prints its tables (Markdown, for BENCHMARKS.md). Fails if a tool
/// failed, an image is not clean, or the two tools' images differ in block or inode count.
pub(crate) fn run(args: &Args) -> Result<()> {
    if args.cold {
        // Before kiln is built and the corpora are prepared: a refusal should not wait.
        cold::check_drop_caches()?;
    }
    let kiln = match &args.kiln {
        Some(path) => path.clone(),
        None => crate::build_kiln(crate::Profile::Release)?,
    };
    // Images of the big corpora take gigabytes (sparsely), so they are removed as soon as the
    // directory is dropped; TMPDIR can point it at a tmpfs to take the disk out of the timing.
    let scratch = tempfile::Builder::new().prefix("kiln-bench.").tempdir()?;
    // A copy, so that a concurrent `cargo build` cannot swap the binary in mid-run.
    let kiln_copy = scratch.path().join("kiln");
    fs::copy(&kiln, &kiln_copy).with_context(|| format!("copy {}", kiln.display()))?;
    let tree_bytes = crate::cargo_build(
        &["-p", "kiln-tree", "--example", "tree-bytes"],
        crate::Profile::Release,
        Path::new("examples/tree-bytes"),
    )?;
    let mut bench = Bench {
        kiln: kiln_copy,
        scratch: scratch.path().to_path_buf(),
        args,
        notes: String::new(),
    };
    eprintln!("load before: {}", load());
    if args.progress {
        let trees = trees_of(&args.corpus)?;
        let types = if args.fs_type.is_empty() {
            vec![FsType::Ext4]
        } else {
            args.fs_type.clone()
        };
        let table = bench.progress_cost(&trees, &types, args.kiln_before.as_deref())?;
        eprintln!("load after: {}", load());
        print!("{table}");
        return Ok(());
    }
    if args.verity {
        return rows_alone(bench, scratch, Bench::verity, verity::report);
    }
    if args.containers {
        return rows_alone(bench, scratch, Bench::containers, containers::report);
    }
    if args.mkfs {
        return rows_alone(bench, scratch, Bench::mkfs, mkfs::report);
    }
    if args.cold || args.memory || args.reflink || args.image_source {
        return beyond_copying(bench, scratch);
    }
    if args.fat {
        let fat = bench.fat()?;
        eprintln!("load after: {}", load());
        drop(scratch);
        return report(Vec::new(), &[], &[], Some(&fat), bench.notes);
    }
    let full = args.corpus.is_empty() && !args.scale;
    let types = if args.fs_type.is_empty() {
        vec![FsType::Ext2, FsType::Ext3, FsType::Ext4]
    } else {
        args.fs_type.clone()
    };

    let mut rows = Vec::new();
    let mut streams = Vec::new();
    let mut models = Vec::new();
    if !args.scale {
        let mut trees = Vec::new();
        let mut bigdir = None;
        let sources = if full {
            [
                corpus::Name::Rootfs,
                corpus::Name::Linux,
                corpus::Name::Manyfiles,
            ]
            .map(Source::Corpus)
            .to_vec()
        } else {
            args.corpus.clone()
        };
        for source in &sources {
            match source {
                Source::Corpus(name) => match corpus::prepare(*name) {
                    Ok(paths) if full && *name == corpus::Name::Manyfiles => {
                        // The matrix takes the small-files tree; the big directory has its
                        // own row, since mke2fs takes hours on it.
                        for path in paths {
                            if path.ends_with("bigdir") {
                                bigdir = Some(path);
                            } else {
                                trees.push(path);
                            }
                        }
                    }
                    Ok(paths) => trees.extend(paths),
                    Err(err) => writeln!(bench.notes, "corpus {name:?} not built: {err:#}")?,
                },
                Source::Path(path) => trees.push(path.clone()),
            }
        }
        for tree in &trees {
            rows.extend(bench.tree(tree, &types, true, false)?);
        }
        if full {
            if let Some(bigdir) = &bigdir {
                rows.extend(bench.tree(bigdir, &[FsType::Ext4], false, true)?);
            }
            if let Some(linux) = trees.iter().find(|tree| tree.ends_with("linux")) {
                streams.push(bench.stream(linux)?);
            }
        }
        for tree in trees.iter().chain(&bigdir) {
            models.push(tree_model(&tree_bytes, tree));
        }
    }
    if full || args.scale {
        rows.extend(bench.scale()?);
    }
    let fat = full.then(|| bench.fat()).transpose()?;
    eprintln!("load after: {}", load());
    drop(scratch);
    report(rows, &streams, &models, fat.as_ref(), bench.notes)
}

/// One kind of row alone (`--verity`, `--containers`, `--mkfs`): `row` on each tree of
/// `--corpus`, then their table by `table` and the notes.
fn rows_alone<'a, R>(
    mut bench: Bench<'a>,
    scratch: tempfile::TempDir,
    row: fn(&mut Bench<'a>, &Path) -> Result<R>,
    table: fn(&[R]),
) -> Result<()> {
    let mut rows = Vec::new();
    for tree in trees_of(&bench.args.corpus)? {
        rows.push(row(&mut bench, &tree)?);
    }
    table_alone(bench, scratch, rows.as_slice(), table)
}

/// Issue 23's and 24's rows, those asked for, in one run: cold caches, memory, shared
/// extents, image sources.
fn beyond_copying(mut bench: Bench<'_>, scratch: tempfile::TempDir) -> Result<()> {
    let args = bench.args;
    let mut cold_rows = Vec::new();
    if args.cold {
        for tree in trees_of(&args.corpus)? {
            cold_rows.push(bench.cold(&tree)?);
        }
    }
    let mut image_rows = Vec::new();
    if args.image_source {
        for tree in trees_of(&args.corpus)? {
            image_rows.push(bench.image_source(&tree)?);
        }
    }
    let memory_table = args.memory.then(|| bench.memory()).transpose()?;
    let reflink_rows = args.reflink.then(|| bench.reflink()).transpose()?;
    eprintln!("load after: {}", load());
    drop(scratch);
    if args.cold {
        cold::report(&cold_rows);
    }
    if let Some(table) = &memory_table {
        memory::report(table);
    }
    if let Some(rows) = &reflink_rows {
        reflink::report(rows);
    }
    image_source::report(&image_rows);
    report(Vec::new(), &[], &[], None, bench.notes)
}

/// The end of a run of one kind of row alone: the scratch folder removed, `rows` printed by
/// `table`, then the notes.
fn table_alone<T: ?Sized>(
    bench: Bench<'_>,
    scratch: tempfile::TempDir,
    rows: &T,
    table: fn(&T),
) -> Result<()> {
    eprintln!("load after: {}", load());
    drop(scratch);
    table(rows);
    report(Vec::new(), &[], &[], None, bench.notes)
}

/// The trees of `sources` (default: the Linux source tree).
fn trees_of(sources: &[Source]) -> Result<Vec<PathBuf>> {
    let names = if sources.is_empty() {
        vec![Source::Corpus(corpus::Name::Linux)]
    } else {
        sources.to_vec()
    };
    let mut trees = Vec::new();
    for source in names {
        match source {
            Source::Corpus(name) => trees.extend(corpus::prepare(name)?),
            Source::Path(path) => trees.push(path),
        }
    }
    Ok(trees)
}

/// What the tables call `tree`: its last component.
fn tree_name(tree: &Path) -> String {
    tree.file_name().map_or_else(
        || tree.display().to_string(),
        |n| n.to_string_lossy().into(),
    )
}

/// Runs the `tree-bytes` example on `tree`: what its tree model keeps on the heap.
fn tree_model(tree_bytes: &Path, tree: &Path) -> ModelRow {
    let name = tree_name(tree);
    eprintln!("bench tree model: {}", tree.display());
    let counts = Command::new(tree_bytes)
        .arg(tree)
        .output()
        .context("could not run tree-bytes")
        .and_then(|out| {
            anyhow::ensure!(out.status.success(), "tree-bytes: {}", head(&out.stderr));
            let text = String::from_utf8_lossy(&out.stdout);
            model_counts(&text).with_context(|| format!("tree-bytes printed {text:?}"))
        });
    ModelRow { name, counts }
}

/// Entries, name bytes and heap bytes from the line `tree-bytes` prints ("N entries, N
/// name bytes, N heap bytes in N blocks: …"): its first three numbers.
fn model_counts(line: &str) -> Option<(u64, u64, u64)> {
    let mut numbers = line
        .split_whitespace()
        .filter_map(|word| word.trim_end_matches([',', ':']).parse::<u64>().ok());
    Some((numbers.next()?, numbers.next()?, numbers.next()?))
}

impl Bench<'_> {
    /// Measures the floor once for the tree (if `floor`), then both tools for each type;
    /// with `htree`, also whether the root directory of each image is indexed.
    fn tree(
        &mut self,
        tree: &Path,
        types: &[FsType],
        floor: bool,
        htree: bool,
    ) -> Result<Vec<Row>> {
        let name = tree_name(tree);
        // Reading the whole tree (metadata here, data in the floor) warms the cache.
        tree::stats(tree)?;
        let floor = if floor {
            Some(self.floor(tree)?)
        } else {
            warm(tree)?;
            None
        };
        // A directory this big must be indexed: check that it is.
        let htree = htree || fs::read_dir(tree)?.count() > 100_000;
        let mut rows = Vec::new();
        for &fs_type in types {
            rows.push(self.row(&name, tree, fs_type, floor, htree)?);
        }
        Ok(rows)
    }

    /// Median seconds of `tar -cf - TREE | cat >/dev/null`: reading every file once.
    /// (GNU tar writing to /dev/null itself would skip reading the data.)
    fn floor(&self, tree: &Path) -> Result<f64> {
        let mut secs = Vec::new();
        // One more run than timed, as the warm-up.
        for i in 0..=self.args.runs {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", "tar -cf - \"$1\" | cat >/dev/null", "sh"])
                .arg(tree);
            let run = self.timed(cmd, None)?.context("the floor timed out")?;
            if i > 0 {
                secs.push(run.secs);
            }
        }
        eprintln!("  floor {}: {:.3} s", tree.display(), median(&secs));
        Ok(median(&secs))
    }

    /// Both tools on one tree and type, each making the image with the same geometry.
    /// A tool's failure is kept in the row, so that the other trees are still measured.
    fn row(
        &mut self,
        name: &str,
        tree: &Path,
        fs_type: FsType,
        floor: Option<f64>,
        htree: bool,
    ) -> Result<Row> {
        let stats = tree::stats(tree)?;
        let geometry = Geometry::for_tree(&stats);
        let mut row = self.build_both(name, tree, fs_type, &geometry, stats, htree)?;
        row.floor = floor;
        Ok(row)
    }

    fn build_both(
        &mut self,
        name: &str,
        tree: &Path,
        fs_type: FsType,
        geometry: &Geometry,
        stats: Stats,
        htree: bool,
    ) -> Result<Row> {
        let options = geometry.options(fs_type);
        eprintln!(
            "bench {name} {}: {} entries, --size {} MiB {}",
            fs_type.name(),
            stats.entries,
            geometry.size / MIB,
            options.join(" "),
        );
        let kiln_image = self.scratch.join("kiln.img");
        let mke2fs_image = self.scratch.join("mke2fs.img");
        let kiln_cmd = || self.kiln_build(tree, &kiln_image, &options, geometry.size);
        let mke2fs_cmd = || mke2fs_build(tree, &mke2fs_image, &options, geometry.size);
        let kiln = self.measure(&kiln_image, None, htree, kiln_cmd);
        let kiln_sync = self.measure(&kiln_image, None, htree, || {
            let mut cmd = kiln_cmd();
            cmd.arg("--sync");
            cmd
        });
        let mke2fs = self.measure(&mke2fs_image, Some(self.args.timeout), htree, mke2fs_cmd);
        let label = format!("{name} {}", fs_type.name());
        let tools = [
            ("kiln", &kiln),
            ("kiln --sync", &kiln_sync),
            ("mke2fs", &mke2fs),
        ];
        self.note_failures(&label, &tools)?;
        if let (Ok(k), Ok(m)) = (&kiln, &mke2fs) {
            if k.counts != m.counts && !m.timed_out {
                writeln!(
                    self.notes,
                    "{label}: different geometry: kiln {}; mke2fs {}",
                    k.counts, m.counts
                )?;
            }
        }
        remove(&kiln_image)?;
        remove(&mke2fs_image)?;
        Ok(Row {
            name: name.to_string(),
            fs_type,
            stats,
            floor: None,
            kiln,
            kiln_sync: Some(kiln_sync),
            mke2fs: Some(mke2fs),
        })
    }

    /// `kiln build TREE -o IMAGE OPTIONS --size SIZE`: kiln as the rows with a [`Geometry`]
    /// run it, `options` being the geometry's.
    fn kiln_build(&self, tree: &Path, image: &Path, options: &[String], size: u64) -> Command {
        let mut cmd = Command::new(&self.kiln);
        cmd.arg("build")
            .arg(tree)
            .arg("-o")
            .arg(image)
            .args(options)
            .arg("--size")
            .arg(size.to_string());
        cmd
    }

    /// Notes each tool that failed or left an image that is not clean.
    fn note_failures(&mut self, label: &str, tools: &[(&str, &Result<Measured>)]) -> Result<()> {
        for (tool, measured) in tools {
            match measured {
                Err(err) => writeln!(self.notes, "{label}: {tool} failed: {err:#}")?,
                Ok(Measured {
                    fsck_problem: Some(problem),
                    ..
                }) => writeln!(
                    self.notes,
                    "{label}: {tool}'s image is not clean:\n{problem}"
                )?,
                Ok(_) => {}
            }
        }
        Ok(())
    }

    /// Runs one tool `--runs` times (fewer if it times out), then measures and checks the
    /// image it left.
    fn measure(
        &self,
        image: &Path,
        timeout: Option<u64>,
        htree: bool,
        command: impl Fn() -> Command,
    ) -> Result<Measured> {
        self.measure_runs(image, timeout, htree, self.args.runs, command)
    }

    /// [`Bench::measure`] with `runs` runs.
    fn measure_runs(
        &self,
        image: &Path,
        timeout: Option<u64>,
        htree: bool,
        runs: u32,
        command: impl Fn() -> Command,
    ) -> Result<Measured> {
        let Timings {
            secs,
            rss_kib,
            timed_out,
        } = self.time_runs(image, timeout, runs, &command)?;
        let (disk, fsck_problem, counts, htree) = if timed_out {
            (0, None, String::new(), None)
        } else {
            (
                disk_usage(image)?,
                fsck(image)?,
                counts(image)?,
                htree.then(|| is_htree(image)).transpose()?,
            )
        };
        eprintln!(
            "  {:?}: median {:.3} s{}",
            command().get_program(),
            median(&secs),
            if timed_out { " (timed out)" } else { "" }
        );
        Ok(Measured {
            secs,
            timed_out,
            rss_kib,
            disk,
            fsck_problem,
            counts,
            htree,
        })
    }

    /// Runs one tool `runs` times (fewer if it times out), each time without an old image
    /// (deleting one is not part of the work), and requires the image after each run.
    fn time_runs(
        &self,
        image: &Path,
        timeout: Option<u64>,
        runs: u32,
        command: impl Fn() -> Command,
    ) -> Result<Timings> {
        let mut timings = Timings {
            secs: Vec::new(),
            rss_kib: 0,
            timed_out: false,
        };
        for _ in 0..runs {
            remove(image)?;
            match self.timed(command(), timeout)? {
                Some(run) => {
                    ensure!(image.is_file(), "the tool succeeded but left no image");
                    timings.secs.push(run.secs);
                    timings.rss_kib = timings.rss_kib.max(run.rss_kib);
                }
                None => {
                    timings.secs.push(timeout.unwrap_or_default() as f64);
                    timings.timed_out = true;
                    break;
                }
            }
        }
        Ok(timings)
    }

    /// Runs `command` under `/usr/bin/time -f %M` (and `timeout`, if given) and returns its
    /// wall-clock time and peak RSS, or None if the timeout stopped it.
    fn timed(&self, command: Command, timeout: Option<u64>) -> Result<Option<Run>> {
        let rss_file = self.scratch.join("rss");
        let mut cmd = Command::new("/usr/bin/time");
        cmd.args(["-f", "%M", "-o"]).arg(&rss_file);
        if let Some(secs) = timeout {
            cmd.args(["timeout", "--signal=KILL"]).arg(secs.to_string());
        }
        cmd.arg(command.get_program()).args(command.get_args());
        let start = Instant::now();
        let output = cmd
            .output()
            .with_context(|| format!("could not run {command:?}"))?;
        let secs = start.elapsed().as_secs_f64();
        if timeout.is_some() && output.status.code().is_some_and(|c| TIMED_OUT.contains(&c)) {
            return Ok(None);
        }
        if !output.status.success() {
            bail!(
                "{command:?} failed ({}):\n{}",
                output.status,
                head(&output.stderr)
            );
        }
        // time writes the peak RSS in KiB on the last line.
        let text = fs::read_to_string(&rss_file).context("read /usr/bin/time's output")?;
        let rss_kib = text
            .lines()
            .last()
            .and_then(|line| line.trim().parse().ok())
            .with_context(|| format!("no peak RSS in /usr/bin/time's output {text:?}"))?;
        Ok(Some(Run { secs, rss_kib }))
    }

    /// `kiln build linux -o X.zst -t ext4` against `kiln build -o X.img` + `zstd -T0 -3`.
    fn stream(&mut self, tree: &Path) -> Result<StreamRow> {
        let stats = tree::stats(tree)?;
        warm(tree)?;
        let geometry = Geometry::for_tree(&stats);
        let options = geometry.options(FsType::Ext4);
        let raw = self.scratch.join("raw.img");
        let raw_zst = self.scratch.join("raw.img.zst");
        let streamed = self.scratch.join("streamed.img.zst");
        let build = |out: &Path| self.kiln_build(tree, out, &options, geometry.size);
        eprintln!("bench zstd: streamed against raw + zstd -T0 -3");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let (mut a_rss, mut b_rss) = (0, 0);
        for _ in 0..self.args.runs {
            remove(&streamed)?;
            let run = self.timed(build(&streamed), None)?.context("no timeout")?;
            a.push(run.secs);
            a_rss = a_rss.max(run.rss_kib);

            remove(&raw)?;
            remove(&raw_zst)?;
            let first = self.timed(build(&raw), None)?.context("no timeout")?;
            let mut zstd = Command::new("zstd");
            zstd.args(["-q", "-f", "-T0", "-3"])
                .arg(&raw)
                .arg("-o")
                .arg(&raw_zst);
            let second = self.timed(zstd, None)?.context("no timeout")?;
            b.push(first.secs + second.secs);
            b_rss = b_rss.max(first.rss_kib).max(second.rss_kib);
        }
        // The streamed image must be the same kind of image: decompress it and check it.
        remove(&raw)?;
        let status = Command::new("zstd")
            .args(["-q", "-d", "-f"])
            .arg(&streamed)
            .arg("-o")
            .arg(&raw)
            .status()?;
        ensure!(status.success(), "zstd -d of the streamed image failed");
        let fsck_problem = fsck(&raw)?;
        if let Some(problem) = &fsck_problem {
            writeln!(self.notes, "streamed zstd image is not clean:\n{problem}")?;
        }
        let row = StreamRow {
            name: tree
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into()),
            streamed: (median(&a), a_rss, fs::metadata(&streamed)?.len()),
            separate: (median(&b), b_rss, fs::metadata(&raw_zst)?.len()),
            fsck_problem,
        };
        for file in [&raw, &raw_zst, &streamed] {
            remove(file)?;
        }
        Ok(row)
    }

    /// The scale checks: a small tree in a 1 TiB sparse image, and one 100 GiB sparse file
    /// with a few MiB of data at its start, middle and end, both as ext4 by both tools.
    fn scale(&mut self) -> Result<Vec<Row>> {
        let mut rows = Vec::new();
        let example = crate::repo_root().join("fixtures/example");
        let stats = tree::stats(&example)?;
        let geometry = Geometry {
            size: 1 << 40,
            inodes: Geometry::for_tree(&stats).inodes,
        };
        rows.push(self.build_both(
            "example in 1 TiB",
            &example,
            FsType::Ext4,
            &geometry,
            stats,
            false,
        )?);

        let sparse = corpus::base().join("sparse100g");
        tree::make_sparse(&sparse, 100 << 30, 4 << 20)?;
        let stats = tree::stats(&sparse)?;
        // The data is a few MiB: room for the file's apparent size would be a 130 GiB image.
        let geometry = Geometry {
            size: 1 << 30,
            inodes: Geometry::for_tree(&stats).inodes,
        };
        rows.push(self.build_both(
            "100 GiB sparse file",
            &sparse,
            FsType::Ext4,
            &geometry,
            stats,
            false,
        )?);
        rows.push(self.many_files()?);
        Ok(rows)
    }

    /// Five million small files (a tar archive made once), as ext4 with inline_data and an
    /// automatic size, by kiln alone and once: the scale check of the tree model.
    fn many_files(&mut self) -> Result<Row> {
        let (tar, stats) = many_files_tar()?;
        let image = self.scratch.join("kiln.img");
        let kiln = self.measure_runs(&image, None, false, 1, || {
            self.many_files_build(&tar, &image)
        });
        self.note_failures("5,000,000 files", &[("kiln", &kiln)])?;
        remove(&image)?;
        Ok(Row {
            name: "5,000,000 files (tar)".into(),
            fs_type: FsType::Ext4,
            stats,
            floor: None,
            kiln,
            kiln_sync: None,
            mke2fs: None,
        })
    }

    /// `kiln build TAR -o IMAGE -t ext4 -O inline_data --size auto`: the many-files build.
    fn many_files_build(&self, tar: &Path, image: &Path) -> Command {
        let mut cmd = Command::new(&self.kiln);
        cmd.arg("build").arg(tar).arg("-o").arg(image);
        cmd.args(["-t", "ext4", "-O", "inline_data", "--size", "auto"]);
        cmd
    }
}

/// The number of files of the many-files scale check.
const MANY_FILES: u64 = 5_000_000;

/// The many-files archive (`files5m.tar` under the corpus base, made if missing) and its
/// tree's counts.
fn many_files_tar() -> Result<(PathBuf, Stats)> {
    let tar = corpus::base().join("files5m.tar");
    eprintln!("bench 5,000,000 files: making {} if needed", tar.display());
    let stats = tree::make_many_files_tar(&tar, MANY_FILES, 1000)?;
    eprintln!(
        "bench 5,000,000 files: {} entries, ext4 -O inline_data --size auto",
        stats.entries
    );
    Ok((tar, stats))
}

/// `mke2fs -q -F OPTIONS -d TREE IMAGE SIZEk`: e2fsprogs' build of the same image as
/// [`Bench::kiln_build`].
fn mke2fs_build(tree: &Path, image: &Path, options: &[String], size: u64) -> Command {
    let mut cmd = Command::new("mke2fs");
    cmd.args(["-q", "-F"]).args(options);
    // A size with a `k` suffix is read in KiB whatever the block size.
    cmd.arg("-d")
        .arg(tree)
        .arg(image)
        .arg(format!("{}k", size / 1024));
    cmd
}

/// Reads every file of the tree once, so that the timed runs find it in the page cache.
fn warm(tree: &Path) -> Result<()> {
    let status = Command::new("sh")
        .args(["-c", "tar -cf - \"$1\" | cat >/dev/null", "sh"])
        .arg(tree)
        .status()?;
    ensure!(status.success(), "tar of {} failed", tree.display());
    Ok(())
}

/// The median of some timings.
fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// The load average, to show that nothing else ran.
fn load() -> String {
    fs::read_to_string("/proc/loadavg").map_or_else(|_| "unknown".into(), |s| s.trim().into())
}

/// Removes a file if there is one.
fn remove(file: &Path) -> Result<()> {
    match fs::remove_file(file) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("remove {}", file.display()))
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

/// Whether the image's root directory has an htree index, as `debugfs` sees it.
fn is_htree(image: &Path) -> Result<bool> {
    let output = Command::new("debugfs")
        .args(["-R", "htree /"])
        .arg(image)
        .output()
        .context("could not run debugfs")?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(output.status.success() && text.contains("Root node dump"))
}

/// The inode and block counts of an image, as `dumpe2fs -h` prints them.
fn counts(image: &Path) -> Result<String> {
    header_fields(image, &["Inode count:", "Block count:"])
}

/// The lines of `dumpe2fs -h` that start with one of `fields`, joined.
fn header_fields(image: &Path, fields: &[&str]) -> Result<String> {
    let output = Command::new("dumpe2fs")
        .arg("-h")
        .arg(image)
        .output()
        .context("could not run dumpe2fs")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<String> = text
        .lines()
        .filter(|line| fields.iter().any(|f| line.starts_with(f)))
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    Ok(lines.join(", "))
}

/// The first `SHOWN_LINES` lines of a tool's output.
fn head(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    text.lines()
        .take(SHOWN_LINES)
        .collect::<Vec<_>>()
        .join("\n")
}

/// MiB with one decimal.
fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / MIB as f64)
}

/// Prints the tables to stdout as Markdown, then every failure and difference to stderr.
fn report(
    rows: Vec<Row>,
    streams: &[StreamRow],
    models: &[ModelRow],
    fat: Option<&fat::FatRow>,
    mut notes: String,
) -> Result<()> {
    if !rows.is_empty() {
        report_rows(rows, &mut notes)?;
    }
    for row in streams {
        report_stream(row);
    }
    report_models(models, &mut notes)?;
    if let Some(row) = fat {
        fat::report(row);
    }
    if notes.is_empty() {
        return Ok(());
    }
    eprint!("\n{notes}");
    bail!("some corpora or images failed, are not clean, or differ in geometry")
}

/// The main table: each tree and type, kiln against mke2fs.
fn report_rows(rows: Vec<Row>, notes: &mut String) -> Result<()> {
    println!(
        "| tree | type | entries | data MiB | floor s | kiln s | kiln --sync s | mke2fs s | \
         kiln/mke2fs | kiln --sync/mke2fs | kiln/floor | kiln RSS MiB | mke2fs RSS MiB | \
         kiln disk MiB | mke2fs disk MiB | e2fsck |"
    );
    println!("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|");
    for row in rows {
        let kiln = row.kiln.as_ref().ok();
        let kiln_sync = row.kiln_sync.as_ref().and_then(|m| m.as_ref().ok());
        let mke2fs = row.mke2fs.as_ref().and_then(|m| m.as_ref().ok());
        let cell = |m: Option<&Measured>, f: &dyn Fn(&Measured) -> String| {
            m.map_or_else(|| "failed".to_string(), f)
        };
        // A tool the row did not run at all: "-", not "failed".
        let optional = |ran: bool, m: Option<&Measured>, f: &dyn Fn(&Measured) -> String| {
            if ran {
                cell(m, f)
            } else {
                "-".to_string()
            }
        };
        let ratio = |k: Option<&Measured>| match (k, mke2fs) {
            (Some(k), Some(m)) if m.timed_out => format!("<{:.3}", k.median() / m.median()),
            (Some(k), Some(m)) => format!("{:.3}", k.median() / m.median()),
            _ => "-".into(),
        };
        let to_floor = match (kiln, row.floor) {
            (Some(k), Some(floor)) => format!("{:.2}", k.median() / floor),
            _ => "-".into(),
        };
        let clean = |m: Option<&Measured>| match m {
            None => "-",
            Some(m) if m.timed_out => "-",
            Some(m) if m.fsck_problem.is_none() => "clean",
            Some(_) => "NOT CLEAN",
        };
        let mut fsck = format!("{} / {}", clean(kiln), clean(mke2fs));
        if let Some(htree) = kiln.and_then(|k| k.htree) {
            let _ = write!(fsck, "; kiln htree: {}", if htree { "yes" } else { "NO" });
        }
        if let Some(htree) = mke2fs.and_then(|m| m.htree) {
            let _ = write!(fsck, "; mke2fs htree: {}", if htree { "yes" } else { "no" });
        }
        if kiln.and_then(|k| k.htree) == Some(false) {
            writeln!(
                notes,
                "{}: kiln's big directory has no htree index",
                row.name
            )?;
        }
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.name,
            row.fs_type.name(),
            row.stats.entries,
            mib(row.stats.bytes),
            row.floor.map_or_else(|| "-".into(), |f| format!("{f:.3}")),
            cell(kiln, &Measured::cell),
            optional(row.kiln_sync.is_some(), kiln_sync, &Measured::cell),
            optional(row.mke2fs.is_some(), mke2fs, &Measured::cell),
            ratio(kiln),
            ratio(kiln_sync),
            to_floor,
            cell(kiln, &|m| mib(m.rss_kib * 1024)),
            optional(row.mke2fs.is_some(), mke2fs, &|m| if m.timed_out {
                "-".into()
            } else {
                mib(m.rss_kib * 1024)
            }),
            cell(kiln, &|m| mib(m.disk)),
            optional(row.mke2fs.is_some(), mke2fs, &|m| if m.timed_out {
                "-".into()
            } else {
                mib(m.disk)
            }),
            fsck,
        );
    }
    Ok(())
}

/// The table of the streamed zstd output against a raw build followed by `zstd`.
fn report_stream(row: &StreamRow) {
    println!();
    println!(
        "| zstd, {} ext4 | s | ratio | peak RSS MiB | compressed MiB | e2fsck |",
        row.name
    );
    println!("|---|--:|--:|--:|--:|---|");
    let (s, s_rss, s_len) = row.streamed;
    let (r, r_rss, r_len) = row.separate;
    println!(
        "| `kiln build -o X.zst` | {s:.3} | {:.2} | {} | {} | {} |",
        s / r,
        mib(s_rss * 1024),
        mib(s_len),
        if row.fsck_problem.is_none() {
            "clean"
        } else {
            "NOT CLEAN"
        }
    );
    println!(
        "| `kiln build -o X.img` + `zstd -T0 -3` | {r:.3} | 1.00 | {} | {} | |",
        mib(r_rss * 1024),
        mib(r_len)
    );
}

/// The table of the tree model's heap bytes per entry, past the names.
fn report_models(models: &[ModelRow], notes: &mut String) -> Result<()> {
    if models.is_empty() {
        return Ok(());
    }
    println!();
    println!("| tree model | entries | name bytes | heap bytes | bytes per entry past the names |");
    println!("|---|--:|--:|--:|--:|");
    for row in models {
        match &row.counts {
            Ok((entries, names, heap)) => {
                let per_entry = heap.saturating_sub(*names) as f64 / (*entries).max(1) as f64;
                let over = if per_entry > MODEL_BUDGET {
                    " (over the budget)"
                } else {
                    ""
                };
                println!(
                    "| {} | {entries} | {names} | {heap} | {per_entry:.1}{over} |",
                    row.name
                );
            }
            Err(err) => {
                println!("| {} | failed | | | |", row.name);
                writeln!(notes, "{}: tree model not measured: {err:#}", row.name)?;
            }
        }
    }
    Ok(())
}

/// Bytes the file at `path` takes on disk (`st_blocks` × 512; its length
/// where the host does not say).
fn disk_usage(path: &Path) -> Result<u64> {
    let meta = fs::metadata(path)?;
    #[cfg(unix)]
    let used = std::os::unix::fs::MetadataExt::blocks(&meta) * 512;
    #[cfg(not(unix))]
    let used = meta.len();
    Ok(used)
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
            name_bytes: 10_000,
        };
        let geometry = Geometry::for_tree(&stats);
        assert_eq!(geometry.inodes, 900 + 180 + 64);
        assert_eq!(geometry.size % MIB, 0);
        assert!(geometry.size >= stats.block_bytes + geometry.inodes * INODE_SIZE + HEADROOM);
    }

    #[test]
    fn geometry_has_a_block_for_each_inode() {
        let stats = Stats {
            entries: 1_000_001,
            inodes: 1_000_001,
            bytes: 0,
            block_bytes: 4096,
            name_bytes: 14_000_007,
        };
        let geometry = Geometry::for_tree(&stats);
        assert!(geometry.size >= geometry.inodes * BLOCK_SIZE);
    }

    #[test]
    fn model_counts_are_the_first_three_numbers() {
        let line = "83731 entries, 1031331 name bytes, 13534890 heap bytes in 30024 blocks: \
                    149.3 bytes per entry plus the names\n";
        assert_eq!(model_counts(line), Some((83731, 1031331, 13534890)));
        assert_eq!(model_counts("2 entries"), None);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
