//! Where a file's bytes are: the extent tree or block map of an inode read
//! back as runs, and inline data.

use std::collections::HashSet;
use std::ops::Range;

use super::ImageReader;
use crate::alloc::EXTENTS_FL;
use crate::error::ReadError;
use crate::extent::{self, ReadEntry};
use crate::inline::INLINE_DATA_FL;
use crate::inode::InodeView;
use crate::layout::{IND_SLOT, N_DIRECT};
use crate::le::get_u32;

/// The deepest extent tree the kernel builds (`EXT4_MAX_EXTENT_DEPTH`).
const MAX_EXTENT_DEPTH: u16 = 5;

/// A run of contiguous blocks of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappedRun {
    /// First logical block.
    pub lblk: u64,
    /// Physical block of `lblk`.
    pub pblk: u64,
    /// Blocks in the run.
    pub len: u64,
    /// Preallocated and uninitialised: allocated, but reads as zeros.
    pub uninit: bool,
}

/// Where the bytes of one inode are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileMap {
    /// Inline data (or a fast symlink's target): the bytes themselves.
    Inline(Vec<u8>),
    /// Blocks: the data runs in logical order, and the blocks of the
    /// mapping itself (extent tree nodes or indirect blocks).
    Blocks {
        /// Data runs, ascending and disjoint.
        runs: Vec<MappedRun>,
        /// Extent tree or indirect blocks.
        index_blocks: Vec<u64>,
    },
}

impl FileMap {
    /// The byte ranges below `size` that hold data, in order (uninitialised
    /// extents and holes excluded; inline data counts as data).
    pub fn data_ranges(&self, size: u64, block_size: u32) -> Vec<Range<u64>> {
        let bs = u64::from(block_size);
        match self {
            FileMap::Inline(bytes) => vec![0..size.min(bytes.len() as u64)],
            FileMap::Blocks { runs, .. } => {
                let mut out: Vec<Range<u64>> = Vec::new();
                for run in runs.iter().filter(|r| !r.uninit) {
                    let start = run.lblk * bs;
                    let end = ((run.lblk + run.len) * bs).min(size);
                    if start >= end {
                        continue;
                    }
                    match out.last_mut() {
                        Some(last) if last.end == start => last.end = end,
                        _ => out.push(start..end),
                    }
                }
                out
            }
        }
    }
}

/// What a walk of one inode's map has found so far.
struct MapWalk {
    /// The inode, for messages.
    ino: u32,
    /// Logical blocks below this are mapped (the file's size, or all).
    blocks: u64,
    /// The seed of the inode's extent block checksums, if verified.
    csum_seed: Option<u32>,
    runs: Vec<MappedRun>,
    index_blocks: Vec<u64>,
    /// The index blocks read so far, to refuse one reached twice.
    seen: HashSet<u64>,
    /// Data blocks mapped so far, to refuse more than the filesystem has.
    mapped: u64,
}

impl MapWalk {
    /// Counts `len` more data blocks, refusing more than the filesystem has
    /// (some block is then mapped twice).
    fn count(&mut self, len: u64, fs_blocks: u64) -> Result<(), String> {
        self.mapped = self.mapped.saturating_add(len);
        if self.mapped > fs_blocks {
            return Err(format!(
                "its map holds more blocks than the filesystem's {fs_blocks}"
            ));
        }
        Ok(())
    }
}

impl ImageReader {
    /// Where inode `ino`'s bytes are: inline data, a fast symlink's target,
    /// or the runs of its extent tree or block map up to its size.
    ///
    /// A map that reaches any block twice (an index block shared by two
    /// parents or pointing at itself, or two runs over the same blocks) is
    /// corrupt: every block is then visited once, so a map yields at most
    /// the filesystem's blocks, whatever the inode claims.
    pub fn file_map(&self, ino: u32, inode: &InodeView) -> Result<FileMap, ReadError> {
        self.map_up_to(
            ino,
            inode,
            inode.size.div_ceil(u64::from(self.sb.block_size)),
        )
    }

    /// Like [`file_map`](Self::file_map), but with every block the inode
    /// holds, past its size too (what the bitmaps must mark).
    pub(crate) fn allocated_map(&self, ino: u32, inode: &InodeView) -> Result<FileMap, ReadError> {
        self.map_up_to(ino, inode, u64::MAX)
    }

    /// A symlink's target, refused longer than a block (the longest the
    /// kernel writes) before anything is allocated for it.
    pub fn read_link(&self, ino: u32, inode: &InodeView) -> Result<Vec<u8>, ReadError> {
        if inode.size > u64::from(self.sb.block_size) {
            return Err(ReadError::CorruptInode {
                ino,
                what: format!(
                    "symlink target of {} bytes is longer than a block ({} bytes)",
                    inode.size, self.sb.block_size
                ),
            });
        }
        let map = self.file_map(ino, inode)?;
        // OK to cast: at most a block.
        let mut target = vec![0u8; inode.size as usize];
        self.read_file(&map, 0, &mut target)?;
        Ok(target)
    }

    /// The map of inode `ino`'s logical blocks below `blocks`.
    fn map_up_to(&self, ino: u32, inode: &InodeView, blocks: u64) -> Result<FileMap, ReadError> {
        let corrupt = |what: String| ReadError::CorruptInode { ino, what };
        if !has_blocks(inode) {
            // Devices keep their number in i_block; pipes and sockets nothing.
            return Ok(FileMap::Blocks {
                runs: Vec::new(),
                index_blocks: Vec::new(),
            });
        }
        if inode.flags & INLINE_DATA_FL != 0 {
            let mut bytes = inode.i_block.to_vec();
            bytes.extend(self.system_data(ino)?);
            bytes.truncate(usize::try_from(inode.size).unwrap_or(usize::MAX));
            return Ok(FileMap::Inline(bytes));
        }
        if is_fast_symlink(inode) {
            // OK to cast: a fast symlink is shorter than i_block.
            return Ok(FileMap::Inline(
                inode.i_block[..inode.size as usize].to_vec(),
            ));
        }
        let mut walk = MapWalk {
            ino,
            blocks,
            csum_seed: self.inode_csum_seed(ino, inode),
            runs: Vec::new(),
            index_blocks: Vec::new(),
            seen: HashSet::new(),
            mapped: 0,
        };
        if inode.flags & EXTENTS_FL != 0 {
            self.walk_extents(&inode.i_block, None, &mut walk)?;
        } else {
            self.walk_block_map(&inode.i_block, &mut walk)
                .map_err(corrupt)?;
        }
        let MapWalk {
            mut runs,
            index_blocks,
            ..
        } = walk;
        runs.sort_by_key(|r| r.lblk);
        if runs.windows(2).any(|w| w[0].lblk + w[0].len > w[1].lblk) {
            return Err(corrupt("overlapping extents".into()));
        }
        if let Some(block) = block_reached_twice(&runs, &index_blocks) {
            return Err(corrupt(format!(
                "block {block} is reached twice by its map"
            )));
        }
        Ok(FileMap::Blocks { runs, index_blocks })
    }

    /// Reads `buf.len()` bytes of a file at `offset` through its map: holes
    /// and uninitialised extents read as zeros.
    pub fn read_file(&self, map: &FileMap, offset: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        buf.fill(0);
        let end = offset.saturating_add(buf.len() as u64);
        match map {
            FileMap::Inline(bytes) => {
                let from = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let n = (bytes.len() - from).min(buf.len());
                buf[..n].copy_from_slice(&bytes[from..from + n]);
            }
            FileMap::Blocks { runs, .. } => {
                let bs = u64::from(self.sb.block_size);
                let first = runs.partition_point(|r| (r.lblk + r.len) * bs <= offset);
                for run in runs[first..].iter().take_while(|r| r.lblk * bs < end) {
                    if run.uninit {
                        continue;
                    }
                    let start = (run.lblk * bs).max(offset);
                    let stop = ((run.lblk + run.len) * bs).min(end);
                    let at = self.block_at(run.pblk, "data block")? + (start - run.lblk * bs);
                    let dst = &mut buf[(start - offset) as usize..(stop - offset) as usize];
                    self.read_into(at, dst, "data block")?;
                }
            }
        }
        Ok(())
    }

    /// Collects the leaves under an extent node (`parent_depth` is the depth
    /// of the node that pointed here, to refuse trees that do not shrink).
    fn walk_extents(
        &self,
        node: &[u8],
        parent_depth: Option<u16>,
        walk: &mut MapWalk,
    ) -> Result<(), ReadError> {
        let ino = walk.ino;
        let corrupt = |what: String| ReadError::CorruptInode { ino, what };
        let (depth, entries) = extent::decode_node(node).map_err(corrupt)?;
        let expected = parent_depth.map_or(depth, |d| d.wrapping_sub(1));
        if depth > MAX_EXTENT_DEPTH || depth != expected {
            return Err(corrupt(format!(
                "extent node of depth {depth} where {expected} belongs"
            )));
        }
        for entry in entries {
            match entry {
                ReadEntry::Leaf {
                    lblk,
                    pblk,
                    len,
                    uninit,
                } => {
                    let lblk = u64::from(lblk);
                    if lblk >= walk.blocks {
                        continue;
                    }
                    let len = u64::from(len).min(walk.blocks - lblk);
                    self.check_range(pblk, len).map_err(corrupt)?;
                    walk.count(len, self.sb.blocks_count).map_err(corrupt)?;
                    walk.runs.push(MappedRun {
                        lblk,
                        pblk,
                        len,
                        uninit,
                    });
                }
                ReadEntry::Index { lblk, child } => {
                    if u64::from(lblk) >= walk.blocks {
                        continue;
                    }
                    let block = self.index_block(child, walk).map_err(corrupt)?;
                    if let Some(seed) = walk.csum_seed {
                        let (stored, computed) = extent::tail_checksums(&block, seed);
                        self.verify_checksum(
                            || format!("extent block {child} of inode {ino}"),
                            stored,
                            computed,
                        )?;
                    }
                    self.walk_extents(&block, Some(depth), walk)?;
                }
            }
        }
        Ok(())
    }

    /// Collects the runs of a block map: the direct pointers, then the
    /// indirect, double and triple indirect trees, up to `walk.blocks`.
    fn walk_block_map(&self, i_block: &[u8; 60], walk: &mut MapWalk) -> Result<(), String> {
        let a = u64::from(self.sb.block_size / 4);
        let pointer = |slot: usize| u64::from(get_u32(i_block, slot * 4));
        for slot in 0..N_DIRECT as usize {
            self.push_block(slot as u64, pointer(slot), walk)?;
        }
        let mut first = u64::from(N_DIRECT);
        for level in 1..=3u32 {
            let slot = IND_SLOT + level as usize - 1;
            self.walk_indirect(pointer(slot), level, first, walk)?;
            first += a.pow(level);
        }
        Ok(())
    }

    /// Collects the blocks under an indirect block of `level` that maps
    /// logical blocks from `first`.
    fn walk_indirect(
        &self,
        pblk: u64,
        level: u32,
        first: u64,
        walk: &mut MapWalk,
    ) -> Result<(), String> {
        if pblk == 0 || first >= walk.blocks {
            return Ok(());
        }
        let block = self.index_block(pblk, walk)?;
        let span = u64::from(self.sb.block_size / 4).pow(level - 1);
        for (k, p) in block.chunks_exact(4).enumerate() {
            let (child, from) = (u64::from(get_u32(p, 0)), first + k as u64 * span);
            if level == 1 {
                self.push_block(from, child, walk)?;
            } else {
                self.walk_indirect(child, level - 1, from, walk)?;
            }
        }
        Ok(())
    }

    /// Adds one mapped block, merged into the previous run when contiguous.
    fn push_block(&self, lblk: u64, pblk: u64, walk: &mut MapWalk) -> Result<(), String> {
        if pblk == 0 || lblk >= walk.blocks {
            return Ok(());
        }
        self.check_range(pblk, 1)?;
        walk.count(1, self.sb.blocks_count)?;
        match walk.runs.last_mut() {
            Some(r) if r.lblk + r.len == lblk && r.pblk + r.len == pblk => r.len += 1,
            _ => walk.runs.push(MappedRun {
                lblk,
                pblk,
                len: 1,
                uninit: false,
            }),
        }
        Ok(())
    }

    /// Refuses a run that reaches past the filesystem.
    fn check_range(&self, pblk: u64, len: u64) -> Result<(), String> {
        match pblk.checked_add(len) {
            Some(end) if pblk > 0 && end <= self.sb.blocks_count => Ok(()),
            _ => Err(format!("blocks {pblk}+{len} lie outside the filesystem")),
        }
    }

    /// Reads one index block (extent node or indirect block) of a map and
    /// records it; one reached before (shared by two parents, or its own
    /// ancestor) is refused, so each is read once.
    fn index_block(&self, pblk: u64, walk: &mut MapWalk) -> Result<Vec<u8>, String> {
        self.check_range(pblk, 1)?;
        if !walk.seen.insert(pblk) {
            return Err(format!("block {pblk} is reached twice by its map"));
        }
        walk.index_blocks.push(pblk);
        self.read_block(pblk, "extent or indirect block")
            .map_err(|e| e.to_string())
    }
}

/// The first physical block that two runs, two index blocks, or a run and
/// an index block of one map share, if any.
fn block_reached_twice(runs: &[MappedRun], index_blocks: &[u64]) -> Option<u64> {
    let mut spans: Vec<(u64, u64)> = runs
        .iter()
        .map(|r| (r.pblk, r.len))
        .chain(index_blocks.iter().map(|&b| (b, 1)))
        .collect();
    spans.sort_unstable();
    spans
        .windows(2)
        .find(|w| w[0].0 + w[0].1 > w[1].0)
        .map(|w| w[1].0)
}

/// Whether an inode of this type can map blocks (files, directories and
/// symlinks).
fn has_blocks(inode: &InodeView) -> bool {
    use crate::inode::mode::{S_IFDIR, S_IFLNK, S_IFREG};
    matches!(inode.kind(), S_IFREG | S_IFDIR | S_IFLNK)
}

/// Whether a symlink keeps its target in `i_block` (shorter than 60 bytes,
/// neither inline data nor extents: what the kernel writes).
pub(crate) fn is_fast_symlink(inode: &InodeView) -> bool {
    inode.kind() == crate::inode::mode::S_IFLNK
        && inode.size < 60
        && inode.flags & (EXTENTS_FL | INLINE_DATA_FL) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lblk: u64, pblk: u64, len: u64) -> MappedRun {
        MappedRun {
            lblk,
            pblk,
            len,
            uninit: false,
        }
    }

    #[test]
    fn a_block_reached_twice_is_found() {
        assert_eq!(
            block_reached_twice(&[run(0, 100, 8), run(8, 108, 4)], &[99]),
            None
        );
        assert_eq!(
            block_reached_twice(&[run(0, 100, 8), run(8, 104, 4)], &[]),
            Some(104)
        );
        assert_eq!(block_reached_twice(&[run(0, 100, 8)], &[107]), Some(107));
        assert_eq!(block_reached_twice(&[], &[5, 5]), Some(5));
    }
}
