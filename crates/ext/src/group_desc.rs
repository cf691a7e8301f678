//! Group descriptors (`struct ext4_group_desc`, 32 bytes without 64bit).

use crate::geometry::Geometry;
use crate::layout::DESC_SIZE;
use crate::le::{put_u16, put_u32};

/// The counts that go into one group's descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct GroupCounts {
    pub(crate) free_blocks: u32,
    pub(crate) free_inodes: u32,
    pub(crate) used_dirs: u32,
}

/// Encodes the whole group descriptor table (`gdt_blocks` blocks).
pub(crate) fn encode_table(geo: &Geometry, counts: &[GroupCounts]) -> Vec<u8> {
    let mut out = vec![0u8; (geo.gdt_blocks * geo.block_size) as usize];
    for (g, c) in counts.iter().enumerate() {
        let d = &mut out[g * DESC_SIZE as usize..(g + 1) * DESC_SIZE as usize];
        let g = g as u32;
        put_u32(d, 0x0, geo.block_bitmap(g)); // bg_block_bitmap_lo
        put_u32(d, 0x4, geo.inode_bitmap(g)); // bg_inode_bitmap_lo
        put_u32(d, 0x8, geo.inode_table(g)); // bg_inode_table_lo
        put_u16(d, 0xC, c.free_blocks as u16); // bg_free_blocks_count_lo
        put_u16(d, 0xE, c.free_inodes as u16); // bg_free_inodes_count_lo
        put_u16(d, 0x10, c.used_dirs as u16); // bg_used_dirs_count_lo
    }
    out
}
