//! The 32-byte short directory entry (`DIR_*` fields of the FAT
//! specification): the 8.3 name, attributes, times, first cluster, size.

use crate::le::{get_u16, get_u32, put_u16, put_u32};
use crate::time::FatTime;

/// Bytes of one directory entry (short or long-name slot).
pub(crate) const DIR_ENTRY_SIZE: usize = 32;
/// `ATTR_READ_ONLY`.
pub(crate) const ATTR_READ_ONLY: u8 = 0x01;
/// `ATTR_HIDDEN`.
pub(crate) const ATTR_HIDDEN: u8 = 0x02;
/// `ATTR_SYSTEM`.
pub(crate) const ATTR_SYSTEM: u8 = 0x04;
/// `ATTR_VOLUME_ID`: the volume label entry of the root directory.
pub(crate) const ATTR_VOLUME_ID: u8 = 0x08;
/// `ATTR_DIRECTORY`.
pub(crate) const ATTR_DIRECTORY: u8 = 0x10;
/// `ATTR_ARCHIVE`: set on files written since the last backup; every file
/// kiln writes.
pub(crate) const ATTR_ARCHIVE: u8 = 0x20;
/// The attributes of a long-name slot.
pub(crate) const ATTR_LONG_NAME: u8 = ATTR_READ_ONLY | ATTR_HIDDEN | ATTR_SYSTEM | ATTR_VOLUME_ID;

/// The fields of one short entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ShortEntry {
    /// `DIR_Name`, 11 bytes.
    pub(crate) name: [u8; 11],
    /// `DIR_Attr`.
    pub(crate) attr: u8,
    /// `DIR_NTRes`: lower-case flags of the base and extension.
    pub(crate) nt_res: u8,
    /// Creation time (`DIR_CrtTimeTenth`, `DIR_CrtTime`, `DIR_CrtDate`).
    pub(crate) created: FatTime,
    /// `DIR_LstAccDate` (the date of this time).
    pub(crate) accessed: FatTime,
    /// `DIR_WrtTime`, `DIR_WrtDate`.
    pub(crate) written: FatTime,
    /// First cluster (`DIR_FstClusHI`, `DIR_FstClusLO`), 0 for none.
    pub(crate) cluster: u32,
    /// `DIR_FileSize`, 0 for directories.
    pub(crate) size: u32,
}

impl ShortEntry {
    /// Appends the 32 bytes of the entry.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let mut e = [0u8; DIR_ENTRY_SIZE];
        e[0..11].copy_from_slice(&self.name);
        e[11] = self.attr;
        e[12] = self.nt_res;
        e[13] = self.created.tenths;
        put_u16(&mut e, 14, self.created.time);
        put_u16(&mut e, 16, self.created.date);
        put_u16(&mut e, 18, self.accessed.date);
        put_u16(&mut e, 20, (self.cluster >> 16) as u16);
        put_u16(&mut e, 22, self.written.time);
        put_u16(&mut e, 24, self.written.date);
        put_u16(&mut e, 26, self.cluster as u16);
        put_u32(&mut e, 28, self.size);
        out.extend_from_slice(&e);
    }

    /// Decodes the 32 bytes of a short entry (any bytes: every field is
    /// taken as found; the reader judges them). `DIR_FstClusHI` is kept
    /// whole: FAT12/16 readers ignore it (OS/2 kept other data there).
    pub(crate) fn decode(e: &[u8; DIR_ENTRY_SIZE]) -> ShortEntry {
        let mut name = [0u8; 11];
        name.copy_from_slice(&e[0..11]);
        let date_only = |date| FatTime {
            date,
            time: 0,
            tenths: 0,
        };
        ShortEntry {
            name,
            attr: e[11],
            nt_res: e[12],
            created: FatTime {
                date: get_u16(e, 16),
                time: get_u16(e, 14),
                tenths: e[13],
            },
            accessed: date_only(get_u16(e, 18)),
            written: FatTime {
                date: get_u16(e, 24),
                time: get_u16(e, 22),
                tenths: 0,
            },
            cluster: u32::from(get_u16(e, 20)) << 16 | u32::from(get_u16(e, 26)),
            size: get_u32(e, 28),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_at_their_offsets() {
        let t = FatTime {
            date: 0x1234,
            time: 0x5678,
            tenths: 150,
        };
        let mut out = Vec::new();
        ShortEntry {
            name: *b"KERNEL  EFI",
            attr: ATTR_ARCHIVE,
            nt_res: 0x18,
            created: t,
            accessed: t,
            written: t,
            cluster: 0x0003_0004,
            size: 77,
        }
        .encode(&mut out);
        assert_eq!(out.len(), 32);
        assert_eq!(&out[..11], b"KERNEL  EFI");
        assert_eq!((out[11], out[12], out[13]), (0x20, 0x18, 150));
        assert_eq!((get_u16(&out, 20), get_u16(&out, 26)), (3, 4));
        assert_eq!((get_u16(&out, 22), get_u16(&out, 24)), (0x5678, 0x1234));
        assert_eq!(get_u32(&out, 28), 77);
        assert_eq!(ATTR_LONG_NAME, 0x0F);
        let back = ShortEntry::decode(out[..].try_into().unwrap());
        assert_eq!(
            (back.name, back.attr, back.nt_res),
            (*b"KERNEL  EFI", 0x20, 0x18)
        );
        assert_eq!(
            (back.created, back.written.time, back.written.date),
            (t, 0x5678, 0x1234)
        );
        assert_eq!(
            (back.accessed.date, back.cluster, back.size),
            (0x1234, 0x0003_0004, 77)
        );
    }
}
