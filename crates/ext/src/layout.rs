//! Named constants of the format and of kiln's choices, in one place.

/// Byte offset of the primary superblock from the start of the image.
pub(crate) const SUPERBLOCK_OFFSET: u64 = 1024;
/// Size of the superblock structure.
pub(crate) const SUPERBLOCK_SIZE: usize = 1024;
/// Size of a group descriptor without the 64bit feature.
pub(crate) const DESC_SIZE: u32 = 32;
/// Size of a group descriptor with the 64bit feature (mke2fs's choice).
pub(crate) const DESC_SIZE_64: u32 = 64;
/// flex_bg packs the metadata of 2^4 = 16 groups together (mke2fs's default).
pub(crate) const FLEX_BG_LOG_GROUPS: u8 = 4;
/// Size of the classic (rev 0) inode; larger inodes add an extra area.
pub(crate) const GOOD_OLD_INODE_SIZE: u16 = 128;
/// `i_extra_isize` written in large inodes: covers the nanosecond, crtime,
/// version-hi and project-id fields (what mke2fs and the kernel use).
pub(crate) const EXTRA_ISIZE: u16 = 32;

/// The root directory's inode number.
pub const ROOT_INO: u32 = 2;
/// The resize inode, whose double-indirect block maps the reserved GDT blocks.
pub(crate) const RESIZE_INO: u32 = 7;
/// The journal inode.
pub(crate) const JOURNAL_INO: u32 = 8;
/// The first inode number not reserved by the format (lost+found gets it).
pub(crate) const FIRST_INO: u32 = 11;
/// lost+found, as mke2fs makes it.
pub(crate) const LOST_FOUND_INO: u32 = 11;
/// The orphan file's inode (orphan_file): the first after lost+found, as
/// mke2fs makes it before it fills the filesystem.
pub(crate) const ORPHAN_FILE_INO: u32 = 12;
/// mke2fs grows lost+found to at least this many bytes (and two blocks), so
/// e2fsck can reconnect files without allocating.
pub(crate) const LOST_FOUND_MIN_BYTES: u64 = 16 * 1024;

/// Direct block pointers in `i_block` before the indirect ones.
pub(crate) const N_DIRECT: u32 = 12;
/// `i_block` index of the single, double and triple indirect pointers.
pub(crate) const IND_SLOT: usize = 12;

/// Most hard links an inode may have without the dir_nlink feature.
pub const LINK_MAX: u32 = 65_000;
/// Longest name a directory entry holds.
pub(crate) const NAME_MAX: usize = 255;
/// Longest symlink target Linux accepts (PATH_MAX less the NUL).
pub(crate) const SYMLINK_MAX: usize = 4095;
/// Symlink targets shorter than this live in `i_block` ("fast" symlinks).
pub(crate) const FAST_SYMLINK_MAX: usize = 59;

/// mke2fs drops a last group smaller than its metadata plus this many blocks.
pub(crate) const MIN_LAST_GROUP_DATA: u32 = 50;
/// Reserved GDT blocks leave room to grow the filesystem this many times.
pub(crate) const RESIZE_GROWTH_FACTOR: u64 = 1024;

/// The smallest journal mke2fs makes, in blocks.
pub(crate) const MIN_JOURNAL_BLOCKS: u32 = 1024;
/// mke2fs refuses a journal on filesystems below this many blocks.
pub(crate) const MIN_BLOCKS_FOR_JOURNAL: u64 = 2048;

/// mke2fs's default inode ratio (`inode_ratio` in mke2fs.conf).
pub(crate) const DEFAULT_BYTES_PER_INODE: u64 = 16384;

/// Journal size in blocks mke2fs 1.47 picks for a filesystem of `blocks`
/// blocks (`ext2fs_default_journal_size`).
pub(crate) fn default_journal_blocks(blocks: u64) -> u32 {
    const TABLE: [(u64, u32); 8] = [
        (32_768, 1024),
        (256 * 1024, 4096),
        (512 * 1024, 8192),
        (4096 * 1024, 16384),
        (8192 * 1024, 32768),
        (16384 * 1024, 65536),
        (32768 * 1024, 131072),
        (u64::MAX, 262144),
    ];
    TABLE
        .iter()
        .find(|(limit, _)| blocks < *limit)
        .map_or(262_144, |&(_, j)| j)
}
