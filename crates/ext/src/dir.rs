//! Directory blocks (`struct ext4_dir_entry_2`), linear or as the leaves of
//! a hash index ([`htree`](crate::htree)), with the `ext4_dir_entry_tail`
//! checksum of metadata_csum.
//!
//! Entries are packed in order, each 8 bytes of header plus the name padded to
//! 4 bytes; an entry that does not fit starts the next block, and the last
//! entry of each block stretches its `rec_len` to the end of the block (or to
//! the checksum tail). A directory that needs more than one block is indexed
//! when the filesystem has dir_index, as the kernel would have indexed it:
//! its entries then go in hash order into leaves under an index root.

use std::ops::Range;

use crate::checksum::{crc32c, inode_seed};
use crate::htree::{self, HtreeFull, HtreeParams, Index};
use crate::le::{get_u16, get_u32, put_u16, put_u32};

/// `file_type` codes of directory entries (the filetype feature).
pub(crate) mod ftype {
    /// Regular file.
    pub(crate) const REG: u8 = 1;
    /// Directory.
    pub(crate) const DIR: u8 = 2;
    /// Character device.
    pub(crate) const CHR: u8 = 3;
    /// Block device.
    pub(crate) const BLK: u8 = 4;
    /// Named pipe.
    pub(crate) const FIFO: u8 = 5;
    /// Socket.
    pub(crate) const SOCK: u8 = 6;
    /// Symbolic link.
    pub(crate) const SYMLINK: u8 = 7;
}

/// Size of the fixed part of an entry (inode, rec_len, name_len, file_type).
const HEADER: usize = 8;
/// Size of `struct ext4_dir_entry_tail`: an unused entry closing each block
/// under metadata_csum, its checksum where a name would be.
const TAIL: usize = 12;
/// `det_reserved_ft`: the file type that marks the tail.
const TAIL_FT: u8 = 0xDE;

/// One directory entry to write.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DirEntry<'a> {
    /// The inode the name links to.
    pub(crate) ino: u32,
    /// One of [`ftype`].
    pub(crate) file_type: u8,
    /// The name: 1 to 255 bytes, no `/` or NUL.
    pub(crate) name: &'a [u8],
}

/// How directories are written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DirFormat {
    /// Bytes per block (at most 4 KiB: every `rec_len` fits 16 bits).
    pub(crate) block_size: u32,
    /// The filesystem's checksum seed, with metadata_csum.
    pub(crate) csum_seed: Option<u32>,
    /// How names hash, with dir_index.
    pub(crate) htree: Option<HtreeParams>,
    /// Whether entries record the file type (the filetype feature); without
    /// it the byte is the high half of the name length and must be 0.
    pub(crate) filetype: bool,
}

/// The blocks a directory takes, and whether it is indexed (the caller then
/// sets [`htree::INDEX_FL`] in the inode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DirShape {
    /// Blocks of the directory (before any lost+found padding).
    pub(crate) blocks: u32,
    /// Whether block 0 is an index root.
    pub(crate) indexed: bool,
}

impl DirFormat {
    /// The shape of a directory whose children have these names ("." and
    /// ".." not included), before any inode number is known. A directory is
    /// never indexed when `allow_index` is false (lost+found, which mke2fs
    /// makes linear). Fails when the index would need more levels than the
    /// filesystem allows.
    pub(crate) fn shape<'a>(
        &self,
        names: impl Iterator<Item = &'a [u8]> + Clone,
        allow_index: bool,
    ) -> Result<DirShape, HtreeFull> {
        let linear = split(
            dot_lens().chain(names.clone().map(<[u8]>::len)),
            self.room(),
        )
        .len();
        let Some(params) = self.index_params(linear, allow_index) else {
            return Ok(DirShape {
                blocks: linear as u32,
                indexed: false,
            });
        };
        let mut sorted: Vec<(htree::Hash, &[u8])> = names.map(|n| (params.hash(n), n)).collect();
        sorted.sort_unstable();
        let leaves = split(sorted.iter().map(|(_, n)| n.len()), self.room());
        let index = self.index(params, leaves.len())?;
        Ok(DirShape {
            blocks: index.blocks() as u32,
            indexed: true,
        })
    }

    /// Encodes the directory `ino` (generation `generation`, under `parent`)
    /// holding `entries` besides "." and "..", into the blocks
    /// [`shape`](Self::shape) gave for the same names and `allow_index`. A
    /// linear directory is padded with empty blocks to `min_blocks` (an
    /// indexed one cannot be: e2fsck rejects blocks its index does not
    /// reference).
    ///
    /// Panics if `shape` would have failed: the plan checks every directory.
    pub(crate) fn encode(
        &self,
        ino: u32,
        generation: u32,
        parent: u32,
        entries: &[DirEntry<'_>],
        min_blocks: u32,
        allow_index: bool,
    ) -> Vec<u8> {
        let seed = self.csum_seed.map(|s| inode_seed(s, ino, generation));
        let dots = [
            DirEntry {
                ino,
                file_type: self.dot_type(),
                name: b".",
            },
            DirEntry {
                ino: parent,
                file_type: self.dot_type(),
                name: b"..",
            },
        ];
        let all: Vec<DirEntry<'_>> = dots.iter().chain(entries).copied().collect();
        let room = self.room();
        let blocks = split(all.iter().map(|e| e.name.len()), room);
        match self.index_params(blocks.len(), allow_index) {
            Some(params) => self.encode_indexed(params, (ino, parent), entries, seed),
            None => {
                let count = blocks.len().max(min_blocks as usize);
                let mut out = vec![0u8; count * self.block_size as usize];
                self.write_blocks(&mut out, &all, &blocks, seed);
                out
            }
        }
    }

    /// Bytes of each block entries may use: all of it but the checksum tail.
    /// The file type of "." and "..".
    fn dot_type(&self) -> u8 {
        if self.filetype {
            ftype::DIR
        } else {
            0
        }
    }

    fn room(&self) -> usize {
        let bs = self.block_size as usize;
        if self.csum_seed.is_some() {
            bs - TAIL
        } else {
            bs
        }
    }

    /// The hash parameters if a directory whose linear form takes
    /// `linear_blocks` blocks is indexed: when it outgrows one block, as the
    /// kernel indexes a directory.
    fn index_params(&self, linear_blocks: usize, allow_index: bool) -> Option<&HtreeParams> {
        self.htree
            .as_ref()
            .filter(|_| allow_index && linear_blocks > 1)
    }

    /// The index over `leaves` leaves.
    fn index(&self, params: &HtreeParams, leaves: usize) -> Result<Index, HtreeFull> {
        Index::new(
            self.block_size,
            self.csum_seed.is_some(),
            params.large_dir,
            leaves,
        )
    }

    /// The indexed directory: root, leaves in hash order, dx_nodes.
    fn encode_indexed(
        &self,
        params: &HtreeParams,
        ino_parent: (u32, u32),
        entries: &[DirEntry<'_>],
        seed: Option<u32>,
    ) -> Vec<u8> {
        let mut sorted: Vec<(htree::Hash, DirEntry<'_>)> =
            entries.iter().map(|e| (params.hash(e.name), *e)).collect();
        // Names are unique, so the order is total (and matches shape's).
        sorted.sort_unstable_by(|a, b| (a.0, a.1.name).cmp(&(b.0, b.1.name)));
        let leaves = split(sorted.iter().map(|(_, e)| e.name.len()), self.room());
        let index = self
            .index(params, leaves.len())
            .expect("the plan checked that the directory fits an htree");
        let bs = self.block_size as usize;
        let mut out = vec![0u8; index.blocks() * bs];
        let sorted_entries: Vec<DirEntry<'_>> = sorted.iter().map(|(_, e)| *e).collect();
        let leaf_blocks = &mut out[bs..(1 + leaves.len()) * bs];
        self.write_blocks(leaf_blocks, &sorted_entries, &leaves, seed);
        let majors: Vec<u32> = sorted.iter().map(|(h, _)| h.major).collect();
        let keys = htree::leaf_keys(&majors, leaves.iter().map(|r| r.start));
        index.encode(&mut out, &keys, ino_parent, params.hash_version, seed);
        out
    }

    /// Writes `entries`, block `i` holding `blocks[i]` of them, into the
    /// first blocks of `out`; the rest of `out` gets empty blocks. With a
    /// checksum seed every block gets its tail.
    fn write_blocks(
        &self,
        out: &mut [u8],
        entries: &[DirEntry<'_>],
        blocks: &[Range<usize>],
        seed: Option<u32>,
    ) {
        let bs = self.block_size as usize;
        for (i, block) in out.chunks_exact_mut(bs).enumerate() {
            let these = blocks.get(i).map_or(&[][..], |r| &entries[r.clone()]);
            write_block(block, these, self.room());
            if let Some(seed) = seed {
                put_tail(block, seed);
            }
        }
    }
}

/// Name lengths of "." and "..".
fn dot_lens() -> impl Iterator<Item = usize> + Clone {
    [1, 2].into_iter()
}

/// Bytes an entry with a name of `name_len` bytes takes.
pub(crate) fn entry_len(name_len: usize) -> usize {
    (HEADER + name_len).next_multiple_of(4)
}

/// Writes one entry's header and name at `pos`.
pub(crate) fn put_entry(
    buf: &mut [u8],
    pos: usize,
    ino: u32,
    rec_len: usize,
    name: &[u8],
    file_type: u8,
) {
    put_u32(buf, pos, ino);
    put_u16(buf, pos + 4, rec_len as u16);
    buf[pos + 6] = name.len() as u8;
    buf[pos + 7] = file_type;
    buf[pos + HEADER..pos + HEADER + name.len()].copy_from_slice(name);
}

/// Packs entries (by name length) greedily into blocks of `room` bytes;
/// returns the range of entries in each block.
fn split(name_lens: impl Iterator<Item = usize>, room: usize) -> Vec<Range<usize>> {
    let mut blocks: Vec<Range<usize>> = Vec::new();
    let mut used = 0;
    for (i, len) in name_lens.enumerate() {
        let len = entry_len(len);
        match blocks.last_mut() {
            Some(last) if used + len <= room => last.end = i + 1,
            _ => {
                blocks.push(i..i + 1);
                used = 0;
            }
        }
        used += len;
    }
    blocks
}

/// Writes `entries` into the first `room` bytes of `block`, the last one
/// stretched to `room`; no entries leaves one unused entry spanning it.
fn write_block(block: &mut [u8], entries: &[DirEntry<'_>], room: usize) {
    let mut pos = 0;
    for (i, e) in entries.iter().enumerate() {
        let len = entry_len(e.name.len());
        let rec_len = if i + 1 == entries.len() {
            room - pos
        } else {
            len
        };
        put_entry(block, pos, e.ino, rec_len, e.name, e.file_type);
        pos += len;
    }
    if entries.is_empty() {
        put_u16(block, 4, room as u16);
    }
}

/// Writes the checksum tail at the end of `block`: the CRC of everything
/// before it, from the directory's inode seed.
fn put_tail(block: &mut [u8], seed: u32) {
    let at = block.len() - TAIL;
    // det_reserved_zero1 (inode) and det_reserved_zero2 (name_len) stay zero.
    put_u16(block, at + 4, TAIL as u16);
    block[at + 7] = TAIL_FT;
    let csum = crc32c(seed, &block[..at]);
    put_u32(block, at + 8, csum);
}

/// One directory entry read back from an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntryView {
    /// The inode the name links to.
    pub ino: u32,
    /// The `file_type` byte (0 without the filetype feature).
    pub file_type: u8,
    /// The name, raw bytes.
    pub name: Vec<u8>,
}

/// Decodes the entries of a directory block, or of an inline area, skipping
/// unused ones (inode 0: free space, hash-index nodes, checksum tails).
/// Without the filetype feature the type byte is the name length's high
/// half. Refuses entries that overrun the area or their own record.
pub(crate) fn decode_entries(area: &[u8], filetype: bool) -> Result<Vec<DirEntryView>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + HEADER <= area.len() {
        let ino = get_u32(area, pos);
        let rec_len = usize::from(get_u16(area, pos + 4));
        let (name_len, file_type) = if filetype {
            (usize::from(area[pos + 6]), area[pos + 7])
        } else {
            (usize::from(get_u16(area, pos + 6)), 0)
        };
        if rec_len < HEADER || rec_len % 4 != 0 || pos + rec_len > area.len() {
            return Err(format!("entry at byte {pos} has record length {rec_len}"));
        }
        if ino != 0 {
            if HEADER + name_len > rec_len || name_len == 0 {
                return Err(format!("entry at byte {pos} has name length {name_len}"));
            }
            let name = area[pos + HEADER..pos + HEADER + name_len].to_vec();
            out.push(DirEntryView {
                ino,
                file_type,
                name,
            });
        }
        pos += rec_len;
    }
    Ok(out)
}

/// Whether block `lblk` of a directory read back has the checksum the
/// writer gives it: a dx_tail on the root and the index nodes of an
/// indexed directory, else a leaf's checksum tail.
pub(crate) fn block_checksum_matches(block: &[u8], lblk: u64, indexed: bool, seed: u32) -> bool {
    let bs = block.len() as u64;
    let is_node = get_u32(block, 0) == 0 && u64::from(get_u16(block, 4)) == bs;
    if indexed && (lblk == 0 || is_node) {
        crate::htree::tail_matches(block, lblk == 0, seed)
    } else {
        tail_matches(block, seed)
    }
}

/// Whether a leaf block's checksum tail holds the CRC32C of the entries
/// from the directory's inode seed.
fn tail_matches(block: &[u8], inode_seed: u32) -> bool {
    let at = block.len() - TAIL;
    block[at + 7] == TAIL_FT && get_u32(block, at + 8) == crc32c(inode_seed, &block[..at])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The UUID and hash seed of the e2fsprogs-made test images:
    /// `mke2fs -U 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 -E hash_seed=11223344-5566-7788-99aa-bbccddeeff00`.
    const UUID: [u8; 16] = [
        0x0F, 0x1E, 0x2D, 0x3C, 0x4B, 0x5A, 0x69, 0x78, 0x87, 0x96, 0xA5, 0xB4, 0xC3, 0xD2, 0xE1,
        0xF0,
    ];
    const HASH_SEED: [u32; 4] = [0x4433_2211, 0x8877_6655, 0xCCBB_AA99, 0x00FF_EEDD];

    /// The standard CRC-32C of a whole directory, to compare with
    /// `debugfs -R "cat DIR" img | crc32c`.
    fn digest(bytes: &[u8]) -> u32 {
        !crc32c(!0, bytes)
    }

    fn format(block_size: u32, csum: bool, hash_version: u8, unsigned: bool) -> DirFormat {
        DirFormat {
            block_size,
            csum_seed: csum.then(|| crate::checksum::fs_seed(&UUID)),
            htree: Some(HtreeParams {
                hash_version,
                unsigned,
                seed: HASH_SEED,
                large_dir: false,
            }),
            filetype: true,
        }
    }

    /// `count` hard links to inode 13, named by `name`.
    fn links(count: u32, name: impl Fn(u32) -> Vec<u8>) -> Vec<Vec<u8>> {
        (0..count).map(name).collect()
    }

    fn entries(names: &[Vec<u8>]) -> Vec<DirEntry<'_>> {
        names
            .iter()
            .map(|n| DirEntry {
                ino: 13,
                file_type: ftype::REG,
                name: n,
            })
            .collect()
    }

    #[test]
    fn root_and_lost_found_match_mke2fs() {
        // mke2fs -t ext4 -b 1024 -U <UUID> img 8M, then
        // debugfs -R "cat /" img and debugfs -R "cat /lost+found" img.
        let fmt = format(1024, true, htree::HALF_MD4, false);
        let lost_found = DirEntry {
            ino: 11,
            file_type: ftype::DIR,
            name: b"lost+found",
        };
        let root = fmt.encode(2, 0, 2, &[lost_found], 0, true);
        assert_eq!((root.len(), digest(&root)), (1024, 0x9089_5F2D));
        let lf = fmt.encode(11, 0, 2, &[], 12, false);
        assert_eq!((lf.len(), digest(&lf)), (12 * 1024, 0x6F89_A0C2));
    }

    #[test]
    fn indexed_matches_e2fsck_rebuild() {
        // Directory inode 12 under the root, its entries hard links to inode
        // 13 made through a loop mount, then rebuilt by e2fsck -fD with
        // `indexed_dir_slack_percentage = 0` (full leaves, like kiln's) and
        // read with debugfs -R "cat /d".
        // ext4, 1 KiB blocks, metadata_csum, half_md4: two levels.
        let fmt = format(1024, true, htree::HALF_MD4, false);
        let names = links(20_000, |i| format!("file-{i:05}").into_bytes());
        let shape = fmt.shape(names.iter().map(|n| &n[..]), true).unwrap();
        assert_eq!(
            shape,
            DirShape {
                blocks: 405,
                indexed: true
            }
        );
        let out = fmt.encode(12, 3_108_538_703, 2, &entries(&names), 0, true);
        assert_eq!((out.len(), digest(&out)), (405 * 1024, 0x370C_266B));
        // ext3, 4 KiB blocks, tea with unsigned chars, names with high bytes.
        let fmt = DirFormat {
            csum_seed: None,
            ..format(4096, false, htree::TEA, true)
        };
        let names = links(3000, |i| {
            [format!("n{i}").as_bytes(), &[0xE9; 5][..i as usize % 5]].concat()
        });
        let out = fmt.encode(12, 42_627_660, 2, &entries(&names), 0, true);
        assert_eq!((out.len(), digest(&out)), (13 * 4096, 0x0F40_DFED));
    }

    #[test]
    fn shape_agrees_with_encode() {
        let names = links(400, |i| {
            vec![b'a' + (i % 26) as u8; 1 + i as usize % 60]
                .into_iter()
                .chain(i.to_le_bytes())
                .collect()
        });
        for bs in [1024, 2048, 4096] {
            for csum in [false, true] {
                for count in [0, 1, 30, 31, 60, 100, 400] {
                    for allow_index in [false, true] {
                        let fmt = format(bs, csum, htree::HALF_MD4, false);
                        let names = &names[..count];
                        let shape = fmt
                            .shape(names.iter().map(|n| &n[..]), allow_index)
                            .unwrap();
                        let out = fmt.encode(12, 1, 2, &entries(names), 0, allow_index);
                        assert_eq!(out.len(), shape.blocks as usize * bs as usize);
                        assert_eq!(shape.indexed, allow_index && shape.blocks > 1);
                        assert_eq!(&out[8..10], b".\0");
                    }
                }
            }
        }
    }

    #[test]
    fn index_depth_is_limited_without_large_dir() {
        // 1 KiB leaves hold three 255-byte names; two levels index 124 * 127
        // leaves.
        let names = links(124 * 127 * 3 + 1, |i| {
            let mut n = vec![b'x'; 255];
            n[..4].copy_from_slice(&i.to_le_bytes());
            n
        });
        let mut fmt = DirFormat {
            csum_seed: None,
            ..format(1024, false, htree::TEA, false)
        };
        let err = fmt.shape(names.iter().map(|n| &n[..]), true).unwrap_err();
        assert_eq!((err.leaves, err.max), (124 * 127 + 1, 124 * 127));
        fmt.htree.as_mut().unwrap().large_dir = true;
        assert!(
            fmt.shape(names.iter().map(|n| &n[..]), true)
                .unwrap()
                .indexed
        );
        assert!(
            !fmt.shape(names.iter().map(|n| &n[..]), false)
                .unwrap()
                .indexed
        );
    }

    #[test]
    fn entries_fill_blocks_and_stretch() {
        let names: Vec<Vec<u8>> = (0..100)
            .map(|i| format!("file-{i:04}").into_bytes())
            .collect();
        let entries: Vec<_> = names
            .iter()
            .map(|n| DirEntry {
                ino: 12,
                file_type: ftype::REG,
                name: n,
            })
            .collect();
        let fmt = DirFormat {
            block_size: 1024,
            csum_seed: None,
            htree: None,
            filetype: true,
        };
        // 9-byte names take 20 bytes: after "." and ".." (12 each), 50 fit a
        // 1 KiB block.
        let shape = fmt.shape(names.iter().map(|n| &n[..]), true).unwrap();
        assert_eq!(
            shape,
            DirShape {
                blocks: 2,
                indexed: false
            }
        );
        let out = fmt.encode(12, 0, 2, &entries, 3, true);
        // Walk each block by rec_len: it must end exactly at the block end.
        for b in 0..3 {
            let mut pos = b * 1024;
            let mut n = 0;
            while pos < (b + 1) * 1024 {
                let rec = get_u16(&out, pos + 4) as usize;
                assert!(rec >= 8);
                if get_u32(&out, pos) != 0 {
                    n += 1;
                }
                pos += rec;
            }
            assert_eq!(pos, (b + 1) * 1024);
            assert_eq!(n, [52, 50, 0][b]);
        }
    }
}
