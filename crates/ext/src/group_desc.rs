//! Group descriptors (`struct ext4_group_desc`): 32 bytes, or 64 with 64bit.

use crate::checksum::crc32c;
use crate::geometry::Geometry;
use crate::le::{put_u16, put_u32};

/// `bg_flags`: the inode table is initialised (zeroed), as mke2fs records.
const BG_INODE_ZEROED: u16 = 0x4;
/// Offset of `bg_checksum`.
const BG_CHECKSUM: usize = 0x1E;

/// What goes into one group's descriptor besides the geometry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct GroupCounts {
    pub(crate) free_blocks: u32,
    pub(crate) free_inodes: u32,
    pub(crate) used_dirs: u32,
    /// CRC32C of the block bitmap and of the inode bitmap (metadata_csum).
    pub(crate) bitmap_csums: (u32, u32),
}

/// Encodes the whole group descriptor table (`gdt_blocks` blocks);
/// `csum_seed` is the filesystem's checksum seed with metadata_csum.
pub(crate) fn encode_table(
    geo: &Geometry,
    counts: &[GroupCounts],
    csum_seed: Option<u32>,
) -> Vec<u8> {
    let size = geo.desc_size as usize;
    let mut out = vec![0u8; (geo.gdt_blocks * geo.block_size) as usize];
    for (g, c) in counts.iter().enumerate() {
        let d = &mut out[g * size..(g + 1) * size];
        encode_one(geo, g as u32, c, d);
        if let Some(seed) = csum_seed {
            // Group flags and the unused-inode count are only valid with
            // group checksums (e2fsck refuses them otherwise).
            put_u16(d, 0x12, BG_INODE_ZEROED); // bg_flags
            put_u16(d, 0x1C, c.free_inodes as u16); // bg_itable_unused_lo
            if size >= 64 {
                put_u16(d, 0x32, (c.free_inodes >> 16) as u16); // bg_itable_unused_hi
            }
            put_u16(d, BG_CHECKSUM, checksum(seed, g as u32, d));
        }
    }
    out
}

fn encode_one(geo: &Geometry, g: u32, c: &GroupCounts, d: &mut [u8]) {
    let (bb, ib, it) = (geo.block_bitmap(g), geo.inode_bitmap(g), geo.inode_table(g));
    let free_inodes = c.free_inodes;
    put_u32(d, 0x0, bb as u32); // bg_block_bitmap_lo
    put_u32(d, 0x4, ib as u32); // bg_inode_bitmap_lo
    put_u32(d, 0x8, it as u32); // bg_inode_table_lo
    put_u16(d, 0xC, c.free_blocks as u16); // bg_free_blocks_count_lo
    put_u16(d, 0xE, free_inodes as u16); // bg_free_inodes_count_lo
    put_u16(d, 0x10, c.used_dirs as u16); // bg_used_dirs_count_lo
    put_u16(d, 0x18, c.bitmap_csums.0 as u16); // bg_block_bitmap_csum_lo
    put_u16(d, 0x1A, c.bitmap_csums.1 as u16); // bg_inode_bitmap_csum_lo
    if d.len() >= 64 {
        put_u32(d, 0x20, (bb >> 32) as u32); // bg_block_bitmap_hi
        put_u32(d, 0x24, (ib >> 32) as u32); // bg_inode_bitmap_hi
        put_u32(d, 0x28, (it >> 32) as u32); // bg_inode_table_hi
        put_u16(d, 0x2C, (c.free_blocks >> 16) as u16); // bg_free_blocks_count_hi
        put_u16(d, 0x2E, (free_inodes >> 16) as u16); // bg_free_inodes_count_hi
        put_u16(d, 0x30, (c.used_dirs >> 16) as u16); // bg_used_dirs_count_hi
        put_u16(d, 0x38, (c.bitmap_csums.0 >> 16) as u16); // bg_block_bitmap_csum_hi
        put_u16(d, 0x3A, (c.bitmap_csums.1 >> 16) as u16); // bg_inode_bitmap_csum_hi
    }
}

/// The descriptor checksum: CRC32C of the group number and the descriptor
/// with the checksum field left out, low 16 bits.
fn checksum(seed: u32, g: u32, d: &[u8]) -> u16 {
    let crc = crc32c(seed, &g.to_le_bytes());
    let crc = crc32c(crc, &d[..BG_CHECKSUM]);
    let crc = crc32c(crc, &[0, 0]);
    (crc32c(crc, &d[BG_CHECKSUM + 2..]) & 0xFFFF) as u16
}
