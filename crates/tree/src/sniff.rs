//! What a file given as a tar archive looks like when it is not one: the
//! images people mistake for archives (ext and FAT filesystems, GPT and MBR
//! disks), told apart by the magic numbers in their first bytes.
//!
//! This is for the message that refuses such a source (an ext image
//! starts with 1024 zero bytes, which a tar reader takes for the end of an
//! empty archive), and for kiln-lib to tell an image source from an archive
//! before either is read. It reads a handful of fields, trusts none of them
//! and decodes nothing else: the tree still knows nothing of ext.

use std::fmt;

/// How many bytes of a stream sniffing looks at: through the GPT header of
/// a disk with 4096-byte sectors.
pub const SNIFF_LEN: usize = GPT_HEADER_AT[1] + GPT_SIGNATURE.len();

/// Where the ext superblock starts, in every block size.
const EXT_SUPERBLOCK: usize = 1024;
/// `s_magic`, from the start of the superblock.
const S_MAGIC: usize = 0x38;
/// `s_feature_compat`.
const S_FEATURE_COMPAT: usize = 0x5C;
/// `s_feature_incompat`.
const S_FEATURE_INCOMPAT: usize = 0x60;
/// `s_feature_ro_compat`.
const S_FEATURE_RO_COMPAT: usize = 0x64;
/// The value of `s_magic`.
const EXT_MAGIC: u16 = 0xEF53;
/// `COMPAT_HAS_JOURNAL`: ext3 rather than ext2.
const COMPAT_HAS_JOURNAL: u32 = 0x4;
/// The INCOMPAT features an ext3 filesystem may have (filetype, recover,
/// meta_bg); any other makes it ext4, as blkid decides.
const EXT3_INCOMPAT: u32 = 0x2 | 0x4 | 0x10;
/// The RO_COMPAT features an ext3 filesystem may have (sparse_super,
/// large_file, btree_dir); any other makes it ext4.
const EXT3_RO_COMPAT: u32 = 0x1 | 0x2 | 0x4;

/// Where a GPT header's signature is: LBA 1 with 512- and 4096-byte sectors.
const GPT_HEADER_AT: [usize; 2] = [512, 4096];
/// The signature that starts a GPT header.
const GPT_SIGNATURE: &[u8] = b"EFI PART";

/// Where a boot sector (an MBR, a FAT boot sector) has its signature.
const BOOT_SIGNATURE_AT: usize = 510;
/// The boot sector signature.
const BOOT_SIGNATURE: &[u8] = &[0x55, 0xAA];
/// Where a FAT boot sector names its type (`BS_FilSysType`, "FAT12   ",
/// "FAT16   ", "FAT     "): at 54 for FAT12 and FAT16, 82 for FAT32.
const FAT_TYPE_AT: [usize; 2] = [54, 82];
/// What that name starts with.
const FAT_TYPE: &[u8] = b"FAT";
/// `BPB_BytsPerSec`: 512, 1024, 2048 or 4096.
const BPB_BYTS_PER_SEC: usize = 11;
/// `BPB_SecPerClus`: a power of two.
const BPB_SEC_PER_CLUS: usize = 13;
/// `BPB_RsvdSecCnt`: at least 1 (the boot sector).
const BPB_RSVD_SEC_CNT: usize = 14;
/// `BPB_NumFATs`: at least 1.
const BPB_NUM_FATS: usize = 16;

/// What a source that is not a tar archive looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Looks {
    /// It has no bytes at all.
    Empty,
    /// An ext2, ext3 or ext4 filesystem image (the number, from its
    /// features as blkid tells them apart).
    Ext(u8),
    /// A FAT filesystem image.
    Fat,
    /// A disk image with a GUID partition table.
    Gpt,
    /// A disk image with an MBR partition table (or another boot sector).
    Mbr,
    /// Nothing kiln recognises.
    Unknown,
}

impl Looks {
    /// What the stream whose first bytes are `head` looks like (give it
    /// [`SNIFF_LEN`] bytes where the stream has them).
    pub fn sniff(head: &[u8]) -> Looks {
        if head.is_empty() {
            Looks::Empty
        } else if is_gpt(head) {
            Looks::Gpt
        } else if is_fat(head) {
            Looks::Fat
        } else if let Some(ext) = ext_version(head) {
            Looks::Ext(ext)
        } else if has_boot_signature(head) {
            Looks::Mbr
        } else {
            Looks::Unknown
        }
    }
}

impl fmt::Display for Looks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Looks::Empty => f.write_str("it is empty"),
            Looks::Ext(n) => write!(f, "it looks like an ext{n} filesystem image"),
            Looks::Fat => f.write_str("it looks like a FAT filesystem image"),
            Looks::Gpt => f.write_str("it looks like a GPT-partitioned disk image"),
            Looks::Mbr => f.write_str("it looks like an MBR-partitioned disk image"),
            Looks::Unknown => f.write_str("unknown data"),
        }
    }
}

/// True when a GPT header follows the protective MBR.
fn is_gpt(head: &[u8]) -> bool {
    GPT_HEADER_AT
        .iter()
        .any(|&at| bytes(head, at, GPT_SIGNATURE.len()) == Some(GPT_SIGNATURE))
}

/// True for a FAT boot sector: signed, and naming FAT or starting with a
/// jump over a plausible BIOS parameter block.
fn is_fat(head: &[u8]) -> bool {
    let names_fat = FAT_TYPE_AT
        .iter()
        .any(|&at| bytes(head, at, FAT_TYPE.len()) == Some(FAT_TYPE));
    has_boot_signature(head) && (names_fat || (starts_with_jump(head) && plausible_bpb(head)))
}

/// True when the boot sector starts with x86 code jumping over the BPB
/// (`EB xx 90`, or `E9 xx xx`), as FAT boot sectors do.
fn starts_with_jump(head: &[u8]) -> bool {
    matches!(head, [0xEB, _, 0x90, ..] | [0xE9, ..])
}

/// True when the BIOS parameter block's fields have values FAT allows
/// (NTFS, say, has no FATs and no reserved sectors).
fn plausible_bpb(head: &[u8]) -> bool {
    let sector = u16_at(head, BPB_BYTS_PER_SEC).unwrap_or(0);
    let cluster = head.get(BPB_SEC_PER_CLUS).copied().unwrap_or(0);
    let reserved = u16_at(head, BPB_RSVD_SEC_CNT).unwrap_or(0);
    let fats = head.get(BPB_NUM_FATS).copied().unwrap_or(0);
    matches!(sector, 512 | 1024 | 2048 | 4096)
        && cluster.is_power_of_two()
        && reserved >= 1
        && fats >= 1
}

/// 2, 3 or 4 when an ext superblock is where it belongs.
fn ext_version(head: &[u8]) -> Option<u8> {
    let field = |off| u32_at(head, EXT_SUPERBLOCK + off);
    if u16_at(head, EXT_SUPERBLOCK + S_MAGIC)? != EXT_MAGIC {
        return None;
    }
    let compat = field(S_FEATURE_COMPAT).unwrap_or(0);
    let incompat = field(S_FEATURE_INCOMPAT).unwrap_or(0);
    let ro_compat = field(S_FEATURE_RO_COMPAT).unwrap_or(0);
    Some(
        if incompat & !EXT3_INCOMPAT != 0 || ro_compat & !EXT3_RO_COMPAT != 0 {
            4
        } else if compat & COMPAT_HAS_JOURNAL != 0 {
            3
        } else {
            2
        },
    )
}

/// True for `55 AA` at the end of the first sector.
fn has_boot_signature(head: &[u8]) -> bool {
    bytes(head, BOOT_SIGNATURE_AT, BOOT_SIGNATURE.len()) == Some(BOOT_SIGNATURE)
}

/// `len` bytes at `at`, if the head reaches that far.
fn bytes(head: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    head.get(at..at.checked_add(len)?)
}

/// A little-endian u16 at `at`.
fn u16_at(head: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes(head, at, 2)?.try_into().ok()?))
}

/// A little-endian u32 at `at`.
fn u32_at(head: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes(head, at, 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sector of zeros with the boot signature.
    fn boot_sector() -> Vec<u8> {
        let mut s = vec![0u8; SNIFF_LEN];
        s[BOOT_SIGNATURE_AT..BOOT_SIGNATURE_AT + 2].copy_from_slice(BOOT_SIGNATURE);
        s
    }

    /// An ext superblock with these features, after 1024 zero bytes.
    fn ext(compat: u32, incompat: u32, ro_compat: u32) -> Vec<u8> {
        let mut s = vec![0u8; SNIFF_LEN];
        let sb = EXT_SUPERBLOCK;
        s[sb + S_MAGIC..sb + S_MAGIC + 2].copy_from_slice(&EXT_MAGIC.to_le_bytes());
        s[sb + S_FEATURE_COMPAT..][..4].copy_from_slice(&compat.to_le_bytes());
        s[sb + S_FEATURE_INCOMPAT..][..4].copy_from_slice(&incompat.to_le_bytes());
        s[sb + S_FEATURE_RO_COMPAT..][..4].copy_from_slice(&ro_compat.to_le_bytes());
        s
    }

    #[test]
    fn ext_versions_from_features() {
        assert_eq!(Looks::sniff(&ext(0, 0x2, 0x1 | 0x2)), Looks::Ext(2));
        assert_eq!(Looks::sniff(&ext(0x4, 0x2 | 0x4, 0x1)), Looks::Ext(3));
        // extent, 64bit, flex_bg; or metadata_csum alone.
        assert_eq!(Looks::sniff(&ext(0x4, 0x2c2, 0x1)), Looks::Ext(4));
        assert_eq!(Looks::sniff(&ext(0x4, 0x2, 0x400)), Looks::Ext(4));
        // Cut before the features: still ext, named by what is there.
        assert_eq!(Looks::sniff(&ext(0, 0, 0)[..1082]), Looks::Ext(2));
        assert_eq!(Looks::sniff(&ext(0, 0, 0)[..1081]), Looks::Unknown);
    }

    #[test]
    fn boot_sectors_fat_and_partition_tables() {
        let mbr = boot_sector();
        assert_eq!(Looks::sniff(&mbr), Looks::Mbr);
        let mut fat16 = mbr.clone();
        fat16[54..62].copy_from_slice(b"FAT16   ");
        assert_eq!(Looks::sniff(&fat16), Looks::Fat);
        let mut fat32 = mbr.clone();
        fat32[82..90].copy_from_slice(b"FAT32   ");
        assert_eq!(Looks::sniff(&fat32), Looks::Fat);
        let mut unnamed = mbr.clone();
        unnamed[..3].copy_from_slice(&[0xEB, 0x3C, 0x90]);
        unnamed[BPB_BYTS_PER_SEC..][..2].copy_from_slice(&512u16.to_le_bytes());
        unnamed[BPB_SEC_PER_CLUS] = 4;
        unnamed[BPB_RSVD_SEC_CNT] = 1;
        unnamed[BPB_NUM_FATS] = 2;
        assert_eq!(Looks::sniff(&unnamed), Looks::Fat);
        unnamed[BPB_NUM_FATS] = 0;
        assert_eq!(Looks::sniff(&unnamed), Looks::Mbr, "no FATs: not FAT");
        for at in GPT_HEADER_AT {
            let mut gpt = mbr.clone();
            gpt[at..at + 8].copy_from_slice(GPT_SIGNATURE);
            assert_eq!(Looks::sniff(&gpt), Looks::Gpt);
        }
    }

    #[test]
    fn nothing_recognised() {
        assert_eq!(Looks::sniff(b""), Looks::Empty);
        assert_eq!(Looks::sniff(b"hello!"), Looks::Unknown);
        assert_eq!(Looks::sniff(&[0; SNIFF_LEN]), Looks::Unknown);
        assert_eq!(Looks::sniff(&[0xff; 509]), Looks::Unknown);
    }
}
