//! [`VeritySink`]: a [`Sink`] that hashes the image on its way to another
//! sink.
//!
//! A write that covers whole data blocks is hashed at once, in the writing
//! thread (the emitter's workers write in parallel, so level 0 is hashed in
//! parallel with no pool of its own). The bytes of a block written in parts
//! (metadata smaller than a block, a FAT sector) are kept until
//! [`Sink::advance`] passes the block's end, since no later write may land
//! there; then it is hashed. A block never written holds zeros: its digest
//! is computed once and is every slot's value until a write replaces it.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use kiln_sink::{Sink, SinkError};
use rayon::prelude::*;
use sha2::Sha256;

use crate::tree::{digest, HashArea};
use crate::{VerityError, VerityParams, DIGEST_SIZE};

/// Final partial blocks hashed on one thread below this count.
const PARALLEL_PARTIALS: usize = 64;

/// The image's sink, hashing what passes through it into level 0 of a
/// dm-verity tree.
pub struct VeritySink<'a> {
    inner: &'a dyn Sink,
    params: VerityParams,
    salted: Sha256,
    /// Level 0, one hash block per lock: writers of distant data blocks do
    /// not wait for each other.
    level0: Vec<Mutex<Vec<u8>>>,
    /// Blocks written in part and not yet final, by data block number.
    partial: Mutex<BTreeMap<u64, Vec<u8>>>,
    /// Bytes held in `partial`.
    partial_bytes: AtomicU64,
}

impl<'a> VeritySink<'a> {
    /// A sink passing everything on to `inner` and hashing the first
    /// `params.data_blocks` blocks of the image.
    pub fn new(inner: &'a dyn Sink, params: VerityParams) -> Result<VeritySink<'a>, VerityError> {
        params.check()?;
        let salted = params.salted();
        let zero = digest(&salted, &vec![0u8; params.data_block_size as usize]);
        let per_block = params.hash_block_size as usize / DIGEST_SIZE;
        let blocks = params.data_blocks.div_ceil(per_block as u64);
        let level0 = (0..blocks)
            .map(|i| {
                // The last hash block's slots past the data stay zero.
                let slots = (params.data_blocks - i * per_block as u64).min(per_block as u64);
                let mut hb = vec![0u8; params.hash_block_size as usize];
                for slot in hb.chunks_mut(DIGEST_SIZE).take(slots as usize) {
                    slot.copy_from_slice(&zero);
                }
                Mutex::new(hb)
            })
            .collect();
        Ok(VeritySink {
            inner,
            params,
            salted,
            level0,
            partial: Mutex::new(BTreeMap::new()),
            partial_bytes: AtomicU64::new(0),
        })
    }

    /// Hashes the blocks still held and computes the tree: the hash area
    /// and the root hash. Call it once the image is complete.
    pub fn finish(self) -> HashArea {
        let held = std::mem::take(&mut *lock(&self.partial));
        self.hash_partials(held);
        let level0 = self
            .level0
            .into_iter()
            .flat_map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect();
        HashArea::from_level0(&self.params, level0)
    }

    /// Hashes what `buf`, written at `offset`, puts in the data blocks.
    fn observe(&self, offset: u64, buf: &[u8]) {
        let bs = u64::from(self.params.data_block_size);
        let end = (offset + buf.len() as u64).min(self.params.data_size());
        let mut pos = offset;
        while pos < end {
            let block = pos / bs;
            let (start, next) = (block * bs, (block + 1) * bs);
            let at = (pos - offset) as usize;
            if pos == start && end >= next {
                let whole = (end - pos) / bs;
                let len = (whole * bs) as usize;
                self.hash_whole(block, &buf[at..at + len]);
                pos += whole * bs;
            } else {
                let to = end.min(next);
                self.hold(
                    block,
                    (pos - start) as usize,
                    &buf[at..(to - offset) as usize],
                );
                pos = to;
            }
        }
    }

    /// Hashes whole blocks from data block `first` on.
    fn hash_whole(&self, first: u64, data: &[u8]) {
        let digests: Vec<[u8; DIGEST_SIZE]> = data
            .chunks(self.params.data_block_size as usize)
            .map(|b| digest(&self.salted, b))
            .collect();
        self.store(first, &digests);
    }

    /// Puts the digests of data blocks from `first` on into level 0.
    fn store(&self, first: u64, digests: &[[u8; DIGEST_SIZE]]) {
        let per_block = (self.params.hash_block_size as usize / DIGEST_SIZE) as u64;
        let mut i = 0;
        while i < digests.len() {
            let block = first + i as u64;
            let (hb, slot) = ((block / per_block) as usize, (block % per_block) as usize);
            let n = (per_block as usize - slot).min(digests.len() - i);
            let mut dest = lock(&self.level0[hb]);
            for (k, d) in digests[i..i + n].iter().enumerate() {
                let at = (slot + k) * DIGEST_SIZE;
                dest[at..at + DIGEST_SIZE].copy_from_slice(d);
            }
            i += n;
        }
    }

    /// Keeps `bytes`, at `at` in data block `block`, until the block is final.
    fn hold(&self, block: u64, at: usize, bytes: &[u8]) {
        let bs = self.params.data_block_size as usize;
        let mut partial = lock(&self.partial);
        let held = partial.entry(block).or_insert_with(|| {
            self.partial_bytes.fetch_add(bs as u64, Ordering::Relaxed);
            vec![0u8; bs]
        });
        held[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// Hashes held blocks that are final.
    fn hash_partials(&self, done: BTreeMap<u64, Vec<u8>>) {
        if done.is_empty() {
            return;
        }
        let bytes = done.len() as u64 * u64::from(self.params.data_block_size);
        self.partial_bytes.fetch_sub(bytes, Ordering::Relaxed);
        let one =
            |(block, data): (&u64, &Vec<u8>)| self.store(*block, &[digest(&self.salted, data)]);
        if done.len() < PARALLEL_PARTIALS {
            done.iter().for_each(one);
        } else {
            done.par_iter().for_each(one);
        }
    }
}

/// A lock; a writer that panicked left the digests consistent (each slot
/// is copied whole) and its panic reaches the caller anyway.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sink for VeritySink<'_> {
    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), SinkError> {
        self.observe(offset, buf);
        self.inner.write_at(offset, buf)
    }

    /// Hashes the blocks held below `offset`, which are now final.
    fn advance(&self, offset: u64) -> Result<(), SinkError> {
        let final_blocks = offset / u64::from(self.params.data_block_size);
        let done = {
            let mut partial = lock(&self.partial);
            let rest = partial.split_off(&final_blocks);
            std::mem::replace(&mut *partial, rest)
        };
        self.hash_partials(done);
        self.inner.advance(offset)
    }

    fn zero(&self, range: Range<u64>) -> Result<(), SinkError> {
        self.inner.zero(range)
    }

    fn reserve(&self, range: Range<u64>) -> Result<(), SinkError> {
        self.inner.reserve(range)
    }

    fn pending(&self) -> u64 {
        self.inner.pending() + self.partial_bytes.load(Ordering::Relaxed)
    }

    /// False: a rewrite of part of a block already hashed whole would need
    /// the rest of the block, which is not kept. The emitter then copies a
    /// changing file once, from a whole read (`--live`).
    fn rewrites(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that keeps nothing.
    struct Null;
    impl Sink for Null {
        fn write_at(&self, _: u64, _: &[u8]) -> Result<(), SinkError> {
            Ok(())
        }
    }

    #[test]
    fn agrees_with_the_whole_image_whatever_the_writes() {
        let blocks = 1000u64;
        let params = VerityParams::new(blocks, vec![0x5a; 32], [1; 16]);
        let mut image = vec![0u8; (blocks * 4096) as usize];
        // Whole blocks, a run across blocks, pieces of one block, a gap.
        let writes: Vec<(usize, usize)> = vec![
            (0, 4096),
            (4096 + 100, 3 * 4096),
            (5 * 4096, 512),
            (5 * 4096 + 1024, 7),
            (900 * 4096, 99 * 4096 + 12),
        ];
        for (i, &(at, len)) in writes.iter().enumerate() {
            for (k, b) in image[at..at + len].iter_mut().enumerate() {
                *b = (i * 31 + k * 7) as u8 | 1;
            }
        }
        let sink = VeritySink::new(&Null, params.clone()).unwrap();
        for &(at, len) in writes.iter().rev() {
            sink.write_at(at as u64, &image[at..at + len]).unwrap();
        }
        sink.advance(6 * 4096).unwrap();
        assert_eq!(sink.finish(), HashArea::of_image(&params, &image));
    }
}
