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
const EXT_BOOT_SIG: u8 = 0x29;
/// The signature at bytes 510–511 of the boot sector and of FSInfo.
const SIGNATURE: u16 = 0xAA55;
/// The label written where a volume has none.
pub(crate) const NO_NAME: &[u8; 11] = b"NO NAME    ";
/// FAT32: sector of FSInfo and of the backup boot sector.
pub(crate) const FSINFO_SECTOR: u32 = 1;
pub(crate) const BACKUP_BOOT_SECTOR: u32 = 6;
/// FSInfo signatures (`FSI_LeadSig`, `FSI_StrucSig`, `FSI_TrailSig`).
const FSI_LEAD_SIG: u32 = 0x4161_5252;
const FSI_STRUC_SIG: u32 = 0x6141_7272;
const FSI_TRAIL_SIG: u32 = 0xAA55_0000;

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
    b[0..3].copy_from_slice(if fat32 { &JUMP_FAT32 } else { &JUMP_FAT16 });
    b[3..11].copy_from_slice(OEM_NAME);
    put_u16(&mut b, 11, SECTOR as u16); // BPB_BytsPerSec
    b[13] = g.sectors_per_cluster as u8; // BPB_SecPerClus
    put_u16(&mut b, 14, g.reserved_sectors as u16); // BPB_RsvdSecCnt
    b[16] = FAT_COUNT as u8; // BPB_NumFATs
    put_u16(&mut b, 17, g.root_entries as u16); // BPB_RootEntCnt
    let small = !fat32 && g.total_sectors <= u32::from(u16::MAX);
    put_u16(&mut b, 19, if small { g.total_sectors as u16 } else { 0 }); // BPB_TotSec16
    b[21] = g.media; // BPB_Media
    put_u16(&mut b, 22, if fat32 { 0 } else { g.fat_sectors as u16 }); // BPB_FATSz16
    put_u16(&mut b, 24, g.sectors_per_track); // BPB_SecPerTrk
    put_u16(&mut b, 26, g.heads); // BPB_NumHeads
    put_u32(&mut b, 28, id.hidden_sectors); // BPB_HiddSec
    put_u32(&mut b, 32, if small { 0 } else { g.total_sectors }); // BPB_TotSec32
    let ext = if fat32 {
        put_u32(&mut b, 36, g.fat_sectors); // BPB_FATSz32
        put_u16(&mut b, 40, 0); // BPB_ExtFlags: every FAT mirrored
        put_u16(&mut b, 42, 0); // BPB_FSVer 0.0
        put_u32(&mut b, 44, id.root_cluster); // BPB_RootClus
        put_u16(&mut b, 48, FSINFO_SECTOR as u16); // BPB_FSInfo
        put_u16(&mut b, 50, BACKUP_BOOT_SECTOR as u16); // BPB_BkBootSec
        64
    } else {
        36
    };
    b[ext] = g.drive; // BS_DrvNum
    b[ext + 2] = EXT_BOOT_SIG; // BS_BootSig
    put_u32(&mut b, ext + 3, id.volume_id); // BS_VolID
    b[ext + 7..ext + 18].copy_from_slice(&id.label); // BS_VolLab
    let fs_type: &[u8; 8] = match g.variant {
        FatVariant::Fat12 => b"FAT12   ",
        FatVariant::Fat16 => b"FAT16   ",
        FatVariant::Fat32 => b"FAT32   ",
    };
    b[ext + 18..ext + 26].copy_from_slice(fs_type); // BS_FilSysType
    b[ext + 26..ext + 26 + HALT.len()].copy_from_slice(&HALT);
    put_u16(&mut b, 510, SIGNATURE);
    b
}

/// Encodes FSInfo: `free` clusters, the next free one `next` (or
/// 0xFFFFFFFF, unknown, when none is free).
pub(crate) fn fsinfo(free: u32, next: Option<u32>) -> [u8; 512] {
    let mut b = [0u8; 512];
    put_u32(&mut b, 0, FSI_LEAD_SIG);
    put_u32(&mut b, 484, FSI_STRUC_SIG);
    put_u32(&mut b, 488, free); // FSI_Free_Count
    put_u32(&mut b, 492, next.unwrap_or(u32::MAX)); // FSI_Nxt_Free
    put_u32(&mut b, 508, FSI_TRAIL_SIG);
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
