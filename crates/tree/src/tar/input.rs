//! The archive as a stream of bytes: opened from a file or standard input,
//! decompressed when its first bytes are the magic number of gzip, xz, zstd
//! or bzip2, and read forward only (standard input cannot seek). A plain
//! archive that is a regular file skips member data by seeking, and hands
//! out a handle of itself so that the data can be read in place later. Its
//! first bytes are kept, to say what a stream that is not an archive looks
//! like.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::header::BLOCK;
use crate::sniff::SNIFF_LEN;

/// Buffer size for reading the archive and its decompressed stream.
const BUFFER: usize = 256 * 1024;

/// The largest zstd window (log2 of its bytes) a frame may ask for: 128 MiB,
/// libzstd's own default limit (`zstd -d` refuses more without `--memory`),
/// within which every level up to `--ultra -22` and `--long` stay. The
/// archive is untrusted, and the window is what a frame makes the decoder
/// allocate.
#[cfg(feature = "zstd")]
const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// A compression recognised by its magic number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Compression {
    /// `1f 8b`.
    Gzip,
    /// `fd 37 7a 58 5a 00` (`\xfd7zXZ\0`).
    Xz,
    /// `28 b5 2f fd`.
    Zstd,
    /// `BZh`.
    Bzip2,
}

impl Compression {
    /// Each compression's magic number.
    const MAGICS: [(&'static [u8], Compression); 4] = [
        (&[0x1f, 0x8b], Compression::Gzip),
        (&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], Compression::Xz),
        (&[0x28, 0xb5, 0x2f, 0xfd], Compression::Zstd),
        (b"BZh", Compression::Bzip2),
    ];
    /// The longest magic number.
    const SNIFF: usize = 6;

    /// The compression whose magic number `start` begins with.
    fn detect(start: &[u8]) -> Option<Compression> {
        Compression::MAGICS
            .iter()
            .find(|(magic, _)| start.starts_with(magic))
            .map(|&(_, c)| c)
    }

    /// The compression's name in messages.
    fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The uncompressed archive, and how far into it the reader is.
pub(super) struct Input {
    /// The decompressed bytes.
    reader: BufReader<Head<Box<dyn Stream>>>,
    /// A second handle of a plain archive file, for reading its members'
    /// data in place: offsets in the stream are offsets in the file.
    plain: Option<File>,
    /// Bytes read from `reader` so far.
    offset: u64,
    /// The compression found, for messages.
    compression: Option<Compression>,
    /// A block that [`Input::skip_zeros`] read and found data in, with the
    /// number of bytes the stream had of it: not yet counted in `offset`,
    /// and the next block [`Input::next_block`] gives (which the reader
    /// always calls next).
    peeked: Option<([u8; BLOCK], usize)>,
}

/// What reading the next block found.
// A block goes by value, as from `block`: boxing it would allocate for
// every header.
#[allow(clippy::large_enum_variant)]
pub(super) enum Block {
    /// A whole block.
    Full([u8; BLOCK]),
    /// The stream ended after this many bytes of the block (0: at a block
    /// boundary).
    Short(usize),
}

impl Input {
    /// Opens `path`, or standard input for `-`.
    pub(super) fn open(path: &Path) -> io::Result<Input> {
        if path == Path::new("-") {
            return Input::new(Box::new(io::stdin().lock()));
        }
        let mut file = File::open(path)?;
        let meta = file.metadata()?;
        if meta.is_file() {
            let mut start = [0u8; Compression::SNIFF];
            let got = fill(&mut file, &mut start)?;
            file.rewind()?;
            if Compression::detect(&start[..got]).is_none() {
                return Input::plain(file, meta.len());
            }
        }
        Input::new(Box::new(file))
    }

    /// A plain archive in the regular file `file` of `len` bytes.
    fn plain(file: File, len: u64) -> io::Result<Input> {
        let plain = Some(file.try_clone()?);
        let stream: Box<dyn Stream> = Box::new(Plain { file, len });
        Ok(Input {
            plain,
            ..Input::of_stream(stream, None)
        })
    }

    /// Reads the first bytes of `raw` to choose a decompressor.
    pub(super) fn new(raw: Box<dyn Read>) -> io::Result<Input> {
        let mut raw = BufReader::with_capacity(BUFFER, raw);
        let mut start = [0u8; Compression::SNIFF];
        let got = fill(&mut raw, &mut start)?;
        let whole = io::Cursor::new(start[..got].to_vec()).chain(raw);
        let compression = Compression::detect(&start[..got]);
        let stream: Box<dyn Stream> = match compression {
            None => Box::new(Forward(whole)),
            Some(Compression::Gzip) => {
                Box::new(Forward(flate2::bufread::MultiGzDecoder::new(whole)))
            }
            Some(Compression::Xz) => Box::new(Forward(lzma_rust2::XzReader::new(whole, true))),
            Some(Compression::Zstd) => zstd(whole)?,
            Some(Compression::Bzip2) => {
                Box::new(Forward(bzip2::bufread::MultiBzDecoder::new(whole)))
            }
        };
        Ok(Input::of_stream(stream, compression))
    }

    /// Reads the uncompressed archive `stream`, which was in `compression`.
    fn of_stream(stream: Box<dyn Stream>, compression: Option<Compression>) -> Input {
        Input {
            reader: BufReader::with_capacity(BUFFER, Head::new(stream)),
            plain: None,
            offset: 0,
            compression,
            peeked: None,
        }
    }

    /// A handle of the archive for reading its members' data in place, if
    /// it is a plain archive file (once; `None` afterwards).
    pub(super) fn take_plain_file(&mut self) -> Option<File> {
        self.plain.take()
    }

    /// The name of the compression the archive is in, if any.
    pub(super) fn compression(&self) -> Option<&'static str> {
        self.compression.map(Compression::name)
    }

    /// Bytes of the uncompressed archive read so far.
    pub(super) fn offset(&self) -> u64 {
        self.offset
    }

    /// The next block, or `None` at the end of the stream; an end within a
    /// block is an error.
    pub(super) fn block(&mut self) -> io::Result<Option<[u8; BLOCK]>> {
        match self.next_block()? {
            Block::Full(block) => Ok(Some(block)),
            Block::Short(0) => Ok(None),
            Block::Short(n) => Err(self.truncated(n)),
        }
    }

    /// The next block, or how much of one there was before the end.
    pub(super) fn next_block(&mut self) -> io::Result<Block> {
        match self.raw_block()? {
            (block, BLOCK) => {
                self.offset += BLOCK as u64;
                Ok(Block::Full(block))
            }
            (_, n) => Ok(Block::Short(n)),
        }
    }

    /// Reads on past zero blocks; returns the offset of the first byte that
    /// is not zero, its block left for [`Input::next_block`], or `None` when
    /// only zeros are left (a last, partial block of them too).
    pub(super) fn skip_zeros(&mut self) -> io::Result<Option<u64>> {
        loop {
            let (block, n) = self.raw_block()?;
            if let Some(i) = block[..n].iter().position(|&b| b != 0) {
                self.peeked = Some((block, n));
                return Ok(Some(self.offset + i as u64));
            }
            self.offset += n as u64;
            if n < BLOCK {
                return Ok(None);
            }
        }
    }

    /// The peeked block, or else the next block of the stream, with the
    /// number of its bytes the stream had; `offset` is left as it was.
    fn raw_block(&mut self) -> io::Result<([u8; BLOCK], usize)> {
        if let Some(peeked) = self.peeked.take() {
            return Ok(peeked);
        }
        let mut block = [0u8; BLOCK];
        let n = fill(&mut self.reader, &mut block)?;
        Ok((block, n))
    }

    /// The first bytes of the stream (up to [`SNIFF_LEN`]), reading on to
    /// get them where the reader has not got so far: only to say what a
    /// stream that is not an archive looks like, after which reading stops.
    pub(super) fn head(&mut self) -> &[u8] {
        while self.reader.get_ref().bytes.len() < SNIFF_LEN {
            // A read error only shortens what is looked at: the error to
            // report is that this is not an archive.
            let Ok(buf) = self.reader.fill_buf() else {
                break;
            };
            let n = buf.len();
            if n == 0 {
                break;
            }
            self.reader.consume(n);
            self.offset += n as u64;
        }
        &self.reader.get_ref().bytes
    }

    /// Fills `buf`; the stream ending first is an error.
    pub(super) fn exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        debug_assert!(self.peeked.is_none(), "a peeked block is a header");
        let got = fill(&mut self.reader, buf)?;
        if got < buf.len() {
            return Err(self.truncated(got));
        }
        self.offset += got as u64;
        Ok(())
    }

    /// Skips `n` bytes (a plain file seeks past what is not buffered); the
    /// stream ending first is an error.
    pub(super) fn skip(&mut self, n: u64) -> io::Result<()> {
        debug_assert!(self.peeked.is_none(), "a peeked block is a header");
        let buffered = self.reader.buffer().len();
        let got = match usize::try_from(n) {
            Ok(n) if n <= buffered => {
                self.reader.consume(n);
                n as u64
            }
            _ => {
                self.reader.consume(buffered);
                // The buffer is empty: the stream is where the reader is.
                buffered as u64 + self.reader.get_mut().skip(n - buffered as u64)?
            }
        };
        self.offset += got;
        if got < n {
            return Err(self.truncated(0));
        }
        Ok(())
    }

    /// Describes a read error, naming the decompressor where there is one.
    pub(super) fn describe(&self, e: &io::Error) -> String {
        match self.compression {
            Some(c) => format!("reading the {c}-compressed archive: {e}"),
            None => e.to_string(),
        }
    }

    /// The error for a stream that ended `got` bytes past the offset.
    pub(super) fn truncated(&self, got: usize) -> io::Error {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "the archive ends early, at byte {} (truncated?)",
                self.offset + got as u64
            ),
        )
    }
}

/// The uncompressed bytes of an archive, read forward.
trait Stream: Read {
    /// Skips up to `n` bytes; returns how many there were before the end.
    fn skip(&mut self, n: u64) -> io::Result<u64>;
}

/// A stream that skips by reading: standard input, a decompressor.
struct Forward<R>(R);

impl<R: Read> Read for Forward<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read> Stream for Forward<R> {
    fn skip(&mut self, n: u64) -> io::Result<u64> {
        io::copy(&mut (&mut self.0).take(n), &mut io::sink())
    }
}

/// A plain archive in a regular file, which skips member data by seeking
/// (up to its length when opened: a seek past the end is no error).
struct Plain {
    /// The archive.
    file: File,
    /// Its length when opened.
    len: u64,
}

impl Read for Plain {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Stream for Plain {
    fn skip(&mut self, n: u64) -> io::Result<u64> {
        let pos = self.file.stream_position()?;
        let n = n.min(self.len.saturating_sub(pos));
        // At most the length, which fits an i64 as every file size does.
        let step = i64::try_from(n).map_err(io::Error::other)?;
        self.file.seek(SeekFrom::Current(step))?;
        Ok(n)
    }
}

/// A stream that keeps a copy of its first [`SNIFF_LEN`] bytes as they are
/// read, whichever method of [`Input`] reads them.
struct Head<R> {
    /// The stream.
    inner: R,
    /// Its first bytes.
    bytes: Vec<u8>,
}

impl<R> Head<R> {
    /// Keeps the first bytes of `inner`.
    fn new(inner: R) -> Head<R> {
        Head {
            inner,
            bytes: Vec::new(),
        }
    }
}

impl<R: Read> Read for Head<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let keep = SNIFF_LEN.saturating_sub(self.bytes.len()).min(n);
        self.bytes.extend_from_slice(&buf[..keep]);
        Ok(n)
    }
}

impl Head<Box<dyn Stream>> {
    /// Skips up to `n` bytes, reading those that belong to the first bytes.
    fn skip(&mut self, n: u64) -> io::Result<u64> {
        let head = SNIFF_LEN.saturating_sub(self.bytes.len()) as u64;
        let read = io::copy(&mut Read::take(&mut *self, n.min(head)), &mut io::sink())?;
        if read < n.min(head) {
            return Ok(read);
        }
        Ok(read + self.inner.skip(n - read)?)
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match reader.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// A zstd stream of one or more frames (pzstd writes one per chunk, with
/// skippable frames between, and `cat` joins whole streams), decoded by the
/// C libzstd through the `zstd` crate, the compressor of the output:
/// skippable frames are skipped, each frame's checksum (where it has one) is
/// checked, a stream ending within a frame is an error, and a frame asking
/// for a window over [`ZSTD_WINDOW_LOG_MAX`] is refused.
#[cfg(feature = "zstd")]
fn zstd(source: impl BufRead + 'static) -> io::Result<Box<dyn Stream>> {
    let mut decoder = zstd::stream::read::Decoder::with_buffer(source)?;
    decoder.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
    Ok(Box::new(Forward(Truncation(decoder))))
}

/// A zstd decoder whose error for a stream that ends within a frame says
/// so (the crate's is `incomplete frame`).
#[cfg(feature = "zstd")]
struct Truncation<R>(R);

#[cfg(feature = "zstd")]
impl<R: Read> Read for Truncation<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the stream ends within a zstd frame (truncated?)",
            ),
            _ => e,
        })
    }
}

/// Without the `zstd` feature, a zstd-compressed archive is refused.
#[cfg(not(feature = "zstd"))]
fn zstd(_source: impl BufRead + 'static) -> io::Result<Box<dyn Stream>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "a zstd-compressed archive, and this kiln-tree was built without its `zstd` feature",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers() {
        assert_eq!(
            Compression::detect(&[0x1f, 0x8b, 8]),
            Some(Compression::Gzip)
        );
        assert_eq!(Compression::detect(b"BZh91AY"), Some(Compression::Bzip2));
        assert_eq!(
            Compression::detect(&[0xfd, b'7', b'z', b'X', b'Z', 0]),
            Some(Compression::Xz)
        );
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Some(Compression::Zstd)
        );
        assert_eq!(Compression::detect(b"ustar"), None);
        assert_eq!(Compression::detect(&[0x1f]), None);
    }

    #[test]
    fn short_input_is_truncated_not_a_panic() {
        let mut input = Input::new(Box::new(&b"abc"[..])).unwrap();
        assert!(input.block().is_err());
        let mut input = Input::new(Box::new(&[0x1f, 0x8b][..])).unwrap();
        assert!(input.block().is_err());
        let mut input = Input::new(Box::new(&b""[..])).unwrap();
        assert!(input.block().unwrap().is_none());
    }

    /// Everything `zstd` decodes from `data`, or its error.
    #[cfg(feature = "zstd")]
    fn unzstd(data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        zstd(io::Cursor::new(data.to_vec()))?.read_to_end(&mut out)?;
        Ok(out)
    }

    /// One frame of `data`, with its checksum.
    #[cfg(feature = "zstd")]
    fn frame(data: &[u8]) -> Vec<u8> {
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.include_checksum(true).unwrap();
        io::Write::write_all(&mut enc, data).unwrap();
        enc.finish().unwrap()
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn zstd_frames_are_joined_and_skippable_frames_skipped() {
        let mut data = frame(b"first ");
        // A skippable frame (magic 0x184D2A5?, length, payload), as pzstd writes.
        data.extend_from_slice(&[0x52, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
        data.extend(frame(b"second "));
        data.extend(frame(b""));
        data.extend(frame(b"third"));
        assert_eq!(unzstd(&data).unwrap(), b"first second third");
        // The stream as the archive reader opens it.
        let mut input = Input::new(Box::new(io::Cursor::new(data))).unwrap();
        assert_eq!(input.compression(), Some("zstd"));
        let mut buf = [0u8; 18];
        input.exact(&mut buf).unwrap();
        assert_eq!(&buf, b"first second third");
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn damaged_zstd_streams_are_errors() {
        let whole = frame(&[7u8; 100_000]);
        // Cut within the frame, and within a second frame.
        let e = unzstd(&whole[..whole.len() / 2]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        assert!(e.to_string().contains("truncated"), "{e}");
        let mut two = whole.clone();
        two.extend_from_slice(&whole[..20]);
        assert_eq!(
            unzstd(&two).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        // A wrong checksum.
        let mut bad = whole.clone();
        *bad.last_mut().unwrap() ^= 1;
        let e = unzstd(&bad).unwrap_err().to_string();
        assert!(e.contains("checksum"), "{e}");
        // Garbage after a frame.
        let mut trailing = whole.clone();
        trailing.extend_from_slice(b"not zstd");
        assert!(unzstd(&trailing).is_err());
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn zstd_windows_over_the_limit_are_refused() {
        let window = |log: u32| {
            let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            enc.window_log(log).unwrap();
            io::Write::write_all(&mut enc, b"data").unwrap();
            enc.finish().unwrap()
        };
        assert_eq!(unzstd(&window(ZSTD_WINDOW_LOG_MAX)).unwrap(), b"data");
        let e = unzstd(&window(ZSTD_WINDOW_LOG_MAX + 1)).unwrap_err();
        assert!(e.to_string().contains("memory"), "{e}");
    }
}
