//! The extended options (`-E`, `-R`, and mke2fs.conf's `options`).

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
}

impl Resolver<'_> {
    /// mke2fs.conf's `options`, then the last -E (or -R): mke2fs keeps only
    /// the last one given.
    pub(super) fn extended(&mut self, types: &[String]) -> Result<ExtendedRequest, MkfsError> {
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
    pub(super) fn offset_arg(&self) -> Option<u64> {
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
}
