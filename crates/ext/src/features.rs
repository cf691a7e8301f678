//! Filesystem types and the feature flags they switch on.
//!
//! The flag values are those of the superblock's `s_feature_compat`,
//! `s_feature_incompat` and `s_feature_ro_compat` words.

/// `s_feature_compat`: the filesystem has a journal (inode 8).
pub(crate) const COMPAT_HAS_JOURNAL: u32 = 0x4;
/// `s_feature_compat`: extended attributes are supported.
pub(crate) const COMPAT_EXT_ATTR: u32 = 0x8;
/// `s_feature_compat`: reserved GDT blocks and the resize inode exist.
pub(crate) const COMPAT_RESIZE_INODE: u32 = 0x10;
/// `s_feature_compat`: directories may be hash-indexed.
pub(crate) const COMPAT_DIR_INDEX: u32 = 0x20;
/// `s_feature_incompat`: directory entries record the file type.
pub(crate) const INCOMPAT_FILETYPE: u32 = 0x2;
/// `s_feature_ro_compat`: superblock backups only in groups 0, 1 and powers of 3, 5, 7.
pub(crate) const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
/// `s_feature_ro_compat`: files may be larger than 2 GiB.
pub(crate) const RO_COMPAT_LARGE_FILE: u32 = 0x2;

/// The kind of filesystem to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FsType {
    /// ext2: no journal.
    Ext2,
    /// ext3: ext2 plus a jbd2 journal in inode 8.
    Ext3,
}

impl FsType {
    /// The name users type (`ext2`, `ext3`).
    pub fn name(self) -> &'static str {
        match self {
            FsType::Ext2 => "ext2",
            FsType::Ext3 => "ext3",
        }
    }

    /// True when this type carries a journal.
    pub fn has_journal(self) -> bool {
        matches!(self, FsType::Ext3)
    }
}

/// The three feature words of the superblock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Features {
    pub(crate) compat: u32,
    pub(crate) incompat: u32,
    pub(crate) ro_compat: u32,
}

impl Features {
    /// mke2fs 1.47's defaults (`/etc/mke2fs.conf` base_features) for `fs_type`.
    pub(crate) fn defaults(fs_type: FsType) -> Features {
        let mut compat = COMPAT_EXT_ATTR | COMPAT_RESIZE_INODE | COMPAT_DIR_INDEX;
        if fs_type.has_journal() {
            compat |= COMPAT_HAS_JOURNAL;
        }
        Features {
            compat,
            incompat: INCOMPAT_FILETYPE,
            ro_compat: RO_COMPAT_SPARSE_SUPER | RO_COMPAT_LARGE_FILE,
        }
    }
}
