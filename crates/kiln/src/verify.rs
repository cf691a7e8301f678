//! Verification (`kiln verify IMAGE --against SOURCE...`): proves an image
//! holds exactly the tree its build was given, and that its structures are
//! consistent. A FAT image is compared in [`fat`], on what FAT keeps.
//!
//! The expected tree is read as `kiln build` reads it (same layers, specs
//! and policies). Every entry is compared: type, mode, owner, times (as the
//! image's inode size stores them), xattrs, link counts, hard links, device
//! numbers, symlink targets, file content and holes.
//!
//! Everything is read through kiln's own reader, which treats the image as
//! hostile (a downloaded image is verified as often as one just built).
//! Checksums are not verified on the way: [`kiln_ext::check_image`]
//! reports every mismatch as an inconsistency instead. The tests judge the
//! reader itself against `ext4-view`, `debugfs` and the kernel.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Display;
use std::io::Write;

use anyhow::{Context, Result};
use kiln_ext::mode::{S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK};
use kiln_ext::{
    stored_time, FileMap, ImageReader, InodeView, WalkEntry, LINK_MAX, LOST_FOUND, ROOT_INO,
};
use kiln_tree::{Body, FileData, Metadata, NodeId, Timestamp, Tree};

use crate::tree::read_tree;
use crate::{FsKind, Image, Observer, TreeRequest};

mod fat;

/// What to verify.
#[derive(Clone, Debug)]
pub struct VerifyRequest {
    /// The image: a filesystem image, or `IMAGE:PART` for a partition of a
    /// GPT disk image (by number or label).
    pub image: OsString,
    /// The tree its build was given.
    pub tree: TreeRequest,
    /// Leave access times out of the comparison.
    pub no_atime: bool,
    /// How many differences and inconsistencies to write out (the rest are
    /// counted).
    pub max_reports: usize,
}

/// What a verification found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// The image as the request named it.
    pub image: String,
    /// Entries of the image walked.
    pub entries: usize,
    /// Bytes of content compared.
    pub bytes: u64,
    /// Differences from the sources.
    pub differences: usize,
    /// Inconsistencies of the image's structures.
    pub inconsistencies: usize,
}

impl VerifyReport {
    /// Whether the image holds exactly its sources, consistently.
    pub fn matches(&self) -> bool {
        self.differences + self.inconsistencies == 0
    }
}

/// Bytes compared at a time.
const CHUNK: usize = 1 << 20;

/// Compares the image of `req` with its sources and checks its
/// structures, writing each difference and inconsistency (up to
/// `max_reports`) as a line to `out`. An image or a source that cannot be
/// read is an error; differences are in the report.
pub fn verify(
    req: &VerifyRequest,
    out: &mut dyn Write,
    observer: &dyn Observer,
) -> Result<VerifyReport> {
    let image = Image::resolve(&req.image)?;
    if image.kind()? == FsKind::Fat {
        return fat::verify(req, image, out, observer);
    }
    let mut reader = image.reader()?;
    reader.set_checksums(false);
    let tree = read_tree(&req.tree, None, observer)?;
    let walk = reader
        .walk(ROOT_INO)
        .with_context(|| format!("{}: reading the directory tree", image.name))?;
    let mut v = Verifier {
        reader: &reader,
        tree: &tree,
        large: reader.superblock().inode_size > 128,
        no_atime: req.no_atime,
        out: Reports::new(req.max_reports, out),
        bytes: 0,
    };
    v.compare(&walk).with_context(|| image.name.clone())?;
    let diffs = v.out.count_the_rest();
    let check =
        kiln_ext::check_image(&reader, &walk, v.out.room()).with_context(|| image.name.clone())?;
    v.out.inconsistencies(&check.problems, check.total);
    if diffs > 0 && v.out.atimes == diffs {
        v.out.print(format_args!(
            "note: every difference is an access time (reading a source file after the build \
             changes it); --no-atime leaves access times out"
        ));
    }
    v.out.check()?;
    Ok(VerifyReport {
        image: image.name,
        entries: walk.len(),
        bytes: v.bytes,
        differences: diffs,
        inconsistencies: check.total,
    })
}

/// Differences written out so far, and the count of all.
struct Reports<'o> {
    max: usize,
    shown: usize,
    total: usize,
    /// How many of them are access times.
    atimes: usize,
    /// Where the lines go.
    out: &'o mut dyn Write,
    /// The first failure to write (standard output closed, say): nothing
    /// more is written, and the comparison stops at the next entry.
    failed: Option<std::io::Error>,
}

impl<'o> Reports<'o> {
    fn new(max: usize, out: &'o mut dyn Write) -> Reports<'o> {
        Reports {
            max,
            shown: 0,
            total: 0,
            atimes: 0,
            out,
            failed: None,
        }
    }

    /// Reports one difference at `path`.
    fn diff(&mut self, path: &[u8], what: impl Display) {
        self.total += 1;
        if self.shown < self.max {
            self.shown += 1;
            self.print(format_args!("/{}: {what}", kiln_tree::escape(path)));
        }
    }

    /// Writes one line out, unless writing failed before.
    fn print(&mut self, line: std::fmt::Arguments) {
        if self.failed.is_none() {
            self.failed = writeln!(self.out, "{line}").err();
        }
    }

    /// The failure to write, if there was one.
    /// Writes how many differences were not shown; returns how many there
    /// were.
    fn count_the_rest(&mut self) -> usize {
        if self.total > self.shown {
            let more = self.total - self.shown;
            self.print(format_args!("... and {more} more differences"));
        }
        self.total
    }

    /// How many more lines may be written.
    fn room(&self) -> usize {
        self.max.saturating_sub(self.shown)
    }

    /// Writes the inconsistencies a check found (`problems`, the first of
    /// `total`), and how many were not shown.
    fn inconsistencies(&mut self, problems: &[impl Display], total: usize) {
        for problem in problems {
            self.print(format_args!("inconsistency: {problem}"));
        }
        if total > problems.len() {
            let more = total - problems.len();
            self.print(format_args!("... and {more} more inconsistencies"));
        }
    }

    fn check(&mut self) -> Result<()> {
        match self.failed.take() {
            Some(e) => Err(e).context("writing the differences out"),
            None => Ok(()),
        }
    }

    /// Reports a field that differs: `what: image X, source Y`; says
    /// whether it did.
    fn field<T: PartialEq + Display>(
        &mut self,
        path: &[u8],
        what: &str,
        image: T,
        source: T,
    ) -> bool {
        let differs = image != source;
        if differs {
            self.diff(path, format!("{what}: image {image}, source {source}"));
        }
        differs
    }
}

/// One comparison of an image with its tree.
struct Verifier<'a, 'o> {
    reader: &'a ImageReader,
    tree: &'a Tree,
    /// Whether inodes have the extra time fields.
    large: bool,
    /// Access times are not compared (`--no-atime`).
    no_atime: bool,
    out: Reports<'o>,
    /// Content bytes compared.
    bytes: u64,
}

impl Verifier<'_, '_> {
    /// Compares every entry of the tree with the image walk, then reports
    /// what the image has beyond the tree.
    fn compare(&mut self, walk: &[WalkEntry]) -> Result<()> {
        let by_path: HashMap<&[u8], &WalkEntry> =
            walk.iter().map(|e| (e.path.as_slice(), e)).collect();
        let expected = tree_paths(self.tree);
        let names = link_counts(self.tree, &expected);
        let added_lost_found = self.tree.lookup(Tree::ROOT, LOST_FOUND).is_none();
        let mut ino_of: HashMap<NodeId, u32> = HashMap::new();
        let mut node_of: HashMap<u32, NodeId> = HashMap::new();
        for (path, id) in &expected {
            self.out.check()?;
            let Some(entry) = by_path.get(path.as_slice()) else {
                self.out.diff(path, "missing from the image");
                continue;
            };
            if let Some(&ino) = ino_of.get(id) {
                if ino != entry.ino {
                    self.out
                        .diff(path, "should be a hard link, is a separate inode");
                }
                continue;
            }
            if let Some(&other) = node_of.get(&entry.ino) {
                if other != *id {
                    self.out
                        .diff(path, "is a hard link, should be a separate inode");
                    continue;
                }
            }
            ino_of.insert(*id, entry.ino);
            node_of.insert(entry.ino, *id);
            let mut links = names.get(id).copied().unwrap_or(1);
            if *id == Tree::ROOT && added_lost_found {
                links += 1;
            }
            self.compare_entry(path, *id, entry.ino, links)?;
        }
        let known: std::collections::HashSet<&[u8]> =
            expected.iter().map(|(p, _)| p.as_slice()).collect();
        for e in walk {
            // The lost+found the build added (and whatever e2fsck put in
            // it) is the filesystem's, not content.
            let ours = added_lost_found && e.in_lost_found();
            if !ours && !known.contains(e.path.as_slice()) {
                self.out.diff(&e.path, "in the image, not in the sources");
            }
        }
        Ok(())
    }

    /// Compares one entry: its inode with the tree's node.
    fn compare_entry(&mut self, path: &[u8], id: NodeId, ino: u32, links: u64) -> Result<()> {
        let node = self.tree.node(id);
        let inode = self
            .reader
            .inode(ino)
            .with_context(|| format!("/{}", kiln_tree::escape(path)))?;
        let kind = type_bits(&node.body);
        if inode.kind() != kind {
            self.out
                .field(path, "type", type_name(inode.kind()), type_name(kind));
            return Ok(());
        }
        let symlink = matches!(node.body, Body::Symlink(_));
        self.compare_meta(path, ino, &inode, &node.meta, symlink)?;
        let links = if links > u64::from(LINK_MAX) {
            1
        } else {
            links
        };
        self.out
            .field(path, "link count", u64::from(inode.links), links);
        match &node.body {
            Body::File(data) => self.compare_file(path, ino, &inode, data)?,
            Body::Symlink(target) => {
                let got = self.reader.read_link(ino, &inode)?;
                self.out.field(
                    path,
                    "symlink target",
                    kiln_tree::escape(&got).to_string(),
                    kiln_tree::escape(target).to_string(),
                );
            }
            Body::CharDevice(major, minor) | Body::BlockDevice(major, minor) => {
                self.out.field(
                    path,
                    "device number",
                    Device(inode.device()),
                    Device(Some((*major, *minor))),
                );
            }
            Body::Dir(_) | Body::Fifo | Body::Socket => {}
        }
        Ok(())
    }

    /// Compares mode bits, owner, times and xattrs.
    fn compare_meta(
        &mut self,
        path: &[u8],
        ino: u32,
        inode: &InodeView,
        meta: &Metadata,
        symlink: bool,
    ) -> Result<()> {
        let perm = inode.perm();
        self.out.field(path, "mode", Octal(perm), Octal(meta.perm));
        self.out.field(path, "uid", inode.uid, meta.uid);
        self.out.field(path, "gid", inode.gid, meta.gid);
        let stored = |t: Timestamp| Time(stored_time(t, self.large));
        let times = meta.times();
        // readlink gives a symlink whose mtime or ctime is not older than
        // its atime a new atime every time (relatime), the build's and this
        // comparison's own readlink included: such an atime cannot be
        // pinned down.
        let atime_moves = symlink && (times.mtime >= times.atime || times.ctime >= times.atime);
        if !self.no_atime
            && !atime_moves
            && self
                .out
                .field(path, "atime", Time(inode.atime), stored(times.atime))
        {
            self.out.atimes += 1;
        }
        self.out
            .field(path, "mtime", Time(inode.mtime), stored(times.mtime));
        self.out
            .field(path, "ctime", Time(inode.ctime), stored(times.ctime));
        if let (Some(want), true) = (times.crtime, self.large) {
            self.out.field(
                path,
                "crtime",
                MaybeTime(inode.crtime),
                MaybeTime(Some(stored_time(want, self.large))),
            );
        }
        let mut got = self.reader.xattrs(ino)?;
        got.sort();
        let mut want: Vec<(Vec<u8>, Vec<u8>)> = meta
            .xattrs()
            .iter()
            .map(|x| (x.name.clone(), x.value.clone()))
            .collect();
        want.sort();
        if got != want {
            let names = |v: &[(Vec<u8>, Vec<u8>)]| {
                v.iter()
                    .map(|(n, _)| kiln_tree::escape(n).to_string())
                    .collect::<Vec<_>>()
            };
            let detail = if names(&got) == names(&want) {
                format!("xattr values differ ({})", names(&want).join(", "))
            } else {
                format!(
                    "xattrs: image [{}], source [{}]",
                    names(&got).join(", "),
                    names(&want).join(", ")
                )
            };
            self.out.diff(path, detail);
        }
        Ok(())
    }

    /// Compares a regular file's size, holes and bytes.
    fn compare_file(
        &mut self,
        path: &[u8],
        ino: u32,
        inode: &InodeView,
        data: &FileData,
    ) -> Result<()> {
        if inode.size != data.size {
            self.out.field(path, "size", inode.size, data.size);
            return Ok(());
        }
        let map = self.reader.file_map(ino, inode)?;
        let bs = self.reader.superblock().block_size;
        let got = map.data_ranges(inode.size, bs);
        let want = block_ranges(&data.data(), u64::from(bs), data.size);
        if matches!(map, FileMap::Blocks { .. }) && got != want {
            self.out.diff(
                path,
                format!(
                    "data ranges (the rest are holes): image {}, source {}",
                    Ranges(&got),
                    Ranges(&want)
                ),
            );
        }
        // Where both are holes both read as zeros: compare where either
        // has data.
        let ranges = block_ranges(&[got, want].concat(), u64::from(bs), data.size);
        let reader = self.reader;
        let compared = compare_bytes(
            data,
            &ranges,
            |at, buf| Ok(reader.read_file(&map, at, buf)?),
        )?;
        self.bytes += compared.bytes;
        if let Some(first) = compared.first_difference {
            self.out
                .diff(path, format!("content differs from byte {first}"));
        }
        Ok(())
    }
}

/// What a comparison of a file's bytes found.
struct Compared {
    /// Bytes found equal.
    bytes: u64,
    /// Where the first difference is, if any.
    first_difference: Option<u64>,
}

/// Compares the bytes of the source file `data` in `ranges` with the
/// image's, read by `read_image` (at an offset, into a buffer), a chunk at
/// a time, up to the first chunk that differs.
fn compare_bytes(
    data: &FileData,
    ranges: &[std::ops::Range<u64>],
    mut read_image: impl FnMut(u64, &mut [u8]) -> Result<()>,
) -> Result<Compared> {
    let origin = || data.origin().display().to_string();
    let source = data.source.open().with_context(origin)?;
    let mut want = vec![0u8; CHUNK];
    let mut got = vec![0u8; CHUNK];
    let mut bytes = 0;
    for range in ranges {
        let mut at = range.start;
        while at < range.end {
            // OK to cast: at most CHUNK.
            let n = CHUNK.min((range.end - at) as usize);
            source
                .read_exact_at(&mut want[..n], at)
                .with_context(origin)?;
            read_image(at, &mut got[..n])?;
            if let Some(k) = want[..n].iter().zip(&got[..n]).position(|(a, b)| a != b) {
                return Ok(Compared {
                    bytes,
                    first_difference: Some(at + k as u64),
                });
            }
            bytes += n as u64;
            at += n as u64;
        }
    }
    Ok(Compared {
        bytes,
        first_difference: None,
    })
}

/// Every path of the tree (relative, `/`-joined; the root is empty) with its
/// node, depth first in name order.
fn tree_paths(tree: &Tree) -> Vec<(Vec<u8>, NodeId)> {
    let mut out = vec![(Vec::new(), Tree::ROOT)];
    let mut stack = vec![(Vec::new(), Tree::ROOT)];
    while let Some((prefix, dir)) = stack.pop() {
        let mut children = Vec::new();
        for (name, child) in tree.node(dir).entries() {
            let mut path = prefix.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend(name);
            children.push((path, child));
        }
        for (path, child) in children.iter().rev() {
            if tree.node(*child).is_dir() {
                stack.push((path.clone(), *child));
            }
        }
        out.extend(children);
    }
    out
}

/// The link count each node should have: its names for files, 2 plus its
/// subdirectories for directories ("." and its name, or ".." for the root).
fn link_counts(tree: &Tree, paths: &[(Vec<u8>, NodeId)]) -> HashMap<NodeId, u64> {
    let mut counts: HashMap<NodeId, u64> = HashMap::new();
    for (_, id) in paths {
        let node = tree.node(*id);
        if node.is_dir() {
            let subdirs = node
                .entries()
                .filter(|&(_, c)| tree.node(c).is_dir())
                .count();
            counts.insert(*id, 2 + subdirs as u64);
        } else {
            *counts.entry(*id).or_default() += 1;
        }
    }
    counts
}

/// The inode type bits of a node.
fn type_bits(body: &Body) -> u16 {
    match body {
        Body::Fifo => S_IFIFO,
        Body::CharDevice(..) => S_IFCHR,
        Body::Dir(_) => S_IFDIR,
        Body::BlockDevice(..) => S_IFBLK,
        Body::File(_) => S_IFREG,
        Body::Symlink(_) => S_IFLNK,
        Body::Socket => S_IFSOCK,
    }
}

/// A name for inode type bits.
fn type_name(bits: u16) -> &'static str {
    match bits {
        S_IFIFO => "fifo",
        S_IFCHR => "character device",
        S_IFDIR => "directory",
        S_IFBLK => "block device",
        S_IFREG => "regular file",
        S_IFLNK => "symlink",
        S_IFSOCK => "socket",
        _ => "unknown",
    }
}

/// The byte ranges the writer maps for a file's data ranges: each rounded
/// out to whole blocks, sorted, merged, and cut at the size.
fn block_ranges(data: &[std::ops::Range<u64>], bs: u64, size: u64) -> Vec<std::ops::Range<u64>> {
    let mut sorted: Vec<_> = data.iter().filter(|r| r.start < r.end).cloned().collect();
    sorted.sort_by_key(|r| r.start);
    let mut out: Vec<std::ops::Range<u64>> = Vec::new();
    for r in sorted {
        let start = r.start / bs * bs;
        let end = r.end.div_ceil(bs).saturating_mul(bs).min(size);
        match out.last_mut() {
            Some(last) if last.end >= start => last.end = last.end.max(end),
            _ => out.push(start..end),
        }
    }
    out
}

/// Permission bits printed in octal.
#[derive(PartialEq)]
struct Octal(u16);

impl Display for Octal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// A timestamp printed as a UTC date and time with nanoseconds.
#[derive(PartialEq)]
struct Time(Timestamp);

impl Display for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Timestamp { secs, nanos } = self.0;
        write!(f, "{}.{nanos:09} UTC", crate::utc(secs))
    }
}

/// A timestamp the inode may not hold (a creation time).
#[derive(PartialEq)]
struct MaybeTime(Option<Timestamp>);

impl Display for MaybeTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(t) => Time(t).fmt(f),
            None => f.write_str("none"),
        }
    }
}

/// A device number as `ls -l` shows it (`major, minor`).
#[derive(PartialEq)]
struct Device(Option<(u32, u32)>);

impl Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some((major, minor)) => write!(f, "{major}, {minor}"),
            None => f.write_str("none"),
        }
    }
}

/// Byte ranges as `0-4096 8192-12288` (`none` for none).
struct Ranges<'a>(&'a [std::ops::Range<u64>]);

impl Display for Ranges<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, r) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            write!(f, "{sep}{}-{}", r.start, r.end)?;
        }
        Ok(())
    }
}
