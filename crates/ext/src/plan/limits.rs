//! Each inode checked against the format's limits (names, symlink targets,
//! file sizes, directory sizes, xattrs), and what it needs worked out: its
//! logical blocks, whether its data is inline, whether its directory is
//! indexed, where its xattrs go.

use std::ops::Range;

use kiln_tree::{Body, NodeId, Tree};

use super::numbering::{count_links, dir_children, node_path};
use super::{Kept, Shape, Slot, XattrPlan};
use crate::blockmap;
use crate::dir::{DirFormat, DirShape};
use crate::features::{self, Features};
use crate::htree::HtreeParams;
use crate::layout::{
    EXTRA_ISIZE, FAST_SYMLINK_MAX, GOOD_OLD_INODE_SIZE, LOST_FOUND_INO, LOST_FOUND_MIN_BYTES,
    NAME_MAX, N_DIRECT, ROOT_INO, SYMLINK_MAX,
};
use crate::xattr;
use crate::{checksum, inline, BuildOptions, PlanError};

/// What working out an inode reads: the tree, the options and the
/// journal's size (0 until sizing has set it).
pub(crate) struct Work<'a> {
    pub(crate) tree: &'a Tree,
    pub(crate) opts: &'a BuildOptions,
    pub(crate) dir_format: &'a DirFormat,
    pub(crate) journal_blocks: u32,
}

impl Work<'_> {
    /// Checks inode `ino` against the format's limits, counts its links
    /// (and its subdirectories' parents) and works out its shape and xattrs.
    pub(super) fn prepare_inode(
        &self,
        inodes: &mut [Kept],
        parents: &mut Vec<(u32, u32)>,
        ino_of: &[u32],
        ino: u32,
    ) -> Result<(Shape, Option<Box<XattrPlan>>), PlanError> {
        let slot = inodes[(ino - 1) as usize].slot();
        let shaped = self.shape_and_xattrs(slot, ino)?;
        match slot {
            Slot::OrphanFile => inodes[(ino - 1) as usize].add_links(1),
            Slot::LostFound => {
                inodes[(ino - 1) as usize].add_links(2);
                parents.push((ino, ROOT_INO));
            }
            Slot::Node(id) => {
                check_names(self.tree, id, || node_path(self.tree, id))?;
                let dir_nlink = self.opts.features.has(features::DIR_NLINK);
                count_links(self.tree, inodes, parents, ino_of, id, ino, dir_nlink)?;
            }
            Slot::Empty | Slot::Resize | Slot::Journal => {}
        }
        Ok(shaped)
    }

    /// How inode `ino` (holding `slot`) stores its content, and where its
    /// xattrs go, refusing what the format cannot hold.
    pub(crate) fn shape_and_xattrs(
        &self,
        slot: Slot,
        ino: u32,
    ) -> Result<(Shape, Option<Box<XattrPlan>>), PlanError> {
        let bs = self.opts.block_size;
        let blocks = |n: u32| Shape {
            logical: if n > 0 { vec![0..n] } else { Vec::new() },
            ..Shape::default()
        };
        Ok(match slot {
            Slot::Empty | Slot::Resize => (Shape::default(), None),
            Slot::Journal => (blocks(self.journal_blocks), None),
            Slot::OrphanFile => {
                // Sized as mke2fs sizes it for the filesystem; an image sized
                // to its tree gets the smallest.
                let fs_blocks = self.opts.size.map_or(0, |bytes| bytes / u64::from(bs));
                (blocks(crate::orphan::default_blocks(fs_blocks)), None)
            }
            Slot::LostFound => {
                let shape = dir_shape(self.dir_format, self.tree, None, ino, String::new)?;
                (blocks(lost_found_blocks(bs, shape.blocks)), None)
            }
            Slot::Node(id) => {
                let path = || node_path(self.tree, id);
                let shape = self.shape_content(ino, id)?;
                let xattrs = place_xattrs(&shape, self.tree.node(id), self.opts, path)?;
                (shape, xattrs)
            }
        })
    }

    /// How inode `ino` (tree node `id`) stores its content: inline, or its
    /// logical blocks (a directory's, indexed or not; a file's data
    /// ranges; a slow symlink's block), refusing what the format cannot hold.
    fn shape_content(&self, ino: u32, id: NodeId) -> Result<Shape, PlanError> {
        let (tree, opts) = (self.tree, self.opts);
        let bs = opts.block_size;
        let node = tree.node(id);
        let path = || node_path(tree, id);
        let ibody_space = ibody_space(opts.inode_size);
        let inline_ok = opts.features.has(features::INLINE_DATA) && ibody_space > 0;
        let mut shape = Shape::default();
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
                shape.inline = Some(spill as u32);
            }
            Body::File(f) if inline_ok && inline::file_fits(f.size, ibody_space) => {
                shape.inline = Some(f.size.saturating_sub(inline::I_BLOCK_BYTES as u64) as u32);
            }
            Body::Dir(_) => {
                let dir = dir_shape(self.dir_format, tree, Some(id), ino, path)?;
                shape.indexed = dir.indexed;
                let mut blocks = dir.blocks;
                if ino == LOST_FOUND_INO {
                    blocks = lost_found_blocks(bs, blocks);
                }
                if u64::from(blocks) > blockmap::max_blocks(bs) {
                    return Err(limit(path(), "directory too large for a block map"));
                }
                shape.logical = vec![0..blocks];
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
                shape.logical = logical_ranges(&f.data(), f.size, bs);
            }
            Body::Symlink(target) => {
                if target.is_empty() || target.len() > SYMLINK_MAX || target.len() >= bs as usize {
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
                    shape.logical = vec![0..1];
                }
            }
            _ => {}
        }
        Ok(shape)
    }
}

/// Refuses a directory entry name longer than the format allows.
fn check_names(tree: &Tree, id: NodeId, path: impl Fn() -> String) -> Result<(), PlanError> {
    let node = tree.node(id);
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
    Ok(())
}

/// Splits the node's xattrs between the inode body and an xattr block,
/// leaving room in the body for inline data's `system.data`.
fn place_xattrs(
    shape: &Shape,
    node: &kiln_tree::Node,
    opts: &BuildOptions,
    path: impl Fn() -> String,
) -> Result<Option<Box<XattrPlan>>, PlanError> {
    let bs = opts.block_size;
    let ibody_space = ibody_space(opts.inode_size);
    if !node.meta.xattrs().is_empty() && !opts.features.has(features::EXT_ATTR) {
        return Err(limit(path(), "has extended attributes but ext_attr is off"));
    }
    let prepared = xattr::prepare(node.meta.xattrs()).map_err(|e| limit(path(), e))?;
    let reserved = shape.inline.map_or(0, |spill| {
        xattr::entry_cost(xattr::SYSTEM_DATA_NAME.len(), spill as usize)
    });
    let (ibody, block) =
        xattr::split(prepared, ibody_space, reserved, bs as usize).ok_or_else(|| {
            limit(
                path(),
                format!("extended attributes do not fit in one {bs}-byte block"),
            )
        })?;
    Ok((!ibody.is_empty() || !block.is_empty()).then(|| {
        Box::new(XattrPlan {
            ibody,
            block,
            block_addr: 0,
        })
    }))
}

/// A limit of the format that the entry at `path` breaks.
pub(super) fn limit(path: String, what: impl Into<String>) -> PlanError {
    PlanError::Limit {
        path,
        what: what.into(),
    }
}

/// Bytes of the in-inode xattr area (after the fixed fields).
pub(crate) fn ibody_space(inode_size: u16) -> usize {
    usize::from(inode_size.saturating_sub(GOOD_OLD_INODE_SIZE + EXTRA_ISIZE))
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
pub(super) fn dir_format(opts: &BuildOptions) -> DirFormat {
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
pub(super) fn lost_found_blocks(bs: u32, entries_need: u32) -> u32 {
    let min = (LOST_FOUND_MIN_BYTES / u64::from(bs))
        .max(2)
        .min(u64::from(N_DIRECT)) as u32;
    entries_need.max(min)
}

/// The largest file without large_file: `i_size` is then 31 bits.
const SMALL_FILE_MAX: u64 = (1 << 31) - 1;

/// Turns large_file on when a file the image holds (the nodes of `inodes`)
/// is 2 GiB or more.
pub(super) fn large_file_if_needed(
    tree: &Tree,
    inodes: &[Kept],
    features: &mut Features,
    notes: &mut Vec<String>,
) {
    if features.has(features::LARGE_FILE) {
        return;
    }
    let large = inodes.iter().find_map(|p| match p.slot() {
        Slot::Node(id) => match &tree.node(id).body {
            Body::File(f) if f.size > SMALL_FILE_MAX => Some((id, f.size)),
            _ => None,
        },
        _ => None,
    });
    if let Some((id, size)) = large {
        large_file_for(&node_path(tree, id), size, features, notes);
    }
}

/// Turns large_file on for `what` (a file, the resize inode, the journal)
/// of `size` bytes if it is 2 GiB or more, as mke2fs and the kernel do,
/// with a note naming it.
pub(super) fn large_file_for(
    what: &str,
    size: u64,
    features: &mut Features,
    notes: &mut Vec<String>,
) {
    if size > SMALL_FILE_MAX && !features.has(features::LARGE_FILE) {
        features.set(features::LARGE_FILE, true);
        notes.push(format!(
            "large_file turned on: {what} is 2 GiB or more (as mke2fs and the kernel do)"
        ));
    }
}

/// The largest file a block map holds (as the kernel computes it without
/// huge_file): the addressable blocks, and `i_blocks` counting 512-byte
/// sectors in 32 bits, less the index blocks.
pub(super) fn max_file_size(bs: u32, features: &Features) -> u64 {
    if !features.has(features::LARGE_FILE) {
        return SMALL_FILE_MAX;
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
pub(super) fn logical_ranges(data: &[Range<u64>], size: u64, bs: u32) -> Vec<Range<u32>> {
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
