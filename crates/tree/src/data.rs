//! Where a regular file's bytes come from, and reading them back at emit time.
//!
//! A host directory's files are read from the host when the image is written
//! (and checked for changes since the tree was read). Sources that are not
//! host files keep their bytes themselves: in memory (inline spec text), or in
//! a spool file that a reader fills while it reads a stream (a tar archive),
//! each file at its own base offset with its holes left as holes.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The bytes of one regular file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DataSource {
    /// A host file, read when the image is written.
    Host(HostPath),
    /// Bytes in memory (the text of a spec line).
    Bytes(Arc<Inline>),
    /// Bytes `base..base + size` of a spool file.
    Spool(Arc<Spooled>, u64),
}

impl DataSource {
    /// What to name in messages: the host path, the spec line or the archive.
    pub fn origin(&self) -> PathBuf {
        match self {
            DataSource::Host(host) => host.path(),
            DataSource::Bytes(inline) => inline.origin.clone(),
            DataSource::Spool(spooled, _) => spooled.archive.clone(),
        }
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
    /// A host file changed since the tree was read.
    #[error("the file changed while the image was being built ({0})")]
    Changed(String),
}

/// An open source of file bytes.
#[derive(Debug)]
pub enum DataReader<'a> {
    /// An open host file.
    File(File),
    /// Bytes in memory.
    Bytes(&'a [u8]),
    /// A spool file and the base of this file in it.
    Spool(&'a File, u64),
}

impl DataSource {
    /// Opens the bytes of a file of `size` bytes; a host file must still
    /// have that size.
    pub fn open(&self, size: u64) -> Result<DataReader<'_>, DataError> {
        match self {
            DataSource::Host(host) => {
                let file = kiln_host::open_source(&host.path())?;
                let now = file.metadata()?.len();
                if now != size {
                    return Err(DataError::Changed(format!(
                        "size was {size} bytes, now {now}"
                    )));
                }
                Ok(DataReader::File(file))
            }
            DataSource::Bytes(inline) => Ok(DataReader::Bytes(&inline.bytes)),
            DataSource::Spool(spooled, base) => Ok(DataReader::Spool(&spooled.file, *base)),
        }
    }
}

impl DataReader<'_> {
    /// Fills `buf` from byte `pos` of the file; a host file that ends early
    /// has changed.
    pub fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> Result<(), DataError> {
        let got = match self {
            DataReader::File(f) => kiln_host::read_at(f, buf, pos)?,
            DataReader::Spool(f, base) => kiln_host::read_at(f, buf, base + pos)?,
            DataReader::Bytes(b) => {
                let start = (pos as usize).min(b.len());
                let n = buf.len().min(b.len() - start);
                buf[..n].copy_from_slice(&b[start..start + n]);
                n
            }
        };
        if got < buf.len() {
            return Err(DataError::Changed(format!(
                "it ended at byte {} while {} bytes were expected",
                pos + got as u64,
                pos + buf.len() as u64
            )));
        }
        Ok(())
    }
}
