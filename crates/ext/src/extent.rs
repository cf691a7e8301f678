//! Extent trees (ext4): how an inode with the extents flag maps its logical
//! blocks to physical ones.
//!
//! Every node is a 12-byte `struct ext4_extent_header` followed by 12-byte
//! entries: `struct ext4_extent` (`ee_block`, `ee_len`, a 48-bit start) in
//! leaves, `struct ext4_extent_idx` (`ei_block`, a 48-bit child block) above
//! them. The root node is `i_block` and holds 4 entries; the other nodes are
//! whole blocks of `(block_size - 12) / 12` entries and, under metadata_csum,
//! end in a CRC32C (`struct ext4_extent_tail`) right after the last possible
//! entry. Holes are gaps between extents. See the kernel's
//! `Documentation/filesystems/ext4/ifork.rst`.
//!
//! kiln builds the tree bottom-up with every node full except the last of each
//! level, and with the fewest levels that hold the extents. e2fsck (pass 1E)
//! offers to rebuild trees that "could be narrower" or "could be shorter";
//! packed trees of minimal depth are neither. It is also the shape the kernel
//! gives a file written from start to end (mke2fs -d differs only in leaving
//! one entry free in each full leaf).

use std::ops::Range;

use crate::checksum::crc32c;
use crate::le::{get_u16, get_u32, put_u16, put_u32};

/// `eh_magic` of every extent node.
const EXT4_EXT_MAGIC: u16 = 0xF30A;
/// Size of `struct ext4_extent_header`.
const HEADER_SIZE: usize = 12;
/// Size of one entry, `struct ext4_extent` or `struct ext4_extent_idx` alike.
const ENTRY_SIZE: usize = 12;
/// Size of `i_block`, which holds the root node.
const I_BLOCK_SIZE: usize = 60;
/// Entries of the root node (`eh_max` in the inode).
const ROOT_ENTRIES: usize = (I_BLOCK_SIZE - HEADER_SIZE) / ENTRY_SIZE;
/// The longest initialised extent: a larger `ee_len` marks an uninitialised
/// (preallocated, reads as zeros) extent of `ee_len - 32768` blocks.
pub(crate) const EXT_INIT_MAX_LEN: u32 = 1 << 15;
/// Block numbers are 48 bits on disk (`*_hi` 16 bits + `*_lo` 32 bits).
const PBLK_BITS: u32 = 48;

/// Byte offsets of the fields, within the header or within an entry.
mod off {
    /// `struct ext4_extent_header`.
    pub(super) const EH_MAGIC: usize = 0x0;
    pub(super) const EH_ENTRIES: usize = 0x2;
    pub(super) const EH_MAX: usize = 0x4;
    pub(super) const EH_DEPTH: usize = 0x6;
    pub(super) const EH_GENERATION: usize = 0x8;
    /// `struct ext4_extent` (leaves).
    pub(super) const EE_BLOCK: usize = 0x0;
    pub(super) const EE_LEN: usize = 0x4;
    pub(super) const EE_START_HI: usize = 0x6;
    pub(super) const EE_START_LO: usize = 0x8;
    /// `struct ext4_extent_idx` (index nodes); `ei_unused` at 0xA stays zero.
    pub(super) const EI_BLOCK: usize = 0x0;
    pub(super) const EI_LEAF_LO: usize = 0x4;
    pub(super) const EI_LEAF_HI: usize = 0x8;
}

/// A run of contiguous data blocks: logical `lblk..lblk+len` at physical
/// `pblk..` (64-bit block numbers, for the 64bit feature). Any length:
/// [`split_extents`] cuts it into on-disk extents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Extent64Run {
    /// First logical block.
    pub(crate) lblk: u32,
    /// Physical block of `lblk`, below 2^48.
    pub(crate) pblk: u64,
    /// Blocks in the run; 0 maps nothing.
    pub(crate) len: u32,
}

/// One leaf entry: an initialised extent of 1 to [`EXT_INIT_MAX_LEN`] blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Extent {
    /// `ee_block`: the first logical block.
    pub(crate) lblk: u32,
    /// `ee_start`: the physical block of `lblk`.
    pub(crate) pblk: u64,
    /// `ee_len`: blocks mapped.
    pub(crate) len: u16,
}

/// Splits `runs` (ascending, disjoint) into extents of at most
/// [`EXT_INIT_MAX_LEN`] blocks, cut from the start of each run; empty runs
/// vanish. Runs are not merged with each other: give maximal runs.
pub(crate) fn split_extents(runs: &[Extent64Run]) -> Vec<Extent> {
    debug_assert!(
        runs.windows(2)
            .all(|w| u64::from(w[0].lblk) + u64::from(w[0].len) <= u64::from(w[1].lblk)),
        "runs must be ascending and disjoint"
    );
    let pieces = runs
        .iter()
        .map(|r| r.len.div_ceil(EXT_INIT_MAX_LEN) as usize)
        .sum();
    let mut out = Vec::with_capacity(pieces);
    for run in runs {
        let mut done = 0;
        while done < run.len {
            let len = (run.len - done).min(EXT_INIT_MAX_LEN);
            out.push(Extent {
                lblk: run.lblk + done,
                pblk: run.pblk + u64::from(done),
                // OK to unwrap: at most EXT_INIT_MAX_LEN = 32768.
                len: u16::try_from(len).unwrap(),
            });
            done += len;
        }
    }
    out
}

/// Entries a tree block holds (its `eh_max`): the header and entries leave at
/// least 4 bytes free for the checksum tail at every block size.
fn entries_per_block(block_size: u32) -> usize {
    (block_size as usize - HEADER_SIZE) / ENTRY_SIZE
}

/// Offset of the `ext4_extent_tail` checksum: right after `eh_max` entries.
fn tail_offset(block_size: u32) -> usize {
    HEADER_SIZE + entries_per_block(block_size) * ENTRY_SIZE
}

/// Blocks outside the inode that the tree of `extents` extents needs: 0 when
/// they fit in `i_block`. Equals [`ExtentTree::tree_block_count`] of the tree
/// [`ExtentTree::build`] makes, so the plan can size a file before allocating.
pub(crate) fn tree_blocks(extents: u64, block_size: u32) -> u64 {
    let per_block = entries_per_block(block_size) as u64;
    let mut total = 0;
    // Each level holds one entry per node of the level below; stop at the
    // first level the root can point at (the same loop as `build`).
    let mut entries = extents;
    while entries > ROOT_ENTRIES as u64 {
        entries = entries.div_ceil(per_block);
        total += entries;
    }
    total
}

/// A node outside the inode.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Node {
    /// Where it is written.
    pblk: u64,
    /// The first logical block under it: the `ei_block` of its index entry.
    lblk: u32,
    /// Its entries: indexes into the extents (a leaf) or into the nodes of
    /// the level below.
    entries: Range<usize>,
}

/// The extent tree of one inode, with its nodes' blocks allocated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExtentTree {
    /// Size of the tree blocks, which sets their `eh_max`.
    block_size: u32,
    /// The leaf entries in logical order.
    extents: Vec<Extent>,
    /// Nodes outside the inode by height: `levels[0]` are the leaves, the root
    /// in `i_block` points at `levels[depth - 1]`. Empty when the extents fit
    /// in the root.
    levels: Vec<Vec<Node>>,
}

impl ExtentTree {
    /// Builds the tree mapping `runs` (ascending, disjoint), calling `alloc`
    /// once per node outside the inode, top level first and left to right
    /// within a level (the order of [`ExtentTree::node_blocks`]).
    ///
    /// Panics if a data block or a block from `alloc` lies beyond 48 bits.
    pub(crate) fn build(
        runs: &[Extent64Run],
        block_size: u32,
        alloc: &mut impl FnMut() -> u64,
    ) -> ExtentTree {
        let extents = split_extents(runs);
        if let Some(last) = extents.iter().map(|e| e.pblk + u64::from(e.len)).max() {
            assert!(last <= 1 << PBLK_BITS, "data block {last} beyond 48 bits");
        }
        let per_block = entries_per_block(block_size);
        let mut levels: Vec<Vec<Node>> = Vec::new();
        let mut entries = extents.len();
        while entries > ROOT_ENTRIES {
            let first_lblk = |i: usize| match levels.last() {
                None => extents[i].lblk,
                Some(below) => below[i].lblk,
            };
            let level: Vec<Node> = (0..entries)
                .step_by(per_block)
                .map(|start| Node {
                    pblk: 0,
                    lblk: first_lblk(start),
                    entries: start..(start + per_block).min(entries),
                })
                .collect();
            entries = level.len();
            levels.push(level);
        }
        for node in levels.iter_mut().rev().flatten() {
            node.pblk = alloc();
            assert!(
                node.pblk >> PBLK_BITS == 0,
                "extent tree block {} beyond 48 bits",
                node.pblk
            );
        }
        ExtentTree {
            block_size,
            extents,
            levels,
        }
    }

    /// The 60 bytes of `i_block`: the root header and up to 4 entries, extents
    /// when the tree has depth 0, index entries otherwise.
    pub(crate) fn i_block(&self) -> [u8; I_BLOCK_SIZE] {
        let depth = self.levels.len();
        let mut out = [0u8; I_BLOCK_SIZE];
        let roots = match self.levels.last() {
            None => self.extents.len(),
            Some(top) => top.len(),
        };
        self.encode_node(&mut out, ROOT_ENTRIES, depth, 0..roots);
        out
    }

    /// The physical blocks of the nodes outside the inode, in allocation
    /// order; the k-th is encoded by [`ExtentTree::encode_block`]`(k, ..)`.
    pub(crate) fn node_blocks(&self) -> impl Iterator<Item = u64> + '_ {
        self.levels.iter().rev().flatten().map(|node| node.pblk)
    }

    /// Encodes the k-th node of [`ExtentTree::node_blocks`] as a whole block.
    /// With `inode_seed` (metadata_csum: the owning inode's checksum seed) the
    /// `ext4_extent_tail` after the last possible entry carries the CRC32C of
    /// everything before it; without, those bytes stay zero.
    ///
    /// Panics if `k` is not below [`ExtentTree::tree_block_count`].
    pub(crate) fn encode_block(&self, k: usize, inode_seed: Option<u32>) -> Vec<u8> {
        let (height, node) = self.node(k);
        let mut out = vec![0u8; self.block_size as usize];
        let eh_max = entries_per_block(self.block_size);
        self.encode_node(&mut out, eh_max, height, node.entries.clone());
        if let Some(seed) = inode_seed {
            let tail = tail_offset(self.block_size);
            let crc = crc32c(seed, &out[..tail]);
            put_u32(&mut out, tail, crc);
        }
        out
    }

    /// The leaf entries in logical order: the data runs the tree maps.
    pub(crate) fn extents(&self) -> &[Extent] {
        &self.extents
    }

    /// Blocks of the tree outside the inode.
    pub(crate) fn tree_block_count(&self) -> u64 {
        self.levels.iter().map(|level| level.len() as u64).sum()
    }

    /// Data blocks mapped.
    pub(crate) fn data_blocks(&self) -> u64 {
        self.extents.iter().map(|e| u64::from(e.len)).sum()
    }

    /// The k-th node in allocation order, with its height (0 = leaf).
    #[track_caller]
    fn node(&self, k: usize) -> (usize, &Node) {
        let mut rest = k;
        for (height, level) in self.levels.iter().enumerate().rev() {
            match level.get(rest) {
                Some(node) => return (height, node),
                None => rest -= level.len(),
            }
        }
        panic!(
            "extent tree block {k} of {} requested",
            self.tree_block_count()
        )
    }

    /// Writes a node of height `depth` (`eh_depth`) holding `eh_max` entries,
    /// of which `entries` are used: extents at depth 0, otherwise index
    /// entries for the nodes of the level below.
    fn encode_node(&self, out: &mut [u8], eh_max: usize, depth: usize, entries: Range<usize>) {
        put_u16(out, off::EH_MAGIC, EXT4_EXT_MAGIC);
        // OK to unwrap: eh_max of a 64 KiB block is 5460, and `entries` is a
        // chunk of at most eh_max; depth stays below 6 since 4 * 84^5 extents
        // would already exceed the 2^32 logical blocks.
        put_u16(out, off::EH_ENTRIES, u16::try_from(entries.len()).unwrap());
        put_u16(out, off::EH_MAX, u16::try_from(eh_max).unwrap());
        put_u16(out, off::EH_DEPTH, u16::try_from(depth).unwrap());
        // Only Lustre uses the generation; Linux writes zero.
        put_u32(out, off::EH_GENERATION, 0);
        for (slot, i) in entries.enumerate() {
            let at = HEADER_SIZE + slot * ENTRY_SIZE;
            let entry = &mut out[at..at + ENTRY_SIZE];
            if depth == 0 {
                let e = &self.extents[i];
                put_u32(entry, off::EE_BLOCK, e.lblk);
                put_u16(entry, off::EE_LEN, e.len);
                // The casts split a 48-bit number (checked in `build`).
                put_u16(entry, off::EE_START_HI, (e.pblk >> 32) as u16);
                put_u32(entry, off::EE_START_LO, e.pblk as u32);
            } else {
                let child = &self.levels[depth - 1][i];
                put_u32(entry, off::EI_BLOCK, child.lblk);
                put_u32(entry, off::EI_LEAF_LO, child.pblk as u32);
                put_u16(entry, off::EI_LEAF_HI, (child.pblk >> 32) as u16);
            }
        }
    }
}

/// One entry of a node read back from an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadEntry {
    /// A leaf extent; `uninit` ones (preallocated) read as zeros.
    Leaf {
        /// `ee_block`.
        lblk: u32,
        /// `ee_start`.
        pblk: u64,
        /// Blocks mapped (the uninitialised bias removed).
        len: u32,
        /// Whether the extent is uninitialised.
        uninit: bool,
    },
    /// An index entry: the child node at `child` maps from `lblk`.
    Index {
        /// `ei_block`.
        lblk: u32,
        /// `ei_leaf`.
        child: u64,
    },
}

/// Decodes a node (the 60 bytes of `i_block` or a tree block): its depth
/// and entries. Checks the magic number and that the entries fit.
pub(crate) fn decode_node(buf: &[u8]) -> Result<(u16, Vec<ReadEntry>), String> {
    if buf.len() < HEADER_SIZE || get_u16(buf, off::EH_MAGIC) != EXT4_EXT_MAGIC {
        return Err("extent node without the extent magic number".into());
    }
    let count = usize::from(get_u16(buf, off::EH_ENTRIES));
    let max = usize::from(get_u16(buf, off::EH_MAX));
    let depth = get_u16(buf, off::EH_DEPTH);
    if count > max || HEADER_SIZE + max * ENTRY_SIZE > buf.len() {
        return Err(format!("extent node claims {count} of {max} entries"));
    }
    let entries = buf[HEADER_SIZE..HEADER_SIZE + count * ENTRY_SIZE]
        .chunks_exact(ENTRY_SIZE)
        .map(|e| decode_entry(e, depth))
        .collect();
    Ok((depth, entries))
}

/// Decodes one entry of a node at `depth` (0: a leaf).
fn decode_entry(e: &[u8], depth: u16) -> ReadEntry {
    let join = |hi: usize, lo: usize| u64::from(get_u16(e, hi)) << 32 | u64::from(get_u32(e, lo));
    if depth == 0 {
        let raw = u32::from(get_u16(e, off::EE_LEN));
        let uninit = raw > EXT_INIT_MAX_LEN;
        ReadEntry::Leaf {
            lblk: get_u32(e, off::EE_BLOCK),
            pblk: join(off::EE_START_HI, off::EE_START_LO),
            len: if uninit { raw - EXT_INIT_MAX_LEN } else { raw },
            uninit,
        }
    } else {
        ReadEntry::Index {
            lblk: get_u32(e, off::EI_BLOCK),
            child: join(off::EI_LEAF_HI, off::EI_LEAF_LO),
        }
    }
}

/// Whether a tree block's `ext4_extent_tail` holds the CRC32C of the node
/// from the owning inode's checksum seed.
pub(crate) fn tail_matches(block: &[u8], inode_seed: u32) -> bool {
    let (stored, computed) = tail_checksums(block, inode_seed);
    stored == computed
}

/// A tree block's checksum as (stored in its `ext4_extent_tail`, computed
/// from the owning inode's seed); a block too short for a tail gives a
/// pair that differs.
pub(crate) fn tail_checksums(block: &[u8], inode_seed: u32) -> (u32, u32) {
    let tail = tail_offset(block.len() as u32);
    match block.get(tail..tail + 4) {
        Some(stored) => (get_u32(stored, 0), crc32c(inode_seed, &block[..tail])),
        None => (0, 1),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Builds with a cursor allocator starting at `first`.
    fn build(runs: &[Extent64Run], bs: u32, first: u64) -> ExtentTree {
        let mut next = first;
        ExtentTree::build(runs, bs, &mut || {
            next += 1;
            next - 1
        })
    }

    /// `n` one-block runs with one-block holes between them, the layout of a
    /// file written every other block.
    fn sparse_runs(n: u32) -> Vec<Extent64Run> {
        (0..n)
            .map(|i| Extent64Run {
                lblk: 2 * i,
                pblk: 1_000_000 + 3 * u64::from(i),
                len: 1,
            })
            .collect()
    }

    fn pblk48(lo: u32, hi: u16) -> u64 {
        u64::from(hi) << 32 | u64::from(lo)
    }

    /// Per-level totals of used and possible entries, root first, as e2fsck
    /// counts them to decide whether to offer a rebuild.
    #[derive(Default, Clone, Copy)]
    struct LevelStats {
        used: u64,
        max: u64,
    }

    /// A decoded tree: its extents, and the stats of each level.
    struct Decoded {
        extents: Vec<Extent>,
        stats: Vec<LevelStats>,
    }

    /// Decodes the tree rooted in `i_block`, reading other nodes from
    /// `blocks`, and checks every structural rule the kernel and e2fsck
    /// enforce: magic, `eh_max`, depths, `ei_block` equal to the child's
    /// first logical block, zero unused bytes, the checksum tail.
    fn decode(
        i_block: &[u8],
        blocks: &HashMap<u64, Vec<u8>>,
        bs: u32,
        seed: Option<u32>,
    ) -> Decoded {
        let depth = usize::from(get_u16(i_block, off::EH_DEPTH));
        let mut d = Decoded {
            extents: Vec::new(),
            stats: vec![LevelStats::default(); depth + 1],
        };
        walk(i_block, None, blocks, bs, seed, 0, depth, &mut d);
        d
    }

    #[allow(clippy::too_many_arguments)]
    fn walk(
        node: &[u8],
        parent_lblk: Option<u32>,
        blocks: &HashMap<u64, Vec<u8>>,
        bs: u32,
        seed: Option<u32>,
        level: usize,
        depth: usize,
        d: &mut Decoded,
    ) {
        let is_root = level == 0;
        assert_eq!(get_u16(node, off::EH_MAGIC), EXT4_EXT_MAGIC);
        let used = usize::from(get_u16(node, off::EH_ENTRIES));
        let max = usize::from(get_u16(node, off::EH_MAX));
        let expect_max = if is_root {
            ROOT_ENTRIES
        } else {
            entries_per_block(bs)
        };
        assert_eq!(max, expect_max);
        assert!(used <= max && (is_root || used > 0));
        assert_eq!(usize::from(get_u16(node, off::EH_DEPTH)), depth - level);
        assert_eq!(get_u32(node, off::EH_GENERATION), 0);
        let end = HEADER_SIZE + used * ENTRY_SIZE;
        let tail = if is_root { node.len() } else { tail_offset(bs) };
        assert!(node[end..tail].iter().all(|&b| b == 0), "unused bytes");
        if !is_root {
            let crc = seed.map_or(0, |s| crc32c(s, &node[..tail]));
            assert_eq!(get_u32(node, tail), crc, "checksum tail");
            assert!(node[tail + 4..].iter().all(|&b| b == 0));
        }
        let stats = &mut d.stats[level];
        stats.used += used as u64;
        // e2fsck pretends a non-full block holds one entry less (a split
        // while appending leaves a free slot behind).
        stats.max += max as u64 - u64::from(!is_root && used < max);
        for slot in 0..used {
            let e = &node[HEADER_SIZE + slot * ENTRY_SIZE..][..ENTRY_SIZE];
            let lblk = get_u32(e, 0);
            if slot == 0 {
                if let Some(p) = parent_lblk {
                    assert_eq!(lblk, p, "ei_block is the child's first lblk");
                }
            }
            if level == depth {
                let len = get_u16(e, off::EE_LEN);
                assert!(len > 0 && u32::from(len) <= EXT_INIT_MAX_LEN);
                let pblk = pblk48(get_u32(e, off::EE_START_LO), get_u16(e, off::EE_START_HI));
                if let Some(prev) = d.extents.last() {
                    assert!(u64::from(prev.lblk) + u64::from(prev.len) <= u64::from(lblk));
                }
                d.extents.push(Extent { lblk, pblk, len });
            } else {
                assert_eq!(get_u16(e, 0xA), 0, "ei_unused");
                let child = pblk48(get_u32(e, off::EI_LEAF_LO), get_u16(e, off::EI_LEAF_HI));
                let block = &blocks[&child];
                assert_eq!(block.len(), bs as usize);
                walk(block, Some(lblk), blocks, bs, seed, level + 1, depth, d);
            }
        }
    }

    /// e2fsck 1.47's pass-1E test: a level could be narrower when it has
    /// more than a block's worth of free entries, shorter when it has fewer
    /// entries than some level above could hold.
    fn e2fsck_keeps(d: &Decoded, bs: u32) -> bool {
        let per_block = entries_per_block(bs) as u64;
        d.stats.iter().enumerate().all(|(i, s)| {
            s.max - s.used <= per_block && d.stats[..i].iter().all(|above| s.used >= above.max)
        })
    }

    /// Decodes `tree` as a reader would find it on disk.
    fn decode_tree(tree: &ExtentTree, seed: Option<u32>) -> Decoded {
        let blocks: HashMap<u64, Vec<u8>> = tree
            .node_blocks()
            .enumerate()
            .map(|(k, pblk)| (pblk, tree.encode_block(k, seed)))
            .collect();
        assert_eq!(blocks.len() as u64, tree.tree_block_count());
        decode(&tree.i_block(), &blocks, tree.block_size, seed)
    }

    #[test]
    fn small_leaf_in_inode() {
        let runs = [
            Extent64Run {
                lblk: 0,
                pblk: 0x1_2345_6789,
                len: 3,
            },
            Extent64Run {
                lblk: 10,
                pblk: 500,
                len: 1,
            },
        ];
        let t = build(&runs, 4096, 7);
        assert_eq!(t.tree_block_count(), 0);
        assert_eq!(t.node_blocks().count(), 0);
        assert_eq!(t.data_blocks(), 4);
        let mut want = [0u8; 60];
        want[..36].copy_from_slice(&[
            0x0A, 0xF3, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, // header
            0, 0, 0, 0, 3, 0, 0x01, 0x00, 0x89, 0x67, 0x45, 0x23, // extent 1
            10, 0, 0, 0, 1, 0, 0, 0, 0xF4, 0x01, 0, 0, // extent 2
        ]);
        assert_eq!(t.i_block(), want);
    }

    #[test]
    fn empty_file_has_an_empty_root() {
        let t = build(&[], 1024, 7);
        assert_eq!(
            &t.i_block()[..12],
            &[0x0A, 0xF3, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(t.tree_block_count(), 0);
    }

    #[test]
    fn depth_one() {
        for n in 5..=340 {
            let runs = sparse_runs(n);
            let t = build(&runs, 4096, 77);
            assert_eq!(t.node_blocks().collect::<Vec<_>>(), vec![77]);
            let ib = t.i_block();
            assert_eq!(get_u16(&ib, off::EH_ENTRIES), 1);
            assert_eq!(get_u16(&ib, off::EH_DEPTH), 1);
            assert_eq!(get_u32(&ib, HEADER_SIZE + off::EI_BLOCK), 0);
            assert_eq!(get_u32(&ib, HEADER_SIZE + off::EI_LEAF_LO), 77);
            let leaf = t.encode_block(0, None);
            assert_eq!(get_u16(&leaf, off::EH_ENTRIES), n as u16);
            assert_eq!(get_u16(&leaf, off::EH_MAX), 340);
            let d = decode_tree(&t, None);
            assert_eq!(d.extents, split_extents(&runs));
            assert!(e2fsck_keeps(&d, 4096));
        }
        // One more spills into a second leaf, indexed from its first lblk.
        let t = build(&sparse_runs(341), 4096, 77);
        assert_eq!(t.tree_block_count(), 2);
        let ib = t.i_block();
        assert_eq!(get_u32(&ib, 2 * HEADER_SIZE + off::EI_BLOCK), 2 * 340);
        assert_eq!(get_u32(&ib, 2 * HEADER_SIZE + off::EI_LEAF_LO), 78);
    }

    #[test]
    fn index_entry_bytes() {
        // The leaf sits above 2^32: ei_leaf_lo at 4, ei_leaf_hi at 8 (unlike
        // a leaf entry, whose high half comes first).
        let t = build(&sparse_runs(5), 4096, 0x2_0000_0005);
        let entry = &t.i_block()[HEADER_SIZE..2 * HEADER_SIZE];
        assert_eq!(entry, [0, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0]);
    }

    #[test]
    #[should_panic(expected = "beyond 48 bits")]
    fn block_numbers_are_48_bits() {
        let run = Extent64Run {
            lblk: 0,
            pblk: (1 << 48) - 1,
            len: 2,
        };
        build(&[run], 4096, 1);
    }

    #[test]
    fn depth_two_at_1k() {
        // 84 entries a block: 4 full leaves fit under the root, 337 extents
        // need a fifth leaf and therefore an index block.
        assert_eq!(entries_per_block(1024), 84);
        assert_eq!(build(&sparse_runs(336), 1024, 9).tree_block_count(), 4);
        let runs = sparse_runs(337);
        let t = build(&runs, 1024, 100);
        assert_eq!(get_u16(&t.i_block(), off::EH_DEPTH), 2);
        assert_eq!(get_u16(&t.i_block(), off::EH_ENTRIES), 1);
        assert_eq!(
            t.node_blocks().collect::<Vec<_>>(),
            (100..106).collect::<Vec<_>>()
        );
        let index = t.encode_block(0, None);
        assert_eq!(get_u16(&index, off::EH_DEPTH), 1);
        assert_eq!(get_u16(&index, off::EH_ENTRIES), 5);
        assert_eq!(get_u32(&index, HEADER_SIZE + 4 * ENTRY_SIZE), 2 * 4 * 84);
        let last_leaf = t.encode_block(5, None);
        assert_eq!(get_u16(&last_leaf, off::EH_ENTRIES), 1);
        let d = decode_tree(&t, Some(0xDEAD_BEEF));
        assert_eq!(d.extents, split_extents(&runs));
        assert!(e2fsck_keeps(&d, 1024));
    }

    #[test]
    fn deep_trees_decode() {
        // Depth 3 at 1 KiB needs more than 4 * 84 * 84 extents.
        for n in [28_224, 28_225, 200_000] {
            let runs = sparse_runs(n);
            let t = build(&runs, 1024, 1 << 40);
            let d = decode_tree(&t, Some(1));
            assert_eq!(d.stats.len(), if n == 28_224 { 3 } else { 4 });
            assert_eq!(d.extents, split_extents(&runs));
            assert!(e2fsck_keeps(&d, 1024));
        }
    }

    #[test]
    fn checksum_tail_placement() {
        for (bs, tail) in [(1024, 1020), (2048, 2040), (4096, 4092), (65536, 65532)] {
            assert_eq!(tail_offset(bs), tail);
            let t = build(&sparse_runs(5), bs, 3);
            let plain = t.encode_block(0, None);
            let summed = t.encode_block(0, Some(0x1234_5678));
            assert_eq!(plain[..tail], summed[..tail]);
            assert_eq!(get_u32(&plain, tail), 0);
            assert_eq!(get_u32(&summed, tail), crc32c(0x1234_5678, &plain[..tail]));
            assert!(summed[tail + 4..].iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn long_run_splits() {
        let run = Extent64Run {
            lblk: 5,
            pblk: 1 << 33,
            len: 100_000,
        };
        let e = split_extents(&[run]);
        let lens: Vec<u16> = e.iter().map(|e| e.len).collect();
        assert_eq!(lens, [32768, 32768, 32768, 1696]);
        assert_eq!(e[3].lblk, 5 + 3 * 32768);
        assert_eq!(e[3].pblk, (1 << 33) + 3 * 32768);
        let t = build(&[run], 4096, 1);
        assert_eq!(t.data_blocks(), 100_000);
        // A full-length extent is written as 0x8000, not as uninitialised.
        assert_eq!(get_u16(&t.i_block(), HEADER_SIZE + off::EE_LEN), 0x8000);
        assert!(split_extents(&[Extent64Run { len: 0, ..run }]).is_empty());
    }

    #[test]
    fn tree_blocks_matches_build() {
        let per_level = |bs: u32| entries_per_block(bs) as u64;
        for bs in [1024u32, 2048, 4096, 65536] {
            let p = per_level(bs);
            let mut counts: Vec<u64> = (0..=1100).collect();
            counts.extend((4 * p - 2..4 * p + 3).chain([4 * p * 3 + 1, 4 * p * 7 - 1]));
            if bs <= 4096 {
                counts.extend(4 * p * p - 2..4 * p * p + 3);
            }
            for n in counts {
                let t = build(&sparse_runs(n as u32), bs, 10);
                assert_eq!(tree_blocks(n, bs), t.tree_block_count(), "{n} at {bs}");
                assert_eq!(t.node_blocks().count() as u64, t.tree_block_count());
            }
        }
        assert_eq!(tree_blocks(200_000, 1024), 2381 + 29 + 1);
    }
}
