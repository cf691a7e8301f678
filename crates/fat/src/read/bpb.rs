//! The boot sector read back: the BPB's geometry checked as Linux's
//! `fat_fill_super` and the FAT specification require, before anything is
//! read by it, and FSInfo (FAT32).
//!
//! The variant follows Linux: a zero `BPB_FATSz16` means FAT32 (whose
//! fields then apply); otherwise the cluster count decides FAT12 or FAT16
//! (FAT specification). Every derived size is computed in `u64` and
//! bounded, so no later arithmetic on the geometry can overflow.

use crate::boot::{off, EXT_BOOT_SIG, FSI_LEAD_SIG, FSI_STRUC_SIG, FSI_TRAIL_SIG};
use crate::dirent::DIR_ENTRY_SIZE;
use crate::error::ReadError;
use crate::geometry::{FAT16_MIN_CLUSTERS, FAT32_MAX_CLUSTERS, FAT32_MIN_CLUSTERS};
use crate::le::{get_u16, get_u32};
use crate::FatVariant;

/// Bytes of the boot sector that are decoded.
pub(crate) const BOOT_SECTOR: usize = 512;
/// The sector sizes the specification allows.
const SECTOR_SIZES: [u32; 4] = [512, 1024, 2048, 4096];
/// `BS_BootSig` of the older extended BPB: a volume id, no label.
const EXT_BOOT_SIG_OLD: u8 = 0x28;
/// `BPB_ExtFlags`: set when only one FAT is active (not mirrored).
const NO_MIRRORING: u16 = 0x80;
/// `BPB_ExtFlags`: the active FAT's number, when not mirrored.
const ACTIVE_FAT: u16 = 0x0F;
/// The structure named by errors.
const BOOT: &str = "boot sector";

/// A FAT volume as its boot sector describes it, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Volume {
    /// FAT12, FAT16 or FAT32.
    pub variant: FatVariant,
    /// `BPB_BytsPerSec`: 512, 1024, 2048 or 4096.
    pub bytes_per_sector: u32,
    /// `BPB_SecPerClus`: a power of two, 1 to 128.
    pub sectors_per_cluster: u32,
    /// `BPB_RsvdSecCnt`: sectors before the first FAT (at least 1).
    pub reserved_sectors: u32,
    /// `BPB_NumFATs`: copies of the FAT (at least 1).
    pub fat_count: u32,
    /// `BPB_FATSz16` or `BPB_FATSz32`: sectors of each FAT.
    pub fat_sectors: u32,
    /// `BPB_RootEntCnt`: entries of the fixed root directory (0 on FAT32).
    pub root_entries: u32,
    /// `BPB_TotSec16` or `BPB_TotSec32`.
    pub total_sectors: u32,
    /// Data clusters, numbered from 2.
    pub clusters: u32,
    /// `BPB_Media`.
    pub media: u8,
    /// FAT32: the root directory's first cluster (`BPB_RootClus`); 0 on
    /// FAT12/16.
    pub root_cluster: u32,
    /// The FAT that is read: 0, or `BPB_ExtFlags`' active FAT when
    /// mirroring is off.
    pub active_fat: u32,
    /// FAT32: `BPB_FSInfo`, if it names a reserved sector.
    pub fsinfo_sector: Option<u32>,
    /// `BS_VolID`, if the extended boot signature says it is there.
    pub volume_id: Option<u32>,
    /// `BS_VolLab` (spaces trimmed), if the extended boot signature says
    /// it is there.
    pub label: Option<Vec<u8>>,
    /// `BPB_HiddSec`.
    pub hidden_sectors: u32,
    /// The boot sector's dirty bit (`BS_Reserved1` bit 0) is set: the
    /// volume is mounted, or was not cleanly unmounted.
    pub dirty: bool,
}

impl Volume {
    /// Bytes per cluster.
    pub fn cluster_bytes(&self) -> u32 {
        self.sectors_per_cluster * self.bytes_per_sector
    }

    /// Bytes of the volume.
    pub fn size(&self) -> u64 {
        u64::from(self.total_sectors) * u64::from(self.bytes_per_sector)
    }

    /// Byte offset of sector `n`.
    pub(crate) fn sector_offset(&self, n: u64) -> u64 {
        n * u64::from(self.bytes_per_sector)
    }

    /// Byte offset and length of FAT copy `i`.
    pub(crate) fn fat_range(&self, i: u32) -> (u64, u64) {
        let first = u64::from(self.reserved_sectors) + u64::from(i) * u64::from(self.fat_sectors);
        (
            self.sector_offset(first),
            self.sector_offset(u64::from(self.fat_sectors)),
        )
    }

    /// Byte offset and length of the fixed root directory (FAT12/16).
    pub(crate) fn root_range(&self) -> (u64, u64) {
        let (fat0, fat_len) = self.fat_range(0);
        let root = fat0 + fat_len * u64::from(self.fat_count);
        (root, u64::from(self.root_entries) * DIR_ENTRY_SIZE as u64)
    }

    /// Byte offset of cluster `n` (2 ≤ n < clusters + 2, which callers
    /// have checked).
    pub(crate) fn cluster_offset(&self, n: u32) -> u64 {
        let (root, _) = self.root_range();
        let root_sectors = root_sectors(self.root_entries, self.bytes_per_sector);
        root + self.sector_offset(root_sectors) + u64::from(n - 2) * u64::from(self.cluster_bytes())
    }

    /// Whether `n` names a data cluster.
    pub(crate) fn in_range(&self, n: u32) -> bool {
        n >= 2 && u64::from(n) < u64::from(self.clusters) + 2
    }

    /// Bytes of the FAT that map clusters 0 to clusters + 1.
    pub(crate) fn fat_bytes_used(&self) -> u64 {
        let bits = match self.variant {
            FatVariant::Fat12 => 12,
            FatVariant::Fat16 => 16,
            FatVariant::Fat32 => 32,
        };
        ((u64::from(self.clusters) + 2) * bits).div_ceil(8)
    }
}

/// Sectors of a fixed root directory of `entries` entries.
fn root_sectors(entries: u32, bps: u32) -> u64 {
    (u64::from(entries) * DIR_ENTRY_SIZE as u64).div_ceil(u64::from(bps))
}

/// A [`ReadError::Corrupt`] of the boot sector.
fn bad(detail: String) -> ReadError {
    ReadError::corrupt(BOOT, detail)
}

/// Whether `head` (the first bytes of a volume) looks like a FAT boot
/// sector: a jump instruction, the 0xAA55 signature and a sector size FAT
/// allows. Telling FAT from other filesystems, not validating.
pub fn probe(head: &[u8]) -> bool {
    let Some(b) = head.get(..BOOT_SECTOR) else {
        return false;
    };
    let jump = matches!(b[off::JMP_BOOT], 0xEB | 0xE9);
    let bps = u32::from(get_u16(b, off::BYTS_PER_SEC));
    jump && get_u16(b, off::SIGNATURE) == crate::boot::SIGNATURE && SECTOR_SIZES.contains(&bps)
}

/// Decodes and checks the boot sector `b`.
pub(crate) fn decode(b: &[u8; BOOT_SECTOR]) -> Result<Volume, ReadError> {
    let bps = u32::from(get_u16(b, off::BYTS_PER_SEC));
    if !SECTOR_SIZES.contains(&bps) {
        return Err(bad(format!(
            "BPB_BytsPerSec is {bps}, not 512, 1024, 2048 or 4096"
        )));
    }
    let spc = u32::from(b[off::SEC_PER_CLUS]);
    if !spc.is_power_of_two() {
        return Err(bad(format!(
            "BPB_SecPerClus is {spc}, not a power of two from 1 to 128"
        )));
    }
    let reserved = u32::from(get_u16(b, off::RSVD_SEC_CNT));
    let fat_count = u32::from(b[off::NUM_FATS]);
    if reserved == 0 || fat_count == 0 {
        return Err(bad(format!(
            "BPB_RsvdSecCnt is {reserved} and BPB_NumFATs {fat_count}; both must be at least 1"
        )));
    }
    let root_entries = u32::from(get_u16(b, off::ROOT_ENT_CNT));
    if u64::from(root_entries) * DIR_ENTRY_SIZE as u64 % u64::from(bps) != 0 {
        return Err(bad(format!(
            "BPB_RootEntCnt {root_entries} does not fill whole sectors"
        )));
    }
    let total = match get_u16(b, off::TOT_SEC16) {
        0 => get_u32(b, off::TOT_SEC32),
        n => u32::from(n),
    };
    let fat16 = u32::from(get_u16(b, off::FAT_SZ16));
    let fat32 = fat16 == 0;
    let fat_sectors = if fat32 {
        get_u32(b, off::FAT_SZ32)
    } else {
        fat16
    };
    if total == 0 || fat_sectors == 0 {
        return Err(bad(format!(
            "the volume has {total} sectors and each FAT {fat_sectors}; neither may be 0"
        )));
    }
    if fat32 && root_entries != 0 {
        return Err(bad(format!(
            "FAT32 has no fixed root directory, BPB_RootEntCnt is {root_entries}"
        )));
    }
    let meta = u64::from(reserved)
        + u64::from(fat_count) * u64::from(fat_sectors)
        + root_sectors(root_entries, bps);
    let data = u64::from(total)
        .checked_sub(meta)
        .filter(|&d| d >= u64::from(spc))
        .ok_or_else(|| {
            bad(format!(
                "{meta} sectors of metadata leave no data cluster in {total} sectors"
            ))
        })?;
    let clusters = data / u64::from(spc);
    let variant = match clusters {
        _ if fat32 => FatVariant::Fat32,
        c if c < u64::from(FAT16_MIN_CLUSTERS) => FatVariant::Fat12,
        c if c < u64::from(FAT32_MIN_CLUSTERS) => FatVariant::Fat16,
        c => {
            return Err(bad(format!(
                "{c} clusters are too many for FAT12/16 (BPB_FATSz16 is not 0)"
            )))
        }
    };
    if clusters > u64::from(FAT32_MAX_CLUSTERS) {
        return Err(bad(format!("{clusters} clusters are too many for FAT32")));
    }
    let mut vol = Volume {
        variant,
        bytes_per_sector: bps,
        sectors_per_cluster: spc,
        reserved_sectors: reserved,
        fat_count,
        fat_sectors,
        root_entries,
        total_sectors: total,
        // OK to cast: at most FAT32_MAX_CLUSTERS.
        clusters: clusters as u32,
        media: b[off::MEDIA],
        root_cluster: 0,
        active_fat: 0,
        fsinfo_sector: None,
        volume_id: None,
        label: None,
        hidden_sectors: get_u32(b, off::HIDD_SEC),
        dirty: false,
    };
    if vol.fat_bytes_used() > vol.sector_offset(u64::from(fat_sectors)) {
        return Err(bad(format!(
            "a FAT of {fat_sectors} sectors cannot map {clusters} clusters"
        )));
    }
    if fat32 {
        fat32_fields(b, &mut vol)?;
    }
    extended_bpb(b, &mut vol);
    Ok(vol)
}

/// The FAT32 fields: root cluster, active FAT, FSInfo.
fn fat32_fields(b: &[u8; BOOT_SECTOR], vol: &mut Volume) -> Result<(), ReadError> {
    let version = get_u16(b, off::FS_VER);
    if version != 0 {
        return Err(bad(format!("BPB_FSVer is {version:#06x}, not 0.0")));
    }
    vol.root_cluster = get_u32(b, off::ROOT_CLUS);
    if !vol.in_range(vol.root_cluster) {
        return Err(bad(format!(
            "BPB_RootClus {} is not a cluster (2 to {})",
            vol.root_cluster,
            u64::from(vol.clusters) + 1
        )));
    }
    let flags = get_u16(b, off::EXT_FLAGS);
    if flags & NO_MIRRORING != 0 {
        vol.active_fat = u32::from(flags & ACTIVE_FAT);
        if vol.active_fat >= vol.fat_count {
            return Err(bad(format!(
                "BPB_ExtFlags names FAT {} of {}",
                vol.active_fat, vol.fat_count
            )));
        }
    }
    let fsinfo = u32::from(get_u16(b, off::FS_INFO));
    vol.fsinfo_sector = Some(fsinfo).filter(|&s| s != 0 && s < vol.reserved_sectors);
    Ok(())
}

/// The volume id and label, where `BS_BootSig` says they are.
fn extended_bpb(b: &[u8; BOOT_SECTOR], vol: &mut Volume) {
    let ext = if vol.variant == FatVariant::Fat32 {
        off::EXT_FAT32
    } else {
        off::EXT_FAT16
    };
    let sig = b[ext + off::BOOT_SIG];
    if sig == EXT_BOOT_SIG || sig == EXT_BOOT_SIG_OLD {
        vol.volume_id = Some(get_u32(b, ext + off::VOL_ID));
        vol.dirty = b[ext + off::STATE] & 1 != 0;
    }
    if sig == EXT_BOOT_SIG {
        let label = &b[ext + off::VOL_LAB..ext + off::VOL_LAB + 11];
        vol.label = Some(trim_spaces(label).to_vec());
    }
}

/// `bytes` without its trailing spaces.
pub(crate) fn trim_spaces(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&c| c != b' ').map_or(0, |i| i + 1);
    &bytes[..end]
}

/// FSInfo's counts: the free clusters and the next free one, as
/// recorded (0xFFFFFFFF: unknown); `None` if the sector does not carry
/// FSInfo's three signatures.
pub(crate) fn decode_fsinfo(s: &[u8; BOOT_SECTOR]) -> Option<(u32, u32)> {
    let signed = get_u32(s, off::FSI_LEAD_SIG) == FSI_LEAD_SIG
        && get_u32(s, off::FSI_STRUC_SIG) == FSI_STRUC_SIG
        && get_u32(s, off::FSI_TRAIL_SIG) == FSI_TRAIL_SIG;
    signed.then(|| {
        (
            get_u32(s, off::FSI_FREE_COUNT),
            get_u32(s, off::FSI_NXT_FREE),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::{boot_sector, fsinfo, Identity};
    use crate::geometry::{choose, Request};

    fn sector(mib: u64) -> [u8; 512] {
        let g = choose(Request {
            total_sectors: (mib << 20) as u32 / 512,
            variant: None,
            spc: None,
            root_needed: 0,
        })
        .unwrap();
        let id = Identity {
            volume_id: 0xDEAD_BEEF,
            label: *b"KILN       ",
            hidden_sectors: 2048,
            root_cluster: 2,
        };
        boot_sector(&g, &id)
    }

    #[test]
    fn reads_back_what_the_writer_encodes() {
        for (mib, variant) in [
            (4, FatVariant::Fat12),
            (64, FatVariant::Fat16),
            (600, FatVariant::Fat32),
        ] {
            let b = sector(mib);
            assert!(probe(&b));
            let v = decode(&b).unwrap();
            assert_eq!(v.variant, variant);
            assert_eq!(v.size(), mib << 20);
            assert_eq!(v.volume_id, Some(0xDEAD_BEEF));
            assert_eq!(v.label.as_deref(), Some(&b"KILN"[..]));
            assert_eq!(v.hidden_sectors, 2048);
        }
        assert_eq!(decode_fsinfo(&fsinfo(5, Some(9))), Some((5, 9)));
        assert_eq!(decode_fsinfo(&[0; 512]), None);
    }

    #[test]
    fn bad_fields_are_refused() {
        let cases: [(usize, &[u8], &str); 6] = [
            (off::BYTS_PER_SEC, &[0, 0], "BPB_BytsPerSec is 0"),
            (off::SEC_PER_CLUS, &[3], "BPB_SecPerClus is 3"),
            (off::SEC_PER_CLUS, &[0], "BPB_SecPerClus is 0"),
            (off::FAT_SZ16, &[1, 0], "cannot map"),
            (off::NUM_FATS, &[0], "BPB_NumFATs 0"),
            (off::TOT_SEC32, &[0, 0, 0, 0], "neither may be 0"),
        ];
        for (at, bytes, want) in cases {
            let mut b = sector(64);
            b[at..at + bytes.len()].copy_from_slice(bytes);
            let e = decode(&b).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        // FAT32 with its FAT size 0 and a root cluster beyond the end.
        let mut b = sector(600);
        b[off::FAT_SZ32..off::FAT_SZ32 + 4].fill(0);
        assert!(decode(&b).is_err());
        let mut b = sector(600);
        b[off::ROOT_CLUS..off::ROOT_CLUS + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&b).unwrap_err().to_string().contains("BPB_RootClus"));
    }
}
