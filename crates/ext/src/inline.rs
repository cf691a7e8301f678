//! Inline data (the inline_data feature): small files and directories kept in
//! the inode itself instead of data blocks.
//!
//! The first 60 bytes live in `i_block`; the rest is the value of the
//! `system.data` xattr, which must sit in the inode's extra space (and exist,
//! empty, even when nothing spills). A directory's inline form starts with the
//! parent's inode number (4 bytes) and holds the entries other than "." and
//! "..": those in `i_block` end at byte 60, those in `system.data` end at the
//! value's end; an entry never straddles the two.

use crate::dir::{entry_len, put_entry, DirEntry};
use crate::le::put_u32;
use crate::xattr;

/// `i_flags`: the inode's data is inline.
pub(crate) const INLINE_DATA_FL: u32 = 0x1000_0000;
/// Bytes of data `i_block` holds.
pub(crate) const I_BLOCK_BYTES: usize = 60;
/// A directory's parent inode number, before its inline entries.
const PARENT_BYTES: usize = 4;

/// The most bytes `system.data` can hold in an inode with `ibody_space` bytes
/// of xattr space, the entry placed first.
pub(crate) fn max_spill(ibody_space: usize) -> usize {
    xattr::ibody_value_room(ibody_space, xattr::SYSTEM_DATA_NAME.len())
}

/// Whether a file of `size` bytes is stored inline.
pub(crate) fn file_fits(size: u64, ibody_space: usize) -> bool {
    size <= (I_BLOCK_BYTES + max_spill(ibody_space)) as u64
}

/// How many of a directory's entries (by name length) go into `i_block`, and
/// how many bytes the rest take in `system.data`.
pub(crate) fn dir_split(name_lens: impl Iterator<Item = usize>) -> (usize, usize) {
    let mut used = PARENT_BYTES;
    let mut in_block = 0;
    let mut spill = 0;
    for len in name_lens {
        let len = entry_len(len);
        if spill == 0 && used + len <= I_BLOCK_BYTES {
            used += len;
            in_block += 1;
        } else {
            spill += len;
        }
    }
    (in_block, spill)
}

/// The i_size of an inline directory whose entries spill `spill` bytes.
pub(crate) fn dir_size(spill: usize) -> u64 {
    (I_BLOCK_BYTES + spill) as u64
}

/// Encodes an inline directory: the 60 bytes of `i_block` and the value of
/// `system.data`.
pub(crate) fn encode_dir(parent: u32, entries: &[DirEntry<'_>]) -> ([u8; 60], Vec<u8>) {
    let (in_block, spill) = dir_split(entries.iter().map(|e| e.name.len()));
    let mut i_block = [0u8; 60];
    put_u32(&mut i_block, 0, parent);
    pack(&mut i_block[PARENT_BYTES..], &entries[..in_block]);
    let mut value = vec![0u8; spill];
    pack(&mut value, &entries[in_block..]);
    (i_block, value)
}

/// Packs entries into `area`, the last stretched to its end; an empty area
/// of a directory with no entries gets one unused entry spanning it.
fn pack(area: &mut [u8], entries: &[DirEntry<'_>]) {
    if area.is_empty() {
        return;
    }
    let mut pos = 0;
    for (k, e) in entries.iter().enumerate() {
        let len = if k + 1 == entries.len() {
            area.len() - pos
        } else {
            entry_len(e.name.len())
        };
        put_entry(area, pos, e.ino, len, e.name, e.file_type);
        pos += len;
    }
    if entries.is_empty() {
        put_entry(area, 0, 0, area.len(), b"", 0);
    }
}

/// Splits a small file's bytes into `i_block` and the `system.data` value.
pub(crate) fn split_file(data: &[u8]) -> ([u8; 60], Vec<u8>) {
    let mut i_block = [0u8; 60];
    let head = data.len().min(I_BLOCK_BYTES);
    i_block[..head].copy_from_slice(&data[..head]);
    (i_block, data[head..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dir::ftype;
    use crate::le::{get_u16, get_u32};

    #[test]
    fn entries_fill_i_block_then_spill() {
        // 4 + 12 + 12 + 12 + 20 = 60: the layout the kernel made for a, bb,
        // ccc and a 12-byte name.
        let names: [&[u8]; 5] = [b"a", b"bb", b"ccc", b"dddddddddddd", b"spilled"];
        let entries: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(k, n)| DirEntry {
                ino: 22 + k as u32,
                file_type: ftype::REG,
                name: n,
            })
            .collect();
        assert_eq!(dir_split(names.iter().map(|n| n.len())), (4, 16));
        let (i_block, value) = encode_dir(2, &entries);
        assert_eq!(get_u32(&i_block, 0), 2);
        assert_eq!(get_u16(&i_block, 40 + 4), 20);
        assert_eq!(value.len(), 16);
        assert_eq!(get_u32(&value, 0), 26);
        assert_eq!(get_u16(&value, 4), 16);
    }

    #[test]
    fn empty_directory_has_one_unused_entry() {
        let (i_block, value) = encode_dir(2, &[]);
        assert_eq!(get_u32(&i_block, 4), 0);
        assert_eq!(get_u16(&i_block, 8), 56);
        assert!(value.is_empty());
    }

    #[test]
    fn file_capacity_of_a_256_byte_inode() {
        // 96 bytes of xattr space: magic, the system.data entry, end marker.
        assert_eq!(max_spill(96), 96 - 4 - 20 - 4);
        assert!(file_fits(128, 96) && !file_fits(129, 96));
    }
}
