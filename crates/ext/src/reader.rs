//! [`ImageReader`]: kiln's reader of ext2/3/4 images, with the writer's own
//! decoders of the superblock, group descriptors, inodes and xattrs.
//!
//! Every image is untrusted. The superblock's geometry is checked as the
//! kernel checks it before anything is read by it; every block address is
//! refused past the filesystem's end (or its partition's, where that comes
//! first); a file's map may not reach a block twice, so no file yields more
//! data than the filesystem holds; directory entry names are single path
//! components, each once per directory. Metadata checksums are verified on
//! everything read, unless [`ImageReader::set_checksums`] turns that off
//! (`kiln verify` does: its own check reports them all). [`map`] reads where
//! a file's bytes are, [`dirs`] reads directories and walks the tree.

use std::borrow::Cow;
use std::fs::File;
use std::path::Path;
use std::sync::OnceLock;

use crate::checksum::inode_seed;
use crate::error::ReadError;
use crate::features;
use crate::geometry::Geometry;
use crate::group_desc;
use crate::inode::{self, InodeView};
use crate::layout::SUPERBLOCK_OFFSET;
use crate::superblock::{read_superblock, SuperblockView};
use crate::xattr::{self, DecodeError, XattrPair, SYSTEM_DATA_NAME};

mod dirs;
mod map;

pub use dirs::WalkEntry;
pub(crate) use dirs::MAX_DEPTH;
pub use map::{FileMap, MappedRun};

/// The structure named by errors about the group descriptor table.
const GDT: &str = "group descriptor table";
/// The structure named by errors about an inode table.
const INODE_TABLE: &str = "inode table";

/// Bytes from the start of the image that hold the primary superblock.
const HEAD_LEN: usize = 2048;

/// An open image and its decoded superblock.
#[derive(Debug)]
pub struct ImageReader {
    pub(crate) file: File,
    /// Where the filesystem starts in the file (a partition's offset).
    pub(crate) base: u64,
    sb: SuperblockView,
    /// The superblock's counts and group arithmetic.
    geo: Geometry,
    /// Blocks that may be read: the filesystem's, or fewer where its
    /// partition ends first.
    readable_blocks: u64,
    /// The partition's length, if the filesystem claims to be larger.
    short_partition: Option<u64>,
    /// Whether metadata checksums are verified on what is read.
    checksums: bool,
    /// The primary group descriptor table, read whole at the first inode
    /// read where it takes at most [`GDT_CACHE_MAX`] bytes (`None` then:
    /// each descriptor is read where it is needed); a tree of inodes would
    /// otherwise read one descriptor per inode.
    gdt: OnceLock<Option<Vec<u8>>>,
}

/// The largest group descriptor table kept in memory: that of an 8 TiB
/// filesystem with 64-byte descriptors (16 TiB with 32-byte ones), beyond
/// what an image source is, and a small bound on what a corrupt superblock
/// can make the reader hold.
const GDT_CACHE_MAX: u64 = 4 << 20;

impl ImageReader {
    /// Opens the image at `path` and decodes its superblock.
    pub fn open(path: &Path) -> Result<ImageReader, ReadError> {
        ImageReader::open_at(path, 0, None)
    }

    /// Opens the filesystem that starts `base` bytes into the file at
    /// `path` (a partition of a disk image) and spans at most `len` bytes.
    /// A filesystem larger than `len` opens, but nothing past `len` is
    /// read, and [`refuse_unreadable`](Self::refuse_unreadable) says so.
    pub fn open_at(path: &Path, base: u64, len: Option<u64>) -> Result<ImageReader, ReadError> {
        let file = File::open(path)?;
        let mut head = vec![0u8; HEAD_LEN];
        let n = kiln_host::read_at(&file, &mut head, base)?;
        head.truncate(n);
        let sb = read_superblock(&head)?;
        let geo = Geometry::from_superblock(&sb)?;
        let fs_bytes = sb.blocks_count.saturating_mul(u64::from(sb.block_size));
        let short_partition = len.filter(|&len| fs_bytes > len);
        let readable_blocks = match short_partition {
            Some(len) => len / u64::from(sb.block_size),
            None => sb.blocks_count,
        };
        Ok(ImageReader {
            file,
            base,
            sb,
            geo,
            readable_blocks,
            short_partition,
            checksums: true,
            gdt: OnceLock::new(),
        })
    }

    /// Whether metadata checksums (with metadata_csum) are verified on what
    /// is read: on by default, a mismatch is a [`ReadError::BadChecksum`].
    pub fn set_checksums(&mut self, verify: bool) {
        self.checksums = verify;
    }

    /// Refuses an image that this reader would misread: incompat features it
    /// does not know ([`ReadError::Unsupported`]), or a filesystem larger than
    /// its partition. `ls`, `cat` and `extract` call it first; `verify`
    /// reports the same as problems.
    pub fn refuse_unreadable(&self) -> Result<(), ReadError> {
        let unreadable = self.sb.features.unreadable();
        if !unreadable.is_empty() {
            return Err(ReadError::Unsupported {
                features: unreadable.join(" "),
            });
        }
        match self.larger_than_partition() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The error of a filesystem that claims more bytes than its partition.
    pub(crate) fn larger_than_partition(&self) -> Option<ReadError> {
        self.short_partition
            .map(|len| ReadError::LargerThanPartition {
                fs_bytes: self
                    .sb
                    .blocks_count
                    .saturating_mul(u64::from(self.sb.block_size)),
                len,
            })
    }

    /// The decoded superblock.
    pub fn superblock(&self) -> &SuperblockView {
        &self.sb
    }

    /// The geometry the superblock describes (see
    /// [`Geometry::from_superblock`]).
    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }

    /// Decodes inode `ino` (numbered from 1), its checksum verified.
    pub fn inode(&self, ino: u32) -> Result<InodeView, ReadError> {
        let slot = self.checked_slot(ino)?;
        Ok(inode::decode(&slot, self.bit64()))
    }

    /// The extended attributes of inode `ino` as (full name, VFS value)
    /// pairs, in-inode ones first, ACLs in the `posix_acl_xattr` format.
    /// `system.data` (inline data, not an attribute to the user, which the
    /// kernel does not list either) is left out.
    pub fn xattrs(&self, ino: u32) -> Result<Vec<XattrPair>, ReadError> {
        Ok(self.inode_and_xattrs(ino)?.1)
    }

    /// Inode `ino` and its extended attributes (as [`xattrs`](Self::xattrs)
    /// gives them), from one read of its slot.
    pub fn inode_and_xattrs(&self, ino: u32) -> Result<(InodeView, Vec<XattrPair>), ReadError> {
        let slot = self.checked_slot(ino)?;
        let corrupt = |e| xattr_error(ino, 0, e);
        let mut out = xattr::decode_ibody(inode::ibody_area(&slot)).map_err(corrupt)?;
        let inode = inode::decode(&slot, self.bit64());
        if inode.file_acl != 0 {
            out.extend(self.xattr_block(ino, inode.file_acl)?);
        }
        out.retain(|(name, _)| !is_system_data(name));
        Ok((inode, out))
    }

    /// The value of inode `ino`'s `system.data` attribute (the inline data
    /// beyond `i_block`), empty if it has none.
    fn system_data(&self, ino: u32) -> Result<Vec<u8>, ReadError> {
        let slot = self.checked_slot(ino)?;
        let pairs =
            xattr::decode_ibody(inode::ibody_area(&slot)).map_err(|e| xattr_error(ino, 0, e))?;
        Ok(pairs
            .into_iter()
            .find(|(name, _)| is_system_data(name))
            .map(|(_, value)| value)
            .unwrap_or_default())
    }

    /// Reads and decodes the xattr block `block` of inode `ino`.
    fn xattr_block(&self, ino: u32, block: u64) -> Result<Vec<XattrPair>, ReadError> {
        if block >= self.sb.blocks_count {
            return Err(ReadError::CorruptXattrs {
                ino,
                what: format!("xattr block {block} is past the end of the filesystem"),
            });
        }
        let bytes = self.read_block(block, "xattr block")?;
        if let Ok(header) = xattr::block_header(&bytes, block, self.csum_seed()) {
            if let Some((stored, computed)) = header.checksums {
                self.verify_checksum(
                    || format!("xattr block {block} of inode {ino}"),
                    stored,
                    computed,
                )?;
            }
        }
        xattr::decode_block(&bytes).map_err(|e| xattr_error(ino, block, e))
    }

    /// The seed of inode `ino`'s metadata checksums, if they are verified.
    pub(crate) fn inode_csum_seed(&self, ino: u32, inode: &InodeView) -> Option<u32> {
        self.csum_seed()
            .map(|seed| inode_seed(seed, ino, inode.generation))
    }

    /// The filesystem's checksum seed, if metadata checksums are verified.
    fn csum_seed(&self) -> Option<u32> {
        (self.checksums && self.sb.features.has(features::METADATA_CSUM))
            .then_some(self.sb.csum_seed)
    }

    /// A [`ReadError::BadChecksum`] for `what` if `stored` is not `computed`.
    pub(crate) fn verify_checksum(
        &self,
        what: impl FnOnce() -> String,
        stored: u32,
        computed: u32,
    ) -> Result<(), ReadError> {
        if stored == computed {
            return Ok(());
        }
        Err(ReadError::BadChecksum {
            what: format!(
                "{} (stored {stored:#010x}, computed {computed:#010x})",
                what()
            ),
        })
    }

    /// The inode-table slot of inode `ino`, its checksum verified.
    fn checked_slot(&self, ino: u32) -> Result<Vec<u8>, ReadError> {
        let slot = self.inode_slot(ino)?;
        // An all-zero slot is an inode never used, which has no checksum
        // (e2fsprogs accepts it too).
        let unused = slot.iter().all(|&b| b == 0);
        if let Some(seed) = self.csum_seed().filter(|_| !unused) {
            // Inodes of 128 bytes keep only the low half: checksums() says.
            let (stored, computed) =
                inode::checksums(&slot, inode_seed(seed, ino, inode::generation(&slot)));
            self.verify_checksum(|| format!("inode {ino}"), stored, computed)?;
        }
        Ok(slot)
    }

    /// The raw inode-table slot of inode `ino`.
    pub(crate) fn inode_slot(&self, ino: u32) -> Result<Vec<u8>, ReadError> {
        let sb = &self.sb;
        if ino == 0 || ino > sb.inodes_count {
            return Err(ReadError::InodeOutOfRange {
                ino,
                count: sb.inodes_count,
            });
        }
        // The superblock's geometry check makes inodes_per_group non-zero.
        let group = self.geo.group_of_inode(ino);
        let index = (ino - 1) % self.geo.inodes_per_group;
        let table = self.group_desc(group)?.inode_table;
        // Past the image's end if the index is corrupt: the read says so.
        let at = self
            .block_at(table, INODE_TABLE)?
            .saturating_add(u64::from(index) * u64::from(sb.inode_size));
        self.read(at, u32::from(sb.inode_size), INODE_TABLE)
    }

    /// Reads the descriptor of group `group` from the primary table, which
    /// starts in the block after the superblock's, its checksum verified.
    fn group_desc(&self, group: u32) -> Result<group_desc::GroupDesc, ReadError> {
        let size = u32::from(self.sb.desc_size);
        let start = u64::from(group) * u64::from(size);
        let cached = self.cached_gdt().and_then(|gdt| {
            let start = usize::try_from(start).ok()?;
            gdt.get(start..start + size as usize)
        });
        let bytes = match cached {
            Some(bytes) => Cow::Borrowed(bytes),
            None => Cow::Owned(self.read(self.gdt_offset() + start, size, GDT)?),
        };
        let desc = group_desc::decode(&bytes);
        if let Some(seed) = self.csum_seed() {
            let computed = group_desc::checksum(seed, group, &bytes);
            self.verify_checksum(
                || format!("group descriptor {group}"),
                u32::from(desc.checksum),
                u32::from(computed),
            )?;
        }
        Ok(desc)
    }

    /// The primary group descriptor table, read once, if it is at most
    /// [`GDT_CACHE_MAX`] bytes and could be read whole.
    fn cached_gdt(&self) -> Option<&[u8]> {
        self.gdt
            .get_or_init(|| {
                let groups = u32::try_from(self.sb.groups()).ok()?;
                let len = u64::from(groups) * u64::from(self.sb.desc_size);
                (len <= GDT_CACHE_MAX).then(|| self.raw_gdt(groups).ok())?
            })
            .as_deref()
    }

    /// The raw primary group descriptor table: `groups` descriptors of
    /// `desc_size` bytes.
    pub(crate) fn raw_gdt(&self, groups: u32) -> Result<Vec<u8>, ReadError> {
        let len = u64::from(groups) * u64::from(self.sb.desc_size);
        let len = u32::try_from(len).map_err(|_| ReadError::Corrupt {
            structure: GDT,
            detail: format!("{groups} group descriptors do not fit in memory"),
        })?;
        self.read(self.gdt_offset(), len, GDT)
    }

    /// Byte offset of the primary group descriptor table.
    fn gdt_offset(&self) -> u64 {
        let bs = u64::from(self.sb.block_size);
        (SUPERBLOCK_OFFSET / bs + 1) * bs
    }

    /// Reads block `block` of `structure` (refused past the filesystem's
    /// end).
    pub(crate) fn read_block(
        &self,
        block: u64,
        structure: &'static str,
    ) -> Result<Vec<u8>, ReadError> {
        let at = self.block_at(block, structure)?;
        self.read(at, self.sb.block_size, structure)
    }

    /// The byte offset of `block` of `structure`, refused past the
    /// filesystem's end or its partition's (a corrupt descriptor or inode
    /// cannot send reads anywhere).
    fn block_at(&self, block: u64, structure: &'static str) -> Result<u64, ReadError> {
        let offset = block.checked_mul(u64::from(self.sb.block_size));
        match offset {
            Some(offset) if block < self.readable_blocks => Ok(offset),
            _ => Err(ReadError::Corrupt {
                structure,
                detail: format!("block {block} is past the end of the filesystem"),
            }),
        }
    }

    /// Reads `len` bytes of `structure` at filesystem byte `offset`.
    fn read(&self, offset: u64, len: u32, structure: &'static str) -> Result<Vec<u8>, ReadError> {
        let mut buf = vec![0u8; len as usize];
        self.read_into(offset, &mut buf, structure)?;
        Ok(buf)
    }

    /// Fills `buf` from filesystem byte `offset`; an image that ends first
    /// is corrupt (its `structure` lies past the end).
    fn read_into(
        &self,
        offset: u64,
        buf: &mut [u8],
        structure: &'static str,
    ) -> Result<(), ReadError> {
        let n = kiln_host::read_at(&self.file, buf, self.base.saturating_add(offset))?;
        if n < buf.len() {
            return Err(ReadError::Corrupt {
                structure,
                detail: format!("the image ends before byte {}", offset + buf.len() as u64),
            });
        }
        Ok(())
    }

    /// Whether the 64bit feature makes the `_hi` halves count.
    fn bit64(&self) -> bool {
        self.sb.features.has(features::BIT64)
    }
}

/// Whether `name` is `system.data`.
fn is_system_data(name: &[u8]) -> bool {
    name.strip_prefix(b"system.") == Some(SYSTEM_DATA_NAME)
}

/// The [`ReadError`] of a decode failure in inode `ino`'s xattrs (`block`
/// 0 for the in-inode area).
fn xattr_error(ino: u32, block: u64, e: DecodeError) -> ReadError {
    match e {
        DecodeError::BadMagic(found) => ReadError::BadXattrMagic { ino, block, found },
        DecodeError::Corrupt(what) => ReadError::CorruptXattrs { ino, what },
    }
}

#[cfg(test)]
mod tests {
    use kiln_tree::{Body, Metadata, Node, Timestamp, Tree, Xattr};

    use super::*;
    use crate::inode::mode;
    use crate::layout::ROOT_INO;
    use crate::{BuildOptions, FsType};

    /// A VFS ACL `user::rwx user:1000:r-x group::r-x mask::r-x other::---`.
    fn acl() -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [(1u16, 7u16, u32::MAX), (2, 5, 1000), (4, 5, u32::MAX)]
            .into_iter()
            .chain([(0x10, 5, u32::MAX), (0x20, 0, u32::MAX)])
        {
            v.extend([tag.to_le_bytes(), perm.to_le_bytes()].concat());
            v.extend(id.to_le_bytes());
        }
        v
    }

    /// The root's xattrs: small ones fit the inode, `user.big` needs the block.
    fn root_xattrs() -> Vec<XattrPair> {
        vec![
            (b"user.a".to_vec(), b"1".to_vec()),
            (b"system.posix_acl_access".to_vec(), acl()),
            (b"user.big".to_vec(), vec![7u8; 800]),
        ]
    }

    /// Metadata with an owner and times that need the high halves.
    fn meta(xattrs: Vec<XattrPair>) -> Metadata {
        let t = Timestamp {
            secs: 4_102_444_800,
            nanos: 123_456_789,
        };
        let mut meta = Metadata::new(0o750, 100_000, 70_000, kiln_tree::Times::at(t));
        meta.set_xattrs(xattrs.into_iter().map(Xattr::from).collect());
        meta
    }

    /// Builds an ext4 image of a root with xattrs and a character device.
    fn image(dir: &Path, block_size: u32, inode_size: u16) -> std::path::PathBuf {
        let mut tree = Tree::new(meta(root_xattrs()));
        let dev = tree.add(Node {
            meta: meta(Vec::new()),
            body: Body::CharDevice(300, 70_000),
        });
        tree.link(Tree::ROOT, b"dev", dev);
        let mut opts = BuildOptions::new(FsType::Ext4);
        opts.block_size = block_size;
        opts.inode_size = inode_size;
        let plan = crate::plan(&tree, &opts).unwrap();
        let path = dir.join(format!("{block_size}.img"));
        let sink = kiln_sink::SparseFile::create(&path, plan.image_size, false).unwrap();
        crate::emit(&plan, &sink).unwrap();
        sink.commit(kiln_sink::Durability::Writeback).unwrap();
        path
    }

    /// The inode number of the first character device.
    fn find_device(r: &ImageReader) -> u32 {
        (1..=r.superblock().inodes_count)
            .find(|&ino| r.inode(ino).unwrap().mode & 0o170000 == mode::S_IFCHR)
            .expect("a device inode")
    }

    #[test]
    fn reads_inodes_and_xattrs_the_writer_wrote() {
        let dir = tempfile::tempdir().unwrap();
        // 128-byte inodes have no extra fields: everything is in the block.
        for (bs, isize) in [(1024, 128), (4096, 256)] {
            let r = ImageReader::open(&image(dir.path(), bs, isize)).unwrap();
            let root = r.inode(ROOT_INO).unwrap();
            assert_eq!(root.mode, mode::S_IFDIR | 0o750);
            assert_eq!((root.uid, root.gid), (100_000, 70_000));
            if isize > 128 {
                assert_eq!({ root.mtime.secs }, 4_102_444_800);
                assert_eq!({ root.mtime.nanos }, 123_456_789);
            }
            assert_ne!(root.file_acl, 0, "user.big is in a block");
            let mut got = r.xattrs(ROOT_INO).unwrap();
            got.sort();
            let mut want = root_xattrs();
            want.sort();
            assert_eq!(got, want, "{bs}-byte blocks, {isize}-byte inodes");
            let dev = r.inode(find_device(&r)).unwrap();
            assert_eq!(dev.device(), Some((300, 70_000)));
            assert_eq!(root.device(), None);
        }
    }

    #[test]
    fn refuses_bad_inode_numbers_and_xattr_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let path = image(dir.path(), 4096, 256);
        let r = ImageReader::open(&path).unwrap();
        let count = r.superblock().inodes_count;
        for ino in [0, count + 1] {
            assert!(matches!(
                r.inode(ino),
                Err(ReadError::InodeOutOfRange { ino: i, count: c }) if i == ino && c == count
            ));
        }
        let block = r.inode(ROOT_INO).unwrap().file_acl;
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        kiln_host::write_at(&file, &[0; 4], block * 4096).unwrap();
        let err = r.xattrs(ROOT_INO).unwrap_err();
        assert!(
            matches!(err, ReadError::BadXattrMagic { ino: ROOT_INO, block: b, found: 0 } if b == block),
            "{err}"
        );
    }

    /// A truncated image is corrupt, not an I/O failure, and the error
    /// names the structure that lies past its end.
    #[test]
    fn a_truncated_image_is_corrupt_and_names_the_structure() {
        let dir = tempfile::tempdir().unwrap();
        let path = image(dir.path(), 4096, 256);
        let r = ImageReader::open(&path).unwrap();
        let table = r.group_desc(0).unwrap().inode_table;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(table * 4096)
            .unwrap();
        let err = r.inode(ROOT_INO).unwrap_err();
        assert!(
            matches!(
                err,
                ReadError::Corrupt {
                    structure: "inode table",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("corrupt inode table: the image ends before byte"),
            "{err}"
        );
    }
}
