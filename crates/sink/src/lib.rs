//! Output sinks of kiln: where the emitted image bytes go.
//!
//! A [`Sink`] receives the image as positioned writes of non-overlapping byte
//! ranges (a file or a device also takes a range again: [`Sink::rewrites`]);
//! ranges never written read as zeros. [`SparseFile`]: a file created
//! beside the target, kept sparse (all-zero blocks are never written) and
//! renamed over the target only by [`SparseFile::commit`], so a failed build
//! leaves nothing behind; on a filesystem that shares extents it clones
//! whole blocks of source files into itself ([`Sink::clone_range`]).
//! [`stream::StreamSink`]: one forward stream, raw or zstd-compressed, to a
//! file or stdout. [`device::BlockDevice`]: a block device or a
//! region of an existing file, written in place. [`OffsetSink`]: one
//! partition of a disk's sink (where the partition is, kiln-disk decides).
//! [`target::check_output`] checks an output path before any source is read.
//!
//! Feature `zstd` (default) compresses streams with the C libzstd. The ext
//! writer depends on this crate without it, for [`Sink`] alone.
//!
//! Place in the data flow: sources → tree → plan → emit → **sink**.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod clone;
pub mod device;
pub mod size;
pub mod stream;
pub mod target;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// The granularity at which [`SparseFile`] looks for all-zero runs to skip.
const ZERO_CHECK_CHUNK: usize = 4096;

/// Why the output could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The output exists and overwriting was not asked for.
    #[error("{}: already exists (use --force to overwrite)", path.display())]
    Exists {
        /// The output path.
        path: PathBuf,
    },
    /// Creating, writing or renaming the output failed.
    #[error("{}: {what}{}: {source}", path.display(), at_offset(*offset))]
    Io {
        /// The output path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// Where in the image, for a write at an offset; `None` for the
        /// steps that have no offset (creating, flushing, renaming).
        offset: Option<u64>,
        /// What the host said.
        #[source]
        source: io::Error,
    },
}

/// A destination for image bytes written at absolute offsets.
///
/// Implementations are `Sync`: the emitter writes disjoint ranges from several
/// threads at once.
pub trait Sink: Sync {
    /// Writes `buf` at byte `offset` of the image.
    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), SinkError>;

    /// Everything below `offset` has been written: no later `write_at` lands
    /// below it. Streaming sinks emit the bytes up to there (zeros where
    /// nothing was written); a lower offset than before changes nothing.
    fn advance(&self, _offset: u64) -> Result<(), SinkError> {
        Ok(())
    }

    /// `range` must read as zeros in the finished image although nothing
    /// is written there: a sink whose target may hold old bytes (a block
    /// device) writes zeros, the others have nothing to do.
    fn zero(&self, _range: std::ops::Range<u64>) -> Result<(), SinkError> {
        Ok(())
    }

    /// The emitter will fill `range` (file and directory data) with the
    /// writes that follow: a file sink may allocate it up front. A hint;
    /// the others have nothing to do.
    fn reserve(&self, _range: std::ops::Range<u64>) -> Result<(), SinkError> {
        Ok(())
    }

    /// Bytes written but not yet final (a streaming sink holds them in
    /// memory until [`advance`](Sink::advance) passes them); the emitter
    /// waits before starting more work while this is large.
    fn pending(&self) -> u64 {
        0
    }

    /// Whether a range already written may be written again, with
    /// [`rewrite_at`](Sink::rewrite_at), before `advance` passes it: true for
    /// a file or a device, false for a stream (which may have emitted it).
    fn rewrites(&self) -> bool {
        false
    }

    /// Writes `buf` at byte `offset` over what an earlier write put there,
    /// every byte of it, zeros included. Only where
    /// [`rewrites`](Sink::rewrites) is true.
    fn rewrite_at(&self, offset: u64, buf: &[u8]) -> Result<(), SinkError> {
        self.write_at(offset, buf)
    }

    /// Whether [`clone_range`](Sink::clone_range) may share a source's
    /// extents: an output file on a filesystem that shares extents, with
    /// cloning asked for. A hint for the emitter, which then hands whole
    /// blocks of large enough files to `clone_range` first.
    fn clones(&self) -> bool {
        false
    }

    /// Makes the image's bytes from `offset` those of `src` from
    /// `src_offset`, up to `len` bytes, by sharing the source's extents
    /// rather than copying them, where it can; the caller writes the rest.
    /// Returns how many bytes from `offset` on it took: 0 when it cannot
    /// (the default), else a whole number of the output filesystem's blocks
    /// (or fewer when `src` ends first). A cloned range is written data, as
    /// a `write_at` of its bytes, but its zero blocks stay as the source
    /// keeps them (allocated, shared) instead of becoming holes.
    fn clone_range(
        &self,
        _offset: u64,
        _src: &File,
        _src_offset: u64,
        _len: u64,
    ) -> Result<u64, SinkError> {
        Ok(0)
    }
}

/// A part of another sink that starts `base` bytes into it: a partition of
/// a disk image.
#[derive(Clone, Copy)]
pub struct OffsetSink<'a> {
    inner: &'a dyn Sink,
    base: u64,
}

impl<'a> OffsetSink<'a> {
    /// The part of `inner` from byte `base` on.
    pub fn new(inner: &'a dyn Sink, base: u64) -> OffsetSink<'a> {
        OffsetSink { inner, base }
    }
}

impl Sink for OffsetSink<'_> {
    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), SinkError> {
        self.inner.write_at(self.base + offset, buf)
    }

    fn advance(&self, offset: u64) -> Result<(), SinkError> {
        self.inner.advance(self.base + offset)
    }

    fn zero(&self, range: std::ops::Range<u64>) -> Result<(), SinkError> {
        self.inner
            .zero(self.base + range.start..self.base + range.end)
    }

    fn reserve(&self, range: std::ops::Range<u64>) -> Result<(), SinkError> {
        self.inner
            .reserve(self.base + range.start..self.base + range.end)
    }

    fn rewrites(&self) -> bool {
        self.inner.rewrites()
    }

    fn rewrite_at(&self, offset: u64, buf: &[u8]) -> Result<(), SinkError> {
        self.inner.rewrite_at(self.base + offset, buf)
    }

    fn clones(&self) -> bool {
        self.inner.clones()
    }

    fn clone_range(
        &self,
        offset: u64,
        src: &File,
        src_offset: u64,
        len: u64,
    ) -> Result<u64, SinkError> {
        self.inner
            .clone_range(self.base + offset, src, src_offset, len)
    }
}

/// Whether committing an output file waits until its bytes are on stable
/// storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Rename as soon as the last byte is written and leave the writing to
    /// the kernel's writeback, as tar, cp and mksquashfs do: the output is
    /// complete when kiln exits, but a power loss shortly after can lose it.
    Writeback,
    /// Flush the file (fdatasync) before renaming it, as mke2fs does.
    Sync,
}

/// A file beside an output's target, given the target's name on commit and
/// leaving nothing if dropped (or interrupted, or killed) before: see
/// [`kiln_host::OutputFile`]. (A file written beside an image, such as its
/// bmap, is made the same way.)
#[derive(Debug)]
pub struct TempOutput {
    out: kiln_host::OutputFile,
    target: PathBuf,
    force: bool,
}

impl TempOutput {
    /// Creates the file beside `target`; fails early when `target` exists
    /// and `force` is false.
    pub fn create(target: &Path, force: bool) -> Result<TempOutput, SinkError> {
        if !force && target.symlink_metadata().is_ok() {
            return Err(SinkError::Exists {
                path: target.into(),
            });
        }
        let out = kiln_host::OutputFile::create(target)
            .map_err(|e| io_error(target, "creating a temporary file beside it", e))?;
        Ok(TempOutput {
            out,
            target: target.into(),
            force,
        })
    }

    /// The open file.
    pub fn file(&self) -> &File {
        self.out.file()
    }

    /// The final path.
    pub(crate) fn target(&self) -> &Path {
        &self.target
    }

    /// Sets the default permissions, flushes to stable storage if asked and
    /// gives the file its target's name.
    pub fn commit(self, durability: Durability) -> Result<(), SinkError> {
        let err = |what, e| io_error(&self.target, what, e);
        kiln_host::set_default_permissions(self.file())
            .map_err(|e| err("setting permissions", e))?;
        if durability == Durability::Sync {
            kiln_host::sync_data(self.file()).map_err(|e| err("flushing", e))?;
        }
        match self.out.persist(self.force) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(SinkError::Exists { path: self.target })
            }
            other => other.map_err(|e| io_error(&self.target, "renaming into place", e)),
        }
    }
}

/// The ` at byte offset N` of a message, for a failure that has an offset.
fn at_offset(offset: Option<u64>) -> String {
    offset.map_or(String::new(), |at| format!(" at byte offset {at}"))
}

/// An IO failure on the output at `path`, in a step that has no offset.
pub(crate) fn io_error(path: &Path, what: &'static str, source: io::Error) -> SinkError {
    SinkError::Io {
        path: path.into(),
        what,
        offset: None,
        source,
    }
}

/// An IO failure writing the output at `path` at byte `offset` of the image.
pub(crate) fn write_error(
    path: &Path,
    what: &'static str,
    offset: u64,
    source: io::Error,
) -> SinkError {
    SinkError::Io {
        path: path.into(),
        what,
        offset: Some(offset),
        source,
    }
}

/// A sparse image file, written beside its final path and renamed when complete.
///
/// With [`share_extents`](SparseFile::share_extents), on a filesystem that
/// shares extents, [`Sink::clone_range`] clones whole blocks of source
/// files on the same filesystem into it.
#[derive(Debug)]
pub struct SparseFile {
    out: TempOutput,
    cloning: Option<clone::Cloning>,
}

impl SparseFile {
    /// Creates the temporary file beside `target` with apparent size `size`.
    ///
    /// Fails early when `target` exists and `force` is false.
    pub fn create(target: &Path, size: u64, force: bool) -> Result<SparseFile, SinkError> {
        let out = TempOutput::create(target, force)?;
        out.file()
            .set_len(size)
            .map_err(|e| io_error(target, "setting the image size", e))?;
        Ok(SparseFile { out, cloning: None })
    }

    /// Clones source ranges into the file from now on, where its
    /// filesystem shares extents (probed in the target's directory); no
    /// change elsewhere. The file's data extents are then no longer
    /// preallocated ([`Sink::reserve`]): a clone would replace the blocks
    /// allocated for it, which costs more than it saves.
    pub fn share_extents(&mut self) {
        self.cloning = clone::Cloning::probe(self.out.target(), self.file());
    }

    /// The bytes cloned from sources so far (shared with them rather than
    /// written).
    pub fn shared_bytes(&self) -> u64 {
        self.cloning.as_ref().map_or(0, clone::Cloning::shared)
    }

    fn file(&self) -> &File {
        self.out.file()
    }

    /// Renames the image to its target path, after flushing it to stable
    /// storage with [`Durability::Sync`].
    pub fn commit(self, durability: Durability) -> Result<(), SinkError> {
        self.out.commit(durability)
    }
}

impl Sink for SparseFile {
    /// Writes the non-zero chunks of `buf`; all-zero chunks stay holes.
    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), SinkError> {
        for (start, run) in nonzero_runs(buf) {
            let at = offset + start as u64;
            kiln_host::write_at(self.file(), run, at)
                .map_err(|e| write_error(self.out.target(), "writing", at, e))?;
        }
        Ok(())
    }

    /// Allocates the range in the file, so that the parallel writes do not
    /// each allocate blocks while holding the file's lock.
    /// Not where it clones (see [`SparseFile::share_extents`]).
    fn reserve(&self, range: std::ops::Range<u64>) -> Result<(), SinkError> {
        if self.cloning.is_none() {
            kiln_host::preallocate(self.file(), range);
        }
        Ok(())
    }

    fn rewrites(&self) -> bool {
        true
    }

    /// Writes all of `buf`: its zero chunks must replace the earlier bytes.
    fn rewrite_at(&self, offset: u64, buf: &[u8]) -> Result<(), SinkError> {
        kiln_host::write_at(self.file(), buf, offset)
            .map_err(|e| write_error(self.out.target(), "writing", offset, e))
    }

    fn clones(&self) -> bool {
        self.cloning.as_ref().is_some_and(clone::Cloning::on)
    }

    fn clone_range(
        &self,
        offset: u64,
        src: &File,
        src_offset: u64,
        len: u64,
    ) -> Result<u64, SinkError> {
        Ok(self.cloning.as_ref().map_or(0, |c| {
            c.clone_into(self.file(), offset, src, src_offset, len)
        }))
    }
}

/// Splits `buf` into maximal runs of 4 KiB chunks that are not all zero,
/// with their start offsets within `buf`: what a sparse output writes (the
/// rest it leaves as holes).
pub fn nonzero_runs(buf: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut pos = 0;
    let chunk_zero = |at: usize| is_zero(&buf[at..(at + ZERO_CHECK_CHUNK).min(buf.len())]);
    std::iter::from_fn(move || {
        while pos < buf.len() && chunk_zero(pos) {
            pos += ZERO_CHECK_CHUNK;
        }
        if pos >= buf.len() {
            return None;
        }
        let start = pos;
        while pos < buf.len() && !chunk_zero(pos) {
            pos += ZERO_CHECK_CHUNK;
        }
        let end = pos.min(buf.len());
        Some((start, &buf[start..end]))
    })
}

/// Whether every byte of `bytes` is zero (a word at a time: this runs over
/// every byte an image writes).
pub fn is_zero(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(16);
    let words_zero = words
        .by_ref()
        .all(|w| u128::from_ne_bytes(w.try_into().unwrap()) == 0);
    words_zero && words.remainder().iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_chunks_are_skipped() {
        let mut buf = vec![0u8; 4 * ZERO_CHECK_CHUNK + 10];
        buf[ZERO_CHECK_CHUNK + 1] = 1;
        buf[4 * ZERO_CHECK_CHUNK + 9] = 2;
        let runs: Vec<_> = nonzero_runs(&buf).map(|(s, r)| (s, r.len())).collect();
        assert_eq!(
            runs,
            vec![
                (ZERO_CHECK_CHUNK, ZERO_CHECK_CHUNK),
                (4 * ZERO_CHECK_CHUNK, 10)
            ]
        );
    }

    #[test]
    fn zero_check() {
        assert!(is_zero(&[0; 33]));
        let mut b = [0u8; 33];
        b[32] = 1;
        assert!(!is_zero(&b));
        b[32] = 0;
        b[7] = 1;
        assert!(!is_zero(&b));
    }

    #[test]
    fn nothing_appears_until_commit_and_no_clobber() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.img");
        let sink = SparseFile::create(&target, 1 << 20, false).unwrap();
        sink.write_at(4096, b"kiln").unwrap();
        assert!(!target.exists());
        sink.commit(Durability::Sync).unwrap();
        let data = std::fs::read(&target).unwrap();
        assert_eq!(data.len(), 1 << 20);

        assert_eq!(&data[4096..4100], b"kiln");
        let err = SparseFile::create(&target, 1, false).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_rewrite_replaces_every_byte_zeros_included() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.img");
        let sink = SparseFile::create(&target, 1 << 20, false).unwrap();
        assert!(sink.rewrites() && OffsetSink::new(&sink, 4096).rewrites());
        sink.write_at(8192, &[1u8; 3 * ZERO_CHECK_CHUNK]).unwrap();
        let mut again = vec![2u8; 3 * ZERO_CHECK_CHUNK];
        again[..ZERO_CHECK_CHUNK].fill(0);
        OffsetSink::new(&sink, 4096)
            .rewrite_at(4096, &again)
            .unwrap();
        sink.commit(Durability::Writeback).unwrap();
        let data = std::fs::read(&target).unwrap();
        assert_eq!(&data[8192..8192 + again.len()], &again[..]);
    }

    #[test]
    fn dropped_sink_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.img");
        drop(SparseFile::create(&target, 1 << 20, false).unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
