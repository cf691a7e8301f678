//! Where a build writes: a sparse file (the default), a zstd stream (a
//! `.zst` path or [`Compress::Zstd`]), standard output (`-`), a block
//! device (with `force`), or a region of an existing file (`offset`). The
//! output is checked ([`Target::check`]) before any source is read.

use std::path::Path;

use anyhow::{bail, Context, Result};
use kiln_sink::device::BlockDevice;
use kiln_sink::stream::{Compression, StreamFile, StreamSink};
use kiln_sink::target::{check_output, is_block_device, OutputKind};
use kiln_sink::{Durability, Sink, SparseFile};
use kiln_tree::OutputPlace;

use crate::{Compress, OutputRequest};

/// The output of a build, checked before any source is read.
pub(crate) struct Target {
    kind: OutputKind,
    compression: Compression,
    /// Where a file output goes (none for stdout and block devices, whose
    /// bytes a directory walk never reads).
    place: Option<OutputPlace>,
}

impl Target {
    /// Checks the output against the host (the path, its directory,
    /// `force`, `compress`) and the files the build reads (`inputs`).
    pub(crate) fn check(args: &OutputRequest, inputs: &[&Path]) -> Result<Target> {
        let kind = check_output(&kiln_sink::target::OutputRequest {
            path: &args.path,
            force: args.force,
            offset: args.offset,
            inputs,
        })?;
        let compression = compression(args);
        if compression != Compression::None {
            match kind {
                OutputKind::Region(_) => {
                    bail!("an offset writes into an existing file: it cannot be compressed")
                }
                OutputKind::BlockDevice => bail!(
                    "{}: a block device takes the raw image, not a compressed one",
                    args.path.display()
                ),
                OutputKind::Stdout | OutputKind::File => {}
            }
        }
        let place = match kind {
            OutputKind::File | OutputKind::Region(_) => Some(OutputPlace::of(&args.path)?),
            OutputKind::Stdout | OutputKind::BlockDevice => None,
        };
        Ok(Target {
            kind,
            compression,
            place,
        })
    }

    /// Whether the output takes writes at any offset in any order (a file
    /// or a block device), not only a forward stream.
    pub(crate) fn positional(&self) -> bool {
        self.compression == Compression::None && self.kind != OutputKind::Stdout
    }

    /// Where a file output goes, for the directory walk to refuse.
    pub(crate) fn place(&self) -> Option<&OutputPlace> {
        self.place.as_ref()
    }
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
    /// Opens the checked output `target` for an image of `size` bytes.
    pub(crate) fn open(args: &OutputRequest, target: &Target, size: u64) -> Result<Output> {
        let path = &args.path;
        let compression = target.compression;
        Ok(match target.kind {
            OutputKind::Stdout => {
                let stdout = std::io::stdout();
                let stream = StreamSink::new(stdout, size, compression)?.named("<standard output>");
                Output::Stdout(stream)
            }
            OutputKind::Region(offset) => {
                Output::InPlace(BlockDevice::open_file_at(path, offset, size)?)
            }
            OutputKind::BlockDevice => Output::InPlace(BlockDevice::open(path, size)?),
            OutputKind::File if compression != Compression::None => {
                Output::StreamFile(StreamSink::to_file(path, size, args.force, compression)?)
            }
            OutputKind::File => Output::Sparse(SparseFile::create(path, size, args.force)?),
        })
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
        sha256: s.sha256,
        compressed: s.compressed_bytes,
    }
}

/// The compression asked for, or zstd for an output ending in `.zst`.
fn compression(args: &OutputRequest) -> Compression {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let zstd = |level| Compression::Zstd { level, threads };
    match args.compress {
        None if args.path.extension().is_some_and(|e| e == "zst") => {
            zstd(Compress::DEFAULT_ZSTD_LEVEL)
        }
        None | Some(Compress::None) => Compression::None,
        Some(Compress::Zstd(level)) => zstd(level),
    }
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
