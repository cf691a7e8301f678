//! The plan: every inode number and block address, decided before any byte is
//! written, from the tree and the options alone (no IO).
//!
//! Inodes are numbered in breadth-first order of sorted names (root 2, lost+found
//! 11, then the tree from 12). Blocks are handed out by one cursor that walks
//! the data area of each group in ascending order, inode by inode, so used
//! blocks and used inodes are each a prefix: the bitmaps and free counts follow
//! from two numbers.

use std::ops::Range;

use kiln_tree::{NodeId, Tree};

use crate::alloc::{Cursor, Mapping};
use crate::dir::DirFormat;
use crate::features::{self, Features};
use crate::geometry::Geometry;
use crate::sizing::Sizing;
use crate::xattr::DiskXattr;
use crate::{checksum, BuildOptions, PlanError};

mod allocation;
mod limits;
mod numbering;

pub(crate) use limits::ibody_space;
pub(crate) use numbering::adds_lost_found;

/// The name of the directory e2fsck reconnects orphans into.
pub const LOST_FOUND: &[u8] = b"lost+found";

/// What an inode number holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Reserved and unused (bad blocks inode, quota, ...): all zero.
    Empty,
    /// A node of the tree.
    Node(NodeId),
    /// lost+found made by kiln (the tree had none).
    LostFound,
    /// The resize inode.
    Resize,
    /// The journal.
    Journal,
    /// The orphan file (orphan_file).
    OrphanFile,
}

/// What the plan keeps of each inode: 12 bytes. Everything else about it
/// (its shape, xattrs and block mapping) is worked out again from the tree
/// when it is needed ([`Plan::inode`]), as the plan worked it out: a build's
/// memory grows by these bytes per entry, not by a whole [`InodePlan`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Kept {
    /// The [`Slot`], packed ([`Kept::slot`]).
    slot: u32,
    /// Links to the inode (directories: "." and their subdirectories'
    /// ".."), saturating: past [`LINK_MAX`](crate::layout::LINK_MAX) the count only has to stay past it.
    links: u16,
    /// The first block the allocation cursor held when this inode's blocks
    /// were handed out: 48 bits, as block numbers are below 2^48 (the one
    /// position past them, the end of a full filesystem of 2^48 blocks, is
    /// only ever the start of an inode without blocks, never read). In
    /// halves of 16 bits, so that the whole aligns to 4 bytes.
    start: [u16; 3],
}

/// Packed [`Slot`]s past the largest node id.
const SLOT_EMPTY: u32 = u32::MAX;
const SLOT_LOST_FOUND: u32 = u32::MAX - 1;
const SLOT_RESIZE: u32 = u32::MAX - 2;
const SLOT_JOURNAL: u32 = u32::MAX - 3;
const SLOT_ORPHAN_FILE: u32 = u32::MAX - 4;
/// Node ids from here on cannot be packed (a tree that large would not fit
/// in memory anyway).
const SLOT_FIRST_SPECIAL: u32 = SLOT_ORPHAN_FILE;

impl Kept {
    /// An inode of `slot`, with no links yet; None for a node id that does
    /// not pack.
    fn new(slot: Slot) -> Option<Kept> {
        let slot = match slot {
            Slot::Node(id) => u32::try_from(id)
                .ok()
                .filter(|&id| id < SLOT_FIRST_SPECIAL)?,
            Slot::Empty => SLOT_EMPTY,
            Slot::LostFound => SLOT_LOST_FOUND,
            Slot::Resize => SLOT_RESIZE,
            Slot::Journal => SLOT_JOURNAL,
            Slot::OrphanFile => SLOT_ORPHAN_FILE,
        };
        Some(Kept {
            slot,
            links: 0,
            start: [0; 3],
        })
    }

    /// Where the cursor stood for this inode.
    fn start(&self) -> u64 {
        let [a, b, c] = self.start.map(u64::from);
        a | b << 16 | c << 32
    }

    /// Keeps where the cursor stood for this inode.
    fn set_start(&mut self, block: u64) {
        self.start = [block as u16, (block >> 16) as u16, (block >> 32) as u16];
    }

    /// The links counted so far.
    pub(crate) fn links(&self) -> u32 {
        u32::from(self.links)
    }

    /// Counts `n` more links.
    pub(crate) fn add_links(&mut self, n: u16) {
        self.links = self.links.saturating_add(n);
    }

    /// What the inode holds.
    pub(crate) fn slot(&self) -> Slot {
        match self.slot {
            SLOT_EMPTY => Slot::Empty,
            SLOT_LOST_FOUND => Slot::LostFound,
            SLOT_RESIZE => Slot::Resize,
            SLOT_JOURNAL => Slot::Journal,
            SLOT_ORPHAN_FILE => Slot::OrphanFile,
            id => Slot::Node(id as NodeId),
        }
    }
}

/// One inode as the plan sees it, worked out from the tree and the [`Kept`]
/// numbers by [`Plan::inode`].
#[derive(Clone, Debug)]
pub(crate) struct InodePlan {
    pub(crate) slot: Slot,
    pub(crate) links: u32,
    /// For directories: the parent's inode number.
    pub(crate) parent: u32,
    pub(crate) mapping: Mapping,
    /// Boxed, as few inodes have any.
    pub(crate) xattrs: Option<Box<XattrPlan>>,
    /// For directories: block 0 is an htree root.
    pub(crate) indexed: bool,
    /// With inline_data: the data is in the inode, and this many bytes of it
    /// spill from `i_block` into `system.data`.
    pub(crate) inline: Option<u32>,
}

/// Where an inode's extended attributes go.
#[derive(Clone, Debug, Default)]
pub(crate) struct XattrPlan {
    /// The ones stored in the inode body.
    pub(crate) ibody: Vec<DiskXattr>,
    /// The ones stored in the xattr block.
    pub(crate) block: Vec<DiskXattr>,
    /// The xattr block's address (0 until allocated, and when `block` is empty).
    pub(crate) block_addr: u64,
}

/// How an inode stores its content, before allocation.
#[derive(Clone, Debug, Default)]
pub(crate) struct Shape {
    /// Logical blocks to allocate (data, directory or symlink blocks).
    pub(crate) logical: Vec<Range<u32>>,
    /// For directories: block 0 is an htree root.
    pub(crate) indexed: bool,
    /// With inline_data: the bytes that spill into `system.data`.
    pub(crate) inline: Option<u32>,
}

impl InodePlan {
    /// The extended attributes stored in the inode body.
    pub(crate) fn ibody_xattrs(&self) -> &[DiskXattr] {
        self.xattrs.as_ref().map_or(&[], |x| &x.ibody)
    }

    /// The extended attributes stored in the xattr block.
    pub(crate) fn block_xattrs(&self) -> &[DiskXattr] {
        self.xattrs.as_ref().map_or(&[], |x| &x.block)
    }

    /// The xattr block's address, 0 if the inode has none.
    pub(crate) fn xattr_block(&self) -> u64 {
        self.xattrs.as_ref().map_or(0, |x| x.block_addr)
    }
}

/// Whether an inode of `slot` is mapped by an extent tree (everything but
/// the resize inode, when the filesystem has extents).
fn uses_extents(slot: Slot, features: &Features) -> bool {
    features.has(features::EXTENT) && slot != Slot::Resize
}

/// Every decision about the image: geometry, inode numbers, block addresses.
#[derive(Debug)]
pub struct Plan<'t> {
    pub(crate) tree: &'t Tree,
    /// The options, with the features resolved: what the image has (the
    /// options' features less what the plan had to leave out). Every reader
    /// after planning takes the features from here.
    pub(crate) opts: BuildOptions,
    /// The filesystem's shape.
    pub geometry: Geometry,
    /// Apparent size of the image file in bytes.
    pub image_size: u64,
    /// Adjustments the plan made to the options, for the user to read.
    pub notes: Vec<String>,
    /// What is kept of inodes 1..=last used, index = inode number - 1.
    pub(crate) inodes: Vec<Kept>,
    /// Each directory's inode number with its parent's, ascending.
    pub(crate) parents: Vec<(u32, u32)>,
    /// Inode number of each tree node (0 where unreachable).
    pub(crate) ino_of: Vec<u32>,
    /// The first block no inode uses.
    pub(crate) cursor: u64,
    pub(crate) journal_blocks: u32,
    /// Block holding the resize inode's double-indirect block (0 if none).
    pub(crate) resize_dind: u64,
    /// How directories are written.
    pub(crate) dir_format: DirFormat,
}

/// Plans an image of `tree` with `opts`.
pub fn plan<'t>(tree: &'t Tree, opts: &BuildOptions) -> Result<Plan<'t>, PlanError> {
    opts.validate()?;
    let mut notes = Vec::new();
    let mut opts = opts.clone();
    let orphan_file = opts.features.has(features::ORPHAN_FILE);
    let mut inodes = numbering::number_inodes(tree, orphan_file)?;
    limits::large_file_if_needed(tree, &inodes, &mut opts.features, &mut notes);
    let ino_of = numbering::ino_map(&inodes);
    let dir_format = limits::dir_format(&opts);
    let mut parents = Vec::new();
    let mut data_blocks = 0;
    let work = limits::Work {
        tree,
        opts: &opts,
        dir_format: &dir_format,
        journal_blocks: 0,
    };
    for ino in 1..=inodes.len() as u32 {
        let (shape, xattrs) = work.prepare_inode(&mut inodes, &mut parents, &ino_of, ino)?;
        let slot = inodes[(ino - 1) as usize].slot();
        let extents = uses_extents(slot, &opts.features);
        data_blocks += Mapping::blocks_needed(&shape.logical, opts.block_size, extents)
            + u64::from(xattrs.as_ref().is_some_and(|x| !x.block.is_empty()));
    }
    parents.sort_unstable();
    let bs = opts.block_size;
    let sizing = Sizing {
        opts: &opts,
        data_blocks,
        used_inodes: inodes.len() as u64,
    };
    let (geometry, journal_blocks) = match opts.size {
        Some(size) => sizing.fixed(size / u64::from(bs))?,
        None => sizing.auto()?,
    };
    let image_size = opts.size.unwrap_or(geometry.blocks_count * u64::from(bs));
    // The resize inode is block-mapped: it cannot reach past 2^32 blocks, and
    // mke2fs leaves it out of such filesystems too. (Sizing left its reserved
    // GDT blocks out already.)
    if geometry.blocks_count > u64::from(u32::MAX) && opts.features.has(features::RESIZE_INODE) {
        opts.features.set(features::RESIZE_INODE, false);
        notes.push(
            "resize_inode left out: it cannot map past 2^32 blocks (as mke2fs does)".to_string(),
        );
    }
    // The resize inode's size (the end of its double-indirect range) and a
    // journal's count as a file's do.
    if opts.features.has(features::RESIZE_INODE) {
        let size = crate::resize::size(&geometry);
        limits::large_file_for("the resize inode", size, &mut opts.features, &mut notes);
    }
    let journal = u64::from(journal_blocks) * u64::from(bs);
    limits::large_file_for("the journal", journal, &mut opts.features, &mut notes);
    let mut plan = Plan {
        tree,
        opts,
        geometry,
        image_size,
        notes,
        inodes,
        parents,
        ino_of,
        cursor: 0,
        journal_blocks,
        resize_dind: 0,
        dir_format,
    };
    plan.allocate()?;
    Ok(plan)
}

impl Plan<'_> {
    /// Number of the last used inode.
    pub(crate) fn last_ino(&self) -> u32 {
        self.inodes.len() as u32
    }

    /// What inode `ino` holds.
    pub(crate) fn slot(&self, ino: u32) -> Slot {
        self.inodes[(ino - 1) as usize].slot()
    }

    /// The plan of inode `ino`, worked out again from the tree as
    /// [`plan`] worked it out, its blocks handed out from where the cursor
    /// stood for it then.
    pub(crate) fn inode(&self, ino: u32) -> InodePlan {
        let start = self.inodes[(ino - 1) as usize].start();
        self.place(ino, &mut Cursor::at(&self.geometry, start))
    }

    /// Works out inode `ino` and hands out its blocks from `cursor`: data
    /// and index blocks, then its xattr block.
    fn place(&self, ino: u32, cursor: &mut Cursor<'_>) -> InodePlan {
        let kept = self.inodes[(ino - 1) as usize];
        let slot = kept.slot();
        let work = limits::Work {
            tree: self.tree,
            opts: &self.opts,
            dir_format: &self.dir_format,
            journal_blocks: self.journal_blocks,
        };
        // plan() ran the same checks on every inode and stopped at the
        // first that failed: they pass now.
        let (shape, mut xattrs) = work
            .shape_and_xattrs(slot, ino)
            .expect("the plan checked every inode");
        let extents = uses_extents(slot, self.features());
        let mapping = Mapping::allocate(&shape.logical, self.geometry.block_size, extents, cursor);
        if let Some(x) = xattrs.as_mut().filter(|x| !x.block.is_empty()) {
            x.block_addr = cursor.next();
        }
        InodePlan {
            slot,
            links: kept.links(),
            parent: self.parent(ino),
            mapping,
            xattrs,
            indexed: shape.indexed,
            inline: shape.inline,
        }
    }

    /// The parent of directory inode `ino` (0 for other inodes).
    fn parent(&self, ino: u32) -> u32 {
        self.parents
            .binary_search_by_key(&ino, |&(dir, _)| dir)
            .map_or(0, |i| self.parents[i].1)
    }

    /// Is inode `ino` a directory?
    pub(crate) fn is_dir(&self, ino: u32) -> bool {
        match self.slot(ino) {
            Slot::Node(id) => self.tree.node(id).is_dir(),
            Slot::LostFound => true,
            _ => false,
        }
    }

    /// ext2, ext3 or ext4.
    pub fn fs_type(&self) -> crate::FsType {
        self.opts.fs_type
    }

    /// The features the image has: the options' features less those the
    /// plan left out (see [`notes`](Self::notes)).
    pub fn features(&self) -> &Features {
        &self.opts.features
    }

    /// The filesystem UUID.
    pub fn uuid(&self) -> [u8; 16] {
        self.opts.uuid
    }

    /// The filesystem checksum seed, with metadata_csum.
    pub(crate) fn csum_seed(&self) -> Option<u32> {
        self.features()
            .has(features::METADATA_CSUM)
            .then(|| checksum::fs_seed(&self.opts.uuid))
    }

    /// Blocks reserved for root, as a percentage of all blocks.
    pub(crate) fn reserved_blocks(&self) -> u64 {
        (self.geometry.blocks_count as f64 * self.opts.reserved_percent / 100.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::limits::{logical_ranges, lost_found_blocks, max_file_size};
    use super::*;
    use kiln_tree::Body;
    use kiln_tree::Node;

    #[test]
    fn an_inode_keeps_12_bytes_and_any_start() {
        assert_eq!(std::mem::size_of::<Kept>(), 12);
        let mut kept = Kept::new(Slot::Node(7)).unwrap();
        for block in [0, 1, u64::from(u32::MAX), 1 << 40, (1 << 48) - 1] {
            kept.set_start(block);
            assert_eq!(kept.start(), block);
        }
        assert_eq!(kept.slot(), Slot::Node(7));
        for slot in [
            Slot::Empty,
            Slot::LostFound,
            Slot::Resize,
            Slot::Journal,
            Slot::OrphanFile,
        ] {
            assert_eq!(Kept::new(slot).unwrap().slot(), slot);
        }
        assert!(Kept::new(Slot::Node(SLOT_FIRST_SPECIAL as NodeId)).is_none());
    }

    #[test]
    fn logical_ranges_merge_and_round() {
        let r = logical_ranges(&[0..10, 1000..1030, 4096..8192, 8192..9000], 9000, 1024);
        assert_eq!(r, vec![0..2, 4..9]);
    }

    #[test]
    fn file_size_limits() {
        // 1 KiB blocks: 16 GiB and change; 4 KiB: just under 2 TiB (i_blocks).
        let ext3 = Features::defaults(crate::FsType::Ext3);
        let ext4 = Features::defaults(crate::FsType::Ext4);
        assert_eq!(max_file_size(4096, &ext4), (u64::from(u32::MAX)) * 4096);
        assert_eq!(
            max_file_size(1024, &ext3),
            (12 + 256 + 256 * 256 + 256 * 256 * 256) * 1024
        );
        assert!(
            max_file_size(4096, &ext3) < 2 << 40
                && max_file_size(4096, &ext3) > (2 << 40) - (8 << 30)
        );
    }

    fn empty_meta() -> kiln_tree::Metadata {
        kiln_tree::Metadata::made(0o755, 0, 0)
    }

    fn tree_with(name: Vec<u8>, body: Body) -> Tree {
        let mut tree = Tree::new(empty_meta());
        let sub = tree.add(Node {
            meta: empty_meta(),
            body: Body::Dir(Default::default()),
        });
        tree.link(Tree::ROOT, b"sub", sub);
        let id = tree.add(Node {
            meta: empty_meta(),
            body,
        });
        tree.link(sub, &name, id);
        tree
    }

    fn plan_error(tree: &Tree, bs: u32) -> String {
        let mut opts = BuildOptions::new(crate::FsType::Ext2);
        opts.block_size = bs;
        plan(tree, &opts).unwrap_err().to_string()
    }

    #[test]
    fn long_names_and_targets_are_refused_with_their_path() {
        let long = tree_with(vec![b'n'; 256], Body::Fifo);
        let err = plan_error(&long, 4096);
        assert!(
            err.starts_with("/sub/nnnn") && err.contains("256 bytes"),
            "{err}"
        );
        let target = tree_with(b"l".to_vec(), Body::Symlink(vec![b'x'; 1024]));
        let err = plan_error(&target, 1024);
        assert!(err.starts_with("/sub/l:") && err.contains("1023"), "{err}");
    }

    #[test]
    fn large_file_is_turned_on_for_a_file_of_2_gib() {
        let all_hole = |size| {
            let bytes = kiln_tree::Inline::new(Vec::new().into(), "spec".into());
            let source = kiln_tree::DataSource::Bytes(std::sync::Arc::new(bytes));
            Body::File(kiln_tree::FileData::new(source, size, Vec::new()))
        };
        let mut opts = BuildOptions::new(crate::FsType::Ext2);
        opts.features.set(features::LARGE_FILE, false);
        opts.block_size = 1024;
        let small = tree_with(b"f".to_vec(), all_hole((1 << 31) - 1));
        let p = plan(&small, &opts).unwrap();
        assert!(!p.features().has(features::LARGE_FILE) && p.notes.is_empty());
        let large = tree_with(b"f".to_vec(), all_hole(1 << 31));
        let p = plan(&large, &opts).unwrap();
        assert!(p.features().has(features::LARGE_FILE));
        assert_eq!(
            p.notes,
            ["large_file turned on: /sub/f is 2 GiB or more (as mke2fs and the kernel do)"]
        );
        // With 4 KiB blocks the resize inode's range ends past 4 GiB.
        opts.block_size = 4096;
        let p = plan(&small, &opts).unwrap();
        assert!(p.features().has(features::LARGE_FILE));
        assert!(p.notes[0].contains("the resize inode"), "{:?}", p.notes);
    }

    #[test]
    fn lost_found_sizes() {
        assert_eq!(lost_found_blocks(4096, 1), 4);
        assert_eq!(lost_found_blocks(2048, 1), 8);
        assert_eq!(lost_found_blocks(1024, 1), 12);
    }
}
