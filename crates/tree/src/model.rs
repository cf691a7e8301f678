//! The tree model: an arena of nodes, directories mapping names to node ids.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use thin_vec::ThinVec;

use crate::entries::{Dir, Entries};
use crate::{DataError, DataSource, Timestamp};

/// Index of a [`Node`] in its [`Tree`].
pub type NodeId = usize;

/// One extended attribute: full name (`user.foo`, `system.posix_acl_access`)
/// and value, the value in the host VFS encoding (ACLs as `posix_acl_xattr`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Xattr {
    /// Full attribute name including its namespace prefix.
    pub name: Vec<u8>,
    /// Raw value.
    pub value: Vec<u8>,
}

impl From<(Vec<u8>, Vec<u8>)> for Xattr {
    /// The xattr of a (full name, value) pair, as readers list them.
    fn from((name, value): (Vec<u8>, Vec<u8>)) -> Xattr {
        Xattr { name, value }
    }
}

/// A `/`-joined path as its parent's path (empty at the top) and its last
/// component.
pub fn split_parent(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&c| c == b'/') {
        Some(slash) => (&path[..slash], &path[slash + 1..]),
        None => (&[], path),
    }
}

/// A node's four times, as one value: what [`Metadata::times`] returns and
/// [`Metadata::set_times`] takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Times {
    /// Last access time.
    pub atime: Timestamp,
    /// Last modification time.
    pub mtime: Timestamp,
    /// Last status change time.
    pub ctime: Timestamp,
    /// Creation time, where the source knows it.
    pub crtime: Option<Timestamp>,
}

impl Times {
    /// Access, modification and change time all `time`, no creation time.
    pub fn at(time: Timestamp) -> Times {
        Times {
            atime: time,
            mtime: time,
            ctime: time,
            crtime: None,
        }
    }
}

/// What most entries' metadata does without: an access or change time
/// other than the modification time, a creation time, extended attributes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Extra {
    atime: Timestamp,
    ctime: Timestamp,
    crtime: Option<Timestamp>,
    xattrs: ThinVec<Xattr>,
}

impl Extra {
    /// True when this says nothing that metadata with modification time
    /// `mtime` and no `Extra` would not say.
    fn is_redundant(&self, mtime: Timestamp) -> bool {
        self.atime == mtime
            && self.ctime == mtime
            && self.crtime.is_none()
            && self.xattrs.is_empty()
    }
}

/// Metadata common to every kind of node.
///
/// 32 bytes: the access and change times, the creation time and the
/// extended attributes live in a box of their own, there only when some
/// of them say something (the access or change time is not the
/// modification time, the creation time is neither unknown nor the
/// modification time, or there is an xattr). Entries of a tar archive
/// without PAX times or xattrs, and entries without xattrs after
/// `--timestamp`, have no box: their metadata costs these 32 bytes alone.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Metadata {
    /// `None` exactly when the access and change times are the
    /// modification time, the creation time is unknown or the modification
    /// time, and there is no xattr (so the derived comparisons compare
    /// values). Its creation time is `None` when `crtime_is_mtime`.
    extra: Option<Box<Extra>>,
    mtime: Timestamp,
    /// Owner user id (32 bits).
    pub uid: u32,
    /// Owner group id (32 bits).
    pub gid: u32,
    /// The 12 permission bits (setuid, setgid, sticky, rwxrwxrwx).
    pub perm: u16,
    /// The creation time is known and is the modification time (as
    /// `--timestamp` leaves every entry): said in a byte that would be
    /// padding, so that needs no box.
    crtime_is_mtime: bool,
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let times = self.times();
        f.debug_struct("Metadata")
            .field("perm", &self.perm)
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("atime", &times.atime)
            .field("mtime", &times.mtime)
            .field("ctime", &times.ctime)
            .field("crtime", &times.crtime)
            .field("xattrs", &self.xattrs())
            .finish()
    }
}

impl Metadata {
    /// Permission bits `perm`, owner `uid:gid`, times `times`, no xattrs.
    pub fn new(perm: u16, uid: u32, gid: u32, times: Times) -> Metadata {
        let mut meta = Metadata {
            extra: None,
            mtime: times.mtime,
            uid,
            gid,
            perm,
            crtime_is_mtime: false,
        };
        meta.set_times(times);
        meta
    }

    /// Permission bits `perm`, owner `uid:gid`, every time the epoch, no
    /// xattrs: what kiln gives the entries it makes itself (implied parent
    /// directories, spec entries without times), so nothing depends on the clock.
    pub fn made(perm: u16, uid: u32, gid: u32) -> Metadata {
        Metadata::new(perm, uid, gid, Times::default())
    }

    /// All four times.
    pub fn times(&self) -> Times {
        Times {
            atime: self.atime(),
            mtime: self.mtime,
            ctime: self.ctime(),
            crtime: self.crtime(),
        }
    }

    /// Replaces all four times.
    pub fn set_times(&mut self, times: Times) {
        self.mtime = times.mtime;
        self.crtime_is_mtime = times.crtime == Some(times.mtime);
        let crtime = times.crtime.filter(|_| !self.crtime_is_mtime);
        let plain = times.atime == times.mtime && times.ctime == times.mtime && crtime.is_none();
        if self.extra.is_none() && plain {
            return;
        }
        let extra = self.extra_mut();
        extra.atime = times.atime;
        extra.ctime = times.ctime;
        extra.crtime = crtime;
        self.tidy();
    }

    /// Last access time.
    pub fn atime(&self) -> Timestamp {
        self.extra.as_ref().map_or(self.mtime, |extra| extra.atime)
    }

    /// Last modification time.
    pub fn mtime(&self) -> Timestamp {
        self.mtime
    }

    /// Last status change time.
    pub fn ctime(&self) -> Timestamp {
        self.extra.as_ref().map_or(self.mtime, |extra| extra.ctime)
    }

    /// Creation time, where the source knows it.
    pub fn crtime(&self) -> Option<Timestamp> {
        if self.crtime_is_mtime {
            return Some(self.mtime);
        }
        self.extra.as_ref().and_then(|extra| extra.crtime)
    }

    /// Extended attributes, sorted by name.
    pub fn xattrs(&self) -> &[Xattr] {
        self.extra.as_ref().map_or(&[], |extra| &extra.xattrs)
    }

    /// Replaces the extended attributes with `xattrs` (sorted by name).
    pub fn set_xattrs(&mut self, xattrs: ThinVec<Xattr>) {
        if self.extra.is_none() && xattrs.is_empty() {
            return;
        }
        self.extra_mut().xattrs = xattrs;
        self.tidy();
    }

    /// Edits the extended attributes with `edit` (which keeps them sorted
    /// by name) and returns what it returns.
    pub fn edit_xattrs<R>(&mut self, edit: impl FnOnce(&mut ThinVec<Xattr>) -> R) -> R {
        let result = edit(&mut self.extra_mut().xattrs);
        self.tidy();
        result
    }

    /// The boxed part, made (saying nothing yet) if there is none.
    fn extra_mut(&mut self) -> &mut Extra {
        let mtime = self.mtime;
        self.extra.get_or_insert_with(|| {
            Box::new(Extra {
                atime: mtime,
                ctime: mtime,
                crtime: None,
                xattrs: ThinVec::new(),
            })
        })
    }

    /// Drops the boxed part if it says nothing (keeping the invariant).
    fn tidy(&mut self) {
        if self
            .extra
            .as_ref()
            .is_some_and(|extra| extra.is_redundant(self.mtime))
        {
            self.extra = None;
        }
    }
}

/// A regular file's bytes: where they come from and where the holes are.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FileData {
    /// Where the bytes are read from when the image is written.
    pub source: DataSource,
    /// Size in bytes (the apparent size, holes included).
    pub size: u64,
    /// The byte ranges that hold data, where the file has holes; `None`
    /// when all of it is data (most files: no range list to keep).
    /// (A thin pointer, so the file's body stays 40 bytes.)
    holes: Option<ThinVec<Range<u64>>>,
}

/// True when the data ranges `data` of a file of `size` bytes are all of it
/// (no holes).
pub(crate) fn is_dense(size: u64, data: &[Range<u64>]) -> bool {
    match data {
        [] => size == 0,
        [only] => *only == (0..size),
        _ => false,
    }
}

impl FileData {
    /// A file of `size` bytes read from `source`, with data in `data`
    /// (ascending and disjoint byte ranges; the rest are holes).
    pub fn new(source: DataSource, size: u64, data: Vec<Range<u64>>) -> FileData {
        let dense = is_dense(size, &data);
        FileData {
            source,
            size,
            holes: (!dense).then(|| data.into()),
        }
    }

    /// Byte ranges that hold data, ascending and disjoint; the rest are holes.
    pub fn data(&self) -> Cow<'_, [Range<u64>]> {
        match &self.holes {
            Some(ranges) => Cow::Borrowed(ranges),
            None if self.size == 0 => Cow::Borrowed(&[]),
            None => Cow::Owned(vec![0..self.size]),
        }
    }

    /// What to name in messages: the host path, the spec line or the
    /// archive the file came from.
    pub fn origin(&self) -> PathBuf {
        self.source.origin()
    }

    /// All the file's bytes, holes read as zeros: for small files (the
    /// image writer reads in blocks instead).
    pub fn read_all(&self) -> Result<Vec<u8>, DataError> {
        let mut buf = vec![0u8; usize::try_from(self.size).map_err(std::io::Error::other)?];
        self.source.open()?.read_exact_at(&mut buf, 0)?;
        Ok(buf)
    }
}

/// What a node is, with what only that kind has.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Body {
    /// A directory: entry names (raw bytes, never `.` or `..`) to nodes.
    Dir(Box<Dir>),
    /// A regular file.
    File(FileData),
    /// A symbolic link with its target (raw bytes).
    Symlink(Vec<u8>),
    /// A character device (major, minor).
    CharDevice(u32, u32),
    /// A block device (major, minor).
    BlockDevice(u32, u32),
    /// A named pipe.
    Fifo,
    /// A Unix domain socket.
    Socket,
}

// What a node costs, held at compile time (issue 23: the tree is kept
// for the whole build, one node per inode, five million of them and more).
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(std::mem::size_of::<Metadata>() <= 32);
    assert!(std::mem::size_of::<Body>() <= 40);
    assert!(std::mem::size_of::<Node>() <= 72);
};

/// One inode of the tree: metadata plus body.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    /// Owner, mode bits, times and xattrs.
    pub meta: Metadata,
    /// Kind-specific content.
    pub body: Body,
}

impl Node {
    /// True for directories.
    pub fn is_dir(&self) -> bool {
        matches!(self.body, Body::Dir(_))
    }

    /// The entries of a directory node in name order (none for other kinds).
    pub fn entries(&self) -> Entries<'_> {
        match &self.body {
            Body::Dir(dir) => dir.iter(),
            _ => Entries::none(),
        }
    }
}

/// The name that makes a directory opaque in an OCI/overlayfs layer.
const OPAQUE: &[u8] = b".wh..wh..opq";
/// The prefix of a whiteout: `.wh.NAME` deletes NAME.
pub(crate) const WHITEOUT_PREFIX: &[u8] = b".wh.";

/// A tree being laid over another, and how to read its whiteouts.
struct Layer<'a> {
    upper: &'a Tree,
    whiteouts: bool,
}

impl Layer<'_> {
    /// For a whiteout entry, the name it deletes (empty for the opaque
    /// marker, which deletes nothing by name); `None` for ordinary entries.
    fn whiteout<'n>(&self, name: &'n [u8]) -> Option<&'n [u8]> {
        if !self.whiteouts {
            return None;
        }
        if name == OPAQUE {
            return Some(b"");
        }
        name.strip_prefix(WHITEOUT_PREFIX)
    }
}

/// A whole source tree: node 0 is the root directory.
///
/// Nodes that no directory names any more (after an overlay replaced them)
/// stay in the arena but are unreachable; consumers walk from [`Tree::ROOT`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tree {
    nodes: Vec<Node>,
    /// The DOS attributes that `attr` spec lines gave, by node: few
    /// entries have any, so they live beside the nodes, not in each.
    dos_attributes: BTreeMap<NodeId, DosAttributes>,
}

/// The DOS attributes an `attr` spec line gives an entry, for a FAT image
/// (which keeps them beside the ones it derives: directory, archive, and
/// read-only for a file its owner may not write). ext images have no place
/// for them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DosAttributes {
    /// `ATTR_READ_ONLY`.
    pub read_only: bool,
    /// `ATTR_HIDDEN`.
    pub hidden: bool,
    /// `ATTR_SYSTEM`.
    pub system: bool,
}

impl Tree {
    /// The id of the root directory.
    pub const ROOT: NodeId = 0;

    /// A tree holding only a root directory with the given metadata.
    pub fn new(root_meta: Metadata) -> Tree {
        Tree {
            nodes: vec![Node {
                meta: root_meta,
                body: Body::Dir(Box::default()),
            }],
            dos_attributes: BTreeMap::new(),
        }
    }

    /// The DOS attributes an `attr` spec line gave node `id`, if any.
    pub fn dos_attributes(&self, id: NodeId) -> Option<DosAttributes> {
        self.dos_attributes.get(&id).copied()
    }

    /// Gives node `id` the DOS attributes `attributes` (replacing earlier ones).
    pub fn set_dos_attributes(&mut self, id: NodeId, attributes: DosAttributes) {
        self.dos_attributes.insert(id, attributes);
    }

    /// Whether some entry still in the tree has DOS attributes (which only
    /// a FAT image keeps).
    pub fn has_dos_attributes(&self) -> bool {
        !self.dos_attributes.is_empty()
            && self
                .reachable()
                .iter()
                .any(|id| self.dos_attributes.contains_key(id))
    }

    /// The node with id `id`.
    ///
    /// # Panics
    /// If `id` was not returned by this tree.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// Mutable access to the node with id `id`.
    ///
    /// # Panics
    /// If `id` was not returned by this tree.
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id]
    }

    /// Adds a node that no directory names yet; see [`Tree::link`].
    pub fn add(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Readies the complete tree for planning, which keeps it through the
    /// whole build: puts every directory that edits left out of order back
    /// in name order (dropping its lookup index), packs the names and gives
    /// back the spare capacity of the arena, which grows by doubling while
    /// a source is read.
    pub fn finish(&mut self) {
        for node in &mut self.nodes {
            if let Body::Dir(dir) = &mut node.body {
                dir.sort();
            }
        }
        self.nodes.shrink_to_fit();
    }

    /// Names `child` as `name` in directory `dir`, replacing an entry of that name.
    ///
    /// # Panics
    /// If `dir` is not a directory.
    pub fn link(&mut self, dir: NodeId, name: &[u8], child: NodeId) {
        match &mut self.nodes[dir].body {
            Body::Dir(entries) => entries.insert(name, child),
            _ => panic!("link into a non-directory node"),
        }
    }

    /// Makes a host directory's listing the entries of the empty directory
    /// `dir`: the names buffer shared with the listing's host paths, and
    /// for each entry the span of its name there and its node.
    ///
    /// # Panics
    /// If `dir` is not a directory.
    pub(crate) fn adopt_listing(
        &mut self,
        dir: NodeId,
        names: Arc<Vec<u8>>,
        entries: &[((u32, u32), NodeId)],
    ) {
        match &mut self.nodes[dir].body {
            Body::Dir(dir) => dir.adopt(names, entries),
            _ => panic!("a listing for a non-directory node"),
        }
    }

    /// Looks up `name` in directory `dir`.
    pub fn lookup(&self, dir: NodeId, name: &[u8]) -> Option<NodeId> {
        match &self.nodes[dir].body {
            Body::Dir(entries) => entries.get(name),
            _ => None,
        }
    }

    /// Lays `upper` over this tree: entries of `upper` add to or replace ours;
    /// where both have a directory of the same name the two are merged and the
    /// directory takes `upper`'s metadata (and DOS attributes). Hard links
    /// within `upper` stay links.
    ///
    /// With `whiteouts` (OCI and overlayfs layers), `.wh.NAME` in `upper`
    /// deletes NAME from the layers below and `.wh..wh..opq` makes its
    /// directory opaque (nothing below shows through); neither is kept.
    pub fn overlay(&mut self, upper: &Tree, whiteouts: bool) {
        let mut imported = HashMap::new();
        self.nodes[Tree::ROOT].meta = upper.nodes[Tree::ROOT].meta.clone();
        self.take_dos_attributes(Tree::ROOT, upper, Tree::ROOT);
        let layer = Layer { upper, whiteouts };
        self.merge_dir(Tree::ROOT, &layer, Tree::ROOT, &mut imported);
    }

    /// Removes entry `name` from directory `dir`, if there.
    pub fn unlink(&mut self, dir: NodeId, name: &[u8]) {
        if let Body::Dir(entries) = &mut self.nodes[dir].body {
            entries.remove(name);
        }
    }

    fn merge_dir(
        &mut self,
        dir: NodeId,
        layer: &Layer<'_>,
        upper_dir: NodeId,
        imported: &mut HashMap<NodeId, NodeId>,
    ) {
        let upper = layer.upper;
        if layer.whiteouts && upper.lookup(upper_dir, OPAQUE).is_some() {
            if let Body::Dir(entries) = &mut self.nodes[dir].body {
                entries.clear();
            }
        }
        for (name, up_child) in upper.nodes[upper_dir].entries() {
            if let Some(target) = layer.whiteout(name) {
                self.unlink(dir, target);
                continue;
            }
            let both_dirs = self
                .lookup(dir, name)
                .filter(|&ours| self.nodes[ours].is_dir() && upper.nodes[up_child].is_dir());
            match both_dirs {
                Some(ours) => {
                    self.nodes[ours].meta = upper.nodes[up_child].meta.clone();
                    self.take_dos_attributes(ours, upper, up_child);
                    self.merge_dir(ours, layer, up_child, imported);
                }
                None => {
                    let id = self.import(layer, up_child, imported);
                    self.link(dir, name, id);
                }
            }
        }
    }

    /// Gives node `id` the DOS attributes of node `up_id` of `upper`, or
    /// none if it has none: they go with the metadata an overlay takes.
    fn take_dos_attributes(&mut self, id: NodeId, upper: &Tree, up_id: NodeId) {
        match upper.dos_attributes(up_id) {
            Some(dos) => self.dos_attributes.insert(id, dos),
            None => self.dos_attributes.remove(&id),
        };
    }

    /// Copies node `id` of `other` (and, for a directory, everything below it)
    /// into this arena, keeping hard links shared through `imported`.
    fn import(
        &mut self,
        layer: &Layer<'_>,
        id: NodeId,
        imported: &mut HashMap<NodeId, NodeId>,
    ) -> NodeId {
        let other = layer.upper;
        if let Some(&done) = imported.get(&id) {
            return done;
        }
        let node = &other.nodes[id];
        let new_id = self.add(Node {
            meta: node.meta.clone(),
            body: match &node.body {
                Body::Dir(_) => Body::Dir(Box::default()),
                body => body.clone(),
            },
        });
        imported.insert(id, new_id);
        self.take_dos_attributes(new_id, other, id);
        for (name, child) in node.entries() {
            // A whiteout has nothing below it to hide here: drop it.
            if layer.whiteout(name).is_some() {
                continue;
            }
            let c = self.import(layer, child, imported);
            self.link(new_id, name, c);
        }
        new_id
    }

    /// The number of directory entries reachable from the root (a node
    /// with several names counted once per name) and the bytes of their
    /// names.
    pub fn entries_and_name_bytes(&self) -> (usize, usize) {
        let mut entries = 0;
        let mut name_bytes = 0;
        for id in self.reachable() {
            for (name, _) in self.nodes[id].entries() {
                entries += 1;
                name_bytes += name.len();
            }
        }
        (entries, name_bytes)
    }

    /// The ids of all nodes reachable from the root, in breadth-first order of
    /// sorted names, each once (a hard-linked node at its first name).
    pub fn reachable(&self) -> Vec<NodeId> {
        let mut seen = vec![false; self.nodes.len()];
        let mut order = vec![Tree::ROOT];
        seen[Tree::ROOT] = true;
        let mut next = 0;
        while next < order.len() {
            let id = order[next];
            next += 1;
            for (_, child) in self.nodes[id].entries() {
                if !seen[child] {
                    seen[child] = true;
                    order.push(child);
                }
            }
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(perm: u16) -> Metadata {
        Metadata::made(perm, 0, 0)
    }

    fn dir(tree: &mut Tree, parent: NodeId, name: &str, perm: u16) -> NodeId {
        let id = tree.add(Node {
            meta: meta(perm),
            body: Body::Dir(Box::default()),
        });
        tree.link(parent, name.as_bytes(), id);
        id
    }

    fn file(tree: &mut Tree, parent: NodeId, name: &str, text: &str) -> NodeId {
        let id = tree.add(Node {
            meta: meta(0o644),
            body: Body::Symlink(text.as_bytes().to_vec()),
        });
        tree.link(parent, name.as_bytes(), id);
        id
    }

    #[test]
    fn overlay_merges_directories_and_replaces_files() {
        let mut base = Tree::new(meta(0o755));
        let etc = dir(&mut base, Tree::ROOT, "etc", 0o755);
        file(&mut base, etc, "fstab", "old");
        file(&mut base, etc, "passwd", "kept");

        let mut top = Tree::new(meta(0o700));
        let etc2 = dir(&mut top, Tree::ROOT, "etc", 0o750);
        let f = file(&mut top, etc2, "fstab", "new");
        top.link(etc2, b"hostname", f); // a hard link in the upper layer

        base.overlay(&top, false);
        let etc = base.lookup(Tree::ROOT, b"etc").unwrap();
        assert_eq!(base.node(etc).meta.perm, 0o750);
        assert_eq!(base.node(Tree::ROOT).meta.perm, 0o700);
        let fstab = base.lookup(etc, b"fstab").unwrap();
        assert_eq!(base.node(fstab).body, Body::Symlink(b"new".to_vec()));
        assert_eq!(base.lookup(etc, b"hostname"), Some(fstab));
        assert!(base.lookup(etc, b"passwd").is_some());
    }

    #[test]
    fn overlay_takes_the_upper_layers_dos_attributes() {
        let hidden = DosAttributes {
            hidden: true,
            ..DosAttributes::default()
        };
        let mut base = Tree::new(meta(0o755));
        let boot = dir(&mut base, Tree::ROOT, "boot", 0o755);
        base.set_dos_attributes(boot, hidden);
        let kept = file(&mut base, Tree::ROOT, "kept", "x");
        base.set_dos_attributes(kept, hidden);

        let mut top = Tree::new(meta(0o755));
        dir(&mut top, Tree::ROOT, "boot", 0o755);
        let sys = file(&mut top, Tree::ROOT, "sys", "x");
        let system = DosAttributes {
            system: true,
            ..DosAttributes::default()
        };
        top.set_dos_attributes(sys, system);

        base.overlay(&top, false);
        let dos = |name: &[u8]| base.dos_attributes(base.lookup(Tree::ROOT, name).unwrap());
        assert_eq!(
            dos(b"boot"),
            None,
            "a merged directory takes upper's (none)"
        );
        assert_eq!(dos(b"kept"), Some(hidden));
        assert_eq!(dos(b"sys"), Some(system));
    }

    #[test]
    fn whiteouts_delete_and_opaque_directories_hide() {
        let mut base = Tree::new(meta(0o755));
        let etc = dir(&mut base, Tree::ROOT, "etc", 0o755);
        file(&mut base, etc, "gone", "x");
        file(&mut base, etc, "kept", "x");
        let var = dir(&mut base, Tree::ROOT, "var", 0o755);
        file(&mut base, var, "old", "x");

        let mut top = Tree::new(meta(0o755));
        let etc2 = dir(&mut top, Tree::ROOT, "etc", 0o755);
        file(&mut top, etc2, ".wh.gone", "");
        let var2 = dir(&mut top, Tree::ROOT, "var", 0o755);
        file(&mut top, var2, ".wh..wh..opq", "");
        file(&mut top, var2, "new", "x");
        let fresh = dir(&mut top, Tree::ROOT, "fresh", 0o755);
        file(&mut top, fresh, ".wh.nothing", "");

        let mut plain = base.clone();
        plain.overlay(&top, false);
        assert!(plain
            .lookup(plain.lookup(Tree::ROOT, b"etc").unwrap(), b".wh.gone")
            .is_some());

        base.overlay(&top, true);
        let names = |t: &Tree, d: &str| -> Vec<Vec<u8>> {
            let id = t.lookup(Tree::ROOT, d.as_bytes()).unwrap();
            t.node(id).entries().map(|(n, _)| n.to_vec()).collect()
        };
        assert_eq!(names(&base, "etc"), vec![b"kept".to_vec()]);
        assert_eq!(names(&base, "var"), vec![b"new".to_vec()]);
        assert!(names(&base, "fresh").is_empty());
    }

    #[test]
    fn metadata_keeps_what_it_is_given_and_compares_by_value() {
        let t = |secs| Timestamp { secs, nanos: 3 };
        let plain = Metadata::new(0o644, 1, 2, Times::at(t(5)));
        assert!(plain.extra.is_none());
        assert_eq!(plain.times(), Times::at(t(5)));
        assert!(plain.xattrs().is_empty());

        let times = Times {
            atime: t(1),
            mtime: t(5),
            ctime: t(6),
            crtime: Some(t(0)),
        };
        let mut meta = plain.clone();
        meta.set_times(times);
        assert_eq!(meta.times(), times);
        assert_eq!(
            (meta.atime(), meta.mtime(), meta.ctime(), meta.crtime()),
            (t(1), t(5), t(6), Some(t(0)))
        );
        assert_ne!(meta, plain);
        meta.set_times(Times::at(t(5)));
        assert!(meta.extra.is_none());
        assert_eq!(meta, plain);

        // A creation time that is the modification time (as --timestamp
        // leaves it) needs no box, and moves with it.
        let born = Times {
            crtime: Some(t(5)),
            ..Times::at(t(5))
        };
        meta.set_times(born);
        assert!(meta.extra.is_none());
        assert_eq!(meta.times(), born);
        assert_ne!(meta, plain);
        meta.set_times(Times {
            crtime: Some(t(5)),
            ..Times::at(t(9))
        });
        assert_eq!(meta.crtime(), Some(t(5)));
        assert!(meta.extra.is_some());

        let x = Xattr {
            name: b"user.a".to_vec(),
            value: b"1".to_vec(),
        };
        let mut meta = plain.clone();
        meta.set_xattrs([x.clone()].into());
        assert_eq!(meta.xattrs(), std::slice::from_ref(&x));
        assert_eq!(meta.times(), Times::at(t(5)));
        meta.edit_xattrs(|xattrs| xattrs.clear());
        assert!(meta.extra.is_none());
        assert_eq!(meta, plain);
        meta.set_xattrs(ThinVec::new());
        assert!(meta.extra.is_none());
        assert_eq!(format!("{meta:?}"), format!("{plain:?}"));
    }

    #[test]
    fn a_file_with_holes_keeps_its_data_ranges() {
        let inline = crate::data::Inline::new(Arc::from(&b""[..]), PathBuf::from("spec"));
        let source = DataSource::Bytes(Arc::new(inline));
        let dense = FileData::new(source.clone(), 10, vec![0..10]);
        assert!(dense.holes.is_none());
        assert_eq!(*dense.data(), [0..10]);
        let empty = FileData::new(source.clone(), 0, vec![]);
        assert!(empty.data().is_empty());
        let hole = FileData::new(source.clone(), 10, vec![]);
        assert!(hole.data().is_empty());
        assert!(hole.holes.is_some());
        let sparse = FileData::new(source, 10, vec![2..4, 6..8]);
        assert_eq!(*sparse.data(), [2..4, 6..8]);
    }

    #[test]
    fn reachable_skips_replaced_nodes_and_lists_links_once() {
        let mut t = Tree::new(meta(0o755));
        let a = file(&mut t, Tree::ROOT, "a", "1");
        t.link(Tree::ROOT, b"b", a);
        let c = file(&mut t, Tree::ROOT, "c", "old");
        file(&mut t, Tree::ROOT, "c", "new");
        let order = t.reachable();
        assert_eq!(order.len(), 3);
        assert!(!order.contains(&c));
    }
}
