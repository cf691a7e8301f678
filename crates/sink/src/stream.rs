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
use std::fs::File;
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
    /// The SHA-256 of the raw stream, when it was asked for (a container's
    /// encoder is not given every byte, so it is not hashed).
    pub sha256: Option<[u8; 32]>,
    /// The length of the output, when it is not the image's own (a zstd
    /// frame, a container).
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

/// The image, front to back, encoded into an output format: the raw bytes,
/// a zstd frame, or a container (kiln-container's qcow2, VHD, VMDK, Android
/// sparse).
///
/// A [`StreamSink`] calls it in image order: each byte of the image once,
/// through [`data`](Encoder::data) where the emitter wrote and
/// [`zeros`](Encoder::zeros) across the gaps it left, then
/// [`finish`](Encoder::finish).
pub trait Encoder: Send {
    /// The next `buf.len()` bytes of the image, as written (they may hold
    /// zeros too).
    fn data(&mut self, buf: &[u8]) -> io::Result<()>;

    /// The next `len` bytes of the image are zeros that nothing wrote.
    fn zeros(&mut self, len: u64) -> io::Result<()>;

    /// The image is complete: writes what remains and flushes. Returns the
    /// length of the output when it is not the image's own (compressed, or
    /// a container).
    fn finish(self: Box<Self>) -> io::Result<Option<u64>>;
}

/// Writes `len` zeros to `w`, a bounded chunk at a time.
pub fn write_zeros(w: &mut impl Write, mut len: u64) -> io::Result<()> {
    while len > 0 {
        let n = len.min(ZEROS.len() as u64) as usize;
        w.write_all(&ZEROS[..n])?;
        len -= n as u64;
    }
    Ok(())
}

/// The raw image bytes, zeros included, into a writer.
struct RawEncoder(BufWriter<BoxWriter>);

impl Encoder for RawEncoder {
    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn zeros(&mut self, len: u64) -> io::Result<()> {
        write_zeros(&mut self.0, len)
    }

    fn finish(self: Box<Self>) -> io::Result<Option<u64>> {
        let mut inner = self.0.into_inner().map_err(|e| e.into_error())?;
        inner.flush()?;
        Ok(None)
    }
}

/// One zstd frame of the image.
#[cfg(feature = "zstd")]
struct ZstdEncoder(zstd::stream::write::Encoder<'static, Counting<BufWriter<BoxWriter>>>);

#[cfg(feature = "zstd")]
impl Encoder for ZstdEncoder {
    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn zeros(&mut self, len: u64) -> io::Result<()> {
        write_zeros(&mut self.0, len)
    }

    /// Ends the frame; returns its length.
    fn finish(self: Box<Self>) -> io::Result<Option<u64>> {
        let counting = self.0.finish()?;
        let mut inner = counting.inner.into_inner().map_err(|e| e.into_error())?;
        inner.flush()?;
        Ok(Some(counting.count))
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
    out: Option<Box<dyn Encoder>>,
    /// Of everything emitted, when asked for.
    hasher: Option<Sha256>,
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
        let out = RawEncoder(BufWriter::with_capacity(OUT_BUFFER, Box::new(writer)));
        StreamSink::with_encoder(Box::new(out), size, true)
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
        let out = zstd_output(Box::new(writer), Some(size), level, threads)
            .map_err(|e| io_error(Path::new(DEFAULT_NAME), "setting up the zstd compressor", e))?;
        Ok(StreamSink::with_encoder(Box::new(out), size, true))
    }

    /// A stream into `writer`, compressed as asked.
    pub fn new(
        writer: impl Write + Send + 'static,
        size: u64,
        compression: Compression,
    ) -> Result<StreamSink, SinkError> {
        let out = encoder(Box::new(writer), size, compression)
            .map_err(|e| io_error(Path::new(DEFAULT_NAME), "setting up the zstd compressor", e))?;
        Ok(StreamSink::with_encoder(out, size, true))
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

    /// Creates the temporary file beside `target` that an image of `size`
    /// bytes is encoded into by the encoder `make` puts over the file (a
    /// container format); [`StreamFile::commit`] renames it to `target`.
    /// With `hash`, the commit reports the image's SHA-256. Fails early
    /// when `target` exists and `force` is false.
    pub fn to_file_encoded(
        target: &Path,
        size: u64,
        force: bool,
        hash: bool,
        make: impl FnOnce(File) -> io::Result<Box<dyn Encoder>>,
    ) -> Result<StreamFile, SinkError> {
        let out = TempOutput::create(target, force)?;
        let encoder = out
            .file()
            .try_clone()
            .and_then(make)
            .map_err(|e| io_error(target, "setting up the output format", e))?;
        let sink = StreamSink::with_encoder(encoder, size, hash).named(target);
        Ok(StreamFile { sink, out })
    }

    /// A stream of the image (`size` bytes) into `encoder`; with `hash`,
    /// [`finish`](StreamSink::finish) reports the image's SHA-256.
    pub fn with_encoder(encoder: Box<dyn Encoder>, size: u64, hash: bool) -> StreamSink {
        StreamSink {
            size,
            name: PathBuf::from(DEFAULT_NAME),
            state: Mutex::new(State {
                cursor: 0,
                pending: BTreeMap::new(),
                pending_bytes: 0,
                out: Some(encoder),
                hasher: hash.then(Sha256::new),
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
            sha256: state.hasher.map(|h| h.finalize().into()),
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
        let result = state.out.as_mut().expect("not finished").data(buf);
        if let Some(h) = &mut state.hasher {
            h.update(buf);
        }
        self.emitted(state, buf.len() as u64, result)
    }

    /// Emits `len` zeros (a gap nothing was written to) at the cursor.
    fn emit_zeros(&self, state: &mut State, len: u64) -> Result<(), SinkError> {
        let result = state.out.as_mut().expect("not finished").zeros(len);
        if let Some(h) = &mut state.hasher {
            let mut left = len;
            while left > 0 {
                let n = left.min(ZEROS.len() as u64) as usize;
                h.update(&ZEROS[..n]);
                left -= n as u64;
            }
        }
        self.emitted(state, len, result)
    }

    /// Moves the cursor past `len` emitted bytes, or breaks the stream.
    fn emitted(
        &self,
        state: &mut State,
        len: u64,
        result: io::Result<()>,
    ) -> Result<(), SinkError> {
        if let Err(source) = result {
            state.failed = Some((source.kind(), source.to_string()));
            self.drained.notify_all();
            return Err(write_error(&self.name, "writing", state.cursor, source));
        }
        state.cursor += len;
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

/// The encoder of the image (`size` bytes) into `writer`: raw, or one zstd
/// frame.
#[cfg_attr(not(feature = "zstd"), allow(unused_variables))]
pub fn encoder(
    writer: Box<dyn Write + Send>,
    size: u64,
    compression: Compression,
) -> io::Result<Box<dyn Encoder>> {
    match compression {
        Compression::None => Ok(Box::new(RawEncoder(BufWriter::with_capacity(
            OUT_BUFFER, writer,
        )))),
        #[cfg(feature = "zstd")]
        Compression::Zstd { level, threads } => {
            Ok(Box::new(zstd_output(writer, Some(size), level, threads)?))
        }
    }
}

/// An encoder whose output is compressed into one zstd frame: `make` puts
/// it over the compressor (a container format, `len` bytes long when known
/// in advance, which the frame then records).
/// Its [`finish`](Encoder::finish) ends the frame and returns the frame's
/// length.
#[cfg(feature = "zstd")]
pub fn zstd_over(
    writer: Box<dyn Write + Send>,
    len: Option<u64>,
    level: i32,
    threads: u32,
    make: impl FnOnce(Box<dyn Write + Send>) -> io::Result<Box<dyn Encoder>>,
) -> io::Result<Box<dyn Encoder>> {
    use std::sync::{Arc, Mutex};
    let ZstdEncoder(enc) = zstd_output(writer, len, level, threads)?;
    // The frame ends when the inner encoder drops its writer, at the end of
    // its own finish; the outcome is kept here for `ZstdOver::finish`.
    let ended: Arc<Mutex<Option<io::Result<u64>>>> = Arc::default();
    let slot = Arc::clone(&ended);
    let compressor = enc.on_finish(move |result| {
        let outcome = result.and_then(|counting| {
            let count = counting.count;
            let mut inner = counting.inner.into_inner().map_err(|e| e.into_error())?;
            inner.flush()?;
            Ok(count)
        });
        *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
    });
    let inner = make(Box::new(compressor))?;
    Ok(Box::new(ZstdOver { inner, ended }))
}

/// An encoder writing through zstd (see [`zstd_over`]).
#[cfg(feature = "zstd")]
struct ZstdOver {
    inner: Box<dyn Encoder>,
    ended: std::sync::Arc<Mutex<Option<io::Result<u64>>>>,
}

#[cfg(feature = "zstd")]
impl Encoder for ZstdOver {
    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.data(buf)
    }

    fn zeros(&mut self, len: u64) -> io::Result<()> {
        self.inner.zeros(len)
    }

    fn finish(self: Box<Self>) -> io::Result<Option<u64>> {
        self.inner.finish()?;
        let ended = self
            .ended
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let ended = ended.unwrap_or_else(|| {
            Err(io::Error::other(
                "the zstd frame was not ended by its encoder",
            ))
        });
        ended.map(Some)
    }
}

#[cfg(feature = "zstd")]
fn zstd_output(
    writer: BoxWriter,
    size: Option<u64>,
    level: i32,
    threads: u32,
) -> io::Result<ZstdEncoder> {
    let counting = Counting {
        inner: BufWriter::with_capacity(OUT_BUFFER, writer),
        count: 0,
    };
    let mut enc = zstd::stream::write::Encoder::new(counting, level)?;
    if threads > 0 {
        enc.multithread(threads)?;
    }
    enc.include_checksum(true)?;
    enc.include_contentsize(size.is_some())?;
    enc.set_pledged_src_size(size)?;
    Ok(ZstdEncoder(enc))
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
            if state.cursor < gap_end {
                let len = gap_end - state.cursor;
                self.emit_zeros(&mut state, len)?;
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
