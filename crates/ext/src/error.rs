//! Errors of planning and writing an image.

use std::io;
use std::path::PathBuf;

use kiln_sink::SinkError;

/// Why an image could not be planned: the tree does not fit the format or the
/// options. Each variant names the entry (image path) or the numbers involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The image is too small for the tree.
    #[error("the image is too small{}: {have} bytes{}", inodes.map(|i| i.to_string()).unwrap_or_default(), needed.map(|n| format!(", it must be at least {n} bytes ({})", human(n))).unwrap_or_default())]
    TooSmall {
        /// Smallest image size that would hold the tree, when known.
        needed: Option<u64>,
        /// The size asked for.
        have: u64,
        /// The inode count asked for, which the size had to hold too.
        inodes: Option<InodeAsk>,
    },
    /// More inodes were asked for (or needed) than the geometry can hold.
    #[error("too many inodes for this size: {wanted} wanted, at most {max} fit (use a larger --size or fewer inodes)")]
    TooManyInodes {
        /// Inodes wanted.
        wanted: u64,
        /// Most the geometry holds.
        max: u64,
    },
    /// The tree has more entries than the inode count allows.
    #[error(
        "not enough inodes: the tree needs {needed}, the image has {have} (raise -N or lower -i)"
    )]
    NotEnoughInodes {
        /// Inodes the tree needs (reserved ones included).
        needed: u64,
        /// Inodes the image has.
        have: u64,
    },
    /// An entry breaks a limit of the format.
    #[error("{path}: {what}")]
    Limit {
        /// Path of the entry inside the image.
        path: String,
        /// Which limit, with the numbers.
        what: String,
    },
    /// The options contradict each other or the format.
    #[error("invalid options: {0}")]
    Options(String),
}

/// Why an image could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// A source file could not be read.
    #[error("{}: {source}", path.display())]
    Source {
        /// The source file.
        path: PathBuf,
        /// What the host said.
        #[source]
        source: io::Error,
    },
    /// A source file changed between reading the tree and copying its data.
    #[error("{}: the file changed while the image was being built ({what})", path.display())]
    SourceChanged {
        /// The source file.
        path: PathBuf,
        /// What changed.
        what: String,
    },
    /// Writing the output failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// Why an image (its superblock, an inode or its xattrs) could not be read.
/// The caller names the image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The image ends before the end of the primary superblock.
    #[error(
        "too short for an ext2/3/4 filesystem ({len} bytes; the superblock ends at byte 2048)"
    )]
    ShortImage {
        /// Bytes the image has.
        len: usize,
    },
    /// `s_magic` is not 0xEF53: not an ext2/3/4 filesystem (or a partitioned disk).
    #[error("not an ext2/3/4 filesystem (superblock magic {found:#06x}, expected 0xef53)")]
    BadMagic {
        /// The magic number found.
        found: u16,
    },
    /// metadata_csum is on and the superblock checksum does not match.
    #[error("superblock checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum {
        /// `s_checksum`.
        stored: u32,
        /// The CRC32C of the superblock.
        computed: u32,
    },
    /// A field holds a value the format does not allow.
    #[error("corrupt superblock: {field} is {value}")]
    BadField {
        /// The kernel name of the field.
        field: &'static str,
        /// Its value.
        value: u32,
    },
    /// Reading the image failed, or it ends before a structure it refers to.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    /// An inode number outside 1 to the inode count.
    #[error("inode {ino} does not exist (the filesystem has inodes 1 to {count})")]
    InodeOutOfRange {
        /// The number asked for.
        ino: u32,
        /// `s_inodes_count`.
        count: u32,
    },
    /// An inode's xattr block does not start with the xattr magic number.
    #[error("inode {ino}: xattr block {block} has magic {found:#010x}, expected 0xea020000")]
    BadXattrMagic {
        /// The inode.
        ino: u32,
        /// The block `i_file_acl` names.
        block: u64,
        /// The magic number found.
        found: u32,
    },
    /// An inode's block map, extent tree or directory entries are malformed.
    #[error("inode {ino}: {what}")]
    CorruptInode {
        /// The inode.
        ino: u32,
        /// What is wrong.
        what: String,
    },
    /// A path inside the image does not exist.
    #[error("{path}: no such file or directory in the image")]
    NotFound {
        /// The path asked for.
        path: String,
    },
    /// A metadata checksum (metadata_csum) does not match what it covers.
    #[error("{what}: metadata checksum mismatch")]
    BadChecksum {
        /// The structure: `inode 12`, `directory block 3 of inode 12`, ...
        what: String,
    },
    /// The image has incompat features that change where or how metadata
    /// is stored and that kiln's reader does not know (as the kernel,
    /// it refuses them).
    #[error("the filesystem has incompatible features kiln cannot read: {features}")]
    Unsupported {
        /// Their names (or `FEATURE_In`), space-separated.
        features: String,
    },
    /// The superblock claims more blocks than the partition holding it has.
    #[error("the filesystem ({fs_bytes} bytes) is larger than its partition ({len} bytes)")]
    LargerThanPartition {
        /// Bytes the superblock claims.
        fs_bytes: u64,
        /// Bytes of the partition.
        len: u64,
    },
    /// An inode's xattrs are malformed (or use ea_inode, not supported).
    #[error("inode {ino}: corrupt xattrs: {what}")]
    CorruptXattrs {
        /// The inode.
        ino: u32,
        /// What is wrong.
        what: String,
    },
}

/// How the inode count of an image was asked for (`-N` or `-i`), for the
/// message of an image too small to hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InodeAsk {
    /// `-N COUNT`.
    Count(u64),
    /// `-i BYTES`.
    BytesPerInode(u64),
}

impl std::fmt::Display for InodeAsk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InodeAsk::Count(n) => write!(f, " with -N {n} inodes"),
            InodeAsk::BytesPerInode(i) => write!(f, " with one inode per {i} bytes (-i)"),
        }
    }
}

/// Formats a byte count with a binary suffix for messages.
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
