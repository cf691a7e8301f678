//! Where a regular file's bytes come from, and reading them back at emit time.
//!
//! A host directory's files are read from the host when the image is written,
//! and each is checked against what the tree recorded of it (a
//! [`Fingerprint`] of its size and times): [`DataReader::check`] tells a
//! whole copy of the file as it was from one of a file that was rewritten,
//! resized, or changed during the copy. Sources that are not host files keep
//! their bytes themselves: in memory (inline spec text), or in a spool file
//! that a reader fills while it reads a stream (a tar archive), each file at
//! its own base offset with its holes left as holes.

use std::fs::File;
use std::hash::{Hash as _, Hasher as _};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_host::FileStamp;

/// The bytes of one regular file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DataSource {
    /// A host file, read when the image is written, and what it looked like
    /// when the tree was read. (Two fields rather than a struct: the
    /// fingerprint fits beside the variant's tag, the source stays 24 bytes.)
    Host(HostPath, Fingerprint),
    /// Bytes in memory (the text of a spec line).
    Bytes(Arc<Inline>),
    /// Bytes `base..base + size` of a spool file.
    Spool(Arc<Spooled>, u64),
}

impl DataSource {
    /// What to name in messages: the host path, the spec line or the archive.
    pub fn origin(&self) -> PathBuf {
        match self {
            DataSource::Host(host, _) => host.path(),
            DataSource::Bytes(inline) => inline.origin.clone(),
            DataSource::Spool(spooled, _) => spooled.archive.clone(),
        }
    }
}

/// What a host file looked like when the tree was read: a digest of its
/// [`FileStamp`] (size, mtime and ctime as the walk's `lstat` or the spec's
/// `fstat` saw them, before any policy rewrote the tree's times).
///
/// Four bytes per file rather than the stamp's 32, to keep the tree model
/// small; a changed file goes unnoticed only when the digests of its two
/// stamps collide, one chance in 2³².
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint(u32);

impl Fingerprint {
    /// The fingerprint of `stamp`.
    pub fn of(stamp: &FileStamp) -> Fingerprint {
        // SipHash with fixed keys: the same digest in every process (it is
        // never stored, but the walk and the copy must agree).
        let mut h = std::hash::DefaultHasher::new();
        stamp.hash(&mut h);
        let digest = h.finish();
        Fingerprint((digest ^ (digest >> 32)) as u32)
    }
}

/// The path of a host file, stored as its directory (shared by every entry
/// listed there, which keep their names in it side by side) and its name:
/// a few bytes per file rather than a whole path each.
#[derive(Clone, Debug)]
pub struct HostPath {
    dir: Arc<HostDir>,
    start: u32,
    len: u32,
}

/// A host directory and the names of the entries listed in it (the same
/// buffer as the tree's entries of that directory).
#[derive(Debug)]
pub(crate) struct HostDir {
    path: PathBuf,
    names: Arc<Vec<u8>>,
}

impl HostPath {
    /// The host file at `path`.
    pub fn new(path: &Path) -> HostPath {
        let (dir, name) = match (path.parent(), path.file_name()) {
            (Some(dir), Some(name)) => (dir, kiln_host::name_bytes(name).into_owned()),
            _ => (path, Vec::new()),
        };
        let len = u32::try_from(name.len()).unwrap_or(0);
        let dir = Arc::new(HostDir {
            path: dir.to_path_buf(),
            names: Arc::new(name),
        });
        HostPath { dir, start: 0, len }
    }

    /// The paths of the entries `names` (raw bytes, as
    /// [`kiln_host::name_bytes`] gives them) of directory `dir`, in that
    /// order, and the buffer that holds the names side by side; `None` if
    /// the names take 4 GiB or more.
    pub(crate) fn listed(
        dir: &Path,
        names: &[impl AsRef<[u8]>],
    ) -> Option<(Arc<Vec<u8>>, Vec<HostPath>)> {
        let mut packed = Vec::with_capacity(names.iter().map(|n| n.as_ref().len()).sum());
        let mut spans = Vec::with_capacity(names.len());
        for name in names.iter().map(AsRef::as_ref) {
            let start = u32::try_from(packed.len()).ok()?;
            spans.push((start, u32::try_from(name.len()).ok()?));
            packed.extend_from_slice(name);
        }
        let packed = Arc::new(packed);
        let dir = Arc::new(HostDir {
            path: dir.to_path_buf(),
            names: Arc::clone(&packed),
        });
        let paths = spans.into_iter().map(|(start, len)| HostPath {
            dir: Arc::clone(&dir),
            start,
            len,
        });
        Some((packed, paths.collect()))
    }

    /// Where the name is in its directory's names: start and length.
    pub(crate) fn span(&self) -> (u32, u32) {
        (self.start, self.len)
    }

    /// The full path.
    pub fn path(&self) -> PathBuf {
        let name = &self.dir.names[self.start as usize..(self.start + self.len) as usize];
        if name.is_empty() {
            return self.dir.path.clone();
        }
        self.dir.path.join(kiln_host::name_from_bytes(name))
    }
}

impl PartialEq for HostPath {
    fn eq(&self, other: &HostPath) -> bool {
        self.path() == other.path()
    }
}

impl Eq for HostPath {}

impl std::hash::Hash for HostPath {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.path().hash(state);
    }
}

/// Bytes held in memory, with where they were written for messages.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Inline {
    bytes: Arc<[u8]>,
    origin: PathBuf,
}

impl Inline {
    /// `bytes`, named `origin` in messages.
    pub fn new(bytes: Arc<[u8]>, origin: PathBuf) -> Inline {
        Inline { bytes, origin }
    }
}

/// A spool file and the archive whose file data it holds.
#[derive(Debug)]
pub struct Spooled {
    file: File,
    archive: PathBuf,
}

impl Spooled {
    /// `file`, holding the data of the files of `archive`.
    pub(crate) fn new(file: File, archive: PathBuf) -> Spooled {
        Spooled { file, archive }
    }

    /// The spool file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }
}

/// Two spool references are equal when they are the same spool.
impl PartialEq for Spooled {
    fn eq(&self, other: &Spooled) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for Spooled {}

impl std::hash::Hash for Spooled {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.archive.hash(state);
    }
}

/// Why a file's bytes could not be read back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The host refused.
    #[error("{source}")]
    Io {
        /// What the host said.
        #[from]
        source: io::Error,
    },
    /// A host file changed while it was read.
    #[error("the file changed while the image was being built ({0})")]
    Changed(String),
}

/// An open source of file bytes.
#[derive(Debug)]
pub enum DataReader<'a> {
    /// An open host file.
    Host(HostReader),
    /// Bytes in memory.
    Bytes(&'a [u8]),
    /// A spool file and the base of this file in it.
    Spool(&'a File, u64),
}

/// An open host file, with what the tree recorded of it and its stamp when
/// it was opened.
#[derive(Debug)]
pub struct HostReader {
    file: File,
    seen: Fingerprint,
    opened: FileStamp,
}

/// How a host file compares, after a copy, with what the tree recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// As the tree read it, and still so after the copy (sources that are
    /// not host files are always so).
    Unchanged,
    /// Written since the tree was read but not during the copy, with the
    /// size the tree recorded: the copy is whole, of newer bytes.
    Rewritten,
    /// Resized since the tree was read but not during the copy: it had
    /// `now` bytes while it was copied.
    Resized {
        /// Its size during the copy.
        now: u64,
    },
    /// Changed during the copy: the bytes read may mix old and new ones.
    Moving,
}

impl DataSource {
    /// Opens the bytes of a file; a host file's stamp is taken then, for
    /// [`DataReader::check`].
    pub fn open(&self) -> Result<DataReader<'_>, DataError> {
        match self {
            DataSource::Host(host, seen) => {
                let file = kiln_host::open_source(&host.path())?;
                let opened = kiln_host::file_stamp(&file)?;
                Ok(DataReader::Host(HostReader {
                    file,
                    seen: *seen,
                    opened,
                }))
            }
            DataSource::Bytes(inline) => Ok(DataReader::Bytes(&inline.bytes)),
            DataSource::Spool(spooled, base) => Ok(DataReader::Spool(&spooled.file, *base)),
        }
    }
}

impl DataReader<'_> {
    /// Fills `buf` from byte `pos` of the file. A host file reads as zeros
    /// past the size it had when opened (a file resized since the tree was
    /// read is copied at the size the tree recorded; [`check`](Self::check)
    /// tells it); one that ends before that size changed while it was read.
    pub fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> Result<(), DataError> {
        let (got, want) = match self {
            DataReader::Host(host) => {
                let want = host.opened.size.saturating_sub(pos).min(buf.len() as u64) as usize;
                let got = kiln_host::read_at(&host.file, &mut buf[..want], pos)?;
                buf[got..].fill(0);
                (got, want)
            }
            DataReader::Spool(f, base) => (kiln_host::read_at(f, buf, base + pos)?, buf.len()),
            DataReader::Bytes(b) => {
                let start = (pos as usize).min(b.len());
                let n = buf.len().min(b.len() - start);
                buf[..n].copy_from_slice(&b[start..start + n]);
                (n, buf.len())
            }
        };
        if got < want {
            return Err(DataError::Changed(format!(
                "it ended at byte {} while {} bytes were expected",
                pos + got as u64,
                pos + want as u64
            )));
        }
        Ok(())
    }

    /// After a copy: how the file compares with what the tree recorded,
    /// `size` bytes and its fingerprint (one `fstat`).
    pub fn check(&self, size: u64) -> Result<Freshness, DataError> {
        let DataReader::Host(host) = self else {
            return Ok(Freshness::Unchanged);
        };
        let now = kiln_host::file_stamp(&host.file)?;
        Ok(if now != host.opened {
            Freshness::Moving
        } else if now.size != size {
            Freshness::Resized { now: now.size }
        } else if Fingerprint::of(&now) != host.seen {
            Freshness::Rewritten
        } else {
            Freshness::Unchanged
        })
    }
}
