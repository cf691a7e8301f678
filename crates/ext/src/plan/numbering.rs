//! Inode numbers: the reserved ones, root, lost+found, the orphan file,
//! then the tree in breadth-first order of sorted names; and the links each
//! inode gets.

use kiln_tree::{NodeId, Tree};

use super::limits::limit;
use super::{Kept, Slot, LOST_FOUND};
use crate::layout::{FIRST_INO, JOURNAL_INO, LINK_MAX, RESIZE_INO, ROOT_INO};
use crate::PlanError;

/// Assigns inode numbers: reserved ones, root, lost+found, the orphan file
/// (with `orphan_file`: inode 12, as mke2fs makes it), then the tree in
/// breadth-first order. Returns the plans of inodes 1..=last.
pub(super) fn number_inodes(tree: &Tree, orphan_file: bool) -> Result<Vec<Kept>, PlanError> {
    let order = tree.reachable();
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
    let reserved = (1..FIRST_INO).map(|ino| match ino {
        ROOT_INO => Slot::Node(Tree::ROOT),
        RESIZE_INO => Slot::Resize,
        JOURNAL_INO => Slot::Journal,
        _ => Slot::Empty,
    });
    let orphan = orphan_file.then_some(Slot::OrphanFile);
    let others = order
        .iter()
        .filter(|&&id| id != Tree::ROOT && Slot::Node(id) != lost_found)
        .map(|&id| Slot::Node(id));
    let needed = FIRST_INO as usize + order.len();
    let too_many = || PlanError::NotEnoughInodes {
        needed: needed as u64,
        have: u64::from(u32::MAX),
    };
    if needed > u32::MAX as usize {
        return Err(too_many());
    }
    // Sized once: grown by doubling, this vector was the largest part of a
    // build's memory.
    let mut inodes = Vec::with_capacity(needed);
    let slots = reserved.chain([lost_found]).chain(orphan).chain(others);
    for slot in slots {
        inodes.push(Kept::new(slot).ok_or_else(too_many)?);
    }
    Ok(inodes)
}

/// The inode number of each tree node (0 where unreachable).
pub(super) fn ino_map(inodes: &[Kept]) -> Vec<u32> {
    let len = inodes
        .iter()
        .filter_map(|p| match p.slot() {
            Slot::Node(id) => Some(id + 1),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let mut map = vec![0u32; len.max(1)];
    for (i, p) in inodes.iter().enumerate() {
        if let Slot::Node(id) = p.slot() {
            map[id] = i as u32 + 1;
        }
    }
    map
}

/// Adds the links of node `id` (at inode `ino`) to itself and its children.
pub(super) fn count_links(
    tree: &Tree,
    inodes: &mut [Kept],
    parents: &mut Vec<(u32, u32)>,
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
    inodes[idx].add_links(2);
    if id == Tree::ROOT {
        parents.push((ino, ROOT_INO));
        if adds_lost_found(tree) {
            inodes[idx].add_links(1);
        }
    }
    for (_, child) in node.entries() {
        let c = (ino_of[child] - 1) as usize;
        if tree.node(child).is_dir() {
            inodes[idx].add_links(1);
            parents.push((ino_of[child], ino));
        } else {
            inodes[c].add_links(1);
            if inodes[c].links() > LINK_MAX {
                return Err(limit(
                    node_path(tree, child),
                    format!("more than {LINK_MAX} hard links"),
                ));
            }
        }
    }
    // With dir_nlink a directory past the limit records 1 ("not counted").
    if inodes[idx].links() > LINK_MAX && !dir_nlink {
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

/// The image path of node `id` (for messages only: a linear search).
pub(super) fn node_path(tree: &Tree, id: NodeId) -> String {
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
