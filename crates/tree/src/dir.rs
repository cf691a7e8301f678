//! Reads a host directory into a [`Tree`], as `cp -ax` would copy it.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use kiln_host::{HostFileType, HostMeta};
use rayon::prelude::*;
use thin_vec::ThinVec;

use crate::model::{Body, FileData, Metadata, Node, NodeId, Times, Tree, Xattr};
use crate::{DataSource, Fingerprint, HostPath, Pruning, Timestamp, TreeError};

/// Reads the directory `root` and everything below it into a [`Tree`]
/// ([`read_dir_tree_with`] with the default options: nothing left out).
pub fn read_dir_tree(root: &Path) -> Result<Tree, TreeError> {
    read_dir_tree_with(root, &WalkOptions::default()).map(|(tree, _)| tree)
}

/// How [`read_dir_tree_with`] walks a directory source.
#[derive(Clone, Copy, Debug, Default)]
pub struct WalkOptions<'a> {
    /// The entries left unread (the excluded ones).
    pub pruning: Pruning<'a>,
    /// Where the build writes its output: a walk that would list it fails.
    pub output: Option<&'a OutputPlace>,
    /// A running system's tree (`--live`): entries that vanish while it is
    /// read are left out, not an error.
    pub live: bool,
    /// A counter of the entries listed so far, for a progress display to
    /// poll: the walk adds each directory's count once it is listed (one
    /// relaxed atomic add per directory).
    pub entries: Option<&'a AtomicU64>,
}

/// Reads the directory `root` and everything below it into a [`Tree`],
/// leaving out the entries that `opts.pruning` skips (they are never
/// stat'ed, opened or listed).
///
/// Symlinks are kept as symlinks, hard links (same device and inode) become
/// one node, and like `cp -x` the walk does not descend into directories of
/// other mounted filesystems (they appear as empty directories). A directory
/// that is one of its own ancestors (same device and inode: a bind mount of
/// a directory below itself) is an error, [`TreeError::DirectoryLoop`], as
/// `cp -ax` and `find` refuse it. So is listing the directory of
/// `opts.output` with the output's name in it,
/// [`TreeError::OutputInSource`]: judged on the walk itself, an output on
/// another filesystem, or excluded, is fine. Names are
/// read in sorted order, so the result never depends on readdir order, and
/// directories are opened with `O_NOATIME` where allowed, so reading the tree
/// leaves its access times as they were. Xattrs and the data ranges of files
/// are read in parallel once the walk is done. An entry that vanishes while
/// it is read is an error naming it, unless `opts.live`: then it is left
/// out (a directory that vanishes after it was listed in its parent stays,
/// empty). Returns the tree and the paths of the entries left out so,
/// sorted, for a warning.
pub fn read_dir_tree_with(
    root: &Path,
    opts: &WalkOptions<'_>,
) -> Result<(Tree, Vec<PathBuf>), TreeError> {
    let root_meta = kiln_host::lstat(root).map_err(|e| TreeError::io(root, e))?;
    if root_meta.file_type != HostFileType::Dir {
        return Err(TreeError::NotADirectory { path: root.into() });
    }
    let mut walk = Walk {
        tree: Tree::new(metadata(&root_meta)),
        pending: vec![(Tree::ROOT, HostPath::new(root), Probe::of(&root_meta))],
        links: HashMap::new(),
        dirs: Vec::new(),
        root_dev: root_meta.dev,
        live: opts.live,
        vanished: Vec::new(),
    };
    let root_ancestry = Rc::new(Ancestry {
        key: (root_meta.dev, root_meta.ino),
        path: root.to_path_buf(),
        parent: None,
    });
    walk.dirs.push((Tree::ROOT, root_ancestry));
    while !walk.dirs.is_empty() {
        // A batch of directories is listed (with each entry's lstat) in
        // parallel, then added in batch order: the same tree whatever the
        // thread count, and at most a batch of listings in memory.
        let batch = walk
            .dirs
            .split_off(walk.dirs.len().saturating_sub(WALK_BATCH));
        for (_, dir) in &batch {
            refuse_output_dir(root, dir, opts)?;
        }
        let paths: Vec<&Path> = batch.iter().map(|(_, dir)| dir.path.as_path()).collect();
        let listings: Vec<_> = paths
            .par_iter()
            .map(|path| list(root, path, &opts.pruning))
            .collect();
        for ((dir, ancestry), listing) in batch.iter().zip(listings) {
            let entries = match listing {
                Err(e) if walk.skips(&e) => {
                    walk.vanished.push(ancestry.path.clone());
                    Vec::new()
                }
                listing => listing.map_err(|e| TreeError::io(&ancestry.path, e))?,
            };
            if let Some(counter) = opts.entries {
                counter.fetch_add(entries.len() as u64, Ordering::Relaxed);
            }
            walk.add_entries(*dir, ancestry, entries)?;
        }
    }
    let Walk {
        mut tree,
        pending,
        live,
        mut vanished,
        ..
    } = walk;
    vanished.extend(fill_details(&mut tree, pending, live)?);
    vanished.sort();
    Ok((tree, vanished))
}

/// Lists directory `dir` of the source `root`, without the entries that
/// `pruning` leaves unread.
fn list(
    root: &Path,
    dir: &Path,
    pruning: &Pruning<'_>,
) -> io::Result<Vec<kiln_host::DirEntryMeta>> {
    if pruning.is_empty() {
        return kiln_host::read_dir_meta(dir, &|_| true);
    }
    let at = image_path(root, dir);
    kiln_host::read_dir_meta(dir, &|name| {
        !pruning.skips(&at, &kiln_host::name_bytes(name))
    })
}

/// The image path of directory `dir` of the source `root`, as components:
/// the sources are laid over each other at the image's root.
fn image_path(root: &Path, dir: &Path) -> Vec<Vec<u8>> {
    // OK: every directory of the walk is `root` joined with names.
    let below = dir.strip_prefix(root).expect("a directory of the walk");
    below
        .iter()
        .map(|name| kiln_host::name_bytes(name).into_owned())
        .collect()
}

/// Fails when `dir` (about to be listed) is the directory of the output and
/// the output's name there is not left unread: the image would be read
/// into the tree it is built from (or, written in place, be read while it
/// is written).
fn refuse_output_dir(root: &Path, dir: &Ancestry, opts: &WalkOptions<'_>) -> Result<(), TreeError> {
    let Some(output) = opts.output else {
        return Ok(());
    };
    if output.is_dir(dir.key, &dir.path)
        && !opts
            .pruning
            .skips(&image_path(root, &dir.path), &output.name)
    {
        return Err(TreeError::OutputInSource {
            output: output.output.clone(),
            root: root.into(),
            dir: (dir.path != root).then(|| dir.path.clone()),
        });
    }
    Ok(())
}

/// Where an output file goes on the host: its directory, by device and
/// inode (so that the walk knows it however it is reached: through a
/// symlink in the output's path, `..`, a bind mount), and its name there.
#[derive(Clone, Debug)]
pub struct OutputPlace {
    /// The output as given, for messages.
    output: PathBuf,
    /// The directory's device and inode.
    dir_key: (u64, u64),
    /// The directory's canonical path, for hosts without inode numbers.
    dir_path: PathBuf,
    /// The output's name in it.
    name: Vec<u8>,
}

impl OutputPlace {
    /// The place of the output file `output` (which need not exist yet);
    /// its directory must exist.
    pub fn of(output: &Path) -> Result<OutputPlace, TreeError> {
        let name = output
            .file_name()
            .ok_or_else(|| TreeError::io(output, io::Error::other("not a file name")))?;
        let dir = match output.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let err = |e| TreeError::io(dir, e);
        let dir_path = std::fs::canonicalize(dir).map_err(err)?;
        let meta = kiln_host::lstat(&dir_path).map_err(err)?;
        Ok(OutputPlace {
            output: output.into(),
            dir_key: (meta.dev, meta.ino),
            dir_path,
            name: kiln_host::name_bytes(name).into_owned(),
        })
    }

    /// Whether the directory with device and inode `key`, at `path`, is
    /// the output's.
    fn is_dir(&self, key: (u64, u64), path: &Path) -> bool {
        if self.dir_key.1 != 0 {
            return key == self.dir_key;
        }
        // No inode numbers (Windows): the canonical paths tell.
        std::fs::canonicalize(path).is_ok_and(|p| p == self.dir_path)
    }
}

/// Directories listed in parallel at a time.
const WALK_BATCH: usize = 64;

/// A directory waiting to be listed: its node and its ancestry (which
/// starts with its own path).
type PendingDir = (NodeId, Rc<Ancestry>);

/// The state of [`read_dir_tree`]'s walk.
struct Walk {
    tree: Tree,
    /// Every node whose details (xattrs, targets, data ranges) are still to read.
    pending: Vec<(NodeId, HostPath, Probe)>,
    /// Nodes of files with several links, by (device, inode).
    links: HashMap<(u64, u64), NodeId>,
    /// Directories still to list.
    dirs: Vec<PendingDir>,
    /// The source's device: directories of other filesystems stay empty.
    root_dev: u64,
    /// A running system: entries that vanish are skipped, not errors.
    live: bool,
    /// The paths of the entries skipped so.
    vanished: Vec<PathBuf>,
}

impl Walk {
    /// Whether `e`, met looking up an entry, means the entry is skipped:
    /// it vanished, and the source is a running system.
    fn skips(&self, e: &std::io::Error) -> bool {
        self.live && e.kind() == std::io::ErrorKind::NotFound
    }

    /// Adds the listed `entries` of directory `dir`, whose ancestry starts
    /// with it.
    fn add_entries(
        &mut self,
        dir: NodeId,
        ancestry: &Rc<Ancestry>,
        entries: Vec<kiln_host::DirEntryMeta>,
    ) -> Result<(), TreeError> {
        let dir_path = ancestry.path.as_path();
        let names: Vec<_> = entries
            .iter()
            .map(|(name, _)| kiln_host::name_bytes(name))
            .collect();
        let (packed, hosts) = HostPath::listed(dir_path, &names).ok_or_else(|| {
            let e = std::io::Error::other("its names take 4 GiB or more");
            TreeError::io(dir_path, e)
        })?;
        let mut listing = Vec::with_capacity(hosts.len());
        for ((name, meta), host) in entries.into_iter().zip(hosts) {
            let host_span = host.span();
            let path = || dir_path.join(&name);
            let meta = match meta {
                Err(e) if self.skips(&e) => {
                    self.vanished.push(path());
                    continue;
                }
                meta => meta.map_err(|e| TreeError::io(path(), e))?,
            };
            let is_dir = meta.file_type == HostFileType::Dir;
            let shared = !is_dir && meta.nlink > 1;
            let id = match shared
                .then(|| self.links.get(&(meta.dev, meta.ino)))
                .flatten()
            {
                Some(&id) => id,
                None => {
                    let id = self.tree.add(Node {
                        meta: metadata(&meta),
                        body: placeholder_body(&meta, &host),
                    });
                    if shared {
                        self.links.insert((meta.dev, meta.ino), id);
                    }
                    self.pending.push((id, host, Probe::of(&meta)));
                    id
                }
            };
            listing.push((host_span, id));
            if is_dir && meta.dev == self.root_dev {
                // Inode 0: the host has no inode numbers (Windows), nor bind mounts.
                let looped = (meta.ino != 0).then(|| ancestry.find((meta.dev, meta.ino)));
                if let Some(ancestor) = looped.flatten() {
                    return Err(TreeError::DirectoryLoop {
                        path: path(),
                        ancestor: ancestor.to_path_buf(),
                    });
                }
                let ancestry = Rc::new(Ancestry {
                    key: (meta.dev, meta.ino),
                    path: path(),
                    parent: Some(Rc::clone(ancestry)),
                });
                self.dirs.push((id, ancestry));
            }
        }
        self.tree.adopt_listing(dir, packed, &listing);
        Ok(())
    }
}

/// The directories from the source root down to one being walked, by
/// (device, inode): a directory met again below itself is a loop (a bind
/// mount), which would otherwise be copied once per level it repeats.
struct Ancestry {
    key: (u64, u64),
    path: PathBuf,
    parent: Option<Rc<Ancestry>>,
}

impl Ancestry {
    /// The path of the ancestor (or this directory) that is `key`, if any.
    fn find(&self, key: (u64, u64)) -> Option<&Path> {
        let mut at = Some(self);
        while let Some(a) = at {
            if a.key == key {
                return Some(&a.path);
            }
            at = a.parent.as_deref();
        }
        None
    }
}

fn metadata(meta: &HostMeta) -> Metadata {
    let times = Times {
        atime: meta.atime,
        mtime: meta.mtime,
        ctime: meta.ctime,
        crtime: meta.crtime,
    };
    Metadata::new(meta.perm, meta.uid, meta.gid, times)
}

/// The body as far as `lstat` tells; file data ranges and symlink targets
/// are filled in by [`fill_details`].
fn placeholder_body(meta: &HostMeta, host: &HostPath) -> Body {
    match meta.file_type {
        HostFileType::Dir => Body::Dir(Box::default()),
        HostFileType::File => {
            let source = DataSource::Host(host.clone(), Fingerprint::of(&meta.stamp()));
            Body::File(FileData::new(source, meta.size, Vec::new()))
        }
        HostFileType::Symlink => Body::Symlink(Vec::new()),
        HostFileType::CharDevice => Body::CharDevice(meta.rdev.0, meta.rdev.1),
        HostFileType::BlockDevice => Body::BlockDevice(meta.rdev.0, meta.rdev.1),
        HostFileType::Fifo => Body::Fifo,
        HostFileType::Socket => Body::Socket,
    }
}

/// What [`read_details`] found for one node.
struct Details {
    xattrs: ThinVec<Xattr>,
    body: Option<Body>,
    /// A symlink's access time after reading its target (which moves it).
    atime: Option<Timestamp>,
}

/// Reads xattrs, symlink targets and file data ranges for every node, in
/// parallel, then stores them in the tree. With `live`, entries that
/// vanished before their details were read are taken out of the tree;
/// returns their paths.
fn fill_details(
    tree: &mut Tree,
    mut pending: Vec<(NodeId, HostPath, Probe)>,
    live: bool,
) -> Result<Vec<PathBuf>, TreeError> {
    let mut vanished = Vec::new();
    // In chunks: the details of every entry at once would double the
    // memory the tree takes.
    for chunk in pending.chunks_mut(DETAILS_CHUNK) {
        let details: Vec<(NodeId, Details)> = chunk
            .par_iter_mut()
            .map(|(id, host, probe)| read_details(host, probe).map(|d| (*id, d)))
            .collect::<Vec<_>>()
            .into_iter()
            .zip(chunk.iter())
            .filter_map(|(details, (id, host, _))| match details {
                Err(TreeError::Io { source, .. })
                    if live && source.kind() == std::io::ErrorKind::NotFound =>
                {
                    vanished.push((*id, host.path()));
                    None
                }
                details => Some(details),
            })
            .collect::<Result<_, _>>()?;
        for (id, d) in details {
            let node = tree.node_mut(id);
            node.meta.set_xattrs(d.xattrs);
            if let Some(body) = d.body {
                node.body = body;
            }
            if let Some(atime) = d.atime {
                let times = node.meta.times();
                node.meta.set_times(Times { atime, ..times });
            }
        }
    }
    unlink_all(tree, vanished.iter().map(|(id, _)| *id).collect());
    Ok(vanished.into_iter().map(|(_, path)| path).collect())
}

/// Takes the nodes `gone` out of every directory that lists them (one pass
/// over the tree, only when there are any).
fn unlink_all(tree: &mut Tree, gone: std::collections::HashSet<NodeId>) {
    if gone.is_empty() {
        return;
    }
    let mut links = Vec::new();
    for dir in tree.reachable() {
        for (name, child) in tree.node(dir).entries() {
            if gone.contains(&child) {
                links.push((dir, name.to_vec()));
            }
        }
    }
    for (dir, name) in links {
        tree.unlink(dir, &name);
    }
}

/// Entries whose details are read in parallel at a time.
const DETAILS_CHUNK: usize = 4096;

/// What the details of an entry need of its `lstat`: kept for every entry
/// until the walk ends, so a few words rather than the whole [`HostMeta`].
#[derive(Clone, Copy)]
struct Probe {
    file_type: HostFileType,
    size: u64,
    allocated: u64,
    io_block: u64,
    /// A regular file's data source keeps it.
    seen: Fingerprint,
}

impl Probe {
    fn of(meta: &HostMeta) -> Probe {
        Probe {
            file_type: meta.file_type,
            size: meta.size,
            allocated: meta.allocated,
            io_block: meta.io_block,
            seen: Fingerprint::of(&meta.stamp()),
        }
    }
}

/// Reads the details of the entry at `host`, which a regular file keeps as
/// its data source.
fn read_details(host: &HostPath, meta: &Probe) -> Result<Details, TreeError> {
    let path = host.path();
    let err = |e| TreeError::io(&path, e);
    let xattrs = kiln_host::read_xattrs(&path)
        .map_err(err)?
        .into_iter()
        .map(Xattr::from)
        .collect();
    let mut details = Details {
        xattrs,
        body: None,
        atime: None,
    };
    match meta.file_type {
        HostFileType::Symlink => {
            let target = std::fs::read_link(&path).map_err(err)?;
            details.body = Some(Body::Symlink(kiln_host::link_target_bytes(&target)));
            // readlink updates a symlink's access time (under relatime, once
            // after each change) and cannot be asked not to; the atime taken
            // after it is what the source holds from then on, so a rebuild of
            // the same tree matches.
            details.atime = Some(kiln_host::lstat(&path).map_err(err)?.atime);
        }
        HostFileType::File => {
            // st_blocks also counts an external xattr block: only a file
            // without xattrs can be judged dense by it.
            let dense = details
                .xattrs
                .is_empty()
                .then(|| dense_size(meta))
                .flatten();
            let (size, data) = match dense {
                Some(0) => (0, Vec::new()),
                Some(size) => (size, vec![0..size]),
                None => {
                    let file = kiln_host::open_source(&path).map_err(err)?;
                    let size = file.metadata().map_err(err)?.len();
                    (size, kiln_host::data_ranges(&file, size).map_err(err)?)
                }
            };
            let source = DataSource::Host(host.clone(), meta.seen);
            details.body = Some(Body::File(FileData::new(source, size, data)));
        }
        _ => {}
    }
    Ok(details)
}

/// The size of a small file that cannot have holes: every block of it is
/// allocated, and it is too small to need index blocks (at most 12 host
/// blocks: direct blocks of a block map, or an extent tree in the inode),
/// which `st_blocks` would count too (as it counts an xattr block: the
/// caller asks only for files without xattrs). Its data ranges need no open and no
/// `SEEK_DATA` (most files of a source tree are such).
fn dense_size(meta: &Probe) -> Option<u64> {
    let small = meta.size <= 12 * meta.io_block.max(512);
    (small && meta.allocated >= meta.size).then_some(meta.size)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn reads_files_links_and_symlinks_in_sorted_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/b"), b"hello").unwrap();
        std::fs::hard_link(d.join("sub/b"), d.join("a")).unwrap();
        std::os::unix::fs::symlink("sub/b", d.join("link")).unwrap();

        let tree = read_dir_tree(d).unwrap();
        let names: Vec<_> = tree
            .node(Tree::ROOT)
            .entries()
            .map(|(n, _)| n.to_vec())
            .collect();
        assert_eq!(
            names,
            vec![b"a".to_vec(), b"link".to_vec(), b"sub".to_vec()]
        );
        let a = tree.lookup(Tree::ROOT, b"a").unwrap();
        let sub = tree.lookup(Tree::ROOT, b"sub").unwrap();
        assert_eq!(tree.lookup(sub, b"b"), Some(a));
        match &tree.node(a).body {
            Body::File(f) => {
                assert_eq!(f.size, 5);
                assert_eq!(*f.data(), [0..5]);
            }
            other => panic!("not a file: {other:?}"),
        }
        let link = tree.lookup(Tree::ROOT, b"link").unwrap();
        assert_eq!(tree.node(link).body, Body::Symlink(b"sub/b".to_vec()));
    }

    /// `WalkOptions::entries` counts every entry listed: 4 below the root
    /// here (a, sub, sub/b, sub/c), whichever batch lists them.
    #[test]
    fn the_walk_counts_the_entries_it_lists() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        for name in ["a", "sub/b", "sub/c"] {
            std::fs::write(d.join(name), b"x").unwrap();
        }
        let counter = AtomicU64::new(0);
        let opts = WalkOptions {
            entries: Some(&counter),
            ..WalkOptions::default()
        };
        read_dir_tree_with(d, &opts).unwrap();
        assert_eq!(counter.load(Ordering::Relaxed), 4);
    }

    /// A file that is all hole but has an xattr in a block of its own: the
    /// host's st_blocks counts that block, which must not make it "dense"
    /// (found by tests/prop.rs).
    #[test]
    fn a_hole_with_an_xattr_block_stays_a_hole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hole");
        std::fs::File::create(&path).unwrap().set_len(1609).unwrap();
        kiln_host::set_xattr(&path, b"user.big", &[b'x'; 300]).unwrap();
        assert!(
            kiln_host::lstat(&path).unwrap().allocated > 0,
            "no xattr block"
        );
        let tree = read_dir_tree(dir.path()).unwrap();
        let id = tree.lookup(Tree::ROOT, b"hole").unwrap();
        match &tree.node(id).body {
            Body::File(f) => assert_eq!((f.size, f.data().to_vec()), (1609, vec![])),
            other => panic!("not a file: {other:?}"),
        }
    }

    /// A walk of `root` (a directory) as [`walk`] starts it.
    fn walk_of(root: &Path, live: bool) -> (Walk, Rc<Ancestry>) {
        let meta = kiln_host::lstat(root).unwrap();
        let walk = Walk {
            tree: Tree::new(metadata(&meta)),
            pending: Vec::new(),
            links: HashMap::new(),
            dirs: Vec::new(),
            root_dev: meta.dev,
            live,
            vanished: Vec::new(),
        };
        let ancestry = Rc::new(Ancestry {
            key: (meta.dev, meta.ino),
            path: root.to_path_buf(),
            parent: None,
        });
        (walk, ancestry)
    }

    /// A listing of `kept` and of `gone`, which vanished between readdir
    /// and its statx.
    fn listing_with_a_vanished_entry(kept: &Path) -> Vec<kiln_host::DirEntryMeta> {
        let gone = std::io::Error::from(std::io::ErrorKind::NotFound);
        vec![
            ("gone".into(), Err(gone)),
            ("kept".into(), Ok(kiln_host::lstat(kept).unwrap())),
        ]
    }

    #[test]
    fn an_entry_gone_before_its_statx_is_an_error_or_left_out_live() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kept"), b"here").unwrap();
        let (mut walk, ancestry) = walk_of(dir.path(), false);
        let listing = listing_with_a_vanished_entry(&dir.path().join("kept"));
        let err = walk
            .add_entries(Tree::ROOT, &ancestry, listing)
            .unwrap_err();
        assert!(err.to_string().contains("gone"), "{err}");

        let (mut walk, ancestry) = walk_of(dir.path(), true);
        let listing = listing_with_a_vanished_entry(&dir.path().join("kept"));
        walk.add_entries(Tree::ROOT, &ancestry, listing).unwrap();
        assert_eq!(walk.vanished, [dir.path().join("gone")]);
        let names: Vec<_> = walk
            .tree
            .node(Tree::ROOT)
            .entries()
            .map(|(n, _)| n.to_vec())
            .collect();
        assert_eq!(names, [b"kept".to_vec()]);
    }

    #[test]
    fn an_entry_gone_before_its_details_are_read_is_left_out_live() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("target", dir.path().join("link")).unwrap();
        std::fs::write(dir.path().join("kept"), b"here").unwrap();
        let (mut walk, ancestry) = walk_of(dir.path(), true);
        let listing = kiln_host::read_dir_meta(dir.path(), &|_| true).unwrap();
        walk.add_entries(Tree::ROOT, &ancestry, listing).unwrap();
        std::fs::remove_file(dir.path().join("link")).unwrap();
        let vanished = fill_details(&mut walk.tree, walk.pending, true).unwrap();
        assert_eq!(vanished, [dir.path().join("link")]);
        assert!(walk.tree.lookup(Tree::ROOT, b"link").is_none());
        assert!(walk.tree.lookup(Tree::ROOT, b"kept").is_some());
    }

    #[test]
    fn the_walk_refuses_the_output_directory_unless_it_is_excluded() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/f"), b"f").unwrap();
        let place = OutputPlace::of(&d.join("sub/out.img")).unwrap();
        let opts = WalkOptions {
            output: Some(&place),
            ..WalkOptions::default()
        };
        let err = read_dir_tree_with(d, &opts).unwrap_err();
        assert!(matches!(err, TreeError::OutputInSource { .. }), "{err}");

        let excludes = crate::Excludes::parse(&["/sub".into()]).unwrap();
        let opts = WalkOptions {
            pruning: excludes.pruning(&[], false),
            output: Some(&place),
            ..WalkOptions::default()
        };
        let (tree, _) = read_dir_tree_with(d, &opts).unwrap();
        assert_eq!(tree.node(Tree::ROOT).entries().count(), 0);
    }

    #[test]
    fn missing_source_names_the_path() {
        let err = read_dir_tree(Path::new("/nonexistent/kiln-source")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/kiln-source"),
            "{err}"
        );
    }
}
