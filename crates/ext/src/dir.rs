//! Linear directory blocks (`struct ext4_dir_entry_2`).
//!
//! Entries are packed in order, each 8 bytes of header plus the name padded to
//! 4 bytes; an entry that does not fit starts the next block, and the last
//! entry of each block stretches its `rec_len` to the end of the block.

use crate::le::{put_u16, put_u32};

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

/// One directory entry to write.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DirEntry<'a> {
    pub(crate) ino: u32,
    pub(crate) file_type: u8,
    pub(crate) name: &'a [u8],
}

/// Bytes an entry with a name of `name_len` bytes takes.
fn entry_len(name_len: usize) -> usize {
    (HEADER + name_len).next_multiple_of(4)
}

/// Assigns each entry (given by its name length) a block index, packing
/// greedily; returns the block index of every entry.
fn place(name_lens: impl Iterator<Item = usize>, block_size: usize) -> impl Iterator<Item = usize> {
    let mut block = 0;
    let mut used = 0;
    name_lens.map(move |len| {
        let len = entry_len(len);
        if used + len > block_size {
            block += 1;
            used = 0;
        }
        used += len;
        block
    })
}

/// Number of blocks the entries (by name length) fill.
pub(crate) fn block_count(name_lens: impl Iterator<Item = usize>, block_size: u32) -> u32 {
    place(name_lens, block_size as usize)
        .last()
        .map_or(0, |b| b as u32 + 1)
}

/// Encodes the entries into `blocks` blocks (`blocks` is at least what
/// [`block_count`] says; extra blocks hold one empty entry each).
pub(crate) fn encode(entries: &[DirEntry<'_>], block_size: u32, blocks: u32) -> Vec<u8> {
    let bs = block_size as usize;
    let mut out = vec![0u8; bs * blocks as usize];
    let blocks_of = place(entries.iter().map(|e| e.name.len()), bs);
    // (offset of the previous entry, its block) to stretch the last of a block.
    let mut last: Option<(usize, usize)> = None;
    let mut pos = 0;
    for (entry, block) in entries.iter().zip(blocks_of) {
        if let Some((prev, prev_block)) = last {
            if prev_block != block {
                stretch(&mut out, prev, bs);
                pos = block * bs;
            }
        }
        let len = entry_len(entry.name.len());
        put_u32(&mut out, pos, entry.ino);
        put_u16(&mut out, pos + 4, len as u16);
        out[pos + 6] = entry.name.len() as u8;
        out[pos + 7] = entry.file_type;
        out[pos + HEADER..pos + HEADER + entry.name.len()].copy_from_slice(entry.name);
        last = Some((pos, block));
        pos += len;
    }
    let used_blocks = match last {
        Some((prev, block)) => {
            stretch(&mut out, prev, bs);
            block + 1
        }
        None => 0,
    };
    for b in used_blocks..blocks as usize {
        put_u16(&mut out, b * bs + 4, bs as u16);
    }
    out
}

/// Sets the rec_len of the entry at `pos` to reach the end of its block.
fn stretch(out: &mut [u8], pos: usize, bs: usize) {
    let end = (pos / bs + 1) * bs;
    let rec_len = end - pos;
    // A 64 KiB block would need the rec_len encoding trick; kiln's blocks are ≤ 4 KiB.
    put_u16(out, pos + 4, rec_len as u16);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::le::{get_u16, get_u32};

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
        // 9-byte names take 20 bytes: 51 per 1 KiB block.
        let blocks = block_count(entries.iter().map(|e| e.name.len()), 1024);
        assert_eq!(blocks, 2);
        let out = encode(&entries, 1024, 3);
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
            assert_eq!(n, [51, 49, 0][b]);
        }
    }
}
