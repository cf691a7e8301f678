//! The orphan file (`orphan_file`, Linux 5.15): a regular inode of orphan
//! blocks, which the kernel fills with the numbers of open unlinked inodes
//! instead of chaining them from the superblock. kiln writes it empty, as
//! mke2fs does: each block is zero slots, then a tail of the magic and,
//! with metadata_csum, a checksum.

use crate::checksum::{crc32c, inode_seed};
use crate::le::put_u32;

/// `ob_magic`, at the tail of every orphan block.
const MAGIC: u32 = 0x0b10_ca04;
/// The tail: `ob_magic`, then `ob_checksum`.
const TAIL_LEN: usize = 8;

/// The blocks mke2fs gives the orphan file of a filesystem of `blocks`
/// blocks: 32 below 128 Ki blocks, one per 4096 blocks below 2 Mi, else
/// 512.
pub(crate) fn default_blocks(blocks: u64) -> u32 {
    match blocks {
        b if b < 128 << 10 => 32,
        b if b < 2 << 20 => (b / 4096) as u32,
        _ => 512,
    }
}

/// The empty orphan block of `block_size` bytes at physical block `pblk`
/// of inode `ino` (generation 0); `csum_seed` with metadata_csum.
pub(crate) fn encode_block(
    block_size: u32,
    csum_seed: Option<u32>,
    ino: u32,
    pblk: u64,
) -> Vec<u8> {
    let mut b = vec![0u8; block_size as usize];
    let tail = b.len() - TAIL_LEN;
    put_u32(&mut b, tail, MAGIC);
    if let Some(seed) = csum_seed {
        // The inode's seed, the block's physical number, then the slots.
        let crc = crc32c(inode_seed(seed, ino, 0), &pblk.to_le_bytes());
        let crc = crc32c(crc, &b[..tail]);
        put_u32(&mut b, tail + 4, crc);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::le::get_u32;

    #[test]
    fn sizes_as_mke2fs_picks_them() {
        assert_eq!(default_blocks(65_536), 32);
        assert_eq!(default_blocks(1 << 20), 256);
        assert_eq!(default_blocks(4 << 20), 512);
    }

    #[test]
    fn a_block_is_empty_slots_and_its_tail() {
        let b = encode_block(1024, None, 12, 4385);
        assert_eq!(get_u32(&b, 1016), MAGIC);
        assert!(b[..1016].iter().all(|&x| x == 0) && get_u32(&b, 1020) == 0);
        let c = encode_block(1024, Some(0x1234), 12, 4385);
        assert_ne!(get_u32(&c, 1020), 0);
        assert_ne!(c, encode_block(1024, Some(0x1234), 12, 4386));
    }
}
