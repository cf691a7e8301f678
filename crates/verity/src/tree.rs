//! The hash tree: its levels, where each lies in the hash area, and the
//! hashing of the levels above the data's.
//!
//! Level 0 holds one digest per data block, level 1 one per level-0 block,
//! and so on up to a level of one block, whose digest is the root hash.
//! Every digest is SHA-256(salt ‖ block); a level's last block is padded
//! with zeros. The hash area, as veritysetup lays it out: the superblock's
//! block (unless left out), then the levels from the top one down to level 0.

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::{superblock, VerityParams, DIGEST_SIZE};

/// Hash blocks below which a level is hashed on one thread: spreading a
/// few blocks over rayon's pool costs more than it saves.
const PARALLEL_BLOCKS: usize = 64;

/// The shape of a tree: how many blocks each level has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeLayout {
    /// Blocks of each level, level 0 (the data's digests) first.
    levels: Vec<u64>,
    hash_block_size: u64,
    superblock: bool,
}

impl TreeLayout {
    /// The layout of the tree of `params`.
    pub fn new(params: &VerityParams) -> TreeLayout {
        let per_block = u64::from(params.hash_block_size) / DIGEST_SIZE as u64;
        let mut levels = vec![params.data_blocks.div_ceil(per_block)];
        while let Some(&blocks) = levels.last().filter(|&&b| b > 1) {
            levels.push(blocks.div_ceil(per_block));
        }
        TreeLayout {
            levels,
            hash_block_size: u64::from(params.hash_block_size),
            superblock: params.superblock,
        }
    }

    /// The number of levels.
    pub fn levels(&self) -> usize {
        self.levels.len()
    }

    /// Blocks of `level` (0: the data's digests).
    pub fn level_blocks(&self, level: usize) -> u64 {
        self.levels[level]
    }

    /// The hash block at which `level` starts in the hash area: after the
    /// superblock's and every level above it.
    pub fn level_start(&self, level: usize) -> u64 {
        u64::from(self.superblock) + self.levels[level + 1..].iter().sum::<u64>()
    }

    /// The hash area's size in bytes.
    pub fn area_size(&self) -> u64 {
        (u64::from(self.superblock) + self.levels.iter().sum::<u64>()) * self.hash_block_size
    }
}

/// A finished tree: the hash area's bytes and the root hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashArea {
    /// The hash device's bytes (or those appended after the image).
    pub bytes: Vec<u8>,
    /// SHA-256(salt ‖ top-level block): what the boot chain trusts.
    pub root: [u8; DIGEST_SIZE],
}

impl HashArea {
    /// The area of `params` from its level 0, the data blocks' digests
    /// zero-padded to whole hash blocks.
    pub fn from_level0(params: &VerityParams, level0: Vec<u8>) -> HashArea {
        let layout = TreeLayout::new(params);
        let block = params.hash_block_size as usize;
        let salted = params.salted();
        let mut levels = vec![level0];
        while levels.len() < layout.levels() {
            // OK to unwrap: `levels` starts with level 0.
            let below = levels.last().expect("level 0");
            let mut digests = hash_blocks(&salted, below, block);
            digests.resize(digests.len().next_multiple_of(block), 0);
            levels.push(digests);
        }
        // OK to unwrap: the layout has at least one level, and its top one
        // is one block.
        let top = levels.last().expect("one level");
        let root = digest(&salted, &top[..block]);
        let mut bytes = vec![0u8; layout.area_size() as usize];
        if params.superblock {
            bytes[..superblock::SUPERBLOCK_SIZE].copy_from_slice(&superblock::encode(params));
        }
        for (level, data) in levels.iter().enumerate() {
            let at = layout.level_start(level) as usize * block;
            bytes[at..at + data.len()].copy_from_slice(data);
        }
        HashArea { bytes, root }
    }

    /// The area of an image held whole in memory, the reference that
    /// [`VeritySink`](crate::VeritySink) must agree with.
    pub fn of_image(params: &VerityParams, image: &[u8]) -> HashArea {
        let data = &image[..params.data_size() as usize];
        let mut level0 = hash_blocks(&params.salted(), data, params.data_block_size as usize);
        let block = params.hash_block_size as usize;
        level0.resize(level0.len().next_multiple_of(block), 0);
        HashArea::from_level0(params, level0)
    }
}

/// The digests of `data`'s blocks of `block` bytes, concatenated; in
/// parallel when there are many.
fn hash_blocks(salted: &Sha256, data: &[u8], block: usize) -> Vec<u8> {
    if data.len() / block < PARALLEL_BLOCKS {
        return data.chunks(block).flat_map(|b| digest(salted, b)).collect();
    }
    data.par_chunks(block)
        .map(|b| digest(salted, b))
        .collect::<Vec<_>>()
        .concat()
}

/// SHA-256(salt ‖ `block`), from the salted state.
pub(crate) fn digest(salted: &Sha256, block: &[u8]) -> [u8; DIGEST_SIZE] {
    salted.clone().chain_update(block).finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(blocks: u64) -> VerityParams {
        VerityParams::new(blocks, vec![0x11; 32], [0; 16])
    }

    #[test]
    fn levels_as_veritysetup_counts_them() {
        // veritysetup 2.6.1: 300 blocks, 4 hash blocks + superblock; 3
        // blocks, 1 + superblock.
        assert_eq!(TreeLayout::new(&params(300)).area_size(), 5 * 4096);
        assert_eq!(TreeLayout::new(&params(3)).area_size(), 2 * 4096);
        let big = TreeLayout::new(&params(128 * 128 + 1));
        assert_eq!(big.levels(), 3);
        assert_eq!(big.level_start(2), 1);
        assert_eq!(big.level_start(1), 2);
        assert_eq!(big.level_start(0), 4);
    }

    #[test]
    fn the_root_covers_every_block() {
        let p = params(300);
        let mut image = vec![0u8; 300 * 4096];
        let root = HashArea::of_image(&p, &image).root;
        image[299 * 4096] = 1;
        assert_ne!(HashArea::of_image(&p, &image).root, root);
    }
}
