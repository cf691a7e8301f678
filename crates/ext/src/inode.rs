//! The inode structure (`struct ext4_inode`), 128 bytes plus the extra area.
//!
//! [`InodeRecord::encode`] writes it; [`decode`] reads back the fields the
//! image reader needs. Both use the field offsets of [`off`].

use kiln_tree::Timestamp;

use crate::layout::{EXTRA_ISIZE, GOOD_OLD_INODE_SIZE};
use crate::le::{get_u16, get_u32, put_u16, put_u32};

/// `i_mode` type bits.
pub mod mode {
    /// The mask of the type bits.
    pub const S_IFMT: u16 = 0o170000;
    /// Socket.
    pub const S_IFSOCK: u16 = 0o140000;
    /// Symbolic link.
    pub const S_IFLNK: u16 = 0o120000;
    /// Regular file.
    pub const S_IFREG: u16 = 0o100000;
    /// Block device.
    pub const S_IFBLK: u16 = 0o060000;
    /// Directory.
    pub const S_IFDIR: u16 = 0o040000;
    /// Character device.
    pub const S_IFCHR: u16 = 0o020000;
    /// Named pipe.
    pub const S_IFIFO: u16 = 0o010000;
}

/// Byte offsets of the inode fields kiln writes and reads.
mod off {
    pub(super) const I_MODE: usize = 0x0;
    pub(super) const I_UID: usize = 0x2;
    pub(super) const I_SIZE_LO: usize = 0x4;
    pub(super) const I_ATIME: usize = 0x8;
    pub(super) const I_CTIME: usize = 0xC;
    pub(super) const I_MTIME: usize = 0x10;
    pub(super) const I_GID: usize = 0x18;
    pub(super) const I_LINKS_COUNT: usize = 0x1A;
    pub(super) const I_BLOCKS_LO: usize = 0x1C;
    pub(super) const I_FLAGS: usize = 0x20;
    pub(super) const I_BLOCK: usize = 0x28;
    pub(super) const I_GENERATION: usize = 0x64;
    pub(super) const I_FILE_ACL_LO: usize = 0x68;
    pub(super) const I_SIZE_HIGH: usize = 0x6C;
    pub(super) const L_I_BLOCKS_HIGH: usize = 0x74;
    pub(super) const L_I_FILE_ACL_HIGH: usize = 0x76;
    pub(super) const L_I_UID_HIGH: usize = 0x78;
    pub(super) const L_I_GID_HIGH: usize = 0x7A;
    pub(super) const I_EXTRA_ISIZE: usize = 0x80;
    pub(super) const I_CTIME_EXTRA: usize = 0x84;
    pub(super) const I_MTIME_EXTRA: usize = 0x88;
    pub(super) const I_ATIME_EXTRA: usize = 0x8C;
    pub(super) const I_CRTIME: usize = 0x90;
    pub(super) const I_CRTIME_EXTRA: usize = 0x94;
}

/// Earliest and latest seconds a 32-bit signed time plus two epoch bits hold.
const EXTRA_TIME_MIN: i64 = -(1 << 31);
const EXTRA_TIME_MAX: i64 = (1 << 34) - (1 << 31) - 1;

/// Everything kiln puts into one inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InodeRecord {
    pub(crate) mode: u16,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) size: u64,
    pub(crate) atime: Timestamp,
    pub(crate) ctime: Timestamp,
    pub(crate) mtime: Timestamp,
    pub(crate) crtime: Option<Timestamp>,
    pub(crate) links: u16,
    /// Blocks held (data, index and xattr blocks), in filesystem blocks.
    pub(crate) fs_blocks: u64,
    pub(crate) flags: u32,
    /// The 60 bytes of `i_block`: block pointers, a fast symlink target or a
    /// device number.
    pub(crate) i_block: [u8; 60],
    pub(crate) file_acl: u64,
    /// Encoded in-inode xattr area (magic and entries), empty if none.
    pub(crate) ibody_xattrs: Vec<u8>,
}

impl Default for InodeRecord {
    fn default() -> InodeRecord {
        InodeRecord {
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            atime: Timestamp::default(),
            ctime: Timestamp::default(),
            mtime: Timestamp::default(),
            crtime: None,
            links: 0,
            fs_blocks: 0,
            flags: 0,
            i_block: [0; 60],
            file_acl: 0,
            ibody_xattrs: Vec::new(),
        }
    }
}

impl InodeRecord {
    /// Encodes the inode into `buf` (one inode-table slot of `inode_size` bytes).
    pub(crate) fn encode(&self, buf: &mut [u8], block_size: u32) {
        let large = buf.len() > usize::from(GOOD_OLD_INODE_SIZE);
        put_u16(buf, off::I_MODE, self.mode);
        put_u16(buf, off::I_UID, self.uid as u16);
        put_u16(buf, off::L_I_UID_HIGH, (self.uid >> 16) as u16);
        put_u16(buf, off::I_GID, self.gid as u16);
        put_u16(buf, off::L_I_GID_HIGH, (self.gid >> 16) as u16);
        put_u32(buf, off::I_SIZE_LO, self.size as u32);
        put_u32(buf, off::I_SIZE_HIGH, (self.size >> 32) as u32);
        put_u16(buf, off::I_LINKS_COUNT, self.links);
        let sectors = self.fs_blocks * u64::from(block_size / 512);
        put_u32(buf, off::I_BLOCKS_LO, sectors as u32);
        put_u16(buf, off::L_I_BLOCKS_HIGH, (sectors >> 32) as u16);
        put_u32(buf, off::I_FLAGS, self.flags);
        buf[off::I_BLOCK..off::I_BLOCK + 60].copy_from_slice(&self.i_block);
        put_u32(buf, off::I_FILE_ACL_LO, self.file_acl as u32);
        put_u16(buf, off::L_I_FILE_ACL_HIGH, (self.file_acl >> 32) as u16);
        let times = [
            (off::I_ATIME, off::I_ATIME_EXTRA, Some(self.atime)),
            (off::I_CTIME, off::I_CTIME_EXTRA, Some(self.ctime)),
            (off::I_MTIME, off::I_MTIME_EXTRA, Some(self.mtime)),
            (off::I_CRTIME, off::I_CRTIME_EXTRA, self.crtime),
        ];
        for (lo, extra, t) in times {
            let Some(t) = t else { continue };
            if large {
                let (secs, extra_bits) = encode_extra_time(t);
                put_u32(buf, lo, secs);
                put_u32(buf, extra, extra_bits);
            } else if lo < usize::from(GOOD_OLD_INODE_SIZE) {
                put_u32(buf, lo, small_secs(t.secs));
            }
        }
        if large {
            put_u16(buf, off::I_EXTRA_ISIZE, EXTRA_ISIZE);
            let start = usize::from(GOOD_OLD_INODE_SIZE + EXTRA_ISIZE);
            buf[start..start + self.ibody_xattrs.len()].copy_from_slice(&self.ibody_xattrs);
        }
    }
}

/// An inode as [`ImageReader::inode`](crate::ImageReader::inode) decodes it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InodeView {
    /// `i_mode`: file type and permission bits.
    pub mode: u16,
    /// Owner, both halves.
    pub uid: u32,
    /// Group, both halves.
    pub gid: u32,
    /// Size in bytes, both halves.
    pub size: u64,
    /// Hard links.
    pub links: u16,
    /// Access time.
    pub atime: Timestamp,
    /// Inode change time.
    pub ctime: Timestamp,
    /// Modification time.
    pub mtime: Timestamp,
    /// Creation time, if the inode is large enough to hold it.
    pub crtime: Option<Timestamp>,
    /// `i_flags`.
    pub flags: u32,
    /// The 60 bytes of `i_block`: block map or extent root, fast symlink
    /// target, inline data or device number.
    pub i_block: [u8; 60],
    /// The xattr block, 0 if none.
    pub file_acl: u64,
    /// `i_generation`, part of the seed of the inode's metadata checksums.
    pub generation: u32,
}

impl InodeView {
    /// The type bits of the mode (one of the [`mode`] constants).
    pub fn kind(&self) -> u16 {
        self.mode & mode::S_IFMT
    }

    /// The permission bits of the mode (12 bits).
    pub fn perm(&self) -> u16 {
        self.mode & !mode::S_IFMT
    }

    /// Whether the inode maps its blocks with an extent tree (else a block
    /// map, inline data or nothing).
    pub fn has_extents(&self) -> bool {
        self.flags & crate::alloc::EXTENTS_FL != 0
    }

    /// The device number (major, minor) of a character or block device.
    pub fn device(&self) -> Option<(u32, u32)> {
        let kind = self.mode & 0o170000;
        (kind == mode::S_IFCHR || kind == mode::S_IFBLK).then(|| decode_device(&self.i_block))
    }
}

/// Decodes an inode-table slot (`inode_size` bytes). With `bit64` the high
/// half of `i_file_acl` counts (older writers left garbage there).
pub(crate) fn decode(buf: &[u8], bit64: bool) -> InodeView {
    let extra = extra_isize(buf);
    // A time's extra word (and crtime) exists only if `i_extra_isize` covers it.
    let has = |field: usize| field + 4 <= usize::from(GOOD_OLD_INODE_SIZE) + extra;
    let time = |lo: usize, extra_field: usize| {
        let extra_bits = has(extra_field).then(|| get_u32(buf, extra_field));
        decode_extra_time(get_u32(buf, lo), extra_bits.unwrap_or(0))
    };
    let acl_hi = if bit64 {
        u64::from(get_u16(buf, off::L_I_FILE_ACL_HIGH)) << 32
    } else {
        0
    };
    let mut i_block = [0u8; 60];
    i_block.copy_from_slice(&buf[off::I_BLOCK..off::I_BLOCK + 60]);
    InodeView {
        mode: get_u16(buf, off::I_MODE),
        uid: join16(buf, off::I_UID, off::L_I_UID_HIGH),
        gid: join16(buf, off::I_GID, off::L_I_GID_HIGH),
        size: (u64::from(get_u32(buf, off::I_SIZE_HIGH)) << 32)
            | u64::from(get_u32(buf, off::I_SIZE_LO)),
        links: get_u16(buf, off::I_LINKS_COUNT),
        atime: time(off::I_ATIME, off::I_ATIME_EXTRA),
        ctime: time(off::I_CTIME, off::I_CTIME_EXTRA),
        mtime: time(off::I_MTIME, off::I_MTIME_EXTRA),
        crtime: has(off::I_CRTIME_EXTRA).then(|| time(off::I_CRTIME, off::I_CRTIME_EXTRA)),
        flags: get_u32(buf, off::I_FLAGS),
        i_block,
        file_acl: acl_hi | u64::from(get_u32(buf, off::I_FILE_ACL_LO)),
        generation: generation(buf),
    }
}

/// A 32-bit id from its low and high 16-bit halves.
fn join16(buf: &[u8], lo: usize, hi: usize) -> u32 {
    (u32::from(get_u16(buf, hi)) << 16) | u32::from(get_u16(buf, lo))
}

/// `i_extra_isize`, 0 for 128-byte inodes; clamped to the slot so a corrupt
/// value cannot send reads past it.
fn extra_isize(buf: &[u8]) -> usize {
    let room = buf.len().saturating_sub(usize::from(GOOD_OLD_INODE_SIZE));
    if room == 0 {
        return 0;
    }
    usize::from(get_u16(buf, off::I_EXTRA_ISIZE)).min(room)
}

/// The in-inode xattr area of a slot: what follows the extra fields (empty
/// for 128-byte inodes).
pub(crate) fn ibody_area(buf: &[u8]) -> &[u8] {
    let start = usize::from(GOOD_OLD_INODE_SIZE) + extra_isize(buf);
    buf.get(start..).unwrap_or_default()
}

/// Offsets of the two halves of the metadata_csum inode checksum.
const L_I_CHECKSUM_LO: usize = 0x7C;
const I_CHECKSUM_HI: usize = 0x82;

/// `i_flags`: `i_blocks` counts filesystem blocks, not 512-byte sectors.
pub(crate) const HUGE_FILE_FL: u32 = 0x4_0000;

/// `i_generation` of a slot (part of its checksum seed).
pub(crate) fn generation(slot: &[u8]) -> u32 {
    get_u32(slot, off::I_GENERATION)
}

/// `i_blocks` of a slot as stored: the high half counts with huge_file.
pub(crate) fn i_blocks(slot: &[u8], huge_file: bool) -> u64 {
    let high = if huge_file {
        u64::from(get_u16(slot, off::L_I_BLOCKS_HIGH)) << 32
    } else {
        0
    };
    high | u64::from(get_u32(slot, off::I_BLOCKS_LO))
}

/// The checksum a slot read back stores and the one its bytes give, as
/// (stored, computed): the inverse of [`set_checksum`]. Both are 32 bits
/// when `i_extra_isize` covers `i_checksum_hi`, else the low 16 bits.
pub(crate) fn checksums(slot: &[u8], inode_seed: u32) -> (u32, u32) {
    let has_hi = extra_isize(slot) >= I_CHECKSUM_HI + 2 - usize::from(GOOD_OLD_INODE_SIZE);
    let mut zeroed = slot.to_vec();
    zeroed[L_I_CHECKSUM_LO..L_I_CHECKSUM_LO + 2].fill(0);
    let mut stored = u32::from(get_u16(slot, L_I_CHECKSUM_LO));
    if has_hi {
        zeroed[I_CHECKSUM_HI..I_CHECKSUM_HI + 2].fill(0);
        stored |= u32::from(get_u16(slot, I_CHECKSUM_HI)) << 16;
    }
    let crc = crate::checksum::crc32c(inode_seed, &zeroed);
    (stored, if has_hi { crc } else { crc & 0xFFFF })
}

/// Stores the CRC32C of an inode (computed with the checksum fields zero),
/// seeded with the inode's own seed: low half in `l_i_checksum_lo`, high
/// half in `i_checksum_hi` when the inode has the extra fields.
pub(crate) fn set_checksum(slot: &mut [u8], inode_seed: u32) {
    slot[L_I_CHECKSUM_LO..L_I_CHECKSUM_LO + 2].fill(0);
    if slot.len() > usize::from(GOOD_OLD_INODE_SIZE) {
        slot[I_CHECKSUM_HI..I_CHECKSUM_HI + 2].fill(0);
    }
    let crc = crate::checksum::crc32c(inode_seed, slot);
    put_u16(slot, L_I_CHECKSUM_LO, crc as u16);
    if slot.len() > usize::from(GOOD_OLD_INODE_SIZE) {
        put_u16(slot, I_CHECKSUM_HI, (crc >> 16) as u16);
    }
}

/// The seconds field of an inode without extra time fields: signed 32
/// bits, times outside 1901..2038 clamped to its ends.
fn small_secs(secs: i64) -> u32 {
    secs.clamp(i32::MIN.into(), i32::MAX.into()) as i32 as u32
}

/// The time an inode stores for `t`: with the extra fields (`large`,
/// inodes over 128 bytes) nanoseconds and 1901..2446, else whole seconds
/// and 1901..2038, clamped at the ends as the writer does.
pub fn stored_time(t: Timestamp, large: bool) -> Timestamp {
    if large {
        let (secs, extra) = encode_extra_time(t);
        decode_extra_time(secs, extra)
    } else {
        Timestamp {
            secs: i64::from(small_secs(t.secs) as i32),
            nanos: 0,
        }
    }
}

/// Splits a time into the 32-bit seconds field and the extra field: two epoch
/// bits extending the seconds past 2038 (and 1901), then 30 bits of nanoseconds.
/// Times outside the representable range are clamped to its ends.
pub(crate) fn encode_extra_time(t: Timestamp) -> (u32, u32) {
    let secs = t.secs.clamp(EXTRA_TIME_MIN, EXTRA_TIME_MAX);
    let low = secs as i32;
    let epoch = ((secs - i64::from(low)) >> 32) as u32 & 3;
    (low as u32, (t.nanos << 2) | epoch)
}

/// The inverse of [`encode_extra_time`]: the signed 32-bit seconds, moved by
/// the epoch bits, and the nanoseconds (`extra` 0 where there is no extra word).
pub(crate) fn decode_extra_time(secs: u32, extra: u32) -> Timestamp {
    Timestamp {
        secs: i64::from(secs as i32) + (i64::from(extra & 3) << 32),
        nanos: extra >> 2,
    }
}

/// The inverse of [`encode_device`]: the old form if word 0 is set, else the
/// new form of word 1 (the kernel's `old_decode_dev` and `new_decode_dev`).
pub(crate) fn decode_device(i_block: &[u8; 60]) -> (u32, u32) {
    let old = get_u32(i_block, 0);
    if old != 0 {
        return ((old >> 8) & 0xff, old & 0xff);
    }
    let new = get_u32(i_block, 4);
    ((new & 0xfff00) >> 8, (new & 0xff) | ((new >> 12) & 0xfff00))
}

/// Encodes a device number into `i_block` as the kernel does: the old 16-bit
/// form in word 0 when major and minor fit in a byte, else the new form in word 1.
pub(crate) fn encode_device(major: u32, minor: u32) -> [u8; 60] {
    let mut b = [0u8; 60];
    if major < 256 && minor < 256 {
        put_u32(&mut b, 0, (major << 8) | minor);
    } else {
        let new = (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12);
        put_u32(&mut b, 4, new);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_time_epochs() {
        let t = |secs| Timestamp { secs, nanos: 5 };
        // Before 1970: negative 32-bit seconds, epoch 0.
        assert_eq!(encode_extra_time(t(-1)), (u32::MAX, 5 << 2));
        // 2100-01-01: past 2038, epoch 1.
        let (lo, extra) = encode_extra_time(t(4_102_444_800));
        assert_eq!(extra & 3, 1);
        assert_eq!(i64::from(lo as i32) + (1 << 32), 4_102_444_800);
    }

    #[test]
    fn extra_time_round_trips() {
        for secs in [
            EXTRA_TIME_MIN,
            -1,
            0,
            1_700_000_000,
            4_102_444_800,
            EXTRA_TIME_MAX,
        ] {
            let t = Timestamp {
                secs,
                nanos: 999_999_999,
            };
            let (lo, extra) = encode_extra_time(t);
            assert_eq!(decode_extra_time(lo, extra), t, "{secs}");
        }
    }

    #[test]
    fn devices_round_trip() {
        for dev in [
            (8, 1),
            (0, 0),
            (255, 255),
            (300, 70000),
            (4095, (1 << 20) - 1),
        ] {
            assert_eq!(decode_device(&encode_device(dev.0, dev.1)), dev);
        }
    }

    /// A record with every field kiln decodes set, high halves included.
    fn record() -> InodeRecord {
        let t = |secs, nanos| Timestamp { secs, nanos };
        InodeRecord {
            mode: mode::S_IFCHR | 0o640,
            uid: 0x1234_5678,
            gid: 0x9ABC_DEF0,
            size: 0x1_2345_6789,
            atime: t(4_102_444_800, 1),
            ctime: t(-5, 2),
            mtime: t(1_600_000_000, 123_456_789),
            crtime: Some(t(1_000_000_000, 4)),
            links: 3,
            flags: 0x80000,
            i_block: encode_device(300, 70000),
            file_acl: 0x1_0000_0042,
            ..InodeRecord::default()
        }
    }

    #[test]
    fn decode_reads_what_encode_wrote() {
        let r = record();
        let mut slot = vec![0u8; 256];
        r.encode(&mut slot, 4096);
        let v = decode(&slot, true);
        assert_eq!((v.mode, v.uid, v.gid), (r.mode, r.uid, r.gid));
        assert_eq!((v.size, v.links, v.flags), (r.size, r.links, r.flags));
        assert_eq!((v.atime, v.ctime, v.mtime), (r.atime, r.ctime, r.mtime));
        assert_eq!(v.crtime, r.crtime);
        assert_eq!((v.i_block, v.file_acl), (r.i_block, r.file_acl));
        assert_eq!(v.device(), Some((300, 70000)));
        assert_eq!(decode(&slot, false).file_acl, 0x42);
        assert_eq!(
            ibody_area(&slot).len(),
            256 - 128 - usize::from(EXTRA_ISIZE)
        );
    }

    #[test]
    fn small_inodes_have_second_times_only() {
        let r = record();
        let mut slot = vec![0u8; 128];
        r.encode(&mut slot, 1024);
        let v = decode(&slot, true);
        assert_eq!(({ v.mtime.secs }, { v.mtime.nanos }), (1_600_000_000, 0));
        assert_eq!(v.crtime, None);
        assert!(ibody_area(&slot).is_empty());
        assert_eq!(v.device(), Some((300, 70000)));
    }

    #[test]
    fn device_numbers() {
        assert_eq!(crate::le::get_u32(&encode_device(8, 1), 0), 0x801);
        let b = encode_device(300, 70000);
        assert_eq!(crate::le::get_u32(&b, 0), 0);
        assert_eq!(
            crate::le::get_u32(&b, 4),
            (70000 & 0xff) | (300 << 8) | ((70000 & !0xff) << 12)
        );
    }
}
