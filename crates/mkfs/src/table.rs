//! Every mke2fs 1.47 option and extended option, with what kiln does with
//! it: the source of the docs and of the closing note of issue 22.

/// What kiln does with a mke2fs option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The image is what mke2fs would make of it.
    Honoured,
    /// It changes only how mke2fs runs (messages, I/O), not the image:
    /// accepted and recorded in the plan's notes.
    NoOp,
    /// It changes the image or the device in a way kiln cannot: refused
    /// (some values may be honoured; `what` says which).
    Refused,
}

/// One row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionInfo {
    /// `-b`, or `-E name` for an extended option.
    pub name: &'static str,
    /// What kiln does with it.
    pub status: Status,
    /// In a few words, what it means and, where it matters, which values
    /// kiln takes.
    pub what: &'static str,
}

const fn row(name: &'static str, status: Status, what: &'static str) -> OptionInfo {
    OptionInfo { name, status, what }
}

use Status::{Honoured, NoOp, Refused};

/// The command-line options of mke2fs 1.47.
pub const OPTIONS: &[OptionInfo] = &[
    row(
        "-b",
        Honoured,
        "block size: 1024, 2048 or 4096 (larger ones are refused); a negative value is a minimum, as in mke2fs",
    ),
    row("-c", Refused, "bad block scan of the device"),
    row("-C", Refused, "cluster size: kiln has no bigalloc"),
    row(
        "-d",
        Honoured,
        "root tree: a directory, a tar archive or - (tar on standard input)",
    ),
    row("-D", NoOp, "direct I/O"),
    row(
        "-e",
        Refused,
        "error behaviour: only `continue` (the default) is honoured",
    ),
    row("-E", Honoured, "extended options (see the -E rows)"),
    row("-F", NoOp, "force: kiln never asks"),
    row(
        "-g",
        Refused,
        "blocks per group: only 8 times the block size (the default) is honoured",
    ),
    row(
        "-G",
        Refused,
        "groups per flex_bg: only 16 (the default) is honoured",
    ),
    row("-i", Honoured, "bytes per inode"),
    row(
        "-I",
        Honoured,
        "inode size: 128 or 256 (larger ones are refused)",
    ),
    row("-j", Honoured, "add a journal (has_journal)"),
    row(
        "-J",
        Honoured,
        "journal options: size= is honoured; device=, location= and fast_commit_size= are refused",
    ),
    row(
        "-K",
        NoOp,
        "no discard (deprecated spelling of -E nodiscard)",
    ),
    row("-l", Refused, "bad block list file"),
    row(
        "-L",
        Honoured,
        "volume label (truncated to 16 bytes, as mke2fs does)",
    ),
    row("-m", Honoured, "reserved blocks percentage"),
    row("-M", Refused, "last mounted directory"),
    row(
        "-n",
        Honoured,
        "dry run: the plan is made, nothing is written (the caller's part)",
    ),
    row(
        "-N",
        Honoured,
        "inode count, rounded as mke2fs rounds it (whole inode-table blocks, then whole bitmap bytes)",
    ),
    row(
        "-o",
        Refused,
        "creator OS: only Linux (the default) is honoured",
    ),
    row(
        "-O",
        Honoured,
        "feature edits; features kiln cannot write are refused",
    ),
    row("-q", NoOp, "quiet"),
    row("-r", Refused, "revision: only 1 (the default) is honoured"),
    row("-R", Honoured, "deprecated spelling of -E"),
    row("-s", Refused, "sparse_super on or off (deprecated): use -O"),
    row("-S", Refused, "rewrite superblock and descriptors only"),
    row("-t", Honoured, "filesystem type: ext2, ext3 or ext4"),
    row("-T", Honoured, "usage types, from mke2fs.conf's [fs_types]"),
    row(
        "-U",
        Honoured,
        "UUID, or clear; random and time leave kiln's UUID derived from the inputs",
    ),
    row("-v", NoOp, "verbose"),
    row("-V", Honoured, "print the version (the caller's part)"),
    row(
        "-z",
        Refused,
        "undo file: kiln does not change the old contents in place block by block",
    ),
];

/// The extended options (`-E name[=value]`) of mke2fs 1.47.
pub const EXTENDED: &[OptionInfo] = &[
    row(
        "-E android_sparse",
        Honoured,
        "write an Android sparse image",
    ),
    row(
        "-E assume_storage_prezeroed",
        NoOp,
        "kiln writes every block it needs",
    ),
    row("-E discard", NoOp, "discard the device first"),
    row("-E encoding", Refused, "casefold: kiln cannot write it"),
    row(
        "-E encoding_flags",
        Refused,
        "casefold: kiln cannot write it",
    ),
    row("-E hash_seed", Honoured, "directory hash seed (a UUID)"),
    row(
        "-E lazy_itable_init",
        NoOp,
        "kiln's inode tables are complete",
    ),
    row("-E lazy_journal_init", NoOp, "kiln's journal is complete"),
    row(
        "-E mmp_update_interval",
        Refused,
        "mmp: kiln cannot write it",
    ),
    row(
        "-E no_copy_xattrs",
        Refused,
        "kiln copies the xattrs of -d's tree",
    ),
    row("-E nodiscard", NoOp, "do not discard the device"),
    row(
        "-E num_backup_sb",
        NoOp,
        "backups of sparse_super2, which kiln never writes",
    ),
    row(
        "-E offset",
        Honoured,
        "byte offset of the filesystem in the device",
    ),
    row(
        "-E orphan_file_size",
        Refused,
        "orphan file of a chosen size: kiln gives it the size mke2fs picks",
    ),
    row(
        "-E packed_meta_blocks",
        Refused,
        "metadata placement kiln does not do",
    ),
    row("-E quotatype", Refused, "quota: kiln cannot write it"),
    row(
        "-E resize",
        Refused,
        "reserved GDT blocks for a chosen size",
    ),
    row(
        "-E root_owner",
        Honoured,
        "owner of the root directory (uid:gid)",
    ),
    row(
        "-E root_perms",
        Honoured,
        "permission bits of the root directory (mke2fs 1.47.1)",
    ),
    row(
        "-E stride",
        Honoured,
        "RAID stride in blocks, recorded in the superblock for the kernel's allocator \
         (without flex_bg mke2fs also staggers the bitmaps by it; kiln does not)",
    ),
    row(
        "-E stripe_width",
        Honoured,
        "RAID stripe width in blocks, recorded in the superblock",
    ),
    row(
        "-E stripe-width",
        Honoured,
        "RAID stripe width in blocks, recorded in the superblock",
    ),
    row("-E test_fs", Refused, "test_fs flag"),
];

/// What kiln does differently from mke2fs 1.47 when it is run as mke2fs.
pub const DIFFERENCES: &[&str] = &[
    "The UUID and the directory hash seed are derived from the inputs unless -U or -E hash_seed \
     gives them: the same command line on the same tree gives the same bytes.",
    "Directories get htrees (dir_index) as they are written, times keep their nanoseconds, and \
     the filesystem's time is the newest in the -d tree (without -d, the clock).",
    "SOURCE_DATE_EPOCH is taken as mke2fs 1.47.1 takes it: the filesystem's time, and later \
     times of the tree clamped to it. E2FSPROGS_FAKE_TIME, when it is not set, is the \
     filesystem's time alone.",
    "With -d, the root directory is 0:0 and 0755, as mke2fs 1.47.0 makes it, unless \
     -E root_owner or root_perms says otherwise; its times are the source directory's.",
    "The journal superblock declares journal_checksum_v3 with metadata_csum (mke2fs leaves \
     that to the kernel's first mount), and the overhead field is left 0 (the kernel computes it).",
    "The device is written as mke2fs writes it: a regular file in place (made, or extended \
     to hold the filesystem, through links), a block device from its start; anything else \
     is refused. It is not discarded first, and no inode table or journal block is left for \
     lazy initialisation.",
    "Options that would change the image in a way kiln cannot make are refused, naming the \
     option; options that only change how mke2fs runs are accepted and noted.",
];

/// `kiln mkfs`'s long help: the differences from mke2fs and every option
/// with what kiln does with it, from [`DIFFERENCES`], [`OPTIONS`] and
/// [`EXTENDED`].
pub fn help() -> String {
    let mut text = String::from("Differences from mke2fs:\n");
    for d in DIFFERENCES {
        text.push_str(&format!("  - {d}\n"));
    }
    text.push_str("\nmke2fs's options (honoured, accepted as a no-op, or refused):\n");
    for row in OPTIONS.iter().chain(EXTENDED) {
        let status = match row.status {
            Status::Honoured => "honoured",
            Status::NoOp => "no-op",
            Status::Refused => "refused",
        };
        text.push_str(&format!("  {:<28} {status:<9} {}\n", row.name, row.what));
    }
    text
}

/// The row of `-letter`.
pub fn option(letter: char) -> Option<&'static OptionInfo> {
    OPTIONS
        .iter()
        .find(|o| o.name.strip_prefix('-') == Some(letter.encode_utf8(&mut [0; 4])))
}

/// The row of the extended option `name`.
pub fn extended(name: &str) -> Option<&'static OptionInfo> {
    EXTENDED
        .iter()
        .find(|o| o.name.strip_prefix("-E ") == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{WITHOUT_ARGUMENT, WITH_ARGUMENT};

    #[test]
    fn every_option_the_parser_knows_is_in_the_table() {
        for letter in WITH_ARGUMENT.chars().chain(WITHOUT_ARGUMENT.chars()) {
            assert!(option(letter).is_some(), "-{letter} has no row");
        }
        for row in OPTIONS {
            let letter = row.name.chars().nth(1).unwrap();
            assert!(
                WITH_ARGUMENT.contains(letter) || WITHOUT_ARGUMENT.contains(letter),
                "{} is not parsed",
                row.name
            );
        }
    }

    #[test]
    fn every_extended_option_the_plan_handles_is_in_the_table() {
        for name in crate::plan::EXTENDED_NAMES {
            assert!(extended(name).is_some(), "-E {name} has no row");
        }
        for row in EXTENDED {
            let name = row.name.strip_prefix("-E ").unwrap();
            assert!(
                crate::plan::EXTENDED_NAMES.contains(&name),
                "{name} is not handled"
            );
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = OPTIONS.iter().chain(EXTENDED).map(|o| o.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n);
    }

    #[test]
    fn help_names_every_option_once_with_its_status() {
        let help = help();
        // It goes into a man page too, which takes ASCII.
        assert!(help.is_ascii());
        for row in OPTIONS.iter().chain(EXTENDED) {
            let line = help
                .lines()
                .find(|l| l.trim_start().split("  ").next() == Some(row.name))
                .unwrap_or_else(|| panic!("{} is not in the help", row.name));
            assert!(line.contains(row.what), "{line}");
        }
    }
}
