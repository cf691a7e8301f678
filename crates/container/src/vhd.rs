//! VHD, fixed and dynamic (Microsoft's Virtual Hard Disk Image Format
//! Specification, version 1.0, October 2006).
//!
//! A fixed VHD is the raw disk, its size rounded up to whole MiB
//! ([`ImageFormat::virtual_size`]), then the 512-byte [footer](encode_footer):
//! written front to back, it streams.
//!
//! A dynamic VHD keeps only the 2 MiB blocks that hold data. As written
//! here:
//!
//! | offset | what |
//! | --- | --- |
//! | 0 | a copy of the footer (disk type 3, data offset 512) |
//! | 512 | the [dynamic disk header](encode_dynamic_header) (1024 bytes) |
//! | 1536 | the block allocation table (BAT): one big-endian u32 per block, the sector of its bitmap or `0xFFFFFFFF`, padded to 512 bytes |
//! | after the BAT | each block that holds data, in image order: its sector bitmap (512 bytes, every sector marked), then its 2 MiB |
//! | end | the footer |
//!
//! The BAT is only known once the image has passed: it is written as a
//! placeholder (every block unallocated) and filled in by seeking back in
//! [`Encoder::finish`], so a dynamic VHD needs a file.
//!
//! Every field is big-endian.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};

use kiln_sink::stream::write_zeros;

use crate::bytes::{put_be32, put_be64};
use crate::length::Length;
use crate::units::{Unit, Units};
use crate::{ContainerOptions, Encoder, ImageFormat};

/// The sector, the unit of every offset in the BAT.
const SECTOR: u64 = 512;
/// The footer (and its copy at the front of a dynamic VHD).
const FOOTER_SIZE: usize = 512;
/// The dynamic disk header, at offset 512 of a dynamic VHD.
const DYNAMIC_HEADER_SIZE: usize = 1024;
/// A dynamic VHD's block: the spec's default, and the one QEMU and Hyper-V
/// write.
const BLOCK_SIZE: u64 = 2 << 20;
/// A block's sector bitmap, one bit per sector of the block, padded to a
/// sector: 4096 sectors take exactly one.
const BITMAP_SIZE: usize = (BLOCK_SIZE / SECTOR / 8) as usize;
/// The largest disk a VHD describes: 2040 GiB (the spec's limit for a
/// dynamic disk; QEMU refuses more, fixed or dynamic).
const MAX_SIZE: u64 = 0xff00_0000 * SECTOR;
/// A BAT entry of a block that holds no data.
const UNALLOCATED: u32 = 0xFFFF_FFFF;
/// The VHD epoch, 2000-01-01 00:00:00 UTC, in Unix seconds.
const VHD_EPOCH: u64 = 946_684_800;

/// The footer's fields: offsets (the spec's names).
mod footer {
    /// "conectix".
    pub(super) const COOKIE: usize = 0;
    pub(super) const FEATURES: usize = 8;
    pub(super) const FILE_FORMAT_VERSION: usize = 12;
    /// The offset of the dynamic disk header; all ones for a fixed disk.
    pub(super) const DATA_OFFSET: usize = 16;
    /// Seconds since 2000-01-01 00:00:00 UTC.
    pub(super) const TIME_STAMP: usize = 24;
    pub(super) const CREATOR_APPLICATION: usize = 28;
    pub(super) const CREATOR_VERSION: usize = 32;
    pub(super) const CREATOR_HOST_OS: usize = 36;
    pub(super) const ORIGINAL_SIZE: usize = 40;
    pub(super) const CURRENT_SIZE: usize = 48;
    /// Cylinders (u16), heads (u8), sectors per track (u8).
    pub(super) const DISK_GEOMETRY: usize = 56;
    pub(super) const DISK_TYPE: usize = 60;
    pub(super) const CHECKSUM: usize = 64;
    pub(super) const UNIQUE_ID: usize = 68;
    pub(super) const SAVED_STATE: usize = 84;
}

/// The dynamic disk header's fields: offsets (the spec's names).
mod dynamic_header {
    /// "cxsparse".
    pub(super) const COOKIE: usize = 0;
    /// Unused: all ones.
    pub(super) const DATA_OFFSET: usize = 8;
    /// The offset of the BAT.
    pub(super) const TABLE_OFFSET: usize = 16;
    pub(super) const HEADER_VERSION: usize = 24;
    pub(super) const MAX_TABLE_ENTRIES: usize = 28;
    pub(super) const BLOCK_SIZE: usize = 32;
    pub(super) const CHECKSUM: usize = 36;
    // Parent unique ID (40), parent time stamp (56), parent Unicode name
    // (64) and the eight parent locators (576) are for differencing disks:
    // left zero.
}

/// Features: bit 1 is reserved and always set.
const FEATURES: u32 = 0x0000_0002;
/// The file format and dynamic header version of the spec.
const VERSION_1_0: u32 = 0x0001_0000;
/// The creator application. QEMU sizes a VHD by its CHS geometry (which
/// rounds the size down) unless the creator is one it knows to mean the
/// footer's current size: QEMU 7.2 takes `win `, `qem2`, `d2v `, `CTXS` and
/// `tap\0` (QEMU 10 takes everything but `vpc ` and `qemu`). `qem2` is what
/// `qemu-img convert -O vpc -o force_size` writes, the command Azure's
/// documentation gives for making its images, so readers already see it on
/// images of exact size; Hyper-V and Azure read the current size whatever
/// the creator.
const CREATOR_APPLICATION: [u8; 4] = *b"qem2";
/// The creator's version (informational): kiln's VHD writer, 1.0.
const CREATOR_VERSION: u32 = 0x0001_0000;
/// The creator host OS: the spec knows only Windows (`Wi2k`) and Macintosh.
const CREATOR_HOST_OS: [u8; 4] = *b"Wi2k";
/// Disk types.
const DISK_TYPE_FIXED: u32 = 2;
const DISK_TYPE_DYNAMIC: u32 = 3;

/// The fixed-VHD encoder into `out`: the image, zeros up to the virtual
/// size, the footer. Never seeks.
pub(crate) fn fixed(
    options: &ContainerOptions,
    out: Box<dyn Write + Send>,
) -> io::Result<Box<dyn Encoder>> {
    let virtual_size = checked_virtual_size(options)?;
    Ok(Box::new(Fixed {
        out: BufWriter::with_capacity(1 << 20, out),
        input: Length::new("vhd", options.size),
        virtual_size,
        footer: encode_footer(&footer_fields(options, virtual_size, None)),
    }))
}

/// The dynamic-VHD encoder into `out`: writes the footer copy, the header
/// and a placeholder BAT at once; [`Encoder::finish`] seeks back to fill in
/// the BAT.
pub(crate) fn dynamic(options: &ContainerOptions, out: File) -> io::Result<Box<dyn Encoder>> {
    let virtual_size = checked_virtual_size(options)?;
    let entries = virtual_size.div_ceil(BLOCK_SIZE);
    let max_table_entries = u32::try_from(entries).expect("2040 GiB is 1044480 blocks");
    let table_offset = (FOOTER_SIZE + DYNAMIC_HEADER_SIZE) as u64;
    let bat_bytes = (entries * 4).next_multiple_of(SECTOR);
    let footer = encode_footer(&footer_fields(
        options,
        virtual_size,
        Some(FOOTER_SIZE as u64),
    ));
    let header = encode_dynamic_header(table_offset, max_table_entries);

    let mut out = BufWriter::with_capacity(1 << 20, out);
    out.write_all(&footer)?;
    out.write_all(&header)?;
    let bat = vec![UNALLOCATED; entries as usize];
    out.write_all(&bat_bytes_of(&bat, bat_bytes))?;
    Ok(Box::new(Dynamic {
        out,
        input: Length::new("vhd", options.size),
        units: Units::new(BLOCK_SIZE as usize),
        bat,
        table_offset,
        bat_bytes,
        at: table_offset + bat_bytes,
        footer,
    }))
}

/// The virtual size of the options' image, refused over [`MAX_SIZE`].
fn checked_virtual_size(options: &ContainerOptions) -> io::Result<u64> {
    let virtual_size = ImageFormat::Vhd.virtual_size(options.size);
    if virtual_size > MAX_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a {}-byte image does not fit a VHD, which holds at most 2040 GiB",
                options.size
            ),
        ));
    }
    Ok(virtual_size)
}

/// A fixed VHD being written.
struct Fixed {
    out: BufWriter<Box<dyn Write + Send>>,
    input: Length,
    virtual_size: u64,
    footer: [u8; FOOTER_SIZE],
}

impl Encoder for Fixed {
    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.input.take(buf.len() as u64)?;
        self.out.write_all(buf)
    }

    fn zeros(&mut self, len: u64) -> io::Result<()> {
        self.input.take(len)?;
        write_zeros(&mut self.out, len)
    }

    fn finish(mut self: Box<Self>) -> io::Result<Option<u64>> {
        write_zeros(&mut self.out, self.virtual_size - self.input.seen())?;
        self.out.write_all(&self.footer)?;
        let mut inner = self.out.into_inner().map_err(|e| e.into_error())?;
        inner.flush()?;
        Ok(Some(self.virtual_size + FOOTER_SIZE as u64))
    }
}

/// A dynamic VHD being written.
struct Dynamic {
    out: BufWriter<File>,
    input: Length,
    units: Units,
    /// The sector of each block's bitmap, or [`UNALLOCATED`].
    bat: Vec<u32>,
    table_offset: u64,
    /// The BAT's bytes in the file, padded to a sector.
    bat_bytes: u64,
    /// The file offset the next block goes to.
    at: u64,
    footer: [u8; FOOTER_SIZE],
}

/// Writes the blocks of `unit` that hold data, recording them in `bat`.
fn place_block(
    unit: Unit<'_>,
    out: &mut BufWriter<File>,
    bat: &mut [u32],
    at: &mut u64,
) -> io::Result<()> {
    let Unit::Data { index, bytes } = unit else {
        return Ok(());
    };
    // The file stays under 2 TiB (2040 GiB of blocks, their bitmaps and
    // the BAT), so its sectors fit the BAT's u32.
    bat[index as usize] = u32::try_from(*at / SECTOR).expect("a VHD stays under 2 TiB");
    out.write_all(&[0xFF; BITMAP_SIZE])?;
    out.write_all(bytes)?;
    *at += (BITMAP_SIZE + bytes.len()) as u64;
    Ok(())
}

impl Encoder for Dynamic {
    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.input.take(buf.len() as u64)?;
        let Dynamic {
            units,
            out,
            bat,
            at,
            ..
        } = self;
        units.data(buf, &mut |u| place_block(u, out, bat, at))
    }

    fn zeros(&mut self, len: u64) -> io::Result<()> {
        self.input.take(len)?;
        let Dynamic {
            units,
            out,
            bat,
            at,
            ..
        } = self;
        units.zeros(len, &mut |u| place_block(u, out, bat, at))
    }

    fn finish(mut self: Box<Self>) -> io::Result<Option<u64>> {
        let Dynamic {
            units,
            out,
            bat,
            at,
            ..
        } = &mut *self;
        units.finish(&mut |u| place_block(u, out, bat, at))?;
        self.out.write_all(&self.footer)?;
        let len = self.at + FOOTER_SIZE as u64;
        self.out.seek(SeekFrom::Start(self.table_offset))?;
        self.out
            .write_all(&bat_bytes_of(&self.bat, self.bat_bytes))?;
        let mut file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.flush()?;
        Ok(Some(len))
    }
}

/// The BAT as it is on disk: big-endian entries, padded with unallocated
/// entries to `len` bytes.
fn bat_bytes_of(bat: &[u32], len: u64) -> Vec<u8> {
    let mut bytes: Vec<u8> = bat.iter().flat_map(|e| e.to_be_bytes()).collect();
    bytes.resize(len as usize, 0xFF);
    bytes
}

/// What a footer says.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FooterFields {
    /// The dynamic disk header's offset; `None` for a fixed disk.
    data_offset: Option<u64>,
    /// Seconds since the VHD epoch.
    time_stamp: u32,
    /// The disk size in bytes (original and current).
    size: u64,
    unique_id: [u8; 16],
}

fn footer_fields(
    options: &ContainerOptions,
    virtual_size: u64,
    data_offset: Option<u64>,
) -> FooterFields {
    FooterFields {
        data_offset,
        time_stamp: vhd_time_stamp(options.timestamp),
        size: virtual_size,
        unique_id: options.identity,
    }
}

/// Unix seconds as seconds since the VHD epoch, clamped to what the field
/// holds.
fn vhd_time_stamp(unix: u64) -> u32 {
    u32::try_from(unix.saturating_sub(VHD_EPOCH)).unwrap_or(u32::MAX)
}

/// The 512-byte footer.
fn encode_footer(f: &FooterFields) -> [u8; FOOTER_SIZE] {
    let mut b = [0u8; FOOTER_SIZE];
    b[footer::COOKIE..footer::COOKIE + 8].copy_from_slice(b"conectix");
    put_be32(&mut b, footer::FEATURES, FEATURES);
    put_be32(&mut b, footer::FILE_FORMAT_VERSION, VERSION_1_0);
    put_be64(
        &mut b,
        footer::DATA_OFFSET,
        f.data_offset.unwrap_or(u64::MAX),
    );
    put_be32(&mut b, footer::TIME_STAMP, f.time_stamp);
    b[footer::CREATOR_APPLICATION..footer::CREATOR_APPLICATION + 4]
        .copy_from_slice(&CREATOR_APPLICATION);
    put_be32(&mut b, footer::CREATOR_VERSION, CREATOR_VERSION);
    b[footer::CREATOR_HOST_OS..footer::CREATOR_HOST_OS + 4].copy_from_slice(&CREATOR_HOST_OS);
    put_be64(&mut b, footer::ORIGINAL_SIZE, f.size);
    put_be64(&mut b, footer::CURRENT_SIZE, f.size);
    let (cylinders, heads, sectors_per_track) = chs(f.size / SECTOR);
    b[footer::DISK_GEOMETRY..footer::DISK_GEOMETRY + 2].copy_from_slice(&cylinders.to_be_bytes());
    b[footer::DISK_GEOMETRY + 2] = heads;
    b[footer::DISK_GEOMETRY + 3] = sectors_per_track;
    let disk_type = match f.data_offset {
        None => DISK_TYPE_FIXED,
        Some(_) => DISK_TYPE_DYNAMIC,
    };
    put_be32(&mut b, footer::DISK_TYPE, disk_type);
    b[footer::UNIQUE_ID..footer::UNIQUE_ID + 16].copy_from_slice(&f.unique_id);
    b[footer::SAVED_STATE] = 0;
    let sum = checksum(&b);
    put_be32(&mut b, footer::CHECKSUM, sum);
    b
}

/// The 1024-byte dynamic disk header of a disk whose BAT is at
/// `table_offset` with `max_table_entries` entries of 2 MiB blocks.
fn encode_dynamic_header(table_offset: u64, max_table_entries: u32) -> [u8; DYNAMIC_HEADER_SIZE] {
    let mut b = [0u8; DYNAMIC_HEADER_SIZE];
    b[dynamic_header::COOKIE..dynamic_header::COOKIE + 8].copy_from_slice(b"cxsparse");
    put_be64(&mut b, dynamic_header::DATA_OFFSET, u64::MAX);
    put_be64(&mut b, dynamic_header::TABLE_OFFSET, table_offset);
    put_be32(&mut b, dynamic_header::HEADER_VERSION, VERSION_1_0);
    put_be32(&mut b, dynamic_header::MAX_TABLE_ENTRIES, max_table_entries);
    put_be32(&mut b, dynamic_header::BLOCK_SIZE, BLOCK_SIZE as u32);
    let sum = checksum(&b);
    put_be32(&mut b, dynamic_header::CHECKSUM, sum);
    b
}

/// The checksum of a footer or dynamic header: the one's complement of the
/// sum of its bytes, with the checksum field counted as zeros (it is zero
/// when this is called on a structure being encoded).
fn checksum(bytes: &[u8]) -> u32 {
    !bytes
        .iter()
        .fold(0u32, |sum, &b| sum.wrapping_add(u32::from(b)))
}

/// The disk geometry (cylinders, heads, sectors per track) of a disk of
/// `total_sectors`, by the spec's algorithm (appendix "CHS Calculation"):
/// rounded down, and capped at 65535/16/255 (127 GiB).
fn chs(total_sectors: u64) -> (u16, u8, u8) {
    let total = total_sectors.min(65535 * 16 * 255);
    let (sectors_per_track, heads, cylinder_times_heads);
    if total >= 65535 * 16 * 63 {
        sectors_per_track = 255;
        heads = 16;
        cylinder_times_heads = total / 255;
    } else {
        let mut spt = 17;
        let mut cth = total / spt;
        let mut h = cth.div_ceil(1024).max(4);
        if cth >= h * 1024 || h > 16 {
            spt = 31;
            h = 16;
            cth = total / spt;
        }
        if cth >= h * 1024 {
            spt = 63;
            h = 16;
            cth = total / spt;
        }
        (sectors_per_track, heads, cylinder_times_heads) = (spt, h, cth);
    }
    let cylinders = cylinder_times_heads / heads;
    // The cap above keeps cylinders ≤ 65535, heads ≤ 16, sectors ≤ 255.
    (cylinders as u16, heads as u8, sectors_per_track as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::{be32, be64};

    /// Verifies a structure's checksum as a reader does: the field zeroed,
    /// the rest summed.
    fn verifies(bytes: &[u8], field: usize) -> bool {
        let mut copy = bytes.to_vec();
        let stored = be32(&copy, field);
        copy[field..field + 4].fill(0);
        checksum(&copy) == stored
    }

    fn fields() -> FooterFields {
        FooterFields {
            data_offset: None,
            time_stamp: vhd_time_stamp(1_700_000_000),
            size: 3 << 20,
            unique_id: *b"0123456789abcdef",
        }
    }

    #[test]
    fn checksum_is_the_ones_complement_of_the_byte_sum() {
        assert_eq!(checksum(&[]), 0xFFFF_FFFF);
        assert_eq!(checksum(&[1, 2, 3]), !6);
        assert_eq!(checksum(&[0xFF; 512]), !(0xFF * 512));
    }

    #[test]
    fn footer_checksum_verifies_and_catches_a_flipped_bit() {
        let mut f = encode_footer(&fields());
        assert!(verifies(&f, footer::CHECKSUM));
        f[footer::CURRENT_SIZE + 5] ^= 1;
        assert!(!verifies(&f, footer::CHECKSUM));
    }

    /// The footer and dynamic header of `qemu-img create -f vpc -o
    /// force_size` for 1 GiB (QEMU 7.2), with the checksums QEMU computed.
    #[test]
    fn checksums_match_qemus() {
        let mut qemu_footer = [0u8; FOOTER_SIZE];
        let head: [u8; 84] = [
            0x63, 0x6f, 0x6e, 0x65, 0x63, 0x74, 0x69, 0x78, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x32, 0xa4, 0x23, 0xf6,
            0x71, 0x65, 0x6d, 0x32, 0x00, 0x05, 0x00, 0x03, 0x57, 0x69, 0x32, 0x6b, 0x00, 0x00,
            0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00,
            0xff, 0xff, 0x10, 0xff, 0x00, 0x00, 0x00, 0x03, 0xff, 0xff, 0xed, 0x6b, 0x07, 0xf1,
            0x81, 0x43, 0x3a, 0x86, 0x4c, 0x7a, 0x8d, 0x54, 0x14, 0x5c, 0x53, 0xed, 0x9b, 0x6b,
        ];
        qemu_footer[..84].copy_from_slice(&head);
        assert_eq!(be32(&qemu_footer, footer::CHECKSUM), 0xffff_ed6b);
        assert!(verifies(&qemu_footer, footer::CHECKSUM));

        // QEMU's dynamic header of that disk is the one kiln writes, byte
        // for byte (BAT at 1536, 512 entries, 2 MiB blocks).
        let mut qemu_header = [0u8; DYNAMIC_HEADER_SIZE];
        let head: [u8; 40] = [
            0x63, 0x78, 0x73, 0x70, 0x61, 0x72, 0x73, 0x65, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x01, 0x00, 0x00,
            0x00, 0x00, 0x02, 0x00, 0x00, 0x20, 0x00, 0x00, 0xff, 0xff, 0xf4, 0x75,
        ];
        qemu_header[..40].copy_from_slice(&head);
        assert_eq!(encode_dynamic_header(1536, 512), qemu_header);
    }

    #[test]
    fn footer_fields_are_at_their_offsets() {
        let f = encode_footer(&fields());
        assert_eq!(&f[..8], b"conectix");
        assert_eq!(be32(&f, footer::FEATURES), 2);
        assert_eq!(be32(&f, footer::FILE_FORMAT_VERSION), 0x0001_0000);
        assert_eq!(be64(&f, footer::DATA_OFFSET), u64::MAX);
        assert_eq!(
            be32(&f, footer::TIME_STAMP),
            (1_700_000_000 - 946_684_800) as u32
        );
        assert_eq!(&f[footer::CREATOR_APPLICATION..][..4], b"qem2");
        assert_eq!(be64(&f, footer::ORIGINAL_SIZE), 3 << 20);
        assert_eq!(be64(&f, footer::CURRENT_SIZE), 3 << 20);
        assert_eq!(be32(&f, footer::DISK_TYPE), DISK_TYPE_FIXED);
        assert_eq!(&f[footer::UNIQUE_ID..][..16], b"0123456789abcdef");
        assert!(f[footer::SAVED_STATE..].iter().all(|&b| b == 0));

        let d = encode_footer(&FooterFields {
            data_offset: Some(512),
            ..fields()
        });
        assert_eq!(be64(&d, footer::DATA_OFFSET), 512);
        assert_eq!(be32(&d, footer::DISK_TYPE), DISK_TYPE_DYNAMIC);
        assert!(verifies(&d, footer::CHECKSUM));
    }

    #[test]
    fn dynamic_header_fields_and_checksum() {
        let h = encode_dynamic_header(1536, 512);
        assert_eq!(&h[..8], b"cxsparse");
        assert_eq!(be64(&h, dynamic_header::DATA_OFFSET), u64::MAX);
        assert_eq!(be64(&h, dynamic_header::TABLE_OFFSET), 1536);
        assert_eq!(be32(&h, dynamic_header::HEADER_VERSION), 0x0001_0000);
        assert_eq!(be32(&h, dynamic_header::MAX_TABLE_ENTRIES), 512);
        assert_eq!(be32(&h, dynamic_header::BLOCK_SIZE), 2 << 20);
        assert!(verifies(&h, dynamic_header::CHECKSUM));
        assert!(h[40..].iter().all(|&b| b == 0));
    }

    #[test]
    fn time_stamp_counts_from_2000_and_clamps() {
        assert_eq!(vhd_time_stamp(0), 0);
        assert_eq!(vhd_time_stamp(VHD_EPOCH), 0);
        assert_eq!(vhd_time_stamp(VHD_EPOCH + 86_400), 86_400);
        assert_eq!(vhd_time_stamp(u64::MAX), u32::MAX);
    }

    /// Geometries worked out by hand from the spec's pseudo-code. (QEMU's
    /// `qemu-img create -f vpc` without `force_size` picks one cylinder
    /// more where the spec rounds down: 31/4/17 for 1 MiB, 2081/16/63 for
    /// 1 GiB, 65279/16/255 for 127 GiB.)
    #[test]
    fn chs_follows_the_spec() {
        const MIB: u64 = 2048; // sectors
        assert_eq!(chs(MIB), (30, 4, 17));
        assert_eq!(chs(1024 * MIB), (2080, 16, 63));
        assert_eq!(chs(10 * 1024 * MIB), (20805, 16, 63));
        assert_eq!(chs(127 * 1024 * MIB), (65278, 16, 255));
        // Capped at 65535/16/255 from there on.
        assert_eq!(chs(200 * 1024 * MIB), (65535, 16, 255));
        assert_eq!(chs(MAX_SIZE / SECTOR), (65535, 16, 255));
        // The 17 → 31 step: 17 sectors and 16 heads hold 1024 cylinders.
        assert_eq!(chs(17 * 16 * 1024 - 1), (1023, 16, 17));
        assert_eq!(chs(17 * 16 * 1024), (561, 16, 31));
        assert_eq!(chs(0), (0, 4, 17));
    }

    #[test]
    fn chs_never_describes_more_than_the_disk() {
        let mut s = 1u64;
        while s < 300 * 1024 * 2048 {
            let (c, h, spt) = chs(s);
            assert!(u64::from(c) * u64::from(h) * u64::from(spt) <= s, "{s}");
            assert!((1..=16).contains(&h) && spt > 0);
            s = s * 3 / 2 + 7;
        }
    }

    #[test]
    fn sizes_over_2040_gib_are_refused() {
        let mut o = ContainerOptions::new(ImageFormat::Vhd, MAX_SIZE);
        assert_eq!(checked_virtual_size(&o).unwrap(), MAX_SIZE);
        o.size = MAX_SIZE + 1;
        assert_eq!(
            checked_virtual_size(&o).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
