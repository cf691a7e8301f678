//! The volume's geometry: variant, cluster size, reserved sectors, FAT
//! size, root directory size, cluster count; chosen from the size as
//! mkfs.fat (dosfstools 4.2) chooses, or from the options.
//!
//! The variant is a function of the cluster count alone (FAT
//! specification): fewer than [`FAT16_MIN_CLUSTERS`] is FAT12, fewer than
//! [`FAT32_MIN_CLUSTERS`] is FAT16, the rest FAT32. Every geometry kiln
//! writes has a count inside its variant's range, so that Windows, Linux,
//! fsck.fat and mtools all infer the variant kiln wrote.

use crate::FatVariant;

/// Bytes per sector: kiln writes 512-byte sectors only.
pub(crate) const SECTOR: u64 = 512;
/// FAT copies.
pub(crate) const FAT_COUNT: u32 = 2;
/// The fewest clusters of a FAT16 volume (4085; one fewer is FAT12).
pub(crate) const FAT16_MIN_CLUSTERS: u32 = 4085;
/// The fewest clusters of a FAT32 volume (65525; one fewer is FAT16).
pub(crate) const FAT32_MIN_CLUSTERS: u32 = 65_525;
/// The most clusters of a FAT32 volume (cluster numbers up to 0x0FFFFFF6).
pub(crate) const FAT32_MAX_CLUSTERS: u32 = 0x0FFF_FFF5;
/// Reserved sectors before the first FAT: the boot sector alone on
/// FAT12/16; on FAT32 also FSInfo and the backup boot sector, 32 in all as
/// every formatter writes.
const RESERVED_FAT16: u32 = 1;
const RESERVED_FAT32: u32 = 32;
/// Root directory entries of a FAT12/16 hard-disk volume (more when the
/// root needs them).
const ROOT_ENTRIES: u32 = 512;
/// The largest root directory of FAT12/16: the entry count is 16 bits and
/// fills whole sectors (16 entries each).
pub(crate) const MAX_ROOT_ENTRIES: u32 = 65_520;
/// Sectors per cluster mkfs.fat starts from on FAT12/16 hard disks (2 KiB),
/// doubling while the count is too large.
const DEFAULT_SPC_FAT16: u32 = 4;
/// The largest cluster: 128 sectors (64 KiB).
const MAX_SPC: u32 = 128;
/// Volumes from this size up are FAT32 by default (the UEFI specification
/// recommends FAT32 for system partitions; mkfs.fat does the same).
pub(crate) const FAT32_FROM_BYTES: u64 = 512 << 20;
/// The media byte of fixed disks.
const MEDIA_FIXED: u8 = 0xF8;
/// BIOS drive number of a hard disk and of a floppy.
const DRIVE_FIXED: u8 = 0x80;
const DRIVE_FLOPPY: u8 = 0x00;
/// The CHS geometry written for hard-disk volumes (cosmetic: UEFI, Linux
/// and Windows address by LBA).
const SECTORS_PER_TRACK: u16 = 63;
const HEADS: u16 = 255;

/// Standard floppy formats, by total sectors: (sectors, sectors per
/// cluster, root entries, media byte, sectors per track).
const FLOPPIES: [(u32, u32, u32, u8, u16); 4] = [
    (720, 2, 112, 0xFD, 9),   // 360 KiB
    (1440, 2, 112, 0xF9, 9),  // 720 KiB
    (2880, 1, 224, 0xF0, 18), // 1.44 MB
    (5760, 2, 224, 0xF0, 36), // 2.88 MB
];

/// The FAT32 cluster size by volume size (the FAT specification's table,
/// which mkfs.fat follows): up to this many sectors, this many sectors per
/// cluster.
const FAT32_SPC: [(u32, u32); 5] = [
    (532_480, 1),
    (16_777_216, 8),
    (33_554_432, 16),
    (67_108_864, 32),
    (u32::MAX, 64),
];

/// Everything about the volume's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// FAT12, FAT16 or FAT32.
    pub variant: FatVariant,
    /// Sectors of the volume.
    pub total_sectors: u32,
    /// Sectors per cluster (a power of two, 1 to 128).
    pub sectors_per_cluster: u32,
    /// Sectors before the first FAT.
    pub reserved_sectors: u32,
    /// Sectors of each FAT.
    pub fat_sectors: u32,
    /// Entries of the fixed root directory (0 on FAT32).
    pub root_entries: u32,
    /// Data clusters (numbered from 2).
    pub clusters: u32,
    /// The media byte (`BPB_Media`, also the low byte of FAT entry 0).
    pub media: u8,
    /// `BS_DrvNum`.
    pub(crate) drive: u8,
    /// `BPB_SecPerTrk`.
    pub(crate) sectors_per_track: u16,
    /// `BPB_NumHeads`.
    pub(crate) heads: u16,
}

/// Why a cluster size does not give a valid volume of the variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Misfit {
    /// Fewer clusters than the variant's minimum: smaller clusters may do.
    TooFew,
    /// More clusters than the variant's maximum: larger clusters may do.
    TooMany,
}

impl Geometry {
    /// Bytes per cluster.
    pub fn cluster_bytes(&self) -> u32 {
        self.sectors_per_cluster * SECTOR as u32
    }

    /// Bytes of the volume.
    pub fn size(&self) -> u64 {
        u64::from(self.total_sectors) * SECTOR
    }

    /// Byte offset of FAT copy `i`.
    pub(crate) fn fat_offset(&self, i: u32) -> u64 {
        u64::from(self.reserved_sectors + i * self.fat_sectors) * SECTOR
    }

    /// Byte offset of the fixed root directory (FAT12/16).
    pub(crate) fn root_offset(&self) -> u64 {
        self.fat_offset(FAT_COUNT)
    }

    /// Sectors of the fixed root directory.
    pub(crate) fn root_sectors(&self) -> u32 {
        root_sectors(self.root_entries)
    }

    /// Byte offset of the first data cluster (number 2).
    pub(crate) fn data_offset(&self) -> u64 {
        self.root_offset() + u64::from(self.root_sectors()) * SECTOR
    }

    /// Byte offset of cluster `n` (n ≥ 2).
    pub(crate) fn cluster_offset(&self, n: u32) -> u64 {
        self.data_offset() + u64::from(n - 2) * u64::from(self.cluster_bytes())
    }
}

/// Sectors of a root directory of `entries` entries.
fn root_sectors(entries: u32) -> u32 {
    (entries * 32).div_ceil(SECTOR as u32)
}

/// The bits of a FAT entry.
pub(crate) fn entry_bits(v: FatVariant) -> u64 {
    match v {
        FatVariant::Fat12 => 12,
        FatVariant::Fat16 => 16,
        FatVariant::Fat32 => 32,
    }
}

/// The range of cluster counts of a variant.
fn count_range(v: FatVariant) -> (u32, u32) {
    match v {
        FatVariant::Fat12 => (1, FAT16_MIN_CLUSTERS - 1),
        FatVariant::Fat16 => (FAT16_MIN_CLUSTERS, FAT32_MIN_CLUSTERS - 1),
        FatVariant::Fat32 => (FAT32_MIN_CLUSTERS, FAT32_MAX_CLUSTERS),
    }
}

/// The shape to give a volume: what the options fix.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Request {
    pub(crate) total_sectors: u32,
    pub(crate) variant: Option<FatVariant>,
    /// Sectors per cluster, if given.
    pub(crate) spc: Option<u32>,
    /// Root directory entries the root needs (FAT12/16), label included.
    pub(crate) root_needed: u32,
}

/// Lays out a volume of `variant` with `spc` sectors per cluster; the
/// data area starts at a multiple of the cluster size (as mkfs.fat does:
/// clusters stay aligned to the pages of the device) unless `floppy`.
fn layout(
    variant: FatVariant,
    total: u32,
    spc: u32,
    root_entries: u32,
    floppy: Option<(u8, u16)>,
) -> Result<Geometry, Misfit> {
    let root_entries = if variant == FatVariant::Fat32 {
        0
    } else {
        root_entries
    };
    let root = root_sectors(root_entries);
    let mut reserved = if variant == FatVariant::Fat32 {
        RESERVED_FAT32
    } else {
        RESERVED_FAT16
    };
    let bits = entry_bits(variant);
    let total64 = u64::from(total);
    let count = |reserved: u32, fat: u32| -> Option<u64> {
        let meta = u64::from(reserved) + u64::from(FAT_COUNT) * u64::from(fat) + u64::from(root);
        total64.checked_sub(meta).map(|d| d / u64::from(spc))
    };
    // The smallest FAT that maps every cluster the rest leaves room for:
    // a larger FAT leaves fewer clusters, so this settles in a few steps.
    let mut fat = 1u32;
    loop {
        let clusters = count(reserved, fat).ok_or(Misfit::TooFew)?;
        let need = ((clusters + 2) * bits).div_ceil(8 * SECTOR) as u32;
        if need <= fat {
            break;
        }
        fat = need;
    }
    if floppy.is_none() {
        let meta = reserved + FAT_COUNT * fat + root;
        reserved += meta.next_multiple_of(spc) - meta;
    }
    let clusters = count(reserved, fat).ok_or(Misfit::TooFew)?;
    let (min, max) = count_range(variant);
    if clusters < u64::from(min) {
        return Err(Misfit::TooFew);
    }
    if clusters > u64::from(max) || reserved > u32::from(u16::MAX) {
        return Err(Misfit::TooMany);
    }
    let (media, spt, heads, drive) = match floppy {
        Some((media, spt)) => (media, spt, 2, DRIVE_FLOPPY),
        None => (MEDIA_FIXED, SECTORS_PER_TRACK, HEADS, DRIVE_FIXED),
    };
    Ok(Geometry {
        variant,
        total_sectors: total,
        sectors_per_cluster: spc,
        reserved_sectors: reserved,
        fat_sectors: fat,
        root_entries,
        clusters: clusters as u32,
        media,
        drive,
        sectors_per_track: spt,
        heads,
    })
}

/// The default sectors per cluster of a variant for a volume of `total`
/// sectors.
fn default_spc(variant: FatVariant, total: u32) -> u32 {
    match variant {
        FatVariant::Fat32 => FAT32_SPC
            .iter()
            .find(|(upto, _)| total <= *upto)
            .map_or(64, |(_, spc)| *spc),
        _ => DEFAULT_SPC_FAT16,
    }
}

/// Lays out `variant` from its default cluster size, doubling it while the
/// count is too large and halving it while too small. `None` if no cluster
/// size fits.
fn adjusted(variant: FatVariant, total: u32, root: u32) -> Option<Geometry> {
    let mut spc = default_spc(variant, total);
    let mut tried_larger = false;
    loop {
        match layout(variant, total, spc, root, None) {
            Ok(g) => return Some(g),
            Err(Misfit::TooMany) if spc < MAX_SPC => {
                tried_larger = true;
                spc *= 2;
            }
            Err(Misfit::TooFew) if spc > 1 && !tried_larger => spc /= 2,
            Err(_) => return None,
        }
    }
}

/// The root entries of a FAT12/16 volume: the default, or what the root
/// needs rounded up to whole sectors, at most [`MAX_ROOT_ENTRIES`] (the
/// plan refuses a root that needs more).
fn root_entries(default: u32, needed: u32) -> u32 {
    default
        .max(needed.next_multiple_of(16))
        .min(MAX_ROOT_ENTRIES)
}

/// Chooses the geometry for `req`; `None` when no geometry of the asked
/// variant (and cluster size) fits the size.
pub(crate) fn choose(req: Request) -> Option<Geometry> {
    let total = req.total_sectors;
    let floppy = FLOPPIES.iter().find(|f| f.0 == total);
    if let (Some(&(_, spc, root, media, spt)), None | Some(FatVariant::Fat12), None) =
        (floppy, req.variant, req.spc)
    {
        let root = root_entries(root, req.root_needed);
        return layout(FatVariant::Fat12, total, spc, root, Some((media, spt))).ok();
    }
    let root = root_entries(ROOT_ENTRIES, req.root_needed);
    let big = u64::from(total) * SECTOR >= FAT32_FROM_BYTES;
    let order: &[FatVariant] = match (req.variant, big) {
        (Some(v), _) => &[v][..],
        (None, true) => &[FatVariant::Fat32, FatVariant::Fat16],
        (None, false) => &[FatVariant::Fat12, FatVariant::Fat16, FatVariant::Fat32],
    };
    match req.spc {
        Some(spc) => order
            .iter()
            .find_map(|&v| layout(v, total, spc, root, None).ok()),
        None if req.variant.is_none() && !big => {
            // mkfs.fat: FAT12 if the default cluster size gives few enough
            // clusters, else FAT16 (with the cluster size doubled as needed).
            layout(FatVariant::Fat12, total, DEFAULT_SPC_FAT16, root, None)
                .ok()
                .or_else(|| adjusted(FatVariant::Fat16, total, root))
                .or_else(|| adjusted(FatVariant::Fat32, total, root))
        }
        None => order.iter().find_map(|&v| adjusted(v, total, root)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(bytes: u64, variant: Option<FatVariant>, spc: Option<u32>) -> Option<Geometry> {
        choose(Request {
            total_sectors: (bytes / SECTOR) as u32,
            variant,
            spc,
            root_needed: 1,
        })
    }

    /// Variant and sectors per cluster that mkfs.fat 4.2 picks for these
    /// sizes (measured with `mkfs.fat -C`).
    #[test]
    fn defaults_as_mkfs_fat() {
        use FatVariant::*;
        let kib = 1024;
        for (size_kib, variant, spc) in [
            (360, Fat12, 2),
            (1440, Fat12, 1),
            (2880, Fat12, 2),
            (4096, Fat12, 4),
            (8192, Fat12, 4),
            (16384, Fat16, 4),
            (65536, Fat16, 4),
            (131072, Fat16, 4),
            (262144, Fat16, 8),
            (266240, Fat16, 16),
            (524287, Fat16, 16),
            (524288, Fat32, 8),
            (8388608, Fat32, 8),
            (9000000, Fat32, 16),
            (17000000, Fat32, 32),
        ] {
            let g = pick(size_kib * kib, None, None).unwrap();
            assert_eq!(
                (g.variant, g.sectors_per_cluster),
                (variant, spc),
                "{size_kib} KiB"
            );
        }
    }

    #[test]
    fn counts_stay_inside_their_variant() {
        for mib in [
            1u64, 2, 3, 8, 9, 16, 33, 64, 127, 128, 255, 256, 511, 512, 600, 2048,
        ] {
            for v in [
                None,
                Some(FatVariant::Fat12),
                Some(FatVariant::Fat16),
                Some(FatVariant::Fat32),
            ] {
                let Some(g) = pick(mib << 20, v, None) else {
                    continue;
                };
                let (min, max) = count_range(g.variant);
                assert!((min..=max).contains(&g.clusters), "{mib} MiB {v:?}: {g:?}");
                let fat_bytes = u64::from(g.fat_sectors) * SECTOR;
                assert!(fat_bytes * 8 >= (u64::from(g.clusters) + 2) * entry_bits(g.variant));
                let data = g.data_offset() / SECTOR;
                assert!(
                    data + u64::from(g.clusters) * u64::from(g.sectors_per_cluster)
                        <= u64::from(g.total_sectors)
                );
                assert_eq!(
                    data % u64::from(g.sectors_per_cluster),
                    0,
                    "aligned data area"
                );
            }
        }
    }

    #[test]
    fn impossible_requests_are_refused() {
        // FAT32 needs 65,525 clusters of at least 512 bytes.
        assert!(pick(16 << 20, Some(FatVariant::Fat32), None).is_none());
        assert!(pick(40 << 20, Some(FatVariant::Fat32), None).is_some());
        // FAT12 tops out at 4,084 clusters of 64 KiB.
        assert!(pick(300 << 20, Some(FatVariant::Fat12), None).is_none());
        // 512-byte clusters on 64 MiB: too many for FAT16.
        assert!(pick(64 << 20, Some(FatVariant::Fat16), Some(1)).is_none());
        assert!(pick(64 << 20, Some(FatVariant::Fat32), Some(1)).is_some());
    }
}
