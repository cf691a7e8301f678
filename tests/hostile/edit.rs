//! Byte editors for the hostile images. Each finds a structure with kiln's
//! reader ([`kiln_ext::ImageReader`]), rewrites bytes of it in place, then,
//! unless told to leave them stale, recomputes the metadata_csum checksum
//! that covers those bytes: with the checksums right, only a semantic check
//! can stop what the edit made.
//!
//! The checksum formulas are the kernel's (`Documentation/filesystems/ext4/`
//! `checksums.rst`), restated here rather than borrowed from kiln, so that
//! a bug in kiln's checksums cannot hide behind the same bug in the tests;
//! `e2fsck -fn` judges them (`checks.rs`).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use kiln_ext::{FileMap, ImageReader, MappedRun};

/// Whether an edit recomputes the checksums it invalidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sums {
    /// Every checksum covering the edited bytes is made right again.
    Recomputed,
    /// Checksums are left as they were: they no longer match.
    Stale,
}

/// Where the primary superblock starts, in bytes from the filesystem's start.
const SUPERBLOCK_AT: u64 = 1024;

/// Offsets in the superblock (kernel names) of the fields the catalogue
/// reads or edits.
pub mod sb {
    pub const S_INODES_COUNT: usize = 0x0;
    pub const S_BLOCKS_COUNT_LO: usize = 0x4;
    pub const S_FIRST_INO: usize = 0x54;
    pub const S_FEATURE_INCOMPAT: usize = 0x60;
    pub const S_FEATURE_RO_COMPAT: usize = 0x64;
    pub const S_UUID: usize = 0x68;
    pub const S_VOLUME_NAME: usize = 0x78;
    pub const S_CHECKSUM_SEED: usize = 0x270;
    /// The last field: its CRC covers every byte before it.
    pub const S_CHECKSUM: usize = 0x3FC;
    /// Bytes of the superblock.
    pub const LEN: usize = 1024;
    /// `s_feature_ro_compat`: metadata_csum.
    pub const RO_COMPAT_METADATA_CSUM: u32 = 0x400;
    /// `s_feature_incompat`: the journal needs recovery.
    pub const INCOMPAT_RECOVER: u32 = 0x4;
    /// `s_feature_incompat`: the checksum seed is `s_checksum_seed`.
    pub const INCOMPAT_CSUM_SEED: u32 = 0x2000;
}

/// Offsets in an inode (kernel names).
pub mod inode {
    pub const I_MODE: usize = 0x0;
    pub const I_SIZE_LO: usize = 0x4;
    pub const I_BLOCK: usize = 0x28;
    pub const I_GENERATION: usize = 0x64;
    pub const I_SIZE_HIGH: usize = 0x6C;
    pub const L_I_CHECKSUM_LO: usize = 0x7C;
    pub const I_EXTRA_ISIZE: usize = 0x80;
    pub const I_CHECKSUM_HI: usize = 0x82;
    /// Bytes of `i_block`.
    pub const I_BLOCK_LEN: usize = 60;
    /// Size of the original inode: `i_extra_isize` counts from here.
    pub const GOOD_OLD_SIZE: usize = 128;
}

/// Directory entries (`struct ext4_dir_entry_2`) and the checksum tail.
mod dirent {
    pub const INODE: usize = 0x0;
    pub const REC_LEN: usize = 0x4;
    pub const NAME_LEN: usize = 0x6;
    pub const NAME: usize = 0x8;
    /// Size of `struct ext4_dir_entry_tail`, at the end of each leaf block.
    pub const TAIL: usize = 12;
    /// `det_reserved_ft` of the tail.
    pub const TAIL_FT: u8 = 0xDE;
}

/// Extent nodes (`struct ext4_extent_header`, `struct ext4_extent_idx`).
pub mod extent {
    pub const MAGIC: u16 = 0xF30A;
    pub const HEADER: usize = 12;
    pub const ENTRY: usize = 12;
    pub const EH_ENTRIES: usize = 0x2;
    pub const EH_MAX: usize = 0x4;
    pub const EH_DEPTH: usize = 0x6;
    pub const EI_BLOCK: usize = 0x0;
    pub const EI_LEAF_LO: usize = 0x4;
    pub const EI_LEAF_HI: usize = 0x8;
}

/// The hash-index root (`struct dx_root`) of an indexed directory.
pub mod dx {
    /// `struct dx_root_info`, after the `.` and `..` entries.
    pub const ROOT_INFO: usize = 0x18;
    /// `info_length` inside it: `limit` and `count` follow the info.
    pub const INFO_LENGTH: usize = ROOT_INFO + 5;
    /// `struct dx_entry` (hash, block); the first one's hash slot holds
    /// `limit` and `count`.
    pub const ENTRY: usize = 8;
    /// `struct dx_tail` (reserved, checksum), after `limit` entries.
    pub const TAIL: usize = 8;
}

/// The checksum that covers a block.
#[derive(Clone, Copy, Debug)]
pub enum BlockSum {
    /// None (block maps, data).
    None,
    /// A directory leaf block of inode `dir`, with its 12-byte tail.
    DirLeaf { dir: u32 },
    /// An extent tree node of inode `owner`.
    ExtentNode { owner: u32 },
    /// The hash-index root (block 0) of directory `dir`.
    DxRoot { dir: u32 },
}

/// Raw CRC32C as ext4 chains it: no inversion before or after.
fn crc32c(seed: u32, data: &[u8]) -> u32 {
    !crc32c::crc32c_append(!seed, data)
}

fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

pub fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

pub fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// An image open for editing.
pub struct Editor {
    file: File,
    /// Where the filesystem starts in the file (a partition's offset).
    base: u64,
    reader: ImageReader,
    sums: Sums,
    /// The metadata_csum seed, `None` without metadata_csum.
    seed: Option<u32>,
}

impl Editor {
    /// Opens the filesystem that starts `base` bytes into `image`.
    pub fn open_at(image: &Path, base: u64, sums: Sums) -> Editor {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(image)
            .unwrap_or_else(|e| panic!("open {}: {e}", image.display()));
        let reader = ImageReader::open_at(image, base, None)
            .unwrap_or_else(|e| panic!("read {}: {e}", image.display()));
        let mut ed = Editor {
            file,
            base,
            reader,
            sums,
            seed: None,
        };
        ed.seed = ed.csum_seed();
        ed
    }

    /// The inode at `path` (absolute, no symlinks followed).
    pub fn ino(&self, path: &str) -> u32 {
        self.reader
            .lookup(path.as_bytes())
            .unwrap_or_else(|e| panic!("lookup {path}: {e}"))
    }

    fn block_size(&self) -> usize {
        self.reader.superblock().block_size as usize
    }

    fn read_at(&self, at: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, self.base + at)
            .unwrap_or_else(|e| panic!("read {len} bytes at {at}: {e}"));
        buf
    }

    fn write_at(&self, at: u64, bytes: &[u8]) {
        self.file
            .write_all_at(bytes, self.base + at)
            .unwrap_or_else(|e| panic!("write {} bytes at {at}: {e}", bytes.len()));
    }

    /// Whether checksums are to be recomputed (metadata_csum, and not stale).
    fn recompute(&self) -> Option<u32> {
        self.seed.filter(|_| self.sums == Sums::Recomputed)
    }

    // The superblock.

    /// A 32-bit superblock field.
    pub fn super_u32(&self, off: usize) -> u32 {
        get_u32(&self.read_at(SUPERBLOCK_AT, sb::LEN), off)
    }

    /// Edits the primary superblock's bytes, then its checksum.
    pub fn edit_super(&self, edit: impl FnOnce(&mut [u8])) {
        let mut b = self.read_at(SUPERBLOCK_AT, sb::LEN);
        edit(&mut b);
        if self.recompute().is_some() {
            let csum = crc32c(!0, &b[..sb::S_CHECKSUM]);
            put_u32(&mut b, sb::S_CHECKSUM, csum);
        }
        self.write_at(SUPERBLOCK_AT, &b);
    }

    /// Sets a 32-bit superblock field.
    pub fn set_super_u32(&self, off: usize, v: u32) {
        self.edit_super(|b| put_u32(b, off, v));
    }

    /// The metadata_csum seed: the CRC of the UUID, or `s_checksum_seed`.
    fn csum_seed(&self) -> Option<u32> {
        let b = self.read_at(SUPERBLOCK_AT, sb::LEN);
        if get_u32(&b, sb::S_FEATURE_RO_COMPAT) & sb::RO_COMPAT_METADATA_CSUM == 0 {
            return None;
        }
        if get_u32(&b, sb::S_FEATURE_INCOMPAT) & sb::INCOMPAT_CSUM_SEED != 0 {
            return Some(get_u32(&b, sb::S_CHECKSUM_SEED));
        }
        Some(crc32c(!0, &b[sb::S_UUID..sb::S_UUID + 16]))
    }

    // Inodes.

    /// Byte offset of inode `ino`'s slot: its group's inode table (from the
    /// group descriptor) plus its index.
    fn inode_at(&self, ino: u32) -> u64 {
        let s = self.reader.superblock();
        let (group, index) = (
            (ino - 1) / s.inodes_per_group,
            (ino - 1) % s.inodes_per_group,
        );
        let bs = u64::from(s.block_size);
        let gdt = (SUPERBLOCK_AT / bs + 1) * bs;
        let desc_size = usize::from(s.desc_size);
        let desc = self.read_at(gdt + u64::from(group) * desc_size as u64, desc_size);
        // bg_inode_table_lo, and bg_inode_table_hi in 64-byte descriptors.
        let mut table = u64::from(get_u32(&desc, 0x8));
        if desc_size >= 64 {
            table |= u64::from(get_u32(&desc, 0x28)) << 32;
        }
        table * bs + u64::from(index) * u64::from(s.inode_size)
    }

    /// Inode `ino`'s raw slot.
    pub fn inode_slot(&self, ino: u32) -> Vec<u8> {
        let size = usize::from(self.reader.superblock().inode_size);
        self.read_at(self.inode_at(ino), size)
    }

    /// Edits inode `ino`'s slot, then its checksum.
    pub fn edit_inode(&self, ino: u32, edit: impl FnOnce(&mut [u8])) {
        let mut slot = self.inode_slot(ino);
        edit(&mut slot);
        if let Some(seed) = self.recompute() {
            let seed = inode_seed(seed, ino, &slot);
            set_inode_checksum(&mut slot, seed);
        }
        self.write_at(self.inode_at(ino), &slot);
    }

    /// Sets inode `ino`'s size, both halves.
    pub fn set_size(&self, ino: u32, size: u64) {
        self.edit_inode(ino, |s| {
            put_u32(s, inode::I_SIZE_LO, size as u32);
            put_u32(s, inode::I_SIZE_HIGH, (size >> 32) as u32);
        });
    }

    /// The per-inode checksum seed of inode `ino` (for the blocks it owns).
    fn seed_of(&self, seed: u32, ino: u32) -> u32 {
        inode_seed(seed, ino, &self.inode_slot(ino))
    }

    // Blocks.

    /// Block `pblk`.
    pub fn block(&self, pblk: u64) -> Vec<u8> {
        self.read_at(pblk * self.block_size() as u64, self.block_size())
    }

    /// Edits block `pblk`, then the checksum `sum` says covers it.
    pub fn edit_block(&self, pblk: u64, sum: BlockSum, edit: impl FnOnce(&mut [u8])) {
        let mut b = self.block(pblk);
        edit(&mut b);
        if let Some(seed) = self.recompute() {
            match sum {
                BlockSum::None => {}
                BlockSum::DirLeaf { dir } => set_dir_leaf_checksum(&mut b, self.seed_of(seed, dir)),
                BlockSum::ExtentNode { owner } => {
                    set_extent_checksum(&mut b, self.seed_of(seed, owner))
                }
                BlockSum::DxRoot { dir } => set_dx_root_checksum(&mut b, self.seed_of(seed, dir)),
            }
        }
        self.write_at(pblk * self.block_size() as u64, &b);
    }

    /// Inode `ino`'s data runs and mapping blocks (extent tree nodes in
    /// walk order, or indirect blocks).
    pub fn map(&self, ino: u32) -> (Vec<MappedRun>, Vec<u64>) {
        let inode = self.reader.inode(ino).expect("inode");
        match self.reader.file_map(ino, &inode).expect("file map") {
            FileMap::Blocks { runs, index_blocks } => (runs, index_blocks),
            FileMap::Inline(_) => panic!("inode {ino} has inline data, not blocks"),
        }
    }

    /// The physical blocks of directory `dir`, in logical order.
    fn dir_blocks(&self, dir: u32) -> Vec<u64> {
        let (runs, _) = self.map(dir);
        runs.iter().flat_map(|r| r.pblk..r.pblk + r.len).collect()
    }

    // Directory entries.

    /// Edits the entry `name` of directory `dir` (a linear directory, or a
    /// leaf of an indexed one), then its block's checksum.
    pub fn edit_entry(&self, dir: u32, name: &[u8], edit: impl FnOnce(&mut Entry<'_>)) {
        let has_tail = self.seed.is_some();
        for pblk in self.dir_blocks(dir) {
            let block = self.block(pblk);
            if let Some(at) = find_entry(&block, name) {
                let sum = if has_tail {
                    BlockSum::DirLeaf { dir }
                } else {
                    BlockSum::None
                };
                self.edit_block(pblk, sum, |b| edit(&mut Entry { block: b, at }));
                return;
            }
        }
        panic!(
            "no entry {:?} in directory inode {dir}",
            String::from_utf8_lossy(name)
        );
    }

    /// Renames entry `old` of directory `dir` to `new` (no longer than the
    /// room the entry has).
    pub fn rename(&self, dir: u32, old: &[u8], new: &[u8]) {
        self.edit_entry(dir, old, |e| e.set_name(new));
    }

    /// Points entry `name` of directory `dir` at inode `ino`.
    pub fn relink(&self, dir: u32, name: &[u8], ino: u32) {
        self.edit_entry(dir, name, |e| e.set_ino(ino));
    }

    /// The hash-index root (block 0) of directory `dir`.
    pub fn dx_root_block(&self, dir: u32) -> u64 {
        self.dir_blocks(dir)[0]
    }
}

/// The offset of the entry named `name` in a directory block, if any.
fn find_entry(block: &[u8], name: &[u8]) -> Option<usize> {
    let mut at = 0;
    while at + dirent::NAME <= block.len() {
        let rec_len = usize::from(get_u16(block, at + dirent::REC_LEN));
        let len = usize::from(block[at + dirent::NAME_LEN]);
        let ino = get_u32(block, at + dirent::INODE);
        if ino != 0 && block.get(at + dirent::NAME..at + dirent::NAME + len) == Some(name) {
            return Some(at);
        }
        if rec_len < dirent::NAME {
            return None;
        }
        at += rec_len;
    }
    None
}

/// One directory entry inside its block, being edited.
pub struct Entry<'a> {
    block: &'a mut [u8],
    at: usize,
}

impl Entry<'_> {
    /// Gives the entry a new name, as long as the old one or shorter (the
    /// record keeps its length; the rest of the old name is zeroed).
    pub fn set_name(&mut self, new: &[u8]) {
        let rec_len = usize::from(get_u16(self.block, self.at + dirent::REC_LEN));
        assert!(
            dirent::NAME + new.len() <= rec_len,
            "{:?} does not fit a record of {rec_len} bytes",
            String::from_utf8_lossy(new)
        );
        let old_len = usize::from(self.block[self.at + dirent::NAME_LEN]);
        let name = self.at + dirent::NAME;
        self.block[name..name + old_len.max(new.len())].fill(0);
        self.block[name..name + new.len()].copy_from_slice(new);
        self.block[self.at + dirent::NAME_LEN] = new.len() as u8;
    }

    /// Points the entry at inode `ino`.
    pub fn set_ino(&mut self, ino: u32) {
        put_u32(self.block, self.at + dirent::INODE, ino);
    }
}

/// The seed of an inode and of the blocks it owns: the filesystem seed
/// extended with the inode number and `i_generation`.
fn inode_seed(fs_seed: u32, ino: u32, slot: &[u8]) -> u32 {
    let generation = get_u32(slot, inode::I_GENERATION);
    crc32c(
        crc32c(fs_seed, &ino.to_le_bytes()),
        &generation.to_le_bytes(),
    )
}

/// Stores an inode's checksum: the CRC of the whole slot with both checksum
/// fields zero; the high half only where `i_extra_isize` covers it.
fn set_inode_checksum(slot: &mut [u8], seed: u32) {
    let has_hi = slot.len() > inode::GOOD_OLD_SIZE
        && usize::from(get_u16(slot, inode::I_EXTRA_ISIZE))
            >= inode::I_CHECKSUM_HI + 2 - inode::GOOD_OLD_SIZE;
    put_u16(slot, inode::L_I_CHECKSUM_LO, 0);
    if has_hi {
        put_u16(slot, inode::I_CHECKSUM_HI, 0);
    }
    let crc = crc32c(seed, slot);
    put_u16(slot, inode::L_I_CHECKSUM_LO, crc as u16);
    if has_hi {
        put_u16(slot, inode::I_CHECKSUM_HI, (crc >> 16) as u16);
    }
}

/// Stores a directory leaf's checksum in its tail: the CRC of every byte
/// before the tail.
fn set_dir_leaf_checksum(block: &mut [u8], seed: u32) {
    let tail = block.len() - dirent::TAIL;
    assert_eq!(block[tail + 7], dirent::TAIL_FT, "a leaf block with a tail");
    let csum = crc32c(seed, &block[..tail]);
    put_u32(block, tail + 8, csum);
}

/// Stores an extent node's checksum (`struct ext4_extent_tail`), right
/// after `eh_max` entries: the CRC of every byte before it.
fn set_extent_checksum(block: &mut [u8], seed: u32) {
    let tail = extent::HEADER + usize::from(get_u16(block, extent::EH_MAX)) * extent::ENTRY;
    let csum = crc32c(seed, &block[..tail]);
    put_u32(block, tail, csum);
}

/// Stores a dx_root's checksum (`struct dx_tail`, after `limit` entries):
/// the CRC of the block up to the entries in use (`count`), then of the
/// tail with its checksum field zero.
fn set_dx_root_checksum(block: &mut [u8], seed: u32) {
    let at = dx::ROOT_INFO + usize::from(block[dx::INFO_LENGTH]);
    let (limit, count) = (
        usize::from(get_u16(block, at)),
        usize::from(get_u16(block, at + 2)),
    );
    let tail = at + limit * dx::ENTRY;
    let crc = crc32c(seed, &block[..at + count * dx::ENTRY]);
    let crc = crc32c(crc32c(crc, &block[tail..tail + 4]), &[0; 4]);
    put_u32(block, tail + 4, crc);
}

/// Writes an extent index node over `node` (`i_block`, or a whole tree
/// block whose checksum tail follows the entries): the header for `depth`,
/// then one `struct ext4_extent_idx` per (first logical block, child).
pub fn put_index_node(node: &mut [u8], depth: u16, children: &[(u32, u64)]) {
    let max = (node.len() - extent::HEADER) / extent::ENTRY;
    assert!(children.len() <= max, "at most {max} entries");
    node[..extent::HEADER + max * extent::ENTRY].fill(0);
    put_u16(node, 0, extent::MAGIC);
    put_u16(node, extent::EH_ENTRIES, children.len() as u16);
    put_u16(node, extent::EH_MAX, max as u16);
    put_u16(node, extent::EH_DEPTH, depth);
    for (i, &(lblk, child)) in children.iter().enumerate() {
        let e = extent::HEADER + i * extent::ENTRY;
        put_u32(node, e + extent::EI_BLOCK, lblk);
        put_u32(node, e + extent::EI_LEAF_LO, child as u32);
        put_u16(node, e + extent::EI_LEAF_HI, (child >> 32) as u16);
    }
}

/// The depth of an extent node (`eh_depth`).
pub fn extent_depth(node: &[u8]) -> u16 {
    get_u16(node, extent::EH_DEPTH)
}

/// The (first logical block, child) entries of an extent index node.
pub fn index_entries(node: &[u8]) -> Vec<(u32, u64)> {
    let count = usize::from(get_u16(node, extent::EH_ENTRIES));
    (0..count)
        .map(|i| {
            let e = extent::HEADER + i * extent::ENTRY;
            let child = u64::from(get_u32(node, e + extent::EI_LEAF_LO))
                | u64::from(get_u16(node, e + extent::EI_LEAF_HI)) << 32;
            (get_u32(node, e + extent::EI_BLOCK), child)
        })
        .collect()
}

/// The `limit` and `count` of a dx_root block and where they are.
pub fn dx_count_limit(block: &[u8]) -> (usize, u16, u16) {
    let at = dx::ROOT_INFO + usize::from(block[dx::INFO_LENGTH]);
    (at, get_u16(block, at), get_u16(block, at + 2))
}

/// Whether the filesystem at the start of `image` has metadata_csum (read
/// from the raw superblock: no decoder to refuse a damaged one).
pub fn has_metadata_csum(image: &Path) -> bool {
    let file = File::open(image).unwrap_or_else(|e| panic!("open {}: {e}", image.display()));
    let mut b = vec![0u8; sb::LEN];
    file.read_exact_at(&mut b, SUPERBLOCK_AT)
        .unwrap_or_else(|e| panic!("read {}: {e}", image.display()));
    get_u32(&b, sb::S_FEATURE_RO_COMPAT) & sb::RO_COMPAT_METADATA_CSUM != 0
}
