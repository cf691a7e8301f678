//! Where the reader leaves file data for the image writer: in place in a
//! plain archive file, or copied to a spool (one temporary file holding the
//! data of every regular file of an archive read as a stream, which cannot
//! be read again when the image is written).

use std::fs::File;
use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use super::input::Input;
use super::sparse::SparseMap;
use crate::data::{ArchiveData, SparseData};
use crate::model::is_dense;
use crate::DataSource;

/// Files start on this boundary in the spool, so a block-aligned hole in a
/// file is a block-aligned hole in the spool (left unwritten, not stored).
const ALIGN: u64 = 4096;
/// How much file data is copied to the spool at a time.
const COPY_CHUNK: usize = 1 << 20;

/// Where file data goes.
pub(super) enum Store {
    /// A plain archive file: its members' data stay where they are.
    InPlace(Arc<ArchiveData>),
    /// A stream: its members' data are copied to the spool.
    Spool(Spool),
}

impl Store {
    /// The plain archive `file` (named `archive`), read in place.
    pub(super) fn in_place(file: File, archive: PathBuf) -> io::Result<Store> {
        Ok(Store::InPlace(Arc::new(ArchiveData::in_place(
            file, archive,
        )?)))
    }
}

/// Where the data of a member of an archive read in place is: its data
/// ranges `ranges` of a file of `size` bytes, stored one after another from
/// byte `base` of the archive.
pub(super) fn in_place_source(
    data: Arc<ArchiveData>,
    base: u64,
    size: u64,
    ranges: &[Range<u64>],
) -> DataSource {
    if is_dense(size, ranges) {
        // The file's bytes are the archive's from `base`, as in a spool.
        DataSource::Archive(data, base)
    } else {
        DataSource::ArchiveSparse(Arc::new(SparseData::new(data, base, ranges)))
    }
}

/// The temporary file and the end of the room handed out so far. Each file
/// gets its own range, `base..base + size`; its data segments are written at
/// `base + offset` and its holes never, so the spool stays sparse (on hosts
/// whose filesystems make unwritten ranges holes).
pub(super) struct Spool {
    /// The temporary file, shared with every file's data source.
    file: Arc<ArchiveData>,
    /// The end of the last file's room, rounded up to [`ALIGN`].
    end: u64,
    /// The copy buffer, allocated at the first file.
    buf: Vec<u8>,
}

/// Why a member's data could not be copied to the spool.
pub(super) enum CopyError {
    /// The spool would pass the largest offset there is: a file of this size.
    TooLarge(u64),
    /// Reading the archive failed.
    Read(io::Error),
    /// Writing the spool failed (a full temporary directory).
    Write(io::Error),
}

impl Spool {
    /// Creates the spool of `archive` in the system's temporary directory;
    /// it is deleted once the tree and everything reading it are dropped.
    pub(super) fn new(archive: PathBuf) -> io::Result<Spool> {
        Ok(Spool {
            file: Arc::new(ArchiveData::spool(tempfile::tempfile()?, archive)),
            end: 0,
            buf: Vec::new(),
        })
    }

    /// Copies the data of the file `map` describes, its segments as they
    /// come next in `input`, to room of its own; returns where it is read
    /// from.
    pub(super) fn copy_file(
        &mut self,
        input: &mut Input,
        map: &SparseMap,
    ) -> Result<DataSource, CopyError> {
        let base = self
            .reserve(map.real_size)
            .ok_or(CopyError::TooLarge(map.real_size))?;
        for &(offset, length) in &map.segments {
            self.copy(input, base + offset, length)?;
        }
        Ok(DataSource::Archive(Arc::clone(&self.file), base))
    }

    /// Reserves room for a file of `size` bytes and returns its base, or
    /// `None` if the spool would pass the largest offset there is.
    fn reserve(&mut self, size: u64) -> Option<u64> {
        let base = self.end;
        self.end = base.checked_add(size)?.checked_next_multiple_of(ALIGN)?;
        Some(base)
    }

    /// Copies the next `length` bytes of `input` to byte `pos` of the spool.
    fn copy(&mut self, input: &mut Input, pos: u64, length: u64) -> Result<(), CopyError> {
        if self.buf.is_empty() {
            self.buf = vec![0u8; COPY_CHUNK];
        }
        let mut done = 0;
        while done < length {
            let n = (length - done).min(COPY_CHUNK as u64) as usize;
            let chunk = &mut self.buf[..n];
            input.exact(chunk).map_err(CopyError::Read)?;
            kiln_host::write_at(self.file.file(), chunk, pos + done).map_err(CopyError::Write)?;
            done += n as u64;
        }
        Ok(())
    }

    /// Extends the spool over all the room handed out, so that reading the
    /// whole last block of a file that ends in a hole finds zeros there
    /// rather than the end of the spool.
    pub(super) fn finish(&self) -> io::Result<()> {
        self.file.file().set_len(self.end)
    }
}
