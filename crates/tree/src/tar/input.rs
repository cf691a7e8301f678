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

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

use super::header::BLOCK;
use crate::sniff::SNIFF_LEN;

/// Buffer size for reading the archive and its decompressed stream.
const BUFFER: usize = 256 * 1024;

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
            Some(Compression::Zstd) => Box::new(Forward(Zstd::new(whole))),
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
/// skippable frames between, and `cat` joins whole streams), decoded with the
/// pure-Rust `ruzstd` (the C `zstd` crate would need a C cross compiler for
/// the Windows target).
struct Zstd<R> {
    /// The compressed stream.
    source: R,
    /// The decoder of the current frame.
    decoder: FrameDecoder,
    /// True between a frame's header and its last byte out.
    in_frame: bool,
}

impl<R: BufRead> Zstd<R> {
    /// A decoder positioned before the first frame of `source`.
    fn new(source: R) -> Zstd<R> {
        Zstd {
            source,
            decoder: FrameDecoder::new(),
            in_frame: false,
        }
    }

    /// Starts the next frame; false at the end of the stream.
    fn next_frame(&mut self) -> io::Result<bool> {
        loop {
            if self.source.fill_buf()?.is_empty() {
                return Ok(false);
            }
            match self.decoder.reset(&mut self.source) {
                Ok(()) => return Ok(true),
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skipped =
                        io::copy(&mut (&mut self.source).take(length.into()), &mut io::sink())?;
                    if skipped < u64::from(length) {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
                Err(e) => return Err(io::Error::other(e)),
            }
        }
    }

    /// Checks the content checksum of a finished frame, where it has one.
    fn check_frame(&self) -> io::Result<()> {
        match (
            self.decoder.get_checksum_from_data(),
            self.decoder.get_calculated_checksum(),
        ) {
            (Some(stored), Some(computed)) if stored != computed => Err(io::Error::other(format!(
                "zstd frame checksum mismatch ({stored:08x} stored, {computed:08x} computed)"
            ))),
            _ => Ok(()),
        }
    }
}

impl<R: BufRead> Read for Zstd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if !self.next_frame()? {
                    return Ok(0);
                }
                self.in_frame = true;
            }
            let d = &mut self.decoder;
            while d.can_collect() < buf.len() && !d.is_finished() {
                let want = buf.len() - d.can_collect();
                d.decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBytes(want))
                    .map_err(io::Error::other)?;
            }
            let n = d.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            // Finished and collected: on to the next frame.
            self.check_frame()?;
            self.in_frame = false;
        }
    }
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
}
