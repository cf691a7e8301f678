//! Disk image containers of kiln, written in one forward pass.
//!
//! Hypervisors, clouds and flashers take an image in a container rather
//! than raw: qcow2 (QEMU, libvirt, OpenStack), a fixed VHD (Azure), VMDK
//! streamOptimized (VMware, VirtualBox, OVAs), Android sparse (fastboot).
//! kiln builds the image front to back, so each container here is an
//! [`Encoder`]: it receives the raw image in order ([`Encoder::data`] where
//! the emitter wrote, [`Encoder::zeros`] across the gaps it left) and writes
//! the container as it goes, leaving all-zero clusters out. [`bmap::Bmap`]
//! wraps any encoder and records the mapped blocks of the raw image, with
//! their SHA-256, for `bmaptool copy`.
//!
//! Which formats need to seek back (to fill in a header that counts what
//! follows) is [`ImageFormat::streams`]: those take a file (or a spool file
//! copied to a pipe at the end: [`forward_encoder`]), the others any writer.
//!
//! Everything written is a function of the image and the
//! [`ContainerOptions`]: no clock, no random IDs, so two builds give the same
//! bytes.
//!
//! Place in the data flow: sources → tree → plan → emit → sink → **container**.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod android;
pub mod bmap;
mod bytes;
mod compress;
mod length;
mod qcow2;
mod raw;
mod units;
mod vhd;
mod vmdk;

use std::fmt;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

pub use kiln_sink::stream::Encoder;

/// The format an image is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ImageFormat {
    /// The image bytes as they are.
    Raw,
    /// qcow2 version 3, 64 KiB clusters.
    Qcow2,
    /// A fixed VHD: the image, its size rounded up to whole MiB, and the
    /// 512-byte footer.
    Vhd,
    /// A dynamic VHD: a block allocation table and 2 MiB blocks, only the
    /// blocks holding data present.
    VhdDynamic,
    /// VMDK streamOptimized: deflated 64 KiB grains with markers, the
    /// layout of OVAs.
    Vmdk,
    /// Android sparse: raw, fill and don't-care chunks, as fastboot takes.
    AndroidSparse,
}

impl ImageFormat {
    /// Every format, with the name [`parse`](ImageFormat::parse) takes.
    pub const ALL: [ImageFormat; 6] = [
        ImageFormat::Raw,
        ImageFormat::Qcow2,
        ImageFormat::Vhd,
        ImageFormat::VhdDynamic,
        ImageFormat::Vmdk,
        ImageFormat::AndroidSparse,
    ];

    /// The format's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Raw => "raw",
            ImageFormat::Qcow2 => "qcow2",
            ImageFormat::Vhd => "vhd",
            ImageFormat::VhdDynamic => "vhd-dynamic",
            ImageFormat::Vmdk => "vmdk",
            ImageFormat::AndroidSparse => "android-sparse",
        }
    }

    /// The format named `name` (see [`name`](ImageFormat::name)).
    pub fn parse(name: &str) -> Result<ImageFormat, String> {
        ImageFormat::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| {
                let names: Vec<_> = ImageFormat::ALL.iter().map(|f| f.name()).collect();
                format!("{name:?}: expected one of {}", names.join(", "))
            })
    }

    /// The format a path's extension names (`.qcow2`, `.vhd`, `.vmdk`,
    /// `.simg`; a `.zst` after it is looked through), if any.
    pub fn from_path(path: &Path) -> Option<ImageFormat> {
        let name = path.file_name()?.to_str()?;
        let name = name.strip_suffix(".zst").unwrap_or(name);
        let ext = Path::new(name).extension()?.to_str()?;
        match ext.to_ascii_lowercase().as_str() {
            "qcow2" => Some(ImageFormat::Qcow2),
            "vhd" => Some(ImageFormat::Vhd),
            "vmdk" => Some(ImageFormat::Vmdk),
            "simg" => Some(ImageFormat::AndroidSparse),
            _ => None,
        }
    }

    /// Whether the format is written strictly front to back, so that it
    /// can go to a pipe. The others fill in their header
    /// (qcow2's table offsets, a dynamic VHD's block table, Android
    /// sparse's chunk count) once the image has passed, so they need a file
    /// ([`forward_encoder`] makes them in a spool file for a pipe).
    pub fn streams(self) -> bool {
        match self {
            ImageFormat::Raw | ImageFormat::Vhd | ImageFormat::Vmdk => true,
            ImageFormat::Qcow2 | ImageFormat::VhdDynamic | ImageFormat::AndroidSparse => false,
        }
    }

    /// Whether the format may be compressed as a whole into a zstd stream:
    /// raw and a fixed VHD, which carry their data as it is. (VMDK
    /// compresses its own grains and qcow2 its clusters; the others need a
    /// file.)
    pub fn takes_zstd(self) -> bool {
        matches!(self, ImageFormat::Raw | ImageFormat::Vhd)
    }

    /// The length of the output for an image of `size` bytes, when the
    /// format fixes it in advance (raw, a fixed VHD).
    pub fn output_len(self, size: u64) -> Option<u64> {
        match self {
            ImageFormat::Raw => Some(size),
            ImageFormat::Vhd => Some(self.virtual_size(size) + 512),
            _ => None,
        }
    }

    /// The container's virtual disk size for an image of `size` bytes: a
    /// VHD's is rounded up to whole MiB (Azure takes no other), the others'
    /// is the image's.
    pub fn virtual_size(self, size: u64) -> u64 {
        match self {
            ImageFormat::Vhd | ImageFormat::VhdDynamic => size.div_ceil(MIB) * MIB,
            _ => size,
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const MIB: u64 = 1 << 20;

/// How qcow2 stores its data clusters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterCompression {
    /// As they are.
    #[default]
    None,
    /// Raw deflate (qcow2's default compression type), each cluster kept
    /// as it is where compressing does not make it smaller.
    Deflate,
    /// zstd (qcow2's compression type 1).
    Zstd,
}

/// What a container needs besides the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerOptions {
    /// The format.
    pub format: ImageFormat,
    /// The image's size in bytes.
    pub size: u64,
    /// qcow2's cluster compression.
    pub compression: ClusterCompression,
    /// 16 bytes that identify the image (kiln derives them from the
    /// inputs): a VHD's unique ID, a VMDK's content ID.
    pub identity: [u8; 16],
    /// Seconds since the Unix epoch: a VHD's timestamp (kiln's filesystem
    /// timestamp, not the clock).
    pub timestamp: u64,
    /// Android sparse: end with a CRC32 chunk of the whole image.
    pub sparse_crc: bool,
    /// VMDK: the extent's file name in the embedded descriptor.
    pub vmdk_extent_name: String,
}

impl ContainerOptions {
    /// The options for `format` of an image of `size` bytes, everything
    /// else at its default (no compression, a zero identity and timestamp).
    pub fn new(format: ImageFormat, size: u64) -> ContainerOptions {
        ContainerOptions {
            format,
            size,
            compression: ClusterCompression::None,
            identity: [0; 16],
            timestamp: 0,
            sparse_crc: false,
            vmdk_extent_name: "disk.vmdk".into(),
        }
    }
}

/// The encoder of a streaming format ([`ImageFormat::streams`]) over any
/// writer.
///
/// # Errors
/// `InvalidInput` for a format that needs a file, or options the format
/// does not take.
pub fn stream_encoder(
    options: &ContainerOptions,
    out: Box<dyn Write + Send>,
) -> io::Result<Box<dyn Encoder>> {
    check(options)?;
    match options.format {
        ImageFormat::Raw => Ok(raw::stream(out)),
        ImageFormat::Vhd => vhd::fixed(options, out),
        ImageFormat::Vmdk => vmdk::encoder(options, out),
        ImageFormat::Qcow2 | ImageFormat::VhdDynamic | ImageFormat::AndroidSparse => {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} cannot be streamed: its header is filled in once the image has passed; write it to a file",
                    options.format
                ),
            ))
        }
    }
}

/// The encoder of any format into a file, which it may seek in (a raw
/// image stays sparse).
///
/// # Errors
/// `InvalidInput` for options the format does not take.
pub fn file_encoder(options: &ContainerOptions, out: File) -> io::Result<Box<dyn Encoder>> {
    check(options)?;
    match options.format {
        ImageFormat::Raw => Ok(raw::sparse_file(out, options.size)),
        ImageFormat::Qcow2 => qcow2::encoder(options, out),
        ImageFormat::Vhd => vhd::fixed(options, Box::new(out)),
        ImageFormat::VhdDynamic => vhd::dynamic(options, out),
        ImageFormat::Vmdk => vmdk::encoder(options, Box::new(out)),
        ImageFormat::AndroidSparse => android::encoder(options, out),
    }
}

/// The encoder of any format into a writer that only goes forward: a
/// format that needs a file ([`ImageFormat::streams`] false) is written
/// into `spool` (an unnamed temporary file) and copied to `out` when
/// complete; the others go to `out` as they are made.
///
/// # Errors
/// `InvalidInput` for options the format does not take.
pub fn forward_encoder(
    options: &ContainerOptions,
    out: Box<dyn Write + Send>,
    spool: impl FnOnce() -> io::Result<File>,
) -> io::Result<Box<dyn Encoder>> {
    if options.format.streams() {
        return stream_encoder(options, out);
    }
    let spool = spool()?;
    let inner = file_encoder(options, spool.try_clone()?)?;
    Ok(Box::new(Spooled { inner, spool, out }))
}

/// A container made in a spool file, copied out at the end.
struct Spooled {
    inner: Box<dyn Encoder>,
    spool: File,
    out: Box<dyn Write + Send>,
}

impl Encoder for Spooled {
    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.data(buf)
    }

    fn zeros(&mut self, len: u64) -> io::Result<()> {
        self.inner.zeros(len)
    }

    fn finish(self: Box<Self>) -> io::Result<Option<u64>> {
        let Spooled {
            inner,
            mut spool,
            mut out,
        } = *self;
        inner.finish()?;
        spool.seek(SeekFrom::Start(0))?;
        let copied = io::copy(&mut spool, &mut out)?;
        out.flush()?;
        Ok(Some(copied))
    }
}

/// Refuses options that the format does not take.
fn check(options: &ContainerOptions) -> io::Result<()> {
    let refuse = |what: &str| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what} is not an option of the {} format", options.format),
        ))
    };
    if options.compression != ClusterCompression::None && options.format != ImageFormat::Qcow2 {
        return refuse("cluster compression");
    }
    if options.sparse_crc && options.format != ImageFormat::AndroidSparse {
        return refuse("a CRC32 chunk");
    }
    Ok(())
}
