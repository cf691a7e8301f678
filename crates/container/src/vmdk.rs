//! VMDK streamOptimized (VMware's Virtual Disk Format 5.0, "Stream-Optimized
//! Compressed Sparse Extents"): one monolithic file with its descriptor
//! embedded, written strictly front to back.
//!
//! | sector | what |
//! | --- | --- |
//! | 0 | the [sparse extent header](encode_header), `gdOffset` = GD_AT_END |
//! | 1 | the [descriptor](descriptor) text, NUL-padded (at least 20 sectors) |
//! | 128 (`overHead`) | each grain that holds data: a grain marker (its LBA and compressed size), the zlib stream, padded to a sector |
//! | after a group's grains | a GT marker and the group's grain table: 512 little-endian u32, the sector of each grain's marker or 0 |
//! | end − … | a GD marker and the grain directory (the sector of each grain table, 0 for a group without data) |
//! | end − 3 | a footer marker |
//! | end − 2 | the footer: the header with the real `gdOffset` |
//! | end − 1 | the end-of-stream marker |
//!
//! A grain is 64 KiB (128 sectors) and a grain table covers 512 grains
//! (32 MiB). All-zero grains are left out; a group of 512 grains without
//! data gets no grain table (as VMware's own streams), its directory entry
//! 0, which readers take as unallocated. The last grain of an image that is
//! not a whole number of grains is padded with zeros and compressed whole.
//!
//! Grains are compressed in parallel ([`Batch`]) and written in order.
//! Every field is little-endian.

use std::io::{self, BufWriter, Write};

use kiln_sink::stream::write_zeros;

use crate::bytes::{put_le32, put_le64};
use crate::compress::{zlib, Batch};
use crate::length::Length;
use crate::units::{Unit, Units};
use crate::{ContainerOptions, Encoder};

/// The sector, the unit of every offset and size in the format.
const SECTOR: u64 = 512;
/// A grain: 128 sectors, 64 KiB (the size VMware and QEMU write).
const GRAIN_SECTORS: u64 = 128;
const GRAIN_SIZE: u64 = GRAIN_SECTORS * SECTOR;
/// Grain table entries per grain table (the format's maximum).
const GTES_PER_GT: u64 = 512;
/// A grain table's sectors: 512 entries of 4 bytes.
const GT_SECTORS: u64 = GTES_PER_GT * 4 / SECTOR;
/// Where the embedded descriptor starts.
const DESCRIPTOR_OFFSET: u64 = 1;
/// The descriptor's least room, in sectors: as VMware and QEMU reserve,
/// so that a tool rewriting it in place (a new CID) has room.
const DESCRIPTOR_MIN_SECTORS: u64 = 20;
/// The largest disk: 2^32 sectors (2 TiB), QEMU's limit for one extent;
/// the grain tables' u32 sector offsets bound the file likewise.
const MAX_CAPACITY: u64 = 1 << 32;
/// `gdOffset` in the header of a stream: the grain directory is found
/// through the footer.
const GD_AT_END: u64 = u64::MAX;

/// The header's magic, "KDMV" on disk.
const MAGIC: u32 = 0x564D_444B;
/// Version 3: streamOptimized (compressed grains and markers).
const VERSION: u32 = 3;
/// Flags: the newline-detection characters are valid.
const FLAG_NEWLINE_DETECTION: u32 = 1 << 0;
/// Flags: grains are compressed.
const FLAG_COMPRESSED: u32 = 1 << 16;
/// Flags: the stream has markers.
const FLAG_MARKERS: u32 = 1 << 17;
/// `compressAlgorithm`: deflate (each grain a zlib stream, RFC 1950).
const COMPRESSION_DEFLATE: u16 = 1;

/// The header's fields: offsets (VMware's `SparseExtentHeader` names).
mod header {
    pub(super) const MAGIC_NUMBER: usize = 0;
    pub(super) const VERSION: usize = 4;
    pub(super) const FLAGS: usize = 8;
    /// The disk size in sectors.
    pub(super) const CAPACITY: usize = 12;
    /// The grain size in sectors.
    pub(super) const GRAIN_SIZE: usize = 20;
    pub(super) const DESCRIPTOR_OFFSET: usize = 28;
    pub(super) const DESCRIPTOR_SIZE: usize = 36;
    pub(super) const NUM_GTES_PER_GT: usize = 44;
    /// The redundant grain directory: none in a stream (0).
    pub(super) const RGD_OFFSET: usize = 48;
    pub(super) const GD_OFFSET: usize = 56;
    /// The sectors before the first grain.
    pub(super) const OVER_HEAD: usize = 64;
    pub(super) const UNCLEAN_SHUTDOWN: usize = 72;
    /// '\n', ' ', '\r', '\n': a transfer that mangles line ends shows here.
    pub(super) const SINGLE_END_LINE_CHAR: usize = 73;
    pub(super) const NON_END_LINE_CHAR: usize = 74;
    pub(super) const DOUBLE_END_LINE_CHAR1: usize = 75;
    pub(super) const DOUBLE_END_LINE_CHAR2: usize = 76;
    pub(super) const COMPRESS_ALGORITHM: usize = 77;
}

/// Markers: a u64 value (a grain's LBA, or a metadata marker's sectors),
/// a u32 size (a grain's compressed bytes; 0 for metadata) and, for
/// metadata, a u32 type; a metadata marker fills its sector.
mod marker {
    pub(super) const VAL: usize = 0;
    pub(super) const SIZE: usize = 8;
    pub(super) const TYPE: usize = 12;
    /// A grain marker's header: the compressed data follows at once.
    pub(super) const GRAIN_HEADER: usize = 12;
    pub(super) const END_OF_STREAM: u32 = 0;
    pub(super) const GRAIN_TABLE: u32 = 1;
    pub(super) const GRAIN_DIRECTORY: u32 = 2;
    pub(super) const FOOTER: u32 = 3;
}

/// The VMDK streamOptimized encoder into `out`. Never seeks.
///
/// # Errors
/// `InvalidInput` for an empty image, one over 2 TiB, or an extent name
/// the descriptor cannot quote.
pub(crate) fn encoder(
    options: &ContainerOptions,
    out: Box<dyn Write + Send>,
) -> io::Result<Box<dyn Encoder>> {
    let refuse = |why: String| Err(io::Error::new(io::ErrorKind::InvalidInput, why));
    let capacity = options.size.div_ceil(SECTOR);
    if capacity == 0 {
        // A header of capacity 0 makes QEMU read the file as a descriptor.
        return refuse("a VMDK cannot hold an empty image".into());
    }
    if capacity > MAX_CAPACITY {
        return refuse(format!(
            "a {}-byte image does not fit a VMDK extent, which holds at most 2 TiB",
            options.size
        ));
    }
    let name = &options.vmdk_extent_name;
    if name.is_empty() || name.contains(['"', '\n', '\r', '\0']) {
        return refuse(format!(
            "{name:?} cannot be the VMDK extent's name (empty, or a quote or line break in it)"
        ));
    }

    let text = descriptor(capacity, cid(&options.identity), &options.identity, name);
    // At least one NUL after the text: readers take it as a C string.
    let descriptor_size = (text.len() as u64 + 1)
        .div_ceil(SECTOR)
        .max(DESCRIPTOR_MIN_SECTORS);
    let over_head = (DESCRIPTOR_OFFSET + descriptor_size).next_multiple_of(GRAIN_SECTORS);
    let header = encode_header(&HeaderFields {
        capacity,
        descriptor_size,
        gd_offset: GD_AT_END,
        over_head,
    });

    let mut out = BufWriter::with_capacity(1 << 20, out);
    out.write_all(&header)?;
    out.write_all(text.as_bytes())?;
    write_zeros(
        &mut out,
        (over_head - DESCRIPTOR_OFFSET) * SECTOR - text.len() as u64,
    )?;

    let grains = capacity.div_ceil(GRAIN_SECTORS);
    Ok(Box::new(Vmdk {
        units: Units::new(GRAIN_SIZE as usize),
        batch: Batch::new(zlib),
        stream: Stream {
            out,
            at: over_head * SECTOR,
            header,
            group: 0,
            gt: vec![0; GTES_PER_GT as usize],
            gt_used: false,
            gd: Vec::new(),
            groups: grains.div_ceil(GTES_PER_GT),
        },
        length: Length::new("vmdk", options.size),
    }))
}

/// A VMDK being written.
struct Vmdk {
    units: Units,
    /// Grains waiting to be compressed.
    batch: Batch,
    stream: Stream,
    /// The image bytes given so far.
    length: Length,
}

/// The output and what is known of its tables.
struct Stream {
    out: BufWriter<Box<dyn Write + Send>>,
    /// Bytes written so far (always whole sectors between writes).
    at: u64,
    /// The header, whose copy with the real `gdOffset` is the footer.
    header: [u8; SECTOR as usize],
    /// The group (of 512 grains) being filled.
    group: u64,
    /// Its grain table.
    gt: Vec<u32>,
    /// Whether it holds any grain.
    gt_used: bool,
    /// The grain directory, for the groups before `group`.
    gd: Vec<u32>,
    /// How many groups the disk has.
    groups: u64,
}

/// Queues a grain that holds data; compresses and writes the batch once
/// it is full.
fn queue(unit: Unit<'_>, batch: &mut Batch, stream: &mut Stream) -> io::Result<()> {
    if let Unit::Data { index, bytes } = unit {
        if batch.push(index, bytes) {
            batch.drain(|index, _, packed| stream.grain(index, packed))?;
        }
    }
    Ok(())
}

impl Encoder for Vmdk {
    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.length.take(buf.len() as u64)?;
        let Vmdk {
            units,
            batch,
            stream,
            ..
        } = self;
        units.data(buf, &mut |u| queue(u, batch, stream))
    }

    fn zeros(&mut self, len: u64) -> io::Result<()> {
        self.length.take(len)?;
        let Vmdk {
            units,
            batch,
            stream,
            ..
        } = self;
        units.zeros(len, &mut |u| queue(u, batch, stream))
    }

    fn finish(self: Box<Self>) -> io::Result<Option<u64>> {
        let Vmdk {
            mut units,
            mut batch,
            mut stream,
            length,
        } = *self;
        length.complete()?;
        units.finish(&mut |u| queue(u, &mut batch, &mut stream))?;
        batch.drain(|index, _, packed| stream.grain(index, packed))?;
        stream.finish().map(Some)
    }
}

impl Stream {
    /// The sector the next write starts at, as the tables hold it.
    fn sector(&self) -> io::Result<u32> {
        debug_assert_eq!(self.at % SECTOR, 0);
        u32::try_from(self.at / SECTOR).map_err(|_| {
            io::Error::new(
                io::ErrorKind::FileTooLarge,
                "the VMDK outgrew the 2 TiB its grain tables can address",
            )
        })
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.at += bytes.len() as u64;
        Ok(())
    }

    /// Zeros up to the next sector boundary.
    fn pad(&mut self) -> io::Result<()> {
        let pad = self.at.next_multiple_of(SECTOR) - self.at;
        write_zeros(&mut self.out, pad)?;
        self.at += pad;
        Ok(())
    }

    /// Writes grain `index`, compressed to `packed`, after the grain
    /// tables of the groups before its own.
    fn grain(&mut self, index: u64, packed: &[u8]) -> io::Result<()> {
        self.end_groups_before(index / GTES_PER_GT)?;
        let sector = self.sector()?;
        let mut head = [0u8; marker::GRAIN_HEADER];
        put_le64(&mut head, marker::VAL, index * GRAIN_SECTORS);
        // A 64 KiB grain deflates to well under 4 GiB.
        put_le32(&mut head, marker::SIZE, packed.len() as u32);
        self.write(&head)?;
        self.write(packed)?;
        self.pad()?;
        self.gt[(index % GTES_PER_GT) as usize] = sector;
        self.gt_used = true;
        Ok(())
    }

    /// Ends every group before `group`: writes each one's grain table
    /// (none for a group without grains) and its directory entry.
    fn end_groups_before(&mut self, group: u64) -> io::Result<()> {
        while self.group < group {
            if self.gt_used {
                self.metadata_marker(GT_SECTORS, marker::GRAIN_TABLE)?;
                let sector = self.sector()?;
                let table: Vec<u8> = self.gt.iter().flat_map(|e| e.to_le_bytes()).collect();
                self.write(&table)?;
                self.gd.push(sector);
                self.gt.fill(0);
                self.gt_used = false;
            } else {
                self.gd.push(0);
            }
            self.group += 1;
        }
        Ok(())
    }

    /// A metadata marker: `sectors` of metadata of `kind` follow.
    fn metadata_marker(&mut self, sectors: u64, kind: u32) -> io::Result<()> {
        let mut m = [0u8; SECTOR as usize];
        put_le64(&mut m, marker::VAL, sectors);
        put_le32(&mut m, marker::TYPE, kind);
        self.write(&m)
    }

    /// The last grain tables, the grain directory, the footer and the
    /// end-of-stream marker. Returns the stream's length.
    fn finish(mut self) -> io::Result<u64> {
        self.end_groups_before(self.groups)?;
        let gd: Vec<u8> = self.gd.iter().flat_map(|e| e.to_le_bytes()).collect();
        let gd_sectors = (gd.len() as u64).div_ceil(SECTOR);
        self.metadata_marker(gd_sectors, marker::GRAIN_DIRECTORY)?;
        let gd_offset = u64::from(self.sector()?);
        self.write(&gd)?;
        self.pad()?;

        self.metadata_marker(1, marker::FOOTER)?;
        let mut footer = self.header;
        put_le64(&mut footer, header::GD_OFFSET, gd_offset);
        self.write(&footer)?;
        // The end of stream: a marker of no sectors, type 0 (a zero sector).
        self.metadata_marker(0, marker::END_OF_STREAM)?;

        let mut inner = self.out.into_inner().map_err(|e| e.into_error())?;
        inner.flush()?;
        Ok(self.at)
    }
}

/// What the header says besides the constants.
struct HeaderFields {
    /// The disk size in sectors.
    capacity: u64,
    /// The descriptor's sectors.
    descriptor_size: u64,
    /// [`GD_AT_END`] in the header, the grain directory's sector in the
    /// footer.
    gd_offset: u64,
    /// The sector of the first grain.
    over_head: u64,
}

/// The 512-byte sparse extent header (and, with the real `gdOffset`, the
/// footer).
fn encode_header(f: &HeaderFields) -> [u8; SECTOR as usize] {
    let mut b = [0u8; SECTOR as usize];
    put_le32(&mut b, header::MAGIC_NUMBER, MAGIC);
    put_le32(&mut b, header::VERSION, VERSION);
    put_le32(
        &mut b,
        header::FLAGS,
        FLAG_NEWLINE_DETECTION | FLAG_COMPRESSED | FLAG_MARKERS,
    );
    put_le64(&mut b, header::CAPACITY, f.capacity);
    put_le64(&mut b, header::GRAIN_SIZE, GRAIN_SECTORS);
    put_le64(&mut b, header::DESCRIPTOR_OFFSET, DESCRIPTOR_OFFSET);
    put_le64(&mut b, header::DESCRIPTOR_SIZE, f.descriptor_size);
    put_le32(&mut b, header::NUM_GTES_PER_GT, GTES_PER_GT as u32);
    put_le64(&mut b, header::RGD_OFFSET, 0);
    put_le64(&mut b, header::GD_OFFSET, f.gd_offset);
    put_le64(&mut b, header::OVER_HEAD, f.over_head);
    b[header::UNCLEAN_SHUTDOWN] = 0;
    b[header::SINGLE_END_LINE_CHAR] = b'\n';
    b[header::NON_END_LINE_CHAR] = b' ';
    b[header::DOUBLE_END_LINE_CHAR1] = b'\r';
    b[header::DOUBLE_END_LINE_CHAR2] = b'\n';
    b[header::COMPRESS_ALGORITHM..header::COMPRESS_ALGORITHM + 2]
        .copy_from_slice(&COMPRESSION_DEFLATE.to_le_bytes());
    b
}

/// The content ID: the image identity's four 32-bit words XORed, never
/// `ffffffff` (which means "no parent" in `parentCID`).
fn cid(identity: &[u8; 16]) -> u32 {
    let cid = identity
        .chunks_exact(4)
        .map(|w| u32::from_be_bytes(w.try_into().expect("4 bytes")))
        .fold(0, |a, w| a ^ w);
    if cid == u32::MAX {
        cid - 1
    } else {
        cid
    }
}

/// The embedded descriptor of a disk of `capacity` sectors in extent
/// `name`.
///
/// The geometry is the SCSI one VMware gives an `lsilogic` disk: 255
/// heads, 63 sectors, the cylinders rounded down (at least one).
fn descriptor(capacity: u64, cid: u32, identity: &[u8; 16], name: &str) -> String {
    let cylinders = (capacity / (255 * 63)).max(1);
    let long_content_id: String = identity.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "# Disk DescriptorFile\n\
         version=1\n\
         CID={cid:08x}\n\
         parentCID=ffffffff\n\
         createType=\"streamOptimized\"\n\
         \n\
         # Extent description\n\
         RW {capacity} SPARSE \"{name}\"\n\
         \n\
         # The Disk Data Base\n\
         #DDB\n\
         \n\
         ddb.virtualHWVersion = \"4\"\n\
         ddb.adapterType = \"lsilogic\"\n\
         ddb.geometry.cylinders = \"{cylinders}\"\n\
         ddb.geometry.heads = \"255\"\n\
         ddb.geometry.sectors = \"63\"\n\
         ddb.longContentID = \"{long_content_id}\"\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::{le32, le64, Shared};
    use crate::ImageFormat;
    use std::io::Read;

    fn encode(options: &ContainerOptions, image: &[u8]) -> Vec<u8> {
        let out = Shared::default();
        let mut e = encoder(options, Box::new(out.clone())).unwrap();
        e.data(image).unwrap();
        let len = e.finish().unwrap().unwrap();
        let bytes = out.bytes();
        assert_eq!(len, bytes.len() as u64);
        bytes
    }

    #[test]
    fn header_fields_are_at_their_offsets() {
        let h = encode_header(&HeaderFields {
            capacity: 10240,
            descriptor_size: 20,
            gd_offset: GD_AT_END,
            over_head: 128,
        });
        assert_eq!(&h[..4], b"KDMV");
        assert_eq!(le32(&h, header::VERSION), 3);
        assert_eq!(le32(&h, header::FLAGS), 0x0003_0001);
        assert_eq!(le64(&h, header::CAPACITY), 10240);
        assert_eq!(le64(&h, header::GRAIN_SIZE), 128);
        assert_eq!(le64(&h, header::DESCRIPTOR_OFFSET), 1);
        assert_eq!(le64(&h, header::DESCRIPTOR_SIZE), 20);
        assert_eq!(le32(&h, header::NUM_GTES_PER_GT), 512);
        assert_eq!(le64(&h, header::GD_OFFSET), u64::MAX);
        assert_eq!(le64(&h, header::OVER_HEAD), 128);
        // As QEMU writes them: "\n \r\n", then deflate (1).
        assert_eq!(&h[72..79], &[0, b'\n', b' ', b'\r', b'\n', 1, 0]);
        assert!(h[79..].iter().all(|&b| b == 0));
    }

    #[test]
    fn cid_folds_the_identity_and_avoids_the_no_parent_value() {
        assert_eq!(cid(&[0; 16]), 0);
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&[0x12, 0x34, 0x56, 0x78]);
        id[12..].copy_from_slice(&[0x00, 0x00, 0x00, 0x01]);
        assert_eq!(cid(&id), 0x1234_5679);
        assert_eq!(cid(&[0xFF; 16]), 0);
        let mut all_ones = [0u8; 16];
        all_ones[..4].fill(0xFF);
        assert_eq!(cid(&all_ones), 0xFFFF_FFFE);
    }

    #[test]
    fn descriptor_names_the_extent_and_capacity() {
        let d = descriptor(10240, 0xabc, &[0x11; 16], "disk.vmdk");
        assert!(d.starts_with("# Disk DescriptorFile\nversion=1\nCID=00000abc\n"));
        assert!(d.contains("\nparentCID=ffffffff\n"));
        assert!(d.contains("\ncreateType=\"streamOptimized\"\n"));
        assert!(d.contains("\nRW 10240 SPARSE \"disk.vmdk\"\n"));
        assert!(d.contains("\nddb.geometry.cylinders = \"1\"\n"));
        assert!(d.contains(&format!("ddb.longContentID = \"{}\"", "11".repeat(16))));
    }

    /// Walks a stream as a reader does, through the footer: every grain
    /// inflates to the image's bytes, every grain left out is zeros.
    #[test]
    fn a_stream_reads_back() {
        // Three groups: data in the first and the last, none in the
        // middle; a last grain that is partial.
        let size = 2 * 32 * (1 << 20) + 3 * GRAIN_SIZE + 1000;
        let mut image = vec![0u8; size as usize];
        for (i, b) in image[..300_000].iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        image[size as usize - 1] = 0x55;
        let mut options = ContainerOptions::new(ImageFormat::Vmdk, size);
        options.identity = [7; 16];
        let f = encode(&options, &image);

        let n = f.len();
        assert_eq!(
            f[..SECTOR as usize],
            {
                let mut h = f[n - 1024..n - 512].to_vec();
                put_le64(&mut h, header::GD_OFFSET, GD_AT_END);
                h
            }[..]
        );
        assert!(f[n - 512..].iter().all(|&b| b == 0), "end of stream");
        assert_eq!(le32(&f, n - 1536 + marker::TYPE), marker::FOOTER);
        let footer = &f[n - 1024..n - 512];
        let gd_offset = le64(footer, header::GD_OFFSET) as usize * 512;
        assert_eq!(
            le32(&f, gd_offset - 512 + marker::TYPE),
            marker::GRAIN_DIRECTORY
        );
        let gd: Vec<u32> = (0..3).map(|g| le32(&f, gd_offset + g * 4)).collect();
        assert_ne!(gd[0], 0);
        assert_eq!(gd[1], 0, "a group without data has no grain table");
        assert_ne!(gd[2], 0);

        let mut back = vec![0u8; size.div_ceil(GRAIN_SIZE) as usize * GRAIN_SIZE as usize];
        let mut grains = 0;
        for (g, &gt) in gd.iter().enumerate() {
            if gt == 0 {
                continue;
            }
            let gt = gt as usize * 512;
            assert_eq!(le32(&f, gt - 512 + marker::TYPE), marker::GRAIN_TABLE);
            assert_eq!(le64(&f, gt - 512 + marker::VAL), GT_SECTORS);
            for e in 0..GTES_PER_GT as usize {
                let sector = le32(&f, gt + e * 4) as usize;
                if sector == 0 {
                    continue;
                }
                let grain = g * 512 + e;
                let at = sector * 512;
                assert_eq!(le64(&f, at), grain as u64 * GRAIN_SECTORS);
                let len = le32(&f, at + 8) as usize;
                let mut out = Vec::new();
                flate2::read::ZlibDecoder::new(&f[at + 12..at + 12 + len])
                    .read_to_end(&mut out)
                    .unwrap();
                assert_eq!(out.len() as u64, GRAIN_SIZE);
                back[grain * GRAIN_SIZE as usize..][..GRAIN_SIZE as usize].copy_from_slice(&out);
                grains += 1;
            }
        }
        assert_eq!(grains, 5 + 1);
        assert_eq!(&back[..size as usize], &image[..]);
        assert!(back[size as usize..].iter().all(|&b| b == 0));
    }

    #[test]
    fn refuses_what_it_cannot_describe() {
        let refused = |o: &ContainerOptions| {
            encoder(o, Box::new(io::sink())).err().map(|e| e.kind())
                == Some(io::ErrorKind::InvalidInput)
        };
        assert!(refused(&ContainerOptions::new(ImageFormat::Vmdk, 0)));
        assert!(refused(&ContainerOptions::new(
            ImageFormat::Vmdk,
            (MAX_CAPACITY + 1) * 512
        )));
        let mut o = ContainerOptions::new(ImageFormat::Vmdk, 4096);
        assert!(!refused(&o));
        o.vmdk_extent_name = "a\"b.vmdk".into();
        assert!(refused(&o));

        let mut e = encoder(
            &ContainerOptions::new(ImageFormat::Vmdk, 4096),
            Box::new(io::sink()),
        )
        .unwrap();
        e.zeros(4000).unwrap();
        assert_eq!(
            e.data(&[1; 97]).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
