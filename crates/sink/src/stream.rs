//! [`StreamSink`]: positioned writes turned into one forward byte stream.
//!
//! The emitter writes disjoint ranges in roughly ascending order from several
//! threads. A stream (a pipe, stdout, a zstd frame) can only go forward, so the
//! sink keeps the writes that land beyond its cursor as pending data and emits
//! them, with zeros across the gaps, as the emitter promises through
//! [`Sink::advance`] that nothing more will land below an offset. The stream
//! is exactly `size` bytes long; [`StreamSink::finish`] emits the rest and
//! reports the SHA-256 of the raw stream and, when compressed, its compressed
//! length.
//!
//! Compression is zstd, with the `zstd` feature (the C libzstd, whose
//! multithreaded compressor keeps up with the emitter).
//!
//! [`StreamFile`] is the same stream into a temporary file beside a target
//! path, renamed into place by [`StreamFile::commit`] like a
//! [`SparseFile`](crate::SparseFile).

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use sha2::{Digest, Sha256};

use crate::{io_error, write_error, Durability, Sink, SinkError, TempOutput};

/// Zeros emitted across gaps, a bounded chunk at a time.
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

/// The buffer between the sink and its writer: large writes of a slow writer
/// (a pipe, stdout's line buffering) stay large.
const OUT_BUFFER: usize = 1 << 20;

/// The name a stream's errors carry when it was not given one.
const DEFAULT_NAME: &str = "<output stream>";

/// How a stream is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// The raw image bytes.
    None,
    /// One zstd frame with its content size and checksum (with the `zstd`
    /// feature: the C libzstd).
    #[cfg(feature = "zstd")]
    Zstd {
        /// The compression level (1..=22; 0 means zstd's default, 3).
        level: i32,
        /// Worker threads of the compressor; 0 compresses on the writing thread.
        threads: u32,
    },
}

/// What a finished stream was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamSummary {
    /// The length of the raw (uncompressed) stream: the image size.
    pub size: u64,
    /// The SHA-256 of the raw stream.
    pub sha256: [u8; 32],
    /// The length of the compressed output, when compressed.
    pub compressed_bytes: Option<u64>,
}

/// A writer that counts the bytes passed through it.
#[cfg(feature = "zstd")]
struct Counting<W> {
    inner: W,
    count: u64,
}

#[cfg(feature = "zstd")]
impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

type BoxWriter = Box<dyn Write + Send>;

/// Where emitted bytes go.
enum Output {
    Raw(BufWriter<BoxWriter>),
    #[cfg(feature = "zstd")]
    Zstd(zstd::stream::write::Encoder<'static, Counting<BufWriter<BoxWriter>>>),
}

impl Output {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Output::Raw(w) => w.write_all(buf),
            #[cfg(feature = "zstd")]
            Output::Zstd(w) => w.write_all(buf),
        }
    }

    /// Ends the compressed frame and flushes everything to the writer;
    /// returns the compressed length, if compressed.
    fn finish(self) -> io::Result<Option<u64>> {
        let (buffered, count) = match self {
            Output::Raw(w) => (w, None),
            #[cfg(feature = "zstd")]
            Output::Zstd(enc) => {
                let counting = enc.finish()?;
                (counting.inner, Some(counting.count))
            }
        };
        let mut inner = buffered.into_inner().map_err(|e| e.into_error())?;
        inner.flush()?;
        Ok(count)
    }
}

/// The mutable state of a stream, behind the mutex.
struct State {
    /// Bytes emitted so far.
    cursor: u64,
    /// Written data at offsets at or above the cursor, not yet emitted.
    pending: BTreeMap<u64, Vec<u8>>,
    /// The total length of `pending`.
    pending_bytes: u64,
    /// `None` once finished.
    out: Option<Output>,
    /// Of everything emitted.
    hasher: Sha256,
    /// Set when emitting failed: the stream is broken for good.
    failed: Option<(io::ErrorKind, String)>,
}

/// A [`Sink`] that turns positioned writes into one forward stream of exactly
/// `size` bytes.
///
/// Data written at the cursor is emitted at once; data written beyond it waits
/// (see [`StreamSink::pending_bytes`]) until the data before it has been
/// emitted or [`Sink::advance`] moves the cursor past the gap, emitting zeros.
pub struct StreamSink {
    size: u64,
    name: PathBuf,
    state: Mutex<State>,
    /// Signalled whenever pending data is emitted (and when the stream breaks).
    drained: Condvar,
}

impl std::fmt::Debug for StreamSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("StreamSink")
            .field("name", &self.name)
            .field("size", &self.size)
            .field("cursor", &state.cursor)
            .field("pending_bytes", &state.pending_bytes)
            .finish_non_exhaustive()
    }
}

impl StreamSink {
    /// A stream of the raw image bytes (`size` of them) into `writer`.
    pub fn raw(writer: impl Write + Send + 'static, size: u64) -> StreamSink {
        let out = Output::Raw(BufWriter::with_capacity(OUT_BUFFER, Box::new(writer)));
        StreamSink::with_output(out, size)
    }

    /// A stream of the image (`size` bytes) compressed into one zstd frame
    /// with its content size and checksum, by `threads` worker threads
    /// (0: on the writing thread) at `level`.
    #[cfg(feature = "zstd")]
    pub fn zstd(
        writer: impl Write + Send + 'static,
        size: u64,
        level: i32,
        threads: u32,
    ) -> Result<StreamSink, SinkError> {
        let out = zstd_output(Box::new(writer), size, level, threads)
            .map_err(|e| io_error(Path::new(DEFAULT_NAME), "setting up the zstd compressor", e))?;
        Ok(StreamSink::with_output(out, size))
    }

    /// A stream into `writer`, compressed as asked.
    pub fn new(
        writer: impl Write + Send + 'static,
        size: u64,
        compression: Compression,
    ) -> Result<StreamSink, SinkError> {
        match compression {
            Compression::None => Ok(StreamSink::raw(writer, size)),
            #[cfg(feature = "zstd")]
            Compression::Zstd { level, threads } => StreamSink::zstd(writer, size, level, threads),
        }
    }

    /// Creates the temporary file beside `target` that a stream of `size`
    /// image bytes is written to; [`StreamFile::commit`] renames it to
    /// `target`. Fails early when `target` exists and `force` is false.
    pub fn to_file(
        target: &Path,
        size: u64,
        force: bool,
        compression: Compression,
    ) -> Result<StreamFile, SinkError> {
        let out = TempOutput::create(target, force)?;
        let writer = out
            .file()
            .try_clone()
            .map_err(|e| io_error(target, "opening the temporary file", e))?;
        let sink = StreamSink::new(writer, size, compression)
            .map_err(|e| rename_error(e, target))?
            .named(target);
        Ok(StreamFile { sink, out })
    }

    fn with_output(out: Output, size: u64) -> StreamSink {
        StreamSink {
            size,
            name: PathBuf::from(DEFAULT_NAME),
            state: Mutex::new(State {
                cursor: 0,
                pending: BTreeMap::new(),
                pending_bytes: 0,
                out: Some(out),
                hasher: Sha256::new(),
                failed: None,
            }),
            drained: Condvar::new(),
        }
    }

    /// Names the stream in error messages (`-` or `stdout`, say); the
    /// default is `<output stream>`.
    pub fn named(mut self, name: impl Into<PathBuf>) -> StreamSink {
        self.name = name.into();
        self
    }

    /// The length of the raw stream.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// How many bytes have been emitted so far.
    pub fn cursor(&self) -> u64 {
        self.lock().cursor
    }

    /// How many written bytes wait for the gaps before them to be emitted:
    /// the memory the sink holds, for the emitter's backpressure.
    pub fn pending_bytes(&self) -> u64 {
        self.lock().pending_bytes
    }

    /// Blocks until at most `limit` bytes are pending, or the stream broke.
    ///
    /// Pending data drains only as writes reach the cursor or
    /// [`Sink::advance`] is called, so the thread that writes the lowest
    /// outstanding range must not wait here.
    pub fn wait_below(&self, limit: u64) {
        let mut state = self.lock();
        while state.pending_bytes > limit && state.failed.is_none() && state.out.is_some() {
            state = self
                .drained
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Emits the rest of the stream (zeros after the last write), ends the
    /// compressed frame and flushes the writer.
    pub fn finish(self) -> Result<StreamSummary, SinkError> {
        self.advance(self.size)?;
        let name = self.name;
        let mut state = self
            .state
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = broken(&state, &name) {
            return Err(e);
        }
        debug_assert_eq!(state.cursor, self.size);
        debug_assert!(state.pending.is_empty());
        let out = state.out.take().expect("a stream is finished only once");
        let compressed_bytes = out
            .finish()
            .map_err(|e| io_error(&name, "finishing the stream", e))?;
        Ok(StreamSummary {
            size: self.size,
            sha256: state.hasher.finalize().into(),
            compressed_bytes,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An error for a write the stream cannot take (a bug of the caller).
    fn misuse(&self, offset: u64, msg: String) -> SinkError {
        let source = io::Error::new(io::ErrorKind::InvalidInput, msg);
        write_error(&self.name, "writing", offset, source)
    }

    /// Emits `buf` at the cursor; on failure the stream is broken for good.
    fn emit(&self, state: &mut State, buf: &[u8]) -> Result<(), SinkError> {
        let at = state.cursor;
        let out = state.out.as_mut().expect("not finished");
        if let Err(source) = out.write_all(buf) {
            state.failed = Some((source.kind(), source.to_string()));
            self.drained.notify_all();
            return Err(write_error(&self.name, "writing", at, source));
        }
        state.hasher.update(buf);
        state.cursor += buf.len() as u64;
        Ok(())
    }

    /// Emits the pending chunks that start at the cursor, one after another.
    fn drain_contiguous(&self, state: &mut State) -> Result<(), SinkError> {
        let mut drained = false;
        while let Some(entry) = state.pending.first_entry() {
            if *entry.key() > state.cursor {
                break;
            }
            let data = entry.remove();
            state.pending_bytes -= data.len() as u64;
            drained = true;
            self.emit(state, &data)?;
        }
        if drained {
            self.drained.notify_all();
        }
        Ok(())
    }
}

/// The error of a stream that broke earlier, if it did.
fn broken(state: &State, name: &Path) -> Option<SinkError> {
    state.failed.as_ref().map(|(kind, msg)| {
        let source = io::Error::new(*kind, msg.clone());
        write_error(
            name,
            "writing (after an earlier failure)",
            state.cursor,
            source,
        )
    })
}

/// The error of setting up a stream, reported against its target path.
fn rename_error(e: SinkError, target: &Path) -> SinkError {
    match e {
        SinkError::Io {
            what,
            offset,
            source,
            ..
        } => SinkError::Io {
            path: target.into(),
            what,
            offset,
            source,
        },
        other => other,
    }
}

#[cfg(feature = "zstd")]
fn zstd_output(writer: BoxWriter, size: u64, level: i32, threads: u32) -> io::Result<Output> {
    let counting = Counting {
        inner: BufWriter::with_capacity(OUT_BUFFER, writer),
        count: 0,
    };
    let mut enc = zstd::stream::write::Encoder::new(counting, level)?;
    if threads > 0 {
        enc.multithread(threads)?;
    }
    enc.include_checksum(true)?;
    enc.include_contentsize(true)?;
    enc.set_pledged_src_size(Some(size))?;
    Ok(Output::Zstd(enc))
}

impl Sink for StreamSink {
    /// Emits `buf` at once when it starts at the cursor, else keeps a copy
    /// until the stream gets there. A write below the cursor or past the end
    /// is refused.
    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), SinkError> {
        if buf.is_empty() {
            return Ok(());
        }
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.size) {
            return Err(self.misuse(
                offset,
                format!(
                    "{} bytes run past the end of the {}-byte stream",
                    buf.len(),
                    self.size
                ),
            ));
        }
        let mut state = self.lock();
        if let Some(e) = broken(&state, &self.name) {
            return Err(e);
        }
        if offset < state.cursor {
            return Err(self.misuse(
                offset,
                format!(
                    "the stream has already been emitted up to byte {} (a write below an advance)",
                    state.cursor
                ),
            ));
        }
        if offset == state.cursor {
            self.emit(&mut state, buf)?;
            self.drain_contiguous(&mut state)
        } else {
            if state.pending.contains_key(&offset) {
                return Err(self.misuse(offset, "a second write at the same offset".into()));
            }
            state.pending_bytes += buf.len() as u64;
            state.pending.insert(offset, buf.to_vec());
            Ok(())
        }
    }

    /// Emits everything below `offset` (clamped to the stream size): pending
    /// data and zeros across the gaps. A pending write that starts below
    /// `offset` is emitted whole.
    fn advance(&self, offset: u64) -> Result<(), SinkError> {
        let target = offset.min(self.size);
        let mut state = self.lock();
        if let Some(e) = broken(&state, &self.name) {
            return Err(e);
        }
        while state.cursor < target {
            self.drain_contiguous(&mut state)?;
            let gap_end = match state.pending.keys().next() {
                Some(&next) => next.min(target),
                None => target,
            };
            while state.cursor < gap_end {
                let n = (gap_end - state.cursor).min(ZEROS.len() as u64) as usize;
                self.emit(&mut state, &ZEROS[..n])?;
            }
        }
        self.drain_contiguous(&mut state)
    }

    fn pending(&self) -> u64 {
        self.pending_bytes()
    }
}

/// A [`StreamSink`] into a temporary file beside its target path; made by
/// [`StreamSink::to_file`].
///
/// Dropped without [`StreamFile::commit`], it leaves nothing behind.
#[derive(Debug)]
pub struct StreamFile {
    sink: StreamSink,
    out: TempOutput,
}

impl StreamFile {
    /// Finishes the stream and renames the file to its target path, after
    /// flushing it to stable storage with [`Durability::Sync`].
    pub fn commit(self, durability: Durability) -> Result<StreamSummary, SinkError> {
        let summary = self.sink.finish()?;
        self.out.commit(durability)?;
        Ok(summary)
    }
}

impl Deref for StreamFile {
    type Target = StreamSink;

    fn deref(&self) -> &StreamSink {
        &self.sink
    }
}

impl Sink for StreamFile {
    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), SinkError> {
        self.sink.write_at(offset, buf)
    }

    fn advance(&self, offset: u64) -> Result<(), SinkError> {
        self.sink.advance(offset)
    }

    fn zero(&self, range: std::ops::Range<u64>) -> Result<(), SinkError> {
        self.sink.zero(range)
    }

    fn pending(&self) -> u64 {
        self.sink.pending_bytes()
    }
}
