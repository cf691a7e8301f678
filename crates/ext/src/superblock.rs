//! The superblock (`struct ext4_super_block`), 1024 bytes at byte 1024 and,
//! as backups, at the start of groups 1 and the powers of 3, 5 and 7.
//!
//! [`encode`] writes it; [`read_superblock`] decodes the primary copy of an
//! image for `kiln info`. Both use the field offsets of [`off`].

use crate::checksum::{crc32c, fs_seed};
use crate::error::ReadError;
use crate::features::{self, Features, FsType};
use crate::geometry::Geometry;
use crate::layout::{
    DESC_SIZE, DESC_SIZE_64, EXTRA_ISIZE, FIRST_INO, GOOD_OLD_INODE_SIZE, JOURNAL_INO,
    ORPHAN_FILE_INO, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE,
};
use crate::le::{get_u16, get_u32, put_u16, put_u32};
use crate::options::RaidHints;

/// `s_magic`.
const EXT2_MAGIC: u16 = 0xEF53;
/// `s_state`: cleanly unmounted.
const STATE_CLEAN: u16 = 1;
/// `s_state`: errors detected.
const STATE_ERRORS: u16 = 2;
/// `s_errors`: continue on errors (mke2fs's default).
const ERRORS_CONTINUE: u16 = 1;
/// `s_rev_level`: the original format, fixed 128-byte inodes and no features.
const REV_GOOD_OLD: u32 = 0;
/// `s_rev_level`: dynamic inode sizes and feature flags.
const REV_DYNAMIC: u32 = 1;
/// `s_max_mnt_count`: no mount-count-based checks (-1).
const MAX_MNT_COUNT_NONE: u16 = 0xFFFF;
/// `s_default_mount_opts`: user_xattr and acl, as mke2fs.conf sets.
const DEFAULT_MOUNT_OPTS: u32 = 0x0004 | 0x0008;
/// `s_flags`: directory hashes use signed chars (what x86 mke2fs records).
const FLAGS_SIGNED_HASH: u32 = 0x1;
/// `s_jnl_backup_type`: `s_jnl_blocks` holds a copy of the journal's i_block.
const JNL_BACKUP_BLOCKS: u8 = 1;
/// `s_checksum_type`: CRC32C.
const CHECKSUM_CRC32C: u8 = 1;
/// The largest `s_log_block_size` the format allows (64 KiB blocks).
const MAX_LOG_BLOCK_SIZE: u32 = 6;
/// Bytes of `i_block` that `s_jnl_blocks[0..15]` copies.
const I_BLOCK_LEN: usize = 60;

/// Byte offsets of the superblock fields, under their kernel names.
mod off {
    pub(super) const S_INODES_COUNT: usize = 0x0;
    pub(super) const S_BLOCKS_COUNT_LO: usize = 0x4;
    pub(super) const S_R_BLOCKS_COUNT_LO: usize = 0x8;
    pub(super) const S_FREE_BLOCKS_COUNT_LO: usize = 0xC;
    pub(super) const S_FREE_INODES_COUNT: usize = 0x10;
    pub(super) const S_FIRST_DATA_BLOCK: usize = 0x14;
    pub(super) const S_LOG_BLOCK_SIZE: usize = 0x18;
    pub(super) const S_LOG_CLUSTER_SIZE: usize = 0x1C;
    pub(super) const S_BLOCKS_PER_GROUP: usize = 0x20;
    pub(super) const S_CLUSTERS_PER_GROUP: usize = 0x24;
    pub(super) const S_INODES_PER_GROUP: usize = 0x28;
    pub(super) const S_WTIME: usize = 0x30;
    pub(super) const S_MAX_MNT_COUNT: usize = 0x36;
    pub(super) const S_MAGIC: usize = 0x38;
    pub(super) const S_STATE: usize = 0x3A;
    pub(super) const S_ERRORS: usize = 0x3C;
    pub(super) const S_LASTCHECK: usize = 0x40;
    pub(super) const S_REV_LEVEL: usize = 0x4C;
    pub(super) const S_FIRST_INO: usize = 0x54;
    pub(super) const S_INODE_SIZE: usize = 0x58;
    pub(super) const S_BLOCK_GROUP_NR: usize = 0x5A;
    pub(super) const S_FEATURE_COMPAT: usize = 0x5C;
    pub(super) const S_FEATURE_INCOMPAT: usize = 0x60;
    pub(super) const S_FEATURE_RO_COMPAT: usize = 0x64;
    pub(super) const S_UUID: usize = 0x68;
    pub(super) const S_VOLUME_NAME: usize = 0x78;
    pub(super) const S_RESERVED_GDT_BLOCKS: usize = 0xCE;
    pub(super) const S_JOURNAL_INUM: usize = 0xE0;
    pub(super) const S_LAST_ORPHAN: usize = 0xE8;
    pub(super) const S_HASH_SEED: usize = 0xEC;
    pub(super) const S_DEF_HASH_VERSION: usize = 0xFC;
    pub(super) const S_JNL_BACKUP_TYPE: usize = 0xFD;
    pub(super) const S_DESC_SIZE: usize = 0xFE;
    pub(super) const S_DEFAULT_MOUNT_OPTS: usize = 0x100;
    pub(super) const S_MKFS_TIME: usize = 0x108;
    /// `s_jnl_blocks[0..15]`: the journal inode's `i_block`.
    pub(super) const S_JNL_BLOCKS: usize = 0x10C;
    /// `s_jnl_blocks[15]`: the journal inode's `i_size_high`.
    pub(super) const S_JNL_SIZE_HI: usize = S_JNL_BLOCKS + 60;
    /// `s_jnl_blocks[16]`: the journal inode's `i_size`.
    pub(super) const S_JNL_SIZE_LO: usize = S_JNL_BLOCKS + 64;
    pub(super) const S_BLOCKS_COUNT_HI: usize = 0x150;
    pub(super) const S_R_BLOCKS_COUNT_HI: usize = 0x154;
    pub(super) const S_FREE_BLOCKS_COUNT_HI: usize = 0x158;
    pub(super) const S_MIN_EXTRA_ISIZE: usize = 0x15C;
    pub(super) const S_WANT_EXTRA_ISIZE: usize = 0x15E;
    pub(super) const S_FLAGS: usize = 0x160;
    pub(super) const S_RAID_STRIDE: usize = 0x164;
    pub(super) const S_RAID_STRIPE_WIDTH: usize = 0x170;
    pub(super) const S_LOG_GROUPS_PER_FLEX: usize = 0x174;
    pub(super) const S_CHECKSUM_TYPE: usize = 0x175;
    /// `s_backup_bgs[2]`: the groups with superblock backups (sparse_super2).
    pub(super) const S_BACKUP_BGS: usize = 0x24C;
    /// `s_checksum_seed` (with the csum_seed feature).
    pub(super) const S_CHECKSUM_SEED: usize = 0x270;
    /// `s_orphan_file_inum` (with orphan_file).
    pub(super) const S_ORPHAN_FILE_INUM: usize = 0x280;
    pub(super) const S_WTIME_HI: usize = 0x274;
    pub(super) const S_MKFS_TIME_HI: usize = 0x275;
    /// `s_checksum`, the last field: the checksum covers all before it.
    pub(super) const S_CHECKSUM: usize = 0x3FC;
}

/// What the superblock records beyond the geometry.
#[derive(Clone, Debug)]
pub(crate) struct SuperblockInfo {
    pub(crate) features: Features,
    pub(crate) free_blocks: u64,
    pub(crate) free_inodes: u32,
    pub(crate) reserved_blocks: u64,
    pub(crate) uuid: [u8; 16],
    pub(crate) hash_seed: [u8; 16],
    /// `s_def_hash_version`.
    pub(crate) hash_alg: u8,
    pub(crate) label: [u8; 16],
    /// Creation, write and last-check time.
    pub(crate) time: u32,
    /// Backup of the journal inode's `i_block` and size, if there is a journal.
    pub(crate) journal_backup: Option<([u8; I_BLOCK_LEN], u64)>,
    /// `s_raid_stride` and `s_raid_stripe_width`.
    pub(crate) raid: RaidHints,
}

/// Encodes the superblock copy for group `group`.
pub(crate) fn encode(geo: &Geometry, info: &SuperblockInfo, group: u32) -> [u8; SUPERBLOCK_SIZE] {
    let mut b = [0u8; SUPERBLOCK_SIZE];
    let log_block = geo.block_size.trailing_zeros() - 10;
    let f = &info.features;
    put_u32(&mut b, off::S_INODES_COUNT, geo.inodes_count());
    put_u32(&mut b, off::S_BLOCKS_COUNT_LO, geo.blocks_count as u32);
    put_u32(
        &mut b,
        off::S_R_BLOCKS_COUNT_LO,
        info.reserved_blocks as u32,
    );
    put_u32(&mut b, off::S_FREE_BLOCKS_COUNT_LO, info.free_blocks as u32);
    put_u32(&mut b, off::S_FREE_INODES_COUNT, info.free_inodes);
    put_u32(&mut b, off::S_FIRST_DATA_BLOCK, geo.first_data_block as u32);
    put_u32(&mut b, off::S_LOG_BLOCK_SIZE, log_block);
    put_u32(&mut b, off::S_LOG_CLUSTER_SIZE, log_block);
    put_u32(&mut b, off::S_BLOCKS_PER_GROUP, geo.blocks_per_group);
    put_u32(&mut b, off::S_CLUSTERS_PER_GROUP, geo.blocks_per_group);
    put_u32(&mut b, off::S_INODES_PER_GROUP, geo.inodes_per_group);
    put_u32(&mut b, off::S_WTIME, info.time);
    put_u16(&mut b, off::S_MAX_MNT_COUNT, MAX_MNT_COUNT_NONE);
    put_u16(&mut b, off::S_MAGIC, EXT2_MAGIC);
    put_u16(&mut b, off::S_STATE, STATE_CLEAN);
    put_u16(&mut b, off::S_ERRORS, ERRORS_CONTINUE);
    put_u32(&mut b, off::S_LASTCHECK, info.time);
    put_u32(&mut b, off::S_REV_LEVEL, REV_DYNAMIC);
    put_u32(&mut b, off::S_FIRST_INO, FIRST_INO);
    put_u16(&mut b, off::S_INODE_SIZE, geo.inode_size);
    put_u16(&mut b, off::S_BLOCK_GROUP_NR, group as u16);
    put_u32(&mut b, off::S_FEATURE_COMPAT, f.compat);
    put_u32(&mut b, off::S_FEATURE_INCOMPAT, f.incompat);
    put_u32(&mut b, off::S_FEATURE_RO_COMPAT, f.ro_compat);
    b[off::S_UUID..off::S_UUID + 16].copy_from_slice(&info.uuid);
    b[off::S_VOLUME_NAME..off::S_VOLUME_NAME + 16].copy_from_slice(&info.label);
    put_u16(
        &mut b,
        off::S_RESERVED_GDT_BLOCKS,
        geo.reserved_gdt_blocks as u16,
    );
    b[off::S_HASH_SEED..off::S_HASH_SEED + 16].copy_from_slice(&info.hash_seed);
    b[off::S_DEF_HASH_VERSION] = info.hash_alg;
    if f.has(features::BIT64) {
        put_u16(&mut b, off::S_DESC_SIZE, geo.desc_size as u16);
    }
    put_u32(&mut b, off::S_DEFAULT_MOUNT_OPTS, DEFAULT_MOUNT_OPTS);
    put_u32(&mut b, off::S_MKFS_TIME, info.time);
    if let Some((i_block, size)) = &info.journal_backup {
        put_u32(&mut b, off::S_JOURNAL_INUM, JOURNAL_INO);
        b[off::S_JNL_BACKUP_TYPE] = JNL_BACKUP_BLOCKS;
        b[off::S_JNL_BLOCKS..off::S_JNL_BLOCKS + I_BLOCK_LEN].copy_from_slice(i_block);
        put_u32(&mut b, off::S_JNL_SIZE_HI, (size >> 32) as u32);
        put_u32(&mut b, off::S_JNL_SIZE_LO, *size as u32);
    }
    put_u32(
        &mut b,
        off::S_BLOCKS_COUNT_HI,
        (geo.blocks_count >> 32) as u32,
    );
    put_u32(
        &mut b,
        off::S_R_BLOCKS_COUNT_HI,
        (info.reserved_blocks >> 32) as u32,
    );
    put_u32(
        &mut b,
        off::S_FREE_BLOCKS_COUNT_HI,
        (info.free_blocks >> 32) as u32,
    );
    if geo.inode_size > GOOD_OLD_INODE_SIZE {
        put_u16(&mut b, off::S_MIN_EXTRA_ISIZE, EXTRA_ISIZE);
        put_u16(&mut b, off::S_WANT_EXTRA_ISIZE, EXTRA_ISIZE);
    }
    put_u32(&mut b, off::S_FLAGS, FLAGS_SIGNED_HASH);
    put_u16(&mut b, off::S_RAID_STRIDE, info.raid.stride);
    put_u32(&mut b, off::S_RAID_STRIPE_WIDTH, info.raid.stripe_width);
    if f.has(features::FLEX_BG) {
        b[off::S_LOG_GROUPS_PER_FLEX] = geo.flex_log;
    }
    if f.has(features::ORPHAN_FILE) {
        put_u32(&mut b, off::S_ORPHAN_FILE_INUM, ORPHAN_FILE_INO);
    }
    if f.has(features::METADATA_CSUM_SEED) {
        // The seed the UUID gives: kept here so that a later UUID change
        // (tune2fs -U) leaves every checksum valid.
        put_u32(&mut b, off::S_CHECKSUM_SEED, fs_seed(&info.uuid));
    }
    if f.has(features::METADATA_CSUM) {
        b[off::S_CHECKSUM_TYPE] = CHECKSUM_CRC32C;
        let csum = checksum(&b);
        put_u32(&mut b, off::S_CHECKSUM, csum);
    }
    b
}

/// The superblock checksum: CRC32C of every byte before `s_checksum`.
fn checksum(b: &[u8]) -> u32 {
    crc32c(!0, &b[..off::S_CHECKSUM])
}

/// What the primary superblock of an image says, decoded by
/// [`read_superblock`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SuperblockView {
    /// The three feature words.
    pub features: Features,
    /// Block size in bytes.
    pub block_size: u32,
    /// Inode size in bytes (128 for the original revision).
    pub inode_size: u16,
    /// Blocks in the filesystem.
    pub blocks_count: u64,
    /// Free blocks.
    pub free_blocks: u64,
    /// Blocks reserved for the super-user.
    pub reserved_blocks: u64,
    /// Inodes in the filesystem.
    pub inodes_count: u32,
    /// Free inodes.
    pub free_inodes: u32,
    /// The first block of group 0 (1 with 1 KiB blocks, else 0).
    pub first_data_block: u32,
    /// Blocks in each group (the last one may have fewer).
    pub blocks_per_group: u32,
    /// Inodes in each group.
    pub inodes_per_group: u32,
    /// Bytes of a group descriptor: 32, or `s_desc_size` with 64bit.
    pub desc_size: u16,
    /// Filesystem UUID.
    pub uuid: [u8; 16],
    /// Volume label, NUL-padded.
    pub label: [u8; 16],
    /// Directory hash seed.
    pub hash_seed: [u8; 16],
    /// `s_def_hash_version`: the default directory hash (see [`hash_name`](Self::hash_name)).
    pub hash_version: u8,
    /// Creation time, seconds since the epoch.
    pub mkfs_time: i64,
    /// Last write time, seconds since the epoch.
    pub write_time: i64,
    /// The journal inode's number, 0 without a journal.
    pub journal_inode: u32,
    /// The journal's size in bytes, from the superblock's backup of the
    /// journal inode (`s_jnl_blocks`); `None` without a journal or backup.
    pub journal_size: Option<u64>,
    /// `s_state`: bit 0 cleanly unmounted, bit 1 errors detected.
    pub state: u16,
    /// `s_last_orphan`: the head of the list of inodes deleted or truncated
    /// while open, which the next mount or e2fsck finishes (0: none).
    pub last_orphan: u32,
    /// `s_first_ino`: the first inode not reserved (11 in the original revision).
    pub(crate) first_ino: u32,
    /// `s_orphan_file_inum`, with orphan_file: an inode in use that no
    /// directory names.
    pub(crate) orphan_file_ino: Option<u32>,
    /// `s_reserved_gdt_blocks`.
    pub(crate) reserved_gdt_blocks: u32,
    /// `s_backup_bgs`: the groups holding backups with sparse_super2.
    pub(crate) backup_bgs: [u32; 2],
    /// The metadata_csum seed: `s_checksum_seed` with csum_seed, else the
    /// CRC32C of the UUID.
    pub(crate) csum_seed: u32,
}

impl SuperblockView {
    /// Why the metadata as it stands is not the filesystem's tree, if it
    /// is not: a journal to replay, orphan inodes to finish, errors found,
    /// or a filesystem not cleanly unmounted. e2fsck (or a mount) settles
    /// each.
    pub fn unsettled(&self) -> Option<&'static str> {
        if self.features.needs_recovery() {
            Some("needs recovery: its journal holds changes not yet written to it")
        } else if self.last_orphan != 0 || self.features.orphans_present() {
            Some("has orphan inodes, deleted or truncated while open, still to be finished")
        } else if self.state & STATE_ERRORS != 0 {
            Some("has errors recorded in its superblock")
        } else if self.state & STATE_CLEAN == 0 {
            Some("was not cleanly unmounted (or is mounted)")
        } else {
            None
        }
    }

    /// ext2, ext3 or ext4, as the features make it (see [`Features::fs_type`]).
    pub fn fs_type(&self) -> FsType {
        self.features.fs_type()
    }

    /// Number of block groups.
    pub fn groups(&self) -> u64 {
        let data_blocks = self.blocks_count - u64::from(self.first_data_block);
        data_blocks.div_ceil(u64::from(self.blocks_per_group))
    }

    /// The label without its NUL padding.
    pub fn label_bytes(&self) -> &[u8] {
        let end = self.label.iter().position(|&c| c == 0).unwrap_or(16);
        &self.label[..end]
    }

    /// The default directory hash by the name dumpe2fs prints.
    pub fn hash_name(&self) -> &'static str {
        match self.hash_version {
            0 => "legacy",
            1 => "half_md4",
            2 => "tea",
            3 => "legacy_unsigned",
            4 => "half_md4_unsigned",
            5 => "tea_unsigned",
            6 => "siphash",
            _ => "unknown",
        }
    }
}

/// Decodes the primary superblock from the start of an image (`image` must
/// hold at least its first 2048 bytes). Checks the magic number, the
/// checksum (with metadata_csum) and the fields later arithmetic divides by.
pub fn read_superblock(image: &[u8]) -> Result<SuperblockView, ReadError> {
    let start = SUPERBLOCK_OFFSET as usize;
    let b = image
        .get(start..start + SUPERBLOCK_SIZE)
        .ok_or(ReadError::ShortImage { len: image.len() })?;
    let magic = get_u16(b, off::S_MAGIC);
    if magic != EXT2_MAGIC {
        return Err(ReadError::BadMagic { found: magic });
    }
    let features = Features {
        compat: get_u32(b, off::S_FEATURE_COMPAT),
        incompat: get_u32(b, off::S_FEATURE_INCOMPAT),
        ro_compat: get_u32(b, off::S_FEATURE_RO_COMPAT),
    };
    if features.has(features::METADATA_CSUM) {
        let (stored, computed) = (get_u32(b, off::S_CHECKSUM), checksum(b));
        if stored != computed {
            return Err(ReadError::Checksum { stored, computed });
        }
    }
    check_fields(b, &features)?;
    let view = decode(b, features);
    check_geometry(&view)?;
    Ok(view)
}

/// Refuses a geometry the kernel refuses to mount (`ext4_fill_super`'s
/// checks): every count later arithmetic multiplies, divides or iterates by
/// is then consistent with the others, so no reader loops or allocates by a
/// number the rest of the superblock does not back.
fn check_geometry(sb: &SuperblockView) -> Result<(), ReadError> {
    let bad = |field, value: u32| Err(ReadError::BadField { field, value });
    let bits_per_block = sb.block_size * 8;
    if sb.blocks_per_group > bits_per_block || sb.blocks_per_group % 8 != 0 {
        if sb.features.list().iter().any(|f| f == "bigalloc") {
            // Groups of clusters: a layout the reader does not know, not
            // a corrupt count.
            return Err(ReadError::Unsupported {
                features: "bigalloc".into(),
            });
        }
        return bad("s_blocks_per_group", sb.blocks_per_group);
    }
    let inodes_per_block = sb.block_size / u32::from(sb.inode_size);
    if sb.inodes_per_group < inodes_per_block || sb.inodes_per_group > bits_per_block {
        return bad("s_inodes_per_group", sb.inodes_per_group);
    }
    if u64::from(sb.first_data_block) >= sb.blocks_count {
        return bad("s_first_data_block", sb.first_data_block);
    }
    // The kernel's own bound: group numbers are 32-bit.
    let groups = sb.groups();
    let inodes = groups.checked_mul(u64::from(sb.inodes_per_group));
    if u32::try_from(groups).is_err() || inodes != Some(u64::from(sb.inodes_count)) {
        return bad("s_inodes_count", sb.inodes_count);
    }
    if sb.first_ino < FIRST_INO || sb.first_ino > sb.inodes_count {
        return bad("s_first_ino", sb.first_ino);
    }
    // The primary descriptor table must fit the filesystem it describes.
    let gdt_bytes = groups * u64::from(sb.desc_size);
    let gdt_end = (SUPERBLOCK_OFFSET / u64::from(sb.block_size) + 1)
        + gdt_bytes.div_ceil(u64::from(sb.block_size));
    if gdt_end > sb.blocks_count {
        return Err(ReadError::BadField {
            field: "s_blocks_count (too small for its group descriptors)",
            value: u32::try_from(sb.blocks_count).unwrap_or(u32::MAX),
        });
    }
    Ok(())
}

/// Refuses the fields whose nonsense values would break the arithmetic.
fn check_fields(b: &[u8], features: &Features) -> Result<(), ReadError> {
    let bad = |field, value: u32| Err(ReadError::BadField { field, value });
    let log_block = get_u32(b, off::S_LOG_BLOCK_SIZE);
    if log_block > MAX_LOG_BLOCK_SIZE {
        return bad("s_log_block_size", log_block);
    }
    let per_group = get_u32(b, off::S_BLOCKS_PER_GROUP);
    if per_group == 0 {
        return bad("s_blocks_per_group", per_group);
    }
    let first = get_u32(b, off::S_FIRST_DATA_BLOCK);
    if u64::from(first) > blocks_count(b, features) {
        return bad("s_first_data_block", first);
    }
    // The image reader slices descriptors and inode slots by these sizes.
    let desc_size = get_u16(b, off::S_DESC_SIZE);
    if features.has(features::BIT64) && !sane_size(desc_size, DESC_SIZE_64 as u16, 1024) {
        return bad("s_desc_size", desc_size.into());
    }
    let inode_size = get_u16(b, off::S_INODE_SIZE);
    let block_size = 1024u32 << log_block;
    if get_u32(b, off::S_REV_LEVEL) != REV_GOOD_OLD
        && !sane_size(inode_size, GOOD_OLD_INODE_SIZE, block_size)
    {
        return bad("s_inode_size", inode_size.into());
    }
    Ok(())
}

/// Whether `size` is a power of two from `min` to `max`, as the kernel wants
/// descriptor and inode sizes.
fn sane_size(size: u16, min: u16, max: u32) -> bool {
    size.is_power_of_two() && size >= min && u32::from(size) <= max
}

/// `s_blocks_count`.
fn blocks_count(b: &[u8], features: &Features) -> u64 {
    join(b, features, off::S_BLOCKS_COUNT_LO, off::S_BLOCKS_COUNT_HI)
}

/// A 64-bit count from its low and high words; the high word only counts
/// with the 64bit feature (older writers left garbage there).
fn join(b: &[u8], features: &Features, lo: usize, hi: usize) -> u64 {
    let high = if features.has(features::BIT64) {
        u64::from(get_u32(b, hi)) << 32
    } else {
        0
    };
    high | u64::from(get_u32(b, lo))
}

/// A time from its low word (unsigned since 2038-proof kernels) and the
/// 8 high bits.
fn time(b: &[u8], lo: usize, hi: usize) -> i64 {
    (i64::from(b[hi]) << 32) | i64::from(get_u32(b, lo))
}

/// A 16-byte field.
fn bytes16(b: &[u8], at: usize) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&b[at..at + 16]);
    out
}

/// Decodes the fields of a superblock whose magic is right.
fn decode(b: &[u8], features: Features) -> SuperblockView {
    let rev_level = get_u32(b, off::S_REV_LEVEL);
    let inode_size = if rev_level == REV_GOOD_OLD {
        GOOD_OLD_INODE_SIZE
    } else {
        get_u16(b, off::S_INODE_SIZE)
    };
    let journal_inode = get_u32(b, off::S_JOURNAL_INUM);
    let journal_size =
        (journal_inode != 0 && b[off::S_JNL_BACKUP_TYPE] == JNL_BACKUP_BLOCKS).then(|| {
            (u64::from(get_u32(b, off::S_JNL_SIZE_HI)) << 32)
                | u64::from(get_u32(b, off::S_JNL_SIZE_LO))
        });
    SuperblockView {
        features,
        // check_fields has bounded the shift.
        block_size: 1024u32 << get_u32(b, off::S_LOG_BLOCK_SIZE),
        inode_size,
        blocks_count: blocks_count(b, &features),
        free_blocks: join(
            b,
            &features,
            off::S_FREE_BLOCKS_COUNT_LO,
            off::S_FREE_BLOCKS_COUNT_HI,
        ),
        reserved_blocks: join(
            b,
            &features,
            off::S_R_BLOCKS_COUNT_LO,
            off::S_R_BLOCKS_COUNT_HI,
        ),
        inodes_count: get_u32(b, off::S_INODES_COUNT),
        free_inodes: get_u32(b, off::S_FREE_INODES_COUNT),
        first_data_block: get_u32(b, off::S_FIRST_DATA_BLOCK),
        blocks_per_group: get_u32(b, off::S_BLOCKS_PER_GROUP),
        inodes_per_group: get_u32(b, off::S_INODES_PER_GROUP),
        desc_size: if features.has(features::BIT64) {
            get_u16(b, off::S_DESC_SIZE)
        } else {
            DESC_SIZE as u16
        },
        uuid: bytes16(b, off::S_UUID),
        label: bytes16(b, off::S_VOLUME_NAME),
        hash_seed: bytes16(b, off::S_HASH_SEED),
        hash_version: b[off::S_DEF_HASH_VERSION],
        mkfs_time: time(b, off::S_MKFS_TIME, off::S_MKFS_TIME_HI),
        write_time: time(b, off::S_WTIME, off::S_WTIME_HI),
        journal_inode,
        journal_size,
        state: get_u16(b, off::S_STATE),
        last_orphan: get_u32(b, off::S_LAST_ORPHAN),
        first_ino: if rev_level == REV_GOOD_OLD {
            FIRST_INO
        } else {
            get_u32(b, off::S_FIRST_INO)
        },
        orphan_file_ino: features
            .has(features::ORPHAN_FILE)
            .then(|| get_u32(b, off::S_ORPHAN_FILE_INUM)),
        reserved_gdt_blocks: u32::from(get_u16(b, off::S_RESERVED_GDT_BLOCKS)),
        backup_bgs: [
            get_u32(b, off::S_BACKUP_BGS),
            get_u32(b, off::S_BACKUP_BGS + 4),
        ],
        csum_seed: if features.has(features::METADATA_CSUM_SEED) {
            get_u32(b, off::S_CHECKSUM_SEED)
        } else {
            crate::checksum::fs_seed(&bytes16(b, off::S_UUID))
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::GeometryInput;

    /// An ext4 superblock as the writer encodes it, inside an image prefix.
    fn image() -> (Geometry, SuperblockInfo, Vec<u8>) {
        let geo = Geometry::new(GeometryInput {
            block_size: 4096,
            blocks: 1 << 20,
            inodes: 65536,
            min_inodes: 0,
            inode_size: 256,
            resize_inode: true,
            sparse_super: true,
            flex_bg: true,
            bit64: true,
        })
        .unwrap();
        let info = SuperblockInfo {
            features: Features::defaults(FsType::Ext4),
            free_blocks: 1000,
            free_inodes: 500,
            reserved_blocks: 52428,
            uuid: [7; 16],
            hash_seed: [9; 16],
            hash_alg: 1,
            label: *b"root\0\0\0\0\0\0\0\0\0\0\0\0",
            time: 1_700_000_000,
            journal_backup: Some(([0; I_BLOCK_LEN], 64 << 20)),
            raid: RaidHints {
                stride: 16,
                stripe_width: 64,
            },
        };
        let mut img = vec![0u8; 2 * SUPERBLOCK_SIZE];
        img[SUPERBLOCK_SIZE..].copy_from_slice(&encode(&geo, &info, 0));
        (geo, info, img)
    }

    #[test]
    fn decode_reads_what_encode_wrote() {
        let (geo, info, img) = image();
        let v = read_superblock(&img).unwrap();
        assert_eq!(v.fs_type(), FsType::Ext4);
        assert_eq!((v.block_size, v.inode_size), (4096, 256));
        assert_eq!(v.blocks_count, geo.blocks_count);
        assert_eq!((v.free_blocks, v.free_inodes), (1000, 500));
        assert_eq!(v.reserved_blocks, info.reserved_blocks);
        assert_eq!(v.inodes_count, geo.inodes_count());
        assert_eq!(u32::from(v.desc_size), geo.desc_size);
        assert_eq!(v.groups(), u64::from(geo.groups));
        assert_eq!((v.uuid, v.hash_seed), (info.uuid, info.hash_seed));
        assert_eq!((v.label_bytes(), v.hash_name()), (&b"root"[..], "half_md4"));
        assert_eq!((v.mkfs_time, v.write_time), (1_700_000_000, 1_700_000_000));
        assert_eq!(
            (v.journal_inode, v.journal_size),
            (JOURNAL_INO, Some(64 << 20))
        );
        let sb = &img[SUPERBLOCK_SIZE..];
        assert_eq!(get_u16(sb, off::S_RAID_STRIDE), 16);
        assert_eq!(get_u32(sb, off::S_RAID_STRIPE_WIDTH), 64);
    }

    #[test]
    fn geometries_the_kernel_refuses_are_refused() {
        let (_, _, pristine) = image();
        let sb = SUPERBLOCK_SIZE;
        let cases: [(usize, u32, &str); 5] = [
            (off::S_INODES_COUNT, u32::MAX, "s_inodes_count"),
            (off::S_FIRST_INO, u32::MAX - 15, "s_first_ino"),
            (off::S_FIRST_INO, 0, "s_first_ino"),
            (off::S_INODES_PER_GROUP, 1 << 30, "s_inodes_per_group"),
            (off::S_BLOCKS_PER_GROUP, 12, "s_blocks_per_group"),
        ];
        for (at, value, field) in cases {
            let mut img = pristine.clone();
            put_u32(&mut img[sb..], at, value);
            let sum = checksum(&img[sb..sb + SUPERBLOCK_SIZE]);
            put_u32(&mut img[sb..], off::S_CHECKSUM, sum);
            let err = read_superblock(&img).unwrap_err();
            assert!(
                matches!(err, ReadError::BadField { field: f, .. } if f == field),
                "{field} = {value}: {err}"
            );
        }
    }

    #[test]
    fn bad_images_are_refused() {
        let (_, _, mut img) = image();
        assert!(matches!(
            read_superblock(&img[..1500]),
            Err(ReadError::ShortImage { len: 1500 })
        ));
        img[SUPERBLOCK_SIZE + off::S_FREE_INODES_COUNT] ^= 1;
        assert!(matches!(
            read_superblock(&img),
            Err(ReadError::Checksum { .. })
        ));
        img[SUPERBLOCK_SIZE..].fill(0);
        assert!(matches!(
            read_superblock(&img),
            Err(ReadError::BadMagic { found: 0 })
        ));
    }
}
