//! Where a regular file's bytes come from, and reading them back at emit time.
//!
//! A host directory's files are read from the host when the image is written,
//! and each is checked against what the tree recorded of it (a
//! [`Fingerprint`] of its size and times): [`DataReader::check`] tells a
//! whole copy of the file as it was from one of a file that was rewritten,
//! resized, or changed during the copy. Sources that are not host files keep
//! their bytes themselves: in memory (inline spec text), or in an archive's
//! data file: a plain tar archive itself, read in place (and checked for
//! changes since the tree was read), or a spool file that the reader fills
//! while it reads a stream (stdin, a compressed archive), each file at its
//! own base offset with its holes left as holes. A filesystem image used as
//! a source keeps its files' bytes where they are: [`ImageFiles`] (which
//! the image's reader implements) opens a file by the number the reader
//! put in the tree, and reads it when the new image is written.

use std::fmt;
use std::fs::File;
use std::hash::{Hash as _, Hasher as _};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

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
    /// Bytes `base..base + size` of an archive's data file.
    Archive(Arc<ArchiveData>, u64),
    /// A sparse member of a plain archive, read in place: its data ranges
    /// lie one after another in the archive.
    ArchiveSparse(Arc<SparseData>),
    /// File `key` of a filesystem image (its inode number, or what else its
    /// reader numbers files by).
    Image(SourceImage, u32),
}

impl DataSource {
    /// What to name in messages: the host path, the spec line or the archive.
    pub fn origin(&self) -> PathBuf {
        match self {
            DataSource::Host(host, _) => host.path(),
            DataSource::Bytes(inline) => inline.origin.clone(),
            DataSource::Archive(data, _) => data.archive.clone(),
            DataSource::ArchiveSparse(sparse) => sparse.data.archive.clone(),
            DataSource::Image(image, _) => image.0.origin().to_path_buf(),
        }
    }
}

/// The files of a filesystem image that is a source: its reader, which
/// opens a file by the key it put in the tree when the new image is
/// written. The image is untrusted: a file that cannot be read is a
/// [`DataError`], never a panic.
pub trait ImageFiles: fmt::Debug + Send + Sync {
    /// The image, as messages name it (`disk.img:2`).
    fn origin(&self) -> &Path;

    /// Opens file `key`; fails if the image changed since the tree was read
    /// from it, or the file cannot be read.
    fn open_file(&self, key: u32) -> Result<Box<dyn ImageFile + '_>, DataError>;
}

/// One open file of a source image.
pub trait ImageFile: fmt::Debug + Send + Sync {
    /// Fills `buf` from byte `pos` of the file; its holes read as zeros.
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> Result<(), DataError>;

    /// Where bytes `pos..pos + len` of the file lie in the image file, for
    /// a sink that clones them (see [`DataReader::backing`]): the file, the
    /// offset of byte `pos` and how many bytes from there lie in one piece.
    fn backing(&self, pos: u64, len: u64) -> Option<(&File, u64, u64)>;
}

/// A source image's files, shared by every file the image put in the tree.
/// Two are equal when they are the same image reader.
#[derive(Clone, Debug)]
pub struct SourceImage(pub Arc<dyn ImageFiles>);

impl PartialEq for SourceImage {
    fn eq(&self, other: &SourceImage) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.0), Arc::as_ptr(&other.0))
    }
}

impl Eq for SourceImage {}

impl std::hash::Hash for SourceImage {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.origin().hash(state);
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

/// The file that holds the data of an archive's regular files, and the
/// archive: a spool file that the reader filled, or the archive itself.
#[derive(Debug)]
pub struct ArchiveData {
    file: File,
    archive: PathBuf,
    /// For an archive read in place: its size and modification time when it
    /// was opened, which must not have changed when its data is read.
    in_place: Option<Unchanged>,
}

/// A file read in place long after it was opened (a plain archive, a
/// source image): its size and modification time then, which must still
/// be its own whenever its bytes are read, or the tree no longer describes
/// them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unchanged {
    len: u64,
    mtime: SystemTime,
}

impl Unchanged {
    /// The size and modification time of `file` now.
    pub fn of(file: &File) -> io::Result<Unchanged> {
        let meta = file.metadata()?;
        Ok(Unchanged {
            len: meta.len(),
            mtime: meta.modified()?,
        })
    }

    /// Fails if `file` (the `what` of messages: `archive`, `source image`)
    /// has another size or modification time now.
    pub fn check(&self, file: &File, what: &str) -> Result<(), DataError> {
        let now = Unchanged::of(file)?;
        if now.len != self.len {
            return Err(DataError::Changed(format!(
                "the {what} was {} bytes when read, now {}",
                self.len, now.len
            )));
        }
        if now.mtime != self.mtime {
            return Err(DataError::Changed(format!(
                "the {what} was modified after it was read"
            )));
        }
        Ok(())
    }
}

impl ArchiveData {
    /// A spool file `file`, holding the data of the files of `archive`.
    pub(crate) fn spool(file: File, archive: PathBuf) -> ArchiveData {
        ArchiveData {
            file,
            archive,
            in_place: None,
        }
    }

    /// The plain archive `file` (at `archive`), its members' data read in
    /// place as long as it keeps its present size and modification time.
    pub(crate) fn in_place(file: File, archive: PathBuf) -> io::Result<ArchiveData> {
        Ok(ArchiveData {
            in_place: Some(Unchanged::of(&file)?),
            file,
            archive,
        })
    }

    /// The data file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Fails if an archive read in place has changed since it was opened:
    /// its data would no longer be the members' that the tree describes.
    fn check_unchanged(&self) -> Result<(), DataError> {
        match &self.in_place {
            Some(stamp) => stamp.check(&self.file, "archive"),
            None => Ok(()),
        }
    }
}

/// Two archive data references are equal when they are the same file.
impl PartialEq for ArchiveData {
    fn eq(&self, other: &ArchiveData) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for ArchiveData {}

impl std::hash::Hash for ArchiveData {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.archive.hash(state);
    }
}

/// Where a sparse member's data is in a plain archive read in place.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SparseData {
    data: Arc<ArchiveData>,
    /// The data ranges, ascending, each with the archive offset of its first
    /// byte.
    segments: Box<[(Range<u64>, u64)]>,
}

impl SparseData {
    /// A member whose data ranges `ranges` (ascending and disjoint) are
    /// stored one after another in `data`'s archive from byte `base`.
    pub(crate) fn new(data: Arc<ArchiveData>, base: u64, ranges: &[Range<u64>]) -> SparseData {
        let mut at = base;
        let segments = ranges
            .iter()
            .map(|r| {
                let segment = (r.clone(), at);
                at += r.end - r.start;
                segment
            })
            .collect();
        SparseData { data, segments }
    }

    /// Fills `buf` from byte `pos` of the member: zeros in its holes, its
    /// data from the archive. Returns the bytes read before the archive
    /// ended (all of `buf` unless it did).
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        buf.fill(0);
        let end = pos.saturating_add(buf.len() as u64);
        let first = self.segments.partition_point(|(r, _)| r.end <= pos);
        for (range, at) in &self.segments[first..] {
            let (from, to) = (range.start.max(pos), range.end.min(end));
            if from >= to {
                break;
            }
            let part = &mut buf[(from - pos) as usize..(to - pos) as usize];
            let got = kiln_host::read_at(&self.data.file, part, at + (from - range.start))?;
            if got < part.len() {
                return Ok((from - pos) as usize + got);
            }
        }
        Ok(buf.len())
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
    /// A source image's structures could not be read (the reader's
    /// message).
    #[error("{0}")]
    Corrupt(String),
}

/// An open source of file bytes.
#[derive(Debug)]
pub enum DataReader<'a> {
    /// An open host file.
    Host(HostReader),
    /// Bytes in memory.
    Bytes(&'a [u8]),
    /// An archive's data file and the base of this file in it.
    Archive(&'a File, u64),
    /// A sparse member of an archive read in place.
    ArchiveSparse(&'a SparseData),
    /// A file of a source image.
    Image(Box<dyn ImageFile + 'a>),
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
    /// [`DataReader::check`]; an archive read in place must still have its
    /// size and mtime.
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
            DataSource::Archive(data, base) => {
                data.check_unchanged()?;
                Ok(DataReader::Archive(&data.file, *base))
            }
            DataSource::ArchiveSparse(sparse) => {
                sparse.data.check_unchanged()?;
                Ok(DataReader::ArchiveSparse(sparse))
            }
            DataSource::Image(image, key) => Ok(DataReader::Image(image.0.open_file(*key)?)),
        }
    }
}

impl DataReader<'_> {
    /// Fills `buf` from byte `pos` of the file. A host file reads as zeros
    /// past the size it had when opened (a file resized since the tree was
    /// read is copied at the size the tree recorded; [`check`](Self::check)
    /// tells it); one that ends before that size changed while it was read,
    /// as has an archive read in place that ends early.
    pub fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> Result<(), DataError> {
        let (got, want) = match self {
            DataReader::Host(host) => {
                let want = host.opened.size.saturating_sub(pos).min(buf.len() as u64) as usize;
                let got = kiln_host::read_at(&host.file, &mut buf[..want], pos)?;
                buf[got..].fill(0);
                (got, want)
            }
            DataReader::Archive(f, base) => (kiln_host::read_at(f, buf, base + pos)?, buf.len()),
            DataReader::ArchiveSparse(sparse) => (sparse.read_at(buf, pos)?, buf.len()),
            DataReader::Image(file) => return file.read_exact_at(buf, pos),
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

    /// Where bytes `pos..pos + len` of the file lie in a host file, for a
    /// sink that clones them rather than copying them: the file, the offset
    /// of byte `pos` in it, and how many of the bytes it holds (a host file
    /// as much as it had when opened, which [`read_exact_at`](Self::read_exact_at)
    /// reads past as zeros; an image's file as much as lies in one piece).
    /// `None` for bytes in memory and sparse archive members, whose bytes
    /// are not one range of a file.
    pub fn backing(&self, pos: u64, len: u64) -> Option<(&File, u64, u64)> {
        match self {
            DataReader::Host(host) => {
                let held = host.opened.size.saturating_sub(pos).min(len);
                Some((&host.file, pos, held))
            }
            DataReader::Archive(f, base) => Some((f, base + pos, len)),
            DataReader::Image(file) => file.backing(pos, len),
            DataReader::Bytes(_) | DataReader::ArchiveSparse(_) => None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_members_read_holes_as_zeros_and_data_in_place() {
        let mut archive = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut archive, b"headerABCDEFxyz").unwrap();
        let data = Arc::new(ArchiveData::in_place(archive, "a.tar".into()).unwrap());
        // "ABCDEF" at 2..8, "xyz" at 12..15 of a 20-byte file.
        let sparse = SparseData::new(Arc::clone(&data), 6, &[2..8, 12..15]);
        let source = DataSource::ArchiveSparse(Arc::new(sparse));
        let reader = source.open().unwrap();
        let mut all = [9u8; 20];
        reader.read_exact_at(&mut all, 0).unwrap();
        assert_eq!(&all, b"\0\0ABCDEF\0\0\0\0xyz\0\0\0\0\0");
        let mut part = [9u8; 7];
        reader.read_exact_at(&mut part, 6).unwrap();
        assert_eq!(&part, b"EF\0\0\0\0x");
        // Data past the archive's end: the archive changed.
        let beyond = SparseData::new(data, 10, &[0..4, 8..12]);
        let source = DataSource::ArchiveSparse(Arc::new(beyond));
        let reader = source.open().unwrap();
        let e = reader.read_exact_at(&mut [0; 12], 0).unwrap_err();
        assert!(e.to_string().contains("ended at byte 9"), "{e}");
    }

    #[test]
    fn an_archive_read_in_place_must_not_change() {
        let mut archive = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut archive, &[1; 100]).unwrap();
        let file = File::open(archive.path()).unwrap();
        let data = Arc::new(ArchiveData::in_place(file, "a.tar".into()).unwrap());
        let source = DataSource::Archive(data, 10);
        assert!(source.open().is_ok());
        archive.as_file().set_len(40).unwrap();
        let e = source.open().unwrap_err().to_string();
        assert!(e.contains("100 bytes when read, now 40"), "{e}");
    }
}
