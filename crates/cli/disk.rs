//! `kiln build --config disk.toml`: a whole disk image in one forward pass.
//!
//! 1. Each filesystem partition's sources are read into a tree, with the
//!    flags of `kiln build` (its `sources`, `type` and `options`).
//! 2. Sizes: fixed ones as given; `auto` from a plan of the tree (plus
//!    `free`, within `min`..`max`); raw images from their length; then the
//!    GPT layout (`kiln_disk::layout`), where the last partition may grow.
//! 3. Each filesystem is planned for its partition's exact size.
//! 4. Emission in disk order into one sink: the primary GPT, each partition
//!    (filesystems through an [`OffsetSink`], raw images copied), the backup
//!    GPT; a streaming sink (zstd, stdout) sees one forward pass.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, FromArgMatches};
use kiln_disk::layout::{self as disk, DiskLayout, DiskSpec, PartitionSpec, ALIGNMENT};
use kiln_ext::{AutoSize, FreeSpace, Plan};
use kiln_sink::layout_file::{Config, Content, Partition, Size, Table};
use kiln_sink::{OffsetSink, Sink};
use kiln_tree::OutputPlace;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::flags::{BuildArgs, Cli, Command};
use crate::output::{Output, OutputArgs, Target};
use crate::{FsInput, Layer};

/// Bytes copied from a raw image at a time.
const COPY_CHUNK: usize = 1 << 20;

/// What fills one partition, ready to size.
enum Filling {
    Empty,
    Image { path: PathBuf, len: u64 },
    Fs(FsInput),
}

/// What one partition is to hold, as the layout file says, before
/// anything is read.
enum Request {
    Empty,
    Image(PathBuf),
    Fs {
        build: Box<BuildArgs>,
        layers: Vec<Layer>,
    },
}

/// `kiln build --config FILE -o OUTPUT`.
pub(crate) fn build(args: &BuildArgs, config_path: &Path) -> Result<()> {
    let config = Config::load(config_path)?;
    let text = std::fs::read(config_path).with_context(|| config_path.display().to_string())?;
    let in_config = |p: &Partition| format!("{}: {}", config_path.display(), p.key);
    let requests = config
        .partitions
        .iter()
        .map(|p| request(p, args.live).with_context(|| in_config(p)))
        .collect::<Result<Vec<_>>>()?;
    let target = Target::check(&output_args(args), &inputs(config_path, &requests))?;
    let sde = crate::source_date_epoch()?;
    let fillings = config
        .partitions
        .iter()
        .zip(&requests)
        .map(|(p, r)| filling(r, sde, target.place()).with_context(|| in_config(p)))
        .collect::<Result<Vec<_>>>()?;
    let sizes = config
        .partitions
        .iter()
        .zip(&fillings)
        .map(|(p, f)| {
            needed_size(p, f).with_context(|| format!("{}: {}", config_path.display(), p.key))
        })
        .collect::<Result<Vec<_>>>()?;
    let seed = seed(&text, &fillings);
    let layout = match config.table {
        Table::Gpt => disk::layout(&DiskSpec {
            partitions: config
                .partitions
                .iter()
                .zip(&sizes)
                .map(|(p, &size)| PartitionSpec {
                    label: p.label.clone(),
                    type_guid: p.type_guid,
                    size: size.unwrap_or(0),
                    grow: p.size == Size::Grow,
                    uuid: p.uuid,
                    attributes: p.attributes,
                })
                .collect(),
            size: match config.size {
                Some(size) => Some(size),
                None => crate::output::block_device_size(&args.output)?,
            },
            seed,
            disk_guid: config.uuid,
        })
        .with_context(|| config_path.display().to_string())?,
        Table::None => bare_layout(&config, &sizes)?,
    };
    let plans = config
        .partitions
        .iter()
        .zip(&fillings)
        .zip(&layout.partitions)
        .map(|((p, f), placed)| match f {
            Filling::Fs(fs) => fs
                .plan(Some(placed.region.len))
                .map(Some)
                .with_context(|| format!("{}: {}", config_path.display(), p.key)),
            _ => Ok(None),
        })
        .collect::<Result<Vec<Option<Plan<'_>>>>>()?;
    for note in plans.iter().flatten().flat_map(|p| &p.notes) {
        eprintln!("kiln: note: {note}");
    }
    for (plan, p) in plans.iter().zip(&config.partitions) {
        if let Some(warning) = plan.as_ref().and_then(Plan::low_room) {
            eprintln!("kiln: warning: partition {}: {warning}", p.key);
        }
    }
    let out = Output::open(&output_args(args), &target, layout.size)?;
    write_disk(out.sink(), &config, &layout, &fillings, &plans)?;
    let written = out.finish(args.durability())?;
    let report = Report::new(&config, &layout, &plans, written.compressed);
    report.print_summary(&args.output);
    if let Some(path) = &args.report {
        report.write(path, written.sha256, args)?;
    }
    Ok(())
}

/// The output flags of a build.
pub(crate) fn output_args(args: &BuildArgs) -> OutputArgs<'_> {
    OutputArgs {
        path: &args.output,
        force: args.force,
        compress: args.compress.as_deref(),
        offset: args.offset,
    }
}

/// The files a disk's build reads: the layout file, raw images, and each
/// filesystem's layers.
fn inputs<'a>(config_path: &'a Path, requests: &'a [Request]) -> Vec<&'a Path> {
    let mut files = vec![config_path];
    for r in requests {
        match r {
            Request::Empty => {}
            Request::Image(path) => files.push(path),
            Request::Fs { build, layers } => files.extend(crate::input_files(layers, &build.tree)),
        }
    }
    files
}

/// What partition `p` is to hold: its filesystem's flags parsed, nothing
/// read yet. `live` is the command line's `--live`, which holds for every
/// filesystem.
fn request(p: &Partition, live: bool) -> Result<Request> {
    Ok(match &p.content {
        Content::Empty => Request::Empty,
        Content::Image(path) => Request::Image(path.clone()),
        Content::Filesystem(argv) => {
            let full = ["kiln", "build"]
                .into_iter()
                .map(String::from)
                .chain(argv.iter().cloned())
                .chain(["-o".to_string(), "-".to_string()]);
            let matches = Cli::command()
                .try_get_matches_from(full)
                .context("filesystem options")?;
            let Command::Build(mut build) = Cli::from_arg_matches(&matches)?.command else {
                bail!("filesystem options: not a build");
            };
            // OK: the argument list starts with `build`.
            let sub = matches.subcommand_matches("build").expect("build matches");
            if build.config.is_some() || build.size.is_some() || build.free.is_some() {
                bail!("filesystem options: --config, --size and --free belong to the layout, not to a filesystem");
            }
            let output_flags = build.force
                || build.sync
                || build.compress.is_some()
                || build.offset.is_some()
                || build.report.is_some();
            if output_flags {
                bail!("filesystem options: --force, --sync, --compress, --offset and --report belong to the command line, not to a filesystem");
            }
            build.live |= live;
            let layers = build.tree.layers(&build.sources, sub);
            Request::Fs { build, layers }
        }
    })
}

/// Reads what fills a partition: a filesystem's tree (`output` is where
/// the disk goes, which its directory sources must not hold), a raw
/// image's length, or nothing.
fn filling(r: &Request, sde: Option<i64>, output: Option<&OutputPlace>) -> Result<Filling> {
    Ok(match r {
        Request::Empty => Filling::Empty,
        Request::Image(path) => {
            let len = std::fs::metadata(path)
                .with_context(|| path.display().to_string())?
                .len();
            Filling::Image {
                path: path.clone(),
                len,
            }
        }
        Request::Fs { build, layers } => {
            Filling::Fs(crate::prepare_fs(build, layers, sde, output)?)
        }
    })
}

/// The bytes partition `p` needs (None: it grows to fill the disk).
fn needed_size(p: &Partition, f: &Filling) -> Result<Option<u64>> {
    // A filesystem's `free` goes inside it (the smallest filesystem with
    // that much free space); a raw image's after it.
    let (content, free_outside) = match (f, &p.size) {
        (Filling::Empty, _) => (0, 0),
        (Filling::Image { len, .. }, Size::Auto { free, .. }) => (*len, *free),
        (Filling::Image { len, .. }, _) => (*len, 0),
        (Filling::Fs(fs), Size::Auto { free, .. }) => {
            let mut opts = fs.opts.clone();
            opts.auto = AutoSize::Exact {
                free: FreeSpace::Bytes(*free),
                free_inodes: None,
            };
            (kiln_ext::plan(&fs.tree, &opts)?.image_size, 0)
        }
        (Filling::Fs(_), _) => (0, 0),
    };
    match p.size {
        Size::Grow => Ok(None),
        Size::Fixed(n) if n < content => {
            bail!("size: {n} bytes, but the image file needs {content}")
        }
        Size::Fixed(n) => Ok(Some(n)),
        Size::Auto { min, max, .. } => {
            let want = content
                .checked_add(free_outside)
                .map(|n| n.max(min.unwrap_or(0)))
                .and_then(|n| n.checked_next_multiple_of(ALIGNMENT))
                .with_context(|| {
                    format!("free: {content} + {free_outside} bytes is more than a disk can hold")
                })?;
            match max {
                Some(max) if want > max => {
                    bail!("max: the content needs {want} bytes (with free space), more than {max}")
                }
                _ => Ok(Some(want)),
            }
        }
    }
}

/// The layout of a disk without a partition table: its one partition is
/// the whole disk.
fn bare_layout(config: &Config, sizes: &[Option<u64>]) -> Result<DiskLayout> {
    let p = &config.partitions[0];
    let size = sizes[0].or(config.size).context("disk.size: needed")?;
    Ok(DiskLayout {
        size,
        disk_guid: uuid::Uuid::nil(),
        partitions: vec![disk::PlacedPartition {
            number: 1,
            label: p.label.clone(),
            type_guid: p.type_guid,
            uuid: uuid::Uuid::nil(),
            region: kiln_disk::Region {
                offset: 0,
                len: size,
            },
            attributes: p.attributes,
        }],
    })
}

/// The seed of the disk's GUIDs: a digest of the layout file and of each
/// filesystem's identifiers (themselves digests of their trees).
fn seed(config_text: &[u8], fillings: &[Filling]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"kiln disk v1\0");
    h.update(config_text);
    for f in fillings {
        if let Filling::Fs(fs) = f {
            h.update(fs.opts.uuid);
        }
    }
    let digest = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// Writes the whole disk in order.
fn write_disk(
    sink: &dyn Sink,
    config: &Config,
    layout: &DiskLayout,
    fillings: &[Filling],
    plans: &[Option<Plan<'_>>],
) -> Result<()> {
    let gpt = match config.table {
        Table::Gpt => disk::gpt_writes(layout)?,
        Table::None => Vec::new(),
    };
    let first_partition = layout.partitions[0].region.offset;
    let (head, tail): (Vec<_>, Vec<_>) = gpt.iter().partition(|(at, _)| *at < first_partition);
    for (at, bytes) in head {
        sink.write_at(*at, bytes)?;
    }
    for ((placed, filling), plan) in layout.partitions.iter().zip(fillings).zip(plans) {
        let region = placed.region;
        sink.advance(region.offset)?;
        match (filling, plan) {
            (Filling::Fs(_), Some(plan)) => crate::warn_stored_anyway(&kiln_ext::emit(
                plan,
                &OffsetSink::new(sink, region.offset),
            )?),
            (Filling::Image { path, len }, _) => copy_image(sink, path, *len, region.offset)?,
            _ => {}
        }
        sink.advance(region.offset + region.len)?;
    }
    for (at, bytes) in tail {
        sink.write_at(*at, bytes)?;
    }
    sink.advance(layout.size)?;
    Ok(())
}

/// Copies a raw image file to `offset`.
fn copy_image(sink: &dyn Sink, path: &Path, len: u64, offset: u64) -> Result<()> {
    let file = std::fs::File::open(path).with_context(|| path.display().to_string())?;
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut at = 0;
    while at < len {
        let n = COPY_CHUNK.min((len - at) as usize);
        let got = kiln_host::read_at(&file, &mut buf[..n], at)
            .with_context(|| path.display().to_string())?;
        if got < n {
            bail!("{}: shrank while being copied", path.display());
        }
        sink.write_at(offset + at, &buf[..n])?;
        at += n as u64;
    }
    Ok(())
}

/// `--report FILE.json`, and the summary on stderr.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    disk: DiskReport,
    partitions: Vec<PartitionReport>,
}

#[derive(Debug, Serialize)]
struct DiskReport {
    table: &'static str,
    size: u64,
    uuid: Option<String>,
    sha256: Option<String>,
    zstd_bytes: Option<u64>,
}

#[derive(Debug, Serialize)]
struct PartitionReport {
    number: u32,
    label: String,
    type_name: Option<&'static str>,
    type_guid: String,
    uuid: Option<String>,
    offset: u64,
    size: u64,
    filesystem: Option<FsReport>,
}

/// A filesystem's numbers in the report.
#[derive(Debug, Serialize)]
pub(crate) struct FsReport {
    fs_type: &'static str,
    uuid: String,
    block_size: u32,
    blocks: u64,
    blocks_used: u64,
    blocks_free: u64,
    inodes: u64,
    inodes_used: u64,
    inodes_free: u64,
}

impl FsReport {
    /// The numbers of a planned filesystem.
    pub(crate) fn of(plan: &Plan<'_>) -> FsReport {
        let geo = &plan.geometry;
        let (blocks_free, inodes_free) = plan.free_counts();
        let inodes = u64::from(geo.inodes_count());
        FsReport {
            fs_type: plan.fs_type().name(),
            uuid: uuid::Uuid::from_bytes(plan.uuid()).to_string(),
            block_size: geo.block_size,
            blocks: geo.blocks_count,
            blocks_used: geo.blocks_count - blocks_free,
            blocks_free,
            inodes,
            inodes_used: inodes - inodes_free,
            inodes_free,
        }
    }
}

impl Report {
    /// The report of a disk.
    fn new(
        config: &Config,
        layout: &DiskLayout,
        plans: &[Option<Plan<'_>>],
        zstd: Option<u64>,
    ) -> Report {
        let gpt = config.table == Table::Gpt;
        Report {
            disk: DiskReport {
                table: if gpt { "gpt" } else { "none" },
                size: layout.size,
                uuid: gpt.then(|| layout.disk_guid.to_string()),
                sha256: None,
                zstd_bytes: zstd,
            },
            partitions: layout
                .partitions
                .iter()
                .zip(plans)
                .map(|(p, plan)| PartitionReport {
                    number: p.number,
                    label: p.label.clone(),
                    type_name: kiln_disk::type_name(&p.type_guid.to_string()),
                    type_guid: p.type_guid.to_string(),
                    uuid: gpt.then(|| p.uuid.to_string()),
                    offset: p.region.offset,
                    size: p.region.len,
                    filesystem: plan.as_ref().map(FsReport::of),
                })
                .collect(),
        }
    }

    /// The report of a plain filesystem image.
    pub(crate) fn plain(plan: &Plan<'_>, zstd: Option<u64>) -> Report {
        Report {
            disk: DiskReport {
                table: "none",
                size: plan.image_size,
                uuid: None,
                sha256: None,
                zstd_bytes: zstd,
            },
            partitions: vec![PartitionReport {
                number: 1,
                label: String::new(),
                type_name: Some("linux-generic"),
                type_guid: "0fc63daf-8483-4772-8e79-3d69d8477de4".to_string(),
                uuid: None,
                offset: 0,
                size: plan.image_size,
                filesystem: Some(FsReport::of(plan)),
            }],
        }
    }

    /// One stderr line per partition.
    pub(crate) fn print_summary(&self, output: &Path) {
        let d = &self.disk;
        let zstd = d
            .zstd_bytes
            .map_or(String::new(), |z| format!(", {z} bytes compressed"));
        eprintln!("kiln: wrote {} ({} bytes{zstd})", output.display(), d.size);
        for p in &self.partitions {
            let fs = p
                .filesystem
                .as_ref()
                .map_or("no filesystem".to_string(), |f| {
                    format!(
                        "{} {}, {} of {} blocks and {} of {} inodes used",
                        f.fs_type, f.uuid, f.blocks_used, f.blocks, f.inodes_used, f.inodes
                    )
                });
            eprintln!(
                "kiln:   {} {:?} ({}): {} bytes at {}: {fs}",
                p.number,
                p.label,
                p.type_name.unwrap_or(&p.type_guid),
                p.size,
                p.offset
            );
        }
    }

    /// Writes the JSON report, with the image's SHA-256 (read back from
    /// the output when it was not a stream).
    pub(crate) fn write(
        mut self,
        path: &Path,
        sha256: Option<[u8; 32]>,
        args: &BuildArgs,
    ) -> Result<()> {
        let sha = match sha256 {
            Some(s) => s,
            None => {
                crate::output::sha256_of(&args.output, args.offset.unwrap_or(0), self.disk.size)?
            }
        };
        self.disk.sha256 = Some(sha.iter().map(|b| format!("{b:02x}")).collect());
        let text = serde_json::to_string_pretty(&self)? + "\n";
        std::fs::write(path, text).with_context(|| path.display().to_string())
    }
}
