//! qcow2 version 3 (QEMU's docs/interop/qcow2.txt), 64 KiB clusters,
//! 16-bit refcounts, no backing file.
//!
//! One forward pass into a file: cluster 0 is held for the header; the data
//! clusters follow in guest order as they arrive (all-zero clusters stay
//! unallocated and read as zeros); [`Encoder::finish`] then appends the L2
//! tables, the refcount table, the refcount blocks and the L1 table, and
//! seeks back once to write the header. Only the allocated L2 entries and a
//! refcount per host cluster are kept in memory, never a table of the whole
//! virtual size.
//!
//! Compressed clusters (deflate or zstd) are packed byte after byte as
//! QEMU packs them: a cluster's compressed bytes follow the previous ones,
//! running into the next host cluster when that one is still free; a
//! cluster that compression does not make smaller is stored as it is.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};

use crate::bytes::{put_be16, put_be32, put_be64};
use crate::compress::{raw_deflate_4k, zstd_frame, Batch};
use crate::length::{invalid, Length};
use crate::units::{Unit, Units};
use crate::{ClusterCompression, ContainerOptions, Encoder};

/// log2 of the cluster size: 64 KiB, QEMU's default.
const CLUSTER_BITS: u32 = 16;
/// The cluster size in bytes.
const CLUSTER: u64 = 1 << CLUSTER_BITS;
/// Entries of one L2 table (8 bytes each, one cluster).
const L2_ENTRIES: u64 = CLUSTER / 8;
/// log2 of the refcount width in bits: 16-bit refcounts, QEMU's default.
const REFCOUNT_ORDER: u32 = 4;
/// Refcounts in one refcount block (one cluster of 16-bit entries).
const REFS_PER_BLOCK: u64 = CLUSTER * 8 / (1 << REFCOUNT_ORDER);
/// The unit of a compressed cluster's length.
const SECTOR: u64 = 512;
/// The header fields through compression_type (byte 104), padded to a
/// multiple of 8; QEMU writes this length whatever the compression type.
const HEADER_LENGTH: u32 = 112;
/// QEMU refuses an L1 table of more than 32 MiB (of 8-byte entries).
const MAX_L1_ENTRIES: u64 = (32 << 20) / 8;

/// L1 and standard L2 entries: the cluster's refcount is exactly one, so a
/// writer need not copy it first.
const COPIED: u64 = 1 << 63;
/// L2 entries: the cluster descriptor is a compressed one.
const COMPRESSED: u64 = 1 << 62;
/// Where a compressed descriptor's count of additional sectors starts:
/// bit 62 - (cluster_bits - 8); the host byte offset lies below it.
const CSIZE_SHIFT: u32 = 62 - (CLUSTER_BITS - 8);
/// Standard descriptors and L1 entries hold offsets in bits 9-55.
const MAX_HOST_OFFSET: u64 = 1 << 56;

/// incompatible_features bit 3: compression_type is set and not zlib.
const INCOMPAT_COMPRESSION_TYPE: u64 = 1 << 3;
/// compression_type 0: zlib's raw deflate (QEMU's default).
const COMPRESSION_ZLIB: u8 = 0;
/// compression_type 1: zstd frames.
const COMPRESSION_ZSTD: u8 = 1;

/// The qcow2 encoder into `out`.
///
/// # Errors
/// `InvalidInput` for a size that is not a whole number of 512-byte
/// sectors or is too large for QEMU's L1 table.
pub(crate) fn encoder(options: &ContainerOptions, out: File) -> io::Result<Box<dyn Encoder>> {
    let size = options.size;
    if size % SECTOR != 0 {
        return Err(invalid(format!(
            "qcow2: the image size {size} is not a multiple of {SECTOR} bytes"
        )));
    }
    if l1_entries(size) > MAX_L1_ENTRIES {
        return Err(invalid(format!(
            "qcow2: the image size {size} needs an L1 table larger than QEMU opens"
        )));
    }
    let compress = match options.compression {
        ClusterCompression::None => None,
        ClusterCompression::Deflate => Some(Batch::new(raw_deflate_4k)),
        ClusterCompression::Zstd => Some(Batch::new(zstd_frame)),
    };
    let compression_type = match options.compression {
        ClusterCompression::Zstd => COMPRESSION_ZSTD,
        ClusterCompression::None | ClusterCompression::Deflate => COMPRESSION_ZLIB,
    };
    let mut host = Host::new(out);
    // Cluster 0 is the header's; it is written for real in `finish`.
    host.write_at(0, &vec![0; CLUSTER as usize])?;
    host.refs.push(1);
    Ok(Box::new(Qcow2 {
        size,
        compression_type,
        length: Length::new("qcow2", options.size),
        units: Units::new(CLUSTER as usize),
        store: Store {
            host,
            compress,
            entries: Vec::new(),
        },
    }))
}

/// Entries of the L1 table of a virtual disk of `size` bytes.
fn l1_entries(size: u64) -> u64 {
    size.div_ceil(CLUSTER).div_ceil(L2_ENTRIES)
}

/// The encoder: cuts the image into clusters and hands them to the store.
struct Qcow2 {
    /// The virtual size.
    size: u64,
    /// The header's compression_type.
    compression_type: u8,
    /// Image bytes received so far.
    length: Length,
    /// The cutter into clusters.
    units: Units,
    /// Where the clusters go.
    store: Store,
}

impl Encoder for Qcow2 {
    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.length.take(buf.len() as u64)?;
        let store = &mut self.store;
        self.units.data(buf, &mut |unit| store.unit(unit))
    }

    fn zeros(&mut self, len: u64) -> io::Result<()> {
        self.length.take(len)?;
        let store = &mut self.store;
        self.units.zeros(len, &mut |unit| store.unit(unit))
    }

    fn finish(self: Box<Self>) -> io::Result<Option<u64>> {
        let Qcow2 {
            size,
            compression_type,
            length,
            mut units,
            mut store,
        } = *self;
        length.complete()?;
        units.finish(&mut |unit| store.unit(unit))?;
        store.drain()?;
        store.finish(size, compression_type).map(Some)
    }
}

/// The data clusters placed so far and where they went.
struct Store {
    /// The file.
    host: Host,
    /// The compressor, when clusters are compressed: clusters wait in its
    /// batch until it is full.
    compress: Option<Batch>,
    /// (guest cluster index, L2 entry) of every allocated guest cluster, in
    /// guest order.
    entries: Vec<(u64, u64)>,
}

impl Store {
    /// One unit of the image: a data cluster is stored (or queued for
    /// compression); zero clusters stay unallocated.
    fn unit(&mut self, unit: Unit<'_>) -> io::Result<()> {
        let Unit::Data { index, bytes } = unit else {
            return Ok(());
        };
        match &mut self.compress {
            None => {
                let entry = self.host.standard(bytes)?;
                self.entries.push((index, entry));
                Ok(())
            }
            Some(batch) => {
                if batch.push(index, bytes) {
                    self.drain()?;
                }
                Ok(())
            }
        }
    }

    /// Compresses and places the clusters waiting in the batch.
    fn drain(&mut self) -> io::Result<()> {
        let Some(batch) = &mut self.compress else {
            return Ok(());
        };
        let (host, entries) = (&mut self.host, &mut self.entries);
        batch.drain(|index, raw, packed| {
            // QEMU stores a cluster compressed only when that saves at
            // least a byte.
            let entry = if packed.len() < raw.len() {
                host.compressed(packed)?
            } else {
                host.standard(raw)?
            };
            entries.push((index, entry));
            Ok(())
        })
    }

    /// Appends the metadata after the data and writes the header; returns
    /// the file's length.
    ///
    /// The L1 table goes last, written to its length rather than to whole
    /// clusters (as QEMU leaves it when it ends the file): readers take
    /// l1_size entries from it, and the cluster it starts is counted all
    /// the same. That makes up for the padding of the last compressed
    /// cluster before the metadata.
    fn finish(mut self, size: u64, compression_type: u8) -> io::Result<u64> {
        self.host.close()?;
        let l1 = self.write_l2_tables()?;
        let l1_size = l1_entries(size);
        let l1_table = l1_table(&l1, l1_size);
        let l1_clusters = (l1_table.len() as u64).div_ceil(CLUSTER);
        let (table_clusters, blocks) = refcount_layout(self.host.clusters() + l1_clusters);
        let refcount_table_offset = self.host.reserve(table_clusters);
        let blocks_offset = self.host.reserve(blocks);
        let l1_table_offset = self.host.reserve(l1_clusters);
        check_offset(l1_table_offset, MAX_HOST_OFFSET)?;
        self.host
            .write_refcounts(refcount_table_offset, blocks_offset, blocks)?;
        self.host.write_at(l1_table_offset, &l1_table)?;
        let header = Header {
            size,
            l1_size: l1_size as u32,
            l1_table_offset,
            refcount_table_offset,
            refcount_table_clusters: table_clusters as u32,
            compression_type,
        };
        self.host.write_at(0, &header.encode())?;
        self.host.end_file(l1_table_offset + l1_table.len() as u64)
    }

    /// Writes one L2 table per run of entries under the same L1 entry;
    /// returns the L1 entries that point to them, as (index, entry).
    fn write_l2_tables(&mut self) -> io::Result<Vec<(u64, u64)>> {
        let mut l1 = Vec::new();
        let mut rest = &self.entries[..];
        while let Some(&(first, _)) = rest.first() {
            let l1_index = first / L2_ENTRIES;
            let n = rest
                .iter()
                .position(|&(guest, _)| guest / L2_ENTRIES != l1_index)
                .unwrap_or(rest.len());
            let offset = self.host.reserve(1);
            self.host.write_at(offset, &l2_table(&rest[..n]))?;
            l1.push((l1_index, offset | COPIED));
            rest = &rest[n..];
        }
        Ok(l1)
    }
}

/// The L1 table of `l1_size` entries, `l1` (index, entry) set and the
/// others zero.
fn l1_table(l1: &[(u64, u64)], l1_size: u64) -> Vec<u8> {
    let mut table = vec![0u8; (l1_size * 8) as usize];
    for &(index, entry) in l1 {
        put_be64(&mut table, (index * 8) as usize, entry);
    }
    table
}

/// One L2 table holding `entries` (all under the same L1 entry).
fn l2_table(entries: &[(u64, u64)]) -> Vec<u8> {
    let mut table = vec![0u8; CLUSTER as usize];
    for &(guest, entry) in entries {
        put_be64(&mut table, ((guest % L2_ENTRIES) * 8) as usize, entry);
    }
    table
}

/// The L2 entry of compressed data of `len` bytes at host byte `offset`:
/// the offset, and how many 512-byte sectors the data reaches into beyond
/// the one holding its first byte.
fn compressed_entry(offset: u64, len: u64) -> u64 {
    let extra_sectors = (offset + len - 1) / SECTOR - offset / SECTOR;
    COMPRESSED | (extra_sectors << CSIZE_SHIFT) | offset
}

/// The host clusters that compressed data of `len` bytes at `offset` is
/// counted in. QEMU counts from the sector of the offset through the end
/// of the last sector the entry names; as clusters are whole sectors,
/// those are the clusters of the data's first and last bytes.
fn touched_clusters(offset: u64, len: u64) -> std::ops::RangeInclusive<u64> {
    offset / CLUSTER..=(offset + len - 1) / CLUSTER
}

/// The refcount structures for `used` host clusters besides them: the
/// clusters of the refcount table and the number of refcount blocks, which
/// count themselves and the table too. Found by iterating to the least
/// fixed point (each step can only grow them).
fn refcount_layout(used: u64) -> (u64, u64) {
    let mut blocks: u64 = 0;
    loop {
        let table = (blocks * 8).div_ceil(CLUSTER).max(1);
        let need = (used + table + blocks).div_ceil(REFS_PER_BLOCK);
        if need <= blocks {
            return (table, blocks);
        }
        blocks = need;
    }
}

/// The host file: where the next cluster goes and the refcount of every
/// cluster so far.
struct Host {
    /// The file, written mostly in order.
    out: BufWriter<File>,
    /// The offset the writer is at.
    pos: u64,
    /// The refcount of each host cluster so far; the file's clusters end
    /// at `refs.len()`.
    refs: Vec<u16>,
    /// The cluster that compressed data is being packed into.
    open: Option<OpenCluster>,
}

/// A host cluster partly filled with compressed data, kept in memory until
/// it is full or given up (its tail then stays zero).
struct OpenCluster {
    /// Its host offset.
    offset: u64,
    /// The compressed bytes packed into it so far, from its start.
    bytes: Vec<u8>,
}

impl Host {
    /// An empty file, nothing counted yet.
    fn new(out: File) -> Host {
        Host {
            out: BufWriter::with_capacity(1 << 20, out),
            pos: 0,
            refs: Vec::new(),
            open: None,
        }
    }

    /// The offset of the next free host cluster.
    fn end(&self) -> u64 {
        self.refs.len() as u64 * CLUSTER
    }

    /// Writes `bytes` at `offset`, seeking only when not already there.
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        if offset != self.pos {
            self.out.seek(SeekFrom::Start(offset))?;
        }
        self.out.write_all(bytes)?;
        self.pos = offset + bytes.len() as u64;
        Ok(())
    }

    /// Stores one cluster as it is in the next free host cluster; returns
    /// its L2 entry.
    fn standard(&mut self, bytes: &[u8]) -> io::Result<u64> {
        let offset = self.end();
        check_offset(offset, MAX_HOST_OFFSET)?;
        self.write_at(offset, bytes)?;
        self.refs.push(1);
        Ok(offset | COPIED)
    }

    /// The host clusters so far.
    fn clusters(&self) -> u64 {
        self.refs.len() as u64
    }

    /// Takes the next `clusters` free host clusters for metadata, each
    /// counted once; returns their offset.
    fn reserve(&mut self, clusters: u64) -> u64 {
        let offset = self.end();
        self.refs.resize(self.refs.len() + clusters as usize, 1);
        offset
    }

    /// Stores one compressed cluster right after the compressed data
    /// before it where that can be (as QEMU does), else at the next free
    /// host cluster; returns its L2 entry.
    fn compressed(&mut self, packed: &[u8]) -> io::Result<u64> {
        let len = packed.len() as u64;
        let offset = self.compressed_offset(len)?;
        check_offset(offset + len, 1 << CSIZE_SHIFT)?;
        self.pack(packed)?;
        for cluster in touched_clusters(offset, len) {
            self.refs[cluster as usize] += 1;
        }
        Ok(compressed_entry(offset, len))
    }

    /// Where compressed data of `len` bytes goes: the tail of the open
    /// cluster when it fits there, or runs on into the next cluster while
    /// that one is still free; otherwise (the open cluster given up) the
    /// next free cluster.
    fn compressed_offset(&mut self, len: u64) -> io::Result<u64> {
        if let Some(open) = &self.open {
            let used = open.bytes.len() as u64;
            let fits = used + len <= CLUSTER;
            let grows = open.offset + CLUSTER == self.end();
            // A refcount must not overflow; it never comes near (a
            // cluster holds at most a few thousand compressed clusters).
            let countable = self.refs[(open.offset / CLUSTER) as usize] < u16::MAX;
            if (fits || grows) && countable {
                return Ok(open.offset + used);
            }
        }
        self.close()?;
        Ok(self.end())
    }

    /// Appends `bytes` to the open cluster, opening new host clusters at
    /// the end (with no count yet) as it fills; full clusters are written.
    fn pack(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            if self.open.is_none() {
                self.open = Some(OpenCluster {
                    offset: self.end(),
                    bytes: Vec::with_capacity(CLUSTER as usize),
                });
                self.refs.push(0);
            }
            let open = self.open.as_mut().expect("opened above");
            let take = (CLUSTER as usize - open.bytes.len()).min(bytes.len());
            open.bytes.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if open.bytes.len() == CLUSTER as usize {
                self.close()?;
            }
        }
        Ok(())
    }

    /// Writes the open cluster, its tail zeros, and gives it up.
    fn close(&mut self) -> io::Result<()> {
        if let Some(mut open) = self.open.take() {
            open.bytes.resize(CLUSTER as usize, 0);
            self.write_at(open.offset, &open.bytes)?;
        }
        Ok(())
    }

    /// Writes the refcount table at `table_offset` and its `blocks`
    /// refcount blocks from `blocks_offset`: the counts of every host
    /// cluster, so every cluster must be reserved by now.
    fn write_refcounts(
        &mut self,
        table_offset: u64,
        blocks_offset: u64,
        blocks: u64,
    ) -> io::Result<()> {
        debug_assert!(self.clusters() <= blocks * REFS_PER_BLOCK);
        let table_len = blocks_offset - table_offset;
        let mut table = vec![0u8; table_len as usize];
        for block in 0..blocks {
            put_be64(
                &mut table,
                (block * 8) as usize,
                blocks_offset + block * CLUSTER,
            );
        }
        self.write_at(table_offset, &table)?;
        for block in 0..blocks {
            let bytes = refcount_block(&self.refs, block);
            self.write_at(blocks_offset + block * CLUSTER, &bytes)?;
        }
        Ok(())
    }

    /// Flushes, and sets the file's length to `len` (cutting what it may
    /// have held before); returns it.
    fn end_file(mut self, len: u64) -> io::Result<u64> {
        self.out.flush()?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.set_len(len)?;
        Ok(len)
    }
}

/// Refcount block `block`: the 16-bit counts of its clusters (zero past
/// the last cluster).
fn refcount_block(refs: &[u16], block: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; CLUSTER as usize];
    let start = (block * REFS_PER_BLOCK) as usize;
    let end = (start + REFS_PER_BLOCK as usize).min(refs.len());
    for (i, &count) in refs[start..end].iter().enumerate() {
        put_be16(&mut bytes, i * 2, count);
    }
    bytes
}

/// Refuses a host offset that its entry cannot hold (the file would be
/// tens of petabytes).
fn check_offset(offset: u64, limit: u64) -> io::Result<()> {
    if offset >= limit {
        return Err(io::Error::other(format!(
            "qcow2: host offset {offset} is beyond what an entry holds ({limit})"
        )));
    }
    Ok(())
}

/// The header fields kiln sets (the others are zero: no backing file, no
/// encryption, no snapshots, no features but the compression type).
struct Header {
    /// The virtual disk size in bytes.
    size: u64,
    /// Entries of the L1 table.
    l1_size: u32,
    /// Where the L1 table starts (cluster-aligned).
    l1_table_offset: u64,
    /// Where the refcount table starts (cluster-aligned).
    refcount_table_offset: u64,
    /// Clusters of the refcount table.
    refcount_table_clusters: u32,
    /// [`COMPRESSION_ZLIB`] or [`COMPRESSION_ZSTD`]; the latter also sets
    /// its incompatible feature bit.
    compression_type: u8,
}

impl Header {
    /// The header and the end of its (empty) extension area.
    fn encode(&self) -> Vec<u8> {
        // The extension area ends with an 8-byte zero type and length.
        let mut b = vec![0u8; HEADER_LENGTH as usize + 8];
        b[0..4].copy_from_slice(b"QFI\xfb"); // magic
        put_be32(&mut b, 4, 3); // version
        put_be32(&mut b, 20, CLUSTER_BITS); // cluster_bits
        put_be64(&mut b, 24, self.size); // size
        put_be32(&mut b, 36, self.l1_size); // l1_size
        put_be64(&mut b, 40, self.l1_table_offset); // l1_table_offset
        put_be64(&mut b, 48, self.refcount_table_offset); // refcount_table_offset
        put_be32(&mut b, 56, self.refcount_table_clusters); // refcount_table_clusters
        let incompatible = if self.compression_type == COMPRESSION_ZLIB {
            0
        } else {
            INCOMPAT_COMPRESSION_TYPE
        };
        put_be64(&mut b, 72, incompatible); // incompatible_features
        put_be32(&mut b, 96, REFCOUNT_ORDER); // refcount_order
        put_be32(&mut b, 100, HEADER_LENGTH); // header_length
        b[104] = self.compression_type; // compression_type
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refcount_blocks_count_themselves() {
        // Header + one table + one block.
        assert_eq!(refcount_layout(1), (1, 1));
        // One block counts 32768 clusters, the table and itself among them.
        assert_eq!(refcount_layout(REFS_PER_BLOCK - 2), (1, 1));
        // One cluster more, and the second block must count itself too.
        assert_eq!(refcount_layout(REFS_PER_BLOCK - 1), (1, 2));
        // 8192 blocks fill one table cluster; one more needs a second.
        let full = 8192 * REFS_PER_BLOCK - 8192 - 1;
        assert_eq!(refcount_layout(full), (1, 8192));
        assert_eq!(refcount_layout(full + 1), (2, 8193));
        for used in [1, 5000, REFS_PER_BLOCK * 3 + 7, full + 12345] {
            let (table, blocks) = refcount_layout(used);
            let total = used + table + blocks;
            assert!(blocks * REFS_PER_BLOCK >= total, "{used}");
            assert!((blocks - 1) * REFS_PER_BLOCK < total, "{used}: least");
            assert!(table * CLUSTER >= blocks * 8, "{used}");
        }
    }

    #[test]
    fn compressed_entries_name_the_sectors_they_reach() {
        // 100 bytes inside one sector: no additional sector.
        assert_eq!(compressed_entry(70_000, 100), COMPRESSED | 70_000);
        // From the last byte of a sector into the next one.
        assert_eq!(
            compressed_entry(511, 2),
            COMPRESSED | (1 << CSIZE_SHIFT) | 511
        );
        // The largest: 65535 bytes from the last byte of a sector.
        let entry = compressed_entry(CLUSTER + 511, CLUSTER - 1);
        assert_eq!((entry >> CSIZE_SHIFT) & 0xff, 128);
        assert_eq!(entry & ((1 << CSIZE_SHIFT) - 1), CLUSTER + 511);
        // Counted in both clusters it crosses, only the first if it ends
        // on the boundary.
        assert_eq!(touched_clusters(CLUSTER - 10, 20), 0..=1);
        assert_eq!(touched_clusters(CLUSTER - 10, 10), 0..=0);
    }

    #[test]
    fn packed_clusters_are_counted_once_per_cluster_they_touch() {
        let file = tempfile::tempfile().unwrap();
        let mut host = Host::new(file);
        host.refs.push(1); // the header
        let a = host.compressed(&[1; 40_000]).unwrap();
        let b = host.compressed(&[2; 40_000]).unwrap(); // runs into cluster 2
        let s = host.standard(&[3; CLUSTER as usize]).unwrap(); // cluster 3
        let c = host.compressed(&[4; 30_000]).unwrap(); // tail of cluster 2
        let d = host.compressed(&[5; 25_000]).unwrap(); // cluster 2 is shut in: 4
        host.close().unwrap();
        assert_eq!(a & ((1 << CSIZE_SHIFT) - 1), CLUSTER);
        assert_eq!(b & ((1 << CSIZE_SHIFT) - 1), CLUSTER + 40_000);
        assert_eq!(s, (3 * CLUSTER) | COPIED);
        assert_eq!(c & ((1 << CSIZE_SHIFT) - 1), CLUSTER + 80_000);
        assert_eq!(d & ((1 << CSIZE_SHIFT) - 1), 4 * CLUSTER);
        assert_eq!(host.refs, vec![1, 2, 2, 1, 1]);
    }

    #[test]
    fn header_fields() {
        let header = Header {
            size: 3 << 30,
            l1_size: 6,
            l1_table_offset: 5 * CLUSTER,
            refcount_table_offset: 6 * CLUSTER,
            refcount_table_clusters: 1,
            compression_type: COMPRESSION_ZSTD,
        };
        let b = header.encode();
        assert_eq!(&b[..8], b"QFI\xfb\0\0\0\x03");
        assert_eq!(b[23], 16);
        assert_eq!(u64::from_be_bytes(b[24..32].try_into().unwrap()), 3 << 30);
        assert_eq!(b[79], 8);
        assert_eq!(b[99], 4);
        assert_eq!(b[103], 112);
        assert_eq!(b[104], 1);
        assert!(b[105..].iter().all(|&x| x == 0));
    }
}
