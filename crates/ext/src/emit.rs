//! Emission: turns a [`Plan`] into bytes and hands them to a [`Sink`].
//!
//! The image is cut into pieces (each group's metadata, each inode's blocks,
//! the resize inode's double-indirect block), listed in the order of their
//! first block, and rendered in parallel; nothing is written twice and nothing
//! is read back. Zero blocks are never written: the sink leaves them as holes.
//!
//! Workers claim pieces strictly in that order, so everything below the first
//! block of the oldest piece still being rendered is final: the sink is told
//! so ([`Sink::advance`]), which lets a streaming sink (zstd, stdout) emit the
//! image in one forward pass while only the pieces in flight are buffered.
//!
//! [`queue`] hands out the pieces; [`groups`] renders a group's metadata
//! (its bitmaps from the build's [`Usage`](crate::usage::Usage)),
//! [`records`] the inode records of its table, [`content`] an inode's
//! blocks. Regular files are copied from their sources by [`files`], which
//! checks each against what the tree recorded and collects the trouble of
//! every file rather than stopping at the first.

use std::ops::Range;

use kiln_sink::Sink;

use crate::plan::{Plan, Slot};
use crate::{resize, EmitError, EmitReport};

mod content;
mod files;
mod groups;
mod queue;
mod records;

use files::Sources;
pub(crate) use files::LIVE_COPY_BUFFER;
use groups::{shared, write_group};
use queue::Queue;

/// Bytes read from a source file at a time.
const COPY_CHUNK: usize = 1 << 20;

/// One independently rendered part of the image.
#[derive(Clone, Copy, Debug)]
enum Piece {
    /// Superblock and GDT copies, bitmaps and inode table of a group.
    Group(u32),
    /// All blocks of one inode: data, index and xattr blocks.
    Inode(u32),
    /// The resize inode's double-indirect block.
    ResizeDind,
}

/// Writes the whole image described by `plan` to `sink`, then tells it the
/// image is complete (`advance` to the image size).
///
/// A source file that cannot be read, or that changed since the tree was
/// read, does not stop the writing: every such file is named in one
/// [`EmitError::Sources`] at the end, and the image is never completed
/// (the sink is not advanced to its end). With
/// [`BuildOptions::live`](crate::BuildOptions::live) only unreadable files
/// are errors; the others are stored as they could be read and listed in
/// the [`EmitReport`].
pub fn emit(plan: &Plan<'_>, sink: &dyn Sink) -> Result<EmitReport, EmitError> {
    let shared = shared(plan);
    let (pieces, extents) = pieces_and_extents(plan);
    for range in extents {
        sink.reserve(range)?;
    }
    let queue = Queue::new(pieces, plan.image_size, plan.geometry.block_size);
    let sources = Sources::new(plan.opts.live);
    let render = |piece: Piece| match piece {
        Piece::Group(g) => write_group(plan, &shared, &sources, sink, g),
        Piece::Inode(ino) => content::write_inode_blocks(plan, &sources, sink, ino),
        Piece::ResizeDind => {
            let geo = &plan.geometry;
            Ok(sink.write_at(geo.offset(plan.resize_dind), &resize::encode_dind(geo))?)
        }
    };
    let workers = rayon::current_num_threads().max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| scope.spawn(|| queue.work(sink, &render)))
            .collect();
        // The first error in piece order wins, so the message does not
        // depend on thread timing.
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect::<Vec<_>>()
    })
    .into_iter()
    .flatten()
    .min_by_key(|(index, _)| *index)
    .map_or(Ok(()), |(_, e)| Err(e))?;
    let report = sources.finish()?;
    sink.advance(plan.image_size)?;
    Ok(report)
}

/// Blocks between two data runs up to which the runs are reserved as one
/// (they hold index blocks or block group metadata, written anyway).
const RESERVE_GAP: u64 = 16;

/// The pieces with their first block (the lowest block each writes), in
/// that order; and the byte ranges that file and directory data fill, in
/// block order, with small gaps merged: what [`Sink::reserve`] is told
/// before the writes. One pass, as each inode's plan is worked out anew.
fn pieces_and_extents(plan: &Plan<'_>) -> (Vec<(u64, Piece)>, Vec<Range<u64>>) {
    let geo = &plan.geometry;
    let mut pieces: Vec<(u64, Piece)> = (0..geo.groups)
        .map(|g| (group_first_block(geo, g), Piece::Group(g)))
        .collect();
    if plan.resize_dind != 0 {
        pieces.push((plan.resize_dind, Piece::ResizeDind));
    }
    let mut blocks: Vec<Range<u64>> = Vec::new();
    for ino in 1..=plan.last_ino() {
        let p = plan.inode(ino);
        let first = p
            .mapping
            .first_block()
            .into_iter()
            .chain((p.xattr_block() != 0).then_some(p.xattr_block()))
            .min();
        if let Some(first) = first {
            pieces.push((first, Piece::Inode(ino)));
        }
        if matches!(p.slot, Slot::Node(_)) {
            add_runs(&mut blocks, &p.mapping);
        }
    }
    pieces.sort_by_key(|&(block, _)| block);
    let extents = blocks
        .into_iter()
        .map(|r| geo.offset(r.start)..geo.offset(r.end))
        .collect();
    (pieces, extents)
}

/// Adds the data runs of `mapping` to `blocks`, merging runs that are
/// apart by at most [`RESERVE_GAP`] blocks.
fn add_runs(blocks: &mut Vec<Range<u64>>, mapping: &crate::alloc::Mapping) {
    for run in mapping.data_runs() {
        let run = run.pblk..run.pblk + u64::from(run.len);
        match blocks.last_mut() {
            Some(last) if run.start >= last.end && run.start - last.end <= RESERVE_GAP => {
                last.end = run.end;
            }
            _ => blocks.push(run),
        }
    }
}

/// The lowest block a group piece writes: its superblock copy, or with
/// flex_bg its bitmaps and inode table, which may sit in an earlier group.
fn group_first_block(geo: &crate::Geometry, g: u32) -> u64 {
    let own = geo.has_super(g).then(|| geo.group_start(g));
    [geo.block_bitmap(g), geo.inode_bitmap(g), geo.inode_table(g)]
        .into_iter()
        .chain(own)
        .min()
        .unwrap_or(geo.group_start(g))
}
