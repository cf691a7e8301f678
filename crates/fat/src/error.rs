//! What can go wrong planning or writing a FAT image.

use kiln_sink::SinkError;
use kiln_tree::DataError;

/// Why a FAT image could not be planned or written. Each variant names the
/// image path (`/EFI/BOOT/x`) it is about, where it is about one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FatError {
    /// A name FAT cannot hold (a character VFAT refuses, a trailing dot or
    /// space, more than 255 UTF-16 units, not UTF-8).
    #[error("{path}: FAT cannot hold this name: {why}")]
    BadName {
        /// The entry's image path.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Two names of one directory that are the same once case is folded.
    #[error("{path}: its name differs only in case from {other} (FAT names are case-insensitive)")]
    CaseCollision {
        /// The entry's image path.
        path: String,
        /// The other entry's image path.
        other: String,
    },
    /// A node FAT has no place for: a symlink, a device, a fifo, a socket.
    #[error("{path}: FAT cannot hold a {kind}")]
    Unsupported {
        /// The entry's image path.
        path: String,
        /// What it is.
        kind: &'static str,
    },
    /// A file with several names: FAT has no hard links.
    #[error("{path}: a hard link to {other}; FAT has no hard links (copy the file instead)")]
    HardLink {
        /// The second name's image path.
        path: String,
        /// The first name's image path.
        other: String,
    },
    /// A file of 4 GiB or more.
    #[error("{path}: {size} bytes; a FAT file holds at most 4294967295")]
    FileTooLarge {
        /// The file's image path.
        path: String,
        /// Its size.
        size: u64,
    },
    /// A directory needing more than 65,536 directory entries (32-byte
    /// slots, long-name slots included).
    #[error("{path}: needs {slots} directory entries, FAT allows at most {max}")]
    DirectoryTooLarge {
        /// The directory's image path.
        path: String,
        /// The slots it needs.
        slots: u64,
        /// The most allowed.
        max: u64,
    },
    /// The options cannot make a valid volume (size, variant and cluster
    /// size that do not go together, a bad label).
    #[error("{0}")]
    Options(String),
    /// The tree does not fit the volume.
    #[error("the tree needs {needed} clusters of {cluster_size} bytes, the {variant} volume of {size} bytes has {available}")]
    TooSmall {
        /// Clusters needed.
        needed: u64,
        /// Clusters available.
        available: u64,
        /// The cluster size.
        cluster_size: u32,
        /// The variant.
        variant: crate::FatVariant,
        /// The volume size.
        size: u64,
    },
    /// A source file could not be read, or changed since the tree was read.
    #[error("{path} (from {origin}): {source}")]
    Source {
        /// The file's image path.
        path: String,
        /// Where its bytes come from.
        origin: String,
        /// What went wrong.
        #[source]
        source: DataError,
    },
    /// Writing the image failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

impl FatError {
    /// Whether the error is about one entry (and names its image path)
    /// rather than the whole volume.
    pub fn names_an_entry(&self) -> bool {
        !matches!(
            self,
            FatError::Options(_) | FatError::TooSmall { .. } | FatError::Sink(_)
        )
    }
}

/// Why a FAT image could not be read. A malformed image is
/// [`Corrupt`](ReadError::Corrupt) (naming the structure), never an I/O
/// error; the reader refuses what it cannot read safely instead of
/// guessing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Reading the image failed: an I/O error of the host.
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
    /// An on-disk structure is malformed or refers to clusters that do
    /// not exist.
    #[error("corrupt {structure}: {detail}")]
    Corrupt {
        /// The structure: `boot sector`, `FAT`, `directory /EFI`, ...
        structure: String,
        /// What is wrong, with the numbers.
        detail: String,
    },
    /// A path inside the image does not exist.
    #[error("{path}: no such file or directory in the image")]
    NotFound {
        /// The path asked for.
        path: String,
    },
    /// A path goes through something that is not a directory.
    #[error("{path}: not a directory")]
    NotADirectory {
        /// The path up to the file.
        path: String,
    },
    /// The volume's dirty bit is set: mounted, or not cleanly unmounted,
    /// so its FAT and directories may not agree. Refused as a source.
    #[error(
        "the volume is marked dirty (mounted, or not cleanly unmounted); run fsck.fat on it first"
    )]
    Dirty,
    /// The boot sector claims more bytes than the partition or file
    /// holding it has.
    #[error("the volume ({fs_bytes} bytes) is larger than its {container} ({len} bytes)")]
    LargerThanContainer {
        /// Bytes the boot sector claims.
        fs_bytes: u64,
        /// `partition` or `image file`.
        container: &'static str,
        /// Bytes it has.
        len: u64,
    },
}

impl ReadError {
    /// A [`ReadError::Corrupt`] of `structure`.
    pub(crate) fn corrupt(structure: impl Into<String>, detail: impl Into<String>) -> ReadError {
        ReadError::Corrupt {
            structure: structure.into(),
            detail: detail.into(),
        }
    }
}
