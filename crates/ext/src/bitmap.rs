//! Block and inode bitmaps: one block per group each.
//!
//! A set bit marks a used block (relative to the group's start) or inode.
//! The bits past the end of the group (a short last group, or fewer inodes
//! than the block has bits) are padding and must be set.

use std::ops::Range;

use crate::checksum::crc32c;

/// A bitmap block of `block_size` bytes with the bits of `used` set, and the
/// padding from bit `valid` (the group's blocks or inodes) to the end.
pub(crate) fn encode(
    block_size: u32,
    used: impl IntoIterator<Item = Range<u32>>,
    valid: u32,
) -> Vec<u8> {
    let mut b = vec![0u8; block_size as usize];
    for r in used {
        set_bits(&mut b, r);
    }
    set_bits(&mut b, valid..8 * block_size);
    b
}

/// The metadata_csum checksum of a bitmap: CRC32C over the bytes that hold
/// the group's `bits` (blocks or inodes per group), not the whole block.
pub(crate) fn checksum(fs_seed: u32, bitmap: &[u8], bits: u32) -> u32 {
    crc32c(fs_seed, &bitmap[..(bits / 8) as usize])
}

/// Sets bits `range` of `bitmap`: the partial bytes at either end bit by
/// bit, whole bytes between at once (a full group is 32768 bits).
pub(crate) fn set_bits(bitmap: &mut [u8], range: Range<u32>) {
    let (mut bit, end) = (range.start, range.end);
    while bit < end && bit % 8 != 0 {
        bitmap[(bit / 8) as usize] |= 1 << (bit % 8);
        bit += 1;
    }
    let whole = (end - bit.min(end)) / 8;
    let first = (bit / 8) as usize;
    bitmap[first..first + whole as usize].fill(0xFF);
    bit += 8 * whole;
    while bit < end {
        bitmap[(bit / 8) as usize] |= 1 << (bit % 8);
        bit += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bit-by-bit definition, to compare the byte fill with.
    fn slow(len: usize, range: Range<u32>) -> Vec<u8> {
        let mut b = vec![0u8; len];
        for bit in range {
            b[(bit / 8) as usize] |= 1 << (bit % 8);
        }
        b
    }

    #[test]
    fn set_bits_matches_bit_by_bit() {
        for start in 0..40 {
            for end in start..48 {
                let mut fast = vec![0u8; 6];
                set_bits(&mut fast, start..end);
                assert_eq!(fast, slow(6, start..end), "{start}..{end}");
            }
        }
    }

    #[test]
    fn encode_sets_used_bits_and_padding() {
        let b = encode(1024, [0..3, 9..10], 8000);
        assert_eq!(&b[..2], &[0b0000_0111, 0b0000_0010]);
        assert_eq!(b[999], 0);
        assert_eq!(b[1000..], [0xFF; 24]);
    }
}
