//! Writing a planned image: one forward pass in ascending offsets (the
//! reserved area, both FATs, the fixed root directory, then every chain in
//! cluster order), telling the sink how far it got as it goes, so that a
//! streaming sink works. All-zero clusters of file data are not written.

use std::ops::Range;

use kiln_sink::Sink;
use kiln_tree::{Body, DataError, Freshness};

use crate::boot::{fsinfo, reserved_area};
use crate::geometry::{FAT_COUNT, SECTOR};
use crate::plan::{Content, FatPlan};
use crate::{table, FatError, FatVariant};

/// The most bytes of a file read at once.
const COPY_CHUNK: usize = 1 << 20;

/// What an emitted image dropped, for the caller to say once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FatReport {
    /// Entries had owners and permission bits, which FAT does not keep.
    pub dropped_modes: bool,
}

impl FatReport {
    /// One line for each kind of thing the image does not keep.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.dropped_modes {
            notes.push(
                "FAT keeps no owners, permission bits or xattrs: dropped (a file its owner \
                 may not write is marked read-only)"
                    .to_string(),
            );
        }
        notes
    }
}

/// Writes the image `plan` describes into `sink` (whose size is at least
/// [`FatPlan::size`]), reading each file's bytes from its source and
/// checking that the source did not change since the tree was read.
pub fn emit(plan: &FatPlan<'_>, sink: &dyn Sink) -> Result<FatReport, FatError> {
    let g = &plan.geometry;
    let fat32 = g.variant == FatVariant::Fat32;
    let fsi = fat32.then(|| {
        let free = g.clusters + 2 - plan.next_free;
        fsinfo(free, (free > 0).then_some(plan.next_free))
    });
    let reserved = reserved_area(g, &plan.identity, fsi);
    sink.write_at(0, &reserved)?;
    sink.advance(reserved.len() as u64)?;

    let chains: Vec<(u32, u32)> = plan.pieces.iter().map(|p| (p.first, p.clusters)).collect();
    let fat = table::render(g.variant, g.media, &chains, plan.next_free);
    let fat_bytes = u64::from(g.fat_sectors) * SECTOR;
    for i in 0..FAT_COUNT {
        let at = g.fat_offset(i);
        sink.write_at(at, &fat)?;
        sink.zero(at + fat.len() as u64..at + fat_bytes)?;
        sink.advance(at + fat_bytes)?;
    }
    if !fat32 {
        sink.write_at(g.root_offset(), &plan.root_dir)?;
        sink.advance(g.data_offset())?;
    }

    let cb = u64::from(g.cluster_bytes());
    for piece in &plan.pieces {
        let at = g.cluster_offset(piece.first);
        let end = at + u64::from(piece.clusters) * cb;
        match &piece.content {
            Content::Dir(bytes) => sink.write_at(at, bytes)?,
            Content::File(node, path) => copy_file(plan, sink, *node, path, at, cb)?,
        }
        sink.advance(end)?;
    }
    sink.advance(g.size())?;
    Ok(FatReport {
        dropped_modes: plan.dropped_modes,
    })
}

/// Whether any of the ascending `ranges` meets `span`.
fn meets(ranges: &[Range<u64>], span: &Range<u64>) -> bool {
    let first = ranges.partition_point(|r| r.end <= span.start);
    ranges.get(first).is_some_and(|r| r.start < span.end)
}

/// Copies a file's data to its clusters from byte `at`, chunk by chunk:
/// chunks that are holes in the source are not read, clusters that are all
/// zeros are not written (`Sink::zero` tells a device to clear them).
fn copy_file(
    plan: &FatPlan<'_>,
    sink: &dyn Sink,
    node: usize,
    path: &str,
    at: u64,
    cb: u64,
) -> Result<(), FatError> {
    let Body::File(f) = &plan.tree.node(node).body else {
        return Ok(());
    };
    let source = |source: DataError| FatError::Source {
        path: path.to_string(),
        origin: f.origin().display().to_string(),
        source,
    };
    let ranges = f.data();
    let reader = f.source.open().map_err(source)?;
    let mut buf = vec![0u8; COPY_CHUNK.min(f.size.next_multiple_of(cb) as usize)];
    let mut pos = 0u64;
    while pos < f.size {
        let n = (f.size - pos).min(buf.len() as u64);
        let span = n.next_multiple_of(cb) as usize;
        buf[..span].fill(0);
        if meets(&ranges, &(pos..pos + n)) {
            reader
                .read_exact_at(&mut buf[..n as usize], pos)
                .map_err(source)?;
        }
        write_nonzero(sink, at + pos, &buf[..span], cb as usize)?;
        pos += n;
    }
    let changed = match reader.check(f.size).map_err(source)? {
        Freshness::Unchanged => return Ok(()),
        Freshness::Rewritten => "it was rewritten since the tree was read".to_string(),
        Freshness::Resized { now } => {
            format!("it was {} bytes when the tree was read, now {now}", f.size)
        }
        Freshness::Moving => "it changed while it was being copied".to_string(),
    };
    Err(source(DataError::Changed(changed)))
}

/// Writes the clusters of `buf` (at byte `at`) that are not all zeros, runs
/// of them in one write; the others are left as they are (zeros).
fn write_nonzero(sink: &dyn Sink, at: u64, buf: &[u8], cb: usize) -> Result<(), FatError> {
    let zero = |c: &[u8]| c.iter().all(|&b| b == 0);
    let clusters: Vec<bool> = buf.chunks(cb).map(zero).collect();
    let mut i = 0;
    while i < clusters.len() {
        let start = i;
        let is_zero = clusters[i];
        while i < clusters.len() && clusters[i] == is_zero {
            i += 1;
        }
        let (from, to) = (start * cb, i * cb);
        let range = at + from as u64..at + to as u64;
        if is_zero {
            sink.zero(range)?;
        } else {
            sink.write_at(range.start, &buf[from..to])?;
        }
    }
    Ok(())
}
