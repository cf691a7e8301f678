//! Cluster chains read from the FAT, as runs of consecutive clusters.
//!
//! A chain is hostile input: it may loop, leave the volume, run into a
//! free or bad cluster, or go on far longer than its file. [`walk`] stops
//! at a limit the caller derives from what the chain is for (a file's
//! size, the largest directory), so no walk takes longer than the volume
//! has clusters, and names where and why a chain is broken.

use std::collections::HashSet;
use std::fmt;

use crate::read::bpb::Volume;
use crate::table::{get, Link};

/// Consecutive clusters: the first and how many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// The first cluster.
    pub first: u32,
    /// Clusters in the run (at least 1).
    pub len: u32,
}

/// A chain's clusters, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Chain {
    pub(crate) runs: Vec<Run>,
    /// Clusters in all.
    pub(crate) len: u64,
    /// Whether the chain ended (an end-of-chain mark) within the limit.
    pub(crate) ended: bool,
}

impl Chain {
    /// Every cluster of the chain, in order.
    pub(crate) fn clusters(&self) -> impl Iterator<Item = u32> + '_ {
        self.runs.iter().flat_map(|r| r.first..r.first + r.len)
    }

    /// Appends `c`, extending the last run where it follows it.
    fn push(&mut self, c: u32) {
        match self.runs.last_mut() {
            Some(last) if last.first.checked_add(last.len) == Some(c) => last.len += 1,
            _ => self.runs.push(Run { first: c, len: 1 }),
        }
        self.len += 1;
    }
}

/// Why a chain is broken: at which cluster (the one whose entry is wrong).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Broken {
    /// The first cluster is not a data cluster.
    BadStart(u32),
    /// The entry of `at` points outside the data clusters.
    OutOfRange { at: u32, next: u32 },
    /// The entry of `at` says the cluster is free, inside a chain.
    Free { at: u32 },
    /// The entry of `at` marks it bad, inside a chain.
    Bad { at: u32 },
    /// The entry of `at` leads back to a cluster of the chain.
    Loop { at: u32, next: u32 },
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Broken::BadStart(c) => write!(f, "its first cluster {c} is not a data cluster"),
            Broken::OutOfRange { at, next } => {
                write!(
                    f,
                    "cluster {at} links to {next}, which is not a data cluster"
                )
            }
            Broken::Free { at } => write!(f, "cluster {at} is marked free inside the chain"),
            Broken::Bad { at } => write!(f, "cluster {at} is marked bad inside the chain"),
            Broken::Loop { at, next } => {
                write!(f, "cluster {at} links back to {next}: the chain loops")
            }
        }
    }
}

/// Walks the chain from `first` in the FAT `fat` for at most `limit`
/// clusters. A chain that goes on past the limit is returned with
/// `ended` false; the caller decides whether that is an error.
pub(crate) fn walk(vol: &Volume, fat: &[u8], first: u32, limit: u64) -> Result<Chain, Broken> {
    if !vol.in_range(first) {
        return Err(Broken::BadStart(first));
    }
    let mut chain = Chain::default();
    // Clusters seen, kept only once the chain goes backwards: a chain
    // that only ascends cannot loop.
    let mut seen: Option<HashSet<u32>> = None;
    let mut at = first;
    loop {
        chain.push(at);
        if chain.len >= limit {
            chain.ended = get(vol.variant, fat, at) == Some(Link::End);
            return Ok(chain);
        }
        let next = match get(vol.variant, fat, at) {
            Some(Link::End) => {
                chain.ended = true;
                return Ok(chain);
            }
            Some(Link::Next(n)) if vol.in_range(n) => n,
            Some(Link::Next(next)) => return Err(Broken::OutOfRange { at, next }),
            Some(Link::Free) => return Err(Broken::Free { at }),
            Some(Link::Bad) | None => return Err(Broken::Bad { at }),
        };
        if next <= at || seen.is_some() {
            let seen = seen.get_or_insert_with(|| chain.clusters().collect());
            if !seen.insert(next) {
                return Err(Broken::Loop { at, next });
            }
        }
        at = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FatVariant;

    /// A FAT16 volume of 100 clusters whose FAT holds `entries` from 2.
    fn setup(entries: &[u16]) -> (Volume, Vec<u8>) {
        let vol = Volume {
            variant: FatVariant::Fat16,
            bytes_per_sector: 512,
            sectors_per_cluster: 1,
            reserved_sectors: 1,
            fat_count: 2,
            fat_sectors: 1,
            root_entries: 16,
            total_sectors: 200,
            clusters: 100,
            media: 0xF8,
            root_cluster: 0,
            active_fat: 0,
            fsinfo_sector: None,
            volume_id: None,
            label: None,
            hidden_sectors: 0,
            dirty: false,
        };
        let mut fat = vec![0xF8, 0xFF, 0xFF, 0xFF];
        for e in entries {
            fat.extend(e.to_le_bytes());
        }
        fat.resize(204, 0);
        (vol, fat)
    }

    #[test]
    fn runs_and_ends() {
        // 2 → 3 → 4 → 7 → end.
        let (vol, fat) = setup(&[3, 4, 7, 0, 0, 0xFFFF]);
        let c = walk(&vol, &fat, 2, 100).unwrap();
        assert_eq!(c.runs, [Run { first: 2, len: 3 }, Run { first: 7, len: 1 }]);
        assert!(c.ended);
        let short = walk(&vol, &fat, 2, 2).unwrap();
        assert_eq!((short.len, short.ended), (2, false));
    }

    #[test]
    fn broken_chains() {
        let (vol, fat) = setup(&[3, 2]);
        assert_eq!(
            walk(&vol, &fat, 2, 100),
            Err(Broken::Loop { at: 3, next: 2 })
        );
        let (vol, fat) = setup(&[2]);
        assert_eq!(
            walk(&vol, &fat, 2, 100),
            Err(Broken::Loop { at: 2, next: 2 })
        );
        let (vol, fat) = setup(&[500]);
        assert_eq!(
            walk(&vol, &fat, 2, 100),
            Err(Broken::OutOfRange { at: 2, next: 500 })
        );
        let (vol, fat) = setup(&[3, 0]);
        assert_eq!(walk(&vol, &fat, 2, 100), Err(Broken::Free { at: 3 }));
        let (vol, fat) = setup(&[0xFFF7]);
        assert_eq!(walk(&vol, &fat, 2, 100), Err(Broken::Bad { at: 2 }));
        assert_eq!(walk(&vol, &fat, 1, 100), Err(Broken::BadStart(1)));
        assert_eq!(walk(&vol, &fat, 102, 100), Err(Broken::BadStart(102)));
        // A descending but loop-free chain: 5 → 3 → 4 → end.
        let (vol, fat) = setup(&[0, 4, 0xFFFF, 3]);
        let c = walk(&vol, &fat, 5, 100).unwrap();
        assert_eq!(c.clusters().collect::<Vec<_>>(), [5, 3, 4]);
    }
}
