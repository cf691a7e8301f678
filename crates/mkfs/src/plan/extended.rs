//! The extended options (`-E`, `-R`, and mke2fs.conf's `options`).

use kiln_lib::kiln_ext::RaidHints;
use kiln_lib::values::{parse_mode, parse_owner, parse_uuid};

use super::Resolver;
use crate::args::{parse_extended, Extended};
use crate::error::MkfsError;

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

/// What the -E options ask for.
#[derive(Default)]
pub(super) struct ExtendedRequest {
    pub(super) root_owner: Option<(u32, u32)>,
    pub(super) root_mode: Option<u16>,
    pub(super) seed: Option<[u8; 16]>,
    pub(super) offset: Option<u64>,
    pub(super) android_sparse: bool,
    pub(super) raid: RaidHints,
}

impl Resolver<'_> {
    /// mke2fs.conf's `options`, then every -E (or -R) in order, a later
    /// option overriding an earlier one: mke2fs 1.47.4 joins repeated -E
    /// (Yocto appends its hash_seed to the user's -E).
    pub(super) fn extended(&mut self, types: &[String]) -> Result<ExtendedRequest, MkfsError> {
        let mut list = Vec::new();
        if let Some(conf) = self.ctx.profile.lookup(types, "options") {
            list.extend(parse_extended(conf));
        }
        for value in self.extended_args() {
            list.extend(parse_extended(value));
        }
        let mut req = ExtendedRequest::default();
        for opt in &list {
            self.one_extended(opt, &mut req)?;
        }
        let RaidHints {
            stride,
            stripe_width,
        } = req.raid;
        if stride > 0 && stripe_width % u32::from(stride) != 0 {
            self.note(
                "-E stripe_width",
                format!(
                    "{stripe_width} should be a multiple of the stride, {stride} (as mke2fs warns)"
                ),
            );
        }
        Ok(req)
    }

    /// The arguments of every -E and -R, in order.
    fn extended_args(&self) -> impl Iterator<Item = &str> {
        self.args
            .options
            .iter()
            .filter(|g| matches!(g.letter, 'E' | 'R'))
            .filter_map(|g| g.value.as_deref())
    }

    /// The last `offset=` of the -E options, read early: the filesystem's
    /// size on a device is what lies past it. A bad value is reported by
    /// `extended`.
    pub(super) fn offset_arg(&self) -> Option<u64> {
        self.extended_args()
            .flat_map(parse_extended)
            .filter(|e| e.name == "offset")
            .last()
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
            "stride" => {
                req.raid.stride = parse_blocks(value)
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or_else(|| {
                        bad(format!(
                            "{:?} is not a stride of 0 to 65535 blocks",
                            value.unwrap_or("")
                        ))
                    })?
            }
            "stripe_width" | "stripe-width" => {
                req.raid.stripe_width = parse_blocks(value).ok_or_else(|| {
                    bad(format!(
                        "{:?} is not a stripe width in blocks",
                        value.unwrap_or("")
                    ))
                })?
            }
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
}

/// A count of blocks as mke2fs reads `stride=` and `stripe_width=`
/// (strtoul in base 0: decimal, `0x` hex, `0` octal; empty is 0, none).
fn parse_blocks(value: Option<&str>) -> Option<u32> {
    let v = value?;
    if let Some(hex) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        return u32::from_str_radix(hex, 16).ok();
    }
    match v {
        "" => Some(0),
        _ if v.len() > 1 && v.starts_with('0') => u32::from_str_radix(&v[1..], 8).ok(),
        _ => v.parse().ok(),
    }
}
