//! The resize inode (inode 7) and the reserved GDT blocks it maps.
//!
//! The reserved GDT blocks after the group descriptor table let `resize2fs`
//! grow the filesystem online. The resize inode's double-indirect block points
//! at the primary reserved GDT blocks (at index `(gdt_blocks + k) % a` for the
//! k-th), and each primary reserved GDT block, used as an indirect block, lists
//! its backups in the groups that carry superblock backups. Nothing else of the
//! inode is mapped; its size covers the whole double-indirect range.

use crate::geometry::Geometry;
use crate::layout::{IND_SLOT, N_DIRECT};
use crate::le::put_u32;

/// The k-th primary reserved GDT block. The resize inode is block-mapped, so
/// the plan keeps it only on filesystems of fewer than 2^32 blocks.
fn primary(geo: &Geometry, k: u32) -> u64 {
    geo.group_start(0) + 1 + u64::from(geo.gdt_blocks + k)
}

/// Groups after group 0 that hold a backup, ascending.
fn backup_groups(geo: &Geometry) -> impl Iterator<Item = u32> + '_ {
    (1..geo.groups).filter(|&g| geo.has_super(g))
}

/// The resize inode's `i_block`: only the double-indirect pointer is set.
pub(crate) fn i_block(dind: u64) -> [u8; 60] {
    let mut b = [0u8; 60];
    put_u32(&mut b, (IND_SLOT + 1) * 4, dind as u32);
    b
}

/// The resize inode's `i_size`: the end of the double-indirect range.
pub(crate) fn size(geo: &Geometry) -> u64 {
    let a = u64::from(geo.block_size / 4);
    (a * a + a + u64::from(N_DIRECT)) * u64::from(geo.block_size)
}

/// Blocks the resize inode holds: its double-indirect block plus every
/// reserved GDT block, primary and backup.
pub(crate) fn blocks(geo: &Geometry) -> u64 {
    let copies = 1 + backup_groups(geo).count() as u64;
    1 + u64::from(geo.reserved_gdt_blocks) * copies
}

/// The double-indirect block: pointers to the primary reserved GDT blocks.
pub(crate) fn encode_dind(geo: &Geometry) -> Vec<u8> {
    let a = geo.block_size / 4;
    let mut out = vec![0u8; geo.block_size as usize];
    for k in 0..geo.reserved_gdt_blocks {
        let slot = (geo.gdt_blocks + k) % a;
        put_u32(&mut out, slot as usize * 4, primary(geo, k) as u32);
    }
    out
}

/// The content of the primary reserved GDT blocks, all of them in a row: each
/// lists the block numbers of its own backups.
pub(crate) fn encode_reserved_gdt(geo: &Geometry) -> Vec<u8> {
    let bs = geo.block_size as usize;
    let mut out = vec![0u8; bs * geo.reserved_gdt_blocks as usize];
    for k in 0..geo.reserved_gdt_blocks {
        let block = &mut out[k as usize * bs..(k as usize + 1) * bs];
        for (i, g) in backup_groups(geo).enumerate() {
            let backup = primary(geo, k) + u64::from(g) * u64::from(geo.blocks_per_group);
            put_u32(block, i * 4, backup as u32);
        }
    }
    out
}
