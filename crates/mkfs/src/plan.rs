//! A mke2fs command line resolved as mke2fs 1.47 resolves it (the
//! filesystem type, the usage types, then each parameter from the command
//! line, else mke2fs.conf, else mke2fs's built-in default) into kiln's
//! [`BuildRequest`], with notes of what kiln accepted but does not act on.

use std::path::{Path, PathBuf};

use kiln_lib::kiln_ext::{FsType, HashAlg};
use kiln_lib::kiln_sink::Durability;
use kiln_lib::values::{parse_fs_type, parse_hash_alg, parse_journal_size, parse_uuid};
use kiln_lib::{
    BuildRequest, Compress, ExtRequest, Format, FsRequest, ImageFormat, Layer, OutputRequest,
    SizeRequest, TreeRequest,
};

use crate::args::{parse_extended, parse_fs_size, Args};
use crate::conf::Profile;
use crate::error::MkfsError;
use crate::features::FeatureSet;

/// What the caller knows of the process: the program name, the profile,
/// the environment and the device.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    /// The program's base name (`mke2fs`, `mkfs.ext4`, ...).
    pub program: &'a str,
    /// mke2fs.conf ([`crate::conf::load`]).
    pub profile: &'a Profile,
    /// `E2FSPROGS_FAKE_TIME`, if set.
    pub fake_time: Option<&'a str>,
    /// `SOURCE_DATE_EPOCH`, if set.
    pub source_date_epoch: Option<&'a str>,
    /// The size in bytes of the device (or existing file), used when no
    /// fs-size is given; `None` when it does not exist.
    pub device_size: Option<u64>,
    /// What the device path names.
    pub device: Device,
    /// The uid and gid of the user running the program: the root
    /// directory's owner for `-E root_owner` without a value.
    pub ids: (u32, u32),
    /// The clock, in seconds since the epoch: the time of a filesystem
    /// made without `-d` when the environment fixes none, as mke2fs takes it.
    pub now: i64,
}

/// What the device path names (links followed), which decides how it is
/// written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// Nothing: a new file is made.
    Missing,
    /// A regular file: written in place, as mke2fs writes it, extended if
    /// it is short; its other bytes stay.
    File,
    /// A block device.
    BlockDevice,
    /// Anything else (a character device, a FIFO, a directory): refused.
    Other,
}

/// Something accepted that the image does not show, or a choice made as
/// mke2fs makes it: for the caller to print (as mke2fs's own warnings) or
/// record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The option, operand or variable it is about.
    pub option: String,
    /// What happened.
    pub note: String,
}

/// The resolved command line.
#[derive(Clone, Debug, PartialEq)]
pub struct MkfsPlan {
    /// The build kiln runs (unless [`dry_run`](Self::dry_run)).
    pub request: BuildRequest,
    /// The usage types (`-T`, or from the size).
    pub usage_types: Vec<String>,
    /// The bytes-per-inode ratio (`-i`, else mke2fs.conf's).
    pub inode_ratio: u64,
    /// The inode count mke2fs asks for before rounding it up to whole
    /// inode table blocks in every group: `-N`, else size / ratio.
    pub inodes_wanted: u64,
    /// The features, by mke2fs's names, in the order they were enabled.
    pub features: Vec<String>,
    /// `-n`: make the plan, write nothing.
    pub dry_run: bool,
    /// `-V`: print the version and exit.
    pub version: bool,
    /// `-q`.
    pub quiet: bool,
    /// `-v`.
    pub verbose: bool,
    /// Accepted options and choices, in order.
    pub notes: Vec<Note>,
}

impl MkfsPlan {
    /// The ext options of the request.
    pub fn ext(&self) -> &ExtRequest {
        match &self.request.fs.format {
            Format::Ext(ext) => ext,
            // OK to panic: `plan` only makes ext requests.
            Format::Fat(_) => unreachable!("a mke2fs plan is ext"),
        }
    }
}

/// mke2fs refuses a journal on fewer blocks than this
/// (`ext2fs_default_journal_size`), and drops the default one.
const MIN_BLOCKS_FOR_JOURNAL: u64 = 2048;
/// The page size kiln assumes for `blocksize = -1` (x86's 4 KiB).
const PAGE_SIZE: u32 = 4096;
/// The block sizes mke2fs takes (`-b`).
const MKE2FS_BLOCK_SIZES: std::ops::RangeInclusive<u32> = 1024..=65536;
/// The block sizes kiln writes.
const KILN_BLOCK_SIZES: [u32; 3] = [1024, 2048, 4096];
/// mke2fs's inode ratio when mke2fs.conf has none.
const DEFAULT_INODE_RATIO: u64 = 8192;
/// mke2fs's inode size when mke2fs.conf has none.
const DEFAULT_INODE_SIZE: u16 = 256;
/// mke2fs's reserved percentage when neither -m nor mke2fs.conf say.
const DEFAULT_RESERVED: f64 = 5.0;
/// mke2fs's base features when mke2fs.conf has none.
const DEFAULT_BASE_FEATURES: &str = "sparse_super,large_file,filetype,resize_inode,dir_index";
/// The longest label (`s_volume_name`).
const MAX_LABEL: usize = 16;

/// Usage-type thresholds of mke2fs(8) (`-T`): below 3 MiB floppy, below
/// 512 MiB small, from 4 TiB big, from 16 TiB huge.
const USAGE_BY_SIZE: [(u64, &str); 4] = [
    (3 << 20, "floppy"),
    (512 << 20, "small"),
    (4 << 40, "default"),
    (16 << 40, "big"),
];

/// The filesystem's time and the clamp on entry times, from the environment.
struct Times {
    /// SOURCE_DATE_EPOCH: the filesystem's time, and later times clamped to it.
    clamp: Option<i64>,
    /// E2FSPROGS_FAKE_TIME (when SOURCE_DATE_EPOCH is not set): the
    /// filesystem's time alone.
    fs_time: Option<i64>,
}

/// The root directory's mode that mke2fs 1.47.0 gives, with or without
/// `-d`, unless `-E root_perms` says otherwise.
const ROOT_MODE: u16 = 0o755;

/// Resolves `args` as mke2fs would, in `ctx`.
pub fn plan(args: &Args, ctx: &Context) -> Result<MkfsPlan, MkfsError> {
    Resolver {
        args,
        ctx,
        notes: Vec::new(),
    }
    .run()
}

/// mke2fs's own check: the inode tables alone must be smaller than the
/// filesystem.
fn check_inode_room(
    inodes: u64,
    inode_size: u16,
    bytes: u64,
    from: &'static str,
) -> Result<(), MkfsError> {
    if inodes.saturating_mul(u64::from(inode_size)) < bytes {
        return Ok(());
    }
    Err(MkfsError::usage(
        from,
        format!(
            "{inodes} inodes of {inode_size} bytes do not fit in {bytes} bytes; ask for fewer inodes (-N) or a higher ratio (-i)"
        ),
    ))
}

struct Resolver<'a> {
    args: &'a Args,
    ctx: &'a Context<'a>,
    notes: Vec<Note>,
}

impl Resolver<'_> {
    fn note(&mut self, option: impl Into<String>, note: impl Into<String>) {
        self.notes.push(Note {
            option: option.into(),
            note: note.into(),
        });
    }

    fn run(mut self) -> Result<MkfsPlan, MkfsError> {
        self.process_options()?;
        let fs_type = self.fs_type()?;
        let min_block = self.block_size_arg()?;
        let bytes = self.fs_bytes(min_block, self.offset_arg())?;
        let usage_types = self.usage_types(bytes);
        let mut types = vec![fs_type.name().to_string()];
        types.extend(usage_types.iter().cloned());
        let extended = self.extended(&types)?;
        let block_size = self.block_size(&types, min_block)?;
        self.check_group_options(block_size)?;
        let blocks = bytes / u64::from(block_size);
        let journal_size = self.journal_size()?;
        let features = self.features(&types, blocks, journal_size.is_some())?;
        let inode_ratio = self.inode_ratio(&types)?;
        // -N 0 is "not given" to mke2fs (Buildroot's default passes it).
        let inodes = self.number('N')?.filter(|&n| n > 0);
        let inode_size = self.inode_size(&types)?;
        let inodes_wanted = inodes.unwrap_or(blocks * u64::from(block_size) / inode_ratio);
        check_inode_room(
            inodes_wanted,
            inode_size,
            blocks * u64::from(block_size),
            match (inodes.is_some(), self.args.last('i').is_some()) {
                (true, _) => "-N",
                (false, true) => "-i",
                (false, false) => "fs-size",
            },
        )?;
        let mut ext = ExtRequest::new(fs_type);
        ext.features = vec![format!("none,{}", features.join(","))];
        ext.block_size = block_size;
        ext.inode_size = inode_size;
        ext.inodes = inodes;
        ext.bytes_per_inode = inodes.is_none().then_some(inode_ratio);
        ext.reserved_percent = self.reserved(&types)?;
        ext.uuid = self.uuid()?;
        ext.seed = extended.seed;
        ext.hash_alg = self.hash_alg(&types)?;
        ext.journal_size = journal_size;
        ext.raid = extended.raid;
        let fs = FsRequest {
            format: Format::Ext(ext),
            size: SizeRequest::Fixed(blocks * u64::from(block_size)),
            label: self.label(),
        };
        let request = BuildRequest {
            tree: self.tree(&extended)?,
            fs,
            output: self.output(&extended)?,
            verity: None,
        };
        Ok(MkfsPlan {
            request,
            usage_types,
            inode_ratio,
            inodes_wanted,
            features,
            dry_run: self.args.count('n') > 0,
            version: self.args.count('V') > 0,
            quiet: self.args.count('q') > 0,
            verbose: self.args.count('v') > 0,
            notes: self.notes,
        })
    }

    /// Options refused outright, and the process-only ones noted.
    fn process_options(&mut self) -> Result<(), MkfsError> {
        for given in &self.args.options {
            let opt = format!("-{}", given.letter);
            let value = given.value.as_deref().unwrap_or("");
            match given.letter {
                'c' => {
                    return Err(MkfsError::refused(
                        opt,
                        "kiln does not scan devices for bad blocks",
                    ))
                }
                'l' => return Err(MkfsError::refused(opt, "kiln writes no bad block list")),
                'C' => {
                    return Err(MkfsError::refused(
                        opt,
                        "kiln cannot write bigalloc (clusters)",
                    ))
                }
                'M' => {
                    return Err(MkfsError::refused(
                        opt,
                        "kiln does not set the last mounted directory",
                    ))
                }
                'S' => {
                    return Err(MkfsError::refused(
                        opt,
                        "kiln makes whole filesystems, not superblocks alone",
                    ))
                }
                'z' => return Err(MkfsError::refused(opt, "kiln writes no undo file")),
                's' => {
                    return Err(MkfsError::refused(
                        opt,
                        "deprecated; use -O sparse_super or -O ^sparse_super",
                    ))
                }
                'e' => self.errors_behaviour(value)?,
                'o' if !value.eq_ignore_ascii_case("linux") => {
                    return Err(MkfsError::refused(
                        opt,
                        format!("kiln writes Linux filesystems, not {value:?}"),
                    ))
                }
                'r' => self.revision(value)?,
                'D' => self.note(opt, "direct I/O: kiln writes through its own output"),
                'F' => self.note(opt, "kiln never asks before writing"),
                'K' => self.note(opt, "kiln discards nothing"),
                _ => {}
            }
        }
        Ok(())
    }

    fn errors_behaviour(&mut self, value: &str) -> Result<(), MkfsError> {
        match value {
            "continue" => Ok(()),
            "remount-ro" | "panic" => Err(MkfsError::refused(
                "-e",
                format!("kiln writes the errors behaviour continue, not {value}"),
            )),
            _ => Err(MkfsError::usage(
                "-e",
                format!("{value:?}: expected continue, remount-ro or panic"),
            )),
        }
    }

    fn revision(&mut self, value: &str) -> Result<(), MkfsError> {
        match value {
            "1" => Ok(()),
            "0" => Err(MkfsError::refused(
                "-r",
                "kiln writes revision 1 (dynamic) filesystems only",
            )),
            _ => Err(MkfsError::usage(
                "-r",
                format!("{value:?}: expected 0 or 1"),
            )),
        }
    }

    /// -t, else the program name, else mke2fs.conf's `fs_type`, else ext3
    /// with a journal asked for (-j, -J) and ext2 without.
    fn fs_type(&mut self) -> Result<FsType, MkfsError> {
        let (name, from) = if let Some(t) = self.args.last('t') {
            (t.to_string(), "-t")
        } else if let Some(t) = self.ctx.program.strip_prefix("mkfs.") {
            (t.to_string(), "program name")
        } else if let Some(t) = self.ctx.profile.get("defaults", "fs_type") {
            (t.to_string(), "mke2fs.conf fs_type")
        } else if self.args.count('j') > 0 || self.args.last('J').is_some() {
            ("ext3".to_string(), "-j")
        } else {
            ("ext2".to_string(), "default")
        };
        let ty = parse_fs_type(&name).map_err(|e| MkfsError::refused(from, e))?;
        if !self.ctx.profile.has_fs_type(&name) && ty != FsType::Ext2 {
            self.note(
                from,
                format!("the fs_type {name} is not defined in mke2fs.conf"),
            );
        }
        Ok(ty)
    }

    /// -b: `Some(n)` a block size, `Some(-n)` a minimum.
    fn block_size_arg(&self) -> Result<Option<i64>, MkfsError> {
        let Some(b) = self.args.last('b') else {
            return Ok(None);
        };
        let n: i64 = b
            .parse()
            .map_err(|_| MkfsError::usage("-b", format!("{b:?} is not a block size")))?;
        let abs = u32::try_from(n.unsigned_abs()).unwrap_or(u32::MAX);
        if !abs.is_power_of_two() || !MKE2FS_BLOCK_SIZES.contains(&abs) {
            return Err(MkfsError::usage(
                "-b",
                format!("{b}: a power of two from 1024 to 65536"),
            ));
        }
        Ok(Some(n))
    }

    /// The filesystem's size in bytes: fs-size, else the device's.
    fn fs_bytes(&mut self, b: Option<i64>, offset: Option<u64>) -> Result<u64, MkfsError> {
        let explicit = b.filter(|n| *n > 0).map(|n| n as u32);
        if let Some(s) = &self.args.fs_size {
            return match parse_fs_size(s, explicit)? {
                0 => Err(MkfsError::usage(
                    "fs-size",
                    format!("{s:?}: a filesystem of no bytes"),
                )),
                n => Ok(n),
            };
        }
        match self.ctx.device_size {
            Some(n) if n > offset.unwrap_or(0) => {
                self.note("fs-size", "the size of the device");
                if offset.is_some() {
                    self.note(
                        "-E offset",
                        "offset specified without an explicit file system size: the device's size past the offset",
                    );
                }
                Ok(n - offset.unwrap_or(0))
            }
            _ => Err(MkfsError::usage(
                "fs-size",
                "missing, and the device has no size (give one: mke2fs DEVICE SIZE)",
            )),
        }
    }

    /// -T's list, else one type from the size.
    fn usage_types(&mut self, bytes: u64) -> Vec<String> {
        let types: Vec<String> = match self.args.last('T') {
            Some(list) => list
                .split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
            None => vec![USAGE_BY_SIZE
                .iter()
                .find(|(limit, _)| bytes < *limit)
                .map_or("huge", |(_, ty)| ty)
                .to_string()],
        };
        for ty in &types {
            if ty != "default" && !self.ctx.profile.has_fs_type(ty) {
                self.note(
                    "-T",
                    format!("the fs_type {ty} is not defined in mke2fs.conf"),
                );
            }
        }
        types
    }

    /// -b, else mke2fs.conf's `blocksize` (-1: the page size), at least
    /// -b's minimum.
    fn block_size(&mut self, types: &[String], b: Option<i64>) -> Result<u32, MkfsError> {
        let size = match b {
            Some(n) if n > 0 => n as u32,
            _ => {
                let conf = self
                    .conf_int(types, "blocksize")?
                    .unwrap_or(i64::from(PAGE_SIZE));
                let chosen = if conf > 0 { conf as u32 } else { PAGE_SIZE };
                let min = b.map_or(0, |n| n.unsigned_abs() as u32);
                chosen.max(min)
            }
        };
        if !KILN_BLOCK_SIZES.contains(&size) {
            return Err(MkfsError::refused(
                "-b",
                format!("kiln writes blocks of 1024, 2048 or 4096 bytes, not {size}"),
            ));
        }
        Ok(size)
    }

    /// -g and -G: only mke2fs's defaults.
    fn check_group_options(&self, block_size: u32) -> Result<(), MkfsError> {
        if let Some(g) = self.number('g')? {
            if g != u64::from(block_size) * 8 {
                return Err(MkfsError::refused(
                    "-g",
                    format!(
                        "kiln makes groups of {} blocks (8 × block size)",
                        block_size * 8
                    ),
                ));
            }
        }
        if let Some(g) = self.number('G')? {
            if g != 16 {
                return Err(MkfsError::refused(
                    "-G",
                    "kiln packs 16 groups in a flex_bg",
                ));
            }
        }
        Ok(())
    }

    /// A plain number argument of the last `-letter`.
    fn number(&self, letter: char) -> Result<Option<u64>, MkfsError> {
        self.args
            .last(letter)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    MkfsError::usage(format!("-{letter}"), format!("{v:?} is not a number"))
                })
            })
            .transpose()
    }

    /// An integer relation of mke2fs.conf.
    fn conf_int(&self, types: &[String], tag: &str) -> Result<Option<i64>, MkfsError> {
        self.ctx
            .profile
            .lookup(types, tag)
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| {
                    MkfsError::usage(
                        format!("mke2fs.conf {tag}"),
                        format!("{v:?} is not a number"),
                    )
                })
            })
            .transpose()
    }

    /// -J's options: `size=` in MiB; the rest refused.
    fn journal_size(&self) -> Result<Option<u64>, MkfsError> {
        let Some(list) = self.args.last('J') else {
            return Ok(None);
        };
        let mut size = None;
        for opt in parse_extended(list) {
            match (opt.name.as_str(), opt.value.as_deref()) {
                ("size", Some(v)) => {
                    size = Some(parse_journal_size(v).map_err(|e| MkfsError::usage("-J size", e))?)
                }
                ("device" | "location" | "fast_commit_size", _) => {
                    return Err(MkfsError::refused(
                        format!("-J {}", opt.name),
                        "kiln writes an internal journal of the default layout only",
                    ))
                }
                _ => {
                    return Err(MkfsError::usage(
                        "-J",
                        format!(
                            "{:?}: expected size=, device=, location= or fast_commit_size=",
                            opt.name
                        ),
                    ))
                }
            }
        }
        Ok(size)
    }

    /// base_features, each type's features, then -O (else
    /// default_features), then -j/-J; a default journal too big for the
    /// filesystem is dropped.
    fn features(
        &mut self,
        types: &[String],
        blocks: u64,
        sized_journal: bool,
    ) -> Result<Vec<String>, MkfsError> {
        let profile = self.ctx.profile;
        let mut set = FeatureSet::default();
        let base = profile
            .lookup(types, "base_features")
            .unwrap_or(DEFAULT_BASE_FEATURES);
        set.edit(base, "mke2fs.conf base_features")?;
        for ty in types {
            if let Some(list) = profile.get_in("fs_types", ty, "features") {
                set.edit(list, &format!("mke2fs.conf fs_types.{ty}.features"))?;
            }
        }
        let edits: Vec<&str> = self.args.all('O').collect();
        if !edits.is_empty() {
            set.edit(&edits.join(","), "-O")?;
        } else if let Some(list) = profile.lookup(types, "default_features") {
            set.edit(list, "mke2fs.conf default_features")?;
        }
        if self.args.count('j') > 0 || self.args.last('J').is_some() {
            set.edit("has_journal", "-j")?;
        }
        // mke2fs run as mkfs.ext3 always adds a journal, -O ^has_journal or not.
        if self.ctx.program == "mkfs.ext3" {
            set.edit("has_journal", "the program name mkfs.ext3")?;
        }
        if set.has("has_journal") && blocks < MIN_BLOCKS_FOR_JOURNAL && !sized_journal {
            set.edit("^has_journal", "size")?;
            self.note("has_journal", "Filesystem too small for a journal");
        }
        set.check_kiln()?;
        Ok(set.names())
    }

    fn inode_ratio(&self, types: &[String]) -> Result<u64, MkfsError> {
        if let Some(i) = self.number('i')? {
            return Ok(i);
        }
        let conf = self.conf_int(types, "inode_ratio")?;
        Ok(conf.map_or(DEFAULT_INODE_RATIO, |n| n.max(1) as u64))
    }

    fn inode_size(&self, types: &[String]) -> Result<u16, MkfsError> {
        let (size, from) = match self.number('I')? {
            Some(n) => (n, "-I"),
            None => match self.conf_int(types, "inode_size")? {
                Some(n) => (n.max(0) as u64, "mke2fs.conf inode_size"),
                None => (u64::from(DEFAULT_INODE_SIZE), "default"),
            },
        };
        match size {
            128 | 256 => Ok(size as u16),
            n if n.is_power_of_two() && n > 256 && n <= 65536 => Err(MkfsError::refused(
                from,
                format!("kiln writes inodes of 128 or 256 bytes, not {n}"),
            )),
            n => Err(MkfsError::usage(
                from,
                format!("{n}: an inode size is a power of two from 128"),
            )),
        }
    }

    fn reserved(&self, types: &[String]) -> Result<f64, MkfsError> {
        let (value, from) = match self.args.last('m') {
            Some(m) => (m.to_string(), "-m"),
            None => match self.ctx.profile.lookup(types, "reserved_ratio") {
                Some(r) => (r.to_string(), "mke2fs.conf reserved_ratio"),
                None => return Ok(DEFAULT_RESERVED),
            },
        };
        value
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|p| (0.0..=50.0).contains(p))
            .ok_or_else(|| MkfsError::usage(from, format!("{value:?}: a percentage from 0 to 50")))
    }

    fn hash_alg(&self, types: &[String]) -> Result<HashAlg, MkfsError> {
        match self.ctx.profile.lookup(types, "hash_alg") {
            Some(name) => {
                parse_hash_alg(name).map_err(|e| MkfsError::usage("mke2fs.conf hash_alg", e))
            }
            None => Ok(HashAlg::HalfMd4),
        }
    }

    /// -L, cut to 16 bytes as mke2fs does (with its warning).
    fn label(&mut self) -> String {
        let Some(label) = self.args.last('L') else {
            return String::new();
        };
        if label.len() <= MAX_LABEL {
            return label.to_string();
        }
        let mut end = MAX_LABEL;
        while !label.is_char_boundary(end) {
            end -= 1;
        }
        let cut = label[..end].to_string();
        self.note(
            "-L",
            format!("label too long; will be truncated to {cut:?}"),
        );
        cut
    }

    /// -U: a UUID, `clear`; `random` and `time` leave kiln's derived one.
    fn uuid(&mut self) -> Result<Option<[u8; 16]>, MkfsError> {
        match self.args.last('U') {
            None => Ok(None),
            Some("clear") => Ok(Some([0; 16])),
            Some(kind @ ("random" | "time")) => {
                self.note(
                    "-U",
                    format!("{kind}: kiln derives the UUID from its inputs"),
                );
                Ok(None)
            }
            Some(u) => parse_uuid(u)
                .map(Some)
                .map_err(|e| MkfsError::usage("-U", e)),
        }
    }

    /// -d and the times of the environment. The root directory is mke2fs's
    /// (0:0, 0755) unless `-E root_owner`/`root_perms` say otherwise: a
    /// source tree owned by the user who builds it must not give the image
    /// a root directory owned by that user.
    fn tree(&mut self, ext: &ExtendedRequest) -> Result<TreeRequest, MkfsError> {
        let mut times = self.times()?;
        let layers = match self.args.last('d') {
            Some(d) => vec![Layer::Source(PathBuf::from(d))],
            None => {
                // Without -d mke2fs makes an empty filesystem, its root
                // directory made at the filesystem's time: the clock unless
                // the environment fixes one.
                let time = times.clamp.or(times.fs_time).unwrap_or(self.ctx.now);
                times.fs_time = Some(time);
                vec![Layer::SpecLine(format!("set / time={time} crtime={time}"))]
            }
        };
        Ok(TreeRequest {
            layers,
            root_owner: Some(ext.root_owner.unwrap_or((0, 0))),
            root_mode: Some(ext.root_mode.unwrap_or(ROOT_MODE)),
            source_date_epoch: times.clamp,
            fs_time: times.fs_time,
            ..TreeRequest::default()
        })
    }

    /// The times of the environment, as mke2fs 1.47.1 takes them:
    /// SOURCE_DATE_EPOCH is the filesystem's time and clamps later entry
    /// times; else E2FSPROGS_FAKE_TIME is the filesystem's time alone.
    fn times(&self) -> Result<Times, MkfsError> {
        let parse = |name: &str, v: Option<&str>| {
            v.map(|v| {
                v.trim().parse::<i64>().map_err(|_| {
                    MkfsError::usage(name, format!("{v:?} is not a number of seconds"))
                })
            })
            .transpose()
        };
        let clamp = parse("SOURCE_DATE_EPOCH", self.ctx.source_date_epoch)?;
        let fake = parse("E2FSPROGS_FAKE_TIME", self.ctx.fake_time)?;
        Ok(Times {
            clamp,
            fs_time: if clamp.is_some() { None } else { fake },
        })
    }

    /// The device, written as mke2fs writes it: raw (whatever its
    /// extension), uncompressed, flushed.
    fn output(&mut self, ext: &ExtendedRequest) -> Result<OutputRequest, MkfsError> {
        // `-` is a file of that name to mke2fs, not standard output.
        let path = match self.args.device.as_os_str() == "-" {
            true => Path::new(".").join("-"),
            false => self.args.device.clone(),
        };
        let mut out = OutputRequest::file(path);
        out.force = true;
        out.compress = Some(Compress::None);
        out.format = Some(if ext.android_sparse {
            ImageFormat::AndroidSparse
        } else {
            ImageFormat::Raw
        });
        // A file is written in place, as mke2fs writes it (created or
        // extended as needed); an Android sparse image replaces it.
        match self.ctx.device {
            Device::Other => {
                return Err(MkfsError::usage(
                    "device",
                    format!(
                        "{}: neither a regular file nor a block device",
                        self.args.device.display()
                    ),
                ))
            }
            Device::File if !ext.android_sparse => {
                out.offset = Some(ext.offset.unwrap_or(0));
                out.grow = true;
            }
            Device::Missing if ext.offset.is_some() => {
                out.offset = ext.offset;
                out.grow = true;
            }
            _ => out.offset = ext.offset,
        }
        out.durability = Durability::Sync;
        Ok(out)
    }
}

mod extended;
#[cfg(test)]
mod tests;

use extended::ExtendedRequest;
pub use extended::EXTENDED_NAMES;
