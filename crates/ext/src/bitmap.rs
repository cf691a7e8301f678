//! Block and inode bitmaps: one block per group each.
//!
//! A set bit marks a used block (relative to the group's start) or inode.
//! The bits past the end of the group (a short last group, or fewer inodes
//! than the block has bits) are padding and must be set.

use crate::checksum::crc32c;
use crate::plan::Plan;

/// Sets bits `range` of `bitmap`.
fn set_bits(bitmap: &mut [u8], range: std::ops::Range<u32>) {
    for bit in range {
        bitmap[(bit / 8) as usize] |= 1 << (bit % 8);
    }
}

/// The block bitmap of group `g`.
pub(crate) fn block_bitmap(plan: &Plan<'_>, g: u32) -> Vec<u8> {
    let geo = &plan.geometry;
    let mut b = vec![0u8; geo.block_size as usize];
    for r in plan.used_ranges(g) {
        set_bits(&mut b, r);
    }
    set_bits(&mut b, geo.group_blocks(g)..8 * geo.block_size);
    b
}

/// The inode bitmap of group `g`: used inodes are a prefix.
pub(crate) fn inode_bitmap(plan: &Plan<'_>, g: u32) -> Vec<u8> {
    let geo = &plan.geometry;
    let mut b = vec![0u8; geo.block_size as usize];
    set_bits(&mut b, 0..plan.used_inodes(g));
    set_bits(&mut b, geo.inodes_per_group..8 * geo.block_size);
    b
}

/// The metadata_csum checksums of group `g`'s block and inode bitmaps: CRC32C
/// over the bytes that hold the group's bits.
pub(crate) fn checksums(plan: &Plan<'_>, g: u32, fs_seed: u32) -> (u32, u32) {
    let geo = &plan.geometry;
    let blocks = crc32c(
        fs_seed,
        &block_bitmap(plan, g)[..(geo.blocks_per_group / 8) as usize],
    );
    let inodes = crc32c(
        fs_seed,
        &inode_bitmap(plan, g)[..(geo.inodes_per_group / 8) as usize],
    );
    (blocks, inodes)
}
