//! The file allocation table: entry 0 (the media byte), entry 1 (end of
//! chain, clean), then every cluster chain. kiln allocates every chain
//! contiguously and from cluster 2 up without gaps, so the table is
//! rendered from the chains' (first cluster, length) and everything past
//! the last allocated cluster is zero (free).

use crate::le::{get_u16, get_u32, put_u16, put_u32};
use crate::FatVariant;

/// The end-of-chain mark of each variant (also entry 1, with FAT16's and
/// FAT32's "clean shutdown" and "no errors" bits set).
fn end_of_chain(v: FatVariant) -> u32 {
    match v {
        FatVariant::Fat12 => 0x0FFF,
        FatVariant::Fat16 => 0xFFFF,
        FatVariant::Fat32 => 0x0FFF_FFFF,
    }
}

/// What a FAT entry says about its cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Link {
    /// 0: the cluster is free.
    Free,
    /// The next cluster of the chain (any number: the reader checks it).
    Next(u32),
    /// `BAD_CLUSTER` (0xFF7, 0xFFF7, 0x0FFFFFF7).
    Bad,
    /// The last cluster of its chain (0xFF8 and up).
    End,
}

/// The entry of cluster `n` in the FAT `fat` (its bytes), `None` where
/// `fat` ends first. FAT32 entries are 28 bits; the top 4 are reserved.
pub(crate) fn get(v: FatVariant, fat: &[u8], n: u32) -> Option<Link> {
    let n = n as usize;
    let value = match v {
        FatVariant::Fat12 => {
            let at = n.checked_mul(3)? / 2;
            let pair = u32::from(get_u16(fat.get(at..at.checked_add(2)?)?, 0));
            if n % 2 == 0 {
                pair & 0x0FFF
            } else {
                pair >> 4
            }
        }
        FatVariant::Fat16 => {
            let at = n.checked_mul(2)?;
            u32::from(get_u16(fat.get(at..at.checked_add(2)?)?, 0))
        }
        FatVariant::Fat32 => {
            let at = n.checked_mul(4)?;
            get_u32(fat.get(at..at.checked_add(4)?)?, 0) & 0x0FFF_FFFF
        }
    };
    let eoc = end_of_chain(v);
    Some(match value {
        0 => Link::Free,
        _ if value == eoc - 8 => Link::Bad,
        _ if value >= eoc - 7 => Link::End,
        n => Link::Next(n),
    })
}

/// Entry 0: the media byte with every other bit of the entry set.
fn media_entry(v: FatVariant, media: u8) -> u32 {
    end_of_chain(v) & !0xFF | u32::from(media)
}

/// One FAT copy's bytes up to the end of the entry of cluster
/// `next_free - 1` (the last allocated); the rest of the table is zero.
/// `chains` are (first cluster, clusters), ascending and adjacent from 2.
pub(crate) fn render(v: FatVariant, media: u8, chains: &[(u32, u32)], next_free: u32) -> Vec<u8> {
    let entries = next_free as usize;
    let bytes = match v {
        FatVariant::Fat12 => (entries * 3).div_ceil(2),
        FatVariant::Fat16 => entries * 2,
        FatVariant::Fat32 => entries * 4,
    };
    let mut out = vec![0u8; bytes];
    let mut set = |n: u32, value: u32| {
        let n = n as usize;
        match v {
            FatVariant::Fat12 => {
                let at = n * 3 / 2;
                let pair = u16::from_le_bytes([out[at], *out.get(at + 1).unwrap_or(&0)]);
                let value = value as u16 & 0x0FFF;
                let pair = if n % 2 == 0 {
                    pair & 0xF000 | value
                } else {
                    pair & 0x000F | value << 4
                };
                out[at] = pair as u8;
                if at + 1 < out.len() {
                    out[at + 1] = (pair >> 8) as u8;
                }
            }
            FatVariant::Fat16 => put_u16(&mut out, n * 2, value as u16),
            FatVariant::Fat32 => put_u32(&mut out, n * 4, value),
        }
    };
    let eoc = end_of_chain(v);
    set(0, media_entry(v, media));
    set(1, eoc);
    for &(first, len) in chains {
        for c in first..first + len {
            set(c, if c + 1 < first + len { c + 1 } else { eoc });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fat12_packs_entries_in_pairs() {
        // Chains: 2-3, 4.
        let t = render(FatVariant::Fat12, 0xF0, &[(2, 2), (4, 1)], 5);
        assert_eq!(t.len(), 8);
        assert_eq!(&t[..3], &[0xF0, 0xFF, 0xFF]);
        // Entries 2 = 3, 3 = EOC: 0x003 | 0xFFF << 12.
        assert_eq!(&t[3..6], &[0x03, 0xF0, 0xFF]);
        // Entry 4 = EOC.
        assert_eq!(&t[6..8], &[0xFF, 0x0F]);
    }

    #[test]
    fn entries_read_back() {
        for v in [FatVariant::Fat12, FatVariant::Fat16, FatVariant::Fat32] {
            let t = render(v, 0xF8, &[(2, 2), (4, 1)], 5);
            let links: Vec<_> = (2..5).map(|n| get(v, &t, n)).collect();
            assert_eq!(
                links,
                [Some(Link::Next(3)), Some(Link::End), Some(Link::End)]
            );
            assert_eq!(get(v, &t, 1), Some(Link::End));
            assert_eq!(get(v, &t, 9), None);
        }
        assert_eq!(get(FatVariant::Fat16, &[0xF7, 0xFF], 0), Some(Link::Bad));
        assert_eq!(
            get(FatVariant::Fat32, &[0, 0, 0, 0xF0], 0),
            Some(Link::Free)
        );
    }

    #[test]
    fn fat16_and_fat32_entries() {
        let t = render(FatVariant::Fat16, 0xF8, &[(2, 3)], 5);
        assert_eq!(t, [0xF8, 0xFF, 0xFF, 0xFF, 3, 0, 4, 0, 0xFF, 0xFF]);
        let t = render(FatVariant::Fat32, 0xF8, &[(2, 1), (3, 2)], 5);
        let words: Vec<u32> = t
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(
            words,
            [0x0FFF_FFF8, 0x0FFF_FFFF, 0x0FFF_FFFF, 4, 0x0FFF_FFFF]
        );
    }
}
