//! The archive as a stream of bytes: opened from a file or standard input,
//! decompressed when its first bytes are the magic number of gzip, xz, zstd
//! or bzip2, and read forward only (standard input cannot seek).

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

use super::header::BLOCK;

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
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
        })
    }
}

/// The uncompressed archive, and how far into it the reader is.
pub(super) struct Input {
    /// The decompressed bytes.
    reader: BufReader<Box<dyn Read>>,
    /// Bytes read from `reader` so far.
    offset: u64,
    /// The compression found, for messages.
    compression: Option<Compression>,
}

impl Input {
    /// Opens `path`, or standard input for `-`.
    pub(super) fn open(path: &Path) -> io::Result<Input> {
        if path == Path::new("-") {
            Input::new(Box::new(io::stdin().lock()))
        } else {
            Input::new(Box::new(File::open(path)?))
        }
    }

    /// Reads the first bytes of `raw` to choose a decompressor.
    pub(super) fn new(raw: Box<dyn Read>) -> io::Result<Input> {
        let mut raw = BufReader::with_capacity(BUFFER, raw);
        let mut start = [0u8; Compression::SNIFF];
        let got = fill(&mut raw, &mut start)?;
        let whole = io::Cursor::new(start[..got].to_vec()).chain(raw);
        let compression = Compression::detect(&start[..got]);
        let stream: Box<dyn Read> = match compression {
            None => Box::new(whole),
            Some(Compression::Gzip) => Box::new(flate2::bufread::MultiGzDecoder::new(whole)),
            Some(Compression::Xz) => Box::new(lzma_rust2::XzReader::new(whole, true)),
            Some(Compression::Zstd) => Box::new(Zstd::new(whole)),
            Some(Compression::Bzip2) => Box::new(bzip2::bufread::MultiBzDecoder::new(whole)),
        };
        Ok(Input {
            reader: BufReader::with_capacity(BUFFER, stream),
            offset: 0,
            compression,
        })
    }

    /// Bytes of the uncompressed archive read so far.
    pub(super) fn offset(&self) -> u64 {
        self.offset
    }

    /// The next block, or `None` at the end of the stream; an end within a
    /// block is an error.
    pub(super) fn block(&mut self) -> io::Result<Option<[u8; BLOCK]>> {
        let mut block = [0u8; BLOCK];
        match fill(&mut self.reader, &mut block)? {
            0 => Ok(None),
            BLOCK => {
                self.offset += BLOCK as u64;
                Ok(Some(block))
            }
            n => Err(self.truncated(n)),
        }
    }

    /// Fills `buf`; the stream ending first is an error.
    pub(super) fn exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let got = fill(&mut self.reader, buf)?;
        if got < buf.len() {
            return Err(self.truncated(got));
        }
        self.offset += got as u64;
        Ok(())
    }

    /// Skips `n` bytes; the stream ending first is an error.
    pub(super) fn skip(&mut self, n: u64) -> io::Result<()> {
        let got = io::copy(&mut (&mut self.reader).take(n), &mut io::sink())?;
        self.offset += got;
        if got < n {
            return Err(self.truncated(0));
        }
        Ok(())
    }

    /// Reads what follows the end-of-archive marker (the rest of the last
    /// record), so that a decompressor checks its stream to the end.
    pub(super) fn drain(&mut self) -> io::Result<()> {
        io::copy(&mut self.reader, &mut io::sink()).map(drop)
    }

    /// Describes a read error, naming the decompressor where there is one.
    pub(super) fn describe(&self, e: &io::Error) -> String {
        match self.compression {
            Some(c) => format!("reading the {c}-compressed archive: {e}"),
            None => e.to_string(),
        }
    }

    /// The error for a stream that ended `got` bytes past the offset.
    fn truncated(&self, got: usize) -> io::Error {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "the archive ends early, at byte {} (truncated?)",
                self.offset + got as u64
            ),
        )
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
