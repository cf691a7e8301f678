//! The plan: every inode number and block address, decided before any byte is
//! written, from the tree and the options alone (no IO).
//!
//! Inodes are numbered in breadth-first order of sorted names (root 2, lost+found
//! 11, then the tree from 12). Blocks are handed out by one cursor that walks
//! the data area of each group in ascending order, inode by inode, so used
//! blocks and used inodes are each a prefix: the bitmaps and free counts follow
//! from two numbers.

use std::ops::Range;

use kiln_tree::{Body, NodeId, Tree};

use crate::alloc::{Cursor, Mapping};
use crate::blockmap;
use crate::dir::{DirFormat, DirShape};
use crate::features::{self, Features};
use crate::geometry::Geometry;
use crate::htree::HtreeParams;
use crate::layout::{
    EXTRA_ISIZE, FAST_SYMLINK_MAX, FIRST_INO, GOOD_OLD_INODE_SIZE, JOURNAL_INO, LINK_MAX,
    LOST_FOUND_INO, LOST_FOUND_MIN_BYTES, NAME_MAX, N_DIRECT, RESIZE_INO, ROOT_INO, SYMLINK_MAX,
};
use crate::sizing::Sizing;
use crate::xattr::{self, DiskXattr};
use crate::{checksum, inline, BuildOptions, PlanError};

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
}

/// The plan of one inode.
#[derive(Clone, Debug)]
pub(crate) struct InodePlan {
    pub(crate) slot: Slot,
    pub(crate) links: u32,
    /// For directories: the parent's inode number.
    pub(crate) parent: u32,
    /// Logical blocks to allocate (data, directory or symlink blocks).
    pub(crate) logical: Vec<Range<u32>>,
    pub(crate) mapping: Mapping,
    /// Boxed, as few inodes have any: one pointer per inode, not three fields.
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

impl InodePlan {
    fn new(slot: Slot) -> InodePlan {
        InodePlan {
            slot,
            links: 0,
            parent: 0,
            logical: Vec::new(),
            mapping: Mapping::None,
            xattrs: None,
            indexed: false,
            inline: None,
        }
    }

    /// Blocks this inode will hold at most.
    fn blocks_needed(&self, block_size: u32, extents: bool) -> u64 {
        Mapping::blocks_needed(&self.logical, block_size, extents)
            + u64::from(!self.block_xattrs().is_empty())
    }

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

    /// Whether this inode is mapped by an extent tree (everything but the
    /// resize inode, when the filesystem has extents).
    fn uses_extents(&self, features: &Features) -> bool {
        features.has(features::EXTENT) && self.slot != Slot::Resize
    }
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
    /// Plans of inodes 1..=last used, index = inode number - 1.
    pub(crate) inodes: Vec<InodePlan>,
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
    let mut inodes = number_inodes(tree)?;
    let ino_of = ino_map(&inodes);
    let dir_format = dir_format(opts);
    for ino in 1..=inodes.len() as u32 {
        prepare_inode(tree, opts, &dir_format, &mut inodes, &ino_of, ino)?;
    }
    let bs = opts.block_size;
    let data_blocks: u64 = inodes
        .iter()
        .map(|p| p.blocks_needed(bs, p.uses_extents(&opts.features)))
        .sum();
    let sizing = Sizing {
        opts,
        data_blocks,
        used_inodes: inodes.len() as u64,
    };
    let (geometry, journal_blocks) = match opts.size {
        Some(size) => sizing.fixed(size / u64::from(bs))?,
        None => sizing.auto()?,
    };
    let image_size = opts.size.unwrap_or(geometry.blocks_count * u64::from(bs));
    let mut opts = opts.clone();
    let mut notes = Vec::new();
    // The resize inode is block-mapped: it cannot reach past 2^32 blocks, and
    // mke2fs leaves it out of such filesystems too. (Sizing left its reserved
    // GDT blocks out already.)
    if geometry.blocks_count > u64::from(u32::MAX) && opts.features.has(features::RESIZE_INODE) {
        opts.features.set(features::RESIZE_INODE, false);
        notes.push(
            "resize_inode left out: it cannot map past 2^32 blocks (as mke2fs does)".to_string(),
        );
    }
    let mut plan = Plan {
        tree,
        opts,
        geometry,
        image_size,
        notes,
        inodes,
        ino_of,
        cursor: 0,
        journal_blocks,
        resize_dind: 0,
        dir_format,
    };
    plan.allocate()?;
    Ok(plan)
}

/// Assigns inode numbers: reserved ones, root, lost+found, then the tree in
/// breadth-first order. Returns the plans of inodes 1..=last.
fn number_inodes(tree: &Tree) -> Result<Vec<InodePlan>, PlanError> {
    let order = tree.reachable();
    // Sized once: grown by doubling, this vector was the largest part of a
    // build's memory.
    let mut inodes: Vec<InodePlan> = Vec::with_capacity(FIRST_INO as usize + order.len());
    inodes.extend((1..FIRST_INO).map(|_| InodePlan::new(Slot::Empty)));
    inodes[(ROOT_INO - 1) as usize].slot = Slot::Node(Tree::ROOT);
    inodes[(RESIZE_INO - 1) as usize].slot = Slot::Resize;
    inodes[(JOURNAL_INO - 1) as usize].slot = Slot::Journal;
    let lost_found = match tree.lookup(Tree::ROOT, LOST_FOUND) {
        Some(id) if tree.node(id).is_dir() => Slot::Node(id),
        Some(_) => {
            return Err(PlanError::Limit {
                path: "/lost+found".into(),
                what: "must be a directory (e2fsck needs it)".into(),
            })
        }
        None => Slot::LostFound,
    };
    inodes.push(InodePlan::new(lost_found));
    let others = order
        .into_iter()
        .filter(|&id| id != Tree::ROOT && Slot::Node(id) != lost_found);
    inodes.extend(others.map(|id| InodePlan::new(Slot::Node(id))));
    if inodes.len() > u32::MAX as usize {
        return Err(PlanError::NotEnoughInodes {
            needed: inodes.len() as u64,
            have: u64::from(u32::MAX),
        });
    }
    Ok(inodes)
}

fn ino_map(inodes: &[InodePlan]) -> Vec<u32> {
    let len = inodes
        .iter()
        .filter_map(|p| match p.slot {
            Slot::Node(id) => Some(id + 1),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let mut map = vec![0u32; len.max(1)];
    for (i, p) in inodes.iter().enumerate() {
        if let Slot::Node(id) = p.slot {
            map[id] = i as u32 + 1;
        }
    }
    map
}

/// Checks one inode against the format's limits and works out its links,
/// logical blocks and xattr placement.
fn prepare_inode(
    tree: &Tree,
    opts: &BuildOptions,
    dir_format: &DirFormat,
    inodes: &mut [InodePlan],
    ino_of: &[u32],
    ino: u32,
) -> Result<(), PlanError> {
    let bs = opts.block_size;
    let idx = (ino - 1) as usize;
    match inodes[idx].slot {
        Slot::Empty | Slot::Resize | Slot::Journal => Ok(()),
        Slot::LostFound => {
            inodes[idx].links = 2;
            inodes[idx].parent = ROOT_INO;
            let blocks = lost_found_blocks(
                bs,
                dir_shape(dir_format, tree, None, ino, String::new)?.blocks,
            );
            inodes[idx].logical = vec![0..blocks];
            Ok(())
        }
        Slot::Node(id) => {
            let node = tree.node(id);
            let path = || node_path(tree, id);
            let p = &mut inodes[idx];
            let ibody_space = ibody_space(opts.inode_size);
            let inline_ok = opts.features.has(features::INLINE_DATA) && ibody_space > 0;
            match &node.body {
                // The kernel refuses a root directory without blocks, and
                // lost+found must have blocks ready: neither is inline.
                Body::Dir(_)
                    if inline_ok
                        && ino != ROOT_INO
                        && ino != LOST_FOUND_INO
                        && inline_dir_fits(tree, id, ibody_space) =>
                {
                    let (_, spill) = inline::dir_split(dir_children(tree, id).map(<[u8]>::len));
                    p.inline = Some(spill as u32);
                }
                Body::File(f) if inline_ok && inline::file_fits(f.size, ibody_space) => {
                    p.inline = Some(f.size.saturating_sub(inline::I_BLOCK_BYTES as u64) as u32);
                }
                Body::Dir(_) => {
                    let shape = dir_shape(dir_format, tree, Some(id), ino, path)?;
                    p.indexed = shape.indexed;
                    let mut blocks = shape.blocks;
                    if ino == LOST_FOUND_INO {
                        blocks = lost_found_blocks(bs, blocks);
                    }
                    if u64::from(blocks) > blockmap::max_blocks(bs) {
                        return Err(limit(path(), "directory too large for a block map"));
                    }
                    p.logical = vec![0..blocks];
                }
                Body::File(f) => {
                    let max = max_file_size(bs, &opts.features);
                    if f.size > max {
                        return Err(limit(
                            path(),
                            format!(
                                "file of {} bytes is larger than the {max} bytes these features allow with {bs}-byte blocks ({}); use a larger block size or ext4",
                                f.size,
                                opts.features.names(),
                            ),
                        ));
                    }
                    p.logical = logical_ranges(&f.data(), f.size, bs);
                }
                Body::Symlink(target) => {
                    if target.is_empty()
                        || target.len() > SYMLINK_MAX
                        || target.len() >= bs as usize
                    {
                        return Err(limit(
                            path(),
                            format!(
                                "symlink target of {} bytes (must be 1 to {} bytes with {} blocks)",
                                target.len(),
                                SYMLINK_MAX.min(bs as usize - 1),
                                bs
                            ),
                        ));
                    }
                    if target.len() > FAST_SYMLINK_MAX {
                        p.logical = vec![0..1];
                    }
                }
                _ => {}
            }
            for (name, _) in node.entries() {
                if name.len() > NAME_MAX {
                    return Err(limit(
                        format!(
                            "{}/{}",
                            path().trim_end_matches('/'),
                            String::from_utf8_lossy(name)
                        ),
                        format!("name of {} bytes (at most {NAME_MAX})", name.len()),
                    ));
                }
            }
            if !node.meta.xattrs.is_empty() && !opts.features.has(features::EXT_ATTR) {
                return Err(limit(path(), "has extended attributes but ext_attr is off"));
            }
            let prepared = xattr::prepare(&node.meta.xattrs).map_err(|e| limit(path(), e))?;
            let reserved = p.inline.map_or(0, |spill| {
                xattr::entry_cost(xattr::SYSTEM_DATA_NAME.len(), spill as usize)
            });
            let (ibody, block) = xattr::split(prepared, ibody_space, reserved, bs as usize)
                .ok_or_else(|| {
                    limit(
                        path(),
                        format!("extended attributes do not fit in one {bs}-byte block"),
                    )
                })?;
            if !ibody.is_empty() || !block.is_empty() {
                p.xattrs = Some(Box::new(XattrPlan {
                    ibody,
                    block,
                    block_addr: 0,
                }));
            }
            count_links(
                tree,
                inodes,
                ino_of,
                id,
                ino,
                opts.features.has(features::DIR_NLINK),
            )
        }
    }
}

/// Adds the links of node `id` (at inode `ino`) to itself and its children.
fn count_links(
    tree: &Tree,
    inodes: &mut [InodePlan],
    ino_of: &[u32],
    id: NodeId,
    ino: u32,
    dir_nlink: bool,
) -> Result<(), PlanError> {
    let node = tree.node(id);
    if !node.is_dir() {
        return Ok(());
    }
    let idx = (ino - 1) as usize;
    // "." and the entry in the parent (the root's ".." is itself).
    inodes[idx].links += 2;
    if id == Tree::ROOT {
        inodes[idx].parent = ROOT_INO;
        if adds_lost_found(tree) {
            inodes[idx].links += 1;
        }
    }
    for (_, child) in node.entries() {
        let c = (ino_of[child] - 1) as usize;
        if tree.node(child).is_dir() {
            inodes[idx].links += 1;
            inodes[c].parent = ino;
        } else {
            inodes[c].links += 1;
            if inodes[c].links > LINK_MAX {
                return Err(limit(
                    node_path(tree, child),
                    format!("more than {LINK_MAX} hard links"),
                ));
            }
        }
    }
    // With dir_nlink a directory past the limit records 1 ("not counted").
    if inodes[idx].links > LINK_MAX && !dir_nlink {
        return Err(limit(
            node_path(tree, id),
            format!(
                "more than {} subdirectories (needs dir_nlink)",
                LINK_MAX - 2
            ),
        ));
    }
    Ok(())
}

fn limit(path: String, what: impl Into<String>) -> PlanError {
    PlanError::Limit {
        path,
        what: what.into(),
    }
}

/// The image path of node `id` (for messages only: a linear search).
fn node_path(tree: &Tree, id: NodeId) -> String {
    fn find(tree: &Tree, dir: NodeId, id: NodeId, prefix: &mut Vec<u8>) -> bool {
        for (name, child) in tree.node(dir).entries() {
            let len = prefix.len();
            prefix.push(b'/');
            prefix.extend_from_slice(name);
            if child == id || (tree.node(child).is_dir() && find(tree, child, id, prefix)) {
                return true;
            }
            prefix.truncate(len);
        }
        false
    }
    let mut path = Vec::new();
    if id == Tree::ROOT || !find(tree, Tree::ROOT, id, &mut path) {
        return "/".into();
    }
    String::from_utf8_lossy(&path).into_owned()
}

/// Bytes of the in-inode xattr area (after the fixed fields).
pub(crate) fn ibody_space(inode_size: u16) -> usize {
    usize::from(inode_size.saturating_sub(GOOD_OLD_INODE_SIZE + EXTRA_ISIZE))
}

/// Whether kiln adds lost+found (the tree has none at its root).
pub(crate) fn adds_lost_found(tree: &Tree) -> bool {
    tree.lookup(Tree::ROOT, LOST_FOUND).is_none()
}

/// The names directory `id` holds besides "." and "..": lost+found where
/// kiln adds it to the root, then the tree's entries.
pub(crate) fn dir_children(tree: &Tree, id: NodeId) -> impl Iterator<Item = &[u8]> + Clone {
    let added = (id == Tree::ROOT && adds_lost_found(tree)).then_some(LOST_FOUND);
    added
        .into_iter()
        .chain(tree.node(id).entries().map(|(name, _)| name))
}

/// Whether directory `id`'s entries fit inline in an inode with
/// `ibody_space` bytes of xattr space.
fn inline_dir_fits(tree: &Tree, id: NodeId, ibody_space: usize) -> bool {
    let (_, spill) = inline::dir_split(dir_children(tree, id).map(<[u8]>::len));
    spill <= inline::max_spill(ibody_space)
}

/// The shape of directory inode `ino` (`id` its tree node, `None` for the
/// lost+found kiln makes, which is never indexed, like mke2fs's).
fn dir_shape(
    fmt: &DirFormat,
    tree: &Tree,
    id: Option<NodeId>,
    ino: u32,
    path: impl Fn() -> String,
) -> Result<DirShape, PlanError> {
    let allow_index = ino != LOST_FOUND_INO;
    let shape = match id {
        Some(id) => fmt.shape(dir_children(tree, id), allow_index),
        None => fmt.shape(std::iter::empty(), false),
    };
    shape.map_err(|e| limit(path(), e.to_string()))
}

/// How directories are written, from the options.
fn dir_format(opts: &BuildOptions) -> DirFormat {
    let f = &opts.features;
    let seed = std::array::from_fn(|i| {
        u32::from_le_bytes(
            opts.hash_seed[4 * i..4 * i + 4]
                .try_into()
                .unwrap_or_default(),
        )
    });
    DirFormat {
        block_size: opts.block_size,
        csum_seed: f
            .has(features::METADATA_CSUM)
            .then(|| checksum::fs_seed(&opts.uuid)),
        htree: f.has(features::DIR_INDEX).then_some(HtreeParams {
            hash_version: opts.hash_alg.version(),
            unsigned: false,
            seed,
            large_dir: f.has(features::LARGE_DIR),
        }),
        filetype: f.has(features::FILETYPE),
    }
}

/// lost+found is at least 16 KiB and 2 blocks, within the direct blocks.
fn lost_found_blocks(bs: u32, entries_need: u32) -> u32 {
    let min = (LOST_FOUND_MIN_BYTES / u64::from(bs))
        .max(2)
        .min(u64::from(N_DIRECT)) as u32;
    entries_need.max(min)
}

/// The largest file a block map holds (as the kernel computes it without
/// huge_file): the addressable blocks, and `i_blocks` counting 512-byte
/// sectors in 32 bits, less the index blocks.
pub(crate) fn max_file_size(bs: u32, features: &Features) -> u64 {
    if !features.has(features::LARGE_FILE) {
        return (1 << 31) - 1;
    }
    let a = u64::from(bs / 4);
    let sectors_per_block = u64::from(bs / 512);
    let (addressable, index_blocks) = if features.has(features::EXTENT) {
        // 32-bit logical block numbers; index blocks are few, ignore them as
        // the kernel does.
        (u64::from(u32::MAX), 0)
    } else {
        (blockmap::max_blocks(bs), 1 + (1 + a) + (1 + a + a * a))
    };
    if features.has(features::HUGE_FILE) {
        return addressable * u64::from(bs);
    }
    let by_i_blocks = (u64::from(u32::MAX) / sectors_per_block).saturating_sub(index_blocks);
    addressable.min(by_i_blocks) * u64::from(bs)
}

/// The logical blocks touched by the data ranges of a file, merged.
fn logical_ranges(data: &[Range<u64>], size: u64, bs: u32) -> Vec<Range<u32>> {
    let bs = u64::from(bs);
    let mut out: Vec<Range<u32>> = Vec::new();
    for r in data {
        let end = r.end.min(size);
        if r.start >= end {
            continue;
        }
        let (first, last) = ((r.start / bs) as u32, end.div_ceil(bs) as u32);
        match out.last_mut() {
            Some(prev) if prev.end >= first => prev.end = prev.end.max(last),
            _ => out.push(first..last),
        }
    }
    out
}

impl Plan<'_> {
    /// Hands out blocks: resize inode, then every inode in number order.
    fn allocate(&mut self) -> Result<(), PlanError> {
        let geo = &self.geometry;
        let mut cursor = Cursor::new(geo);
        if self.features().has(features::RESIZE_INODE) {
            self.resize_dind = cursor.next();
        }
        if self.journal_blocks > 0 {
            self.inodes[(JOURNAL_INO - 1) as usize].logical = vec![0..self.journal_blocks];
        }
        for p in &mut self.inodes {
            let extents = p.uses_extents(&self.opts.features);
            p.mapping = Mapping::allocate(&p.logical, geo.block_size, extents, &mut cursor);
            // The mapping has it all now; a vector per inode less to keep.
            p.logical = Vec::new();
            if let Some(x) = p.xattrs.as_mut().filter(|x| !x.block.is_empty()) {
                x.block_addr = cursor.next();
            }
        }
        if cursor.overflow {
            return Err(PlanError::TooSmall {
                needed: None,
                have: self.image_size,
                inodes: None,
            });
        }
        self.cursor = cursor.position();
        Ok(())
    }

    /// Number of the last used inode.
    pub(crate) fn last_ino(&self) -> u32 {
        self.inodes.len() as u32
    }

    /// The plan of inode `ino`.
    pub(crate) fn inode(&self, ino: u32) -> &InodePlan {
        &self.inodes[(ino - 1) as usize]
    }

    /// Is inode `ino` a directory?
    pub(crate) fn is_dir(&self, ino: u32) -> bool {
        match self.inode(ino).slot {
            Slot::Node(id) => self.tree.node(id).is_dir(),
            Slot::LostFound => true,
            _ => false,
        }
    }

    /// Blocks used in group `g` (metadata plus the allocated prefix).
    pub(crate) fn used_blocks(&self, g: u32) -> u32 {
        self.used_ranges(g).map(|r| r.end - r.start).sum()
    }

    /// The used blocks of group `g`, relative to its start: everything below
    /// the cursor (allocated or metadata), then the metadata above it.
    pub(crate) fn used_ranges(&self, g: u32) -> impl Iterator<Item = Range<u32>> + '_ {
        let geo = &self.geometry;
        let (start, end) = (geo.group_start(g), geo.group_end(g));
        let below = self.cursor.clamp(start, end);
        let prefix = (below > start).then_some(0..(below - start) as u32);
        let above = geo
            .metadata_in(below..end)
            .map(move |r| (r.start - start) as u32..(r.end - start) as u32);
        prefix.into_iter().chain(above)
    }

    /// Inodes used in group `g` (a prefix of the group's inodes).
    pub(crate) fn used_inodes(&self, g: u32) -> u32 {
        let ipg = self.geometry.inodes_per_group;
        self.last_ino().saturating_sub(g * ipg).min(ipg)
    }

    /// Free blocks and free inodes of the finished image (what its
    /// superblock says).
    pub fn free_counts(&self) -> (u64, u64) {
        let geo = &self.geometry;
        let blocks = (0..geo.groups)
            .map(|g| geo.group_blocks(g) - self.used_blocks(g))
            .map(u64::from)
            .sum();
        let inodes = u64::from(geo.inodes_count()) - u64::from(self.last_ino());
        (blocks, inodes)
    }

    /// A warning when the finished image has almost no room left: under
    /// 1 % of its blocks or of its inodes free (`--size auto` without
    /// `--free` is the smallest image that holds the tree, full by design).
    pub fn low_room(&self) -> Option<String> {
        let geo = &self.geometry;
        let (free_blocks, free_inodes) = self.free_counts();
        let (blocks, inodes) = (geo.blocks_count, u64::from(geo.inodes_count()));
        let low = |free: u64, all: u64| free * 100 < all;
        (low(free_blocks, blocks) || low(free_inodes, inodes)).then(|| {
            format!(
                "the filesystem is almost full: {free_blocks} of {blocks} blocks and \
                 {free_inodes} of {inodes} inodes free; give room with --free \
                 (and --free-inodes) or a larger --size"
            )
        })
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
    use super::*;
    use kiln_tree::Node;

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
        kiln_tree::Metadata {
            perm: 0o755,
            uid: 0,
            gid: 0,
            atime: Default::default(),
            mtime: Default::default(),
            ctime: Default::default(),
            crtime: None,
            xattrs: Default::default(),
        }
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
    fn lost_found_sizes() {
        assert_eq!(lost_found_blocks(4096, 1), 4);
        assert_eq!(lost_found_blocks(2048, 1), 8);
        assert_eq!(lost_found_blocks(1024, 1), 12);
    }
}
