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

/// RAID hints in the superblock (`s_raid_stride`, `s_raid_stripe_width`):
/// the kernel's block allocator aligns to them. 0 means none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RaidHints {
    /// Blocks written to one disk before the next (mke2fs `-E stride`).
    pub stride: u16,
    /// Blocks in a full stripe (mke2fs `-E stripe_width`).
    pub stripe_width: u32,
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
    /// RAID hints for the kernel's allocator (mke2fs `-E stride`,
    /// `stripe_width`), recorded in the superblock.
    pub raid: RaidHints,
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
            raid: RaidHints::default(),
            timestamp: 0,
            live: false,
        }
    }

    /// Checks every option that does not depend on the tree against what
    /// the format and kiln's writer allow: block size (`-b`), inode size
    /// (`-I`), label length (`-L`), reserved percentage (`-m`), bytes per
    /// inode (`-i`), the journal size (`-J`) against the type, and the
    /// feature combinations (`-O`) kiln cannot write. [`plan`](crate::plan)
    /// calls it first; a caller may call it before reading any source, so
    /// that bad options fail at once.
    pub fn validate(&self) -> Result<(), PlanError> {
        let bad = |m: String| Err(PlanError::Options(m));
        if ![1024, 2048, 4096].contains(&self.block_size) {
            return bad(format!(
                "block size {} (-b): must be 1024, 2048 or 4096",
                self.block_size
            ));
        }
        if ![128, 256].contains(&self.inode_size) {
            return bad(format!(
                "inode size {} (-I): must be 128 or 256",
                self.inode_size
            ));
        }
        if self.label.len() > MAX_LABEL {
            return bad(format!(
                "label of {} bytes (-L): at most {MAX_LABEL} fit",
                self.label.len()
            ));
        }
        if !(0.0..=MAX_RESERVED_PERCENT).contains(&self.reserved_percent) {
            return bad(format!(
                "reserved percentage {} (-m): must be 0 to {MAX_RESERVED_PERCENT}",
                self.reserved_percent
            ));
        }
        if let Some(i) = self.bytes_per_inode {
            if !BYTES_PER_INODE.contains(&i) {
                return bad(format!("bytes per inode {i} (-i): must be 1024 to 64 MiB"));
            }
        }
        if self.features.has(features::INLINE_DATA) && self.inode_size < 256 {
            return bad(
                "inline_data (-O) needs 256-byte inodes (-I 256): a 128-byte inode has no room for it"
                    .into(),
            );
        }
        if self.journal_size.is_some() && !self.features.has(features::HAS_JOURNAL) {
            return bad(
                "a journal size (-J) was given but has_journal is off (ext2, or -O ^has_journal)"
                    .into(),
            );
        }
        self.features.validate()
    }
}

/// Bytes of `s_volume_name`.
const MAX_LABEL: usize = 16;
/// The largest reserved percentage mke2fs accepts (`-m`).
const MAX_RESERVED_PERCENT: f64 = 50.0;
/// The bytes-per-inode ratios mke2fs accepts (`-i`).
const BYTES_PER_INODE: std::ops::RangeInclusive<u64> = 1024..=67_108_864;

#[cfg(test)]
mod tests {
    use super::*;

    /// An edit of ext4's default options.
    type Edit = fn(&mut BuildOptions);

    /// The message of the options `edit` makes out of ext4's defaults.
    fn refused(edit: impl FnOnce(&mut BuildOptions)) -> String {
        let mut opts = BuildOptions::new(FsType::Ext4);
        edit(&mut opts);
        opts.validate().unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_valid() {
        for ty in [FsType::Ext2, FsType::Ext3, FsType::Ext4] {
            BuildOptions::new(ty).validate().unwrap();
        }
    }

    #[test]
    fn each_bad_option_is_named_by_its_flag() {
        let cases: [(&str, Edit); 8] = [
            ("block size 512 (-b): must be 1024, 2048 or 4096", |o| {
                o.block_size = 512
            }),
            ("inode size 512 (-I): must be 128 or 256", |o| {
                o.inode_size = 512
            }),
            ("label of 17 bytes (-L): at most 16 fit", |o| {
                o.label = vec![b'x'; 17]
            }),
            ("reserved percentage 51 (-m): must be 0 to 50", |o| {
                o.reserved_percent = 51.0
            }),
            ("bytes per inode 512 (-i): must be 1024 to 64 MiB", |o| {
                o.bytes_per_inode = Some(512)
            }),
            ("inline_data (-O) needs 256-byte inodes (-I 256)", |o| {
                o.inode_size = 128;
                o.features.set(features::INLINE_DATA, true);
            }),
            (
                "a journal size (-J) was given but has_journal is off",
                |o| {
                    o.features.set(features::HAS_JOURNAL, false);
                    o.journal_size = Some(4 << 20);
                },
            ),
            ("64bit needs extent", |o| {
                o.features.set(features::EXTENT, false)
            }),
        ];
        for (want, edit) in cases {
            let err = refused(edit);
            assert!(err.contains(want), "{err:?} should say {want:?}");
            assert!(err.starts_with("invalid options: "), "{err}");
        }
    }

    #[test]
    fn bounds_are_inclusive() {
        let mut opts = BuildOptions::new(FsType::Ext3);
        opts.block_size = 1024;
        opts.inode_size = 128;
        opts.label = vec![b'x'; 16];
        opts.reserved_percent = 50.0;
        opts.bytes_per_inode = Some(1024);
        opts.journal_size = Some(4 << 20);
        opts.validate().unwrap();
        opts.reserved_percent = 0.0;
        opts.bytes_per_inode = Some(67_108_864);
        opts.validate().unwrap();
    }
}
