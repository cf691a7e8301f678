//! An ext2/3/4 image as a source: its tree read into a [`Tree`] like a
//! directory's, and its files read when the new image is written.
//!
//! Every entry becomes a node with all its metadata (owner, mode, the four
//! times with nanoseconds, xattrs and ACLs), hard links stay links, holes
//! and uninitialised extents stay holes; the root's lost+found is left out
//! (the new image makes its own). A file's data is not copied: the tree
//! names it by inode number ([`DataSource::Image`]), and [`ImageSource`]
//! opens it through the reader again at emit time, after checking that the
//! image has not changed since.
//!
//! The image is untrusted, and everything the reader refuses is refused
//! here (see [`ImageReader`]); besides, a directory reached twice, a tree
//! nested deeper than the walk allows, and a file linked from two places
//! with a link count of one are corrupt, so the tree holds no more nodes
//! than the image has directory entries and no file is stored twice.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kiln_tree::{
    escape, Body, DataError, DataSource, FileData, ImageFile, ImageFiles, Metadata, Node, NodeId,
    SourceImage, Times, Timestamp, Tree, Unchanged, Xattr,
};

use crate::error::ReadError;
use crate::inode::{mode, InodeView};
use crate::layout::ROOT_INO;
use crate::plan::LOST_FOUND;
use crate::reader::{FileMap, ImageReader, MAX_DEPTH};
use crate::xattr::XattrPair;

/// Why an image's tree could not be read: what the reader found, and where.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct SourceError {
    /// The path inside the image (escaped for display).
    pub path: String,
    /// What the reader found.
    #[source]
    pub source: ReadError,
}

/// An ext2/3/4 image whose tree is a source: the reader, shared by the tree
/// it was read into (its files name it) and opened again for each file
/// when the new image is written.
#[derive(Debug)]
pub struct ImageSource {
    reader: ImageReader,
    /// The image as messages name it (`disk.img:2`).
    origin: PathBuf,
    /// The image file's size and modification time when the tree was read:
    /// its files' bytes are read later, from an image that must not have
    /// changed.
    stamp: Unchanged,
}

impl ImageSource {
    /// The image `reader` reads, named `origin` in messages. Refuses an
    /// image whose metadata is not its tree ([`SuperblockView::unsettled`](crate::SuperblockView::unsettled))
    /// or that the reader would misread ([`ImageReader::refuse_unreadable`]).
    pub fn new(reader: ImageReader, origin: PathBuf) -> Result<ImageSource, ReadError> {
        reader.refuse_unreadable()?;
        let unknown = reader.superblock().features.unknown();
        if !unknown.is_empty() {
            // Read-only compatible ones could be read, but what they mean
            // would be lost without a word: refused as well.
            return Err(ReadError::Unsupported {
                features: unknown.join(" "),
            });
        }
        if let Some(why) = reader.superblock().unsettled() {
            return Err(ReadError::Unsettled { why });
        }
        let stamp = Unchanged::of(&reader.file)?;
        Ok(ImageSource {
            reader,
            origin,
            stamp,
        })
    }

    /// Reads the image's tree: every entry under the root but lost+found,
    /// with its metadata; `entries` (if given) counts them as they are read.
    /// Also returns what of the image the tree does not keep.
    pub fn read_tree(self, entries: Option<&AtomicU64>) -> Result<(Tree, Unkept), SourceError> {
        let source = Arc::new(self);
        let at_root = |source| SourceError {
            path: "/".into(),
            source,
        };
        let (root, xattrs) = source.reader.inode_and_xattrs(ROOT_INO).map_err(at_root)?;
        if root.kind() != mode::S_IFDIR {
            return Err(at_root(ReadError::CorruptInode {
                ino: ROOT_INO,
                what: "the root is not a directory".into(),
            }));
        }
        let mut read = TreeRead {
            tree: Tree::new(metadata(&root, xattrs)),
            image: SourceImage(Arc::clone(&source) as Arc<dyn ImageFiles>),
            source: &source,
            dirs: HashSet::from([ROOT_INO]),
            linked: HashMap::new(),
            single: HashSet::new(),
            entries,
            unkept: Unkept::default(),
        };
        read.unkept.note(root.flags, || b"/".to_vec());
        let mut pending = vec![(ROOT_INO, Tree::ROOT, b"/".to_vec(), 0)];
        while let Some((ino, node, path, depth)) = pending.pop() {
            read.dir(ino, node, &path, depth, &mut pending)?;
        }
        let mut tree = read.tree;
        tree.finish();
        Ok((tree, read.unkept))
    }
}

impl ImageFiles for ImageSource {
    fn origin(&self) -> &Path {
        &self.origin
    }

    fn open_file(&self, ino: u32) -> Result<Box<dyn ImageFile + '_>, DataError> {
        self.stamp.check(&self.reader.file, "source image")?;
        let corrupt = |e: ReadError| DataError::Corrupt(format!("inode {ino} of the image: {e}"));
        let inode = self.reader.inode(ino).map_err(corrupt)?;
        let map = self.reader.file_map(ino, &inode).map_err(corrupt)?;
        Ok(Box::new(OpenFile {
            reader: &self.reader,
            ino,
            map,
        }))
    }
}

/// A regular file of a source image, its map read.
#[derive(Debug)]
struct OpenFile<'a> {
    reader: &'a ImageReader,
    ino: u32,
    map: FileMap,
}

impl ImageFile for OpenFile<'_> {
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> Result<(), DataError> {
        self.reader
            .read_file(&self.map, pos, buf)
            .map_err(|e| DataError::Corrupt(format!("inode {} of the image: {e}", self.ino)))
    }

    fn backing(&self, pos: u64, len: u64) -> Option<(&File, u64, u64)> {
        let FileMap::Blocks { runs, .. } = &self.map else {
            return None;
        };
        let bs = u64::from(self.reader.superblock().block_size);
        let run = runs
            .iter()
            .find(|r| r.lblk * bs <= pos && pos < (r.lblk + r.len) * bs)
            .filter(|r| !r.uninit)?;
        let at = (run.pblk * bs).checked_add(pos - run.lblk * bs)?;
        let held = ((run.lblk + run.len) * bs - pos).min(len);
        Some((&self.reader.file, self.reader.base.checked_add(at)?, held))
    }
}

/// A tree being read from an image.
struct TreeRead<'a> {
    tree: Tree,
    /// The image, as the tree's files name it.
    image: SourceImage,
    source: &'a ImageSource,
    /// The directories reached so far: one reached twice is corrupt.
    dirs: HashSet<u32>,
    /// Non-directories with more than one link, by inode: their node.
    linked: HashMap<u32, NodeId>,
    /// Non-directories with one link reached so far.
    single: HashSet<u32>,
    entries: Option<&'a AtomicU64>,
    unkept: Unkept,
}

/// The inode flags (`chattr` attributes) that a tree, and so the new
/// image, does not keep, with the names lsattr gives them.
const UNKEPT_FLAGS: [(u32, &str); 12] = [
    (0x1, "secure deletion"),
    (0x2, "undeletable"),
    (0x8, "synchronous updates"),
    (0x10, "immutable"),
    (0x20, "append only"),
    (0x40, "no dump"),
    (0x80, "no atime updates"),
    (0x4000, "data journalling"),
    (0x1_0000, "synchronous directory updates"),
    (0x10_0000, "verity"),
    (0x2000_0000, "project hierarchy"),
    (0x4000_0000, "casefold"),
];

/// What an image source held that its tree does not keep: inode flags
/// (immutable, append only, ...) by name, and the entries that had them.
#[derive(Debug, Default)]
pub struct Unkept {
    /// The flags' names.
    pub flags: BTreeSet<&'static str>,
    /// How many entries had any.
    pub entries: u64,
    /// The first few of their paths (escaped).
    pub paths: Vec<String>,
}

impl Unkept {
    /// How many paths are kept to name.
    const SHOWN: usize = 3;

    /// Notes the flags `flags` of the entry at `path` (made only if
    /// named), if any is unkept.
    fn note(&mut self, flags: u32, path: impl FnOnce() -> Vec<u8>) {
        // Empty for most entries, which allocates nothing.
        let names: Vec<&str> = UNKEPT_FLAGS
            .iter()
            .filter(|(bit, _)| flags & bit != 0)
            .map(|(_, name)| *name)
            .collect();
        if names.is_empty() {
            return;
        }
        self.flags.extend(names);
        self.entries += 1;
        if self.paths.len() < Self::SHOWN {
            self.paths.push(escape(&path()));
        }
    }
}

impl TreeRead<'_> {
    /// Reads the entries of directory `ino` (at `path`, node `node`) into
    /// the tree, and queues its subdirectories.
    fn dir(
        &mut self,
        ino: u32,
        node: NodeId,
        path: &[u8],
        depth: usize,
        pending: &mut Vec<(u32, NodeId, Vec<u8>, usize)>,
    ) -> Result<(), SourceError> {
        let reader = &self.source.reader;
        let mut list = reader.read_dir(ino).map_err(at(path))?;
        // In name order: each insert then appends (no index kept).
        list.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        for entry in list {
            if ino == ROOT_INO && entry.name == LOST_FOUND {
                continue;
            }
            let (child, is_dir, flags) =
                self.entry(entry.ino, depth).map_err(|source| SourceError {
                    path: escape(&join(path, &entry.name)),
                    source,
                })?;
            self.unkept.note(flags, || join(path, &entry.name));
            self.tree.link(node, &entry.name, child);
            if is_dir {
                pending.push((entry.ino, child, join(path, &entry.name), depth + 1));
            }
            if let Some(counter) = self.entries {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// The node of inode `ino`, reached `depth` directories below the
    /// root: a new one, or the node of a hard link already read (its
    /// flags 0: noted at its first name); whether it is a directory to
    /// read; and its inode flags.
    fn entry(&mut self, ino: u32, depth: usize) -> Result<(NodeId, bool, u32), ReadError> {
        if let Some(&node) = self.linked.get(&ino) {
            return Ok((node, false, 0));
        }
        let corrupt = |what: String| ReadError::CorruptInode { ino, what };
        let (inode, xattrs) = self.source.reader.inode_and_xattrs(ino)?;
        let is_dir = inode.kind() == mode::S_IFDIR;
        if is_dir {
            if !self.dirs.insert(ino) {
                return Err(corrupt("directory reached twice".into()));
            }
            if depth >= MAX_DEPTH {
                return Err(corrupt(format!(
                    "directories nest deeper than {MAX_DEPTH} levels"
                )));
            }
        } else if inode.links <= 1 && !self.single.insert(ino) {
            return Err(corrupt(
                "linked from two directory entries, with a link count of 1".into(),
            ));
        }
        let node = self.tree.add(Node {
            body: self.body(ino, &inode)?,
            meta: metadata(&inode, xattrs),
        });
        if inode.links > 1 && !is_dir {
            self.linked.insert(ino, node);
        }
        Ok((node, is_dir, inode.flags))
    }

    /// What inode `ino` holds, by its type.
    fn body(&self, ino: u32, inode: &InodeView) -> Result<Body, ReadError> {
        let reader = &self.source.reader;
        Ok(match inode.kind() {
            mode::S_IFDIR => Body::Dir(Box::default()),
            mode::S_IFREG => {
                let map = reader.file_map(ino, inode)?;
                let bs = reader.superblock().block_size;
                let source = DataSource::Image(self.image.clone(), ino);
                Body::File(FileData::new(
                    source,
                    inode.size,
                    map.data_ranges(inode.size, bs),
                ))
            }
            mode::S_IFLNK => Body::Symlink(reader.read_link(ino, inode)?),
            mode::S_IFCHR | mode::S_IFBLK => {
                // OK: device() is Some for both kinds.
                let (major, minor) = inode.device().expect("a device number");
                if inode.kind() == mode::S_IFCHR {
                    Body::CharDevice(major, minor)
                } else {
                    Body::BlockDevice(major, minor)
                }
            }
            mode::S_IFIFO => Body::Fifo,
            mode::S_IFSOCK => Body::Socket,
            kind => {
                return Err(ReadError::CorruptInode {
                    ino,
                    what: format!("unknown file type {kind:#o}"),
                })
            }
        })
    }
}

/// The tree metadata of `inode` with its xattrs, sorted by name as a
/// directory source's are (the image keeps in-inode ones first). A
/// creation time of 0 is what a writer stores for one it did not know
/// (kiln for a tar member, for one): unknown again here, which writes the
/// same bytes and keeps the node's metadata small.
fn metadata(inode: &InodeView, mut xattrs: Vec<XattrPair>) -> Metadata {
    let times = Times {
        atime: inode.atime,
        mtime: inode.mtime,
        ctime: inode.ctime,
        crtime: inode.crtime.filter(|t| *t != Timestamp::default()),
    };
    let mut meta = Metadata::new(inode.perm(), inode.uid, inode.gid, times);
    if !xattrs.is_empty() {
        xattrs.sort();
        meta.set_xattrs(xattrs.into_iter().map(Xattr::from).collect());
    }
    meta
}

/// `name` below the directory at `path` (`/` for the root).
fn join(path: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = path.to_vec();
    if !out.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

/// The [`SourceError`] of a read at `path`.
fn at(path: &[u8]) -> impl FnOnce(ReadError) -> SourceError + '_ {
    move |source| SourceError {
        path: escape(path),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kiln_tree::{Body, DataSource, FileData, Inline, Metadata, Node, Times, Tree, Xattr};

    use super::*;
    use crate::{BuildOptions, FsType};

    /// Metadata with nanosecond times, a creation time and an owner.
    fn meta(perm: u16, secs: i64) -> Metadata {
        let t = |s: i64| Timestamp {
            secs: s,
            nanos: 5_000,
        };
        let times = Times {
            atime: t(secs + 1),
            mtime: t(secs),
            ctime: t(secs + 2),
            crtime: Some(t(secs - 1)),
        };
        Metadata::new(perm, 1000, 100, times)
    }

    /// A file holding `bytes`, with data in `data`.
    fn file(bytes: Vec<u8>, data: Vec<std::ops::Range<u64>>) -> Body {
        let size = bytes.len() as u64;
        let inline = Inline::new(bytes.into(), "test".into());
        Body::File(FileData::new(
            DataSource::Bytes(Arc::new(inline)),
            size,
            data,
        ))
    }

    /// A tree with every kind of entry: a sparse file, a hard link, a slow
    /// symlink, devices, a FIFO, a socket, xattrs, nested directories.
    fn tree() -> Tree {
        let mut tree = Tree::new(meta(0o755, 1_600_000_000));
        let sub = tree.add(Node {
            meta: meta(0o700, 1_600_000_100),
            body: Body::Dir(Box::default()),
        });
        tree.link(Tree::ROOT, b"sub", sub);
        let mut sparse = vec![0u8; 3 << 20];
        sparse[..5].copy_from_slice(b"start");
        sparse[(2 << 20)..(2 << 20) + 3].copy_from_slice(b"end");
        let mut with_xattrs = meta(0o644, 1_600_000_200);
        with_xattrs.set_xattrs(
            [(b"user.b", b"2"), (b"user.a", b"1")]
                .into_iter()
                .map(|(n, v)| Xattr {
                    name: n.to_vec(),
                    value: v.to_vec(),
                })
                .collect(),
        );
        let body = file(sparse, vec![0..4096, (2 << 20)..(3 << 20)]);
        let f = tree.add(Node {
            meta: with_xattrs,
            body,
        });
        tree.link(Tree::ROOT, b"sparse", f);
        tree.link(sub, b"link-to-sparse", f);
        let others = [
            (&b"long"[..], Body::Symlink(vec![b'x'; 300])),
            (b"chr", Body::CharDevice(4, 64)),
            (b"blk", Body::BlockDevice(259, 70_000)),
            (b"fifo", Body::Fifo),
            (b"sock", Body::Socket),
            (b"empty", file(Vec::new(), Vec::new())),
        ];
        for (i, (name, body)) in others.into_iter().enumerate() {
            let id = tree.add(Node {
                meta: meta(0o640, 1_600_001_000 + i as i64),
                body,
            });
            tree.link(sub, name, id);
        }
        tree.finish();
        tree
    }

    /// Writes `tree` as an image at `path` with `opts`.
    fn write(tree: &Tree, opts: &BuildOptions, path: &Path) {
        let plan = crate::plan(tree, opts).unwrap();
        let sink = kiln_sink::SparseFile::create(path, plan.image_size, false).unwrap();
        crate::emit(&plan, &sink).unwrap();
        sink.commit(kiln_sink::Durability::Writeback).unwrap();
    }

    /// The image at `path` read as a source.
    fn read(path: &Path) -> Result<Tree, SourceError> {
        let reader = ImageReader::open(path).unwrap();
        let source = ImageSource::new(reader, path.into()).unwrap();
        Ok(source.read_tree(None)?.0)
    }

    /// Every entry of `tree` by path: metadata, kind and bytes (files read
    /// whole), and for each hard-linked node the paths naming it.
    fn listing(tree: &Tree) -> Vec<(Vec<u8>, String)> {
        let mut out = Vec::new();
        let mut pending = vec![(b"".to_vec(), Tree::ROOT)];
        while let Some((path, id)) = pending.pop() {
            let node = tree.node(id);
            let body = match &node.body {
                Body::File(f) => format!("file {:?} {:?}", f.data(), f.read_all().unwrap()),
                Body::Dir(_) => {
                    for (name, child) in node.entries() {
                        pending.push(([&path[..], b"/", name].concat(), child));
                    }
                    "dir".into()
                }
                other => format!("{other:?}"),
            };
            let mut xattrs = node.meta.xattrs().to_vec();
            xattrs.sort();
            let m = &node.meta;
            let line = format!(
                "{} {}:{} {:?} {xattrs:?} {body}",
                m.perm,
                m.uid,
                m.gid,
                m.times()
            );
            out.push((path, line));
        }
        out.sort();
        out
    }

    #[test]
    fn an_image_reads_back_as_the_tree_it_was_written_from() {
        let dir = tempfile::tempdir().unwrap();
        let tree = tree();
        for (fs_type, bs) in [
            (FsType::Ext4, 4096),
            (FsType::Ext2, 1024),
            (FsType::Ext3, 2048),
        ] {
            let mut opts = BuildOptions::new(fs_type);
            opts.block_size = bs;
            let path = dir.path().join(format!("{fs_type:?}.img"));
            write(&tree, &opts, &path);
            let back = read(&path).unwrap();
            assert_eq!(
                listing(&back),
                listing(&tree),
                "{fs_type:?}, {bs}-byte blocks"
            );
            // The hard link is one node; lost+found is left out.
            let sub = back.lookup(Tree::ROOT, b"sub").unwrap();
            assert_eq!(
                back.lookup(Tree::ROOT, b"sparse"),
                back.lookup(sub, b"link-to-sparse")
            );
            assert_eq!(back.lookup(Tree::ROOT, LOST_FOUND), None);
            // The same tree again: the same bytes.
            let again = dir.path().join(format!("{fs_type:?}-again.img"));
            write(&back, &opts, &again);
            assert!(std::fs::read(&again).unwrap() == std::fs::read(&path).unwrap());
        }
    }

    /// The byte offset of the superblock's incompat feature word, and its
    /// `s_state`.
    const INCOMPAT_AT: u64 = 1024 + 0x60;
    const STATE_AT: u64 = 1024 + 0x3A;

    #[test]
    fn an_unsettled_image_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.img");
        // No metadata_csum: the superblock's bytes can be edited as they are.
        let mut opts = BuildOptions::new(FsType::Ext3);
        opts.block_size = 1024;
        write(&tree(), &opts, &path);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let refusal = || {
            let reader = ImageReader::open(&path).unwrap();
            ImageSource::new(reader, path.clone())
                .unwrap_err()
                .to_string()
        };
        kiln_host::write_at(&file, &0u16.to_le_bytes(), STATE_AT).unwrap();
        assert!(refusal().contains("not cleanly unmounted"), "{}", refusal());
        kiln_host::write_at(&file, &2u16.to_le_bytes(), STATE_AT).unwrap();
        assert!(refusal().contains("errors recorded"), "{}", refusal());
        let mut word = [0u8; 4];
        kiln_host::read_at(&file, &mut word, INCOMPAT_AT).unwrap();
        let incompat = u32::from_le_bytes(word) | 0x4;
        kiln_host::write_at(&file, &incompat.to_le_bytes(), INCOMPAT_AT).unwrap();
        let e = refusal();
        assert!(
            e.contains("needs recovery") && e.contains("e2fsck -f"),
            "{e}"
        );
    }

    #[test]
    fn a_file_of_a_changed_image_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.img");
        write(&tree(), &BuildOptions::new(FsType::Ext4), &path);
        let back = read(&path).unwrap();
        let id = back.lookup(Tree::ROOT, b"sparse").unwrap();
        let Body::File(f) = &back.node(id).body else {
            panic!("a file")
        };
        assert!(f.read_all().is_ok());
        let len = std::fs::metadata(&path).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len + 4096).unwrap();
        let e = f.read_all().unwrap_err().to_string();
        assert!(e.contains("the source image was"), "{e}");
    }
}
