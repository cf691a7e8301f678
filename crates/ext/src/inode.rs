//! The inode structure (`struct ext4_inode`), 128 bytes plus the extra area.

use kiln_tree::Timestamp;

use crate::layout::{EXTRA_ISIZE, GOOD_OLD_INODE_SIZE};
use crate::le::{put_u16, put_u32};

/// `i_mode` type bits.
pub(crate) mod mode {
    /// Socket.
    pub(crate) const S_IFSOCK: u16 = 0o140000;
    /// Symbolic link.
    pub(crate) const S_IFLNK: u16 = 0o120000;
    /// Regular file.
    pub(crate) const S_IFREG: u16 = 0o100000;
    /// Block device.
    pub(crate) const S_IFBLK: u16 = 0o060000;
    /// Directory.
    pub(crate) const S_IFDIR: u16 = 0o040000;
    /// Character device.
    pub(crate) const S_IFCHR: u16 = 0o020000;
    /// Named pipe.
    pub(crate) const S_IFIFO: u16 = 0o010000;
}

/// Byte offsets of the inode fields kiln writes.
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
                put_u32(
                    buf,
                    lo,
                    t.secs.clamp(i32::MIN.into(), i32::MAX.into()) as i32 as u32,
                );
            }
        }
        if large {
            put_u16(buf, off::I_EXTRA_ISIZE, EXTRA_ISIZE);
            let start = usize::from(GOOD_OLD_INODE_SIZE + EXTRA_ISIZE);
            buf[start..start + self.ibody_xattrs.len()].copy_from_slice(&self.ibody_xattrs);
        }
    }
}

/// Offsets of the two halves of the metadata_csum inode checksum.
const L_I_CHECKSUM_LO: usize = 0x7C;
const I_CHECKSUM_HI: usize = 0x82;

/// Stores the CRC32C of an encoded inode (checksum fields zero), seeded with
/// the inode's own seed: low half in `l_i_checksum_lo`, high half in
/// `i_checksum_hi` when the inode has the extra fields.
pub(crate) fn set_checksum(slot: &mut [u8], inode_seed: u32) {
    let crc = crate::checksum::crc32c(inode_seed, slot);
    put_u16(slot, L_I_CHECKSUM_LO, crc as u16);
    if slot.len() > usize::from(GOOD_OLD_INODE_SIZE) {
        put_u16(slot, I_CHECKSUM_HI, (crc >> 16) as u16);
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
