//! Sparse members: the segments of a file that hold data, as GNU tar stores
//! them in its old `S` headers and in the PAX formats 0.0, 0.1 and 1.0. Only
//! the segments are in the archive, one after the other; the rest is holes.

use std::ops::Range;

use super::pax::SparseKeys;

/// Where a member's data goes in the file it makes: segments `(offset,
/// length)` in archive order, and the file's apparent size.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SparseMap {
    /// `(offset, length)` of each stored segment.
    pub segments: Vec<(u64, u64)>,
    /// The size of the file, holes included.
    pub real_size: u64,
}

impl SparseMap {
    /// A file stored whole: one segment of `size` bytes.
    pub(super) fn dense(size: u64) -> SparseMap {
        SparseMap {
            segments: vec![(0, size)],
            real_size: size,
        }
    }

    /// The map of a PAX 0.0 or 0.1 member, from its keys.
    pub(super) fn from_keys(keys: &SparseKeys) -> Result<SparseMap, String> {
        let real_size = keys
            .real_size
            .ok_or("a sparse member without GNU.sparse.size")?;
        if keys.map.len() % 2 != 0 {
            return Err("a sparse map with an offset but no length".into());
        }
        let segments: Vec<(u64, u64)> = keys.map.chunks(2).map(|p| (p[0], p[1])).collect();
        if keys.numblocks.is_some_and(|n| n != segments.len() as u64) {
            return Err(format!(
                "GNU.sparse.numblocks says {:?}, the map has {} segments",
                keys.numblocks,
                segments.len()
            ));
        }
        Ok(SparseMap {
            segments,
            real_size,
        })
    }

    /// Checks that the segments are ascending, do not overlap, lie inside the
    /// file, and add up to the `stored` bytes that follow in the archive.
    pub(super) fn check(&self, stored: u64) -> Result<(), String> {
        let mut end = 0u64;
        let mut total = 0u64;
        for &(offset, length) in &self.segments {
            let seg_end = offset
                .checked_add(length)
                .filter(|&e| offset >= end && e <= self.real_size)
                .ok_or_else(|| {
                    format!(
                        "sparse segment {offset}+{length} overlaps another or passes \
                         the file's size of {} bytes",
                        self.real_size
                    )
                })?;
            end = seg_end;
            total += length; // cannot overflow: the segments are disjoint.
        }
        if total != stored {
            return Err(format!(
                "the sparse map holds {total} bytes, the archive {stored}"
            ));
        }
        Ok(())
    }

    /// The byte ranges holding data: the non-empty segments, adjacent ones
    /// joined.
    pub(super) fn ranges(&self) -> Vec<Range<u64>> {
        let mut out: Vec<Range<u64>> = Vec::new();
        for &(offset, length) in self.segments.iter().filter(|s| s.1 > 0) {
            match out.last_mut() {
                Some(last) if last.end == offset => last.end += length,
                _ => out.push(offset..offset + length),
            }
        }
        out
    }
}

/// Reads the PAX 1.0 map that opens a member's data: decimal numbers, each
/// ending in a newline (the count of segments, then offset and length of
/// each), padded with NULs to a whole block. `next_block` gives the blocks;
/// returns the segments and the number of blocks taken.
pub(super) fn read_map_1_0(
    mut next_block: impl FnMut() -> Result<Vec<u8>, String>,
) -> Result<(Vec<(u64, u64)>, u64), String> {
    let mut text = Vec::new();
    let mut blocks = 0u64;
    let mut numbers = Vec::new();
    let mut count = None;
    // Numbers are read as they come, so a huge count costs no memory until
    // the blocks that would hold its segments are really there.
    while count.is_none_or(|c| numbers.len() < c) {
        let line_end = text.iter().position(|&b| b == b'\n');
        let Some(end) = line_end else {
            if text.len() > 20 {
                return Err("a sparse map number longer than 20 digits".into());
            }
            text.extend(next_block()?);
            blocks += 1;
            continue;
        };
        let n = super::pax::decimal(&text[..end]).map_err(|e| format!("sparse map: {e}"))?;
        text.drain(..=end);
        match count {
            None => {
                count = Some(
                    usize::try_from(n)
                        .ok()
                        .and_then(|c| c.checked_mul(2))
                        .ok_or("a sparse map with too many segments")?,
                )
            }
            Some(_) => numbers.push(n),
        }
    }
    let segments = numbers.chunks(2).map(|p| (p[0], p[1])).collect();
    Ok((segments, blocks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_and_ranges() {
        let map = SparseMap {
            segments: vec![(0, 10), (10, 5), (4096, 100), (8192, 0)],
            real_size: 8192,
        };
        assert_eq!(map.check(115), Ok(()));
        assert!(map.check(116).is_err());
        assert_eq!(map.ranges(), vec![0..15, 4096..4196]);
        let overlapping = SparseMap {
            segments: vec![(0, 10), (5, 10)],
            real_size: 100,
        };
        assert!(overlapping.check(20).is_err());
        let outside = SparseMap {
            segments: vec![(90, 20)],
            real_size: 100,
        };
        assert!(outside.check(20).is_err());
        let wrapping = SparseMap {
            segments: vec![(u64::MAX, 2)],
            real_size: u64::MAX,
        };
        assert!(wrapping.check(2).is_err());
        assert_eq!(SparseMap::dense(0).ranges(), vec![]);
    }

    #[test]
    fn map_1_0_across_blocks() {
        let mut text = b"2\n69632\n4096\n".to_vec();
        text.extend(b"1048576\n0\n");
        let mut blocks = text.chunks(8).map(<[u8]>::to_vec);
        let (segments, n) = read_map_1_0(|| blocks.next().ok_or("end".to_string())).unwrap();
        assert_eq!(segments, vec![(69632, 4096), (1048576, 0)]);
        assert_eq!(n, 3);
        let mut zeros = std::iter::repeat(vec![0u8; 512]);
        assert!(read_map_1_0(|| zeros.next().ok_or("end".to_string())).is_err());
        let mut huge = std::iter::once(b"99999999999999999\n".to_vec());
        assert!(read_map_1_0(|| huge.next().ok_or("end".to_string())).is_err());
    }
}
