//! Geometry: how many blocks and groups, and where every group's metadata sits.
//!
//! Groups that carry a superblock backup start with it, the group descriptor
//! table and the reserved GDT blocks. Each group also has a block bitmap, an
//! inode bitmap and an inode table. Without flex_bg they follow the backup in
//! the group itself; with flex_bg the bitmaps and tables of 16 groups are packed
//! together at the start of the first of them (skipping any backup in the way).
//! Every other block is free for data; [`Geometry::metadata`] lists the
//! metadata as sorted, disjoint block ranges.
//!
//! The read side builds the same type from an image's superblock
//! ([`Geometry::from_superblock`]): the counts and the group arithmetic are
//! the writer's, while where each group's bitmaps and table sit is read from
//! its group descriptor.

use std::ops::Range;

use crate::layout::{
    DESC_SIZE, DESC_SIZE_64, FIRST_INO, FLEX_BG_LOG_GROUPS, MIN_LAST_GROUP_DATA,
    RESIZE_GROWTH_FACTOR, SUPERBLOCK_OFFSET,
};
use crate::superblock::SuperblockView;
use crate::{features, PlanError, ReadError};

/// What the geometry is computed from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GeometryInput {
    pub(crate) block_size: u32,
    pub(crate) blocks: u64,
    pub(crate) inodes: u64,
    /// The inodes the filesystem must hold (the tree's, or an exact count
    /// asked for): mke2fs's rounding down never goes below it.
    pub(crate) min_inodes: u64,
    pub(crate) inode_size: u16,
    pub(crate) resize_inode: bool,
    pub(crate) sparse_super: bool,
    pub(crate) flex_bg: bool,
    pub(crate) bit64: bool,
}

/// Which groups hold a superblock and GDT backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backups {
    /// Every group (no sparse_super).
    All,
    /// Groups 0, 1 and the powers of 3, 5 and 7 (sparse_super).
    Sparse,
    /// Group 0 and the (up to) two groups `s_backup_bgs` names
    /// (sparse_super2, which kiln reads but does not write).
    Listed([u32; 2]),
}

/// The computed shape of the filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes per block.
    pub block_size: u32,
    /// Blocks in the filesystem (may be less than the image holds).
    pub blocks_count: u64,
    /// 1 with 1 KiB blocks (block 0 holds the boot sector), else 0.
    pub first_data_block: u64,
    /// Blocks per group (8 × block size: one bitmap block).
    pub blocks_per_group: u32,
    /// Number of block groups.
    pub groups: u32,
    /// Inodes per group.
    pub inodes_per_group: u32,
    /// Bytes per inode.
    pub inode_size: u16,
    /// Bytes per group descriptor (32, or 64 with 64bit).
    pub desc_size: u32,
    /// Blocks of the group descriptor table.
    pub gdt_blocks: u32,
    /// Reserved GDT blocks for online growth.
    pub reserved_gdt_blocks: u32,
    /// Blocks of each group's inode table.
    pub inode_table_blocks: u32,
    /// log2 of the groups per flex group (0 without flex_bg, and in a
    /// geometry read from a superblock).
    pub flex_log: u8,
    backups: Backups,
    /// Where each group's bitmaps and inode table sit (empty in a geometry
    /// read from a superblock: its group descriptors say).
    block_bitmaps: Vec<u64>,
    inode_bitmaps: Vec<u64>,
    inode_tables: Vec<u64>,
    metadata: Vec<Range<u64>>,
}

impl Geometry {
    /// Computes the geometry as mke2fs would for these inputs.
    pub(crate) fn new(input: GeometryInput) -> Result<Geometry, PlanError> {
        let b = input.block_size;
        let max_blocks = if input.bit64 {
            1u64 << 48
        } else {
            u64::from(u32::MAX)
        };
        if input.blocks > max_blocks {
            return Err(PlanError::Options(format!(
                "{} blocks do not fit 32-bit block numbers; use a larger block size or the 64bit feature",
                input.blocks
            )));
        }
        let first_data_block = u64::from(b == 1024);
        let too_small = || PlanError::TooSmall {
            needed: None,
            have: input.blocks * u64::from(b),
            inodes: None,
        };
        if input.blocks <= first_data_block + u64::from(MIN_LAST_GROUP_DATA) {
            return Err(too_small());
        }
        let mut geo = Geometry {
            block_size: b,
            blocks_count: input.blocks,
            first_data_block,
            blocks_per_group: 8 * b,
            groups: 0,
            inodes_per_group: 0,
            inode_size: input.inode_size,
            desc_size: if input.bit64 { DESC_SIZE_64 } else { DESC_SIZE },
            gdt_blocks: 0,
            reserved_gdt_blocks: 0,
            inode_table_blocks: 0,
            flex_log: if input.flex_bg { FLEX_BG_LOG_GROUPS } else { 0 },
            backups: if input.sparse_super {
                Backups::Sparse
            } else {
                Backups::All
            },
            block_bitmaps: Vec::new(),
            inode_bitmaps: Vec::new(),
            inode_tables: Vec::new(),
            metadata: Vec::new(),
        };
        geo.set_groups(input)?;
        // A partial last group smaller than what a group may have to hold
        // (superblock, GDT, bitmaps, a whole inode table and the reserved GDT
        // blocks: mke2fs counts them all, whether or not flex_bg moves them
        // elsewhere) plus some data is dropped, as mke2fs does.
        let rem = (geo.blocks_count - geo.first_data_block) % u64::from(geo.blocks_per_group);
        let overhead = 3 + geo.inode_table_blocks + geo.reserved_gdt_blocks;
        if geo.groups > 1 && rem > 0 && rem < u64::from(overhead + MIN_LAST_GROUP_DATA) {
            geo.blocks_count -= rem;
            geo.set_groups(input)?;
        }
        geo.place_metadata().ok_or_else(too_small)?;
        if geo.group_blocks(0) < MIN_LAST_GROUP_DATA {
            return Err(too_small());
        }
        Ok(geo)
    }

    /// The geometry an image's superblock describes (one that
    /// [`read_superblock`](crate::read_superblock) accepted): counts and
    /// group arithmetic only. Its [`metadata`](Self::metadata) is empty, and
    /// [`block_bitmap`](Self::block_bitmap), [`inode_bitmap`](Self::inode_bitmap)
    /// and [`inode_table`](Self::inode_table) are not known: the group
    /// descriptors say where those are.
    pub fn from_superblock(sb: &SuperblockView) -> Result<Geometry, ReadError> {
        let groups = u32::try_from(sb.groups()).map_err(|_| ReadError::Corrupt {
            structure: "superblock",
            detail: format!("{} block groups are too many", sb.groups()),
        })?;
        let bs = u64::from(sb.block_size);
        let f = &sb.features;
        let backups = if f.compat & features::COMPAT_SPARSE_SUPER2 != 0 {
            Backups::Listed(sb.backup_bgs)
        } else if f.has(features::SPARSE_SUPER) {
            Backups::Sparse
        } else {
            Backups::All
        };
        let desc_size = u32::from(sb.desc_size);
        let table_bytes = u64::from(sb.inodes_per_group) * u64::from(sb.inode_size);
        Ok(Geometry {
            block_size: sb.block_size,
            blocks_count: sb.blocks_count,
            first_data_block: u64::from(sb.first_data_block),
            blocks_per_group: sb.blocks_per_group,
            groups,
            inodes_per_group: sb.inodes_per_group,
            inode_size: sb.inode_size,
            desc_size,
            // The superblock's checks make the table fit the filesystem,
            // whose block count is far below 2^32 groups' worth of blocks.
            gdt_blocks: (u64::from(groups) * u64::from(desc_size)).div_ceil(bs) as u32,
            reserved_gdt_blocks: sb.reserved_gdt_blocks,
            inode_table_blocks: table_bytes.div_ceil(bs) as u32,
            flex_log: 0,
            backups,
            block_bitmaps: Vec::new(),
            inode_bitmaps: Vec::new(),
            inode_tables: Vec::new(),
            metadata: Vec::new(),
        })
    }

    /// Sets the group count and everything that depends on it.
    fn set_groups(&mut self, input: GeometryInput) -> Result<(), PlanError> {
        let b = u64::from(self.block_size);
        let data_blocks = self.blocks_count - self.first_data_block;
        let groups = data_blocks.div_ceil(u64::from(self.blocks_per_group));
        self.groups = u32::try_from(groups)
            .map_err(|_| PlanError::Options("too many block groups".into()))?;
        let per_block = b / u64::from(input.inode_size);
        let wanted = input.inodes.max(u64::from(FIRST_INO) + 1);
        // As mke2fs: whole inode-table blocks, then down to whole bytes of
        // the inode bitmap (8 inodes), which with 4 inodes a block can give
        // fewer than wanted; up instead where that would not hold the tree.
        let filled = wanted.div_ceil(groups).div_ceil(per_block) * per_block;
        let mut ipg = (filled & !7).max(8);
        if ipg * groups < input.min_inodes {
            ipg = filled.div_ceil(8) * 8;
        }
        let max_ipg = (8 * b).min(65_536 - per_block);
        if ipg > max_ipg || ipg * groups > u64::from(u32::MAX) {
            return Err(PlanError::TooManyInodes {
                wanted,
                max: (max_ipg * groups).min(u64::from(u32::MAX)),
            });
        }
        self.inodes_per_group = ipg as u32;
        self.inode_table_blocks = (ipg / per_block) as u32;
        let per_gdt_block = b / u64::from(self.desc_size);
        self.gdt_blocks = groups.div_ceil(per_gdt_block) as u32;
        self.reserved_gdt_blocks = if input.resize_inode {
            self.reserved_gdt_for_growth()
        } else {
            0
        };
        Ok(())
    }

    /// Reserved GDT blocks enough for the filesystem to grow
    /// [`RESIZE_GROWTH_FACTOR`] times (up to 2^32 blocks), capped at what one
    /// indirect block of the resize inode can map.
    fn reserved_gdt_for_growth(&self) -> u32 {
        let b = u64::from(self.block_size);
        let max_blocks = (self.blocks_count * RESIZE_GROWTH_FACTOR).min(u64::from(u32::MAX));
        let groups =
            (max_blocks - self.first_data_block).div_ceil(u64::from(self.blocks_per_group));
        let needed = groups.div_ceil(b / u64::from(self.desc_size));
        let rsv = needed.saturating_sub(u64::from(self.gdt_blocks));
        rsv.min(b / 4) as u32
    }

    /// Groups per flex group (1 without flex_bg).
    fn flex_size(&self) -> u32 {
        1 << self.flex_log
    }

    /// Places every group's bitmaps and inode table, skipping superblock
    /// backups, and collects the metadata ranges. `None` if they do not fit.
    fn place_metadata(&mut self) -> Option<()> {
        let groups = self.groups as usize;
        let supers: Vec<Range<u64>> = (0..self.groups)
            .filter(|&g| self.has_super(g))
            .map(|g| self.group_start(g)..self.group_start(g) + u64::from(self.super_blocks(g)))
            .collect();
        self.block_bitmaps = vec![0; groups];
        self.inode_bitmaps = vec![0; groups];
        self.inode_tables = vec![0; groups];
        let itb = u64::from(self.inode_table_blocks);
        for first in (0..self.groups).step_by(self.flex_size() as usize) {
            let members = first..(first + self.flex_size()).min(self.groups);
            let mut pos = self.group_start(first);
            for g in members.clone() {
                self.block_bitmaps[g as usize] = take(&mut pos, 1, &supers);
            }
            for g in members.clone() {
                self.inode_bitmaps[g as usize] = take(&mut pos, 1, &supers);
            }
            for g in members {
                self.inode_tables[g as usize] = take(&mut pos, itb, &supers);
            }
            if pos > self.blocks_count {
                return None;
            }
        }
        let mut ranges = supers;
        ranges.extend(self.block_bitmaps.iter().map(|&b| b..b + 1));
        ranges.extend(self.inode_bitmaps.iter().map(|&b| b..b + 1));
        ranges.extend(self.inode_tables.iter().map(|&b| b..b + itb));
        self.metadata = merge(ranges);
        Some(())
    }

    /// Total inodes.
    pub fn inodes_count(&self) -> u32 {
        self.groups * self.inodes_per_group
    }

    /// First block of group `g`.
    pub fn group_start(&self, g: u32) -> u64 {
        self.first_data_block + u64::from(g) * u64::from(self.blocks_per_group)
    }

    /// One past the last block of group `g`.
    pub fn group_end(&self, g: u32) -> u64 {
        (self.group_start(g) + u64::from(self.blocks_per_group)).min(self.blocks_count)
    }

    /// Blocks in group `g` (the last one may be short).
    pub fn group_blocks(&self, g: u32) -> u32 {
        (self.group_end(g) - self.group_start(g)) as u32
    }

    /// Whether group `g` holds a superblock and GDT backup (with sparse_super
    /// only groups 0, 1 and powers of 3, 5 and 7 do; with sparse_super2
    /// group 0 and the two `s_backup_bgs` name).
    pub fn has_super(&self, g: u32) -> bool {
        fn power_of(mut n: u32, base: u32) -> bool {
            while n > 1 && n % base == 0 {
                n /= base;
            }
            n == 1
        }
        match self.backups {
            _ if g == 0 => true,
            Backups::All => true,
            Backups::Sparse => power_of(g, 3) || power_of(g, 5) || power_of(g, 7),
            Backups::Listed(groups) => groups.contains(&g),
        }
    }

    /// Blocks of superblock, GDT and reserved GDT at the start of group `g`.
    pub(crate) fn super_blocks(&self, g: u32) -> u32 {
        if self.has_super(g) {
            1 + self.gdt_blocks + self.reserved_gdt_blocks
        } else {
            0
        }
    }

    /// The block bitmap of group `g` (of a planned geometry; panics for one
    /// read from a superblock).
    pub fn block_bitmap(&self, g: u32) -> u64 {
        self.block_bitmaps[g as usize]
    }

    /// The inode bitmap of group `g` (of a planned geometry; panics for one
    /// read from a superblock).
    pub fn inode_bitmap(&self, g: u32) -> u64 {
        self.inode_bitmaps[g as usize]
    }

    /// The first block of group `g`'s inode table (of a planned geometry;
    /// panics for one read from a superblock).
    pub fn inode_table(&self, g: u32) -> u64 {
        self.inode_tables[g as usize]
    }

    /// All metadata blocks as sorted, disjoint ranges.
    pub fn metadata(&self) -> &[Range<u64>] {
        &self.metadata
    }

    /// The metadata ranges that overlap `blocks`, clipped to it.
    pub(crate) fn metadata_in(&self, blocks: Range<u64>) -> impl Iterator<Item = Range<u64>> + '_ {
        let first = self.metadata.partition_point(|r| r.end <= blocks.start);
        self.metadata[first..]
            .iter()
            .take_while(move |r| r.start < blocks.end)
            .map(move |r| r.start.max(blocks.start)..r.end.min(blocks.end))
    }

    /// Blocks free for data in the whole filesystem.
    pub fn data_capacity(&self) -> u64 {
        let meta: u64 = self.metadata.iter().map(|r| r.end - r.start).sum();
        self.blocks_count - self.first_data_block - meta
    }

    /// Byte offset of block `block`.
    pub fn offset(&self, block: u64) -> u64 {
        block * u64::from(self.block_size)
    }

    /// Byte offset of the superblock copy of group `g` (the primary sits 1024
    /// bytes into the image whatever the block size).
    pub fn superblock_offset(&self, g: u32) -> u64 {
        if g == 0 {
            SUPERBLOCK_OFFSET
        } else {
            self.offset(self.group_start(g))
        }
    }

    /// The group that inode `ino` (1-based) belongs to.
    pub fn group_of_inode(&self, ino: u32) -> u32 {
        (ino - 1) / self.inodes_per_group
    }
}

/// Takes `len` contiguous blocks at `*pos` or after, outside `avoid`
/// (sorted ranges), and moves `*pos` past them.
fn take(pos: &mut u64, len: u64, avoid: &[Range<u64>]) -> u64 {
    loop {
        let clash = avoid.iter().find(|r| r.start < *pos + len && *pos < r.end);
        match clash {
            Some(r) => *pos = r.end,
            None => {
                let start = *pos;
                *pos += len;
                return start;
            }
        }
    }
}

/// Sorts ranges and merges those that touch.
pub(crate) fn merge(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if last.end >= r.start => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(block_size: u32, blocks: u64, inodes: u64) -> GeometryInput {
        GeometryInput {
            block_size,
            blocks,
            inodes,
            min_inodes: 0,
            inode_size: 256,
            resize_inode: true,
            sparse_super: true,
            flex_bg: false,
            bit64: false,
        }
    }

    #[test]
    fn matches_mke2fs_for_64m_1k() {
        // mke2fs -t ext3 -b 1024 on 64 MiB: 8 groups, 2048 inodes per group,
        // 255 reserved GDT blocks (as dumpe2fs shows for an mke2fs image).
        let g = Geometry::new(input(1024, 65536, 65536 * 1024 / 4096)).unwrap();
        assert_eq!(g.blocks_count, 65536);
        assert_eq!(g.groups, 8);
        assert_eq!(g.inodes_per_group, 2048);
        assert_eq!(g.gdt_blocks, 1);
        assert_eq!(g.reserved_gdt_blocks, 255);
        assert_eq!(g.block_bitmap(0), 1 + 1 + 1 + 255);
        assert!(g.has_super(7) && g.has_super(9) && !g.has_super(6));
    }

    #[test]
    fn tiny_last_group_is_dropped() {
        let g = Geometry::new(input(1024, 8193 + 20, 256)).unwrap();
        assert_eq!(g.groups, 1);
        assert_eq!(g.blocks_count, 8193);
    }

    /// mke2fs -t ext4 -N 620033 on 3,073 MiB (786,688 4 KiB blocks): the
    /// last group of 256 blocks is dropped although flex_bg keeps its inode
    /// table elsewhere, so mke2fs has 24 groups and 786,432 blocks (seen with
    /// dumpe2fs; kiln kept the group before).
    #[test]
    fn small_last_group_is_dropped_with_flex_bg_as_mke2fs_does() {
        let mut ext4 = input(4096, 786_688, 620_033);
        ext4.flex_bg = true;
        ext4.bit64 = true;
        let g = Geometry::new(ext4).unwrap();
        assert_eq!((g.groups, g.blocks_count), (24, 786_432));
        assert_eq!(g.inodes_count(), 620_160);
    }

    #[test]
    fn too_many_inodes_is_an_error() {
        let err = Geometry::new(input(1024, 8192, 100_000)).unwrap_err();
        assert!(matches!(err, PlanError::TooManyInodes { .. }), "{err}");
    }

    #[test]
    fn flex_bg_packs_tables_and_skips_backups() {
        // 1 KiB blocks: 16 inode tables of 512 blocks overflow group 0 and must
        // jump over group 1's superblock backup.
        let mut i = input(1024, 200 * 1024, 200 * 1024 / 4 + 1);
        i.flex_bg = true;
        i.bit64 = true;
        let g = Geometry::new(i).unwrap();
        assert_eq!(g.block_bitmap(1), g.block_bitmap(0) + 1);
        let backup = g.group_start(1)..g.group_start(1) + u64::from(g.super_blocks(1));
        for grp in 0..g.groups {
            let t = g.inode_table(grp)..g.inode_table(grp) + u64::from(g.inode_table_blocks);
            assert!(
                t.end <= backup.start || t.start >= backup.end,
                "group {grp} table {t:?} hits {backup:?}"
            );
        }
        let meta: u64 = g.metadata().iter().map(|r| r.end - r.start).sum();
        let expected: u64 = (0..g.groups)
            .map(|grp| u64::from(g.super_blocks(grp)) + 2 + u64::from(g.inode_table_blocks))
            .sum();
        assert_eq!(meta, expected);
    }
}
