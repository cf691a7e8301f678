//! Filesystem types and their feature flags, and mke2fs-style `-O` edits.
//!
//! The flag values are those of the superblock's `s_feature_compat`,
//! `s_feature_incompat` and `s_feature_ro_compat` words.

use crate::PlanError;

/// The kind of filesystem to build; it picks the default features.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FsType {
    /// ext2: no journal.
    Ext2,
    /// ext3: ext2 plus a jbd2 journal in inode 8.
    Ext3,
    /// ext4: extents, flex_bg, 64bit, metadata_csum and the rest of mke2fs 1.47's set.
    Ext4,
}

impl FsType {
    /// The name users type (`ext2`, `ext3`, `ext4`).
    pub fn name(self) -> &'static str {
        match self {
            FsType::Ext2 => "ext2",
            FsType::Ext3 => "ext3",
            FsType::Ext4 => "ext4",
        }
    }
}

/// Which of the three feature words a flag lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Word {
    Compat,
    Incompat,
    RoCompat,
}

/// One feature kiln knows: its mke2fs name, word and bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Feature {
    name: &'static str,
    word: Word,
    bit: u32,
}

macro_rules! features {
    ($($konst:ident = $name:literal, $word:ident, $bit:literal, $doc:literal;)*) => {
        $(
            #[doc = $doc]
            pub(crate) const $konst: Feature = Feature { name: $name, word: Word::$word, bit: $bit };
        )*
        /// Every feature kiln can write, in mke2fs's order of listing.
        const KNOWN: &[Feature] = &[$($konst),*];
    };
}

features! {
    HAS_JOURNAL = "has_journal", Compat, 0x4, "A jbd2 journal in inode 8.";
    EXT_ATTR = "ext_attr", Compat, 0x8, "Extended attributes.";
    RESIZE_INODE = "resize_inode", Compat, 0x10, "Reserved GDT blocks and the resize inode.";
    DIR_INDEX = "dir_index", Compat, 0x20, "Hash-indexed (htree) directories.";
    ORPHAN_FILE = "orphan_file", Compat, 0x1000, "Orphan inodes listed in a file of their own rather than chained from the superblock (Linux 5.15).";
    FILETYPE = "filetype", Incompat, 0x2, "Directory entries record the file type.";
    EXTENT = "extent", Incompat, 0x40, "Files mapped by extent trees.";
    BIT64 = "64bit", Incompat, 0x80, "64-bit block numbers and 64-byte group descriptors.";
    FLEX_BG = "flex_bg", Incompat, 0x200, "Bitmaps and inode tables of 16 groups packed together.";
    METADATA_CSUM_SEED = "metadata_csum_seed", Incompat, 0x2000, "The checksum seed kept in the superblock, so the UUID can change.";
    LARGE_DIR = "large_dir", Incompat, 0x4000, "Three-level htrees and directories over 2 GiB.";
    INLINE_DATA = "inline_data", Incompat, 0x8000, "Small files and directories inside the inode.";
    SPARSE_SUPER = "sparse_super", RoCompat, 0x1, "Superblock backups only in groups 0, 1 and powers of 3, 5, 7.";
    LARGE_FILE = "large_file", RoCompat, 0x2, "Files of 2 GiB and more.";
    HUGE_FILE = "huge_file", RoCompat, 0x8, "48-bit i_blocks: files of 2 TiB and more.";
    DIR_NLINK = "dir_nlink", RoCompat, 0x20, "Directories with more than 65,000 subdirectories.";
    EXTRA_ISIZE = "extra_isize", RoCompat, 0x40, "Every large inode reserves its extra fields.";
    METADATA_CSUM = "metadata_csum", RoCompat, 0x400, "CRC32C checksums on all metadata.";
    READ_ONLY = "read-only", RoCompat, 0x1000, "Never mounted read-write (EXT4_FEATURE_RO_COMPAT_READONLY): images under dm-verity.";
}

/// Features kiln does not write but knows by name (mke2fs's names), so
/// that `info` names them and `verify` can tell them from unknown bits.
const NAMED: &[Feature] = &[
    Feature {
        name: "dir_prealloc",
        word: Word::Compat,
        bit: 0x1,
    },
    Feature {
        name: "imagic_inodes",
        word: Word::Compat,
        bit: 0x2,
    },
    Feature {
        name: "lazy_bg",
        word: Word::Compat,
        bit: 0x40,
    },
    Feature {
        name: "sparse_super2",
        word: Word::Compat,
        bit: 0x200,
    },
    Feature {
        name: "fast_commit",
        word: Word::Compat,
        bit: 0x400,
    },
    Feature {
        name: "stable_inodes",
        word: Word::Compat,
        bit: 0x800,
    },
    Feature {
        name: "compression",
        word: Word::Incompat,
        bit: 0x1,
    },
    Feature {
        name: "needs_recovery",
        word: Word::Incompat,
        bit: 0x4,
    },
    Feature {
        name: "journal_dev",
        word: Word::Incompat,
        bit: 0x8,
    },
    Feature {
        name: "meta_bg",
        word: Word::Incompat,
        bit: 0x10,
    },
    Feature {
        name: "mmp",
        word: Word::Incompat,
        bit: 0x100,
    },
    Feature {
        name: "ea_inode",
        word: Word::Incompat,
        bit: 0x400,
    },
    Feature {
        name: "dirdata",
        word: Word::Incompat,
        bit: 0x1000,
    },
    Feature {
        name: "encrypt",
        word: Word::Incompat,
        bit: 0x10000,
    },
    Feature {
        name: "casefold",
        word: Word::Incompat,
        bit: 0x20000,
    },
    Feature {
        name: "btree_dir",
        word: Word::RoCompat,
        bit: 0x4,
    },
    Feature {
        name: "uninit_bg",
        word: Word::RoCompat,
        bit: 0x10,
    },
    Feature {
        name: "snapshot_bitmap",
        word: Word::RoCompat,
        bit: 0x80,
    },
    Feature {
        name: "quota",
        word: Word::RoCompat,
        bit: 0x100,
    },
    Feature {
        name: "bigalloc",
        word: Word::RoCompat,
        bit: 0x200,
    },
    Feature {
        name: "replica",
        word: Word::RoCompat,
        bit: 0x800,
    },
    Feature {
        name: "project",
        word: Word::RoCompat,
        bit: 0x2000,
    },
    Feature {
        name: "shared_blocks",
        word: Word::RoCompat,
        bit: 0x4000,
    },
    Feature {
        name: "verity",
        word: Word::RoCompat,
        bit: 0x8000,
    },
    Feature {
        name: "orphan_present",
        word: Word::RoCompat,
        bit: 0x10000,
    },
];

/// The incompat bits kiln's reader understands: those it writes, plus
/// needs_recovery (the metadata is read as it stands, without the journal's
/// changes), mmp, metadata_csum_seed and casefold, which change nothing it
/// reads. The rest (compression, journal_dev, meta_bg, ea_inode, dirdata,
/// encrypt, and unknown bits) change where or how metadata or names are
/// stored: as the kernel does, the reader refuses them.
const READABLE_INCOMPAT: u32 =
    0x2 | 0x4 | 0x40 | 0x80 | 0x100 | 0x200 | 0x2000 | 0x4000 | 0x8000 | 0x20000;

/// `needs_recovery`.
const INCOMPAT_RECOVER: u32 = 0x4;
/// `orphan_present`: the orphan file is not empty.
const RO_COMPAT_ORPHAN_PRESENT: u32 = 0x10000;
/// `s_feature_compat`: superblock backups only in `s_backup_bgs`
/// (sparse_super2; read, never written).
pub(crate) const COMPAT_SPARSE_SUPER2: u32 = 0x200;

/// The incompat bits an ext3 driver knows: filetype, recover, journal_dev, meta_bg.
const EXT3_INCOMPAT: u32 = 0x2 | 0x4 | 0x8 | 0x10;
/// The ro_compat bits an ext3 driver knows: sparse_super, large_file, btree_dir.
const EXT3_RO_COMPAT: u32 = 0x1 | 0x2 | 0x4;

/// The three feature words of the superblock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    pub(crate) compat: u32,
    pub(crate) incompat: u32,
    pub(crate) ro_compat: u32,
}

impl Features {
    /// mke2fs 1.47's defaults (`/etc/mke2fs.conf`) for `fs_type`.
    pub fn defaults(fs_type: FsType) -> Features {
        let base = [
            SPARSE_SUPER,
            LARGE_FILE,
            FILETYPE,
            RESIZE_INODE,
            DIR_INDEX,
            EXT_ATTR,
        ];
        let extra: &[Feature] = match fs_type {
            FsType::Ext2 => &[],
            FsType::Ext3 => &[HAS_JOURNAL],
            FsType::Ext4 => &[
                HAS_JOURNAL,
                EXTENT,
                HUGE_FILE,
                FLEX_BG,
                METADATA_CSUM,
                BIT64,
                DIR_NLINK,
                EXTRA_ISIZE,
            ],
        };
        let mut f = Features::default();
        for feature in base.iter().chain(extra) {
            f.set(*feature, true);
        }
        f
    }

    fn word(&mut self, word: Word) -> &mut u32 {
        match word {
            Word::Compat => &mut self.compat,
            Word::Incompat => &mut self.incompat,
            Word::RoCompat => &mut self.ro_compat,
        }
    }

    /// Whether `feature` is on.
    pub(crate) fn has(&self, feature: Feature) -> bool {
        let word = match feature.word {
            Word::Compat => self.compat,
            Word::Incompat => self.incompat,
            Word::RoCompat => self.ro_compat,
        };
        word & feature.bit != 0
    }

    /// Turns `feature` on or off.
    pub(crate) fn set(&mut self, feature: Feature, on: bool) {
        let w = self.word(feature.word);
        if on {
            *w |= feature.bit;
        } else {
            *w &= !feature.bit;
        }
    }

    /// Applies a mke2fs-style edit list: `extent,^metadata_csum,^64bit`
    /// (`^` removes; `none` clears all). Unknown names are errors.
    pub fn edit(&mut self, list: &str) -> Result<(), PlanError> {
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "none" {
                *self = Features::default();
                continue;
            }
            let (on, name) = match item.strip_prefix('^') {
                Some(name) => (false, name),
                None => (true, item),
            };
            let name = if name == "extents" { "extent" } else { name };
            let feature = KNOWN.iter().find(|f| f.name == name).ok_or_else(|| {
                PlanError::Options(format!(
                    "unknown or unsupported feature {name:?} (known: {})",
                    KNOWN.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
                ))
            })?;
            self.set(*feature, on);
        }
        Ok(())
    }

    /// Refuses combinations the format or kiln does not support, naming why.
    pub(crate) fn validate(&self) -> Result<(), PlanError> {
        let refuse = |m: &str| Err(PlanError::Options(m.to_string()));
        if self.has(BIT64) && !self.has(EXTENT) {
            return refuse("64bit needs extent (block maps cannot address blocks past 2^32)");
        }
        if self.has(LARGE_DIR) && !self.has(DIR_INDEX) {
            return refuse("large_dir needs dir_index");
        }
        if self.has(RESIZE_INODE) && !self.has(SPARSE_SUPER) {
            return refuse("resize_inode needs sparse_super");
        }
        if self.has(ORPHAN_FILE) && !self.has(HAS_JOURNAL) {
            return refuse("orphan_file needs has_journal (as in mke2fs)");
        }
        if self.has(METADATA_CSUM_SEED) && !self.has(METADATA_CSUM) {
            return refuse("metadata_csum_seed needs metadata_csum");
        }
        Ok(())
    }

    /// The names of the features that are on, space-separated, in the order
    /// and spelling of dumpe2fs (see [`Features::list`]).
    pub fn names(&self) -> String {
        self.list().join(" ")
    }

    /// The names of the features that are on, as dumpe2fs lists them: word by
    /// word (compat, incompat, ro_compat), bit by bit. A bit kiln does not
    /// know gets e2fsprogs's fallback name (`FEATURE_I16`).
    pub fn list(&self) -> Vec<String> {
        let words = [
            (Word::Compat, self.compat, 'C'),
            (Word::Incompat, self.incompat, 'I'),
            (Word::RoCompat, self.ro_compat, 'R'),
        ];
        let mut out = Vec::new();
        for (word, bits, letter) in words {
            for n in (0..32).filter(|n| bits & (1 << n) != 0) {
                out.push(
                    Features::named(word, 1 << n)
                        .map_or_else(|| format!("FEATURE_{letter}{n}"), |f| f.name.to_string()),
                );
            }
        }
        out
    }

    /// The feature of bit `bit` of `word`, if kiln knows its name.
    fn named(word: Word, bit: u32) -> Option<&'static Feature> {
        KNOWN
            .iter()
            .chain(NAMED)
            .find(|f| f.word == word && f.bit == bit)
    }

    /// The incompat features kiln's reader cannot read (by name, or as
    /// `FEATURE_In` for bits nobody named), as the kernel refuses to mount
    /// an image with an incompat feature it does not know.
    pub fn unreadable(&self) -> Vec<String> {
        Features {
            incompat: self.incompat & !READABLE_INCOMPAT,
            ..Features::default()
        }
        .list()
    }

    /// The bits of any word that no feature kiln knows by name stands for.
    pub fn unknown(&self) -> Vec<String> {
        let mut unknown = Features::default();
        let words = [
            (Word::Compat, self.compat, &mut unknown.compat),
            (Word::Incompat, self.incompat, &mut unknown.incompat),
            (Word::RoCompat, self.ro_compat, &mut unknown.ro_compat),
        ];
        for (word, bits, out) in words {
            *out = (0..32)
                .map(|n| 1u32 << n)
                .filter(|&bit| bits & bit != 0 && Features::named(word, bit).is_none())
                .fold(0, |acc, bit| acc | bit);
        }
        unknown.list()
    }

    /// Whether the journal holds changes not yet written to the metadata
    /// (`needs_recovery`): what a reader sees is then stale.
    pub fn needs_recovery(&self) -> bool {
        self.incompat & INCOMPAT_RECOVER != 0
    }

    /// Whether the orphan file lists inodes still to be finished
    /// (`orphan_present`).
    pub fn orphans_present(&self) -> bool {
        self.ro_compat & RO_COMPAT_ORPHAN_PRESENT != 0
    }

    /// The filesystem type these features make, as blkid names it: ext4 with
    /// any feature beyond ext3's, ext3 with a journal, else ext2.
    pub fn fs_type(&self) -> FsType {
        if self.incompat & !EXT3_INCOMPAT != 0 || self.ro_compat & !EXT3_RO_COMPAT != 0 {
            FsType::Ext4
        } else if self.has(HAS_JOURNAL) {
            FsType::Ext3
        } else {
            FsType::Ext2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_unreadable_features_are_named() {
        let mut f = Features::defaults(FsType::Ext4);
        assert!(f.unknown().is_empty() && f.unreadable().is_empty());
        f.incompat |= INCOMPAT_RECOVER;
        assert!(f.needs_recovery() && f.unreadable().is_empty());
        assert!(f.list().contains(&"needs_recovery".to_string()));
        f.incompat |= 0x10 | 0x8000_0000;
        f.ro_compat |= 0x4000_0000;
        assert_eq!(f.unreadable(), ["meta_bg", "FEATURE_I31"]);
        assert_eq!(f.unknown(), ["FEATURE_I31", "FEATURE_R30"]);
    }

    #[test]
    fn ext4_defaults_match_mke2fs() {
        let f = Features::defaults(FsType::Ext4);
        assert_eq!(
            f.names(),
            "has_journal ext_attr resize_inode dir_index filetype extent 64bit flex_bg sparse_super large_file huge_file dir_nlink extra_isize metadata_csum"
        );
    }

    #[test]
    fn types_and_unknown_bits() {
        assert_eq!(Features::defaults(FsType::Ext2).fs_type(), FsType::Ext2);
        assert_eq!(Features::defaults(FsType::Ext3).fs_type(), FsType::Ext3);
        assert_eq!(Features::defaults(FsType::Ext4).fs_type(), FsType::Ext4);
        let mut f = Features::defaults(FsType::Ext2);
        f.edit("extent").unwrap();
        assert_eq!(f.fs_type(), FsType::Ext4);
        let odd = Features {
            compat: 0x200 | 0x8000,
            incompat: 0x1_0000,
            ro_compat: 0,
        };
        assert_eq!(odd.list(), ["sparse_super2", "FEATURE_C15", "encrypt"]);
    }

    #[test]
    fn edits_add_and_remove() {
        let mut f = Features::defaults(FsType::Ext4);
        f.edit("^metadata_csum,^64bit,large_dir").unwrap();
        assert!(!f.has(METADATA_CSUM) && !f.has(BIT64) && f.has(LARGE_DIR));
        assert!(f.edit("bogus").is_err());
        let mut g = Features::defaults(FsType::Ext2);
        g.edit("64bit").unwrap();
        assert!(g.validate().is_err());
        let mut h = Features::defaults(FsType::Ext4);
        h.edit("inline_data,^dir_index,large_dir").unwrap();
        assert!(h.validate().unwrap_err().to_string().contains("large_dir"));
    }
}
