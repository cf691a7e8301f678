//! Android sparse images (AOSP libsparse's `sparse_format.h`), as fastboot
//! and `simg2img` take them.
//!
//! A 28-byte file header, then chunks, each a 12-byte chunk header and its
//! data, covering the image's blocks in order: raw (the blocks' bytes),
//! fill (one 32-bit word repeated over the blocks), don't care (blocks
//! nothing needs to write: all-zero ones here) and, last, an optional CRC32
//! of the whole expanded image. All fields are little-endian.
//!
//! The file header counts the chunks, so it is written as a placeholder
//! first and again once the image has passed. A raw chunk's header counts
//! its blocks: a run of raw blocks is kept in memory up to [`RAW_BUFFER`]
//! bytes, and a longer one has its header filled in when it ends.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};

use crate::length::{invalid, Length};
use crate::units::{Unit, Units};
use crate::{ContainerOptions, Encoder};

/// `sparse_header.magic`.
const SPARSE_HEADER_MAGIC: u32 = 0xed26_ff3a;
/// `sparse_header.major_version`: readers reject a higher one.
const SPARSE_HEADER_MAJOR_VER: u16 = 1;
/// `sparse_header.minor_version`.
const SPARSE_HEADER_MINOR_VER: u16 = 0;
/// `sparse_header.file_hdr_sz`: the file header's length.
const SPARSE_HEADER_LEN: usize = 28;
/// `sparse_header.chunk_hdr_sz`: a chunk header's length.
const CHUNK_HEADER_LEN: usize = 12;

/// `chunk_header.chunk_type` of a raw chunk: the blocks' bytes follow.
const CHUNK_TYPE_RAW: u16 = 0xCAC1;
/// A fill chunk: one 32-bit word follows, repeated over the blocks.
const CHUNK_TYPE_FILL: u16 = 0xCAC2;
/// A don't-care chunk: no data; the blocks are left as they are (zeros
/// when the image is expanded to a file).
const CHUNK_TYPE_DONT_CARE: u16 = 0xCAC3;
/// A CRC32 chunk: covers no blocks; the CRC-32 of the expanded image so far
/// follows.
const CHUNK_TYPE_CRC32: u16 = 0xCAC4;

/// The block sizes tried, largest first: the first that divides the image
/// size is taken (4096 is what `img2simg` uses and fastboot expects).
const BLOCK_SIZES: [u64; 3] = [4096, 1024, 512];

/// How many bytes of a run of raw blocks are kept before its chunk header
/// is written as a placeholder and filled in when the run ends (a seek
/// back, so only for long runs).
const RAW_BUFFER: usize = 1 << 20;

/// The Android sparse encoder into `out`.
///
/// # Errors
/// `InvalidInput` for an image size that is not a multiple of 512 bytes,
/// or of more blocks than the header can count.
pub(crate) fn encoder(options: &ContainerOptions, out: File) -> io::Result<Box<dyn Encoder>> {
    Ok(Box::new(sparse_encoder(options, out)?))
}

fn sparse_encoder(options: &ContainerOptions, out: File) -> io::Result<SparseEncoder> {
    let size = options.size;
    let blk_sz = block_size(size)?;
    let total_blks = u32::try_from(size / blk_sz).map_err(|_| {
        invalid(format!(
            "android-sparse: an image of {size} bytes has more than 2^32 - 1 blocks of {blk_sz} bytes"
        ))
    })?;
    let blk_sz = u32::try_from(blk_sz).expect("a block size of BLOCK_SIZES");
    let mut out = BufWriter::with_capacity(RAW_BUFFER, out);
    let header = FileHeader {
        blk_sz,
        total_blks,
        total_chunks: 0,
        image_checksum: 0,
    };
    out.write_all(&header.encode())?;
    Ok(SparseEncoder {
        units: Units::new(blk_sz as usize),
        length: Length::new("android-sparse", size),
        chunks: Chunks {
            out,
            header,
            written: SPARSE_HEADER_LEN as u64,
            run: Run::None,
            raw: Vec::with_capacity(RAW_BUFFER),
            crc: options.sparse_crc.then(crc32fast::Hasher::new),
            // A raw chunk's `total_sz` must fit in 32 bits.
            max_raw_blocks: (u32::MAX - CHUNK_HEADER_LEN as u32) / blk_sz,
        },
    })
}

/// The block size for an image of `size` bytes: the largest of
/// [`BLOCK_SIZES`] that divides it.
fn block_size(size: u64) -> io::Result<u64> {
    BLOCK_SIZES
        .into_iter()
        .find(|b| size % b == 0)
        .ok_or_else(|| {
            invalid(format!(
                "android-sparse: the image size {size} is not a multiple of 512 bytes (the smallest block size)"
            ))
        })
}

/// The file header (`sparse_header_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileHeader {
    /// `blk_sz`: the block size in bytes, a multiple of 4.
    blk_sz: u32,
    /// `total_blks`: the blocks of the expanded image.
    total_blks: u32,
    /// `total_chunks`: the chunks that follow, the CRC32 chunk included.
    total_chunks: u32,
    /// `image_checksum`: libsparse writes 0 and no reader checks it (the
    /// CRC32 chunk is what readers verify), so 0 here too.
    image_checksum: u32,
}

impl FileHeader {
    fn encode(&self) -> [u8; SPARSE_HEADER_LEN] {
        let mut b = [0; SPARSE_HEADER_LEN];
        b[0..4].copy_from_slice(&SPARSE_HEADER_MAGIC.to_le_bytes());
        b[4..6].copy_from_slice(&SPARSE_HEADER_MAJOR_VER.to_le_bytes());
        b[6..8].copy_from_slice(&SPARSE_HEADER_MINOR_VER.to_le_bytes());
        b[8..10].copy_from_slice(&(SPARSE_HEADER_LEN as u16).to_le_bytes());
        b[10..12].copy_from_slice(&(CHUNK_HEADER_LEN as u16).to_le_bytes());
        b[12..16].copy_from_slice(&self.blk_sz.to_le_bytes());
        b[16..20].copy_from_slice(&self.total_blks.to_le_bytes());
        b[20..24].copy_from_slice(&self.total_chunks.to_le_bytes());
        b[24..28].copy_from_slice(&self.image_checksum.to_le_bytes());
        b
    }

    /// Reads a header back; `None` unless it is one this module writes
    /// (magic, version and header lengths).
    #[cfg(test)]
    fn decode(b: &[u8]) -> Option<FileHeader> {
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        if b.len() < SPARSE_HEADER_LEN
            || u32_at(0) != SPARSE_HEADER_MAGIC
            || u16_at(4) != SPARSE_HEADER_MAJOR_VER
            || usize::from(u16_at(8)) != SPARSE_HEADER_LEN
            || usize::from(u16_at(10)) != CHUNK_HEADER_LEN
        {
            return None;
        }
        Some(FileHeader {
            blk_sz: u32_at(12),
            total_blks: u32_at(16),
            total_chunks: u32_at(20),
            image_checksum: u32_at(24),
        })
    }
}

/// A chunk header (`chunk_header_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ChunkHeader {
    /// `chunk_type`: one of the `CHUNK_TYPE_*`.
    chunk_type: u16,
    /// `chunk_sz`: the blocks of the expanded image it covers.
    chunk_sz: u32,
    /// `total_sz`: its length in the sparse file, header included.
    total_sz: u32,
}

impl ChunkHeader {
    fn encode(&self) -> [u8; CHUNK_HEADER_LEN] {
        let mut b = [0; CHUNK_HEADER_LEN];
        b[0..2].copy_from_slice(&self.chunk_type.to_le_bytes());
        // b[2..4]: reserved1, zero.
        b[4..8].copy_from_slice(&self.chunk_sz.to_le_bytes());
        b[8..12].copy_from_slice(&self.total_sz.to_le_bytes());
        b
    }

    #[cfg(test)]
    fn decode(b: &[u8]) -> ChunkHeader {
        ChunkHeader {
            chunk_type: u16::from_le_bytes([b[0], b[1]]),
            chunk_sz: u32::from_le_bytes(b[4..8].try_into().unwrap()),
            total_sz: u32::from_le_bytes(b[8..12].try_into().unwrap()),
        }
    }
}

/// The encoder: the image cut into blocks, the blocks turned into chunks.
struct SparseEncoder {
    units: Units,
    /// The image bytes received so far.
    length: Length,
    chunks: Chunks,
}

/// The chunk writer.
struct Chunks {
    out: BufWriter<File>,
    /// The file header, its chunk count kept up to date.
    header: FileHeader,
    /// The bytes of the sparse file written so far (through `out`).
    written: u64,
    /// The run of blocks that will make the next chunk.
    run: Run,
    /// The raw blocks of a [`Run::Raw`] whose header is not written yet.
    raw: Vec<u8>,
    /// The CRC-32 of the expanded image so far, with `sparse_crc`.
    crc: Option<crc32fast::Hasher>,
    /// The most blocks a raw chunk holds.
    max_raw_blocks: u32,
}

/// An open run of blocks, to become one chunk.
enum Run {
    None,
    /// Blocks that are all `word` (a non-zero one).
    Fill {
        word: u32,
        blocks: u32,
    },
    /// Blocks of data: in `Chunks::raw` until the header is written at
    /// `header_at`, written straight after that.
    Raw {
        blocks: u32,
        header_at: Option<u64>,
    },
}

impl Chunks {
    fn blk_sz(&self) -> u32 {
        self.header.blk_sz
    }

    fn unit(&mut self, unit: Unit<'_>) -> io::Result<()> {
        match unit {
            Unit::Zeros { count, .. } => {
                self.close_run()?;
                if let Some(crc) = &mut self.crc {
                    crc_zeros(crc, count * u64::from(self.header.blk_sz));
                }
                // The whole image's block count fits in 32 bits.
                let chunk_sz = u32::try_from(count).expect("at most total_blks blocks");
                self.chunk(CHUNK_TYPE_DONT_CARE, chunk_sz, 0)?;
                Ok(())
            }
            Unit::Data { bytes, .. } => {
                if let Some(crc) = &mut self.crc {
                    crc.update(bytes);
                }
                let max_raw_blocks = self.max_raw_blocks;
                match (fill_word(bytes), &mut self.run) {
                    (Some(word), Run::Fill { word: w, blocks }) if word == *w => {
                        *blocks += 1;
                        Ok(())
                    }
                    (Some(word), _) => {
                        self.close_run()?;
                        self.run = Run::Fill { word, blocks: 1 };
                        Ok(())
                    }
                    (None, Run::Raw { blocks, .. }) if *blocks < max_raw_blocks => {
                        *blocks += 1;
                        self.raw_bytes(bytes)
                    }
                    (None, _) => {
                        self.close_run()?;
                        self.run = Run::Raw {
                            blocks: 1,
                            header_at: None,
                        };
                        self.raw_bytes(bytes)
                    }
                }
            }
        }
    }

    /// The bytes of the next block of the open raw run.
    fn raw_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Run::Raw { header_at, .. } = &mut self.run else {
            unreachable!("raw bytes outside a raw run");
        };
        if header_at.is_none() && self.raw.len() + bytes.len() > RAW_BUFFER {
            // A long run: its header goes in as a placeholder, filled in
            // when the run ends.
            *header_at = Some(self.written);
            self.write(&[0; CHUNK_HEADER_LEN])?;
            let raw = std::mem::take(&mut self.raw);
            self.write(&raw)?;
            self.raw = raw;
            self.raw.clear();
            return self.write(bytes);
        }
        if header_at.is_some() {
            self.write(bytes)
        } else {
            self.raw.extend_from_slice(bytes);
            Ok(())
        }
    }

    /// Writes the chunk of the open run, if there is one.
    fn close_run(&mut self) -> io::Result<()> {
        match std::mem::replace(&mut self.run, Run::None) {
            Run::None => Ok(()),
            Run::Fill { word, blocks } => {
                self.chunk(CHUNK_TYPE_FILL, blocks, 4)?;
                self.write(&word.to_le_bytes())
            }
            Run::Raw { blocks, header_at } => {
                let header = ChunkHeader {
                    chunk_type: CHUNK_TYPE_RAW,
                    chunk_sz: blocks,
                    total_sz: CHUNK_HEADER_LEN as u32 + blocks * self.blk_sz(),
                };
                self.header.total_chunks += 1;
                match header_at {
                    None => {
                        self.write(&header.encode())?;
                        let raw = std::mem::take(&mut self.raw);
                        self.write(&raw)?;
                        self.raw = raw;
                        self.raw.clear();
                        Ok(())
                    }
                    Some(at) => {
                        self.out.seek(SeekFrom::Start(at))?;
                        self.out.write_all(&header.encode())?;
                        self.out.seek(SeekFrom::Start(self.written))?;
                        Ok(())
                    }
                }
            }
        }
    }

    /// Writes a chunk header (the data, `data_len` bytes, follows from the
    /// caller) and counts the chunk.
    fn chunk(&mut self, chunk_type: u16, chunk_sz: u32, data_len: u32) -> io::Result<()> {
        let header = ChunkHeader {
            chunk_type,
            chunk_sz,
            total_sz: CHUNK_HEADER_LEN as u32 + data_len,
        };
        self.header.total_chunks += 1;
        self.write(&header.encode())
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Ends the file: the open run, the CRC32 chunk, the header's chunk
    /// count. Returns the file's length.
    fn finish(mut self) -> io::Result<u64> {
        self.close_run()?;
        if let Some(crc) = self.crc.take() {
            self.chunk(CHUNK_TYPE_CRC32, 0, 4)?;
            self.write(&crc.finalize().to_le_bytes())?;
        }
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&self.header.encode())?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        // The file may have held more before.
        file.set_len(self.written)?;
        Ok(self.written)
    }
}

/// The word a block repeats, if it is one 32-bit word over and over.
fn fill_word(block: &[u8]) -> Option<u32> {
    let (first, rest) = block.split_first_chunk::<4>()?;
    rest.chunks_exact(4)
        .all(|w| w == first)
        .then(|| u32::from_le_bytes(*first))
}

/// Adds `len` zero bytes to `crc` without hashing them one by one: the
/// CRC of a power-of-two run of zeros is doubled by combining it with
/// itself.
fn crc_zeros(crc: &mut crc32fast::Hasher, len: u64) {
    const PIECE: u64 = 1 << 16;
    let zeros = [0u8; PIECE as usize];
    let mut pieces = len / PIECE;
    if pieces > 0 {
        // `power` covers PIECE << k zeros at step k.
        let mut power = crc32fast::Hasher::new();
        power.update(&zeros);
        let mut run = crc32fast::Hasher::new();
        while pieces > 0 {
            if pieces & 1 == 1 {
                run.combine(&power);
            }
            let twice = power.clone();
            power.combine(&twice);
            pieces >>= 1;
        }
        crc.combine(&run);
    }
    crc.update(&zeros[..(len % PIECE) as usize]);
}

impl Encoder for SparseEncoder {
    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.length.take(buf.len() as u64)?;
        let chunks = &mut self.chunks;
        self.units.data(buf, &mut |u| chunks.unit(u))
    }

    fn zeros(&mut self, len: u64) -> io::Result<()> {
        self.length.take(len)?;
        let chunks = &mut self.chunks;
        self.units.zeros(len, &mut |u| chunks.unit(u))
    }

    fn finish(mut self: Box<Self>) -> io::Result<Option<u64>> {
        self.length.complete()?;
        let chunks = &mut self.chunks;
        self.units.finish(&mut |u| chunks.unit(u))?;
        let len = self.chunks.finish()?;
        Ok(Some(len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Expands a sparse file as libsparse's reader does, checking every
    /// chunk's lengths and the CRC32 chunk. Returns the image and the
    /// chunk types in order.
    fn expand(file: &[u8]) -> (Vec<u8>, Vec<u16>) {
        let header = FileHeader::decode(file).expect("a sparse header");
        assert_eq!(header.image_checksum, 0);
        let blk = header.blk_sz as usize;
        let mut image = Vec::new();
        let mut types = Vec::new();
        let mut at = SPARSE_HEADER_LEN;
        for _ in 0..header.total_chunks {
            let c = ChunkHeader::decode(&file[at..]);
            let data = &file[at + CHUNK_HEADER_LEN..at + c.total_sz as usize];
            let len = c.chunk_sz as usize * blk;
            match c.chunk_type {
                CHUNK_TYPE_RAW => {
                    assert_eq!(data.len(), len);
                    image.extend_from_slice(data);
                }
                CHUNK_TYPE_FILL => {
                    assert_eq!(data.len(), 4);
                    image.extend(data.iter().cycle().take(len));
                }
                CHUNK_TYPE_DONT_CARE => {
                    assert!(data.is_empty());
                    image.resize(image.len() + len, 0);
                }
                CHUNK_TYPE_CRC32 => {
                    assert_eq!(c.chunk_sz, 0);
                    let want = u32::from_le_bytes(data.try_into().unwrap());
                    assert_eq!(crc32fast::hash(&image), want);
                }
                t => panic!("chunk type {t:#x}"),
            }
            types.push(c.chunk_type);
            at += c.total_sz as usize;
        }
        assert_eq!(at, file.len());
        assert_eq!(image.len(), header.total_blks as usize * blk);
        (image, types)
    }

    fn encode(size: u64, crc: bool, steps: &[(bool, Vec<u8>)]) -> Vec<u8> {
        encode_capped(size, crc, steps, None)
    }

    /// Encodes with raw chunks of at most `cap` blocks, if given.
    fn encode_capped(size: u64, crc: bool, steps: &[(bool, Vec<u8>)], cap: Option<u32>) -> Vec<u8> {
        let mut options = ContainerOptions::new(crate::ImageFormat::AndroidSparse, size);
        options.sparse_crc = crc;
        let file = tempfile::tempfile().unwrap();
        let mut enc = sparse_encoder(&options, file.try_clone().unwrap()).unwrap();
        if let Some(cap) = cap {
            enc.chunks.max_raw_blocks = cap;
        }
        let mut enc: Box<dyn Encoder> = Box::new(enc);
        for (gap, bytes) in steps {
            if *gap {
                enc.zeros(bytes.len() as u64).unwrap();
            } else {
                enc.data(bytes).unwrap();
            }
        }
        let len = enc.finish().unwrap().unwrap();
        let mut file = file;
        let mut out = Vec::new();
        file.seek(SeekFrom::Start(0)).unwrap();
        io::Read::read_to_end(&mut file, &mut out).unwrap();
        assert_eq!(out.len() as u64, len);
        out
    }

    proptest! {
        #[test]
        fn expands_to_the_image(
            crc: bool,
            steps in proptest::collection::vec(
                (any::<bool>(), 0u8..4, 0usize..6000),
                0..12,
            ),
            pad in 0u64..8,
        ) {
            // Bytes from a small alphabet, so that zero and fill blocks
            // occur; some pieces a single repeated word.
            let mut steps: Vec<(bool, Vec<u8>)> = steps
                .into_iter()
                .enumerate()
                .map(|(i, (gap, kind, len))| {
                    let bytes = match kind {
                        0 => vec![0; len],
                        1 => [7, 0, 0, 1].iter().cycle().take(len).copied().collect(),
                        _ => (0..len).map(|j| ((i * 31 + j * 7) % 251) as u8).collect(),
                    };
                    (gap, bytes)
                })
                .collect();
            let size: usize = steps.iter().map(|(_, b)| b.len()).sum();
            let size = (size as u64).div_ceil(512) * 512 + pad * 512;
            steps.push((true, vec![0; (size as usize) - steps.iter().map(|(_, b)| b.len()).sum::<usize>()]));
            let image: Vec<u8> = steps
                .iter()
                .flat_map(|(gap, b)| if *gap { vec![0; b.len()] } else { b.clone() })
                .collect();
            let out = encode(size, crc, &steps);
            let (expanded, types) = expand(&out);
            prop_assert_eq!(expanded, image);
            prop_assert_eq!(types.last() == Some(&CHUNK_TYPE_CRC32), crc);
            // Runs are merged: no two neighbouring chunks of the same kind
            // but fill (whose words may differ).
            for w in types.windows(2) {
                prop_assert!(w[0] != w[1] || w[0] == CHUNK_TYPE_FILL, "{:x?}", types);
            }
        }
    }

    #[test]
    fn block_sizes() {
        assert_eq!(block_size(0).unwrap(), 4096);
        assert_eq!(block_size(8192).unwrap(), 4096);
        assert_eq!(block_size(4096 + 1024).unwrap(), 1024);
        assert_eq!(block_size(4096 + 512).unwrap(), 512);
        assert_eq!(block_size(1536).unwrap(), 512);
        let e = block_size(4097).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn refuses_too_many_blocks_and_wrong_lengths() {
        let options = ContainerOptions::new(crate::ImageFormat::AndroidSparse, 4096 << 32);
        let e = encoder(&options, tempfile::tempfile().unwrap())
            .err()
            .unwrap();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);

        let options = ContainerOptions::new(crate::ImageFormat::AndroidSparse, 4096);
        let mut enc = encoder(&options, tempfile::tempfile().unwrap()).unwrap();
        enc.zeros(4000).unwrap();
        assert_eq!(
            enc.data(&[1; 97]).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert!(enc.finish().is_err());
    }

    #[test]
    fn long_runs_are_one_chunk() {
        // 3 MiB of data (past the buffer, so its header is filled in
        // later), 2 MiB of one word, 1 MiB of zeros, one data block.
        let data: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 253) as u8 + 1).collect();
        let fill: Vec<u8> = [1, 2, 3, 4].iter().cycle().take(2 << 20).copied().collect();
        let size = (6 << 20) + 4096;
        let steps = vec![
            (false, data),
            (false, fill),
            (true, vec![0; 1 << 20]),
            (false, vec![9; 4096]),
        ];
        let out = encode(size, true, &steps);
        let (image, types) = expand(&out);
        assert_eq!(image.len() as u64, size);
        assert_eq!(
            types,
            [
                CHUNK_TYPE_RAW,
                CHUNK_TYPE_FILL,
                CHUNK_TYPE_DONT_CARE,
                CHUNK_TYPE_FILL,
                CHUNK_TYPE_CRC32
            ]
        );
        assert_eq!(out.len(), 28 + (12 + (3 << 20)) + 16 + 12 + 16 + 16);
    }

    #[test]
    fn raw_chunks_are_capped() {
        // 700 data blocks (2.8 MiB, past the buffer) in chunks of at most
        // 300 blocks: 300 + 300 + 100.
        let data: Vec<u8> = (0..700 * 4096).map(|i: u32| (i % 251) as u8 + 1).collect();
        let out = encode_capped(700 * 4096, true, &[(false, data.clone())], Some(300));
        let (image, types) = expand(&out);
        assert!(image == data);
        assert_eq!(
            types,
            [
                CHUNK_TYPE_RAW,
                CHUNK_TYPE_RAW,
                CHUNK_TYPE_RAW,
                CHUNK_TYPE_CRC32
            ]
        );
        let sizes: Vec<u32> = [28, 28 + 12 + 300 * 4096, 28 + 2 * (12 + 300 * 4096)]
            .iter()
            .map(|&at| ChunkHeader::decode(&out[at..]).chunk_sz)
            .collect();
        assert_eq!(sizes, [300, 300, 100]);
        // The real cap: total_sz fits in 32 bits.
        let options = ContainerOptions::new(crate::ImageFormat::AndroidSparse, 4096);
        let enc = sparse_encoder(&options, tempfile::tempfile().unwrap()).unwrap();
        let cap = u64::from(enc.chunks.max_raw_blocks);
        assert!(12 + cap * 4096 <= u64::from(u32::MAX));
        assert!(12 + (cap + 1) * 4096 > u64::from(u32::MAX));
    }

    #[test]
    fn crc_of_zeros() {
        for len in [0, 1, 65535, 65536, 65537, 3 << 16, (5 << 16) + 77, 1 << 22] {
            let mut fast = crc32fast::Hasher::new();
            fast.update(b"before");
            crc_zeros(&mut fast, len);
            let mut slow = crc32fast::Hasher::new();
            slow.update(b"before");
            slow.update(&vec![0; len as usize]);
            assert_eq!(fast.finalize(), slow.finalize(), "{len}");
        }
    }

    #[test]
    fn fill_words() {
        assert_eq!(fill_word(&[1, 2, 3, 4, 1, 2, 3, 4]), Some(0x0403_0201));
        assert_eq!(fill_word(&[1, 2, 3, 4, 1, 2, 3, 5]), None);
        assert_eq!(fill_word(&[]), None);
    }
}
