//! The tree comparator: a snapshot of one or more (layered) source trees,
//! compared entry by entry with a mounted image.
//!
//! Checked for every entry: type, the 12 mode bits, uid, gid, atime, mtime
//! and ctime with nanoseconds, extended attributes (names and values, ACLs in
//! the kernel's VFS format), link count, device numbers, symlink targets,
//! size, content and holes (at the image's block size: a block that is all
//! hole in the source must be a hole in the image, a block with data must be
//! data), and the hard-link structure (names sharing an inode in the sources
//! share one in the image, and only those).
//!
//! The snapshot is taken before kiln runs, so the image is judged against the
//! sources as kiln found them; [`Snapshot::assert_sources_unchanged`] then
//! checks separately that kiln left them alone (access times included).
//!
//! Walks use directory fds (no `PATH_MAX` limit) opened with `O_NOATIME`, so
//! reading directories and files moves no access time, and kiln can do the
//! same. Symlinks are the exception: Linux applies the relatime rule on every
//! `readlink` (atime older than mtime or ctime, or than a day, is set to now)
//! and offers no `O_NOATIME` for it. So the snapshot reads each symlink once
//! and records the atime after that read, the one kiln then finds;
//! [`Snapshot::assert_sources_unchanged`] ignores symlink atimes; and a
//! symlink whose mtime or ctime is not older than its atime (so that every
//! readlink moves it again, e.g. an mtime in the future) has its atime left
//! out of the image comparison.
//!
//! Like `cp -ax`, a directory on another filesystem than its source root is
//! expected as an empty directory. The image's `/lost+found` is ignored unless
//! a source has one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::fs::File;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::sys::{self, Kind, Meta};

/// A path below a tree root, as its components (raw bytes); the root is `[]`.
pub type Key = Vec<Vec<u8>>;

/// One entry of a tree, with everything that is compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Index of the source layer it comes from.
    pub layer: usize,
    pub meta: Meta,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Symlink target.
    pub target: Option<Vec<u8>>,
    /// Data ranges of a regular file (`SEEK_DATA`/`SEEK_HOLE`).
    pub ranges: Vec<Range<u64>>,
    /// A directory on another filesystem than its root (a mount point).
    pub crossdev: bool,
}

/// `/a/b/c`, non-printable bytes escaped.
pub fn show(key: &[Vec<u8>]) -> String {
    if key.is_empty() {
        return "/".to_string();
    }
    key.iter()
        .map(|c| format!("/{}", c.escape_ascii()))
        .collect()
}

fn is_below(key: &[Vec<u8>], prefix: &[Vec<u8>]) -> bool {
    key.len() > prefix.len() && key[..prefix.len()] == *prefix
}

/// Reads one tree, calling `out` for every entry, parents before children.
pub fn scan(root: &Path, layer: usize, out: &mut dyn FnMut(Key, Node)) {
    let fd = sys::open_dir(root).unwrap_or_else(|e| panic!("open {}: {e}", root.display()));
    let node = read_node(fd.as_fd(), b".", layer, None, &[]);
    assert_eq!(
        node.meta.kind,
        Kind::Dir,
        "{} is not a directory",
        root.display()
    );
    let dev = node.meta.dev;
    out(Vec::new(), node);
    scan_dir(fd.as_fd(), &mut Vec::new(), layer, dev, out);
}

fn read_node(
    dir: BorrowedFd<'_>,
    name: &[u8],
    layer: usize,
    root_dev: Option<(u32, u32)>,
    key: &[Vec<u8>],
) -> Node {
    let fail = |what: &str, e: std::io::Error| -> ! { panic!("{what} {}: {e}", show(key)) };
    let meta = sys::stat_at(dir, name).unwrap_or_else(|e| fail("statx", e));
    let xattrs = sys::xattrs_at(dir, name).unwrap_or_else(|e| fail("xattrs of", e));
    let mut node = Node {
        layer,
        crossdev: meta.kind == Kind::Dir && root_dev.is_some_and(|d| d != meta.dev),
        meta,
        xattrs,
        target: None,
        ranges: Vec::new(),
    };
    match node.meta.kind {
        Kind::Symlink => {
            node.target = Some(sys::readlink_at(dir, name).unwrap_or_else(|e| fail("readlink", e)));
            // readlink moves the atime (see the module doc): keep the one after it.
            node.meta = sys::stat_at(dir, name).unwrap_or_else(|e| fail("statx", e));
        }
        Kind::File => {
            let f = sys::open_file_at(dir, name).unwrap_or_else(|e| fail("open", e));
            node.ranges =
                sys::data_ranges(&f, node.meta.size).unwrap_or_else(|e| fail("SEEK_DATA", e));
        }
        _ => {}
    }
    node
}

fn scan_dir(
    dir: BorrowedFd<'_>,
    key: &mut Key,
    layer: usize,
    root_dev: (u32, u32),
    out: &mut dyn FnMut(Key, Node),
) {
    let names = sys::read_dir_names(dir).unwrap_or_else(|e| panic!("readdir {}: {e}", show(key)));
    for name in names {
        key.push(name);
        let name = key.last().expect("just pushed");
        let node = read_node(dir, name, layer, Some(root_dev), key);
        let descend = node.meta.kind == Kind::Dir && !node.crossdev;
        out(key.clone(), node);
        if descend {
            let sub =
                sys::open_dir_at(dir, name).unwrap_or_else(|e| panic!("open {}: {e}", show(key)));
            scan_dir(sub.as_fd(), key, layer, root_dev, out);
        }
        key.pop();
    }
}

/// The merged view of the source layers, as kiln must reproduce it.
pub struct Snapshot {
    roots: Vec<PathBuf>,
    pub entries: BTreeMap<Key, Node>,
}

impl Snapshot {
    /// Reads the source layers, later ones adding or replacing entries of
    /// earlier ones; a directory present in both is merged, its own metadata
    /// taken from the later one. Call it before kiln reads the sources.
    pub fn take(roots: &[&Path]) -> Snapshot {
        let mut entries: BTreeMap<Key, Node> = BTreeMap::new();
        for (layer, root) in roots.iter().enumerate() {
            scan(root, layer, &mut |key, node| {
                let merge = entries
                    .get(&key)
                    .is_some_and(|old| old.meta.kind == Kind::Dir && node.meta.kind == Kind::Dir);
                if !merge {
                    let below: Vec<Key> = entries
                        .range(key.clone()..)
                        .skip(1)
                        .take_while(|(k, _)| is_below(k, &key))
                        .map(|(k, _)| k.clone())
                        .collect();
                    for k in below {
                        entries.remove(&k);
                    }
                }
                entries.insert(key, node);
            });
        }
        Snapshot {
            roots: roots.iter().map(|r| r.to_path_buf()).collect(),
            entries,
        }
    }

    /// The snapshot's regular files, for other checks (key, node).
    pub fn files(&self) -> impl Iterator<Item = (&Key, &Node)> {
        self.entries
            .iter()
            .filter(|(_, n)| n.meta.kind == Kind::File)
    }

    /// Opens a source file of the snapshot (without touching its atime).
    pub fn open_source(&self, key: &Key) -> File {
        let node = &self.entries[key];
        sys::open_file_beneath(&self.roots[node.layer], key)
            .unwrap_or_else(|e| panic!("open source {}: {e}", show(key)))
    }

    /// Compares the mounted image at `mount` (block size `block_size`) with
    /// the snapshot and panics with the list of differences, if any.
    pub fn assert_image_matches(&self, mount: &Path, block_size: u64) {
        let diffs = self.compare_image(mount, block_size);
        assert_no_diffs(
            &format!(
                "the sources {:?} and the image mounted at {}",
                self.roots,
                mount.display()
            ),
            &diffs,
        );
        eprintln!(
            "compared {} entries of {:?} with the image: identical",
            self.entries.len(),
            self.roots
        );
    }

    /// Takes the snapshot again and panics if anything changed in the
    /// sources (kiln must not touch them, not even their access times).
    pub fn assert_sources_unchanged(&self) {
        let roots: Vec<&Path> = self.roots.iter().map(PathBuf::as_path).collect();
        let now = Snapshot::take(&roots);
        let mut diffs = Vec::new();
        for key in self
            .entries
            .keys()
            .filter(|k| !now.entries.contains_key(*k))
        {
            diffs.push(Diff::new("gone", key, String::new()));
        }
        for (key, new) in &now.entries {
            let Some(old) = self.entries.get(key) else {
                diffs.push(Diff::new("appeared", key, String::new()));
                continue;
            };
            for (what, a, b) in node_fields(old)
                .into_iter()
                .zip(node_fields(new))
                .map(|((w, a), (_, b))| (w, a, b))
            {
                // Reading a symlink may move its atime, unavoidably (module doc).
                let unavoidable = what == "atime" && new.meta.kind == Kind::Symlink;
                if a != b && !unavoidable {
                    diffs.push(Diff::new(what, key, format!("was {a}, now {b}")));
                }
            }
        }
        assert_no_diffs(
            &format!("the sources {:?} before and after the build", self.roots),
            &diffs,
        );
    }

    /// All differences between the snapshot and the mounted image.
    pub fn compare_image(&self, mount: &Path, block_size: u64) -> Vec<Diff> {
        let mut image = BTreeMap::new();
        scan(mount, 0, &mut |key, node| {
            image.insert(key, node);
        });
        let mut diffs = Vec::new();

        let lost_found: Key = vec![b"lost+found".to_vec()];
        let ignored = |key: &Key| {
            !self.entries.contains_key(&lost_found)
                && (*key == lost_found || is_below(key, &lost_found))
        };

        // Entries on one side only (reported once per subtree).
        let mut last: Option<&Key> = None;
        for (key, node) in &self.entries {
            if image.contains_key(key) || last.is_some_and(|l| is_below(key, l)) {
                continue;
            }
            diffs.push(Diff::new(
                "missing from the image",
                key,
                format!("{:?}", node.meta.kind),
            ));
            last = Some(key);
        }
        last = None;
        for (key, node) in &image {
            if self.entries.contains_key(key)
                || ignored(key)
                || last.is_some_and(|l| is_below(key, l))
            {
                continue;
            }
            diffs.push(Diff::new(
                "in the image but not in the sources",
                key,
                format!("{:?}", node.meta.kind),
            ));
            last = Some(key);
        }

        // Expected link counts: the names of a source inode in the merged
        // view; for a directory, 2 plus its subdirectories.
        let mut groups: HashMap<((u32, u32), u64), Vec<&Key>> = HashMap::new();
        let mut subdirs: HashMap<&[Vec<u8>], u32> = HashMap::new();
        for (key, node) in &self.entries {
            if node.meta.kind == Kind::Dir {
                if let Some((_, parent)) = key.split_last() {
                    *subdirs.entry(parent).or_default() += 1;
                }
            } else {
                groups
                    .entry((node.meta.dev, node.meta.ino))
                    .or_default()
                    .push(key);
            }
        }
        if image
            .get(&lost_found)
            .is_some_and(|n| n.meta.kind == Kind::Dir)
            && !self.entries.contains_key(&lost_found)
        {
            *subdirs.entry(&[]).or_default() += 1;
        }

        for (key, exp) in &self.entries {
            let Some(got) = image.get(key) else { continue };
            let nlink = if exp.meta.kind == Kind::Dir {
                2 + subdirs.get(key.as_slice()).copied().unwrap_or(0)
            } else {
                u32::try_from(groups[&(exp.meta.dev, exp.meta.ino)].len()).expect("link count")
            };
            self.compare_node(key, exp, got, nlink, mount, block_size, &mut diffs);
        }

        // Hard-link structure: one image inode per source inode, and no sharing beyond.
        let mut owner: HashMap<u64, ((u32, u32), u64)> = HashMap::new();
        for (src, keys) in &groups {
            let inos: BTreeSet<u64> = keys
                .iter()
                .filter_map(|k| image.get(*k))
                .map(|n| n.meta.ino)
                .collect();
            if inos.len() > 1 {
                let names: Vec<String> = keys.iter().map(|k| show(k)).collect();
                diffs.push(Diff::new(
                    "hard links split",
                    keys[0],
                    format!("{names:?} share one source inode but are image inodes {inos:?}"),
                ));
            }
            for ino in inos {
                if let Some(other) = owner.insert(ino, *src) {
                    if other != *src {
                        let a: Vec<String> = groups[&other].iter().map(|k| show(k)).collect();
                        let b: Vec<String> = keys.iter().map(|k| show(k)).collect();
                        diffs.push(Diff::new(
                            "hard links merged",
                            keys[0],
                            format!(
                                "{a:?} and {b:?} are distinct source inodes but image inode {ino}"
                            ),
                        ));
                    }
                }
            }
        }
        diffs
    }

    #[allow(clippy::too_many_arguments)]
    fn compare_node(
        &self,
        key: &Key,
        exp: &Node,
        got: &Node,
        nlink: u32,
        mount: &Path,
        block_size: u64,
        diffs: &mut Vec<Diff>,
    ) {
        let mut diff = |what: &str, src: String, img: String| {
            diffs.push(Diff::new(what, key, format!("source {src}, image {img}")));
        };
        let (e, g) = (&exp.meta, &got.meta);
        if e.kind != g.kind {
            diff("type", format!("{:?}", e.kind), format!("{:?}", g.kind));
            return;
        }
        if e.perm != g.perm {
            diff("mode", format!("{:04o}", e.perm), format!("{:04o}", g.perm));
        }
        if (e.uid, e.gid) != (g.uid, g.gid) {
            diff(
                "owner",
                format!("{}:{}", e.uid, e.gid),
                format!("{}:{}", g.uid, g.gid),
            );
        }
        // A symlink whose mtime or ctime is not older than its atime gets a
        // new atime on every readlink (relatime), kiln's own included: its
        // atime cannot be pinned down (module doc).
        let atime_unstable = e.kind == Kind::Symlink && (e.mtime >= e.atime || e.ctime >= e.atime);
        for (what, a, b) in [
            ("atime", e.atime, g.atime),
            ("mtime", e.mtime, g.mtime),
            ("ctime", e.ctime, g.ctime),
        ] {
            if a != b && !(what == "atime" && atime_unstable) {
                diff(what, a.to_string(), b.to_string());
            }
        }
        if g.nlink != nlink {
            diff("link count", nlink.to_string(), g.nlink.to_string());
        }
        if exp.xattrs != got.xattrs {
            diff("xattrs", show_xattrs(&exp.xattrs), show_xattrs(&got.xattrs));
        }
        match e.kind {
            Kind::CharDev | Kind::BlockDev if e.rdev != g.rdev => {
                diff("device", format!("{:?}", e.rdev), format!("{:?}", g.rdev));
            }
            Kind::Symlink => {
                if exp.target != got.target {
                    let t = |n: &Node| {
                        n.target
                            .as_deref()
                            .unwrap_or_default()
                            .escape_ascii()
                            .to_string()
                    };
                    diff("symlink target", t(exp), t(got));
                } else if e.size != g.size {
                    diff("symlink size", e.size.to_string(), g.size.to_string());
                }
            }
            Kind::File => {
                if e.size != g.size {
                    diff("size", e.size.to_string(), g.size.to_string());
                    return;
                }
                let src_blocks = data_blocks(&exp.ranges, block_size, e.size);
                let img_blocks = data_blocks(&got.ranges, block_size, g.size);
                if src_blocks != img_blocks {
                    diff(
                        &format!("data blocks ({block_size}-byte blocks; the rest are holes)"),
                        show_ranges(&src_blocks),
                        show_ranges(&img_blocks),
                    );
                }
                let source = self.open_source(key);
                let image = sys::open_file_beneath(mount, key)
                    .unwrap_or_else(|e| panic!("open image {}: {e}", show(key)));
                let union = merge(src_blocks.iter().chain(&img_blocks).cloned().collect());
                if let Some(off) = first_difference(&source, &image, &union, block_size, e.size) {
                    diffs.push(Diff::new(
                        "content",
                        key,
                        format!("differs, first at byte {off}"),
                    ));
                }
            }
            _ => {}
        }
    }
}

/// Every compared field of a node, shown (for "did anything change").
fn node_fields(n: &Node) -> [(&'static str, String); 13] {
    let m = &n.meta;
    [
        ("type", format!("{:?}", m.kind)),
        ("mode", format!("{:04o}", m.perm)),
        ("owner", format!("{}:{}", m.uid, m.gid)),
        ("size", m.size.to_string()),
        ("link count", m.nlink.to_string()),
        ("device", format!("{:?}", m.rdev)),
        ("inode", format!("{:?} {}", m.dev, m.ino)),
        ("atime", m.atime.to_string()),
        ("mtime", m.mtime.to_string()),
        ("ctime", m.ctime.to_string()),
        ("xattrs", show_xattrs(&n.xattrs)),
        ("symlink target", format!("{:?}", n.target)),
        ("data ranges", show_ranges(&n.ranges)),
    ]
}

/// One difference: what differs (its category), where, and how.
#[derive(Clone, Debug)]
pub struct Diff {
    pub what: String,
    pub path: String,
    pub detail: String,
}

impl Diff {
    pub fn new(what: &str, key: &[Vec<u8>], detail: String) -> Diff {
        Diff {
            what: what.to_string(),
            path: show(key),
            detail,
        }
    }
}

/// Panics if there are differences, listing them by category (at most 15
/// examples each).
pub fn assert_no_diffs(what: &str, diffs: &[Diff]) {
    if diffs.is_empty() {
        return;
    }
    let mut by_what: BTreeMap<&str, Vec<&Diff>> = BTreeMap::new();
    for d in diffs {
        by_what.entry(&d.what).or_default().push(d);
    }
    let mut msg = format!("{} differences between {what}:\n", diffs.len());
    for (category, list) in &by_what {
        let _ = writeln!(msg, "{category}: {} entries", list.len());
        for d in list.iter().take(15) {
            let _ = writeln!(msg, "    {}  {}", d.path, d.detail);
        }
        if list.len() > 15 {
            let _ = writeln!(msg, "    ... and {} more", list.len() - 15);
        }
    }
    panic!("{msg}");
}

fn show_xattrs(x: &[(Vec<u8>, Vec<u8>)]) -> String {
    let items: Vec<String> = x
        .iter()
        .map(|(n, v)| {
            let shown: String = v.iter().take(24).map(|b| format!("{b:02x}")).collect();
            let more = if v.len() > 24 { "…" } else { "" };
            format!("{}={shown}{more} ({} bytes)", n.escape_ascii(), v.len())
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn show_ranges(r: &[Range<u64>]) -> String {
    let mut items: Vec<String> = r
        .iter()
        .take(8)
        .map(|r| format!("{}..{}", r.start, r.end))
        .collect();
    if r.len() > 8 {
        items.push(format!("… ({} ranges)", r.len()));
    }
    format!("[{}]", items.join(", "))
}

/// Sorts and joins overlapping or adjacent ranges.
fn merge(mut r: Vec<Range<u64>>) -> Vec<Range<u64>> {
    r.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::new();
    for x in r {
        match out.last_mut() {
            Some(last) if x.start <= last.end => last.end = last.end.max(x.end),
            _ => out.push(x),
        }
    }
    out
}

/// The blocks (of `block_size`, as block indices) of a file of `size` bytes
/// that hold any data, from its byte data ranges.
pub fn data_blocks(ranges: &[Range<u64>], block_size: u64, size: u64) -> Vec<Range<u64>> {
    merge(
        ranges
            .iter()
            .map(|r| (r.start.min(size), r.end.min(size)))
            .filter(|(s, e)| s < e)
            .map(|(s, e)| s / block_size..e.div_ceil(block_size))
            .collect(),
    )
}

/// The first byte offset at which the two files differ within the given
/// blocks (outside them both are holes, all zeros), if any.
fn first_difference(
    a: &File,
    b: &File,
    blocks: &[Range<u64>],
    block_size: u64,
    size: u64,
) -> Option<u64> {
    const CHUNK: u64 = 1 << 20;
    let mut buf_a = vec![0u8; CHUNK as usize];
    let mut buf_b = vec![0u8; CHUNK as usize];
    for r in blocks {
        let mut off = r.start * block_size;
        let end = (r.end * block_size).min(size);
        while off < end {
            let n = (end - off).min(CHUNK) as usize;
            read_full(a, &mut buf_a[..n], off);
            read_full(b, &mut buf_b[..n], off);
            if buf_a[..n] != buf_b[..n] {
                let i = buf_a[..n].iter().zip(&buf_b[..n]).position(|(x, y)| x != y);
                return Some(off + i.expect("slices differ") as u64);
            }
            off += n as u64;
        }
    }
    None
}

/// `pread` of exactly `buf.len()` bytes.
pub fn read_full(f: &File, buf: &mut [u8], off: u64) {
    f.read_exact_at(buf, off)
        .unwrap_or_else(|e| panic!("read {} bytes at {off}: {e}", buf.len()));
}
