//! Block allocation: the cursor that hands out free blocks in ascending order,
//! and the [`Mapping`] of an inode's logical blocks onto them (a block map on
//! ext2/ext3, an extent tree with the extent feature).

use std::ops::Range;

use crate::blockmap::BlockMap;
use crate::extent::{self, Extent64Run, ExtentTree};
use crate::geometry::Geometry;

/// `i_flags`: the inode is mapped by an extent tree.
pub(crate) const EXTENTS_FL: u32 = 0x80000;

/// Hands out the blocks no metadata uses, in ascending order. Because every
/// allocation comes from here, the used blocks are always a prefix of the
/// free space, which the bitmaps rely on.
pub(crate) struct Cursor<'g> {
    geo: &'g Geometry,
    block: u64,
    /// Index of the first metadata range not yet passed.
    next_meta: usize,
    /// Set when a request ran past the end of the filesystem.
    pub(crate) overflow: bool,
}

impl<'g> Cursor<'g> {
    /// A cursor at the first block of the filesystem.
    pub(crate) fn new(geo: &'g Geometry) -> Cursor<'g> {
        Cursor {
            geo,
            block: geo.first_data_block,
            next_meta: 0,
            overflow: false,
        }
    }

    /// A cursor at `block`, as [`new`](Self::new)'s was when it had handed
    /// out everything below `block`: every metadata range that starts below
    /// it is passed (the cursor never stops inside one).
    pub(crate) fn at(geo: &'g Geometry, block: u64) -> Cursor<'g> {
        Cursor {
            geo,
            block,
            next_meta: geo.metadata().partition_point(|r| r.start < block),
            overflow: false,
        }
    }

    /// The first block not handed out yet.
    pub(crate) fn position(&self) -> u64 {
        self.block
    }

    /// Up to `max` contiguous free blocks: (first block, count). Count 0 and
    /// `overflow` set when the filesystem is full.
    pub(crate) fn run(&mut self, max: u64) -> (u64, u64) {
        let meta = self.geo.metadata();
        while let Some(r) = meta.get(self.next_meta) {
            if self.block < r.start {
                break;
            }
            self.block = self.block.max(r.end);
            self.next_meta += 1;
        }
        let limit = meta
            .get(self.next_meta)
            .map_or(self.geo.blocks_count, |r| r.start);
        let len = max.min(limit.saturating_sub(self.block));
        if len == 0 {
            self.overflow = true;
            return (0, 0);
        }
        self.block += len;
        (self.block - len, len)
    }

    /// One free block (0 and `overflow` set when full).
    pub(crate) fn next(&mut self) -> u64 {
        self.run(1).0
    }
}

/// One run of data blocks: logical `lblk..lblk+len` at physical `pblk..`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DataRun {
    pub(crate) lblk: u32,
    pub(crate) pblk: u64,
    pub(crate) len: u32,
}

/// Where an inode's blocks went.
#[derive(Clone, Debug, Default)]
pub(crate) enum Mapping {
    /// No blocks (empty files, devices, fast symlinks, reserved inodes).
    #[default]
    None,
    /// A block map (`i_block` pointers and indirect blocks).
    Blocks(BlockMap),
    /// An extent tree (its extents are the data runs).
    Extents(ExtentTree),
}

impl Mapping {
    /// Allocates `logical` (ascending, disjoint ranges) from `cursor`: data
    /// blocks and then the extent tree's blocks with `extents`, else a block
    /// map with each indirect block just before the data it maps.
    pub(crate) fn allocate(
        logical: &[Range<u32>],
        block_size: u32,
        extents: bool,
        cursor: &mut Cursor<'_>,
    ) -> Mapping {
        if logical.is_empty() {
            return Mapping::None;
        }
        if !extents {
            // Block maps hold 32-bit pointers: they are only used on
            // filesystems below 2^32 blocks (64bit requires extents).
            return Mapping::Blocks(BlockMap::build(logical, block_size, &mut || {
                cursor.next() as u32
            }));
        }
        // Most files are one run: exact capacities keep the per-file
        // vectors of a large tree from doubling its memory.
        let mut runs = Vec::with_capacity(logical.len());
        for range in logical {
            let mut lblk = range.start;
            while lblk < range.end {
                let (pblk, len) = cursor.run(u64::from(range.end - lblk));
                if len == 0 {
                    return Mapping::None;
                }
                runs.push(Extent64Run {
                    lblk,
                    pblk,
                    len: len as u32,
                });
                lblk += len as u32;
            }
        }
        Mapping::Extents(ExtentTree::build(&runs, block_size, &mut || cursor.next()))
    }

    /// Blocks that mapping `logical` takes at most (for sizing before the
    /// geometry, and so the fragmentation by metadata, is known).
    pub(crate) fn blocks_needed(logical: &[Range<u32>], block_size: u32, extents: bool) -> u64 {
        let data: u64 = logical.iter().map(|r| u64::from(r.end - r.start)).sum();
        if !extents {
            let mut count = 0;
            BlockMap::build(logical, block_size, &mut || {
                count += 1;
                0
            });
            return count;
        }
        // Every range may be cut by the metadata of each group it crosses.
        let groups_crossed = data / u64::from(8 * block_size) + 1;
        let pieces: u64 = logical
            .iter()
            .map(|r| {
                u64::from(r.end - r.start).div_ceil(u64::from(extent::EXT_INIT_MAX_LEN))
                    + groups_crossed
            })
            .sum();
        data + extent::tree_blocks(pieces, block_size)
    }

    /// The data runs in logical order (no allocation: this runs for every
    /// inode several times while the image is written).
    pub(crate) fn data_runs(&self) -> impl Iterator<Item = DataRun> + '_ {
        let (blocks, extents) = match self {
            Mapping::None => (None, None),
            Mapping::Blocks(map) => (Some(&map.runs), None),
            Mapping::Extents(tree) => (None, Some(tree.extents())),
        };
        let from_blocks = blocks.into_iter().flatten().map(|r| DataRun {
            lblk: r.lblk,
            pblk: u64::from(r.pblk),
            len: r.len,
        });
        let from_extents = extents.into_iter().flatten().map(|e| DataRun {
            lblk: e.lblk,
            pblk: e.pblk,
            len: u32::from(e.len),
        });
        from_blocks.chain(from_extents)
    }

    /// Data blocks mapped.
    pub(crate) fn data_blocks(&self) -> u64 {
        self.data_runs().map(|r| u64::from(r.len)).sum()
    }

    /// Data plus index blocks.
    pub(crate) fn total_blocks(&self) -> u64 {
        match self {
            Mapping::None => 0,
            Mapping::Blocks(map) => map.total_blocks(),
            Mapping::Extents(tree) => tree.data_blocks() + tree.tree_block_count(),
        }
    }

    /// The 60 bytes of `i_block`.
    pub(crate) fn i_block(&self, block_size: u32) -> [u8; 60] {
        match self {
            Mapping::None => [0; 60],
            Mapping::Blocks(map) => map.i_block(block_size),
            Mapping::Extents(tree) => tree.i_block(),
        }
    }

    /// The `i_flags` bits the mapping needs.
    pub(crate) fn flags(&self) -> u32 {
        match self {
            Mapping::Extents(..) => EXTENTS_FL,
            _ => 0,
        }
    }

    /// The index blocks (indirect blocks or extent tree nodes) with their
    /// content; extent nodes carry a checksum with `inode_seed`.
    pub(crate) fn index_blocks(
        &self,
        block_size: u32,
        inode_seed: Option<u32>,
    ) -> Vec<(u64, Vec<u8>)> {
        match self {
            Mapping::None => Vec::new(),
            Mapping::Blocks(map) => map
                .index
                .iter()
                .map(|i| (u64::from(i.pblk), map.encode_index(i, block_size)))
                .collect(),
            Mapping::Extents(tree) => tree
                .node_blocks()
                .enumerate()
                .map(|(k, pblk)| (pblk, tree.encode_block(k, inode_seed)))
                .collect(),
        }
    }

    /// The lowest block the mapping uses.
    pub(crate) fn first_block(&self) -> Option<u64> {
        let index = match self {
            Mapping::None => None,
            Mapping::Blocks(map) => map.index.iter().map(|i| u64::from(i.pblk)).min(),
            Mapping::Extents(tree) => tree.node_blocks().min(),
        };
        self.data_runs().map(|r| r.pblk).chain(index).min()
    }
}
