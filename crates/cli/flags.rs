//! Command-line flags, named as mke2fs users expect, and their mapping to
//! the library's typed requests ([`BuildRequest`], [`TreeRequest`]); the
//! flags of the commands that look inside an image. Values are parsed by
//! [`kiln_lib::values`], as layout files' keys are, so a bad value fails
//! before anything is read, naming the flag.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use clap::{ArgMatches, Args, Parser, Subcommand};
use kiln_ext::FreeSpace;
use kiln_lib::values::{
    parse_format, parse_free, parse_hash_alg, parse_inode_size, parse_journal_size, parse_label,
    parse_mode, parse_owner, parse_salt, parse_size, parse_uuid, parse_volume_id,
};
use kiln_lib::{
    BuildRequest, Compress, ExtRequest, FatRequest, Format, FsRequest, HashPlace, Image,
    ImageFormat, OutputRequest, SizeRequest, TreeRequest, VerityRequest,
};
use kiln_sink::Durability;
use kiln_tree::IdMap;

pub(crate) use kiln_lib::Layer;

use crate::display::ProgressMode;

const ABOUT: &str =
    "Build ext2/ext3/ext4 filesystem images from directory trees: no root, no loop device, no mount.";

const EXAMPLES: &str = "\
Examples:
  # A 2 GiB sparse ext3 image of a root tree plus a tailoring overlay
  # (replaces: dd, mkfs -t ext3, mount -o loop, cp -ax, edit, umount)
  kiln build rootfs/ overlay/ -o vm1disk --fs-type ext3 --size 2G

  # An ext2 image just large enough for the tree, 1 KiB blocks
  kiln build fixtures/example -o small.img -t ext2 -b 1024
";

/// kiln: filesystem images from directory trees.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about = ABOUT, after_help = EXAMPLES)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Build a filesystem image from one or more source directories.
    #[command(after_help = EXAMPLES)]
    // Boxed: the build flags dwarf the other commands' (clippy large_enum_variant).
    Build(Box<BuildArgs>),
    /// Show what an image's superblock says: type, features, sizes, counts,
    /// UUID, label, hash seed, times, journal size.
    Info(InfoArgs),
    /// List a directory of an image: names as stored, one per line.
    Ls(LsArgs),
    /// Write a file of an image to standard output.
    Cat(CatArgs),
    /// Restore an image's tree, or the subtree at PATH, into a new directory.
    Extract(ExtractArgs),
    /// Compare an image with the sources it was built from, and check its
    /// structures; exit status 1 on any difference or inconsistency, 2 if
    /// the image or a source cannot be read.
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(Box<VerifyArgs>),
    /// Make an ext2/3/4 image from mke2fs 1.47's command line (`-d DIR`, `-t`,
    /// `-b`, `-O`, `-E`, ..., device, fs-size), as kiln does when invoked as
    /// `mke2fs` or `mkfs.ext2/3/4`; mke2fs.conf is read as mke2fs reads it.
    Mkfs(MkfsArgs),
    /// Write man pages or shell completions into DIR (for packagers; `cargo
    /// xtask dist` writes them all into target/dist/).
    #[command(hide = true)]
    Generate(GenerateArgs),
}

/// kiln's clap command, with `kiln mkfs`'s long help made from kiln-mkfs's
/// table of mke2fs options, so `--help` and the man page cannot drift
/// from what the plan does.
pub(crate) fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command().mut_subcommand("mkfs", |mkfs| {
        mkfs.after_long_help(kiln_mkfs::table::help())
    })
}

/// `kiln mkfs`: mke2fs's arguments, passed on as they are.
#[derive(Debug, Args)]
pub(crate) struct MkfsArgs {
    /// mke2fs's options and operands.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "MKE2FS_ARGS"
    )]
    pub(crate) args: Vec<std::ffi::OsString>,
}

/// Flags of `kiln generate`.
#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// What to write: man pages (kiln.1 and one per command, kiln-build.1,
    /// ...), or the completions of a shell.
    #[arg(value_enum)]
    pub(crate) what: Generated,

    /// The directory to write into (created if missing).
    #[arg(value_name = "DIR")]
    pub(crate) dir: PathBuf,
}

/// What `kiln generate` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Generated {
    /// Man pages (roff).
    Man,
    /// Bash completions (kiln.bash).
    Bash,
    /// Zsh completions (_kiln).
    Zsh,
    /// Fish completions (kiln.fish).
    Fish,
    /// PowerShell completions (_kiln.ps1).
    Powershell,
}

const VERIFY_EXAMPLES: &str = "\
Examples:
  # Prove an image holds exactly what `kiln build` was given
  kiln build rootfs/ overlay/ --all-root -o vm.img
  kiln verify vm.img --against rootfs/ overlay/ --all-root
";

/// Flags of `kiln verify`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The image to check: a filesystem image, or IMAGE:PART for a
    /// partition of a GPT disk image (by number or label).
    #[arg(value_name = "IMAGE[:PART]")]
    pub(crate) image: OsString,

    /// The sources of the build, in the same order (directories or tar
    /// archives); spec files and the other tree flags as given to the build.
    #[arg(long = "against", id = "sources", value_name = "SOURCE", num_args = 1.., required_unless_present_any = ["spec", "spec_lines", "device_table"])]
    pub(crate) sources: Vec<PathBuf>,

    #[command(flatten)]
    pub(crate) tree: TreeArgs,

    /// Leave access times out of the comparison: reading a source file
    /// after the build (a backup, an indexer, a diff) moves its atime.
    #[arg(long = "no-atime")]
    pub(crate) no_atime: bool,

    /// How many differences and inconsistencies to print (the rest are
    /// counted).
    #[arg(long = "max-reports", value_name = "N", default_value_t = 50)]
    pub(crate) max_reports: usize,
}

/// Flags of `kiln info`.
#[derive(Debug, Args)]
pub(crate) struct InfoArgs {
    /// The image: a filesystem image, or IMAGE:PART for a partition of a
    /// GPT disk image (by number or label).
    #[arg(value_name = "IMAGE[:PART]")]
    pub(crate) image: OsString,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Flags of `kiln ls`.
#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// The image: a filesystem image, or IMAGE:PART for a partition of a
    /// GPT disk image (by number or label).
    #[arg(value_name = "IMAGE[:PART]")]
    pub(crate) image: OsString,

    /// The absolute path inside the image of a directory (or a file).
    #[arg(value_name = "PATH", default_value = "/")]
    pub(crate) path: OsString,

    /// Long listing: mode, uid, gid, size, mtime (UTC), name (and a
    /// symlink's target).
    #[arg(short = 'l')]
    pub(crate) long: bool,

    /// Recurse into subdirectories: every entry below PATH, as a path
    /// relative to it, depth first in name order.
    #[arg(short = 'R')]
    pub(crate) recursive: bool,
}

/// Flags of `kiln cat`.
#[derive(Debug, Args)]
pub(crate) struct CatArgs {
    /// The image: a filesystem image, or IMAGE:PART for a partition of a
    /// GPT disk image (by number or label).
    #[arg(value_name = "IMAGE[:PART]")]
    pub(crate) image: OsString,

    /// The absolute path inside the image of a file (symlinks are followed,
    /// inside the image).
    #[arg(value_name = "PATH")]
    pub(crate) path: OsString,

    /// Read on past metadata checksums that do not match, with a warning
    /// (by default a mismatch is an error naming the structure).
    #[arg(long)]
    pub(crate) ignore_checksums: bool,
}

/// Flags of `kiln extract`.
#[derive(Debug, Args)]
pub(crate) struct ExtractArgs {
    /// The image: a filesystem image, or IMAGE:PART for a partition of a
    /// GPT disk image (by number or label).
    #[arg(value_name = "IMAGE[:PART]")]
    pub(crate) image: OsString,

    /// The absolute path inside the image of the subtree to restore
    /// (default: `/`), then the destination directory, which must not exist
    /// or be empty.
    #[arg(value_name = "PATH", num_args = 1..=2, required = true)]
    pub(crate) paths: Vec<OsString>,

    /// Read on past metadata checksums that do not match, with a warning
    /// (by default a mismatch is an error naming the structure).
    #[arg(long)]
    pub(crate) ignore_checksums: bool,
}

/// Flags of `kiln build`.
#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    /// Sources, layered in command-line order with --spec, -p and
    /// --device-table: later ones add or replace entries of earlier ones
    /// (directories present in both are merged). A directory (like `cp -ax`,
    /// other filesystems mounted below it are not descended into), an
    /// ext2/3/4 or FAT image (IMAGE:PART for a partition of a GPT disk
    /// image, by number or label; its lost+found left out), or a tar
    /// archive (plain, gzip, xz, zstd or bzip2; `-` reads stdin).
    #[arg(value_name = "SOURCE", required_unless_present_any = ["spec", "spec_lines", "device_table", "config"])]
    pub(crate) sources: Vec<PathBuf>,

    /// Build a whole disk from a layout file instead: a GPT and its
    /// partitions, each an ext2/3/4 filesystem built from sources, a raw
    /// image or empty (see docs/disk-config.md). Sources and filesystem
    /// options then go in the file.
    #[arg(long, value_name = "FILE", help_heading = "Disk images")]
    pub(crate) config: Option<PathBuf>,

    /// Compress the output as it is written: `zstd`, `zstd:LEVEL` (1-22) or
    /// `none`. An output ending in `.zst` is zstd unless `none` is given.
    /// For qcow2 it compresses the clusters: `zstd` (at its default level)
    /// or `deflate` (what `qemu-img convert -c` writes).
    #[arg(long, value_name = "METHOD", value_parser = Compress::parse, help_heading = "Output")]
    pub(crate) compress: Option<Compress>,

    /// The output's container format: raw, qcow2 (QEMU, libvirt,
    /// OpenStack), vhd (fixed, whole MiB: Azure), vhd-dynamic, vmdk
    /// (streamOptimized: VMware, VirtualBox, OVAs) or android-sparse
    /// (fastboot). Default: from the output's extension (.qcow2, .vhd,
    /// .vmdk, .simg), else raw. Written in the same pass as the image;
    /// qcow2, vhd-dynamic and android-sparse need a file, the others also
    /// stream to `-o -`.
    #[arg(long, value_name = "FORMAT", value_parser = ImageFormat::parse, help_heading = "Output")]
    pub(crate) format: Option<ImageFormat>,

    /// Also write the bmap (bmaptool's, version 2.0: the blocks holding
    /// data, with their SHA-256) of the raw image to FILE, for
    /// `bmaptool copy`.
    #[arg(long, value_name = "FILE.bmap", help_heading = "Output")]
    pub(crate) bmap: Option<PathBuf>,

    /// android-sparse: end the image with a CRC32 chunk of the whole image.
    #[arg(long, help_heading = "Output")]
    pub(crate) sparse_crc: bool,

    /// Write the image into the existing file IMAGE at this byte offset
    /// (e.g. into a partition of a disk made by other tools), in place.
    #[arg(long, value_name = "BYTES", value_parser = parse_size, help_heading = "Output")]
    pub(crate) offset: Option<u64>,

    /// Write a JSON report: per partition its offset, size, type, UUIDs,
    /// blocks and inodes used and free; the disk's size, SHA-256 and
    /// compressed size.
    #[arg(long, value_name = "FILE.json", help_heading = "Output")]
    pub(crate) report: Option<PathBuf>,

    /// Make a dm-verity hash tree of the image as it is written (SHA-256,
    /// 4096-byte blocks, veritysetup's format): into a new FILE (the hash
    /// device), or `append` to put it after the filesystem in the image's
    /// own output (at a multiple of 4096 bytes; the offset is printed). The
    /// root hash, salt and the `veritysetup open` line are printed and
    /// reported. The filesystem is made read-only: ext gets the read-only
    /// feature and no journal unless -O has_journal or -J asks for one.
    #[arg(
        long,
        value_name = "FILE|append",
        conflicts_with = "config",
        help_heading = "dm-verity"
    )]
    pub(crate) verity: Option<PathBuf>,

    /// The salt of the hash tree, in hex (`-` for none; default: 32 bytes
    /// derived from the inputs, so the same inputs give the same tree).
    #[arg(
        long,
        value_name = "HEX",
        requires = "verity",
        help_heading = "dm-verity"
    )]
    pub(crate) verity_salt: Option<String>,

    /// The UUID in the verity superblock (default: derived from the salt).
    #[arg(
        long,
        value_name = "UUID",
        requires = "verity",
        help_heading = "dm-verity"
    )]
    pub(crate) verity_uuid: Option<String>,

    /// Write no verity superblock: the hash area is the tree alone, and
    /// opening it takes every parameter (the printed command has them).
    #[arg(long, requires = "verity", help_heading = "dm-verity")]
    pub(crate) verity_no_superblock: bool,

    #[command(flatten)]
    pub(crate) tree: TreeArgs,

    /// The sources are a running system (as `/`): entries that vanish while
    /// the tree is read are left out, a file that changes while it is
    /// copied is copied again (up to 3 times), and a file that vanished,
    /// changed size or kept changing is stored as it could be read (a
    /// vanished file as zeros, a resized one at the size first seen), each
    /// with a warning. Without it, every such file is an error, all named
    /// together, and nothing is written. Unreadable files are errors either
    /// way.
    #[arg(long, help_heading = "Layers")]
    pub(crate) live: bool,

    /// The image file to write (written beside it, renamed when complete);
    /// `-` streams it to standard output; an existing block device is
    /// written in place (with --force).
    #[arg(short, long, value_name = "IMAGE", help_heading = "Output")]
    pub(crate) output: PathBuf,

    /// Filesystem type: ext2, ext3, ext4; vfat (FAT12, FAT16 or FAT32 as
    /// the size calls for, as mkfs.fat picks), fat12, fat16, fat32.
    /// Default: the type of the first source if it is an image, else ext3.
    #[arg(short = 't', long = "fs-type", value_name = "TYPE", value_parser = ["ext2", "ext3", "ext4", "vfat", "fat12", "fat16", "fat32"])]
    pub(crate) fs_type: Option<String>,

    /// Features to add to or remove from the type's defaults, as with mke2fs
    /// -O: a comma-separated list, `^` removes (`-O ^metadata_csum,^64bit`).
    /// Repeatable. Combinations kiln cannot write are refused.
    #[arg(short = 'O', long = "features", value_name = "LIST")]
    pub(crate) features: Vec<String>,

    /// Apparent size of the image (K, M, G, T suffixes are powers of 1024;
    /// the file stays sparse), or `auto`: the smallest image that holds the
    /// tree, plus --free and --free-inodes. Default: what the tree needs
    /// plus 10% and 1 MiB.
    #[arg(long, value_name = "SIZE|auto", value_parser = parse_size_arg)]
    pub(crate) size: Option<SizeArg>,

    /// With --size auto: free space beyond what the tree takes, as a size
    /// (`64M`) or a percentage of the tree's (`10%`).
    #[arg(long, value_name = "SIZE|PERCENT", value_parser = parse_free)]
    pub(crate) free: Option<FreeSpace>,

    /// With --size auto: unused inodes beyond those the tree takes.
    /// Default: as many as --free's space would need at the tree's own
    /// ratio of inodes to blocks.
    #[arg(long = "free-inodes", value_name = "N")]
    pub(crate) free_inodes: Option<u64>,

    /// Block size in bytes (ext: 1024, 2048 or 4096, default 4096; FAT:
    /// the cluster size, a power of two from 512 to 65536, default as
    /// mkfs.fat picks it from the size).
    #[arg(short = 'b', long = "block-size", value_name = "BYTES")]
    pub(crate) block_size: Option<u32>,

    /// Inode size in bytes (256, the default, stores nanoseconds, creation
    /// times and small xattrs in the inode). ext only.
    #[arg(
        short = 'I',
        long = "inode-size",
        value_name = "BYTES",
        value_parser = parse_inode_size
    )]
    pub(crate) inode_size: Option<u16>,

    /// Number of inodes (at least). Default: one per 16 KiB, and always
    /// enough for the tree plus headroom.
    #[arg(short = 'N', long = "inodes", value_name = "COUNT")]
    pub(crate) inodes: Option<u64>,

    /// One inode per this many bytes of filesystem.
    #[arg(short = 'i', long = "bytes-per-inode", value_name = "BYTES")]
    pub(crate) bytes_per_inode: Option<u64>,

    /// Percentage of blocks reserved for the super-user (default 5). ext
    /// only.
    #[arg(short = 'm', long = "reserved-percent", value_name = "PERCENT")]
    pub(crate) reserved_percent: Option<f64>,

    /// Volume label (ext: at most 16 bytes; FAT: at most 11 characters).
    #[arg(short = 'L', long, value_name = "LABEL", value_parser = parse_label)]
    pub(crate) label: Option<String>,

    /// Filesystem UUID (FAT: the volume id, as 1234-ABCD). Default: derived
    /// from a hash of the inputs.
    #[arg(short = 'U', long, value_name = "UUID")]
    pub(crate) uuid: Option<String>,

    /// Directory hash seed (a UUID). Default: derived from a hash of the inputs.
    #[arg(long, value_name = "UUID", value_parser = parse_uuid)]
    pub(crate) seed: Option<[u8; 16]>,

    /// Directory hash algorithm of htree directories (the superblock's
    /// default hash). mke2fs has no option for it: it takes `hash_alg` from
    /// mke2fs.conf (`[defaults]` or `[fs_types]`), half_md4 unless set.
    /// Default: half_md4.
    #[arg(long = "hash-alg", value_name = "ALG", value_parser = ["legacy", "half_md4", "tea"])]
    pub(crate) hash_alg: Option<String>,

    /// Journal size (ext3); a plain number is in MiB, as with mke2fs -J size=.
    #[arg(short = 'J', long = "journal-size", value_name = "SIZE", value_parser = parse_journal_size)]
    pub(crate) journal_size: Option<u64>,

    /// Overwrite the output if it exists.
    #[arg(long, help_heading = "Output")]
    pub(crate) force: bool,

    /// Flush the output file to stable storage before renaming it into
    /// place, as mke2fs does. Without it kiln, like tar, cp and mksquashfs,
    /// leaves the writing to the kernel: the image is complete when kiln
    /// exits, but a power loss soon after can lose it. (A block device or
    /// --offset target is always flushed.)
    #[arg(long, help_heading = "Output")]
    pub(crate) sync: bool,

    /// Copy every byte of the source files into the image. By default, when
    /// the output is a raw image file on a filesystem that shares extents
    /// (XFS with reflink=1, btrfs) and a source file of 64 KiB or more is on
    /// the same one, its whole blocks are cloned into the image
    /// (copy_file_range), which takes neither the time to copy them nor
    /// disk space of their own; its tail is copied. The image's bytes are the same either way, only
    /// the all-zero blocks of a cloned range stay allocated (shared) rather
    /// than becoming holes of the image file. The summary says how many
    /// bytes were shared.
    #[arg(long = "no-reflink", help_heading = "Output")]
    pub(crate) no_reflink: bool,

    /// When to show the progress display on standard error (the phase;
    /// entries read; bytes written of those to write, throughput and time
    /// left), for builds that take over a second: `auto` when standard
    /// error is a terminal, `always` (escape sequences even into a file or
    /// a pipe), `never`. Cleared when the build ends.
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = ProgressMode::Auto, help_heading = "Display")]
    pub(crate) progress: ProgressMode,

    /// Print no progress display, no summary and no notes: only warnings
    /// and errors.
    #[arg(short, long, conflicts_with = "verbose", help_heading = "Display")]
    pub(crate) quiet: bool,

    /// After the summary, how long each phase took: reading the sources,
    /// planning, writing, committing.
    #[arg(short, long, help_heading = "Display")]
    pub(crate) verbose: bool,
}

/// The flags that shape the tree, shared by `kiln build` and `kiln verify`
/// (which must read the sources exactly as the build did).
#[derive(Debug, Args)]
pub(crate) struct TreeArgs {
    /// A spec file (see docs/spec-format.md): creates and modifies entries.
    /// Repeatable; applied in command-line order with the sources.
    #[arg(long, value_name = "FILE", help_heading = "Layers")]
    pub(crate) spec: Vec<PathBuf>,

    /// One spec line (repeatable), e.g. -p 'chown /usr/bin/** 0 0'.
    #[arg(
        short = 'p',
        long = "spec-line",
        value_name = "LINE",
        help_heading = "Layers"
    )]
    pub(crate) spec_lines: Vec<String>,

    /// A genext2fs device table (repeatable).
    #[arg(long = "device-table", value_name = "FILE", help_heading = "Layers")]
    pub(crate) device_table: Vec<PathBuf>,

    /// A SELinux file_contexts file: labels (security.selinux) the finished
    /// tree, last match wins.
    #[arg(long = "file-contexts", value_name = "FILE", help_heading = "Layers")]
    pub(crate) file_contexts: Option<PathBuf>,

    /// Leave out entries whose image path matches GLOB (`/var/cache/**`,
    /// `/**/*.pyc`); repeatable. Directory sources never read them, except
    /// what a later spec or device table names (or, with --whiteouts, a
    /// `.wh.` entry).
    #[arg(long, value_name = "GLOB", help_heading = "Layers")]
    pub(crate) exclude: Vec<String>,

    /// Apply OCI/overlayfs whiteouts between layers: `.wh.NAME` deletes NAME
    /// of earlier sources, `.wh..wh..opq` hides a directory's earlier content.
    #[arg(long, help_heading = "Layers")]
    pub(crate) whiteouts: bool,

    /// Read tar sources past zero blocks, as GNU tar -i does: the members of
    /// archives joined with `cat` are all read. Without it, data after a
    /// tar's end-of-archive marker is an error.
    #[arg(long = "ignore-zeros", help_heading = "Layers")]
    pub(crate) ignore_zeros: bool,

    /// Read image sources on past metadata checksums that do not match,
    /// with a warning (by default a mismatch is an error naming the
    /// structure).
    #[arg(long = "ignore-checksums", help_heading = "Layers")]
    pub(crate) ignore_checksums: bool,

    /// Every entry owned by root (uid and gid 0), whoever owns the sources.
    #[arg(long = "all-root", help_heading = "Ownership")]
    pub(crate) all_root: bool,

    /// Map source uids FROM..FROM+COUNT to image uids TO.. (repeatable).
    #[arg(long = "uid-map", value_name = "FROM:TO:COUNT", value_parser = IdMap::parse, help_heading = "Ownership")]
    pub(crate) uid_map: Vec<IdMap>,

    /// Map source gids FROM..FROM+COUNT to image gids TO.. (repeatable).
    #[arg(long = "gid-map", value_name = "FROM:TO:COUNT", value_parser = IdMap::parse, help_heading = "Ownership")]
    pub(crate) gid_map: Vec<IdMap>,

    /// Owner of the root directory.
    #[arg(long = "root-owner", value_name = "UID:GID", value_parser = parse_owner, help_heading = "Ownership")]
    pub(crate) root_owner: Option<(u32, u32)>,

    /// Permission bits of the root directory, in octal (e.g. 0755).
    #[arg(long = "root-mode", value_name = "MODE", value_parser = parse_mode, help_heading = "Ownership")]
    pub(crate) root_mode: Option<u16>,

    /// Every timestamp of every entry and of the filesystem, in seconds since
    /// the epoch. Without it, SOURCE_DATE_EPOCH (if set) clamps every later
    /// timestamp and sets the filesystem's own.
    #[arg(
        long,
        value_name = "SECONDS",
        allow_hyphen_values = true,
        help_heading = "Times"
    )]
    pub(crate) timestamp: Option<i64>,
}

impl TreeArgs {
    /// The layers in the order they were given on the command line:
    /// `sources` (the argument with id `sources`) among the spec layers.
    pub(crate) fn layers(&self, sources: &[PathBuf], matches: &ArgMatches) -> Vec<Layer> {
        let mut ordered: Vec<(usize, Layer)> = Vec::new();
        let mut add = |id: &str, layers: Vec<Layer>| {
            if let Some(indices) = matches.indices_of(id) {
                ordered.extend(indices.zip(layers));
            }
        };
        add(
            "sources",
            sources.iter().cloned().map(Layer::Source).collect(),
        );
        add("spec", self.spec.iter().cloned().map(Layer::Spec).collect());
        add(
            "spec_lines",
            self.spec_lines
                .iter()
                .cloned()
                .map(Layer::SpecLine)
                .collect(),
        );
        add(
            "device_table",
            self.device_table
                .iter()
                .cloned()
                .map(Layer::DeviceTable)
                .collect(),
        );
        ordered.sort_by_key(|&(index, _)| index);
        ordered.into_iter().map(|(_, layer)| layer).collect()
    }

    /// The tree request of these flags with `layers` (from [`layers`](Self::layers)).
    pub(crate) fn request(&self, layers: Vec<Layer>, live: bool, sde: Option<i64>) -> TreeRequest {
        TreeRequest {
            layers,
            file_contexts: self.file_contexts.clone(),
            exclude: self.exclude.clone(),
            whiteouts: self.whiteouts,
            ignore_zeros: self.ignore_zeros,
            ignore_checksums: self.ignore_checksums,
            all_root: self.all_root,
            uid_map: self.uid_map.clone(),
            gid_map: self.gid_map.clone(),
            root_owner: self.root_owner,
            root_mode: self.root_mode,
            timestamp: self.timestamp,
            fs_time: None,
            source_date_epoch: sde,
            live,
        }
    }
}

impl BuildArgs {
    /// The request of a plain filesystem image (`--config` aside).
    pub(crate) fn request(&self, layers: Vec<Layer>, sde: Option<i64>) -> Result<BuildRequest> {
        Ok(BuildRequest {
            fs: self.fs_request(&self.fs_type(&layers))?,
            tree: self.tree.request(layers, self.live, sde),
            output: self.output_request(),
            verity: self.verity_request()?,
        })
    }

    /// The dm-verity flags.
    fn verity_request(&self) -> Result<Option<VerityRequest>> {
        let Some(place) = &self.verity else {
            return Ok(None);
        };
        let hash = if place.as_os_str() == "append" {
            HashPlace::Append
        } else {
            HashPlace::File(place.clone())
        };
        let uuid = self
            .verity_uuid
            .as_deref()
            .map(parse_uuid)
            .transpose()
            .map_err(|e| anyhow!("--verity-uuid: {e}"))?;
        Ok(Some(VerityRequest {
            hash,
            salt: self
                .verity_salt
                .as_deref()
                .map(parse_salt)
                .transpose()
                .map_err(|e| anyhow!("--verity-salt: {e}"))?,
            uuid,
            superblock: !self.verity_no_superblock,
        }))
    }

    /// The filesystem type: as given, else the first source's if that is
    /// an image (tailoring keeps the type), else ext3.
    fn fs_type(&self, layers: &[Layer]) -> String {
        let first_image = || match layers.first() {
            Some(Layer::Source(path)) => Image::source_fs_type(path),
            _ => None,
        };
        self.fs_type
            .clone()
            .or_else(|| first_image().map(str::to_string))
            .unwrap_or_else(|| "ext3".into())
    }

    /// The filesystem flags, for a filesystem of type `fs_type`.
    fn fs_request(&self, fs_type: &str) -> Result<FsRequest> {
        // OK: clap's value_parser admits only the names parse_format takes,
        // and fs_type() gives only those.
        let mut fs = parse_format(fs_type).expect("a known type");
        fs.size = match (self.size, self.free, self.free_inodes) {
            (Some(SizeArg::Fixed(_)), Some(_), _) | (Some(SizeArg::Fixed(_)), _, Some(_)) => {
                bail!("--free and --free-inodes go with --size auto, not a fixed size")
            }
            (Some(SizeArg::Fixed(n)), None, None) => SizeRequest::Fixed(n),
            (None, None, None) => SizeRequest::Roomy,
            (_, free, free_inodes) => SizeRequest::Auto { free, free_inodes },
        };
        fs.label = self.label.clone().unwrap_or_default();
        match &mut fs.format {
            Format::Ext(ext) => self.ext_request(ext)?,
            Format::Fat(fat) => self.fat_request(fat, fs_type)?,
        }
        Ok(fs)
    }

    /// The flags only ext has.
    fn ext_request(&self, ext: &mut ExtRequest) -> Result<()> {
        ext.features = self.features.clone();
        ext.block_size = self.block_size.unwrap_or(ext.block_size);
        ext.inode_size = self.inode_size.unwrap_or(ext.inode_size);
        ext.inodes = self.inodes;
        ext.bytes_per_inode = self.bytes_per_inode;
        ext.reserved_percent = self.reserved_percent.unwrap_or(ext.reserved_percent);
        ext.uuid = self
            .uuid
            .as_deref()
            .map(parse_uuid)
            .transpose()
            .map_err(|e| anyhow!("-U: {e}"))?;
        ext.seed = self.seed;
        if let Some(alg) = &self.hash_alg {
            // OK: as for the type.
            ext.hash_alg = parse_hash_alg(alg).expect("a known hash");
        }
        ext.journal_size = self.journal_size;
        Ok(())
    }

    /// The flags of a FAT volume of type `fs_type`; ext's own are refused.
    fn fat_request(&self, fat: &mut FatRequest, fs_type: &str) -> Result<()> {
        let ext_only = [
            ("-O", !self.features.is_empty()),
            ("-I", self.inode_size.is_some()),
            ("-N", self.inodes.is_some()),
            ("-i", self.bytes_per_inode.is_some()),
            ("-m", self.reserved_percent.is_some()),
            ("--seed", self.seed.is_some()),
            ("--hash-alg", self.hash_alg.is_some()),
            ("-J", self.journal_size.is_some()),
        ];
        if let Some((flag, _)) = ext_only.iter().find(|(_, given)| *given) {
            bail!("{flag}: an ext option; -t {fs_type} has no such option");
        }
        fat.cluster_size = self.block_size;
        fat.volume_id = self
            .uuid
            .as_deref()
            .map(parse_volume_id)
            .transpose()
            .map_err(|e| anyhow!("-U: {e}"))?;
        Ok(())
    }

    /// The output flags.
    pub(crate) fn output_request(&self) -> OutputRequest {
        OutputRequest {
            path: self.output.clone(),
            force: self.force,
            compress: self.compress,
            format: self.format,
            bmap: self.bmap.clone(),
            sparse_crc: self.sparse_crc,
            offset: self.offset,
            grow: false,
            durability: if self.sync {
                Durability::Sync
            } else {
                Durability::Writeback
            },
            report: self.report.clone(),
            reflink: !self.no_reflink,
        }
    }
}

/// `--size`: a size, or `auto`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum SizeArg {
    Fixed(u64),
    Auto,
}

fn parse_size_arg(s: &str) -> Result<SizeArg, String> {
    match s {
        "auto" => Ok(SizeArg::Auto),
        _ => parse_size(s).map(SizeArg::Fixed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_keep_command_line_order() {
        use clap::FromArgMatches;
        let argv = [
            "kiln",
            "build",
            "-o",
            "img",
            "a",
            "--spec",
            "s1",
            "b",
            "-p",
            "dir /x 0755 0 0",
            "--device-table",
            "d",
        ];
        let matches = command().get_matches_from(argv);
        let Command::Build(args) = Cli::from_arg_matches(&matches).unwrap().command else {
            panic!("`kiln build` parsed as another command");
        };
        let sub = matches.subcommand_matches("build").unwrap();
        let layers = args.tree.layers(&args.sources, sub);
        assert_eq!(
            layers,
            vec![
                Layer::Source("a".into()),
                Layer::Spec("s1".into()),
                Layer::Source("b".into()),
                Layer::SpecLine("dir /x 0755 0 0".into()),
                Layer::DeviceTable("d".into()),
            ]
        );
    }

    #[test]
    fn cli_definition_is_consistent() {
        command().debug_assert();
    }
}
