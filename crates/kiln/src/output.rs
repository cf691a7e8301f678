//! Where a build writes: a sparse file (the default), a zstd stream (a
//! `.zst` path or [`Compress::Zstd`]), standard output (`-`), a block
//! device (with `force`), or a region of an existing file (`offset`). The
//! output is checked ([`Target::check`]) before any source is read.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use kiln_container::bmap::Bmap;
use kiln_container::{ClusterCompression, ContainerOptions, Encoder, ImageFormat};
use kiln_sink::device::BlockDevice;
use kiln_sink::stream::{Compression, StreamFile, StreamSink};
use kiln_sink::target::{check_output, is_block_device, OutputKind};
use kiln_sink::{Durability, Sink, SparseFile, TempOutput};
use kiln_tree::OutputPlace;
use sha2::{Digest, Sha256};

use crate::{Compress, OutputRequest};

/// The output of a build, checked before any source is read.
pub(crate) struct Target {
    kind: OutputKind,
    /// The format: raw or a container.
    format: ImageFormat,
    /// zstd over the whole output (raw or a fixed VHD).
    compression: Compression,
    /// qcow2's compressed clusters.
    clusters: ClusterCompression,
    /// Where a file output goes (none for stdout and block devices, whose
    /// bytes a directory walk never reads).
    place: Option<OutputPlace>,
}

impl Target {
    /// Checks the output against the host (the path, its directory,
    /// `force`, `compress`, the format and the bmap beside it) and the
    /// files the build reads (`inputs`).
    pub(crate) fn check(args: &OutputRequest, inputs: &[&Path]) -> Result<Target> {
        let kind = check_output(&kiln_sink::target::OutputRequest {
            path: &args.path,
            force: args.force,
            offset: args.offset,
            grow: args.grow,
            inputs,
        })?;
        let format = args
            .format
            .or_else(|| ImageFormat::from_path(&args.path))
            .unwrap_or(ImageFormat::Raw);
        let (compression, clusters) = compression(args, format)?;
        check_kind(args, kind, format, compression)?;
        if args.sparse_crc && format != ImageFormat::AndroidSparse {
            bail!(
                "--sparse-crc: only an android-sparse output ends with a CRC32 chunk, not {format}"
            );
        }
        if let Some(bmap) = &args.bmap {
            check_bmap(bmap, args, inputs)?;
        }
        let place = match kind {
            OutputKind::File | OutputKind::Region(_) => Some(OutputPlace::of(&args.path)?),
            OutputKind::Stdout | OutputKind::BlockDevice => None,
        };
        Ok(Target {
            kind,
            format,
            compression,
            clusters,
            place,
        })
    }

    /// Whether the output takes writes at any offset in any order (a raw
    /// file or a block device, no bmap recorded), not only a forward stream.
    pub(crate) fn positional(&self, args: &OutputRequest) -> bool {
        self.compression == Compression::None
            && self.kind != OutputKind::Stdout
            && self.format == ImageFormat::Raw
            && args.bmap.is_none()
    }

    /// Where a file output goes, for the directory walk to refuse.
    pub(crate) fn place(&self) -> Option<&OutputPlace> {
        self.place.as_ref()
    }

    /// The output's format.
    pub(crate) fn format(&self) -> ImageFormat {
        self.format
    }
}

/// Refuses a format that the kind of output cannot take: a container on a
/// block device or in a region of a file.
fn check_kind(
    args: &OutputRequest,
    kind: OutputKind,
    format: ImageFormat,
    compression: Compression,
) -> Result<()> {
    let path = args.path.display();
    match kind {
        OutputKind::Region(_) if compression != Compression::None => {
            bail!("an offset writes into an existing file: it cannot be compressed")
        }
        OutputKind::BlockDevice if compression != Compression::None => {
            bail!("{path}: a block device takes the raw image, not a compressed one")
        }
        OutputKind::Region(_) if format != ImageFormat::Raw => {
            bail!("an offset writes the raw image into an existing file, not {format}")
        }
        OutputKind::BlockDevice if format != ImageFormat::Raw => {
            bail!("{path}: a block device takes the raw image, not {format}")
        }
        _ => Ok(()),
    }
}

/// Checks the path of a bmap file: a new file (or `force`), not an input,
/// not the image itself.
fn check_bmap(bmap: &Path, args: &OutputRequest, inputs: &[&Path]) -> Result<()> {
    let kind = check_output(&kiln_sink::target::OutputRequest {
        path: bmap,
        force: args.force,
        offset: None,
        grow: false,
        inputs,
    })
    .context("--bmap")?;
    if kind != OutputKind::File {
        bail!("--bmap {}: a bmap is written to a file", bmap.display());
    }
    if bmap == args.path {
        bail!("--bmap {}: the image's own path", bmap.display());
    }
    Ok(())
}

/// An open output.
pub(crate) enum Output {
    Sparse(SparseFile),
    StreamFile(StreamFile, Option<TempOutput>, ImageFormat),
    Stdout(StreamSink, Option<TempOutput>, ImageFormat),
    InPlace(BlockDevice),
}

/// What was written: the image's SHA-256 when known without reading it
/// back, the output's own length when it is not the image's (a zstd
/// stream, a container), and the bytes shared with the sources.
pub(crate) struct Written {
    pub(crate) sha256: Option<[u8; 32]>,
    /// The output's length when it is not the image's.
    encoded: Option<u64>,
    pub(crate) format: ImageFormat,
    /// The bytes cloned from source files rather than written.
    pub(crate) shared: u64,
}

/// What a container records of the image besides its bytes: an identity
/// (a VHD's unique ID, a VMDK's content ID) and a timestamp, both derived
/// from the inputs.
pub(crate) struct Provenance<'a> {
    /// Bytes that tell the image apart (a filesystem UUID, a disk GUID).
    pub(crate) identity: &'a [u8],
    /// The filesystem timestamp, in seconds since the Unix epoch.
    pub(crate) timestamp: i64,
}

impl Output {
    /// Opens the checked output `target` for an image of `size` bytes.
    pub(crate) fn open(
        args: &OutputRequest,
        target: &Target,
        size: u64,
        provenance: &Provenance<'_>,
    ) -> Result<Output> {
        let path = &args.path;
        if target.positional(args) {
            return Ok(match target.kind {
                OutputKind::Region(offset) => {
                    Output::InPlace(BlockDevice::open_file_at(path, offset, size, args.grow)?)
                }
                OutputKind::BlockDevice => Output::InPlace(BlockDevice::open(path, size)?),
                _ => Output::Sparse(sparse_file(args, size)?),
            });
        }
        let bmap = match &args.bmap {
            Some(p) => Some(TempOutput::create(p, args.force)?),
            None => None,
        };
        let options = container_options(args, target, size, provenance);
        // The raw image's SHA-256 costs a pass over every byte; a container
        // computes it only for the report.
        let hash = target.format == ImageFormat::Raw || args.report.is_some();
        let record = |base: Box<dyn Encoder>| -> std::io::Result<Box<dyn Encoder>> {
            Ok(match &bmap {
                Some(b) => Bmap::wrap(base, size, Box::new(b.file().try_clone()?)),
                None => base,
            })
        };
        let encode = |out: Box<dyn Write + Send>, file: Option<std::fs::File>| {
            let raw = target.format == ImageFormat::Raw;
            let base = match (file, target.compression) {
                (Some(file), Compression::None) => kiln_container::file_encoder(&options, file),
                (_, compression) if raw => kiln_sink::stream::encoder(out, size, compression),
                (_, Compression::Zstd { level, threads }) => {
                    let len = target.format.output_len(size);
                    kiln_sink::stream::zstd_over(out, len, level, threads, |w| {
                        kiln_container::stream_encoder(&options, w)
                    })
                }
                // A format that needs a file is made in an unnamed one in $TMPDIR.
                _ => kiln_container::forward_encoder(&options, out, tempfile::tempfile),
            };
            record(base?)
        };
        Ok(match target.kind {
            OutputKind::Stdout => {
                let encoder =
                    encode(Box::new(std::io::stdout()), None).context("<standard output>")?;
                let sink = StreamSink::with_encoder(encoder, size, hash).named("<standard output>");
                Output::Stdout(sink, bmap, target.format)
            }
            _ => {
                let make = |file: std::fs::File| encode(Box::new(file.try_clone()?), Some(file));
                let file = StreamSink::to_file_encoded(path, size, args.force, hash, make)?;
                Output::StreamFile(file, bmap, target.format)
            }
        })
    }

    /// The sink to emit into.
    pub(crate) fn sink(&self) -> &dyn Sink {
        match self {
            Output::Sparse(s) => s,
            Output::StreamFile(s, ..) => s,
            Output::Stdout(s, ..) => s,
            Output::InPlace(d) => d,
        }
    }

    /// Completes the output: renames a file into place (flushed first with
    /// [`Durability::Sync`]), finishes a stream, flushes a device; then
    /// gives the bmap its name.
    pub(crate) fn finish(self, durability: Durability) -> Result<Written> {
        let (written, bmap) = match self {
            Output::Sparse(s) => {
                let shared = s.shared_bytes();
                s.commit(durability)?;
                (
                    Written {
                        shared,
                        ..Written::raw()
                    },
                    None,
                )
            }
            Output::StreamFile(s, bmap, format) => {
                (Written::stream(s.commit(durability)?, format), bmap)
            }
            Output::Stdout(s, bmap, format) => (Written::stream(s.finish()?, format), bmap),
            Output::InPlace(d) => {
                d.finish()?;
                (Written::raw(), None)
            }
        };
        if let Some(bmap) = bmap {
            bmap.commit(durability)?;
        }
        Ok(written)
    }
}

impl Written {
    /// A raw image: nothing known without reading it back.
    fn raw() -> Written {
        Written {
            sha256: None,
            encoded: None,
            format: ImageFormat::Raw,
            shared: 0,
        }
    }

    /// A stream's summary, in `format`.
    fn stream(s: kiln_sink::stream::StreamSummary, format: ImageFormat) -> Written {
        Written {
            sha256: s.sha256,
            encoded: s.compressed_bytes,
            format,
            shared: 0,
        }
    }

    /// The length of a zstd stream of the raw image.
    pub(crate) fn zstd_bytes(&self) -> Option<u64> {
        self.encoded.filter(|_| self.format == ImageFormat::Raw)
    }

    /// The length of a container.
    pub(crate) fn format_bytes(&self) -> Option<u64> {
        self.encoded.filter(|_| self.format != ImageFormat::Raw)
    }
}

/// A new raw image file of `size` bytes, cloning source ranges into it
/// unless `--no-reflink`.
fn sparse_file(args: &OutputRequest, size: u64) -> Result<SparseFile> {
    let mut file = SparseFile::create(&args.path, size, args.force)?;
    if args.reflink {
        file.share_extents();
    }
    Ok(file)
}

/// A container's options for an image of `size` bytes.
fn container_options(
    args: &OutputRequest,
    target: &Target,
    size: u64,
    provenance: &Provenance<'_>,
) -> ContainerOptions {
    let digest = Sha256::new()
        .chain_update(b"kiln container identity\0")
        .chain_update(provenance.identity)
        .finalize();
    let mut options = ContainerOptions::new(target.format, size);
    options.compression = target.clusters;
    options.identity.copy_from_slice(&digest[..16]);
    options.timestamp = provenance.timestamp.max(0) as u64;
    options.sparse_crc = args.sparse_crc;
    if let Some(name) = args
        .path
        .file_name()
        .filter(|_| target.kind != OutputKind::Stdout)
    {
        options.vmdk_extent_name = name.to_string_lossy().into_owned();
    }
    options
}

/// The compression asked for, split into zstd over the whole output and
/// qcow2's compressed clusters; a `.zst` path asks for zstd. Refuses what
/// the format does not take.
fn compression(
    args: &OutputRequest,
    format: ImageFormat,
) -> Result<(Compression, ClusterCompression)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let zstd = |level| Compression::Zstd { level, threads };
    let dot_zst = args.path.extension().is_some_and(|e| e == "zst");
    let none = (Compression::None, ClusterCompression::None);
    if format == ImageFormat::Qcow2 {
        if dot_zst {
            bail!(
                "{}: qcow2 compresses its own clusters (--compress zstd or deflate), not a .zst stream",
                args.path.display()
            );
        }
        return Ok(match args.compress {
            None | Some(Compress::None) => none,
            Some(Compress::Zstd(level)) if level != Compress::DEFAULT_ZSTD_LEVEL => bail!(
                "--compress zstd:{level}: qcow2's zstd clusters are compressed at zstd's \
                 default level (3); a level is for zstd streams"
            ),
            Some(Compress::Zstd(_)) => (Compression::None, ClusterCompression::Zstd),
            Some(Compress::Deflate) => (Compression::None, ClusterCompression::Deflate),
        });
    }
    let stream = match args.compress {
        None if dot_zst => zstd(Compress::DEFAULT_ZSTD_LEVEL),
        None | Some(Compress::None) => return Ok(none),
        Some(Compress::Zstd(level)) => zstd(level),
        Some(Compress::Deflate) => {
            bail!("--compress deflate compresses qcow2's clusters; {format} does not take it")
        }
    };
    if !format.takes_zstd() {
        bail!("{format} is not written as a zstd stream (raw and vhd are)");
    }
    Ok((stream, ClusterCompression::None))
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
