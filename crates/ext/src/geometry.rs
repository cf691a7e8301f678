//! Geometry: how many blocks and groups, where each group's metadata sits.
//!
//! Without flex_bg every group is laid out the same way: a superblock backup,
//! the group descriptor table and the reserved GDT blocks (only in groups that
//! carry a backup), then the block bitmap, the inode bitmap and the inode
//! table. Everything after that is free for data.

use crate::layout::{
    DESC_SIZE, FIRST_INO, MIN_LAST_GROUP_DATA, RESIZE_GROWTH_FACTOR, SUPERBLOCK_OFFSET,
};
use crate::PlanError;

/// What the geometry is computed from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GeometryInput {
    pub(crate) block_size: u32,
    pub(crate) blocks: u64,
    pub(crate) inodes: u64,
    pub(crate) inode_size: u16,
    pub(crate) resize_inode: bool,
}

/// The computed shape of the filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes per block.
    pub block_size: u32,
    /// Blocks in the filesystem (may be less than the image holds).
    pub blocks_count: u32,
    /// 1 with 1 KiB blocks (block 0 holds the boot sector), else 0.
    pub first_data_block: u32,
    /// Blocks per group (8 × block size: one bitmap block).
    pub blocks_per_group: u32,
    /// Number of block groups.
    pub groups: u32,
    /// Inodes per group.
    pub inodes_per_group: u32,
    /// Bytes per inode.
    pub inode_size: u16,
    /// Blocks of the group descriptor table.
    pub gdt_blocks: u32,
    /// Reserved GDT blocks for online growth.
    pub reserved_gdt_blocks: u32,
    /// Blocks of each group's inode table.
    pub inode_table_blocks: u32,
}

impl Geometry {
    /// Computes the geometry as mke2fs would for these inputs.
    pub(crate) fn new(input: GeometryInput) -> Result<Geometry, PlanError> {
        let b = input.block_size;
        let first_data_block = u32::from(b == 1024);
        let bpg = 8 * b;
        let blocks = input.blocks.min(u64::from(u32::MAX));
        let too_small = || PlanError::TooSmall {
            needed: None,
            have: input.blocks * u64::from(b),
        };
        if blocks <= u64::from(first_data_block) {
            return Err(too_small());
        }
        let mut geo = Geometry {
            block_size: b,
            blocks_count: blocks as u32,
            first_data_block,
            blocks_per_group: bpg,
            groups: 0,
            inodes_per_group: 0,
            inode_size: input.inode_size,
            gdt_blocks: 0,
            reserved_gdt_blocks: 0,
            inode_table_blocks: 0,
        };
        geo.set_groups(input)?;
        // A last group too small to hold its own metadata and some data is
        // dropped, as mke2fs does.
        let last = geo.groups - 1;
        if geo.groups > 1 && geo.group_blocks(last) < geo.overhead(last) + MIN_LAST_GROUP_DATA {
            geo.blocks_count -= geo.group_blocks(last);
            geo.set_groups(input)?;
        }
        if geo.group_blocks(0) < geo.overhead(0) + MIN_LAST_GROUP_DATA {
            return Err(too_small());
        }
        Ok(geo)
    }

    /// Sets the group count and everything that depends on it.
    fn set_groups(&mut self, input: GeometryInput) -> Result<(), PlanError> {
        let b = u64::from(self.block_size);
        let data_blocks = u64::from(self.blocks_count - self.first_data_block);
        self.groups = data_blocks.div_ceil(u64::from(self.blocks_per_group)) as u32;
        let groups = u64::from(self.groups);
        let per_block = b / u64::from(input.inode_size);
        // Whole inode-table blocks, and whole bytes of the inode bitmap.
        let align = per_block.max(8);
        let wanted = input.inodes.max(u64::from(FIRST_INO) + 1);
        let ipg = wanted.div_ceil(groups).div_ceil(align) * align;
        let max_ipg = (8 * b).min(65_536 - per_block);
        if ipg > max_ipg {
            return Err(PlanError::TooManyInodes {
                wanted,
                max: max_ipg * groups,
            });
        }
        self.inodes_per_group = ipg as u32;
        self.inode_table_blocks = (ipg / per_block) as u32;
        let per_gdt_block = b / u64::from(DESC_SIZE);
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
        let max_blocks =
            (u64::from(self.blocks_count) * RESIZE_GROWTH_FACTOR).min(u64::from(u32::MAX));
        let groups = (max_blocks - u64::from(self.first_data_block))
            .div_ceil(u64::from(self.blocks_per_group));
        let needed = groups.div_ceil(b / u64::from(DESC_SIZE));
        let rsv = needed.saturating_sub(u64::from(self.gdt_blocks));
        rsv.min(b / 4) as u32
    }

    /// Total inodes.
    pub fn inodes_count(&self) -> u32 {
        self.groups * self.inodes_per_group
    }

    /// First block of group `g`.
    pub fn group_start(&self, g: u32) -> u32 {
        self.first_data_block + g * self.blocks_per_group
    }

    /// Blocks in group `g` (the last one may be short).
    pub fn group_blocks(&self, g: u32) -> u32 {
        let end = (self.group_start(g) as u64 + self.blocks_per_group as u64)
            .min(self.blocks_count as u64) as u32;
        end - self.group_start(g)
    }

    /// Whether group `g` holds a superblock and GDT backup (sparse_super:
    /// groups 0, 1 and powers of 3, 5 and 7).
    pub fn has_super(&self, g: u32) -> bool {
        fn power_of(mut n: u32, base: u32) -> bool {
            while n > 1 && n % base == 0 {
                n /= base;
            }
            n == 1
        }
        g == 0 || power_of(g, 3) || power_of(g, 5) || power_of(g, 7)
    }

    /// Blocks of superblock, GDT and reserved GDT at the start of group `g`.
    fn super_blocks(&self, g: u32) -> u32 {
        if self.has_super(g) {
            1 + self.gdt_blocks + self.reserved_gdt_blocks
        } else {
            0
        }
    }

    /// The block bitmap of group `g`.
    pub fn block_bitmap(&self, g: u32) -> u32 {
        self.group_start(g) + self.super_blocks(g)
    }

    /// The inode bitmap of group `g`.
    pub fn inode_bitmap(&self, g: u32) -> u32 {
        self.block_bitmap(g) + 1
    }

    /// The first block of group `g`'s inode table.
    pub fn inode_table(&self, g: u32) -> u32 {
        self.block_bitmap(g) + 2
    }

    /// Metadata blocks at the start of group `g`.
    pub fn overhead(&self, g: u32) -> u32 {
        self.super_blocks(g) + 2 + self.inode_table_blocks
    }

    /// The first block of group `g` free for data.
    pub fn data_start(&self, g: u32) -> u32 {
        self.group_start(g) + self.overhead(g)
    }

    /// Blocks free for data in the whole filesystem.
    pub fn data_capacity(&self) -> u64 {
        (0..self.groups)
            .map(|g| u64::from(self.group_blocks(g) - self.overhead(g)))
            .sum()
    }

    /// Byte offset of block `b`.
    pub fn offset(&self, block: u32) -> u64 {
        u64::from(block) * u64::from(self.block_size)
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

    /// The group that block `b` belongs to.
    pub fn group_of_block(&self, block: u32) -> u32 {
        (block - self.first_data_block) / self.blocks_per_group
    }

    /// The group that inode `ino` (1-based) belongs to.
    pub fn group_of_inode(&self, ino: u32) -> u32 {
        (ino - 1) / self.inodes_per_group
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo(block_size: u32, blocks: u64, inodes: u64) -> Geometry {
        Geometry::new(GeometryInput {
            block_size,
            blocks,
            inodes,
            inode_size: 256,
            resize_inode: true,
        })
        .unwrap()
    }

    #[test]
    fn matches_mke2fs_for_64m_1k() {
        // mke2fs -t ext3 -b 1024 on 64 MiB: 8 groups, 2048 inodes per group,
        // 255 reserved GDT blocks (as dumpe2fs shows for an mke2fs image).
        let g = geo(1024, 65536, 65536 * 1024 / 4096);
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
        let g = geo(1024, 8193 + 20, 256);
        assert_eq!(g.groups, 1);
        assert_eq!(g.blocks_count, 8193);
    }

    #[test]
    fn too_many_inodes_is_an_error() {
        let err = Geometry::new(GeometryInput {
            block_size: 1024,
            blocks: 8192,
            inodes: 100_000,
            inode_size: 256,
            resize_inode: true,
        })
        .unwrap_err();
        assert!(matches!(err, PlanError::TooManyInodes { .. }), "{err}");
    }
}
