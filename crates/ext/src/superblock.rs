//! The superblock (`struct ext4_super_block`), 1024 bytes at byte 1024 and,
//! as backups, at the start of groups 1 and the powers of 3, 5 and 7.

use crate::checksum::crc32c;
use crate::features::{self, Features};
use crate::geometry::Geometry;
use crate::layout::{EXTRA_ISIZE, FIRST_INO, GOOD_OLD_INODE_SIZE, JOURNAL_INO, SUPERBLOCK_SIZE};
use crate::le::{put_u16, put_u32};

/// `s_magic`.
const EXT2_MAGIC: u16 = 0xEF53;
/// `s_state`: cleanly unmounted.
const STATE_CLEAN: u16 = 1;
/// `s_errors`: continue on errors (mke2fs's default).
const ERRORS_CONTINUE: u16 = 1;
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
/// Offset of `s_checksum`, the last field: the checksum covers all before it.
const S_CHECKSUM: usize = 0x3FC;

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
    pub(crate) journal_backup: Option<([u8; 60], u64)>,
}

/// Encodes the superblock copy for group `group`.
pub(crate) fn encode(geo: &Geometry, info: &SuperblockInfo, group: u32) -> [u8; SUPERBLOCK_SIZE] {
    let mut b = [0u8; SUPERBLOCK_SIZE];
    let log_block = geo.block_size.trailing_zeros() - 10;
    let f = &info.features;
    put_u32(&mut b, 0x0, geo.inodes_count()); // s_inodes_count
    put_u32(&mut b, 0x4, geo.blocks_count as u32); // s_blocks_count_lo
    put_u32(&mut b, 0x8, info.reserved_blocks as u32); // s_r_blocks_count_lo
    put_u32(&mut b, 0xC, info.free_blocks as u32); // s_free_blocks_count_lo
    put_u32(&mut b, 0x10, info.free_inodes); // s_free_inodes_count
    put_u32(&mut b, 0x14, geo.first_data_block as u32); // s_first_data_block
    put_u32(&mut b, 0x18, log_block); // s_log_block_size
    put_u32(&mut b, 0x1C, log_block); // s_log_cluster_size
    put_u32(&mut b, 0x20, geo.blocks_per_group); // s_blocks_per_group
    put_u32(&mut b, 0x24, geo.blocks_per_group); // s_clusters_per_group
    put_u32(&mut b, 0x28, geo.inodes_per_group); // s_inodes_per_group
    put_u32(&mut b, 0x30, info.time); // s_wtime
    put_u16(&mut b, 0x36, MAX_MNT_COUNT_NONE); // s_max_mnt_count
    put_u16(&mut b, 0x38, EXT2_MAGIC); // s_magic
    put_u16(&mut b, 0x3A, STATE_CLEAN); // s_state
    put_u16(&mut b, 0x3C, ERRORS_CONTINUE); // s_errors
    put_u32(&mut b, 0x40, info.time); // s_lastcheck
    put_u32(&mut b, 0x4C, REV_DYNAMIC); // s_rev_level
    put_u32(&mut b, 0x54, FIRST_INO); // s_first_ino
    put_u16(&mut b, 0x58, geo.inode_size); // s_inode_size
    put_u16(&mut b, 0x5A, group as u16); // s_block_group_nr
    put_u32(&mut b, 0x5C, f.compat); // s_feature_compat
    put_u32(&mut b, 0x60, f.incompat); // s_feature_incompat
    put_u32(&mut b, 0x64, f.ro_compat); // s_feature_ro_compat
    b[0x68..0x78].copy_from_slice(&info.uuid); // s_uuid
    b[0x78..0x88].copy_from_slice(&info.label); // s_volume_name
    put_u16(&mut b, 0xCE, geo.reserved_gdt_blocks as u16); // s_reserved_gdt_blocks
    b[0xEC..0xFC].copy_from_slice(&info.hash_seed); // s_hash_seed
    b[0xFC] = info.hash_alg; // s_def_hash_version
    if f.has(features::BIT64) {
        put_u16(&mut b, 0xFE, geo.desc_size as u16); // s_desc_size
    }
    put_u32(&mut b, 0x100, DEFAULT_MOUNT_OPTS); // s_default_mount_opts
    put_u32(&mut b, 0x108, info.time); // s_mkfs_time
    if let Some((i_block, size)) = &info.journal_backup {
        put_u32(&mut b, 0xE0, JOURNAL_INO); // s_journal_inum
        b[0xFD] = JNL_BACKUP_BLOCKS; // s_jnl_backup_type
        b[0x10C..0x10C + 60].copy_from_slice(i_block); // s_jnl_blocks[0..15]
        put_u32(&mut b, 0x10C + 60, (size >> 32) as u32); // s_jnl_blocks[15]: i_size_high
        put_u32(&mut b, 0x10C + 64, *size as u32); // s_jnl_blocks[16]: i_size
    }
    put_u32(&mut b, 0x150, (geo.blocks_count >> 32) as u32); // s_blocks_count_hi
    put_u32(&mut b, 0x154, (info.reserved_blocks >> 32) as u32); // s_r_blocks_count_hi
    put_u32(&mut b, 0x158, (info.free_blocks >> 32) as u32); // s_free_blocks_count_hi
    if geo.inode_size > GOOD_OLD_INODE_SIZE {
        put_u16(&mut b, 0x15C, EXTRA_ISIZE); // s_min_extra_isize
        put_u16(&mut b, 0x15E, EXTRA_ISIZE); // s_want_extra_isize
    }
    put_u32(&mut b, 0x160, FLAGS_SIGNED_HASH); // s_flags
    if f.has(features::FLEX_BG) {
        b[0x174] = geo.flex_log; // s_log_groups_per_flex
    }
    if f.has(features::METADATA_CSUM) {
        b[0x175] = CHECKSUM_CRC32C; // s_checksum_type
        let csum = crc32c(!0, &b[..S_CHECKSUM]);
        put_u32(&mut b, S_CHECKSUM, csum); // s_checksum
    }
    b
}
