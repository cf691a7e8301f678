//! A directory's entries, packed: every name in one byte buffer, every entry
//! 16 bytes (where the name is, and the node it names).
//!
//! Sources list most directories in name order (a host directory is read
//! sorted), so entries are kept sorted and looked up by binary search. An
//! edit out of order (a tar archive in readdir order, an overlay, a removal)
//! appends instead and marks the directory unsorted: it is then searched
//! through a hash index once it is large, and sorted again by
//! [`Dir::sort`] (which `Tree::finish` runs on every directory). Iteration
//! is always in name order, so nothing downstream depends on the order of
//! edits.

use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::Arc;

use hashbrown::HashTable;

use crate::model::NodeId;

/// Unsorted directories up to this many entries are searched linearly.
const LINEAR_MAX: usize = 16;

/// One entry: bytes `start..start + len` of the names buffer, and its node.
#[derive(Clone, Copy, Debug)]
struct Entry {
    start: u64,
    len: u32,
    node: u32,
}

/// The entries of a directory: names (raw bytes, never `.` or `..`) to node
/// ids, each name once.
#[derive(Clone, Debug, Default)]
pub struct Dir {
    /// Every name added, back to back (a removed name's bytes stay until
    /// the next [`Dir::sort`]). A host directory's listing shares this
    /// buffer with the host paths of its files (one copy of each name);
    /// the first edit takes a copy of its own.
    names: Arc<Vec<u8>>,
    entries: Vec<Entry>,
    /// Entries are not in name order (an edit came out of order).
    unsorted: bool,
    /// Positions in `entries` by name hash: kept while the directory is
    /// unsorted and longer than [`LINEAR_MAX`], empty otherwise.
    index: HashTable<u32>,
}

/// A fixed hasher: the index only speeds up lookups, and a fixed one keeps
/// their cost the same from run to run.
type NameHasher = BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

fn hash(name: &[u8]) -> u64 {
    NameHasher::default().hash_one(name)
}

impl Dir {
    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if the directory has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn name(&self, e: &Entry) -> &[u8] {
        name_at(&self.names, e)
    }

    /// Where `name` is in `entries`.
    fn position(&self, name: &[u8]) -> Option<usize> {
        if !self.unsorted {
            return self
                .entries
                .binary_search_by(|e| self.name(e).cmp(name))
                .ok();
        }
        if self.entries.len() <= LINEAR_MAX {
            return self.entries.iter().position(|e| self.name(e) == name);
        }
        let entries = &self.entries;
        self.index
            .find(hash(name), |&p| self.name(&entries[p as usize]) == name)
            .map(|&p| p as usize)
    }

    /// The node named `name`.
    pub fn get(&self, name: &[u8]) -> Option<NodeId> {
        self.position(name).map(|p| self.entries[p].node as NodeId)
    }

    /// Names `node` as `name`, replacing an entry of that name.
    pub fn insert(&mut self, name: &[u8], node: NodeId) {
        let node = node_u32(node);
        if let Some(p) = self.position(name) {
            self.entries[p].node = node;
            return;
        }
        if let Some(last) = self.entries.last() {
            if self.name(last) > name {
                self.unsorted = true;
            }
        }
        let entry = Entry {
            start: self.names.len() as u64,
            len: u32::try_from(name.len()).expect("a name shorter than 4 GiB"),
            node,
        };
        Arc::make_mut(&mut self.names).extend_from_slice(name);
        self.entries.push(entry);
        self.keep_index();
    }

    /// Removes the entry `name`, if there.
    pub fn remove(&mut self, name: &[u8]) {
        let Some(p) = self.position(name) else {
            return;
        };
        if !self.index.is_empty() {
            let hashed = hash(name);
            if let Ok(slot) = self.index.find_entry(hashed, |&q| q as usize == p) {
                slot.remove();
            }
        }
        let last = self.entries.len() - 1;
        if p != last {
            // The last entry moves into the gap: out of order, but O(1) for
            // any number of removals; `sort` puts it back.
            self.unsorted = true;
            self.entries.swap(p, last);
            if !self.index.is_empty() {
                let moved = hash(self.name(&self.entries[p]));
                if let Some(q) = self.index.find_mut(moved, |&q| q as usize == last) {
                    *q = p as u32;
                }
            }
        }
        self.entries.pop();
        self.keep_index();
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        *self = Dir::default();
    }

    /// Builds the hash index where the invariant asks for it: an unsorted
    /// directory longer than [`LINEAR_MAX`].
    fn keep_index(&mut self) {
        let wanted = self.unsorted && self.entries.len() > LINEAR_MAX;
        if !wanted {
            self.index = HashTable::new();
            return;
        }
        let last = self.entries.len() - 1;
        if self.index.len() == last {
            // One entry was added since the index was complete.
            index_insert(&mut self.index, &self.names, &self.entries, last);
        } else if self.index.len() != self.entries.len() {
            let mut index = HashTable::with_capacity(self.entries.len());
            for p in 0..self.entries.len() {
                index_insert(&mut index, &self.names, &self.entries, p);
            }
            self.index = index;
        }
    }

    /// Puts the entries back in name order, drops the index and packs the
    /// names (without the bytes of removed ones), giving back spare
    /// capacity: done once a tree is complete, so iteration is a plain walk.
    pub fn sort(&mut self) {
        if self.unsorted || self.names.len() != self.live_name_bytes() {
            let mut order: Vec<Entry> = self.entries.clone();
            order.sort_unstable_by(|a, b| self.name(a).cmp(self.name(b)));
            let mut names = Vec::with_capacity(self.live_name_bytes());
            for e in &mut order {
                let start = names.len() as u64;
                names.extend_from_slice(self.name(e));
                e.start = start;
            }
            self.names = Arc::new(names);
            self.entries = order;
            self.unsorted = false;
            self.index = HashTable::new();
        }
        if let Some(names) = Arc::get_mut(&mut self.names) {
            names.shrink_to_fit();
        }
        self.entries.shrink_to_fit();
    }

    /// Takes a host directory's listing as the entries of this empty
    /// directory: `names` (shared, not copied), and for each entry the
    /// span of its name there and its node.
    pub(crate) fn adopt(&mut self, names: Arc<Vec<u8>>, entries: &[((u32, u32), NodeId)]) {
        debug_assert!(self.is_empty());
        self.names = names;
        self.entries = entries
            .iter()
            .map(|&((start, len), node)| Entry {
                start: u64::from(start),
                len,
                node: node_u32(node),
            })
            .collect();
        // Listed in name order as the host compares names, which need not
        // be byte order (Windows).
        self.unsorted = self
            .entries
            .windows(2)
            .any(|w| self.name(&w[0]) >= self.name(&w[1]));
        self.keep_index();
    }

    fn live_name_bytes(&self) -> usize {
        self.entries.iter().map(|e| e.len as usize).sum()
    }

    /// The entries in name order.
    pub fn iter(&self) -> Entries<'_> {
        let order = self.unsorted.then(|| {
            let mut order: Vec<u32> = (0..self.entries.len() as u32).collect();
            order.sort_unstable_by(|&a, &b| {
                self.name(&self.entries[a as usize])
                    .cmp(self.name(&self.entries[b as usize]))
            });
            order
        });
        Entries {
            dir: Some(self),
            order,
            next: 0,
        }
    }
}

fn name_at<'a>(names: &'a [u8], e: &Entry) -> &'a [u8] {
    &names[e.start as usize..e.start as usize + e.len as usize]
}

/// Adds position `p` of `entries` to `index` (which rehashes the positions
/// it holds by their names when it grows).
fn index_insert(index: &mut HashTable<u32>, names: &[u8], entries: &[Entry], p: usize) {
    let rehash = |&q: &u32| hash(name_at(names, &entries[q as usize]));
    index.insert_unique(hash(name_at(names, &entries[p])), p as u32, rehash);
}

/// A node id as an entry stores it.
///
/// # Panics
/// Past 2^32 nodes, which would take hundreds of GiB of memory first.
fn node_u32(node: NodeId) -> u32 {
    u32::try_from(node).expect("fewer than 2^32 nodes in a tree")
}

impl PartialEq for Dir {
    fn eq(&self, other: &Dir) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Dir {}

impl std::hash::Hash for Dir {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for (name, node) in self.iter() {
            name.hash(state);
            node.hash(state);
        }
    }
}

/// The entries of a directory in name order: `(name, node)`.
#[derive(Clone, Debug)]
pub struct Entries<'a> {
    /// `None` for a node that is not a directory.
    dir: Option<&'a Dir>,
    /// Positions in name order, for an unsorted directory.
    order: Option<Vec<u32>>,
    next: usize,
}

impl<'a> Entries<'a> {
    /// No entries (a node that is not a directory).
    pub(crate) fn none() -> Entries<'a> {
        Entries {
            dir: None,
            order: None,
            next: 0,
        }
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a [u8], NodeId);

    fn next(&mut self) -> Option<Self::Item> {
        let dir = self.dir?;
        let p = match &self.order {
            Some(order) => *order.get(self.next)? as usize,
            None => self.next,
        };
        let e = dir.entries.get(p)?;
        self.next += 1;
        Some((dir.name(e), e.node as NodeId))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn names(dir: &Dir) -> Vec<(Vec<u8>, NodeId)> {
        dir.iter().map(|(n, id)| (n.to_vec(), id)).collect()
    }

    #[test]
    fn names_added_in_order_need_no_index() {
        let mut dir = Dir::default();
        for i in 0..100u32 {
            dir.insert(format!("{i:03}").as_bytes(), i as NodeId);
        }
        assert!(!dir.unsorted && dir.index.is_empty());
        assert_eq!(dir.get(b"042"), Some(42));
        assert_eq!(dir.get(b"100"), None);
        assert_eq!(dir.entries.len(), 100);
    }

    #[test]
    fn names_out_of_order_are_indexed_then_sorted() {
        let mut dir = Dir::default();
        // 0, 37, 74, ... modulo 1000: every number once, out of order.
        for i in 0..1000u32 {
            let n = i * 37 % 1000;
            dir.insert(format!("{n:03}").as_bytes(), n as NodeId);
        }
        assert!(dir.unsorted);
        assert_eq!(dir.index.len(), 1000);
        assert_eq!(dir.get(b"999"), Some(999));
        let listed = names(&dir);
        assert!(listed.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(listed.len(), 1000);

        dir.insert(b"500", 7);
        for n in (0..1000).step_by(2) {
            dir.remove(format!("{n:03}").as_bytes());
        }
        assert_eq!(dir.get(b"500"), None);
        assert_eq!(dir.get(b"501"), Some(501));
        dir.sort();
        assert!(!dir.unsorted && dir.index.is_empty());
        assert_eq!(dir.names.len(), 500 * 3, "removed names are packed away");
        assert_eq!(
            names(&dir),
            listed
                .into_iter()
                .filter(|(_, id)| id % 2 == 1)
                .collect::<Vec<_>>()
        );
    }

    /// An edit of a directory.
    #[derive(Clone, Debug)]
    enum Edit {
        Insert(Vec<u8>, NodeId),
        Remove(Vec<u8>),
        Sort,
    }

    fn edit() -> impl Strategy<Value = Edit> {
        // Few distinct names, so edits meet earlier ones.
        let name = proptest::collection::vec(b'a'..b'e', 0..4);
        prop_oneof![
            6 => (name.clone(), 0..1000usize).prop_map(|(n, id)| Edit::Insert(n, id)),
            3 => name.prop_map(Edit::Remove),
            1 => Just(Edit::Sort),
        ]
    }

    proptest! {
        /// Any sequence of edits leaves what a `BTreeMap` would hold, in
        /// its order, and every name is found.
        #[test]
        fn behaves_as_a_sorted_map(edits in proptest::collection::vec(edit(), 0..200)) {
            let mut dir = Dir::default();
            let mut model = BTreeMap::new();
            for e in edits {
                match e {
                    Edit::Insert(n, id) => {
                        dir.insert(&n, id);
                        model.insert(n, id);
                    }
                    Edit::Remove(n) => {
                        dir.remove(&n);
                        model.remove(&n);
                    }
                    Edit::Sort => dir.sort(),
                }
                prop_assert_eq!(dir.len(), model.len());
            }
            for (n, &id) in &model {
                prop_assert_eq!(dir.get(n), Some(id));
            }
            let want: Vec<_> = model.into_iter().collect();
            prop_assert_eq!(names(&dir), want.clone());
            dir.sort();
            prop_assert_eq!(names(&dir), want);
        }
    }
}
