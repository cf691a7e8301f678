//! Where a regular file's bytes come from, and reading them back at emit time.
//!
//! A host directory's files are read from the host when the image is written
//! (and checked for changes since the tree was read). Sources that are not
//! host files keep their bytes themselves: in memory (inline spec text), or in
//! a spool file that a reader fills while it reads a stream (a tar archive),
//! each file at its own base offset with its holes left as holes.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// The bytes of one regular file.
#[derive(Clone, Debug)]
pub enum DataSource {
    /// A host file, read when the image is written.
    Host(PathBuf),
    /// Bytes in memory.
    Bytes(Arc<[u8]>),
    /// Bytes `base..base + size` of a spool file.
    Spool(Arc<File>, u64),
}

impl PartialEq for DataSource {
    fn eq(&self, other: &DataSource) -> bool {
        match (self, other) {
            (DataSource::Host(a), DataSource::Host(b)) => a == b,
            (DataSource::Bytes(a), DataSource::Bytes(b)) => a == b,
            (DataSource::Spool(a, x), DataSource::Spool(b, y)) => Arc::ptr_eq(a, b) && x == y,
            _ => false,
        }
    }
}

impl Eq for DataSource {}

impl std::hash::Hash for DataSource {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            DataSource::Host(p) => p.hash(state),
            DataSource::Bytes(b) => b.hash(state),
            DataSource::Spool(_, base) => base.hash(state),
        }
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
            DataSource::Host(path) => {
                let file = kiln_host::open_source(path)?;
                let now = file.metadata()?.len();
                if now != size {
                    return Err(DataError::Changed(format!(
                        "size was {size} bytes, now {now}"
                    )));
                }
                Ok(DataReader::File(file))
            }
            DataSource::Bytes(bytes) => Ok(DataReader::Bytes(bytes)),
            DataSource::Spool(file, base) => Ok(DataReader::Spool(file, *base)),
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
