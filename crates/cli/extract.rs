//! `kiln extract IMAGE[:PART] [PATH] DEST`: restores an image's tree, or
//! the subtree at PATH, into a new directory, without mounting it.
//!
//! Everything is read with kiln's own reader, which knows the inode numbers
//! (hard links), exact holes, xattrs and device numbers that `ext4-view`
//! does not expose. Content is written where the image maps data; the rest
//! stays holes. Owners, device nodes and trusted/security xattrs need
//! privilege: what the host refuses is reported, not fatal. ctime cannot be
//! set by any host call.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kiln_ext::mode::{S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK};
use kiln_ext::{ImageReader, InodeView, ROOT_INO};
use kiln_host::{HostTime, NodeKind};
use kiln_tree::Timestamp;

use crate::flags::ExtractArgs;
use crate::image::Image;

/// Bytes copied at a time.
const CHUNK: usize = 1 << 20;

/// How many paths of each kind of failure the report names.
const SHOWN_PATHS: usize = 3;

/// What could not be restored: per kind, the count and the first few paths.
#[derive(Default)]
struct Report(BTreeMap<&'static str, (usize, Vec<PathBuf>)>);

impl Report {
    /// Records that `what` could not be restored at `path`.
    fn add(&mut self, what: &'static str, path: &Path) {
        let (count, paths) = self.0.entry(what).or_default();
        *count += 1;
        if paths.len() < SHOWN_PATHS {
            paths.push(path.to_path_buf());
        }
    }

    /// Records a failed host call (an `Err` of `result`) as `what` at
    /// `path`; returns whether the call succeeded.
    fn check(&mut self, what: &'static str, path: &Path, result: std::io::Result<()>) -> bool {
        if result.is_err() {
            self.add(what, path);
        }
        result.is_ok()
    }

    /// One stderr line per kind: `not restored: 3 owners (a, b, c, ...)`.
    fn print(&self) {
        for (what, (count, paths)) in &self.0 {
            let mut shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            if *count > paths.len() {
                shown.push("...".to_string());
            }
            eprintln!("kiln: not restored: {count} {what} ({})", shown.join(", "));
        }
    }
}

/// One run of `extract`: the open image and what went wrong so far.
struct Extractor {
    reader: ImageReader,
    report: Report,
    /// Where each inode restored so far went (for hard links).
    restored: HashMap<u32, PathBuf>,
    /// Directories restored, parents first; their metadata is set at the
    /// end, children first, since creating an entry changes its parent's mtime.
    dirs: Vec<(PathBuf, u32, InodeView)>,
}

/// `kiln extract IMAGE[:PART] [PATH] DEST`.
pub(crate) fn extract(args: &ExtractArgs) -> Result<()> {
    let image = Image::resolve(&args.image)?;
    let (dest, rest) = args
        .paths
        .split_last()
        .context("kiln extract: no destination given")?;
    let root = rest.first().cloned().unwrap_or_else(|| OsString::from("/"));
    let root = kiln_host::name_bytes(&root).into_owned();
    if !root.starts_with(b"/") {
        bail!(
            "{}: {:?}: paths inside an image start with /",
            image.name,
            String::from_utf8_lossy(&root)
        );
    }
    let mut x = Extractor {
        reader: image.reader()?,
        report: Report::default(),
        restored: HashMap::new(),
        dirs: Vec::new(),
    };
    let at = |p: &[u8]| format!("{}: {}", image.name, String::from_utf8_lossy(p));
    let start = x.reader.lookup(&root).with_context(|| image.name.clone())?;
    let walk = x.reader.walk(start).with_context(|| at(&root))?;
    let dest = Path::new(dest);
    let is_dir = x.reader.inode(start).with_context(|| at(&root))?.kind() == S_IFDIR;
    let reuse_dest = check_dest(dest, is_dir)?;
    let from_image_root = start == ROOT_INO;
    for entry in &walk {
        // The filesystem's own lost+found is not content: a build from
        // the extracted tree makes its own.
        if from_image_root && entry.in_lost_found() {
            continue;
        }
        let target = if entry.path.is_empty() {
            dest.to_path_buf()
        } else {
            dest.join(host_path(&entry.path))
        };
        if entry.path.is_empty() && reuse_dest {
            let inode = x.reader.inode(entry.ino).with_context(|| at(&root))?;
            x.dirs.push((target, entry.ino, inode));
            continue;
        }
        let mut shown = root.clone();
        if !entry.path.is_empty() {
            if !shown.ends_with(b"/") {
                shown.push(b'/');
            }
            shown.extend(&entry.path);
        }
        x.restore_entry(entry.ino, &target)
            .with_context(|| at(&shown))?;
    }
    for (dir, ino, inode) in std::mem::take(&mut x.dirs).iter().rev() {
        x.set_meta(dir, *ino, inode)?;
    }
    x.report.print();
    Ok(())
}

/// Refuses a destination that exists, unless it is an empty directory and
/// a directory is restored into it; returns whether it exists.
fn check_dest(dest: &Path, is_dir: bool) -> Result<bool> {
    if dest.symlink_metadata().is_err() {
        return Ok(false);
    }
    let empty_dir = dest.is_dir()
        && std::fs::read_dir(dest)
            .with_context(|| dest.display().to_string())?
            .next()
            .is_none();
    if !(empty_dir && is_dir) {
        bail!(
            "{}: already exists (the destination must not exist, or be an empty directory)",
            dest.display()
        );
    }
    Ok(true)
}

impl Extractor {
    /// Creates the entry for inode `ino` at `dest`: a hard link to where
    /// the inode went before, or a new file; a directory's metadata waits
    /// for the end.
    fn restore_entry(&mut self, ino: u32, dest: &Path) -> Result<()> {
        let at_dest = || dest.display().to_string();
        if let Some(first) = self.restored.get(&ino) {
            let linked = std::fs::hard_link(first, dest);
            self.report.check("hard links", dest, linked);
            return Ok(());
        }
        let inode = self.reader.inode(ino)?;
        let perm = inode.perm();
        let made = match inode.kind() {
            S_IFDIR => {
                std::fs::create_dir(dest).with_context(at_dest)?;
                self.dirs.push((dest.to_path_buf(), ino, inode));
                return Ok(());
            }
            S_IFREG => {
                self.restore_file(ino, &inode, dest)?;
                true
            }
            S_IFLNK => {
                let map = self.reader.file_map(ino, &inode)?;
                let mut target = vec![0u8; usize::try_from(inode.size).unwrap_or(0)];
                self.reader.read_file(&map, 0, &mut target)?;
                let made = kiln_host::make_symlink(&target, dest);
                self.report.check("symlinks", dest, made)
            }
            kind => {
                let (what, node) = match (kind, inode.device()) {
                    (S_IFIFO, _) => ("named pipes", NodeKind::Fifo),
                    (S_IFSOCK, _) => ("sockets", NodeKind::Socket),
                    (S_IFCHR, Some((ma, mi))) => ("device nodes", NodeKind::CharDevice(ma, mi)),
                    (S_IFBLK, Some((ma, mi))) => ("device nodes", NodeKind::BlockDevice(ma, mi)),
                    _ => bail!(
                        "{}: inode {ino} has unknown type {:#o}",
                        dest.display(),
                        kind
                    ),
                };
                let made = kiln_host::make_node(dest, node, perm);
                self.report.check(what, dest, made)
            }
        };
        if made {
            self.restored.insert(ino, dest.to_path_buf());
            self.set_meta(dest, ino, &inode)?;
        }
        Ok(())
    }

    /// Writes a regular file's data where the image maps it; the rest
    /// stays holes.
    fn restore_file(&mut self, ino: u32, inode: &InodeView, dest: &Path) -> Result<()> {
        let at_dest = || dest.display().to_string();
        let map = self.reader.file_map(ino, inode)?;
        let out = File::create_new(dest).with_context(at_dest)?;
        let bs = self.reader.superblock().block_size;
        let mut buf = vec![0u8; CHUNK];
        for range in map.data_ranges(inode.size, bs) {
            let mut at = range.start;
            while at < range.end {
                let n = CHUNK.min((range.end - at) as usize);
                self.reader.read_file(&map, at, &mut buf[..n])?;
                kiln_host::write_at(&out, &buf[..n], at).with_context(at_dest)?;
                at += n as u64;
            }
        }
        // Sets the size past a final hole.
        out.set_len(inode.size).with_context(at_dest)
    }

    /// Restores owner, mode (unless a symlink), xattrs and times, reporting
    /// what the host refused. Owner first (chown clears setuid bits and
    /// file capabilities), times last (the other calls move ctime only).
    fn set_meta(&mut self, dest: &Path, ino: u32, inode: &InodeView) -> Result<()> {
        let current = kiln_host::lstat(dest).ok();
        if current.is_none_or(|c| (c.uid, c.gid) != (inode.uid, inode.gid)) {
            let set = kiln_host::set_owner(dest, inode.uid, inode.gid);
            self.report.check("owners", dest, set);
        }
        let is_symlink = inode.kind() == S_IFLNK;
        if !is_symlink {
            let set = kiln_host::set_perm(dest, inode.perm());
            self.report.check("modes", dest, set);
        }
        for (name, value) in self.reader.xattrs(ino)? {
            let set = kiln_host::set_xattr(dest, &name, &value);
            self.report.check("xattrs", dest, set);
        }
        let set = kiln_host::set_times(dest, host_time(inode.atime), host_time(inode.mtime));
        self.report.check("times", dest, set);
        Ok(())
    }
}

/// The host path of a `/`-separated image path.
fn host_path(path: &[u8]) -> PathBuf {
    path.split(|&c| c == b'/')
        .map(kiln_host::name_from_bytes)
        .collect()
}

/// An image time as a host time.
fn host_time(t: Timestamp) -> HostTime {
    HostTime {
        secs: t.secs,
        nanos: t.nanos,
    }
}
