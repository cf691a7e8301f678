//! Hash-indexed directories (dir_index): the name hashes, and the index
//! blocks `struct dx_root` and `struct dx_node` with the `struct dx_tail`
//! checksum of metadata_csum.
//!
//! An indexed directory is laid out as `e2fsck -D` lays it out: block 0 is the
//! root, blocks 1 to n are the leaves (ordinary directory blocks, written by
//! [`dir`](crate::dir), their entries sorted by hash), then the dx_node
//! blocks, each placed before the nodes under it. Every index entry maps the
//! lowest hash of a subtree to its block; a lookup takes the last entry whose
//! hash is not above the name's. See the kernel's
//! `Documentation/filesystems/ext4/directory.rst`.

use crate::checksum::crc32c;
use crate::dir::{self, ftype};
use crate::le::{get_u16, get_u32, put_u16, put_u32};

/// `i_flags` bit of a directory whose first block is an index root.
pub(crate) const INDEX_FL: u32 = 0x1000;

/// `s_def_hash_version` and `dx_root_info.hash_version` of the legacy hash.
pub(crate) const LEGACY: u8 = 0;
/// The half MD4 hash (mke2fs's default).
pub(crate) const HALF_MD4: u8 = 1;
/// The TEA hash.
pub(crate) const TEA: u8 = 2;

/// How a filesystem hashes names, from its superblock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HtreeParams {
    /// `s_def_hash_version`: [`LEGACY`], [`HALF_MD4`] or [`TEA`].
    pub(crate) hash_version: u8,
    /// `s_flags` says unsigned (0x2) rather than signed (0x1) chars.
    pub(crate) unsigned: bool,
    /// `s_hash_seed` as four little-endian words.
    pub(crate) seed: [u32; 4],
    /// The large_dir feature: the index may have three levels.
    pub(crate) large_dir: bool,
}

/// The hash of a name. Ordered as lookups and `e2fsck -D` order entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Hash {
    /// Keys the index; the lowest bit is always clear (see [`leaf_keys`]).
    pub(crate) major: u32,
    /// Orders names of equal major hash (0 for the legacy hash).
    pub(crate) minor: u32,
}

/// Where half MD4 and TEA start when `s_hash_seed` is all zero: MD4's
/// initial state.
const DEFAULT_SEED: [u32; 4] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476];

/// The major hash the kernel never returns: shifted right by one (as 32-bit
/// readdir positions are) it would be the end-of-directory marker
/// `EXT4_HTREE_EOF_32BIT`, so the kernel lowers it by one step.
const EOF_MAJOR: u32 = 0x7FFF_FFFF << 1;

impl HtreeParams {
    /// The hash of `name` as the kernel computes it.
    ///
    /// Panics if `hash_version` is not [`LEGACY`], [`HALF_MD4`] or [`TEA`]:
    /// kiln chooses it, so another value is a bug.
    pub(crate) fn hash(&self, name: &[u8]) -> Hash {
        let (major, minor) = match self.hash_version {
            LEGACY => (legacy(name, self.unsigned), 0),
            HALF_MD4 => {
                let state = self.chunked::<8>(name, half_md4);
                (state[1], state[2])
            }
            TEA => {
                let state = self.chunked::<4>(name, tea);
                (state[0], state[1])
            }
            v => panic!("unknown directory hash version {v}"),
        };
        Hash {
            major: major_key(major),
            minor,
        }
    }

    /// Runs `transform` over the name in chunks of `4 * N` bytes, from the
    /// seed (or the default one if the seed is all zero).
    fn chunked<const N: usize>(
        &self,
        name: &[u8],
        transform: fn(&mut [u32; 4], &[u32; N]),
    ) -> [u32; 4] {
        let mut state = if self.seed == [0; 4] {
            DEFAULT_SEED
        } else {
            self.seed
        };
        for start in (0..name.len()).step_by(4 * N) {
            transform(&mut state, &pack(&name[start..], self.unsigned));
        }
        state
    }
}

/// The major hash from a hash function's output: the lowest bit cleared (the
/// index uses it) and never [`EOF_MAJOR`]. e2fsprogs only clears the bit; the
/// kernel, which does the lookups, also moves the EOF value one step down.
fn major_key(raw: u32) -> u32 {
    match raw & !1 {
        EOF_MAJOR => EOF_MAJOR - 2,
        m => m,
    }
}

/// A name byte as the hashes see it: a C `char`, signed unless the
/// filesystem says unsigned (signedness was the compiling CPU's choice).
fn char_value(b: u8, unsigned: bool) -> u32 {
    if unsigned {
        u32::from(b)
    } else {
        b as i8 as u32
    }
}

/// The legacy hash (`dx_hack_hash`): a two-word recurrence over the bytes.
fn legacy(name: &[u8], unsigned: bool) -> u32 {
    let (mut h0, mut h1): (u32, u32) = (0x12A3_FE2D, 0x37AB_E8F9);
    for &b in name {
        let mut h = h1.wrapping_add(h0 ^ char_value(b, unsigned).wrapping_mul(7_152_373));
        if h & 0x8000_0000 != 0 {
            h = h.wrapping_sub(0x7FFF_FFFF);
        }
        (h0, h1) = (h, h0);
    }
    h0 << 1
}

/// Packs the first `4 * N` bytes of `rest` (what is left of the name) into
/// `N` words, first byte most significant. Every word starts from, and unused
/// words are, a padding word repeating the low byte of `rest.len()`, so names
/// that differ only in length still differ.
fn pack<const N: usize>(rest: &[u8], unsigned: bool) -> [u32; N] {
    let len = rest.len() as u32;
    let pad = (len | len << 8) | (len | len << 8) << 16;
    let mut words = [pad; N];
    for (word, bytes) in words.iter_mut().zip(rest.chunks(4)) {
        *word = bytes
            .iter()
            .fold(pad, |w, &b| (w << 8).wrapping_add(char_value(b, unsigned)));
    }
    words
}

/// One step of half MD4: an MD4 round function, its additive constant, the
/// order it reads the eight input words in, and its four rotations.
type Md4Round = (fn(u32, u32, u32) -> u32, u32, [usize; 8], [u32; 4]);

/// The three rounds of MD4, cut to eight input words.
const MD4_ROUNDS: [Md4Round; 3] = [
    (
        |x, y, z| z ^ (x & (y ^ z)),
        0,
        [0, 1, 2, 3, 4, 5, 6, 7],
        [3, 7, 11, 19],
    ),
    (
        |x, y, z| (x & y) | (x & z) | (y & z),
        0x5A82_7999,
        [1, 3, 5, 7, 0, 2, 4, 6],
        [3, 5, 9, 13],
    ),
    (
        |x, y, z| x ^ y ^ z,
        0x6ED9_EBA1,
        [3, 7, 2, 6, 1, 5, 0, 4],
        [3, 9, 11, 15],
    ),
];

/// Mixes 32 bytes of name into the state with half MD4.
fn half_md4(state: &mut [u32; 4], input: &[u32; 8]) {
    let mut s = *state;
    for (f, k, order, rotations) in MD4_ROUNDS {
        for (step, &i) in order.iter().enumerate() {
            // The word updated cycles a, d, c, b; the other three, in
            // order after it, are the round function's arguments.
            let t = (4 - step % 4) % 4;
            let mixed = f(s[(t + 1) % 4], s[(t + 2) % 4], s[(t + 3) % 4]);
            s[t] = s[t]
                .wrapping_add(mixed)
                .wrapping_add(input[i])
                .wrapping_add(k)
                .rotate_left(rotations[step % 4]);
        }
    }
    for (word, mixed) in state.iter_mut().zip(s) {
        *word = word.wrapping_add(mixed);
    }
}

/// Mixes 16 bytes of name into the first two state words with 16 cycles of
/// TEA, the name as the key.
fn tea(state: &mut [u32; 4], key: &[u32; 4]) {
    const DELTA: u32 = 0x9E37_79B9;
    const CYCLES: u32 = 16;
    let (mut b0, mut b1) = (state[0], state[1]);
    let mut sum = 0u32;
    for _ in 0..CYCLES {
        sum = sum.wrapping_add(DELTA);
        let mix = |b: u32, k0: u32, k1: u32| {
            (b << 4).wrapping_add(k0) ^ b.wrapping_add(sum) ^ (b >> 5).wrapping_add(k1)
        };
        b0 = b0.wrapping_add(mix(b1, key[0], key[1]));
        b1 = b1.wrapping_add(mix(b0, key[2], key[3]));
    }
    state[0] = state[0].wrapping_add(b0);
    state[1] = state[1].wrapping_add(b1);
}

/// The index key of each leaf: the major hash of its first entry, with the
/// low bit set when the leaf before ends with that same hash. The bit tells a
/// lookup that found nothing in the earlier leaf to read on, so a run of
/// equal hashes may span leaves.
///
/// `majors` are the major hashes of the sorted entries; `starts` the index in
/// `majors` where each leaf begins (the first is 0).
pub(crate) fn leaf_keys(majors: &[u32], starts: impl Iterator<Item = usize>) -> Vec<u32> {
    starts
        .map(|start| {
            let continues = start > 0 && majors[start - 1] == majors[start];
            majors[start] | u32::from(continues)
        })
        .collect()
}

/// Offset of `struct dx_root_info` in the root: after "." and "..".
const ROOT_INFO: usize = 0x18;
/// `dx_root_info.info_length`.
const INFO_LENGTH: u8 = 8;
/// Offset of the root's `limit` and `count` (then its entries).
const ROOT_COUNT_LIMIT: usize = ROOT_INFO + INFO_LENGTH as usize;
/// Offset of a dx_node's `limit` and `count`: after the empty entry header
/// that makes the block look unused to linear readers.
const NODE_COUNT_LIMIT: usize = 0x08;
/// Size of `struct dx_entry` (hash, block). The first entry's hash slot
/// holds `limit` and `count` instead: its hash is implied by the parent.
const DX_ENTRY: usize = 8;
/// Size of `struct dx_tail` (dt_reserved, dt_checksum), after `limit` entries.
const DX_TAIL: usize = 8;
/// Deepest `indirect_levels` (dx_node levels under the root) without
/// large_dir, and with it.
const MAX_LEVELS: [usize; 2] = [1, 2];

/// Checks the index of a hash-indexed directory of `blocks` blocks, as
/// e2fsck's pass 2 does for the structure: the root's info, every node's
/// `limit` (what the block holds) and `count`, hashes ascending within each
/// node and inside its parent's range, child blocks inside the directory
/// and each reached once, and every block of the directory indexed.
/// `read(lblk)` reads the directory's logical block `lblk`. Returns what is
/// wrong first.
pub(crate) fn check_index(
    read: &mut dyn FnMut(u64) -> Result<Vec<u8>, String>,
    blocks: u64,
    csum: bool,
    large_dir: bool,
) -> Result<(), String> {
    let root = read(0)?;
    let info = root
        .get(ROOT_INFO..ROOT_COUNT_LIMIT)
        .ok_or("short root block")?;
    let (reserved, hash_version, info_length, levels) =
        (get_u32(info, 0), info[4], info[5], usize::from(info[6]));
    if reserved != 0 || info_length != INFO_LENGTH || hash_version > TEA {
        return Err(format!(
            "index root info is corrupt (hash version {hash_version}, info length {info_length})"
        ));
    }
    if levels > MAX_LEVELS[usize::from(large_dir)] {
        return Err(format!("index root has {levels} indirect levels"));
    }
    let mut walk = IndexWalk {
        read,
        blocks,
        tail: if csum { DX_TAIL } else { 0 },
        reached: vec![false; usize::try_from(blocks).map_err(|_| "too many blocks")?],
    };
    walk.reached[0] = true;
    walk.node(&root, ROOT_COUNT_LIMIT, levels, 0..u64::from(u32::MAX) + 1)?;
    match walk.reached.iter().position(|&r| !r) {
        Some(lblk) => Err(format!("block {lblk} is not indexed")),
        None => Ok(()),
    }
}

/// A walk of an htree index: what [`check_index`] has reached so far.
struct IndexWalk<'a> {
    read: &'a mut dyn FnMut(u64) -> Result<Vec<u8>, String>,
    blocks: u64,
    tail: usize,
    reached: Vec<bool>,
}

impl IndexWalk<'_> {
    /// Checks the index node `block` whose `limit` and `count` are at `at`,
    /// with `levels` levels of nodes below it, indexing hashes in `range`.
    fn node(
        &mut self,
        block: &[u8],
        at: usize,
        levels: usize,
        range: std::ops::Range<u64>,
    ) -> Result<(), String> {
        let limit = (block.len() - at - self.tail) / DX_ENTRY;
        let (stored_limit, count) = (
            usize::from(get_u16(block, at)),
            usize::from(get_u16(block, at + 2)),
        );
        if stored_limit != limit || count == 0 || count > limit {
            return Err(format!(
                "index node has limit {stored_limit} and count {count} (limit {limit} fits)"
            ));
        }
        let entry = |k: usize| {
            let hash = if k == 0 {
                range.start
            } else {
                u64::from(get_u32(block, at + k * DX_ENTRY))
            };
            (hash, u64::from(get_u32(block, at + k * DX_ENTRY + 4)))
        };
        for k in 0..count {
            let (hash, child) = entry(k);
            let next = if k + 1 < count {
                entry(k + 1).0
            } else {
                range.end
            };
            if hash < range.start || hash > next || next > range.end {
                return Err(format!("index hashes out of order at entry {k}"));
            }
            let reached = usize::try_from(child)
                .ok()
                .filter(|&c| c < self.reached.len())
                .map(|c| std::mem::replace(&mut self.reached[c], true));
            match reached {
                None => {
                    return Err(format!(
                        "index entry points at block {child}, past the directory's {}",
                        self.blocks
                    ))
                }
                Some(true) => return Err(format!("block {child} is indexed twice")),
                Some(false) => {}
            }
            if levels > 0 {
                let child_block = (self.read)(child)?;
                self.node(&child_block, NODE_COUNT_LIMIT, levels - 1, hash..next)?;
            }
        }
        Ok(())
    }
}

/// The directory's leaves do not fit under the deepest index allowed.
#[derive(Debug, thiserror::Error)]
#[error(
    "directory needs {leaves} leaf blocks, more than an htree of {levels} levels indexes ({max}){}",
    if *.large_dir { "" } else { "; large_dir allows one more level" }
)]
pub(crate) struct HtreeFull {
    /// Leaf blocks needed.
    pub(crate) leaves: usize,
    /// Levels allowed, the root included.
    pub(crate) levels: usize,
    /// Most leaves those levels index.
    pub(crate) max: u64,
    /// Whether large_dir was on.
    pub(crate) large_dir: bool,
}

/// The index over a directory's leaves: its limits and the number of
/// dx_node levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Index {
    /// Bytes per block.
    block_size: usize,
    /// Leaf blocks, numbered from 1.
    leaves: usize,
    /// dx_node levels under the root (`indirect_levels`).
    levels: usize,
    /// Entries the root holds.
    root_limit: usize,
    /// Entries a dx_node holds.
    node_limit: usize,
}

impl Index {
    /// Plans the index over `leaves` leaves (at least one): as few levels as
    /// hold them, every node full but the last of its level.
    pub(crate) fn new(
        block_size: u32,
        csum: bool,
        large_dir: bool,
        leaves: usize,
    ) -> Result<Index, HtreeFull> {
        let bs = block_size as usize;
        let tail = if csum { DX_TAIL } else { 0 };
        let root_limit = (bs - ROOT_COUNT_LIMIT - tail) / DX_ENTRY;
        let node_limit = (bs - NODE_COUNT_LIMIT - tail) / DX_ENTRY;
        let max_levels = MAX_LEVELS[usize::from(large_dir)];
        // Leaves indexed by the root over `levels` levels of full dx_nodes.
        let capacity = |levels: usize| root_limit as u64 * (node_limit as u64).pow(levels as u32);
        let mut levels = 0;
        while capacity(levels) < leaves as u64 {
            if levels == max_levels {
                return Err(HtreeFull {
                    leaves,
                    levels: max_levels + 1,
                    max: capacity(levels),
                    large_dir,
                });
            }
            levels += 1;
        }
        Ok(Index {
            block_size: bs,
            leaves,
            levels,
            root_limit,
            node_limit,
        })
    }

    /// Blocks of the whole directory: root, leaves and dx_nodes.
    pub(crate) fn blocks(&self) -> usize {
        let mut nodes = 0;
        let mut width = self.leaves;
        for _ in 0..self.levels {
            width = width.div_ceil(self.node_limit);
            nodes += width;
        }
        1 + self.leaves + nodes
    }

    /// Writes the root and the dx_nodes into `out` (the whole directory,
    /// [`blocks`](Self::blocks) long, leaves already in place). `keys` are the
    /// leaves' [`leaf_keys`]; `csum_seed` is the directory's inode seed with
    /// metadata_csum.
    pub(crate) fn encode(
        &self,
        out: &mut [u8],
        keys: &[u32],
        (ino, parent): (u32, u32),
        hash_version: u8,
        csum_seed: Option<u32>,
    ) {
        let bs = self.block_size;
        assert_eq!(keys.len(), self.leaves, "one key per leaf");
        assert_eq!(out.len(), self.blocks() * bs, "a buffer for every block");
        let leaves: Vec<(u32, u32)> = keys.iter().zip(1..).map(|(&k, b)| (k, b)).collect();
        let mut next = 1 + self.leaves as u32;
        let span = self.node_limit.pow(self.levels as u32);
        let children: Vec<(u32, u32)> = leaves
            .chunks(span)
            .map(|chunk| self.subtree(out, chunk, self.levels, &mut next, csum_seed))
            .collect();
        let root = &mut out[..bs];
        let dot = dir::entry_len(1);
        dir::put_entry(root, 0, ino, dot, b".", ftype::DIR);
        dir::put_entry(root, dot, parent, bs - dot, b"..", ftype::DIR);
        // dx_root_info: reserved_zero and unused_flags stay zero.
        root[ROOT_INFO + 4] = hash_version;
        root[ROOT_INFO + 5] = INFO_LENGTH;
        root[ROOT_INFO + 6] = self.levels as u8;
        put_entries(
            root,
            ROOT_COUNT_LIMIT,
            self.root_limit,
            &children,
            csum_seed,
        );
    }

    /// Writes the nodes above `leaves` up to `height` levels, each before
    /// the ones under it, from block `*next` on; returns the entry for the
    /// parent: the lowest key and the block.
    fn subtree(
        &self,
        out: &mut [u8],
        leaves: &[(u32, u32)],
        height: usize,
        next: &mut u32,
        csum_seed: Option<u32>,
    ) -> (u32, u32) {
        if height == 0 {
            return leaves[0];
        }
        let block = *next;
        *next += 1;
        let span = self.node_limit.pow(height as u32 - 1);
        let children: Vec<(u32, u32)> = leaves
            .chunks(span)
            .map(|chunk| self.subtree(out, chunk, height - 1, next, csum_seed))
            .collect();
        let bs = self.block_size;
        let node = &mut out[block as usize * bs..][..bs];
        // A fake unused entry over the whole block hides the index.
        dir::put_entry(node, 0, 0, bs, b"", 0);
        put_entries(
            node,
            NODE_COUNT_LIMIT,
            self.node_limit,
            &children,
            csum_seed,
        );
        (leaves[0].0, block)
    }
}

/// Writes `limit`, `count` and `entries` (key, block) at `at`, the first
/// entry's key left out, then the dx_tail.
fn put_entries(
    block: &mut [u8],
    at: usize,
    limit: usize,
    entries: &[(u32, u32)],
    csum_seed: Option<u32>,
) {
    assert!(
        (1..=limit).contains(&entries.len()),
        "entries within the limit"
    );
    put_u16(block, at, limit as u16);
    put_u16(block, at + 2, entries.len() as u16);
    for (i, &(key, child)) in entries.iter().enumerate() {
        let e = at + i * DX_ENTRY;
        if i > 0 {
            put_u32(block, e, key);
        }
        put_u32(block, e + 4, child);
    }
    if let Some(seed) = csum_seed {
        let tail = at + limit * DX_ENTRY;
        let csum = dx_tail_checksum(block, at, entries.len(), tail, seed);
        put_u32(block, tail + 4, csum);
    }
}

/// The dx_tail checksum of an index block whose `dx_countlimit` is at `at`
/// with `count` entries in use and the tail at `tail`: CRC32C of the header
/// and the entries in use (not the unused ones), then of the tail with
/// `dt_checksum` zero.
fn dx_tail_checksum(block: &[u8], at: usize, count: usize, tail: usize, seed: u32) -> u32 {
    let csum = crc32c(seed, &block[..at + count * DX_ENTRY]);
    crc32c(crc32c(csum, &block[tail..tail + 4]), &[0; 4])
}

/// Whether an index block read back (the root if `root`, else a dx_node)
/// has the dx_tail checksum [`put_entries`] writes. Malformed counts fail.
pub(crate) fn tail_matches(block: &[u8], root: bool, seed: u32) -> bool {
    let at = if root {
        match block.get(ROOT_INFO + 5) {
            Some(&len) => ROOT_INFO + usize::from(len),
            None => return false,
        }
    } else {
        NODE_COUNT_LIMIT
    };
    if at + 4 > block.len() {
        return false;
    }
    let (limit, count) = (
        usize::from(get_u16(block, at)),
        usize::from(get_u16(block, at + 2)),
    );
    let tail = at + limit * DX_ENTRY;
    count <= limit
        && tail + DX_TAIL <= block.len()
        && get_u32(block, tail + 4) == dx_tail_checksum(block, at, count, tail, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name with a high byte in every third place (100 bytes).
    fn long100() -> Vec<u8> {
        (0..100u32)
            .map(|i| if i % 3 == 0 { 0x80 + i * 5 % 0x7F } else { u32::from(b'a') + i % 26 } as u8)
            .collect()
    }

    /// A name of the longest length, all high bytes.
    fn long255() -> Vec<u8> {
        (0..255u32).map(|i| (0x80 + i % 0x7F) as u8).collect()
    }

    #[test]
    fn hashes_match_debugfs() {
        // For each name, (major, minor) for hash versions 0 to 5 (legacy,
        // half_md4, tea, then their unsigned variants) with the default seed,
        // then the same with seed c8815ac1-5e2d-4d90-a905-0708eea48e1a:
        // debugfs -R "dx_hash -h VERSION [-s SEED] NAME" any.img (e2fsprogs 1.47.0).
        #[rustfmt::skip]
        let table: [(&[u8], [u32; 24]); 13] = [
            (b"a", [0xe74b53e2, 0, 0xd5fa7d7a, 0xacb48187, 0x6d0ea4c0, 0xc18922df, 0xe74b53e2, 0, 0xd5fa7d7a, 0xacb48187, 0x6d0ea4c0, 0xc18922df,
                0xe74b53e2, 0, 0xb552ae18, 0xf7ae16e5, 0xfdc8f466, 0x96c53d04, 0xe74b53e2, 0, 0xb552ae18, 0xf7ae16e5, 0xfdc8f466, 0x96c53d04]),
            (b"lost+found", [0x5e2aba24, 0, 0x591de422, 0x6ffc56e0, 0x2dbf9e80, 0xbfebee4f, 0x5e2aba24, 0, 0x591de422, 0x6ffc56e0, 0x2dbf9e80, 0xbfebee4f,
                0x5e2aba24, 0, 0x9e2e0934, 0x9d9f55a6, 0x5079bf2a, 0x34eff7f0, 0x5e2aba24, 0, 0x9e2e0934, 0x9d9f55a6, 0x5079bf2a, 0x34eff7f0]),
            (b"file-0001", [0xcf640778, 0, 0xeeba29b4, 0xf56ddffa, 0x48bcc236, 0xdb3012af, 0xcf640778, 0, 0xeeba29b4, 0xf56ddffa, 0x48bcc236, 0xdb3012af,
                0xcf640778, 0, 0x8c15bce0, 0x56f23158, 0xdb6c23a4, 0xfbda0734, 0xcf640778, 0, 0x8c15bce0, 0x56f23158, 0xdb6c23a4, 0xfbda0734]),
            ("héllo".as_bytes(), [0x239928cc, 0, 0x98e030c8, 0xe189ee6e, 0x313ecf7e, 0xedbe6b7e, 0x7798acd8, 0, 0xa5c67250, 0x6cd261bb, 0x7472d1be, 0x99e4e95b,
                0x239928cc, 0, 0x875537e6, 0x09874cc0, 0x4471333a, 0x8f206bc8, 0x7798acd8, 0, 0x46781264, 0xf5c5428e, 0x7b517020, 0xb878235d]),
            (b"\x80\xff\xfe\x81", [0xbb1123b8, 0, 0xc01e7104, 0xd319079d, 0xe983b130, 0x93414add, 0xfdd5b5c0, 0, 0xcc522ffe, 0xf01583bd, 0xb9f44c98, 0xcdac1d4c,
                0xbb1123b8, 0, 0x332b7722, 0xb9b6d0e9, 0x8e43872c, 0x5e49b53f, 0xfdd5b5c0, 0, 0xa182b8e2, 0x402fa862, 0x33dc8b4a, 0xf6ba5dfc]),
            (b"caf\xe9-\xc0\xff\xee", [0xf681fa94, 0, 0xa91fab92, 0xae2bd84c, 0x048c14f0, 0x226fe232, 0x671264ca, 0, 0xc3b39a8c, 0x99010137, 0xbca9eda6, 0x8a9ed93b,
                0xf681fa94, 0, 0xa8c535d8, 0x4cac894e, 0x54da5cd4, 0x0461c9c0, 0x671264ca, 0, 0x9c553ab8, 0xcd280b21, 0x2e0e0bda, 0x3a8f5077]),
            (b"0123456789abcdef", [0x415c16fe, 0, 0x8cb502b6, 0x5acf4f33, 0x5a0788b2, 0xefa4e711, 0x415c16fe, 0, 0x8cb502b6, 0x5acf4f33, 0x5a0788b2, 0xefa4e711,
                0x415c16fe, 0, 0xe71ce2fa, 0x21473587, 0xaa77f05e, 0x57ddadb8, 0x415c16fe, 0, 0xe71ce2fa, 0x21473587, 0xaa77f05e, 0x57ddadb8]),
            (b"0123456789abcdef\xf0", [0x96aeea2e, 0, 0x06515950, 0x4ac03eb8, 0x3d2958d4, 0xf24aafd0, 0x71a4d030, 0, 0x36373c32, 0xc8f6e182, 0x17a997ae, 0xdb705b82,
                0x96aeea2e, 0, 0x66b6922e, 0x44e53279, 0x1ebb3230, 0x1a4fd97c, 0x71a4d030, 0, 0x716833c2, 0x89364ffd, 0xc136b6d6, 0x7373aba3]),
            (&[0xAA; 31], [0xf48a6b48, 0, 0xd5302828, 0x874898f7, 0x80a4ae50, 0x11725a9d, 0x203b4cba, 0, 0x7c313ee8, 0xbedb86f6, 0x62b4deae, 0xcdd44216,
                0xf48a6b48, 0, 0x71645474, 0x75ea8aab, 0x834101a8, 0x4715bb57, 0x203b4cba, 0, 0x69877614, 0xf49b2b73, 0xc97b9d00, 0x1cf4d157]),
            (b"n\xe4me-of-32-bytes-exactly-\xfc\xdf\xf6\xe9\xe8", [0xd3206c68, 0, 0x86318918, 0xd656c3dc, 0x097fd9c2, 0x820b2128, 0x42c53c06, 0, 0x1ae31120, 0x33f90973, 0xbe7fb56c, 0xb16d6592,
                0xd3206c68, 0, 0x24d97ee0, 0x70bde906, 0x3c544078, 0x0b0fa1bf, 0x42c53c06, 0, 0xab291a52, 0xd90d3552, 0xfba52140, 0x1222148c]),
            (b"abcdefghijklmnopqrstuvwxyz01234567", [0x6d3b2db4, 0, 0x35f89fd4, 0x988cdfab, 0xaede388e, 0xbfecc633, 0x6d3b2db4, 0, 0x35f89fd4, 0x988cdfab, 0xaede388e, 0xbfecc633,
                0x6d3b2db4, 0, 0x17efc9c4, 0xe50e70e0, 0x27311b84, 0xcac7e628, 0x6d3b2db4, 0, 0x17efc9c4, 0xe50e70e0, 0x27311b84, 0xcac7e628]),
            (&long100(), [0x8e913906, 0, 0x2c475fe2, 0xb63c2922, 0xfa0c7e5c, 0x24db2bb1, 0xfb0d2eee, 0, 0xa5240d2c, 0xdf4f52fe, 0x85ee3472, 0x31dc2bb9,
                0x8e913906, 0, 0xb6b36042, 0x02225395, 0xb1f75404, 0x2e42cae5, 0xfb0d2eee, 0, 0x3b1ff3f4, 0x5e941c2c, 0x74a2ddd0, 0x5756c1f8]),
            (&long255(), [0xaac77f78, 0, 0x8129326a, 0xfd65b166, 0x4b9b956c, 0x12985923, 0xb597456c, 0, 0x2edc367c, 0x9b044c6d, 0x9bcbe30e, 0x19377a04,
                0xaac77f78, 0, 0x5ecc3d28, 0x51ad21ca, 0x2eaf0b08, 0x6bde1d04, 0xb597456c, 0, 0x2b8dae2e, 0x97b611ea, 0x385f4a4c, 0x5c9f4a9d]),
        ];
        // The seed's bytes c8 81 5a c1 | 5e 2d 4d 90 | ... as little-endian words.
        let seed = [0xC15A_81C8, 0x904D_2D5E, 0x0807_05A9, 0x1A8E_A4EE];
        for (name, expected) in table {
            for (i, want) in expected.chunks(2).enumerate() {
                let params = HtreeParams {
                    hash_version: (i % 3) as u8,
                    unsigned: i % 6 >= 3,
                    seed: if i < 6 { [0; 4] } else { seed },
                    large_dir: false,
                };
                let got = params.hash(name);
                assert_eq!(
                    (got.major, got.minor),
                    (want[0], want[1]),
                    "{name:x?} with {params:x?}"
                );
            }
        }
    }

    #[test]
    fn major_avoids_the_eof_value() {
        assert_eq!(major_key(0xFFFF_FFFF), 0xFFFF_FFFC);
        assert_eq!(major_key(0xFFFF_FFFE), 0xFFFF_FFFC);
        assert_eq!(major_key(0xFFFF_FFFD), 0xFFFF_FFFC);
        assert_eq!(major_key(0x1234_5679), 0x1234_5678);
    }

    #[test]
    fn keys_mark_runs_that_continue() {
        let majors = [2, 4, 4, 4, 8, 10];
        // Leaves [2, 4] [4, 4] [8] [10]: the second continues the run of 4.
        assert_eq!(leaf_keys(&majors, [0, 2, 4, 5].into_iter()), [2, 5, 8, 10]);
        // Leaves [2] [4, 4, 4, 8] [10]: no run crosses a boundary.
        assert_eq!(leaf_keys(&majors, [0, 1, 5].into_iter()), [2, 4, 10]);
    }

    #[test]
    fn limits_and_levels() {
        // The kernel's dx_root_limit / dx_node_limit.
        for (bs, csum, root, node) in [
            (1024, false, 124, 127),
            (4096, false, 508, 511),
            (4096, true, 507, 510),
            (1024, true, 123, 126),
        ] {
            let i = Index::new(bs, csum, false, 1).unwrap();
            assert_eq!((i.root_limit, i.node_limit, i.levels), (root, node, 0));
        }
        let one = |leaves| Index::new(1024, false, false, leaves);
        assert_eq!(one(124).unwrap().blocks(), 125);
        let two = one(125).unwrap();
        assert_eq!((two.levels, two.blocks()), (1, 1 + 125 + 1));
        assert_eq!(one(124 * 127).unwrap().blocks(), 1 + 124 * 127 + 124);
        let err = one(124 * 127 + 1).unwrap_err();
        assert_eq!(err.max, 124 * 127);
        assert!(err.to_string().contains("large_dir"), "{err}");
        let three = Index::new(1024, false, true, 124 * 127 + 1).unwrap();
        assert_eq!(
            (three.levels, three.blocks()),
            (2, 1 + (124 * 127 + 1) + 125 + 1)
        );
        assert!(Index::new(1024, false, true, 124 * 127 * 127 + 1).is_err());
    }

    /// The (key, block) entries of the index block at `at`, with its limit.
    fn entries(block: &[u8], at: usize) -> (usize, Vec<(u32, u32)>) {
        let count = get_u16(block, at + 2) as usize;
        let list = (0..count)
            .map(|i| {
                let e = at + i * DX_ENTRY;
                (
                    if i == 0 { 0 } else { get_u32(block, e) },
                    get_u32(block, e + 4),
                )
            })
            .collect();
        (get_u16(block, at) as usize, list)
    }

    #[test]
    fn three_levels_in_preorder() {
        // 1 KiB blocks with checksums: root 123, nodes 126 entries. One leaf
        // more than a middle node covers makes two middle nodes.
        let leaves = 126 * 126 + 1;
        let index = Index::new(1024, true, true, leaves).unwrap();
        assert_eq!(index.blocks(), 1 + leaves + 127 + 2);
        let keys: Vec<u32> = (0..leaves as u32).map(|i| i * 2).collect();
        let mut out = vec![0u8; index.blocks() * 1024];
        index.encode(&mut out, &keys, (12, 2), HALF_MD4, Some(0x1234));
        let block = |b: u32| &out[b as usize * 1024..][..1024];
        let root = block(0);
        assert_eq!(get_u16(root, 12 + 4), 1024 - 12);
        assert_eq!(root[ROOT_INFO + 4..ROOT_INFO + 8], [HALF_MD4, 8, 2, 0]);
        // Each node right before the nodes under it, as e2fsck -D writes them.
        let first = 1 + leaves as u32;
        let second = first + 1 + 126;
        let (limit, top) = entries(root, ROOT_COUNT_LIMIT);
        assert_eq!(
            (limit, top),
            (123, vec![(0, first), (keys[126 * 126], second)])
        );
        let (limit, mid) = entries(block(first), NODE_COUNT_LIMIT);
        assert_eq!(
            (limit, mid.len(), mid[1]),
            (126, 126, (keys[126], first + 2))
        );
        assert_eq!(
            (get_u32(block(first), 0), get_u16(block(first), 4)),
            (0, 1024)
        );
        let (_, bottom) = entries(block(first + 1), NODE_COUNT_LIMIT);
        assert_eq!((bottom.len(), bottom[125]), (126, (keys[125], 126)));
        assert_eq!(
            entries(block(second), NODE_COUNT_LIMIT).1,
            [(0, second + 1)]
        );
        assert_eq!(
            entries(block(second + 1), NODE_COUNT_LIMIT).1,
            [(0, leaves as u32)]
        );
    }

    #[test]
    fn tail_checksum_covers_entries_in_use_and_tail() {
        let index = Index::new(1024, true, false, 3).unwrap();
        let mut out = vec![0u8; 4 * 1024];
        index.encode(&mut out, &[0, 10, 20], (12, 2), TEA, Some(7));
        let root = &out[..1024];
        let tail = ROOT_COUNT_LIMIT + 123 * DX_ENTRY;
        assert_eq!(tail, 1024 - DX_TAIL);
        let want = crc32c(crc32c(7, &root[..ROOT_COUNT_LIMIT + 3 * DX_ENTRY]), &[0; 8]);
        assert_eq!(get_u32(root, tail + 4), want);
    }
}
