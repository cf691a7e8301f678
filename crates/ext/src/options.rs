//! The validated options of one build.

use crate::features::{self, Features, FsType};
use crate::PlanError;

/// The directory hash algorithms of htree directories (mke2fs `-E hash_alg=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlg {
    /// The original ext3 hash.
    Legacy,
    /// Half MD4, the default.
    HalfMd4,
    /// Tiny Encryption Algorithm.
    Tea,
}

impl HashAlg {
    /// The `s_def_hash_version` value.
    pub(crate) fn version(self) -> u8 {
        match self {
            HashAlg::Legacy => crate::htree::LEGACY,
            HashAlg::HalfMd4 => crate::htree::HALF_MD4,
            HashAlg::Tea => crate::htree::TEA,
        }
    }
}

/// How big an image without a fixed size is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AutoSize {
    /// What the tree needs plus 10% and 1 MiB, and a quarter more inodes
    /// (the default: room to change a few things).
    Roomy,
    /// The smallest image that holds the tree (`--size auto`), plus `free`
    /// space and `free_inodes` unused inodes.
    Exact {
        /// Free space beyond what the tree takes.
        free: FreeSpace,
        /// Unused inodes beyond those the tree takes; `None`: as many as
        /// the free space would need at the tree's own ratio of inodes to
        /// blocks (20 % more space, 20 % more inodes), so that the room
        /// asked for can be used.
        free_inodes: Option<u64>,
    },
}

/// Free space asked for (`--free`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FreeSpace {
    /// Bytes.
    Bytes(u64),
    /// A percentage of the space the tree takes.
    Percent(f64),
}

/// Everything that shapes an image besides the tree; the CLI fills it from
/// flags named as mke2fs users expect.
#[derive(Clone, Debug, PartialEq)]
pub struct BuildOptions {
    /// ext2, ext3 or ext4: the defaults the features started from.
    pub fs_type: FsType,
    /// The features to write (the type's defaults with `-O` edits applied).
    pub features: Features,
    /// Image size in bytes; `None` picks a size that fits the tree, with the
    /// headroom of [`auto`](Self::auto).
    pub size: Option<u64>,
    /// How an image without a fixed `size` is sized.
    pub auto: AutoSize,
    /// Bytes per block: 1024, 2048 or 4096.
    pub block_size: u32,
    /// Bytes per inode: 128 or 256.
    pub inode_size: u16,
    /// Inode count (`-N`); at least this many are created.
    pub inodes: Option<u64>,
    /// Bytes of filesystem per inode (`-i`).
    pub bytes_per_inode: Option<u64>,
    /// Percentage of blocks reserved for root (`-m`).
    pub reserved_percent: f64,
    /// Volume label, at most 16 bytes.
    pub label: Vec<u8>,
    /// Filesystem UUID.
    pub uuid: [u8; 16],
    /// Directory hash seed.
    pub hash_seed: [u8; 16],
    /// Directory hash algorithm of htree directories.
    pub hash_alg: HashAlg,
    /// Journal size in bytes (`-J`); `None` picks mke2fs's default.
    pub journal_size: Option<u64>,
    /// Seconds since the epoch recorded as creation and write time of the
    /// filesystem and as the times of the inodes kiln creates itself.
    pub timestamp: i64,
    /// The sources are a running system (`--live`): emit copies again a
    /// file that changes while it is copied, and stores a file that
    /// vanished, changed size or kept changing as it could be read, with a
    /// warning in its [`EmitReport`](crate::EmitReport). Without it, each
    /// such file is an error (all of them named together).
    pub live: bool,
}

impl BuildOptions {
    /// Options with mke2fs 1.47's defaults for `fs_type`, a zero UUID and seed.
    pub fn new(fs_type: FsType) -> BuildOptions {
        BuildOptions {
            fs_type,
            features: Features::defaults(fs_type),
            size: None,
            auto: AutoSize::Roomy,
            block_size: 4096,
            inode_size: 256,
            inodes: None,
            bytes_per_inode: None,
            reserved_percent: 5.0,
            label: Vec::new(),
            uuid: [0; 16],
            hash_seed: [0; 16],
            hash_alg: HashAlg::HalfMd4,
            journal_size: None,
            timestamp: 0,
            live: false,
        }
    }

    /// Checks each option against what the format allows.
    pub fn validate(&self) -> Result<(), PlanError> {
        let bad = |m: String| Err(PlanError::Options(m));
        if ![1024, 2048, 4096].contains(&self.block_size) {
            return bad(format!(
                "block size {} (use 1024, 2048 or 4096)",
                self.block_size
            ));
        }
        if ![128, 256].contains(&self.inode_size) {
            return bad(format!("inode size {} (use 128 or 256)", self.inode_size));
        }
        if self.label.len() > 16 {
            return bad(format!(
                "label is {} bytes, at most 16 fit",
                self.label.len()
            ));
        }
        if !(0.0..=50.0).contains(&self.reserved_percent) {
            return bad(format!(
                "reserved percentage {} (use 0 to 50)",
                self.reserved_percent
            ));
        }
        if let Some(i) = self.bytes_per_inode {
            if !(1024..=67_108_864).contains(&i) {
                return bad(format!("bytes per inode {i} (use 1024 to 64 MiB)"));
            }
        }
        if self.features.has(features::INLINE_DATA) && self.inode_size < 256 {
            return bad(
                "inline_data needs 256-byte inodes (a 128-byte inode has no room for it)".into(),
            );
        }
        if self.journal_size.is_some() && !self.features.has(features::HAS_JOURNAL) {
            return bad("a journal size was given but has_journal is off".into());
        }
        self.features.validate()
    }
}
