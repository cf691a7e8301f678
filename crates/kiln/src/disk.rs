//! A whole disk image in one forward pass, from a [`Layout`].
//!
//! 1. Each filesystem partition's sources are read into a tree.
//! 2. Sizes: fixed ones as given; `auto` from a plan of the tree (plus
//!    `free`, within `min`..`max`); raw images from their length; then the
//!    GPT layout (`kiln_disk::layout`), where the last partition may grow.
//! 3. Each filesystem is planned for its partition's exact size.
//! 4. Emission in disk order into one sink: the primary GPT, each partition
//!    (filesystems through an [`OffsetSink`], raw images copied), the backup
//!    GPT; a streaming sink (zstd, stdout) sees one forward pass.
//!    A dm-verity data partition is hashed as it is emitted and its tree
//!    written into its hash partition ([`verity`]); when their UUIDs come
//!    from the root hash, the whole GPT is written last (positional
//!    outputs only).

mod verity;

pub use verity::PartitionVerity;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kiln_disk::layout::{
    self as disk, DiskLayout, DiskSpec, PartitionSpec, ALIGNMENT, SECTOR_SIZE as SECTOR,
};
use kiln_sink::{OffsetSink, Sink};
use kiln_verity::{HashArea, VerityParams, VeritySink};
use sha2::{Digest, Sha256};

use crate::build::{counted, enter};
use crate::fs::{FsInput, FsPlan};
use crate::layout::{Content, Layout, Partition, Size, Table, VerityRole};
use crate::output::{block_device_size, Output, Provenance, Target};
use crate::{BuildReport, Observer, OutputRequest, Phase};

/// Bytes copied from a raw image at a time.
const COPY_CHUNK: usize = 1 << 20;

/// A whole disk: its layout and where it goes.
#[derive(Clone, Debug)]
pub struct DiskRequest {
    /// The partition table and what fills each partition.
    pub layout: Layout,
    /// Where the disk goes.
    pub output: OutputRequest,
    /// Every filesystem's sources are a running system (see
    /// [`TreeRequest::live`](crate::TreeRequest::live)).
    pub live: bool,
    /// `SOURCE_DATE_EPOCH`, for every filesystem.
    pub source_date_epoch: Option<i64>,
}

/// What fills one partition, ready to size.
enum Filling {
    Empty,
    Image { path: PathBuf, len: u64 },
    Fs(Box<FsInput>),
}

impl Filling {
    /// A filesystem's timestamp (none for an empty or copied partition).
    fn timestamp(&self) -> Option<i64> {
        match self {
            Filling::Fs(fs) => Some(fs.timestamp),
            _ => None,
        }
    }
}

/// Builds the disk `req` asks for. The layout's options are already
/// checked; the output is checked before any source is read.
pub fn build_disk(req: &DiskRequest, observer: &dyn Observer) -> Result<BuildReport> {
    let layout = &req.layout;
    let name = layout
        .file
        .as_deref()
        .map_or_else(|| "disk layout".to_string(), |f| f.display().to_string());
    let in_layout = |p: &Partition| format!("{name}: {}", p.key);
    let input_files = inputs(layout);
    let inputs: Vec<&Path> = input_files.iter().map(PathBuf::as_path).collect();
    let target = Target::check(&req.output, &inputs)?;
    let pairs = verity::pairs(layout);
    verity::check_output(layout, &pairs, target.positional(&req.output))
        .with_context(|| name.clone())?;
    let fillings = layout
        .partitions
        .iter()
        .map(|p| filling(p, req, target.place(), observer).with_context(|| in_layout(p)))
        .collect::<Result<Vec<_>>>()?;
    enter(observer, Phase::Planning);
    let mut sizes = layout
        .partitions
        .iter()
        .zip(&fillings)
        .map(|(p, f)| needed_size(p, f).with_context(|| in_layout(p)))
        .collect::<Result<Vec<_>>>()?;
    verity::size_hash_partitions(layout, &pairs, &mut sizes).with_context(|| name.clone())?;
    let seed = seed(&layout.identity, &fillings)?;
    let disk_size = match layout.size {
        Some(size) => Some(size),
        None => block_device_size(&req.output.path)?,
    };
    let lay = |size| place(layout, &sizes, size, seed).with_context(|| name.clone());
    let mut placed = lay(disk_size)?;
    let whole = target.format().virtual_size(placed.size);
    if whole != placed.size {
        if disk_size.is_some() {
            bail!(
                "{name}: a {} disk is a whole number of MiB (Azure takes no other), and {} bytes is not",
                target.format(),
                placed.size
            );
        }
        placed = lay(Some(whole))?;
    }
    let plans = layout
        .partitions
        .iter()
        .zip(&fillings)
        .zip(&placed.partitions)
        .map(|((p, f), placed)| match f {
            Filling::Fs(fs) => fs
                .plan(Some(placed.region.len), placed.region.offset / SECTOR)
                .map(Some)
                .with_context(|| in_layout(p)),
            _ => Ok(None),
        })
        .collect::<Result<Vec<Option<FsPlan<'_>>>>>()?;
    for note in plans.iter().flatten().flat_map(FsPlan::notes) {
        observer.note(note);
    }
    let trees = pairs
        .iter()
        .map(|pair| match &fillings[pair.data] {
            Filling::Fs(fs) => {
                verity::params(placed.partitions[pair.data].region.len, &fs.identity()?)
            }
            _ => bail!(
                "{}: a verity data partition holds a filesystem",
                layout.partitions[pair.data].key
            ),
        })
        .collect::<Result<Vec<_>>>()?;
    let provenance = Provenance {
        identity: placed.disk_guid.as_bytes(),
        timestamp: fillings
            .iter()
            .filter_map(Filling::timestamp)
            .max()
            .unwrap_or(0),
    };
    let out = Output::open(&req.output, &target, placed.size, &provenance)?;
    enter(observer, Phase::Writing);
    if let Some(progress) = observer.progress() {
        progress.set_bytes_total(plans.iter().flatten().map(FsPlan::bytes_to_write).sum());
    }
    let disk = Disk {
        layout,
        fillings: &fillings,
        plans: &plans,
        pairs: &pairs,
        trees: &trees,
    };
    let areas = counted(out.sink(), observer, |sink| {
        disk.write(sink, &mut placed, observer)
    })?;
    enter(observer, Phase::Committing);
    let written = out.finish(req.output.durability)?;
    let mut report = BuildReport::disk(layout, &placed, &plans, &written);
    for (i, entry) in verity::report(layout, &pairs, &trees, &areas) {
        report.partitions[i].verity = Some(entry);
    }
    report.write_if_asked(&req.output, written.sha256)?;
    Ok(report)
}

/// Lays the disk out: where each partition goes, on a disk of `size`
/// bytes (None: as small as the partitions allow).
fn place(
    layout: &Layout,
    sizes: &[Option<u64>],
    size: Option<u64>,
    seed: [u8; 16],
) -> Result<DiskLayout> {
    Ok(match layout.table {
        Table::Gpt => disk::layout(&DiskSpec {
            partitions: layout
                .partitions
                .iter()
                .zip(sizes)
                .map(|(p, &size)| PartitionSpec {
                    label: p.label.clone(),
                    type_guid: p.type_guid,
                    size: size.unwrap_or(0),
                    grow: p.size == Size::Grow,
                    uuid: p.uuid,
                    attributes: p.attributes,
                })
                .collect(),
            size,
            seed,
            disk_guid: layout.uuid,
        })?,
        Table::None => bare_layout(layout, sizes)?,
    })
}

/// The files a disk's build reads: the layout file, raw images, and each
/// filesystem's layers.
fn inputs(layout: &Layout) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = layout.file.clone().into_iter().collect();
    for p in &layout.partitions {
        match &p.content {
            Content::Empty => {}
            Content::Image(path) => files.push(path.clone()),
            Content::Filesystem(fs) => files.extend(fs.tree.input_files()),
        }
    }
    files
}

/// Reads what fills partition `p`: a filesystem's tree (`output` is where
/// the disk goes, which its directory sources must not hold), a raw
/// image's length, or nothing.
fn filling(
    p: &Partition,
    req: &DiskRequest,
    output: Option<&kiln_tree::OutputPlace>,
    observer: &dyn Observer,
) -> Result<Filling> {
    Ok(match &p.content {
        Content::Empty => Filling::Empty,
        Content::Image(path) => {
            let len = std::fs::metadata(path)
                .with_context(|| path.display().to_string())?
                .len();
            Filling::Image {
                path: path.clone(),
                len,
            }
        }
        Content::Filesystem(fs) => {
            let mut tree = fs.tree.clone();
            tree.live |= req.live;
            tree.source_date_epoch = req.source_date_epoch;
            let fs_req = verity_data_read_only(p, &fs.fs, observer);
            let opts = fs_req.options(tree.live)?;
            Filling::Fs(Box::new(FsInput::read(
                &tree, &fs_req, opts, output, observer,
            )?))
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
        (Filling::Fs(fs), Size::Auto { free, .. }) => (fs.smallest(*free)?, 0),
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
fn bare_layout(layout: &Layout, sizes: &[Option<u64>]) -> Result<DiskLayout> {
    let p = &layout.partitions[0];
    let size = sizes[0].or(layout.size).context("disk.size: needed")?;
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

/// The seed of the disk's GUIDs: a digest of the layout's identity (a
/// layout file's text) and of each filesystem's identifiers (themselves
/// digests of their trees).
fn seed(identity: &[u8], fillings: &[Filling]) -> Result<[u8; 16]> {
    let mut h = Sha256::new();
    h.update(b"kiln disk v1\0");
    h.update(identity);
    for f in fillings {
        if let Filling::Fs(fs) = f {
            h.update(fs.identity()?);
        }
    }
    let digest = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    Ok(out)
}

/// What a disk's writing needs besides its layout on the disk.
struct Disk<'a, 'p> {
    layout: &'a Layout,
    fillings: &'a [Filling],
    plans: &'a [Option<FsPlan<'p>>],
    pairs: &'a [verity::Pair],
    /// Each pair's tree parameters.
    trees: &'a [VerityParams],
}

impl Disk<'_, '_> {
    /// Writes the whole disk in order, and gives each pair's hash area.
    /// When partition UUIDs come from root hashes they are set in
    /// `placed`, and the GPT is written once they are known: last.
    fn write(
        &self,
        sink: &dyn Sink,
        placed: &mut DiskLayout,
        observer: &dyn Observer,
    ) -> Result<Vec<HashArea>> {
        let gpt_last = verity::derives_uuids(self.layout, self.pairs);
        let first_partition = placed.partitions[0].region.offset;
        if !gpt_last {
            for (at, bytes) in self.gpt(placed)? {
                if at < first_partition {
                    sink.write_at(at, &bytes)?;
                }
            }
        }
        let mut areas: Vec<Option<HashArea>> = vec![None; self.pairs.len()];
        for (i, part) in placed.partitions.iter().enumerate() {
            let region = part.region;
            sink.advance(region.offset)?;
            self.partition(
                i,
                &OffsetSink::new(sink, region.offset),
                &mut areas,
                observer,
            )?;
            sink.advance(region.end())?;
        }
        let areas: Vec<HashArea> = areas.into_iter().flatten().collect();
        if gpt_last {
            verity::set_uuids(self.layout, placed, self.pairs, &areas);
        }
        for (at, bytes) in self.gpt(placed)? {
            if gpt_last || at >= first_partition {
                sink.write_at(at, &bytes)?;
            }
        }
        sink.advance(placed.size)?;
        Ok(areas)
    }

    /// The GPT's writes (none without a table).
    fn gpt(&self, placed: &DiskLayout) -> Result<Vec<(u64, Vec<u8>)>> {
        Ok(match self.layout.table {
            Table::Gpt => disk::gpt_writes(placed)?,
            Table::None => Vec::new(),
        })
    }

    /// Writes partition `i` into `sink` (at its start): its filesystem
    /// (hashed on the way when it is a verity data partition), its raw
    /// image, or its pair's hash area.
    fn partition(
        &self,
        i: usize,
        sink: &dyn Sink,
        areas: &mut [Option<HashArea>],
        observer: &dyn Observer,
    ) -> Result<()> {
        let pair = |role: fn(&verity::Pair) -> usize| self.pairs.iter().position(|p| role(p) == i);
        if let Some(k) = pair(|p| p.hash) {
            // The layout puts a hash partition after its data partition.
            let area = areas[k]
                .as_ref()
                .context("a hash partition before its data")?;
            sink.write_at(0, &area.bytes)?;
            return Ok(());
        }
        match (&self.fillings[i], &self.plans[i], pair(|p| p.data)) {
            (Filling::Fs(_), Some(plan), Some(k)) => {
                let hashing = VeritySink::new(sink, self.trees[k].clone())?;
                plan.emit(&hashing, observer)?;
                areas[k] = Some(hashing.finish());
            }
            (Filling::Fs(_), Some(plan), None) => plan.emit(sink, observer)?,
            (Filling::Image { path, len }, ..) => copy_image(sink, path, *len)?,
            _ => {}
        }
        Ok(())
    }
}

/// The filesystem of partition `p`, made read-only when it is a verity
/// data partition (a journal asked for anyway is kept, with a warning).
fn verity_data_read_only(
    p: &Partition,
    fs: &crate::FsRequest,
    observer: &dyn Observer,
) -> crate::FsRequest {
    if !p
        .verity
        .as_ref()
        .is_some_and(|v| v.role == VerityRole::Data)
    {
        return fs.clone();
    }
    let (fs, warning) = fs.read_only();
    if let Some(warning) = warning {
        observer.warning(&format!("{}: {warning}", p.key));
    }
    fs
}

/// Copies a raw image file to the start of `sink`.
fn copy_image(sink: &dyn Sink, path: &Path, len: u64) -> Result<()> {
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
        sink.write_at(at, &buf[..n])?;
        at += n as u64;
    }
    Ok(())
}
