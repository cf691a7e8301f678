//! Block maps (ext2/ext3): direct, indirect, double and triple indirect blocks.
//!
//! `i_block[0..12]` point at the first twelve data blocks, `i_block[12]` at an
//! indirect block of `a = block_size / 4` pointers, `i_block[13]` at a double
//! indirect block and `i_block[14]` at a triple indirect block. A hole is a zero
//! pointer, and an index block whose whole range is a hole is not allocated.
//! Index blocks are allocated just before the first data block they map, as
//! the kernel lays files out.

use std::ops::Range;

use crate::layout::{IND_SLOT, N_DIRECT};
use crate::le::put_u32;

/// A run of contiguous data blocks: logical `lblk..lblk+len` at `pblk..`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) lblk: u32,
    pub(crate) pblk: u32,
    pub(crate) len: u32,
}

/// An allocated index block: `level` 1 (indirect) to 3 (triple indirect),
/// mapping logical blocks from `first`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexBlock {
    pub(crate) level: u8,
    pub(crate) first: u32,
    pub(crate) pblk: u32,
}

/// Where every block of one inode went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct BlockMap {
    /// Data runs in ascending logical order.
    pub(crate) runs: Vec<Run>,
    /// Index blocks sorted by (level, first).
    pub(crate) index: Vec<IndexBlock>,
}

/// Logical blocks mapped by one pointer at `level` (1 = a data block).
fn span(level: u8, a: u64) -> u64 {
    a.pow(u32::from(level))
}

/// The first logical block of each root slot (12, 13, 14) and its level.
fn roots(a: u64) -> [(u8, u64); 3] {
    let n = u64::from(N_DIRECT);
    [(1, n), (2, n + a), (3, n + a + a * a)]
}

/// The largest number of logical blocks a block map addresses.
pub(crate) fn max_blocks(block_size: u32) -> u64 {
    let a = u64::from(block_size / 4);
    u64::from(N_DIRECT) + a + a * a + a * a * a
}

impl BlockMap {
    /// Allocates blocks for the logical `ranges` (ascending, disjoint, below
    /// [`max_blocks`]) by calling `alloc` for each new block in layout order.
    pub(crate) fn build(
        ranges: &[Range<u32>],
        block_size: u32,
        alloc: &mut impl FnMut() -> u32,
    ) -> BlockMap {
        let a = u64::from(block_size / 4);
        let mut map = BlockMap::default();
        // The `first` of the index block allocated last at each level.
        let mut current: [Option<u64>; 4] = [None; 4];
        for range in ranges {
            for lblk in range.clone() {
                for (level, first) in index_path(u64::from(lblk), a) {
                    if current[usize::from(level)] != Some(first) {
                        current[usize::from(level)] = Some(first);
                        map.index.push(IndexBlock {
                            level,
                            first: first as u32,
                            pblk: alloc(),
                        });
                    }
                }
                map.push_data(lblk, alloc());
            }
        }
        map.index.sort_by_key(|i| (i.level, i.first));
        map
    }

    fn push_data(&mut self, lblk: u32, pblk: u32) {
        if let Some(last) = self.runs.last_mut() {
            if last.lblk + last.len == lblk && last.pblk + last.len == pblk {
                last.len += 1;
                return;
            }
        }
        self.runs.push(Run { lblk, pblk, len: 1 });
    }

    /// Data plus index blocks.
    pub(crate) fn total_blocks(&self) -> u64 {
        self.runs.iter().map(|r| u64::from(r.len)).sum::<u64>() + self.index.len() as u64
    }

    /// The physical block of logical block `lblk`, 0 for a hole.
    fn data_block(&self, lblk: u64) -> u32 {
        let i = self.runs.partition_point(|r| u64::from(r.lblk) <= lblk);
        match i.checked_sub(1).map(|i| self.runs[i]) {
            Some(r) if lblk < u64::from(r.lblk) + u64::from(r.len) => {
                r.pblk + (lblk - u64::from(r.lblk)) as u32
            }
            _ => 0,
        }
    }

    /// The physical block of the index block at `level` starting at `first`.
    fn index_block(&self, level: u8, first: u64) -> u32 {
        self.index
            .binary_search_by_key(&(level, first), |i| (i.level, u64::from(i.first)))
            .map_or(0, |k| self.index[k].pblk)
    }

    /// The pointer to whatever maps `first` at `level` (data when level 0).
    fn pointer(&self, level: u8, first: u64) -> u32 {
        if level == 0 {
            self.data_block(first)
        } else {
            self.index_block(level, first)
        }
    }

    /// The 60 bytes of `i_block`.
    pub(crate) fn i_block(&self, block_size: u32) -> [u8; 60] {
        let a = u64::from(block_size / 4);
        let mut out = [0u8; 60];
        for slot in 0..N_DIRECT as usize {
            put_u32(&mut out, slot * 4, self.data_block(slot as u64));
        }
        for (k, (level, first)) in roots(a).into_iter().enumerate() {
            put_u32(&mut out, (IND_SLOT + k) * 4, self.index_block(level, first));
        }
        out
    }

    /// The content of index block `idx`: pointers to its children.
    pub(crate) fn encode_index(&self, idx: &IndexBlock, block_size: u32) -> Vec<u8> {
        let a = u64::from(block_size / 4);
        let child_span = span(idx.level - 1, a);
        let mut out = vec![0u8; block_size as usize];
        for k in 0..a {
            let first = u64::from(idx.first) + k * child_span;
            put_u32(
                &mut out,
                (k * 4) as usize,
                self.pointer(idx.level - 1, first),
            );
        }
        out
    }
}

/// The index blocks on the way to logical block `lblk`, top level first, as
/// (level, first logical block they map).
fn index_path(lblk: u64, a: u64) -> impl Iterator<Item = (u8, u64)> {
    let root = roots(a)
        .into_iter()
        .rev()
        .find(|&(_, first)| lblk >= first)
        .filter(|_| lblk >= u64::from(N_DIRECT));
    root.into_iter().flat_map(move |(level, root_first)| {
        (1..=level).rev().map(move |l| {
            let s = span(l, a);
            (l, root_first + (lblk - root_first) / s * s)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::le::get_u32;

    fn build(ranges: &[Range<u32>], bs: u32) -> BlockMap {
        let mut next = 100;
        BlockMap::build(ranges, bs, &mut || {
            next += 1;
            next - 1
        })
    }

    #[test]
    fn indirect_block_precedes_its_data() {
        let m = build(&[0..14], 1024);
        assert_eq!(
            m.runs,
            vec![
                Run {
                    lblk: 0,
                    pblk: 100,
                    len: 12
                },
                Run {
                    lblk: 12,
                    pblk: 113,
                    len: 2
                }
            ]
        );
        assert_eq!(
            m.index,
            vec![IndexBlock {
                level: 1,
                first: 12,
                pblk: 112
            }]
        );
        let ib = m.i_block(1024);
        assert_eq!(get_u32(&ib, 12 * 4), 112);
        let ind = m.encode_index(&m.index[0], 1024);
        assert_eq!(get_u32(&ind, 0), 113);
        assert_eq!(get_u32(&ind, 8), 0);
    }

    #[test]
    fn holes_skip_whole_index_blocks() {
        // 1 KiB blocks: a = 256; lblk 12+256+256*3 lies under the double
        // indirect block, in its fourth indirect block.
        let l = 12 + 256 + 256 * 3;
        let m = build(&[0..1, l..l + 1], 1024);
        assert_eq!(m.total_blocks(), 4);
        let levels: Vec<_> = m.index.iter().map(|i| (i.level, i.first)).collect();
        assert_eq!(levels, vec![(1, l), (2, 12 + 256)]);
        let dind = m.encode_index(&m.index[1], 1024);
        assert_eq!(get_u32(&dind, 3 * 4), m.index[0].pblk);
        assert_eq!(get_u32(&dind, 0), 0);
    }

    #[test]
    fn triple_indirect_path() {
        let a = 256u64;
        let l = 12 + a + a * a + 5;
        let path: Vec<_> = index_path(l, a).collect();
        let t = 12 + a + a * a;
        assert_eq!(path, vec![(3, t), (2, t), (1, t)]);
        assert_eq!(max_blocks(1024), 12 + a + a * a + a * a * a);
    }
}
