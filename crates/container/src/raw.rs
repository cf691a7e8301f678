//! The raw image through the encoder interface: into a file, left sparse
//! across zeros; into any writer, zeros written.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};

use crate::Encoder;

/// The raw image into any writer.
pub(crate) fn stream(out: Box<dyn Write + Send>) -> Box<dyn Encoder> {
    Box::new(Stream(BufWriter::with_capacity(1 << 20, out)))
}

struct Stream(BufWriter<Box<dyn Write + Send>>);

impl Encoder for Stream {
    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn zeros(&mut self, len: u64) -> io::Result<()> {
        kiln_sink::stream::write_zeros(&mut self.0, len)
    }

    fn finish(self: Box<Self>) -> io::Result<Option<u64>> {
        let mut inner = self.0.into_inner().map_err(|e| e.into_error())?;
        inner.flush()?;
        Ok(None)
    }
}

/// The raw image into a file of `size` bytes: all-zero chunks are seeked
/// over, so they stay holes.
pub(crate) fn sparse_file(out: File, size: u64) -> Box<dyn Encoder> {
    Box::new(SparseFile {
        out: BufWriter::with_capacity(1 << 20, out),
        size,
        at: 0,
        skipped: false,
    })
}

struct SparseFile {
    out: BufWriter<File>,
    size: u64,
    /// The image offset the next byte goes to.
    at: u64,
    /// Whether the writer's position lags `at` (zeros skipped).
    skipped: bool,
}

impl SparseFile {
    fn skip(&mut self, len: u64) {
        if len > 0 {
            self.at += len;
            self.skipped = true;
        }
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.skipped {
            self.out.seek(SeekFrom::Start(self.at))?;
            self.skipped = false;
        }
        self.out.write_all(bytes)?;
        self.at += bytes.len() as u64;
        Ok(())
    }
}

impl Encoder for SparseFile {
    /// Writes the chunks that are not all zero; seeks over the rest.
    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut done = 0;
        for (start, run) in kiln_sink::nonzero_runs(buf) {
            self.skip((start - done) as u64);
            self.write(run)?;
            done = start + run.len();
        }
        self.skip((buf.len() - done) as u64);
        Ok(())
    }

    fn zeros(&mut self, len: u64) -> io::Result<()> {
        self.skip(len);
        Ok(())
    }

    fn finish(self: Box<Self>) -> io::Result<Option<u64>> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.set_len(self.size)?;
        Ok(None)
    }
}
