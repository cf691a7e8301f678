//! A mke2fs command line resolved as mke2fs 1.47 resolves it (the
//! filesystem type, the usage types, then each parameter from the command
//! line, else mke2fs.conf, else mke2fs's built-in default) into kiln's
//! [`BuildRequest`], with notes of what kiln accepted but does not act on.

use std::path::PathBuf;

use kiln_lib::kiln_ext::{FsType, HashAlg};
use kiln_lib::kiln_sink::Durability;
use kiln_lib::values::{
    parse_fs_type, parse_hash_alg, parse_journal_size, parse_mode, parse_owner, parse_uuid,
};
use kiln_lib::{
    BuildRequest, Compress, ExtRequest, Format, FsRequest, ImageFormat, Layer, OutputRequest,
    SizeRequest, TreeRequest,
};

use crate::args::{parse_extended, parse_fs_size, Args, Extended};
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
    /// The uid and gid of the user running the program: the root
    /// directory's owner for `-E root_owner` without a value.
    pub ids: (u32, u32),
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

/// The extended options `plan` knows (every one has a row in
/// [`crate::table::EXTENDED`]).
pub const EXTENDED_NAMES: &[&str] = &[
    "android_sparse",
    "assume_storage_prezeroed",
    "discard",
    "encoding",
    "encoding_flags",
    "hash_seed",
    "lazy_itable_init",
    "lazy_journal_init",
    "mmp_update_interval",
    "no_copy_xattrs",
    "nodiscard",
    "num_backup_sb",
    "offset",
    "orphan_file_size",
    "packed_meta_blocks",
    "quotatype",
    "resize",
    "root_owner",
    "root_perms",
    "stride",
    "stripe_width",
    "stripe-width",
    "test_fs",
];

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
    from_n: bool,
) -> Result<(), MkfsError> {
    if inodes.saturating_mul(u64::from(inode_size)) < bytes {
        return Ok(());
    }
    Err(MkfsError::usage(
        if from_n { "-N" } else { "-i" },
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

/// What the -E options ask for.
#[derive(Default)]
struct ExtendedRequest {
    root_owner: Option<(u32, u32)>,
    root_mode: Option<u16>,
    seed: Option<[u8; 16]>,
    offset: Option<u64>,
    android_sparse: bool,
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
        let inodes = self.number('N')?;
        let inode_size = self.inode_size(&types)?;
        let inodes_wanted = inodes.unwrap_or(blocks * u64::from(block_size) / inode_ratio);
        check_inode_room(
            inodes_wanted,
            inode_size,
            blocks * u64::from(block_size),
            inodes.is_some(),
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
        let fs = FsRequest {
            format: Format::Ext(ext),
            size: SizeRequest::Fixed(blocks * u64::from(block_size)),
            label: self.label(),
        };
        let request = BuildRequest {
            tree: self.tree(&extended)?,
            fs,
            output: self.output(&extended),
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
            return parse_fs_size(s, explicit);
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

    /// mke2fs.conf's `options`, then the last -E (or -R): mke2fs keeps only
    /// the last one given.
    fn extended(&mut self, types: &[String]) -> Result<ExtendedRequest, MkfsError> {
        let mut list = Vec::new();
        if let Some(conf) = self.ctx.profile.lookup(types, "options") {
            list.extend(parse_extended(conf));
        }
        if let Some(value) = self.last_extended() {
            list.extend(parse_extended(value));
        }
        let mut req = ExtendedRequest::default();
        for opt in &list {
            self.one_extended(opt, &mut req)?;
        }
        Ok(req)
    }

    /// The argument of the last -E or -R.
    fn last_extended(&self) -> Option<&str> {
        self.args
            .options
            .iter()
            .rev()
            .find(|g| matches!(g.letter, 'E' | 'R'))
            .and_then(|g| g.value.as_deref())
    }

    /// `offset=` of the last -E, read early: the filesystem's size on a
    /// device is what lies past it. A bad value is reported by `extended`.
    fn offset_arg(&self) -> Option<u64> {
        parse_extended(self.last_extended()?)
            .into_iter()
            .rev()
            .find(|e| e.name == "offset")
            .and_then(|e| e.value?.parse().ok())
    }

    fn one_extended(&mut self, opt: &Extended, req: &mut ExtendedRequest) -> Result<(), MkfsError> {
        let name = format!("-E {}", opt.name);
        let value = opt.value.as_deref();
        let bad = |e: String| MkfsError::usage(name.clone(), e);
        match opt.name.as_str() {
            "root_owner" => {
                req.root_owner = Some(value.map_or(Ok(self.ctx.ids), parse_owner).map_err(bad)?)
            }
            "root_perms" => req.root_mode = Some(parse_mode(value.unwrap_or("")).map_err(bad)?),
            "hash_seed" => req.seed = Some(parse_uuid(value.unwrap_or("")).map_err(bad)?),
            "offset" => {
                let v = value.unwrap_or("");
                req.offset = Some(
                    v.parse()
                        .map_err(|_| bad(format!("{v:?} is not a byte offset")))?,
                )
            }
            "android_sparse" => req.android_sparse = true,
            "lazy_itable_init"
            | "lazy_journal_init"
            | "assume_storage_prezeroed"
            | "discard"
            | "nodiscard"
            | "num_backup_sb" => {
                let why = crate::table::extended(&opt.name).map_or("", |row| row.what);
                self.note(name, why)
            }
            other if EXTENDED_NAMES.contains(&other) => {
                let why = crate::table::extended(other).map_or("", |row| row.what);
                return Err(MkfsError::refused(name, why));
            }
            _ => return Err(bad("not an extended option of mke2fs".into())),
        }
        Ok(())
    }

    /// -d and the times of the environment.
    fn tree(&mut self, ext: &ExtendedRequest) -> Result<TreeRequest, MkfsError> {
        let layers = self
            .args
            .last('d')
            .map(|d| vec![Layer::Source(PathBuf::from(d))])
            .unwrap_or_default();
        Ok(TreeRequest {
            layers,
            root_owner: ext.root_owner,
            root_mode: ext.root_mode,
            source_date_epoch: self.epoch()?,
            ..TreeRequest::default()
        })
    }

    /// E2FSPROGS_FAKE_TIME (the filesystem's time, as mke2fs takes it),
    /// else SOURCE_DATE_EPOCH (as mke2fs 1.47.1 and kiln take it).
    fn epoch(&mut self) -> Result<Option<i64>, MkfsError> {
        let parse = |name: &str, v: &str| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| MkfsError::usage(name, format!("{v:?} is not a number of seconds")))
        };
        if let Some(v) = self.ctx.fake_time {
            let t = parse("E2FSPROGS_FAKE_TIME", v)?;
            self.note(
                "E2FSPROGS_FAKE_TIME",
                "the filesystem's time; kiln also clamps later file times to it",
            );
            return Ok(Some(t));
        }
        self.ctx
            .source_date_epoch
            .map(|v| parse("SOURCE_DATE_EPOCH", v))
            .transpose()
    }

    /// The device, written in place as mke2fs writes it: raw (whatever its
    /// extension), uncompressed, flushed.
    fn output(&mut self, ext: &ExtendedRequest) -> OutputRequest {
        let mut out = OutputRequest::file(self.args.device.clone());
        out.force = true;
        out.compress = Some(Compress::None);
        out.format = Some(if ext.android_sparse {
            ImageFormat::AndroidSparse
        } else {
            ImageFormat::Raw
        });
        out.offset = ext.offset;
        out.durability = Durability::Sync;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::builtin;

    /// The plan of `argv` run as `program` with the built-in profile.
    fn run(program: &str, argv: &[&str]) -> Result<MkfsPlan, MkfsError> {
        run_with(program, argv, &builtin(), |_| {})
    }

    fn run_with(
        program: &str,
        argv: &[&str],
        profile: &Profile,
        edit: impl FnOnce(&mut Context),
    ) -> Result<MkfsPlan, MkfsError> {
        let args = Args::parse(argv.iter().copied())?;
        let mut ctx = Context {
            program,
            profile,
            fake_time: None,
            source_date_epoch: None,
            device_size: None,
            ids: (1000, 100),
        };
        edit(&mut ctx);
        plan(&args, &ctx)
    }

    fn err(program: &str, argv: &[&str]) -> String {
        run(program, argv).unwrap_err().to_string()
    }

    #[test]
    fn fs_type_from_option_program_conf_or_journal() {
        let ty = |p: &str, argv: &[&str]| run(p, argv).unwrap().ext().fs_type;
        assert_eq!(ty("mke2fs", &["img", "8M"]), FsType::Ext2);
        assert_eq!(ty("mke2fs", &["-j", "img", "8M"]), FsType::Ext3);
        assert_eq!(ty("mkfs.ext4", &["img", "8M"]), FsType::Ext4);
        assert_eq!(ty("mkfs.ext4", &["-t", "ext3", "img", "8M"]), FsType::Ext3);
        let conf = Profile::parse("[defaults]\n fs_type = ext4\n").unwrap();
        let p = run_with("mke2fs", &["img", "8M"], &conf, |_| {}).unwrap();
        assert_eq!(p.ext().fs_type, FsType::Ext4);
        assert!(err("mkfs.xfs", &["img", "8M"]).starts_with("program name: kiln cannot honour it"));
    }

    #[test]
    fn usage_type_from_size_thresholds() {
        let usage = |size: &str| run("mkfs.ext4", &["img", size]).unwrap().usage_types;
        assert_eq!(usage("3071k"), ["floppy"]);
        assert_eq!(usage("3M"), ["small"]);
        assert_eq!(usage("511M"), ["small"]);
        assert_eq!(usage("512M"), ["default"]);
        assert_eq!(usage("4T"), ["big"]);
        assert_eq!(usage("16T"), ["huge"]);
        let p = run("mkfs.ext4", &["-T", "news,largefile", "img", "1G"]).unwrap();
        assert_eq!(p.usage_types, ["news", "largefile"]);
        assert_eq!(p.inode_ratio, 1 << 20);
        let p = run("mkfs.ext4", &["-T", "bogus", "img", "1G"]).unwrap();
        assert!(p
            .notes
            .iter()
            .any(|n| n.note.contains("bogus is not defined")));
    }

    #[test]
    fn sizes_block_sizes_and_minimums() {
        let p = run("mke2fs", &["-b", "2048", "img", "100"]).unwrap();
        assert_eq!(p.request.fs.size, SizeRequest::Fixed(204_800));
        let p = run("mke2fs", &["-b", "-2048", "img", "8M"]).unwrap();
        assert_eq!(
            p.ext().block_size,
            2048,
            "small's 1024 raised to the minimum"
        );
        let p = run("mke2fs", &["-T", "largefile", "img", "8M"]).unwrap();
        assert_eq!(p.ext().block_size, PAGE_SIZE);
        assert!(err("mke2fs", &["-b", "8192", "img", "8M"]).contains("kiln cannot honour it"));
        assert!(err("mke2fs", &["-b", "1000", "img", "8M"]).starts_with("-b: 1000: a power of two"));
        assert!(err("mke2fs", &["img"]).starts_with("fs-size: missing"));
        let p = run_with("mke2fs", &["img"], &builtin(), |c| {
            c.device_size = Some(8 << 20)
        })
        .unwrap();
        assert_eq!(p.request.fs.size, SizeRequest::Fixed(8 << 20));
        // As mke2fs: the device's size past the offset, with its warning.
        let p = run_with(
            "mke2fs",
            &["-E", "offset=1048576", "img"],
            &builtin(),
            |c| c.device_size = Some(16 << 20),
        )
        .unwrap();
        assert_eq!(p.request.fs.size, SizeRequest::Fixed(15 << 20));
        assert!(p.notes.iter().any(|n| n.option == "-E offset"));
    }

    #[test]
    fn refused_options_name_themselves() {
        let cases: [(&[&str], &str); 12] = [
            (&["-c"], "-c: kiln cannot honour it"),
            (&["-l", "bb"], "-l: kiln cannot honour it"),
            (&["-C", "65536"], "-C: kiln cannot honour it"),
            (&["-S"], "-S: kiln cannot honour it"),
            (&["-z", "undo"], "-z: kiln cannot honour it"),
            (&["-o", "hurd"], "-o: kiln cannot honour it"),
            (&["-e", "panic"], "-e: kiln cannot honour it"),
            (&["-r", "0"], "-r: kiln cannot honour it"),
            (&["-g", "1024"], "-g: kiln cannot honour it"),
            (&["-E", "stride=4"], "-E stride: kiln cannot honour it"),
            (
                &["-O", "bigalloc"],
                "feature bigalloc: kiln cannot honour it",
            ),
            (&["-J", "device=/dev/x"], "-J device: kiln cannot honour it"),
        ];
        for (opts, want) in cases {
            let mut argv = opts.to_vec();
            argv.extend(["img", "8M"]);
            let e = err("mkfs.ext4", &argv);
            assert!(e.starts_with(want), "{opts:?}: {e}");
        }
        assert!(err("mke2fs", &["-E", "bogus", "img", "8M"])
            .starts_with("-E bogus: not an extended option"));
        assert!(err("mke2fs", &["-O", "bogus", "img", "8M"])
            .starts_with("-O: \"bogus\" is not a feature"));
    }

    #[test]
    fn accepted_defaults_and_no_ops() {
        let argv = [
            "-Fq", "-D", "-e", "continue", "-o", "Linux", "-r", "1", "-g", "32768", "-G", "16",
            "img", "1G",
        ];
        let p = run("mkfs.ext4", &argv).unwrap();
        assert!(p.quiet && !p.verbose && !p.dry_run);
        let noted: Vec<_> = p.notes.iter().map(|n| n.option.as_str()).collect();
        assert_eq!(noted, ["-F", "-D"]);
        let p = run(
            "mkfs.ext4",
            &[
                "-n",
                "-V",
                "-E",
                "nodiscard,lazy_itable_init=1",
                "img",
                "1G",
            ],
        )
        .unwrap();
        assert!(p.dry_run && p.version);
        assert_eq!(p.notes.len(), 2);
    }

    #[test]
    fn extended_options_fill_the_request() {
        let argv = [
            "-d", "root.tar", "-L", "a label longer than sixteen", "-U", "clear", "-E",
            "root_owner=0:0,root_perms=0755,offset=1048576,hash_seed=6ba7b810-9dad-11d1-80b4-00c04fd430c8,android_sparse",
            "img.qcow2", "64M",
        ];
        let p = run("mkfs.ext4", &argv).unwrap();
        let r = &p.request;
        assert_eq!(r.tree.layers, [Layer::Source("root.tar".into())]);
        assert_eq!(r.tree.root_owner, Some((0, 0)));
        assert_eq!(r.tree.root_mode, Some(0o755));
        assert_eq!(r.fs.label, "a label longer t");
        assert_eq!(p.ext().uuid, Some([0; 16]));
        assert_eq!(p.ext().seed.unwrap()[0], 0x6b);
        assert_eq!(r.output.offset, Some(1 << 20));
        assert_eq!(r.output.format, Some(ImageFormat::AndroidSparse));
        assert!(r.output.force);
        assert_eq!(r.output.compress, Some(Compress::None));
        // Only the last -E counts, as in mke2fs; root_owner alone is the caller's ids.
        let p = run(
            "mkfs.ext4",
            &["-E", "offset=4096", "-E", "root_owner", "img", "64M"],
        )
        .unwrap();
        assert_eq!(p.request.output.offset, None);
        assert_eq!(p.request.tree.root_owner, Some((1000, 100)));
        assert_eq!(p.request.output.format, Some(ImageFormat::Raw));
    }

    #[test]
    fn features_follow_conf_then_options() {
        let p = run("mkfs.ext3", &["-O", "^has_journal,extents", "img", "64M"]).unwrap();
        assert!(!p.features.contains(&"has_journal".to_string()));
        assert!(p.features.contains(&"extent".to_string()));
        assert!(p.ext().features[0].starts_with("none,"));
        // -j wins over -O ^has_journal, as in mke2fs.
        let p = run("mke2fs", &["-O", "^has_journal", "-j", "img", "64M"]).unwrap();
        assert!(p.features.contains(&"has_journal".to_string()));
        // A default journal does not fit 1 MiB: dropped, with mke2fs's message.
        let p = run("mkfs.ext4", &["img", "1M"]).unwrap();
        assert!(!p.features.contains(&"has_journal".to_string()));
        assert!(p
            .notes
            .iter()
            .any(|n| n.note == "Filesystem too small for a journal"));
        let p = run("mkfs.ext4", &["-J", "size=4", "img", "64M"]).unwrap();
        assert_eq!(p.ext().journal_size, Some(4 << 20));
        let conf = Profile::parse(
            "[defaults]\n base_features = sparse_super\n default_features = dir_index\n hash_alg = tea\n reserved_ratio = 2\n[fs_types]\n ext4 = {\n  features = extent\n }\n",
        )
        .unwrap();
        let p = run_with("mkfs.ext4", &["img", "64M"], &conf, |_| {}).unwrap();
        assert_eq!(p.features, ["sparse_super", "extent", "dir_index"]);
        assert_eq!(p.ext().hash_alg, HashAlg::Tea);
        assert_eq!(p.ext().reserved_percent, 2.0);
        let p = run_with(
            "mkfs.ext4",
            &["-O", "filetype", "img", "64M"],
            &conf,
            |_| {},
        )
        .unwrap();
        assert_eq!(
            p.features,
            ["sparse_super", "extent", "filetype"],
            "-O replaces default_features"
        );
    }

    #[test]
    fn inode_options_and_room() {
        let p = run("mke2fs", &["-N", "5000", "-I", "128", "img", "64M"]).unwrap();
        assert_eq!(
            (p.ext().inodes, p.ext().bytes_per_inode),
            (Some(5000), None)
        );
        assert_eq!(p.ext().inode_size, 128);
        let p = run("mke2fs", &["-i", "4096", "img", "1G"]).unwrap();
        assert_eq!(
            (p.inodes_wanted, p.ext().bytes_per_inode),
            (1 << 18, Some(4096))
        );
        assert!(err("mke2fs", &["-N", "5000", "img", "1M"]).starts_with("-N: 5000 inodes"));
        assert!(err("mke2fs", &["-I", "512", "img", "1M"]).starts_with("-I: kiln cannot honour it"));
        assert!(err("mke2fs", &["-I", "100", "img", "1M"]).starts_with("-I: 100"));
        assert!(err("mke2fs", &["-m", "60", "img", "1M"]).starts_with("-m: \"60\""));
    }

    #[test]
    fn times_from_the_environment() {
        let p = run_with("mke2fs", &["img", "8M"], &builtin(), |c| {
            c.source_date_epoch = Some("1700000000");
        })
        .unwrap();
        assert_eq!(p.request.tree.source_date_epoch, Some(1_700_000_000));
        let p = run_with("mke2fs", &["img", "8M"], &builtin(), |c| {
            c.source_date_epoch = Some("5");
            c.fake_time = Some("1000");
        })
        .unwrap();
        assert_eq!(p.request.tree.source_date_epoch, Some(1000));
        let e = run_with("mke2fs", &["img", "8M"], &builtin(), |c| {
            c.source_date_epoch = Some("soon")
        })
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("SOURCE_DATE_EPOCH: \"soon\""), "{e}");
    }

    #[test]
    fn the_request_passes_kilns_own_checks() {
        for program in ["mke2fs", "mkfs.ext3", "mkfs.ext4"] {
            let p = run(program, &["-d", "x", "img", "100M"]).unwrap();
            p.request.fs.options(false).unwrap();
        }
    }
}
