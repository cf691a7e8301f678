//! The typed requests: what a build reads, what filesystem it makes, and
//! where it writes. The CLI fills them from flags, a disk layout file from
//! its keys, a program by hand; [`FsRequest::options`] and
//! [`Compress::parse`] settle and check them before any source is read.

use std::path::PathBuf;

use kiln_container::ImageFormat;
use kiln_disk::partition;
use kiln_ext::{AutoSize, BuildOptions, FreeSpace, FsType, HashAlg, PlanError, RaidHints};
use kiln_fat::{FatOptions, FatVariant};
use kiln_sink::Durability;
use kiln_tree::{IdMap, Policy, TarOptions};

pub use crate::verity::{HashPlace, VerityRequest};

/// One layer of an image's tree. Layers apply in order: a source is laid
/// over the tree so far (later entries add or replace earlier ones,
/// directories merge), a spec edits it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layer {
    /// A directory (walked like `cp -ax`), an ext2/3/4 or FAT image (or
    /// a partition of a GPT disk image, `disk.img:2`), or a tar archive
    /// (plain or compressed; `-` is standard input).
    Source(PathBuf),
    /// A spec file (docs/spec-format.md).
    Spec(PathBuf),
    /// One spec line.
    SpecLine(String),
    /// A genext2fs device table.
    DeviceTable(PathBuf),
}

impl Layer {
    /// The file this layer reads, if any (a directory source too, and the
    /// disk image of a partition: the output must be none of them).
    pub fn file(&self) -> Option<PathBuf> {
        match self {
            Layer::Source(path) => Some(partition::split_image_arg(path.as_os_str()).0),
            Layer::Spec(path) | Layer::DeviceTable(path) => Some(path.clone()),
            Layer::SpecLine(_) => None,
        }
    }
}

/// The tree an image holds: its layers, then excludes, SELinux labels and
/// the ownership and time policies. `kiln verify` reads it as the build
/// did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TreeRequest {
    /// The sources and specs, in order.
    pub layers: Vec<Layer>,
    /// A SELinux file_contexts file labelling the finished tree.
    pub file_contexts: Option<PathBuf>,
    /// Globs of image paths left out, with everything below them.
    pub exclude: Vec<String>,
    /// OCI/overlayfs whiteouts apply between sources.
    pub whiteouts: bool,
    /// Tar sources are read past zero blocks (GNU tar `-i`).
    pub ignore_zeros: bool,
    /// Every entry of the sources is owned by 0:0.
    pub all_root: bool,
    /// Source uids mapped to image uids.
    pub uid_map: Vec<IdMap>,
    /// Source gids mapped to image gids.
    pub gid_map: Vec<IdMap>,
    /// Owner of the root directory.
    pub root_owner: Option<(u32, u32)>,
    /// Permission bits of the root directory.
    pub root_mode: Option<u16>,
    /// Every time of every entry and of the filesystem.
    pub timestamp: Option<i64>,
    /// `SOURCE_DATE_EPOCH`: clamps later times, and is the filesystem's
    /// own time unless `timestamp` is set. The library reads no
    /// environment: callers pass it (the CLI from the variable).
    pub source_date_epoch: Option<i64>,
    /// The filesystem's own time (superblock, lost+found) alone, the
    /// entries' times left as read: mke2fs's `E2FSPROGS_FAKE_TIME`.
    /// `timestamp` comes first, then this, then `source_date_epoch`.
    pub fs_time: Option<i64>,
    /// Image sources are read without verifying their metadata checksums
    /// (warned about).
    pub ignore_checksums: bool,
    /// The sources are a running system: entries that vanish while read
    /// are left out and files that change while copied are stored as they
    /// could be read, with warnings (otherwise each is an error).
    pub live: bool,
}

impl TreeRequest {
    /// The files the tree is read from (layers and file_contexts).
    pub fn input_files(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.layers
            .iter()
            .filter_map(Layer::file)
            .chain(self.file_contexts.clone())
    }

    /// How tar sources are read.
    pub(crate) fn tar_options(&self) -> TarOptions {
        TarOptions::new().ignore_zeros(self.ignore_zeros)
    }

    /// The ownership and time policies.
    pub(crate) fn policy(&self) -> Policy {
        Policy {
            uid_map: self.uid_map.clone(),
            gid_map: self.gid_map.clone(),
            all_root: self.all_root,
            root_owner: self.root_owner,
            root_mode: self.root_mode,
            set_time: self.timestamp,
            clamp_time: self.source_date_epoch,
        }
    }
}

/// How big a filesystem is.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum SizeRequest {
    /// What the tree needs plus 10 % and 1 MiB (kiln's default).
    #[default]
    Roomy,
    /// Exactly this many bytes.
    Fixed(u64),
    /// The smallest filesystem that holds the tree, plus `free` space and
    /// `free_inodes` (default: as many as `free` needs at the tree's own
    /// ratio of inodes to blocks).
    Auto {
        /// Free space beyond the tree's.
        free: Option<FreeSpace>,
        /// Unused inodes beyond the tree's.
        free_inodes: Option<u64>,
    },
}

/// The filesystem to make: its format and that format's options, its size
/// and its label.
#[derive(Clone, Debug, PartialEq)]
pub struct FsRequest {
    /// ext2/3/4 or FAT, with the options only that format has.
    pub format: Format,
    /// The size.
    pub size: SizeRequest,
    /// Volume label (ext: at most 16 bytes; FAT: at most 11 characters
    /// that a short name may hold, upper-cased).
    pub label: String,
}

/// A filesystem format and the options only it has.
#[derive(Clone, Debug, PartialEq)]
pub enum Format {
    /// ext2, ext3 or ext4.
    Ext(ExtRequest),
    /// FAT12, FAT16 or FAT32 (with VFAT long names).
    Fat(FatRequest),
}

/// An ext2/3/4 filesystem's options, in mke2fs's terms.
#[derive(Clone, Debug, PartialEq)]
pub struct ExtRequest {
    /// ext2, ext3 or ext4.
    pub fs_type: FsType,
    /// Feature edits as mke2fs `-O` takes them (`^metadata_csum,64bit`),
    /// applied in order to the type's defaults.
    pub features: Vec<String>,
    /// Bytes per block.
    pub block_size: u32,
    /// Bytes per inode.
    pub inode_size: u16,
    /// At least this many inodes (`-N`).
    pub inodes: Option<u64>,
    /// One inode per this many bytes (`-i`).
    pub bytes_per_inode: Option<u64>,
    /// Percentage of blocks reserved for root (`-m`).
    pub reserved_percent: f64,
    /// Filesystem UUID (default: derived from the inputs).
    pub uuid: Option<[u8; 16]>,
    /// Directory hash seed (default: derived from the inputs).
    pub seed: Option<[u8; 16]>,
    /// Directory hash of htree directories.
    pub hash_alg: HashAlg,
    /// Journal size in bytes (ext3, ext4 with a journal).
    pub journal_size: Option<u64>,
    /// RAID hints recorded in the superblock (mke2fs `-E stride`,
    /// `stripe_width`).
    pub raid: RaidHints,
}

impl ExtRequest {
    /// mke2fs's defaults for `fs_type`: 4 KiB blocks, 256-byte inodes, 5 %
    /// reserved.
    pub fn new(fs_type: FsType) -> ExtRequest {
        let defaults = BuildOptions::new(fs_type);
        ExtRequest {
            fs_type,
            features: Vec::new(),
            block_size: defaults.block_size,
            inode_size: defaults.inode_size,
            inodes: None,
            bytes_per_inode: None,
            reserved_percent: defaults.reserved_percent,
            uuid: None,
            seed: None,
            hash_alg: defaults.hash_alg,
            journal_size: None,
            raid: RaidHints::default(),
        }
    }
}

/// A FAT filesystem's options; `None` is what mkfs.fat would choose.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FatRequest {
    /// The variant (default: from the size, as mkfs.fat picks it; FAT32
    /// from 512 MiB up).
    pub variant: Option<FatVariant>,
    /// Bytes per cluster: a power of two from 512 to 65,536.
    pub cluster_size: Option<u32>,
    /// The volume serial number (default: derived from the inputs).
    pub volume_id: Option<u32>,
}

/// A request's options, checked against what its format allows.
#[derive(Clone, Debug)]
pub enum FsOptions {
    /// The ext writer's options (the UUID, seed and timestamp are settled
    /// once the tree is read).
    Ext(BuildOptions),
    /// The FAT writer's options, and the free space `--size auto` asks
    /// for.
    Fat(FatOptions, Option<FreeSpace>),
}

impl FsRequest {
    /// An ext2/3/4 filesystem with mke2fs's defaults for `fs_type` (see
    /// [`ExtRequest::new`]), sized as kiln's default, unlabelled.
    pub fn new(fs_type: FsType) -> FsRequest {
        FsRequest::of(Format::Ext(ExtRequest::new(fs_type)))
    }

    /// A FAT filesystem of `variant` (None: chosen from the size), sized
    /// as kiln's default, unlabelled.
    pub fn fat(variant: Option<FatVariant>) -> FsRequest {
        FsRequest::of(Format::Fat(FatRequest {
            variant,
            ..FatRequest::default()
        }))
    }

    fn of(format: Format) -> FsRequest {
        FsRequest {
            format,
            size: SizeRequest::Roomy,
            label: String::new(),
        }
    }

    /// The writer's options, checked against what the format allows
    /// before any source is read. `live` is the tree's
    /// [`TreeRequest::live`].
    pub fn options(&self, live: bool) -> anyhow::Result<FsOptions> {
        match &self.format {
            Format::Ext(ext) => Ok(FsOptions::Ext(self.ext_options(ext, live)?)),
            Format::Fat(fat) => {
                let free = match self.size {
                    SizeRequest::Auto {
                        free_inodes: Some(_),
                        ..
                    } => anyhow::bail!("free inodes: FAT has no inodes"),
                    SizeRequest::Auto { free, .. } => free,
                    _ => None,
                };
                let opts = FatOptions {
                    variant: fat.variant,
                    size: match self.size {
                        SizeRequest::Fixed(n) => Some(n),
                        _ => None,
                    },
                    label: Some(self.label.clone()).filter(|l| !l.is_empty()),
                    volume_id: fat.volume_id,
                    cluster_size: fat.cluster_size,
                    hidden_sectors: 0,
                };
                opts.validate()?;
                Ok(FsOptions::Fat(opts, free))
            }
        }
    }

    /// The same filesystem made read-only by construction, for dm-verity:
    /// ext gets the `read-only` feature (`EXT4_FEATURE_RO_COMPAT_READONLY`)
    /// and loses the journal its type has by default, which a device that
    /// is never written cannot replay anyway. A journal the request asks for
    /// (`has_journal` in its features, or a journal size) is kept, with the
    /// warning returned. FAT has no such flag and no journal: unchanged.
    pub fn read_only(&self) -> (FsRequest, Option<String>) {
        let Format::Ext(ext) = &self.format else {
            return (self.clone(), None);
        };
        let asked = ext.journal_size.is_some()
            || ext
                .features
                .iter()
                .flat_map(|list| list.split(','))
                .any(|f| f.trim() == "has_journal");
        let mut ext = ext.clone();
        if !asked {
            ext.features.insert(0, "^has_journal".into());
        }
        ext.features.push("read-only".into());
        let warning = asked.then(|| {
            "a journal on a read-only (dm-verity) image is never used; leave out has_journal \
             and -J to save its blocks"
                .to_string()
        });
        let fs = FsRequest {
            format: Format::Ext(ext),
            ..self.clone()
        };
        (fs, warning)
    }

    /// The ext writer's options.
    fn ext_options(&self, ext: &ExtRequest, live: bool) -> Result<BuildOptions, PlanError> {
        let mut opts = BuildOptions::new(ext.fs_type);
        for list in &ext.features {
            opts.features.edit(list)?;
        }
        (opts.size, opts.auto) = match self.size {
            SizeRequest::Roomy => (None, AutoSize::Roomy),
            SizeRequest::Fixed(n) => (Some(n), AutoSize::Roomy),
            SizeRequest::Auto { free, free_inodes } => (
                None,
                AutoSize::Exact {
                    free: free.unwrap_or(FreeSpace::Bytes(0)),
                    free_inodes,
                },
            ),
        };
        opts.block_size = ext.block_size;
        opts.inode_size = ext.inode_size;
        opts.inodes = ext.inodes;
        opts.bytes_per_inode = ext.bytes_per_inode;
        opts.reserved_percent = ext.reserved_percent;
        opts.label = self.label.clone().into_bytes();
        opts.journal_size = ext.journal_size;
        opts.raid = ext.raid;
        opts.hash_alg = ext.hash_alg;
        opts.live = live;
        opts.validate()?;
        Ok(opts)
    }
}

/// Compression of the output stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compress {
    /// The raw image.
    None,
    /// A zstd stream at this level (1-22); for qcow2, zstd-compressed
    /// clusters (at zstd's default level).
    Zstd(i32),
    /// qcow2 only: deflate-compressed clusters, as `qemu-img convert -c`.
    Deflate,
}

impl Compress {
    /// zstd's default level.
    pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

    /// `none`, `zstd`, `zstd:LEVEL` (1-22) or `deflate` (qcow2).
    pub fn parse(s: &str) -> Result<Compress, String> {
        match s {
            "none" => Ok(Compress::None),
            "zstd" => Ok(Compress::Zstd(Compress::DEFAULT_ZSTD_LEVEL)),
            "deflate" => Ok(Compress::Deflate),
            other => other
                .strip_prefix("zstd:")
                .and_then(|l| l.parse::<i32>().ok())
                .filter(|l| (1..=22).contains(l))
                .map(Compress::Zstd)
                .ok_or_else(|| {
                    format!("{other:?}: expected none, zstd, zstd:LEVEL (1-22) or deflate")
                }),
        }
    }
}

/// Where an image goes.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputRequest {
    /// The file to write (written beside it, renamed when complete); `-`
    /// is standard output; an existing block device is written in place.
    pub path: PathBuf,
    /// Overwrite an existing output.
    pub force: bool,
    /// Compression (`None`: zstd when the path ends in `.zst`): of the
    /// stream for raw and VHD outputs, of the clusters for qcow2.
    pub compress: Option<Compress>,
    /// The container format (`None`: from the path's extension, else raw).
    pub format: Option<ImageFormat>,
    /// A bmap file (bmaptool's) of the raw image to write beside the output.
    pub bmap: Option<PathBuf>,
    /// Android sparse: end the image with a CRC32 chunk.
    pub sparse_crc: bool,
    /// Write into the existing file `path` at this byte offset, in place.
    pub offset: Option<u64>,
    /// With `offset`: create a missing file and extend a short one first,
    /// as mke2fs treats its device file.
    pub grow: bool,
    /// Whether a new file is flushed to stable storage before its rename.
    pub durability: Durability,
    /// A JSON report to write (sizes, UUIDs, counts, SHA-256).
    pub report: Option<PathBuf>,
    /// Share the extents of source files rather than copying their bytes,
    /// where the output is a raw file on a filesystem that can (XFS with
    /// `reflink=1`, btrfs) and a source file is on the same one: its whole
    /// blocks are cloned, its tail copied. The image's bytes are the same
    /// either way; see [`DiskReport::shared_bytes`](crate::DiskReport::shared_bytes).
    pub reflink: bool,
}

impl OutputRequest {
    /// A new file at `path`, not overwritten, left to the kernel to flush.
    pub fn file(path: impl Into<PathBuf>) -> OutputRequest {
        OutputRequest {
            path: path.into(),
            force: false,
            compress: None,
            format: None,
            bmap: None,
            sparse_crc: false,
            offset: None,
            grow: false,
            durability: Durability::Writeback,
            report: None,
            reflink: true,
        }
    }
}

/// One filesystem image: its tree, its options, its output.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildRequest {
    /// What the image holds.
    pub tree: TreeRequest,
    /// The filesystem.
    pub fs: FsRequest,
    /// Where it goes.
    pub output: OutputRequest,
    /// A dm-verity hash tree of the image, written beside it or after it;
    /// the filesystem is then made read-only ([`FsRequest::read_only`]).
    pub verity: Option<VerityRequest>,
}
