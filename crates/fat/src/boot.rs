//! The boot sector (BPB and extended BPB), FSInfo (FAT32) and the
//! reserved area that holds them.

use crate::geometry::{Geometry, FAT_COUNT, SECTOR};
use crate::le::{put_u16, put_u32};
use crate::FatVariant;

/// `BS_OEMName`.
const OEM_NAME: &[u8; 8] = b"KILN    ";
/// The jump to the boot code: past the FAT12/16 BPB (to 0x3E) or the
/// FAT32 one (to 0x5A).
const JUMP_FAT16: [u8; 3] = [0xEB, 0x3C, 0x90];
const JUMP_FAT32: [u8; 3] = [0xEB, 0x58, 0x90];
/// Boot code: `cli; hlt; jmp $-1` (the volume is not bootable by BIOS;
/// UEFI never runs this).
const HALT: [u8; 4] = [0xFA, 0xF4, 0xEB, 0xFD];
/// `BS_BootSig`: the three fields after it (id, label, type) are valid.
pub(crate) const EXT_BOOT_SIG: u8 = 0x29;
/// The signature at bytes 510–511 of the boot sector and of FSInfo.
pub(crate) const SIGNATURE: u16 = 0xAA55;
/// The label written where a volume has none.
pub(crate) const NO_NAME: &[u8; 11] = b"NO NAME    ";
/// FAT32: sector of FSInfo and of the backup boot sector.
pub(crate) const FSINFO_SECTOR: u32 = 1;
pub(crate) const BACKUP_BOOT_SECTOR: u32 = 6;
/// FSInfo signatures (`FSI_LeadSig`, `FSI_StrucSig`, `FSI_TrailSig`).
pub(crate) const FSI_LEAD_SIG: u32 = 0x4161_5252;
pub(crate) const FSI_STRUC_SIG: u32 = 0x6141_7272;
pub(crate) const FSI_TRAIL_SIG: u32 = 0xAA55_0000;

/// Byte offsets of the boot sector's fields (FAT specification names),
/// shared by the encoder and the reader's decoder (`read::bpb`).
pub(crate) mod off {
    /// `BS_jmpBoot`.
    pub(crate) const JMP_BOOT: usize = 0;
    /// `BPB_BytsPerSec`.
    pub(crate) const BYTS_PER_SEC: usize = 11;
    /// `BPB_SecPerClus`.
    pub(crate) const SEC_PER_CLUS: usize = 13;
    /// `BPB_RsvdSecCnt`.
    pub(crate) const RSVD_SEC_CNT: usize = 14;
    /// `BPB_NumFATs`.
    pub(crate) const NUM_FATS: usize = 16;
    /// `BPB_RootEntCnt`.
    pub(crate) const ROOT_ENT_CNT: usize = 17;
    /// `BPB_TotSec16`.
    pub(crate) const TOT_SEC16: usize = 19;
    /// `BPB_Media`.
    pub(crate) const MEDIA: usize = 21;
    /// `BPB_FATSz16`.
    pub(crate) const FAT_SZ16: usize = 22;
    /// `BPB_SecPerTrk`.
    pub(crate) const SEC_PER_TRK: usize = 24;
    /// `BPB_NumHeads`.
    pub(crate) const NUM_HEADS: usize = 26;
    /// `BPB_HiddSec`.
    pub(crate) const HIDD_SEC: usize = 28;
    /// `BPB_TotSec32`.
    pub(crate) const TOT_SEC32: usize = 32;
    /// FAT32: `BPB_FATSz32`.
    pub(crate) const FAT_SZ32: usize = 36;
    /// FAT32: `BPB_ExtFlags`.
    pub(crate) const EXT_FLAGS: usize = 40;
    /// FAT32: `BPB_FSVer`.
    pub(crate) const FS_VER: usize = 42;
    /// FAT32: `BPB_RootClus`.
    pub(crate) const ROOT_CLUS: usize = 44;
    /// FAT32: `BPB_FSInfo`.
    pub(crate) const FS_INFO: usize = 48;
    /// FAT32: `BPB_BkBootSec`.
    pub(crate) const BK_BOOT_SEC: usize = 50;
    /// Where the extended BPB (`BS_DrvNum` ...) starts on FAT12/16 and on
    /// FAT32; its fields are relative to it.
    pub(crate) const EXT_FAT16: usize = 36;
    pub(crate) const EXT_FAT32: usize = 64;
    /// `BS_Reserved1`, relative to the extended BPB: Windows NT and Linux
    /// set its bit 0 while the volume is mounted (the "dirty bit").
    pub(crate) const STATE: usize = 1;
    /// `BS_BootSig`, relative to the extended BPB.
    pub(crate) const BOOT_SIG: usize = 2;
    /// `BS_VolID`, relative to the extended BPB.
    pub(crate) const VOL_ID: usize = 3;
    /// `BS_VolLab` (11 bytes), relative to the extended BPB.
    pub(crate) const VOL_LAB: usize = 7;
    /// `BS_FilSysType` (8 bytes), relative to the extended BPB.
    pub(crate) const FIL_SYS_TYPE: usize = 18;
    /// The boot sector's (and FSInfo's) signature.
    pub(crate) const SIGNATURE: usize = 510;
    /// FSInfo: `FSI_LeadSig`, `FSI_StrucSig`, `FSI_Free_Count`,
    /// `FSI_Nxt_Free`, `FSI_TrailSig`.
    pub(crate) const FSI_LEAD_SIG: usize = 0;
    pub(crate) const FSI_STRUC_SIG: usize = 484;
    pub(crate) const FSI_FREE_COUNT: usize = 488;
    pub(crate) const FSI_NXT_FREE: usize = 492;
    pub(crate) const FSI_TRAIL_SIG: usize = 508;
}

/// What the boot sector says besides the geometry.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    /// `BS_VolID`.
    pub(crate) volume_id: u32,
    /// `BS_VolLab`, padded with spaces.
    pub(crate) label: [u8; 11],
    /// `BPB_HiddSec`: sectors before the volume on its disk.
    pub(crate) hidden_sectors: u32,
    /// FAT32: the root directory's first cluster.
    pub(crate) root_cluster: u32,
}

/// Encodes the boot sector.
pub(crate) fn boot_sector(g: &Geometry, id: &Identity) -> [u8; 512] {
    let mut b = [0u8; 512];
    let fat32 = g.variant == FatVariant::Fat32;
    b[off::JMP_BOOT..off::JMP_BOOT + 3].copy_from_slice(if fat32 {
        &JUMP_FAT32
    } else {
        &JUMP_FAT16
    });
    b[3..11].copy_from_slice(OEM_NAME);
    put_u16(&mut b, off::BYTS_PER_SEC, SECTOR as u16);
    b[off::SEC_PER_CLUS] = g.sectors_per_cluster as u8;
    put_u16(&mut b, off::RSVD_SEC_CNT, g.reserved_sectors as u16);
    b[off::NUM_FATS] = FAT_COUNT as u8;
    put_u16(&mut b, off::ROOT_ENT_CNT, g.root_entries as u16);
    let small = !fat32 && g.total_sectors <= u32::from(u16::MAX);
    let tot16 = if small { g.total_sectors as u16 } else { 0 };
    put_u16(&mut b, off::TOT_SEC16, tot16);
    b[off::MEDIA] = g.media;
    let fat16 = if fat32 { 0 } else { g.fat_sectors as u16 };
    put_u16(&mut b, off::FAT_SZ16, fat16);
    put_u16(&mut b, off::SEC_PER_TRK, g.sectors_per_track);
    put_u16(&mut b, off::NUM_HEADS, g.heads);
    put_u32(&mut b, off::HIDD_SEC, id.hidden_sectors);
    let tot32 = if small { 0 } else { g.total_sectors };
    put_u32(&mut b, off::TOT_SEC32, tot32);
    let ext = if fat32 {
        put_u32(&mut b, off::FAT_SZ32, g.fat_sectors);
        // Every FAT mirrored, version 0.0.
        put_u16(&mut b, off::EXT_FLAGS, 0);
        put_u16(&mut b, off::FS_VER, 0);
        put_u32(&mut b, off::ROOT_CLUS, id.root_cluster);
        put_u16(&mut b, off::FS_INFO, FSINFO_SECTOR as u16);
        put_u16(&mut b, off::BK_BOOT_SEC, BACKUP_BOOT_SECTOR as u16);
        off::EXT_FAT32
    } else {
        off::EXT_FAT16
    };
    b[ext] = g.drive; // BS_DrvNum
    b[ext + off::BOOT_SIG] = EXT_BOOT_SIG;
    put_u32(&mut b, ext + off::VOL_ID, id.volume_id);
    b[ext + off::VOL_LAB..ext + off::VOL_LAB + 11].copy_from_slice(&id.label);
    let fs_type: &[u8; 8] = match g.variant {
        FatVariant::Fat12 => b"FAT12   ",
        FatVariant::Fat16 => b"FAT16   ",
        FatVariant::Fat32 => b"FAT32   ",
    };
    b[ext + off::FIL_SYS_TYPE..ext + off::FIL_SYS_TYPE + 8].copy_from_slice(fs_type);
    b[ext + 26..ext + 26 + HALT.len()].copy_from_slice(&HALT);
    put_u16(&mut b, off::SIGNATURE, SIGNATURE);
    b
}

/// Encodes FSInfo: `free` clusters, the next free one `next` (or
/// 0xFFFFFFFF, unknown, when none is free).
pub(crate) fn fsinfo(free: u32, next: Option<u32>) -> [u8; 512] {
    let mut b = [0u8; 512];
    put_u32(&mut b, off::FSI_LEAD_SIG, FSI_LEAD_SIG);
    put_u32(&mut b, off::FSI_STRUC_SIG, FSI_STRUC_SIG);
    put_u32(&mut b, off::FSI_FREE_COUNT, free);
    put_u32(&mut b, off::FSI_NXT_FREE, next.unwrap_or(u32::MAX));
    put_u32(&mut b, off::FSI_TRAIL_SIG, FSI_TRAIL_SIG);
    b
}

/// The reserved area (every reserved sector): the boot sector, and on
/// FAT32 FSInfo and their backups at sector 6.
pub(crate) fn reserved_area(g: &Geometry, id: &Identity, fsi: Option<[u8; 512]>) -> Vec<u8> {
    let mut area = vec![0u8; g.reserved_sectors as usize * SECTOR as usize];
    let boot = boot_sector(g, id);
    let mut put = |sector: u32, bytes: &[u8; 512]| {
        let at = sector as usize * SECTOR as usize;
        area[at..at + 512].copy_from_slice(bytes);
    };
    put(0, &boot);
    if let Some(fsi) = fsi {
        put(FSINFO_SECTOR, &fsi);
        put(BACKUP_BOOT_SECTOR, &boot);
        put(BACKUP_BOOT_SECTOR + FSINFO_SECTOR, &fsi);
    }
    area
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{choose, Request};
    use crate::le::{get_u16, get_u32};

    fn geometry(mib: u64, variant: Option<FatVariant>) -> Geometry {
        choose(Request {
            total_sectors: (mib << 20) as u32 / 512,
            variant,
            spc: None,
            root_needed: 0,
        })
        .unwrap()
    }

    fn id() -> Identity {
        Identity {
            volume_id: 0x1234_5678,
            label: *b"KILN ESP   ",
            hidden_sectors: 2048,
            root_cluster: 2,
        }
    }

    #[test]
    fn fat16_boot_sector_fields() {
        let g = geometry(64, None);
        let b = boot_sector(&g, &id());
        assert_eq!(&b[0..3], &JUMP_FAT16);
        assert_eq!(get_u16(&b, 11), 512);
        assert_eq!(u32::from(b[13]), g.sectors_per_cluster);
        assert_eq!(u32::from(get_u16(&b, 14)), g.reserved_sectors);
        assert_eq!((b[16], get_u16(&b, 17)), (2, 512));
        assert_eq!(get_u16(&b, 19), 0, "131072 sectors need BPB_TotSec32");
        assert_eq!(get_u32(&b, 32), 131_072);
        assert_eq!(u32::from(get_u16(&b, 22)), g.fat_sectors);
        assert_eq!(get_u32(&b, 28), 2048);
        assert_eq!((b[36], b[38]), (0x80, 0x29));
        assert_eq!(get_u32(&b, 39), 0x1234_5678);
        assert_eq!(&b[43..54], b"KILN ESP   ");
        assert_eq!(&b[54..62], b"FAT16   ");
        assert_eq!(&b[510..], &[0x55, 0xAA]);
        // The jump lands on the halt loop.
        assert_eq!(&b[0x3E..0x42], &HALT);
    }

    #[test]
    fn fat32_boot_sector_fsinfo_and_backup() {
        let g = geometry(600, None);
        assert_eq!(g.variant, FatVariant::Fat32);
        let fsi = fsinfo(100, Some(7));
        let area = reserved_area(&g, &id(), Some(fsi));
        let b = &area[..512];
        assert_eq!(&b[0..3], &JUMP_FAT32);
        assert_eq!((get_u16(b, 17), get_u16(b, 19), get_u16(b, 22)), (0, 0, 0));
        assert_eq!(get_u32(b, 36), g.fat_sectors);
        assert_eq!((get_u32(b, 44), get_u16(b, 48), get_u16(b, 50)), (2, 1, 6));
        assert_eq!((b[64], b[66]), (0x80, 0x29));
        assert_eq!(&b[82..90], b"FAT32   ");
        assert_eq!(&b[0x5A..0x5E], &HALT);
        assert_eq!(&area[6 * 512..7 * 512], b);
        let f = &area[512..1024];
        assert_eq!((get_u32(f, 0), get_u32(f, 484)), (0x4161_5252, 0x6141_7272));
        assert_eq!(
            (get_u32(f, 488), get_u32(f, 492), get_u32(f, 508)),
            (100, 7, 0xAA55_0000)
        );
        assert_eq!(&area[7 * 512..8 * 512], f);
    }

    #[test]
    fn floppy_keeps_its_small_total() {
        let g = choose(Request {
            total_sectors: 2880,
            variant: None,
            spc: None,
            root_needed: 0,
        })
        .unwrap();
        let b = boot_sector(&g, &id());
        assert_eq!((get_u16(&b, 19), get_u32(&b, 32)), (2880, 0));
        assert_eq!(
            (b[21], b[36], get_u16(&b, 24), get_u16(&b, 26)),
            (0xF0, 0, 18, 2)
        );
        assert_eq!(&b[54..62], b"FAT12   ");
    }
}
