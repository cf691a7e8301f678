//! The spool: one temporary file holding the data of every regular file of
//! an archive, read as a stream and needed again when the image is written.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::data::Spooled;
use crate::DataSource;

/// Files start on this boundary in the spool, so a block-aligned hole in a
/// file is a block-aligned hole in the spool (left unwritten, not stored).
const ALIGN: u64 = 4096;

/// The temporary file and the end of the room handed out so far. Each file
/// gets its own range, `base..base + size`; its data segments are written at
/// `base + offset` and its holes never, so the spool stays sparse (on hosts
/// whose filesystems make unwritten ranges holes).
pub(super) struct Spool {
    /// The temporary file, shared with every file's data source.
    file: Arc<Spooled>,
    /// The end of the last file's room, rounded up to [`ALIGN`].
    end: u64,
}

impl Spool {
    /// Creates the spool of `archive` in the system's temporary directory;
    /// it is deleted once the tree and everything reading it are dropped.
    pub(super) fn new(archive: PathBuf) -> io::Result<Spool> {
        Ok(Spool {
            file: Arc::new(Spooled::new(tempfile::tempfile()?, archive)),
            end: 0,
        })
    }

    /// Reserves room for a file of `size` bytes and returns its base, or
    /// `None` if the spool would pass the largest offset there is.
    pub(super) fn reserve(&mut self, size: u64) -> Option<u64> {
        let base = self.end;
        self.end = base.checked_add(size)?.checked_next_multiple_of(ALIGN)?;
        Some(base)
    }

    /// Writes `buf` at byte `pos` of the spool.
    pub(super) fn write_at(&self, pos: u64, buf: &[u8]) -> io::Result<()> {
        kiln_host::write_at(self.file.file(), buf, pos)
    }

    /// Where a file reserved at `base` is read from.
    pub(super) fn source(&self, base: u64) -> DataSource {
        DataSource::Spool(Arc::clone(&self.file), base)
    }

    /// Extends the spool over all the room handed out, so that reading the
    /// whole last block of a file that ends in a hole finds zeros there
    /// rather than the end of the spool.
    pub(super) fn finish(&self) -> io::Result<()> {
        self.file.file().set_len(self.end)
    }
}
