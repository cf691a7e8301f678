//! Restores the tree of an ext2/3/4 or FAT image, or the subtree at a path
//! inside it, into a new directory on the host, without mounting it: what
//! `kiln extract` does.
//!
//! The main entry is [`extract`]: an [`ImageReader`] and a path inside the
//! image in, a [`Report`] of what the host refused out; [`extract_fat`]
//! does the same from a [`kiln_fat::FatReader`] (FAT keeps directories and
//! files only, with their times: no owners, modes, links or xattrs). The
//! two share everything that touches the host (the staging directory, the
//! directory fds, the confinement); only the walk and what an entry
//! carries differ, so they are two functions rather than a trait over
//! both readers. In the data flow it
//! is the read side's last step: image → `kiln_ext::ImageReader` (which
//! refuses names that are not single path components, maps that reach a
//! block twice, and bad checksums) → this crate → [`kiln_host::DestDir`].
//!
//! The image is untrusted, so the destination is confined by construction:
//! - everything is written into a temporary directory beside the
//!   destination, renamed to it only when complete; on an error it is
//!   removed, and [`kiln_host::remove_partial_outputs`] removes it from a
//!   signal handler;
//! - every entry is created relative to its open parent directory, one
//!   single-component name at a time, never following a symlink (see
//!   [`DestDir`]);
//! - a hard link only ever names an entry this extraction created.
//!
//! Owners, device nodes and trusted/security xattrs need privilege: what the
//! host refuses is counted in the [`Report`], not fatal. ctime cannot be set
//! by any host call.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod fat;

pub use fat::extract_fat;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use kiln_ext::mode::{S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK};
use kiln_ext::{ImageReader, InodeView, ReadError, WalkEntry, ROOT_INO};
use kiln_host::{DestDir, HostTime, NodeKind};
use kiln_tree::{escape, split_parent, Timestamp};

/// Bytes copied at a time.
const CHUNK: usize = 1 << 20;
/// How many paths of each kind of failure the report names.
const SHOWN_PATHS: usize = 3;
/// The name of the extracted tree inside the temporary directory, renamed
/// to the destination when complete.
const STAGED: &[u8] = b"tree";

/// Why an extraction failed. Nothing is left at the destination.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// The image could not be read at `path` (escaped for display).
    #[error("{path}: {source}")]
    Read {
        /// The path inside the image.
        path: String,
        /// What the reader found.
        #[source]
        source: ReadError,
    },
    /// The FAT image could not be read at `path` (escaped for display).
    #[error("{path}: {source}")]
    FatRead {
        /// The path inside the image.
        path: String,
        /// What the reader found.
        #[source]
        source: kiln_fat::ReadError,
    },
    /// The path inside the image is not absolute.
    #[error("{path}: paths inside an image start with /")]
    NotAbsolute {
        /// The path given.
        path: String,
    },
    /// An inode of a type no file can have.
    #[error("{path}: inode {ino} has unknown type {kind:#o}")]
    UnknownType {
        /// The path inside the image.
        path: String,
        /// The inode.
        ino: u32,
        /// Its type bits.
        kind: u16,
    },
    /// The destination exists and is not an empty directory to fill.
    #[error("{}: already exists (the destination must not exist, or be an empty directory)", path.display())]
    Exists {
        /// The destination.
        path: PathBuf,
    },
    /// Writing the destination failed.
    #[error("{}: {what}: {source}", path.display())]
    Dest {
        /// The destination, or the entry being written below it.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// What the host said.
        #[source]
        source: io::Error,
    },
}

/// What could not be restored: per kind (`owners`, `device nodes`, ...),
/// the count and the first few paths inside the image.
#[derive(Debug, Default)]
pub struct Report(BTreeMap<&'static str, (usize, Vec<String>)>);

impl Report {
    /// Whether everything was restored.
    pub fn is_complete(&self) -> bool {
        self.0.is_empty()
    }

    /// Records a failed host call (an `Err` of `result`) as `what` at
    /// `path`; returns whether the call succeeded.
    fn check(&mut self, what: &'static str, path: &[u8], result: io::Result<()>) -> bool {
        if result.is_err() {
            let (count, paths) = self.0.entry(what).or_default();
            *count += 1;
            if paths.len() < SHOWN_PATHS {
                paths.push(escape(path));
            }
        }
        result.is_ok()
    }
}

/// One line per kind: `not restored: 3 owners (/a, /b, /c, ...)`.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (what, (count, paths)) in &self.0 {
            let more = if *count > paths.len() { ", ..." } else { "" };
            writeln!(
                f,
                "not restored: {count} {what} ({}{more})",
                paths.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Restores the entry at `path` inside the image (`/` for all of it) and
/// everything below it to `dest`, which must not exist, or be an empty
/// directory when a directory is restored. The root's lost+found is left
/// out (a build makes its own). Refuses an image the reader cannot read
/// safely ([`ImageReader::refuse_unreadable`]).
pub fn extract(reader: &ImageReader, path: &[u8], dest: &Path) -> Result<Report, ExtractError> {
    let read_err = |p: &[u8]| {
        let path = escape(p);
        move |source| ExtractError::Read { path, source }
    };
    if !path.starts_with(b"/") {
        return Err(ExtractError::NotAbsolute { path: escape(path) });
    }
    reader.refuse_unreadable().map_err(read_err(b"/"))?;
    let start = reader.lookup(path).map_err(read_err(path))?;
    let is_dir = reader.inode(start).map_err(read_err(path))?.kind() == S_IFDIR;
    if start == ROOT_INO && !is_dir {
        return Err(read_err(path)(ReadError::CorruptInode {
            ino: start,
            what: "the root is not a directory".into(),
        }));
    }
    let replaces_empty_dir = check_dest(dest, is_dir)?;
    let walk = reader.walk(start).map_err(read_err(path))?;
    let staging = Staging::create(dest)?;
    let mut x = Extractor {
        reader,
        out: Out::new(&staging, path, dest)?,
        report: Report::default(),
        restored: HashMap::new(),
        dirs: Vec::new(),
    };
    for entry in &walk {
        if start == ROOT_INO && entry.in_lost_found() {
            continue;
        }
        x.restore_entry(entry)?;
    }
    for (at, ino, inode) in std::mem::take(&mut x.dirs).iter().rev() {
        x.set_meta(at, *ino, inode)?;
    }
    let report = x.report;
    staging.commit(dest, replaces_empty_dir)?;
    Ok(report)
}

/// Refuses a destination that exists, unless it is an empty directory and
/// a directory is restored into it; returns whether it exists.
fn check_dest(dest: &Path, is_dir: bool) -> Result<bool, ExtractError> {
    let Ok(meta) = dest.symlink_metadata() else {
        return Ok(false);
    };
    let empty_dir = meta.is_dir()
        && std::fs::read_dir(dest)
            .map_err(dest_err(dest, "listing"))?
            .next()
            .is_none();
    if !(empty_dir && is_dir) {
        return Err(ExtractError::Exists { path: dest.into() });
    }
    Ok(true)
}

/// The [`ExtractError::Dest`] of a failed host call on `path`.
fn dest_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> ExtractError + 'a {
    move |source| ExtractError::Dest {
        path: path.into(),
        what,
        source,
    }
}

/// The temporary directory beside the destination that the tree is
/// restored into (as [`STAGED`]), removed unless committed.
struct Staging {
    dir: tempfile::TempDir,
}

impl Staging {
    /// Creates the directory beside `dest` and lists it for removal on
    /// interruption (the list is held from before the directory exists
    /// until it is listed, so an interruption in between removes it too).
    fn create(dest: &Path) -> Result<Staging, ExtractError> {
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut partial = kiln_host::partial_outputs();
        let dir = tempfile::Builder::new()
            .prefix(".kiln-")
            .suffix(".tmp")
            .tempdir_in(parent)
            .map_err(dest_err(dest, "creating a temporary directory beside it"))?;
        partial.add(dir.path());
        Ok(Staging { dir })
    }

    /// Renames the restored tree to `dest` (replacing the empty directory
    /// there, if `replaces_empty_dir`) and removes the temporary directory.
    fn commit(self, dest: &Path, replaces_empty_dir: bool) -> Result<(), ExtractError> {
        let staged = self.dir.path().join(kiln_host::name_from_bytes(STAGED));
        if replaces_empty_dir {
            // Windows cannot rename over a directory; elsewhere this is
            // what rename would do.
            std::fs::remove_dir(dest).map_err(dest_err(dest, "replacing the empty directory"))?;
        }
        let renamed = std::fs::rename(&staged, dest);
        let temp = self.dir.path().to_path_buf();
        // Dropping the TempDir removes what is left of it.
        drop(self.dir);
        kiln_host::partial_outputs().remove(&temp);
        renamed.map_err(dest_err(dest, "renaming the extracted tree into place"))
    }
}

/// Where an entry goes.
struct At {
    /// Its path below the staging directory: [`STAGED`], then the walk's
    /// path below it, `/`-joined.
    staged: Vec<u8>,
    /// The path inside the image, for messages and the report.
    image_path: Vec<u8>,
}

impl At {
    /// The path below the destination (the walk's), for messages.
    fn rel(&self) -> &[u8] {
        self.staged.get(STAGED.len() + 1..).unwrap_or_default()
    }

    /// Its parent directory below the staging directory, and its name.
    fn parent_and_name(&self) -> (&[u8], &[u8]) {
        split_parent(&self.staged)
    }
}

/// The tree being restored: the staging directory, opened, and where the
/// entries of a walk go in it. Shared by the ext and FAT extractions.
struct Out<'r> {
    /// The path inside the image the walk starts at.
    image_path: &'r [u8],
    root: DestDir,
    staging_path: PathBuf,
    /// The destination, for messages.
    dest: &'r Path,
    /// The parent directory opened last (its staged path), kept for its
    /// next entries.
    parent: Option<(Vec<u8>, DestDir)>,
}

impl<'r> Out<'r> {
    /// Opens the staging directory for the walk from `image_path`.
    fn new(
        staging: &Staging,
        image_path: &'r [u8],
        dest: &'r Path,
    ) -> Result<Out<'r>, ExtractError> {
        let path = staging.dir.path();
        Ok(Out {
            image_path,
            root: DestDir::open(path).map_err(dest_err(path, "opening"))?,
            staging_path: path.to_path_buf(),
            dest,
            parent: None,
        })
    }

    /// Where the walk's entry at `path` (relative to its start) goes below
    /// the staging directory.
    fn place(&self, path: &[u8]) -> At {
        let mut staged = STAGED.to_vec();
        let mut image_path = self.image_path.to_vec();
        if !path.is_empty() {
            staged.push(b'/');
            staged.extend(path);
            if !image_path.ends_with(b"/") {
                image_path.push(b'/');
            }
            image_path.extend(path);
        }
        At { staged, image_path }
    }

    /// The open directory at `parent` (its staged path), reusing the last
    /// one opened.
    fn dir(&mut self, parent: &[u8]) -> Result<&DestDir, ExtractError> {
        let cached = self.parent.as_ref().is_some_and(|(p, _)| p == parent);
        if !cached {
            let dir = self.open(parent)?;
            self.parent = Some((parent.to_vec(), dir));
        }
        // OK to unwrap: set just above when it was not.
        Ok(self
            .parent
            .as_ref()
            .map(|(_, d)| d)
            .expect("parent directory open"))
    }

    /// Opens the directory at the staged path `path`, beneath the staging
    /// directory.
    fn open(&self, path: &[u8]) -> Result<DestDir, ExtractError> {
        let components: Vec<&[u8]> = path
            .split(|&c| c == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        self.root
            .open_beneath(&components)
            .map_err(dest_err(&self.staging_path, "opening a directory it holds"))
    }

    /// The [`ExtractError::Dest`] of a host call for the entry `at`.
    /// The path named is where the entry goes: below the destination.
    fn dest_err(&self, at: &At, what: &'static str) -> impl FnOnce(io::Error) -> ExtractError {
        let path = if at.rel().is_empty() {
            self.dest.to_path_buf()
        } else {
            self.dest.join(host_path(at.rel()))
        };
        move |source| ExtractError::Dest { path, what, source }
    }
}

/// One run of [`extract`].
struct Extractor<'r> {
    reader: &'r ImageReader,
    out: Out<'r>,
    report: Report,
    /// Where each inode restored so far went (its staged path, for hard links).
    restored: HashMap<u32, Vec<u8>>,
    /// Directories restored, parents first; their metadata is set at the
    /// end, children first, since creating an entry changes its parent's mtime.
    dirs: Vec<(At, u32, InodeView)>,
}

impl Extractor<'_> {
    /// The [`ExtractError::Read`] of a read at `at`.
    fn read_err(at: &At) -> impl FnOnce(ReadError) -> ExtractError + '_ {
        |source| ExtractError::Read {
            path: escape(&at.image_path),
            source,
        }
    }

    /// Creates the entry of the walk: a hard link to where its inode went
    /// before, or a new file; a directory's metadata waits for the end.
    fn restore_entry(&mut self, entry: &WalkEntry) -> Result<(), ExtractError> {
        let at = self.out.place(&entry.path);
        let ino = entry.ino;
        let (parent, name) = at.parent_and_name();
        if let Some(first) = self.restored.get(&ino) {
            let (from_parent, from_name) = split_parent(first);
            let from = self.out.open(from_parent)?;
            let from_name = from_name.to_vec();
            let linked = self.out.dir(parent)?.hard_link(name, &from, &from_name);
            self.report.check("hard links", &at.image_path, linked);
            return Ok(());
        }
        let inode = self.reader.inode(ino).map_err(Self::read_err(&at))?;
        let made = match inode.kind() {
            S_IFDIR => {
                let made = self.out.dir(parent)?.create_dir(name);
                made.map_err(self.out.dest_err(&at, "creating the directory"))?;
                self.dirs.push((at, ino, inode));
                return Ok(());
            }
            S_IFREG => {
                self.restore_file(ino, &inode, &at)?;
                true
            }
            S_IFLNK => {
                let target = self
                    .reader
                    .read_link(ino, &inode)
                    .map_err(Self::read_err(&at))?;
                let made = self.out.dir(parent)?.make_symlink(name, &target);
                self.report.check("symlinks", &at.image_path, made)
            }
            kind => {
                let (what, node) = match (kind, inode.device()) {
                    (S_IFIFO, _) => ("named pipes", NodeKind::Fifo),
                    (S_IFSOCK, _) => ("sockets", NodeKind::Socket),
                    (S_IFCHR, Some((ma, mi))) => ("device nodes", NodeKind::CharDevice(ma, mi)),
                    (S_IFBLK, Some((ma, mi))) => ("device nodes", NodeKind::BlockDevice(ma, mi)),
                    _ => {
                        return Err(ExtractError::UnknownType {
                            path: escape(&at.image_path),
                            ino,
                            kind,
                        })
                    }
                };
                let made = self.out.dir(parent)?.make_node(name, node, inode.perm());
                self.report.check(what, &at.image_path, made)
            }
        };
        if made {
            self.set_meta(&at, ino, &inode)?;
            self.restored.insert(ino, at.staged);
        }
        Ok(())
    }

    /// Writes a regular file's data where the image maps it; the rest
    /// stays holes.
    fn restore_file(&mut self, ino: u32, inode: &InodeView, at: &At) -> Result<(), ExtractError> {
        let map = self
            .reader
            .file_map(ino, inode)
            .map_err(Self::read_err(at))?;
        let (parent, name) = at.parent_and_name();
        let out: File = self
            .out
            .dir(parent)?
            .create_file(name)
            .map_err(self.out.dest_err(at, "creating the file"))?;
        let bs = self.reader.superblock().block_size;
        let mut buf = vec![0u8; CHUNK];
        for range in map.data_ranges(inode.size, bs) {
            let mut pos = range.start;
            while pos < range.end {
                // OK to cast: at most CHUNK.
                let n = CHUNK.min((range.end - pos) as usize);
                self.reader
                    .read_file(&map, pos, &mut buf[..n])
                    .map_err(Self::read_err(at))?;
                kiln_host::write_at(&out, &buf[..n], pos)
                    .map_err(self.out.dest_err(at, "writing"))?;
                pos += n as u64;
            }
        }
        // Sets the size past a final hole.
        out.set_len(inode.size)
            .map_err(self.out.dest_err(at, "setting the size"))
    }

    /// Restores owner, mode (unless a symlink), xattrs and times, reporting
    /// what the host refused. Owner first (chown clears setuid bits and
    /// file capabilities), times last (the other calls move ctime only).
    fn set_meta(&mut self, at: &At, ino: u32, inode: &InodeView) -> Result<(), ExtractError> {
        let xattrs = self.reader.xattrs(ino).map_err(Self::read_err(at))?;
        let (parent, name) = at.parent_and_name();
        let dir = self.out.dir(parent)?;
        let mut results: Vec<(&'static str, io::Result<()>)> = Vec::new();
        if dir.owner(name).ok() != Some((inode.uid, inode.gid)) {
            results.push(("owners", dir.set_owner(name, inode.uid, inode.gid)));
        }
        if inode.kind() != S_IFLNK {
            results.push(("modes", dir.set_perm(name, inode.perm())));
        }
        for (xattr, value) in xattrs {
            results.push(("xattrs", dir.set_xattr(name, &xattr, &value)));
        }
        let times = dir.set_times(name, host_time(inode.atime), host_time(inode.mtime));
        results.push(("times", times));
        for (what, result) in results {
            self.report.check(what, &at.image_path, result);
        }
        Ok(())
    }
}

/// The host path of a `/`-separated path below the destination.
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
