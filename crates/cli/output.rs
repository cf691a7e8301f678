//! Where `kiln build` writes: a sparse file (the default), a zstd stream
//! (`.zst` or `--compress`), standard output (`-o -`), a block device
//! (with `--force`), or a region of an existing file (`--offset`).

use std::path::Path;

use anyhow::{bail, Context, Result};
use kiln_sink::device::BlockDevice;
use kiln_sink::stream::{Compression, StreamFile, StreamSink};
use kiln_sink::{Durability, Sink, SparseFile};
use sha2::{Digest, Sha256};

/// zstd's default level.
const DEFAULT_LEVEL: i32 = 3;

/// The output flags of `kiln build`.
pub(crate) struct OutputArgs<'a> {
    pub(crate) path: &'a Path,
    pub(crate) force: bool,
    pub(crate) compress: Option<&'a str>,
    pub(crate) offset: Option<u64>,
}

/// An open output.
pub(crate) enum Output {
    Sparse(SparseFile),
    StreamFile(StreamFile),
    Stdout(StreamSink),
    InPlace(BlockDevice),
}

/// What was written: the image's SHA-256 when known without reading it
/// back, and the compressed size.
pub(crate) struct Written {
    pub(crate) sha256: Option<[u8; 32]>,
    pub(crate) compressed: Option<u64>,
}

impl Output {
    /// Opens the output for an image of `size` bytes.
    pub(crate) fn open(args: &OutputArgs<'_>, size: u64) -> Result<Output> {
        let compression = compression(args)?;
        let path = args.path;
        if path.as_os_str() == "-" {
            if args.offset.is_some() {
                bail!("--offset places an image inside an existing file, not on standard output");
            }
            let stdout = std::io::stdout();
            let stream = StreamSink::new(stdout, size, compression)?.named("<standard output>");
            return Ok(Output::Stdout(stream));
        }
        if let Some(offset) = args.offset {
            if compression != Compression::None {
                bail!("--offset writes into an existing file: it cannot be compressed");
            }
            let file = BlockDevice::open_file_at(path, offset, size)?;
            return Ok(Output::InPlace(file));
        }
        if is_block_device(path) {
            if !args.force {
                bail!(
                    "{}: is a block device: pass --force to write the image onto it",
                    path.display()
                );
            }
            if compression != Compression::None {
                bail!(
                    "{}: a block device takes the raw image, not a compressed one",
                    path.display()
                );
            }
            let device = BlockDevice::open(path, size)?;
            return Ok(Output::InPlace(device));
        }
        if compression != Compression::None {
            let file = StreamSink::to_file(path, size, args.force, compression)?;
            return Ok(Output::StreamFile(file));
        }
        Ok(Output::Sparse(SparseFile::create(path, size, args.force)?))
    }

    /// The sink to emit into.
    pub(crate) fn sink(&self) -> &dyn Sink {
        match self {
            Output::Sparse(s) => s,
            Output::StreamFile(s) => s,
            Output::Stdout(s) => s,
            Output::InPlace(d) => d,
        }
    }

    /// Completes the output: renames a file into place (flushed first with
    /// [`Durability::Sync`]), finishes a stream, flushes a device.
    pub(crate) fn finish(self, durability: Durability) -> Result<Written> {
        Ok(match self {
            Output::Sparse(s) => {
                s.commit(durability)?;
                Written {
                    sha256: None,
                    compressed: None,
                }
            }
            Output::StreamFile(s) => summary(s.commit(durability)?),
            Output::Stdout(s) => summary(s.finish()?),
            Output::InPlace(d) => {
                d.finish()?;
                Written {
                    sha256: None,
                    compressed: None,
                }
            }
        })
    }
}

/// The part of a stream summary the report uses.
fn summary(s: kiln_sink::stream::StreamSummary) -> Written {
    Written {
        sha256: Some(s.sha256),
        compressed: s.compressed_bytes,
    }
}

/// `--compress`, or zstd for an output ending in `.zst`.
fn compression(args: &OutputArgs<'_>) -> Result<Compression> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let zstd = |level| Compression::Zstd { level, threads };
    match args.compress {
        None if args.path.extension().is_some_and(|e| e == "zst") => Ok(zstd(DEFAULT_LEVEL)),
        None | Some("none") => Ok(Compression::None),
        Some("zstd") => Ok(zstd(DEFAULT_LEVEL)),
        Some(other) => {
            let level = other
                .strip_prefix("zstd:")
                .and_then(|l| l.parse::<i32>().ok())
                .filter(|l| (1..=22).contains(l))
                .with_context(|| {
                    format!("--compress {other:?}: expected none, zstd or zstd:LEVEL (1-22)")
                })?;
            Ok(zstd(level))
        }
    }
}

/// Whether `path` is (or links to) an existing block device.
pub(crate) fn is_block_device(path: &Path) -> bool {
    std::fs::canonicalize(path)
        .and_then(|real| kiln_host::lstat(&real))
        .is_ok_and(|m| m.file_type == kiln_host::HostFileType::BlockDevice)
}

/// The size of the block device at `path`, if it is one (a disk laid out
/// on it fills it: its backup GPT belongs at the device's end).
pub(crate) fn block_device_size(path: &Path) -> Result<Option<u64>> {
    use std::io::{Seek, SeekFrom};
    if !is_block_device(path) {
        return Ok(None);
    }
    let mut file = std::fs::File::open(path).with_context(|| path.display().to_string())?;
    let size = file
        .seek(SeekFrom::End(0))
        .with_context(|| format!("{}: reading the device size", path.display()))?;
    Ok(Some(size))
}

/// The SHA-256 of `len` bytes of the file at `path` from `offset` (for the
/// report of outputs that are not streams).
pub(crate) fn sha256_of(path: &Path, offset: u64, len: u64) -> Result<[u8; 32]> {
    let file = std::fs::File::open(path).with_context(|| path.display().to_string())?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < len {
        let n = buf.len().min((len - at) as usize);
        let got = kiln_host::read_at(&file, &mut buf[..n], offset + at)
            .with_context(|| path.display().to_string())?;
        if got < n {
            bail!("{}: ends before byte {}", path.display(), offset + len);
        }
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok(hasher.finalize().into())
}
