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
//! Regular files are copied from their sources by [`files`], which checks
//! each against what the tree recorded and collects the trouble of every
//! file rather than stopping at the first.

use kiln_sink::Sink;
use kiln_tree::{Body, Node, Timestamp};
use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Mutex;

use crate::alloc::Mapping;
use crate::dir::{ftype, DirEntry};
use crate::group_desc;
use crate::inode::{encode_device, mode, InodeRecord};
use crate::layout::{
    FAST_SYMLINK_MAX, GOOD_OLD_INODE_SIZE, JOURNAL_INO, LINK_MAX, LOST_FOUND_INO, ROOT_INO,
    SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE,
};
use crate::plan::{adds_lost_found, ibody_space, Plan, Slot, LOST_FOUND};
use crate::superblock::{self, SuperblockInfo};
use crate::usage::Usage;
use crate::xattr::DiskXattr;
use crate::{checksum, htree, inline, inode, journal, resize, xattr, EmitError, EmitReport};

mod files;

use files::Sources;
pub(crate) use files::LIVE_COPY_BUFFER;

/// Bytes read from a source file at a time.
const COPY_CHUNK: usize = 1 << 20;
/// A worker starts no new piece while the sink holds more than this many
/// bytes that are not final (a streaming sink keeps them in memory), unless
/// nothing else is in flight.
const PENDING_LIMIT: u64 = 256 << 20;

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

/// What every group piece shares: the superblock fields, the GDT and the
/// groups' bitmaps.
struct Shared {
    sb: SuperblockInfo,
    gdt: Vec<u8>,
    usage: Usage,
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
    for range in data_extents(plan) {
        sink.reserve(range)?;
    }
    let pieces = pieces(plan);
    let queue = Queue::new(&pieces, plan.image_size, plan.geometry.block_size);
    let sources = Sources::new(plan.opts.live);
    let render = |piece: Piece| match piece {
        Piece::Group(g) => write_group(plan, &shared, &sources, sink, g),
        Piece::Inode(ino) => write_inode_blocks(plan, &sources, sink, ino),
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

/// The pieces, claimed in order by the workers, and which are in flight.
struct Queue {
    /// Pieces with their first byte offset, ascending.
    pieces: Vec<(u64, Piece)>,
    image_size: u64,
    state: Mutex<QueueState>,
}

/// What the workers share.
#[derive(Default)]
struct QueueState {
    /// The next piece to claim.
    next: usize,
    /// Pieces claimed and not finished.
    in_flight: BTreeSet<usize>,
    /// A piece failed: claim no more.
    failed: bool,
}

impl Queue {
    /// The queue of `pieces` (first block, piece) of an image of
    /// `image_size` bytes.
    fn new(pieces: &[(u64, Piece)], image_size: u64, block_size: u32) -> Queue {
        Queue {
            pieces: pieces
                .iter()
                .map(|&(block, p)| (block * u64::from(block_size), p))
                .collect(),
            image_size,
            state: Mutex::new(QueueState::default()),
        }
    }

    /// One worker: claims pieces in order and renders them; after each,
    /// tells the sink how far the image is final. Returns the failure of
    /// the piece it stopped at, with that piece's index.
    fn work(
        &self,
        sink: &dyn Sink,
        render: &(dyn Fn(Piece) -> Result<(), EmitError> + Sync),
    ) -> Option<(usize, EmitError)> {
        loop {
            let index = {
                let mut st = self.lock();
                if st.failed || st.next >= self.pieces.len() {
                    return None;
                }
                if !st.in_flight.is_empty() && sink.pending() > PENDING_LIMIT {
                    // The oldest piece in flight will make the pending
                    // bytes final; poll until it has.
                    drop(st);
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    continue;
                }
                let index = st.next;
                st.next += 1;
                st.in_flight.insert(index);
                index
            };
            let result = render(self.pieces[index].1);
            let final_below = {
                let mut st = self.lock();
                st.in_flight.remove(&index);
                st.failed |= result.is_err();
                let oldest = st.in_flight.first().copied().unwrap_or(st.next);
                self.pieces.get(oldest).map_or(self.image_size, |p| p.0)
            };
            if let Err(e) = result.and_then(|()| Ok(sink.advance(final_below)?)) {
                self.lock().failed = true;
                return Some((index, e));
            }
        }
    }

    /// The shared state; a worker that panicked left it consistent (the
    /// panic is re-raised by `emit`).
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Blocks between two data runs up to which the runs are reserved as one
/// (they hold index blocks or block group metadata, written anyway).
const RESERVE_GAP: u64 = 16;

/// The byte ranges that file and directory data fill, in block order, with
/// small gaps merged: what [`Sink::reserve`] is told before the writes.
fn data_extents(plan: &Plan<'_>) -> Vec<Range<u64>> {
    let mut blocks: Vec<Range<u64>> = Vec::new();
    for ino in 1..=plan.last_ino() {
        let p = plan.inode(ino);
        if !matches!(p.slot, Slot::Node(_)) {
            continue;
        }
        for run in p.mapping.data_runs() {
            let run = run.pblk..run.pblk + u64::from(run.len);
            match blocks.last_mut() {
                Some(last) if run.start >= last.end && run.start - last.end <= RESERVE_GAP => {
                    last.end = run.end;
                }
                _ => blocks.push(run),
            }
        }
    }
    let geo = &plan.geometry;
    blocks
        .into_iter()
        .map(|r| geo.offset(r.start)..geo.offset(r.end))
        .collect()
}

/// The pieces with their first block (the lowest block each writes), in
/// that order.
fn pieces(plan: &Plan<'_>) -> Vec<(u64, Piece)> {
    let geo = &plan.geometry;
    let mut pieces: Vec<(u64, Piece)> = (0..geo.groups)
        .map(|g| (group_first_block(geo, g), Piece::Group(g)))
        .collect();
    if plan.resize_dind != 0 {
        pieces.push((plan.resize_dind, Piece::ResizeDind));
    }
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
    }
    pieces.sort_by_key(|&(block, _)| block);
    pieces
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

fn shared(plan: &Plan<'_>) -> Shared {
    let usage = Usage::new(plan);
    let journal_backup = (plan.journal_blocks > 0).then(|| {
        let j = plan.inode(JOURNAL_INO);
        (
            j.mapping.i_block(plan.geometry.block_size),
            u64::from(plan.journal_blocks) * u64::from(plan.geometry.block_size),
        )
    });
    let mut label = [0u8; 16];
    label[..plan.opts.label.len()].copy_from_slice(&plan.opts.label);
    Shared {
        sb: SuperblockInfo {
            features: *plan.features(),
            free_blocks: usage.free_blocks(),
            free_inodes: usage.free_inodes(),
            reserved_blocks: plan.reserved_blocks(),
            uuid: plan.opts.uuid,
            hash_seed: plan.opts.hash_seed,
            hash_alg: plan.opts.hash_alg.version(),
            label,
            time: fs_time(plan),
            journal_backup,
        },
        gdt: group_desc::encode_table(&plan.geometry, &usage.counts(), plan.csum_seed()),
        usage,
    }
}

/// The filesystem-level time, clamped to what the 32-bit fields hold.
fn fs_time(plan: &Plan<'_>) -> u32 {
    plan.opts.timestamp.clamp(0, i64::from(u32::MAX)) as u32
}

fn write_group(
    plan: &Plan<'_>,
    shared: &Shared,
    sources: &Sources,
    sink: &dyn Sink,
    g: u32,
) -> Result<(), EmitError> {
    let geo = &plan.geometry;
    if g == 0 {
        zero_boot_area(sink, geo.block_size)?;
    }
    if geo.has_super(g) {
        sink.write_at(
            geo.superblock_offset(g),
            &superblock::encode(geo, &shared.sb, g),
        )?;
        sink.write_at(geo.offset(geo.group_start(g) + 1), &shared.gdt)?;
        if g == 0 && plan.resize_dind != 0 {
            let rsv = resize::encode_reserved_gdt(geo);
            let at = geo.group_start(0) + 1 + u64::from(geo.gdt_blocks);
            sink.write_at(geo.offset(at), &rsv)?;
        }
    }
    let usage = &shared.usage;
    sink.write_at(geo.offset(geo.block_bitmap(g)), usage.block_bitmap(g))?;
    sink.write_at(geo.offset(geo.inode_bitmap(g)), usage.inode_bitmap(g))?;
    let table = inode_table(plan, sources, g)?;
    let at = geo.offset(geo.inode_table(g));
    sink.write_at(at, &table)?;
    // The descriptors say the tables are zeroed (BG_INODE_ZEROED).
    let table_bytes = u64::from(geo.inode_table_blocks) * u64::from(geo.block_size);
    sink.zero(at + table.len() as u64..at + table_bytes)?;
    Ok(())
}

/// Declares zero the rest of the blocks that hold the primary superblock:
/// the boot area before it, where an old filesystem's or partition table's
/// signature would otherwise survive on a device (mke2fs clears it too),
/// and with blocks over 2 KiB what follows it in block 0.
fn zero_boot_area(sink: &dyn Sink, block_size: u32) -> Result<(), EmitError> {
    sink.zero(0..SUPERBLOCK_OFFSET)?;
    let sb_end = SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE as u64;
    if u64::from(block_size) > sb_end {
        sink.zero(sb_end..u64::from(block_size))?;
    }
    Ok(())
}

/// The used part of group `g`'s inode table (the rest stays zero).
fn inode_table(plan: &Plan<'_>, sources: &Sources, g: u32) -> Result<Vec<u8>, EmitError> {
    let geo = &plan.geometry;
    let isz = usize::from(geo.inode_size);
    let used = plan.used_inodes(g) as usize;
    let mut table = vec![0u8; used * isz];
    let first = g * geo.inodes_per_group + 1;
    let seed = plan.csum_seed();
    for (k, slot) in table.chunks_exact_mut(isz).enumerate() {
        let ino = first + k as u32;
        if let Some(rec) = inode_record(plan, sources, ino)? {
            rec.encode(slot, geo.block_size);
            if let Some(seed) = seed {
                inode::set_checksum(slot, checksum::inode_seed(seed, ino, 0));
            }
        }
    }
    Ok(table)
}

/// The inode record of `ino`, `None` for reserved inodes left zero.
fn inode_record(
    plan: &Plan<'_>,
    sources: &Sources,
    ino: u32,
) -> Result<Option<InodeRecord>, EmitError> {
    let p = plan.inode(ino);
    let bs = plan.geometry.block_size;
    let fs_blocks = p.mapping.total_blocks() + u64::from(p.xattr_block() != 0);
    let now = Timestamp {
        secs: plan.opts.timestamp,
        nanos: 0,
    };
    let kiln_made = |mode: u16, links: u16, size: u64, i_block: [u8; 60]| InodeRecord {
        mode,
        size,
        atime: now,
        ctime: now,
        mtime: now,
        crtime: (plan.geometry.inode_size > GOOD_OLD_INODE_SIZE).then_some(now),
        links,
        fs_blocks,
        flags: p.mapping.flags(),
        i_block,
        ..InodeRecord::default()
    };
    Ok(match p.slot {
        Slot::Empty => None,
        Slot::Resize if plan.resize_dind == 0 => None,
        Slot::Resize => Some(InodeRecord {
            fs_blocks: resize::blocks(&plan.geometry),
            ..kiln_made(
                mode::S_IFREG | 0o600,
                1,
                resize::size(&plan.geometry),
                resize::i_block(plan.resize_dind),
            )
        }),
        Slot::Journal if plan.journal_blocks == 0 => None,
        Slot::Journal => Some(kiln_made(
            mode::S_IFREG | 0o600,
            1,
            u64::from(plan.journal_blocks) * u64::from(bs),
            p.mapping.i_block(bs),
        )),
        Slot::LostFound => Some(kiln_made(
            mode::S_IFDIR | 0o700,
            2,
            block_bytes(&p.mapping, bs),
            p.mapping.i_block(bs),
        )),
        Slot::Node(id) => Some(node_record(
            plan,
            sources,
            ino,
            plan.tree.node(id),
            fs_blocks,
        )?),
    })
}

fn block_bytes(mapping: &Mapping, bs: u32) -> u64 {
    mapping.data_blocks() * u64::from(bs)
}

fn node_record(
    plan: &Plan<'_>,
    sources: &Sources,
    ino: u32,
    node: &Node,
    fs_blocks: u64,
) -> Result<InodeRecord, EmitError> {
    let p = plan.inode(ino);
    let bs = plan.geometry.block_size;
    let (type_bits, mut size, mut i_block) = match &node.body {
        Body::Dir(_) => (
            mode::S_IFDIR,
            block_bytes(&p.mapping, bs),
            p.mapping.i_block(bs),
        ),
        Body::File(f) => (mode::S_IFREG, f.size, p.mapping.i_block(bs)),
        Body::Symlink(t) if t.len() <= FAST_SYMLINK_MAX => {
            let mut b = [0u8; 60];
            b[..t.len()].copy_from_slice(t);
            (mode::S_IFLNK, t.len() as u64, b)
        }
        Body::Symlink(t) => (mode::S_IFLNK, t.len() as u64, p.mapping.i_block(bs)),
        Body::CharDevice(ma, mi) => (mode::S_IFCHR, 0, encode_device(*ma, *mi)),
        Body::BlockDevice(ma, mi) => (mode::S_IFBLK, 0, encode_device(*ma, *mi)),
        Body::Fifo => (mode::S_IFIFO, 0, [0; 60]),
        Body::Socket => (mode::S_IFSOCK, 0, [0; 60]),
    };
    let meta = &node.meta;
    let large = plan.geometry.inode_size > GOOD_OLD_INODE_SIZE;
    let mut flags = p.mapping.flags() | if p.indexed { htree::INDEX_FL } else { 0 };
    let mut ibody = p.ibody_xattrs().to_vec();
    if p.inline.is_some() {
        let (head, spill, inline_size) = inline_content(plan, sources, ino, node)?;
        i_block = head;
        size = inline_size;
        flags |= inline::INLINE_DATA_FL;
        // system.data goes first: the plan reserved its room in the inode.
        ibody.insert(0, DiskXattr::system_data(spill));
    }
    Ok(InodeRecord {
        mode: type_bits | (meta.perm & 0o7777),
        uid: meta.uid,
        gid: meta.gid,
        size,
        atime: meta.atime,
        ctime: meta.ctime,
        mtime: meta.mtime,
        crtime: if large { meta.crtime } else { None },
        // Past the limit (dir_nlink) a directory records 1: "too many to count".
        links: if p.links > LINK_MAX {
            1
        } else {
            p.links as u16
        },
        fs_blocks,
        flags,
        i_block,
        file_acl: p.xattr_block(),
        ibody_xattrs: xattr::encode_ibody(&ibody, ibody_space(plan.geometry.inode_size)),
    })
}

/// The inline form of a small file or directory: `i_block`, the
/// `system.data` value and the inode size.
fn inline_content(
    plan: &Plan<'_>,
    sources: &Sources,
    ino: u32,
    node: &Node,
) -> Result<([u8; 60], Vec<u8>, u64), EmitError> {
    match &node.body {
        Body::File(f) => {
            let data = sources.read_whole(f)?;
            let (head, spill) = inline::split_file(&data);
            Ok((head, spill, f.size))
        }
        _ => {
            let (head, spill) = inline::encode_dir(plan.inode(ino).parent, &dir_entries(plan, ino));
            let size = inline::dir_size(spill.len());
            Ok((head, spill, size))
        }
    }
}

/// Writes every block of inode `ino`: content, index blocks, xattr block.
fn write_inode_blocks(
    plan: &Plan<'_>,
    sources: &Sources,
    sink: &dyn Sink,
    ino: u32,
) -> Result<(), EmitError> {
    let p = plan.inode(ino);
    let geo = &plan.geometry;
    let bs = geo.block_size;
    let inode_seed = plan.csum_seed().map(|s| checksum::inode_seed(s, ino, 0));
    let index = p.mapping.index_blocks(bs, inode_seed);
    if p.xattr_block() != 0 {
        let block = xattr::encode_block(
            p.block_xattrs(),
            bs as usize,
            p.xattr_block(),
            plan.csum_seed(),
        );
        sink.write_at(geo.offset(p.xattr_block()), &block)?;
    }
    let content = match p.slot {
        Slot::Node(id) => match &plan.tree.node(id).body {
            Body::File(f) => return files::write_file(plan, sources, sink, &p.mapping, &index, f),
            Body::Symlink(t) => t.clone(),
            Body::Dir(_) => dir_content(plan, ino),
            _ => Vec::new(),
        },
        Slot::LostFound => dir_content(plan, ino),
        Slot::Journal => journal::encode_superblock(
            bs,
            plan.journal_blocks,
            &plan.opts.uuid,
            plan.csum_seed().is_some(),
        ),
        Slot::Empty | Slot::Resize => Vec::new(),
    };
    write_index_blocks(plan, sink, &index)?;
    write_logical(plan, sink, &p.mapping, &content)
}

/// Writes index blocks (indirect blocks, extent tree nodes) where they go.
fn write_index_blocks(
    plan: &Plan<'_>,
    sink: &dyn Sink,
    index: &[(u64, Vec<u8>)],
) -> Result<(), EmitError> {
    for (block, content) in index {
        sink.write_at(plan.geometry.offset(*block), content)?;
    }
    Ok(())
}

/// Writes `content` (logical block 0 onwards) through the block map.
fn write_logical(
    plan: &Plan<'_>,
    sink: &dyn Sink,
    mapping: &Mapping,
    content: &[u8],
) -> Result<(), EmitError> {
    let geo = &plan.geometry;
    let bs = geo.block_size as usize;
    for run in mapping.data_runs() {
        let start = (run.lblk as usize * bs).min(content.len());
        let end = (run.lblk as usize * bs + run.len as usize * bs).min(content.len());
        let at = geo.offset(run.pblk);
        sink.write_at(at, &content[start..end])?;
        zero_run_tail(sink, at, run.len, bs as u64, (end - start) as u64)?;
    }
    Ok(())
}

/// Declares zero what a run of `len` blocks at byte `at` holds past its
/// first `written` bytes (the journal past its superblock, a symlink's or a
/// file's last block): a fresh sparse file has zeros there already, a block
/// device or an existing file may not.
fn zero_run_tail(
    sink: &dyn Sink,
    at: u64,
    len: u32,
    bs: u64,
    written: u64,
) -> Result<(), EmitError> {
    let run_bytes = u64::from(len) * bs;
    Ok(sink.zero(at + written..at + run_bytes)?)
}

/// The directory blocks of directory inode `ino`.
fn dir_content(plan: &Plan<'_>, ino: u32) -> Vec<u8> {
    let p = plan.inode(ino);
    let blocks = p.mapping.data_blocks() as u32;
    plan.dir_format.encode(
        ino,
        0,
        p.parent,
        &dir_entries(plan, ino),
        blocks,
        ino != LOST_FOUND_INO,
    )
}

/// The entries of directory inode `ino` besides "." and "..".
fn dir_entries<'t>(plan: &Plan<'t>, ino: u32) -> Vec<DirEntry<'t>> {
    let mut entries = Vec::new();
    if let Slot::Node(id) = plan.inode(ino).slot {
        let tree = plan.tree;
        if ino == ROOT_INO && adds_lost_found(tree) {
            entries.push(DirEntry {
                ino: LOST_FOUND_INO,
                file_type: ftype::DIR,
                name: LOST_FOUND,
            });
        }
        for (name, child) in tree.node(id).entries() {
            entries.push(DirEntry {
                ino: plan.ino_of[child],
                file_type: file_type(tree.node(child)),
                name,
            });
        }
    }
    if !plan.dir_format.filetype {
        // Without the filetype feature the byte is the high half of name_len.
        entries.iter_mut().for_each(|e| e.file_type = 0);
    }
    entries
}

fn file_type(node: &Node) -> u8 {
    match node.body {
        Body::Dir(_) => ftype::DIR,
        Body::File(_) => ftype::REG,
        Body::Symlink(_) => ftype::SYMLINK,
        Body::CharDevice(..) => ftype::CHR,
        Body::BlockDevice(..) => ftype::BLK,
        Body::Fifo => ftype::FIFO,
        Body::Socket => ftype::SOCK,
    }
}
