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
    /// Source files could not be read, or changed since the tree was read
    /// (all of them: emit goes on past each, and fails at the end).
    #[error("{0}")]
    Sources(SourceIssues),
    /// Writing the output failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// A source file that could not be copied as the tree recorded it.
#[derive(Debug)]
pub struct SourceIssue {
    /// The file: a host path, a spec line or an archive.
    pub path: PathBuf,
    /// What happened to it.
    pub kind: IssueKind,
}

impl std::fmt::Display for SourceIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.kind)
    }
}

/// What happened to a source file between reading the tree and copying it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueKind {
    /// The host refused to open or read it.
    #[error("{0}")]
    Unreadable(io::Error),
    /// It no longer exists.
    #[error("it vanished after the tree was read")]
    Vanished {
        /// The size the tree recorded.
        planned: u64,
    },
    /// It was written since the tree was read (its size is the same, its
    /// times moved).
    #[error("it changed after the tree was read (its modification or change time moved)")]
    Rewritten,
    /// Its size changed since the tree was read.
    #[error("its size changed from {planned} to {now} bytes after the tree was read")]
    Resized {
        /// The size the tree recorded (and the image gives it).
        planned: u64,
        /// Its size when it was copied.
        now: u64,
    },
    /// It changed while it was being copied, each of `copies` times.
    #[error("it changed while it was being copied{}", if *copies > 1 { format!(" ({copies} times)") } else { String::new() })]
    Moving {
        /// How many times it was copied.
        copies: u32,
    },
}

impl IssueKind {
    /// What `--live` stored instead of failing, for its warning.
    fn stored(&self) -> String {
        match self {
            IssueKind::Vanished { planned } => format!("stored as {planned} zero bytes"),
            IssueKind::Resized { planned, now } if now < planned => {
                format!("stored at its former size, zero-filled past byte {now}")
            }
            IssueKind::Resized { .. } => "stored at its former size, cut there".into(),
            IssueKind::Moving { copies: 1 } => format!(
                "stored as read, old and new bytes possibly mixed (a file over {} is not copied again into a stream)",
                human(crate::emit::LIVE_COPY_BUFFER as u64)
            ),
            IssueKind::Moving { .. } => {
                "stored as last read, old and new bytes possibly mixed".into()
            }
            IssueKind::Unreadable(_) | IssueKind::Rewritten => "not stored".into(),
        }
    }
}

/// Source issues, listed for a message: the first [`SourceIssues::SHOWN`]
/// by path, then how many more.
#[derive(Debug, Default)]
pub struct SourceIssues(pub Vec<SourceIssue>);

impl SourceIssues {
    /// How many issues a message lists one by one.
    pub const SHOWN: usize = 50;
}

impl std::fmt::Display for SourceIssues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let [only] = self.0.as_slice() {
            return write!(f, "{only}");
        }
        write!(f, "{} source files could not be copied:", self.0.len())?;
        for issue in self.0.iter().take(Self::SHOWN) {
            write!(f, "\n  {issue}")?;
        }
        more(f, self.0.len())
    }
}

/// "and N more" past the issues listed.
fn more(f: &mut std::fmt::Formatter<'_>, count: usize) -> std::fmt::Result {
    match count.saturating_sub(SourceIssues::SHOWN) {
        0 => Ok(()),
        n => write!(f, "\n  and {n} more"),
    }
}

/// What `emit` reports besides the image: with `--live`
/// ([`BuildOptions::live`](crate::BuildOptions::live)), the source files
/// stored as they could be read rather than as the tree recorded them.
#[derive(Debug, Default)]
pub struct EmitReport {
    /// The files stored despite an issue, by path.
    pub stored_anyway: SourceIssues,
}

impl EmitReport {
    /// One warning per file stored despite an issue (the first
    /// [`SourceIssues::SHOWN`]), then how many more.
    pub fn warnings(&self) -> Vec<String> {
        let issues = &self.stored_anyway.0;
        let mut lines: Vec<String> = issues
            .iter()
            .take(SourceIssues::SHOWN)
            .map(|i| format!("{i}; {}", i.kind.stored()))
            .collect();
        if let Some(n) = issues
            .len()
            .checked_sub(SourceIssues::SHOWN)
            .filter(|&n| n > 0)
        {
            lines.push(format!(
                "and {n} more source files stored as they could be read"
            ));
        }
        lines
    }
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
    /// Reading the image failed: an I/O error of the host (a corrupt image
    /// is [`Corrupt`](Self::Corrupt) instead).
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    /// An on-disk structure is malformed or refers to blocks that do not
    /// exist: past the end of the filesystem, of its partition or of the
    /// image file.
    #[error("corrupt {structure}: {detail}")]
    Corrupt {
        /// The structure: `superblock`, `group descriptor table`,
        /// `inode table`, `block bitmap`, `xattr block`, `data block`, ...
        structure: &'static str,
        /// What is wrong, with the numbers.
        detail: String,
    },
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
    /// The metadata as it stands is not the filesystem's tree (see
    /// [`SuperblockView::unsettled`](crate::SuperblockView::unsettled)):
    /// refused as a source.
    #[error("the filesystem {why}; run e2fsck -f on it first")]
    Unsettled {
        /// What is pending.
        why: &'static str,
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
