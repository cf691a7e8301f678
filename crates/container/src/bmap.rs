//! bmap files (bmaptool's format, version 2.0): which blocks of the raw
//! image hold data, with the SHA-256 of each mapped range.
//!
//! `bmaptool copy --bmap FILE` writes only the mapped blocks to the
//! target, checking each range's SHA-256 as it reads it, and checks the
//! bmap file's own SHA-256 first (computed with the checksum's 64 digits
//! replaced by ASCII zeros). The layout and comments follow what
//! `bmaptool create` writes, with nothing that changes between builds.
//!
//! A block is mapped unless it is all zeros. A range's SHA-256 covers its
//! blocks' bytes as they are in the image file: the last block of an image
//! that is not a whole number of blocks counts only the bytes it has (what
//! bmaptool reads there).

use std::fmt::Write as _;
use std::io::{self, Write};

use sha2::{Digest, Sha256};

use crate::length::{invalid, Length};
use crate::units::{Unit, Units};
use crate::Encoder;

/// The bmap format version written.
const BMAP_VERSION: &str = "2.0";
/// The block size of the map, bmaptool's.
const BLOCK_SIZE: usize = 4096;
/// The checksum type, as hashlib names it.
const CHECKSUM_TYPE: &str = "sha256";
/// The length of a SHA-256 in hex digits.
const CHECKSUM_LEN: usize = 64;

/// An encoder that passes the image on to another and records its bmap.
pub struct Bmap {
    inner: Box<dyn Encoder>,
    out: Box<dyn Write + Send>,
    units: Units,
    map: Map,
    /// The image size.
    size: u64,
    /// The image bytes received so far.
    length: Length,
}

/// The mapped ranges found so far.
struct Map {
    /// The image size, to hash only the bytes of a partial last block.
    size: u64,
    /// Closed ranges: first block, last block, SHA-256.
    ranges: Vec<(u64, u64, [u8; 32])>,
    /// The open range: first block, last block, its hash so far.
    open: Option<(u64, u64, Sha256)>,
}

impl Bmap {
    /// Wraps `inner`: the image (`size` bytes) goes on to it unchanged, and
    /// on finish the bmap of the raw image (4096-byte blocks; all-zero
    /// blocks unmapped) is written to `out`.
    ///
    /// Finishing fails (`InvalidInput`, before `inner` is finished) if the
    /// image was not `size` bytes, or is empty: bmaptool takes no bmap of
    /// an empty image.
    pub fn wrap(
        inner: Box<dyn Encoder>,
        size: u64,
        out: Box<dyn Write + Send>,
    ) -> Box<dyn Encoder> {
        Box::new(Bmap {
            inner,
            out,
            units: Units::new(BLOCK_SIZE),
            map: Map {
                size,
                ranges: Vec::new(),
                open: None,
            },
            size,
            length: Length::new("bmap", size),
        })
    }
}

impl Map {
    fn unit(&mut self, unit: Unit<'_>) {
        match unit {
            Unit::Zeros { .. } => self.close(),
            Unit::Data { index, bytes } => {
                // The last block of the image may be shorter than a block.
                let start = index * BLOCK_SIZE as u64;
                let len = (self.size - start).min(BLOCK_SIZE as u64) as usize;
                match &mut self.open {
                    Some((_, last, hash)) if *last + 1 == index => {
                        *last = index;
                        hash.update(&bytes[..len]);
                    }
                    _ => {
                        self.close();
                        let mut hash = Sha256::new();
                        hash.update(&bytes[..len]);
                        self.open = Some((index, index, hash));
                    }
                }
            }
        }
    }

    fn close(&mut self) {
        if let Some((first, last, hash)) = self.open.take() {
            self.ranges.push((first, last, hash.finalize().into()));
        }
    }

    /// The bmap file of an image of `self.size` bytes, all ranges closed.
    fn xml(&self) -> String {
        let blocks = self.size.div_ceil(BLOCK_SIZE as u64);
        let mapped: u64 = self.ranges.iter().map(|(f, l, _)| l - f + 1).sum();
        let mapped_size = mapped * BLOCK_SIZE as u64;
        let percent = mapped as f64 * 100.0 / blocks as f64;
        let mut x = String::new();
        // Writing to a String cannot fail.
        let _ = write!(
            x,
            r#"<?xml version="1.0" ?>
<!-- This file contains the block map for an image file, which is basically
     a list of useful (mapped) block numbers in the image file. In other words,
     it lists only those blocks which contain data (boot sector, partition
     table, file-system metadata, files, directories, extents, etc). These
     blocks have to be copied to the target device. The other blocks do not
     contain any useful data and do not have to be copied to the target
     device. This one was written by kiln: its unmapped blocks are all zeros.

     The 'version' attribute is the block map file format version in the
     'major.minor' format. -->

<bmap version="{BMAP_VERSION}">
    <!-- Image size in bytes: {} -->
    <ImageSize> {} </ImageSize>

    <!-- Size of a block in bytes -->
    <BlockSize> {BLOCK_SIZE} </BlockSize>

    <!-- Count of blocks in the image file -->
    <BlocksCount> {blocks} </BlocksCount>

    <!-- Count of mapped blocks: {} or {percent:.1}% -->
    <MappedBlocksCount> {mapped} </MappedBlocksCount>

    <!-- Type of checksum used in this file -->
    <ChecksumType> {CHECKSUM_TYPE} </ChecksumType>

    <!-- The checksum of this bmap file. When it is calculated, the value of
         the checksum has be zero (all ASCII "0" symbols).  -->
    <BmapFileChecksum> "#,
            human_size(self.size),
            self.size,
            human_size(mapped_size),
        );
        let checksum_at = x.len();
        x.push_str(&"0".repeat(CHECKSUM_LEN));
        x.push_str(
            r#" </BmapFileChecksum>

    <!-- The block map which consists of elements which may either be a
         range of blocks or a single block. The 'chksum' attribute
         (if present) is the checksum of this blocks range. -->
    <BlockMap>
"#,
        );
        for (first, last, hash) in &self.ranges {
            let _ = write!(x, r#"        <Range chksum="{}"> "#, hex(hash));
            if first == last {
                let _ = write!(x, "{first}");
            } else {
                let _ = write!(x, "{first}-{last}");
            }
            x.push_str(" </Range>\n");
        }
        x.push_str("    </BlockMap>\n</bmap>\n");
        let checksum = hex(&Sha256::digest(x.as_bytes()).into());
        x.replace_range(checksum_at..checksum_at + CHECKSUM_LEN, &checksum);
        x
    }
}

/// Lower-case hex digits of a SHA-256.
fn hex(hash: &[u8; 32]) -> String {
    hash.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A size as bmaptool's comments give it ("1.5 MiB").
fn human_size(size: u64) -> String {
    match size {
        1 => "1 byte".into(),
        0..512 => format!("{size} bytes"),
        _ => {
            let mut value = size as f64;
            for unit in ["KiB", "MiB", "GiB", "TiB"] {
                value /= 1024.0;
                if value < 1024.0 {
                    return format!("{value:.1} {unit}");
                }
            }
            format!("{value:.1} EiB")
        }
    }
}

impl Encoder for Bmap {
    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.length.take(buf.len() as u64)?;
        self.inner.data(buf)?;
        let map = &mut self.map;
        self.units.data(buf, &mut |u| {
            map.unit(u);
            Ok(())
        })
    }

    fn zeros(&mut self, len: u64) -> io::Result<()> {
        self.length.take(len)?;
        self.inner.zeros(len)?;
        let map = &mut self.map;
        self.units.zeros(len, &mut |u| {
            map.unit(u);
            Ok(())
        })
    }

    fn finish(mut self: Box<Self>) -> io::Result<Option<u64>> {
        self.length.complete()?;
        if self.size == 0 {
            return Err(invalid("bmap: the image is empty".into()));
        }
        let map = &mut self.map;
        self.units.finish(&mut |u| {
            map.unit(u);
            Ok(())
        })?;
        self.map.close();
        let Bmap {
            inner,
            mut out,
            map,
            ..
        } = *self;
        let len = inner.finish()?;
        out.write_all(map.xml().as_bytes())?;
        out.flush()?;
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::Shared;

    fn bmap(size: u64, steps: &[(bool, Vec<u8>)]) -> (String, Vec<u8>) {
        let raw = Shared::default();
        let xml = Shared::default();
        let mut enc = Bmap::wrap(
            crate::raw::stream(Box::new(raw.clone())),
            size,
            Box::new(xml.clone()),
        );
        for (gap, bytes) in steps {
            if *gap {
                enc.zeros(bytes.len() as u64).unwrap();
            } else {
                enc.data(bytes).unwrap();
            }
        }
        assert_eq!(enc.finish().unwrap(), None);
        let xml = String::from_utf8(xml.bytes()).unwrap();
        let raw = raw.bytes();
        (xml, raw)
    }

    /// The ranges of a bmap: (first, last, chksum).
    fn ranges(xml: &str) -> Vec<(u64, u64, String)> {
        xml.lines()
            .filter_map(|l| l.trim().strip_prefix("<Range chksum=\""))
            .map(|l| {
                let (sum, rest) = l.split_once("\"> ").unwrap();
                let range = rest.strip_suffix(" </Range>").unwrap();
                let (first, last) = match range.split_once('-') {
                    Some((f, l)) => (f.parse().unwrap(), l.parse().unwrap()),
                    None => (range.parse().unwrap(), range.parse().unwrap()),
                };
                (first, last, sum.to_string())
            })
            .collect()
    }

    #[test]
    fn maps_the_data_blocks() {
        let size = 10 * 4096 + 100;
        let steps = vec![
            (false, vec![1; 4096]),
            (true, vec![0; 4096]),
            (false, vec![0; 4096]),
            (false, [vec![0; 4000], vec![2; 200], vec![0; 4088]].concat()),
            (true, vec![0; 4 * 4096 - 96]),
            (false, vec![3; 4096 + 100]),
        ];
        let (xml, raw) = bmap(size, &steps);
        assert_eq!(raw.len() as u64, size);
        let got = ranges(&xml);
        let spans: Vec<_> = got.iter().map(|&(f, l, _)| (f, l)).collect();
        assert_eq!(spans, [(0, 0), (3, 4), (9, 10)]);
        for (first, last, sum) in &got {
            let start = *first as usize * 4096;
            let end = ((*last as usize + 1) * 4096).min(raw.len());
            assert_eq!(*sum, hex(&Sha256::digest(&raw[start..end]).into()));
        }
        assert!(xml.contains("<ImageSize> 41060 </ImageSize>"));
        assert!(xml.contains("<BlocksCount> 11 </BlocksCount>"));
        assert!(xml.contains("<MappedBlocksCount> 5 </MappedBlocksCount>"));
        assert!(xml.contains("        <Range chksum=\""));
        // The file checksum, as bmaptool checks it.
        let (_, rest) = xml.split_once("<BmapFileChecksum> ").unwrap();
        let sum = &rest[..CHECKSUM_LEN];
        let zeroed = xml.replacen(sum, &"0".repeat(CHECKSUM_LEN), 1);
        assert_eq!(sum, hex(&Sha256::digest(zeroed.as_bytes()).into()));
    }

    #[test]
    fn refuses_wrong_lengths() {
        let mut enc = Bmap::wrap(
            crate::raw::stream(Box::new(io::sink())),
            10,
            Box::new(io::sink()),
        );
        assert!(enc.data(&[1; 11]).is_err());
        enc.data(&[1; 9]).unwrap();
        assert_eq!(
            enc.finish().unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        let enc = Bmap::wrap(
            crate::raw::stream(Box::new(io::sink())),
            0,
            Box::new(io::sink()),
        );
        assert!(enc.finish().is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(1), "1 byte");
        assert_eq!(human_size(511), "511 bytes");
        assert_eq!(human_size(512), "0.5 KiB");
        assert_eq!(human_size(3 << 20), "3.0 MiB");
    }
}
