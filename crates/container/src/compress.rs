//! Compressing clusters in parallel, written in order.
//!
//! qcow2's compressed clusters and VMDK's grains are each compressed on
//! their own, so a batch of them is split among plain scoped threads, one
//! per core. (Not rayon: the encoder runs inside the emitter's rayon
//! workers, under the stream's lock, and a rayon join there could take up
//! an emitter task that waits for that same lock.)

use std::io::{self, Write};
use std::thread;

/// How many clusters are compressed together: enough to keep every core
/// busy, few enough that the batch (64 KiB each) stays small in memory.
pub(crate) const BATCH: usize = 64;

/// A compressor of one cluster.
pub(crate) type CompressFn = fn(&[u8]) -> io::Result<Vec<u8>>;

/// Clusters gathered for compression, with what the caller needs to place
/// each one (its index in the image).
pub(crate) struct Batch {
    clusters: Vec<(u64, Vec<u8>)>,
    compress: CompressFn,
}

impl Batch {
    /// An empty batch whose clusters `compress` will compress.
    pub(crate) fn new(compress: CompressFn) -> Batch {
        Batch {
            clusters: Vec::with_capacity(BATCH),
            compress,
        }
    }

    /// Adds cluster `index`; true once the batch is full.
    pub(crate) fn push(&mut self, index: u64, bytes: &[u8]) -> bool {
        self.clusters.push((index, bytes.to_vec()));
        self.clusters.len() >= BATCH
    }

    /// Compresses the clusters gathered, then hands each to `f` in order,
    /// as (index, raw bytes, compressed bytes); empties the batch.
    pub(crate) fn drain(
        &mut self,
        mut f: impl FnMut(u64, &[u8], &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let clusters = std::mem::take(&mut self.clusters);
        let compressed = compress_all(&clusters, self.compress)?;
        for ((index, raw), packed) in clusters.iter().zip(&compressed) {
            f(*index, raw, packed)?;
        }
        self.clusters = clusters;
        self.clusters.clear();
        Ok(())
    }
}

/// Compresses every cluster, the work split among the cores.
fn compress_all(clusters: &[(u64, Vec<u8>)], compress: CompressFn) -> io::Result<Vec<Vec<u8>>> {
    let threads = thread::available_parallelism().map_or(1, |n| n.get());
    if threads <= 1 || clusters.len() <= 1 {
        return clusters.iter().map(|(_, c)| compress(c)).collect();
    }
    let per = clusters.len().div_ceil(threads);
    thread::scope(|s| {
        let handles: Vec<_> = clusters
            .chunks(per)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|(_, c)| compress(c))
                        .collect::<io::Result<Vec<_>>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(clusters.len());
        for h in handles {
            all.extend(h.join().expect("a compressor thread does not panic")?);
        }
        Ok(all)
    })
}

/// Raw deflate with a 4 KiB window, as qcow2 reads it (QEMU inflates with
/// a window of 2^12 bytes).
///
/// At the best level: on libraries, binaries, documentation and source,
/// zlib-rs's default level comes out 0.2-4% larger than the C zlib that
/// `qemu-img convert -c` runs at its default level; its best level is no
/// larger, and still faster than that C zlib.
pub(crate) fn raw_deflate_4k(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut c = flate2::Compress::new_with_window_bits(flate2::Compression::best(), false, 12);
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 8 + 64);
    loop {
        let read = c.total_in() as usize;
        let status = c
            .compress_vec(&bytes[read..], &mut out, flate2::FlushCompress::Finish)
            .map_err(io::Error::other)?;
        if status == flate2::Status::StreamEnd {
            return Ok(out);
        }
        out.reserve(out.capacity().max(4096));
    }
}

/// A zlib stream (RFC 1950), as VMDK's compressed grains hold.
pub(crate) fn zlib(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes)?;
    enc.finish()
}

/// One zstd frame (qcow2's compression type 1).
pub(crate) fn zstd_frame(bytes: &[u8]) -> io::Result<Vec<u8>> {
    zstd::bulk::compress(bytes, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_batch_keeps_its_order_and_round_trips() {
        let mut batch = Batch::new(raw_deflate_4k);
        for i in 0..10u64 {
            let bytes: Vec<u8> = (0..65536u32)
                .map(|b| (b as u64 * (i + 1) % 251) as u8)
                .collect();
            batch.push(i, &bytes);
        }
        let mut seen = Vec::new();
        batch
            .drain(|index, raw, packed| {
                let mut out = Vec::new();
                flate2::read::DeflateDecoder::new(packed).read_to_end(&mut out)?;
                assert_eq!(out, raw);
                seen.push(index);
                Ok(())
            })
            .unwrap();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
    }
}
