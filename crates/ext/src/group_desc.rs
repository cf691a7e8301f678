//! Group descriptors (`struct ext4_group_desc`): 32 bytes, or 64 with 64bit.
//!
//! [`encode_table`] writes them; [`decode`] reads back what the image reader
//! needs. Both use the field offsets of [`off`].

use crate::checksum::crc32c;
use crate::geometry::Geometry;
use crate::le::{get_u16, get_u32, put_u16, put_u32};

/// `bg_flags`: the inode table is initialised (zeroed), as mke2fs records.
const BG_INODE_ZEROED: u16 = 0x4;
/// Descriptors at least this long have the `_hi` halves (64bit).
const DESC_SIZE_HI: usize = 64;

/// Byte offsets of the descriptor fields, under their kernel names.
mod off {
    pub(super) const BG_BLOCK_BITMAP_LO: usize = 0x0;
    pub(super) const BG_INODE_BITMAP_LO: usize = 0x4;
    pub(super) const BG_INODE_TABLE_LO: usize = 0x8;
    pub(super) const BG_FREE_BLOCKS_COUNT_LO: usize = 0xC;
    pub(super) const BG_FREE_INODES_COUNT_LO: usize = 0xE;
    pub(super) const BG_USED_DIRS_COUNT_LO: usize = 0x10;
    pub(super) const BG_FLAGS: usize = 0x12;
    pub(super) const BG_BLOCK_BITMAP_CSUM_LO: usize = 0x18;
    pub(super) const BG_INODE_BITMAP_CSUM_LO: usize = 0x1A;
    pub(super) const BG_ITABLE_UNUSED_LO: usize = 0x1C;
    pub(super) const BG_CHECKSUM: usize = 0x1E;
    pub(super) const BG_BLOCK_BITMAP_HI: usize = 0x20;
    pub(super) const BG_INODE_BITMAP_HI: usize = 0x24;
    pub(super) const BG_INODE_TABLE_HI: usize = 0x28;
    pub(super) const BG_FREE_BLOCKS_COUNT_HI: usize = 0x2C;
    pub(super) const BG_FREE_INODES_COUNT_HI: usize = 0x2E;
    pub(super) const BG_USED_DIRS_COUNT_HI: usize = 0x30;
    pub(super) const BG_ITABLE_UNUSED_HI: usize = 0x32;
    pub(super) const BG_BLOCK_BITMAP_CSUM_HI: usize = 0x38;
    pub(super) const BG_INODE_BITMAP_CSUM_HI: usize = 0x3A;
}

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
            put_u16(d, off::BG_FLAGS, BG_INODE_ZEROED);
            put_u16(d, off::BG_ITABLE_UNUSED_LO, c.free_inodes as u16);
            if size >= DESC_SIZE_HI {
                put_u16(d, off::BG_ITABLE_UNUSED_HI, (c.free_inodes >> 16) as u16);
            }
            put_u16(d, off::BG_CHECKSUM, checksum(seed, g as u32, d));
        }
    }
    out
}

/// Encodes one descriptor (`d`, `desc_size` bytes) without the checksum fields.
fn encode_one(geo: &Geometry, g: u32, c: &GroupCounts, d: &mut [u8]) {
    let (bb, ib, it) = (geo.block_bitmap(g), geo.inode_bitmap(g), geo.inode_table(g));
    put_u32(d, off::BG_BLOCK_BITMAP_LO, bb as u32);
    put_u32(d, off::BG_INODE_BITMAP_LO, ib as u32);
    put_u32(d, off::BG_INODE_TABLE_LO, it as u32);
    put_u16(d, off::BG_FREE_BLOCKS_COUNT_LO, c.free_blocks as u16);
    put_u16(d, off::BG_FREE_INODES_COUNT_LO, c.free_inodes as u16);
    put_u16(d, off::BG_USED_DIRS_COUNT_LO, c.used_dirs as u16);
    put_u16(d, off::BG_BLOCK_BITMAP_CSUM_LO, c.bitmap_csums.0 as u16);
    put_u16(d, off::BG_INODE_BITMAP_CSUM_LO, c.bitmap_csums.1 as u16);
    if d.len() >= DESC_SIZE_HI {
        put_u32(d, off::BG_BLOCK_BITMAP_HI, (bb >> 32) as u32);
        put_u32(d, off::BG_INODE_BITMAP_HI, (ib >> 32) as u32);
        put_u32(d, off::BG_INODE_TABLE_HI, (it >> 32) as u32);
        put_u16(
            d,
            off::BG_FREE_BLOCKS_COUNT_HI,
            (c.free_blocks >> 16) as u16,
        );
        put_u16(
            d,
            off::BG_FREE_INODES_COUNT_HI,
            (c.free_inodes >> 16) as u16,
        );
        put_u16(d, off::BG_USED_DIRS_COUNT_HI, (c.used_dirs >> 16) as u16);
        put_u16(
            d,
            off::BG_BLOCK_BITMAP_CSUM_HI,
            (c.bitmap_csums.0 >> 16) as u16,
        );
        put_u16(
            d,
            off::BG_INODE_BITMAP_CSUM_HI,
            (c.bitmap_csums.1 >> 16) as u16,
        );
    }
}

/// One decoded descriptor (`d`, 32 or 64 bytes): what the image reader and
/// the checker need.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct GroupDesc {
    /// The group's block bitmap.
    pub(crate) block_bitmap: u64,
    /// The group's inode bitmap.
    pub(crate) inode_bitmap: u64,
    /// First block of the group's inode table.
    pub(crate) inode_table: u64,
    /// `bg_free_blocks_count`.
    pub(crate) free_blocks: u32,
    /// `bg_free_inodes_count`.
    pub(crate) free_inodes: u32,
    /// `bg_used_dirs_count`.
    pub(crate) used_dirs: u32,
    /// `bg_itable_unused`.
    pub(crate) itable_unused: u32,
    /// `bg_flags`.
    pub(crate) flags: u16,
    /// CRC32C of the block bitmap (low half only in 32-byte descriptors).
    pub(crate) block_bitmap_csum: u32,
    /// CRC32C of the inode bitmap (low half only in 32-byte descriptors).
    pub(crate) inode_bitmap_csum: u32,
    /// `bg_checksum`.
    pub(crate) checksum: u16,
}

/// `bg_flags`: the inode bitmap is not initialised (all inodes free).
pub(crate) const BG_INODE_UNINIT: u16 = 0x1;
/// `bg_flags`: the block bitmap is not initialised (only metadata used).
pub(crate) const BG_BLOCK_UNINIT: u16 = 0x2;

/// Decodes a descriptor; the `_hi` halves count only in 64-byte descriptors,
/// as the kernel reads them.
pub(crate) fn decode(d: &[u8]) -> GroupDesc {
    let big = d.len() >= DESC_SIZE_HI;
    let wide = |lo: usize, hi: usize| {
        let hi = if big {
            u64::from(get_u32(d, hi)) << 32
        } else {
            0
        };
        hi | u64::from(get_u32(d, lo))
    };
    let half = |lo: usize, hi: usize| {
        let hi = if big {
            u32::from(get_u16(d, hi)) << 16
        } else {
            0
        };
        hi | u32::from(get_u16(d, lo))
    };
    GroupDesc {
        block_bitmap: wide(off::BG_BLOCK_BITMAP_LO, off::BG_BLOCK_BITMAP_HI),
        inode_bitmap: wide(off::BG_INODE_BITMAP_LO, off::BG_INODE_BITMAP_HI),
        inode_table: wide(off::BG_INODE_TABLE_LO, off::BG_INODE_TABLE_HI),
        free_blocks: half(off::BG_FREE_BLOCKS_COUNT_LO, off::BG_FREE_BLOCKS_COUNT_HI),
        free_inodes: half(off::BG_FREE_INODES_COUNT_LO, off::BG_FREE_INODES_COUNT_HI),
        used_dirs: half(off::BG_USED_DIRS_COUNT_LO, off::BG_USED_DIRS_COUNT_HI),
        itable_unused: half(off::BG_ITABLE_UNUSED_LO, off::BG_ITABLE_UNUSED_HI),
        flags: get_u16(d, off::BG_FLAGS),
        block_bitmap_csum: half(off::BG_BLOCK_BITMAP_CSUM_LO, off::BG_BLOCK_BITMAP_CSUM_HI),
        inode_bitmap_csum: half(off::BG_INODE_BITMAP_CSUM_LO, off::BG_INODE_BITMAP_CSUM_HI),
        checksum: get_u16(d, off::BG_CHECKSUM),
    }
}

/// The descriptor checksum: CRC32C of the group number and the descriptor
/// with the checksum field left out, low 16 bits.
pub(crate) fn checksum(seed: u32, g: u32, d: &[u8]) -> u16 {
    let crc = crc32c(seed, &g.to_le_bytes());
    let crc = crc32c(crc, &d[..off::BG_CHECKSUM]);
    let crc = crc32c(crc, &[0, 0]);
    (crc32c(crc, &d[off::BG_CHECKSUM + 2..]) & 0xFFFF) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::GeometryInput;

    /// A geometry with `blocks` 4 KiB blocks, 64bit or not.
    fn geometry(blocks: u64, bit64: bool) -> Geometry {
        Geometry::new(GeometryInput {
            block_size: 4096,
            blocks,
            inodes: 65536,
            min_inodes: 0,
            inode_size: 256,
            resize_inode: true,
            sparse_super: true,
            flex_bg: true,
            bit64,
        })
        .unwrap()
    }

    #[test]
    fn decode_reads_the_inode_tables_encode_wrote() {
        // 2^33 blocks put the last groups' inode tables past 2^32.
        for (blocks, bit64) in [(1 << 20, false), (1 << 20, true), (1 << 33, true)] {
            let geo = geometry(blocks, bit64);
            let counts = vec![GroupCounts::default(); geo.groups as usize];
            let table = encode_table(&geo, &counts, Some(7));
            let size = geo.desc_size as usize;
            let last = geo.inode_table(geo.groups - 1);
            assert_eq!(last > u64::from(u32::MAX), blocks > 1 << 32);
            for g in [0, geo.groups / 2, geo.groups - 1] {
                let d = &table[g as usize * size..(g as usize + 1) * size];
                assert_eq!(decode(d).inode_table, geo.inode_table(g), "group {g}");
            }
        }
    }
}
