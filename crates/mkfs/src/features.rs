//! Feature lists as mke2fs edits them (`-O`, mke2fs.conf's
//! `base_features`, `features`, `default_features`), by mke2fs's names,
//! then checked against what kiln writes.

use kiln_lib::kiln_ext::Features;

use crate::error::MkfsError;

/// Every feature name mke2fs 1.47 takes, as (name, canonical name).
const MKE2FS_FEATURES: &[(&str, &str)] = &[
    ("dir_prealloc", "dir_prealloc"),
    ("has_journal", "has_journal"),
    ("imagic_inodes", "imagic_inodes"),
    ("ext_attr", "ext_attr"),
    ("dir_index", "dir_index"),
    ("resize_inode", "resize_inode"),
    ("lazy_bg", "lazy_bg"),
    ("snapshot_bitmap", "snapshot_bitmap"),
    ("sparse_super2", "sparse_super2"),
    ("fast_commit", "fast_commit"),
    ("stable_inodes", "stable_inodes"),
    ("orphan_file", "orphan_file"),
    ("sparse_super", "sparse_super"),
    ("large_file", "large_file"),
    ("huge_file", "huge_file"),
    ("uninit_bg", "uninit_bg"),
    ("uninit_groups", "uninit_bg"),
    ("dir_nlink", "dir_nlink"),
    ("extra_isize", "extra_isize"),
    ("quota", "quota"),
    ("bigalloc", "bigalloc"),
    ("metadata_csum", "metadata_csum"),
    ("replica", "replica"),
    ("read-only", "read-only"),
    ("project", "project"),
    ("shared_blocks", "shared_blocks"),
    ("verity", "verity"),
    ("orphan_present", "orphan_present"),
    ("compression", "compression"),
    ("filetype", "filetype"),
    ("needs_recovery", "needs_recovery"),
    ("journal_dev", "journal_dev"),
    ("extent", "extent"),
    ("extents", "extent"),
    ("meta_bg", "meta_bg"),
    ("64bit", "64bit"),
    ("mmp", "mmp"),
    ("flex_bg", "flex_bg"),
    ("ea_inode", "ea_inode"),
    ("dirdata", "dirdata"),
    ("metadata_csum_seed", "metadata_csum_seed"),
    ("large_dir", "large_dir"),
    ("inline_data", "inline_data"),
    ("encrypt", "encrypt"),
    ("casefold", "casefold"),
    ("fname_encoding", "casefold"),
];

/// The features turned on so far, each with the edit that turned it on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FeatureSet {
    on: Vec<(&'static str, String)>,
}

impl FeatureSet {
    /// Applies an edit list (`a,^b,none`) from `source` (named in errors).
    pub(crate) fn edit(&mut self, list: &str, source: &str) -> Result<(), MkfsError> {
        for item in list.split([',', ' ', '\t']).filter(|s| !s.is_empty()) {
            if item == "none" {
                self.on.clear();
                continue;
            }
            let (on, name) = match item.strip_prefix('^') {
                Some(name) => (false, name),
                None => (true, item),
            };
            let canonical = canonical(name).ok_or_else(|| {
                MkfsError::usage(source, format!("{name:?} is not a feature mke2fs knows"))
            })?;
            self.on.retain(|(n, _)| *n != canonical);
            if on {
                self.on.push((canonical, source.to_string()));
            }
        }
        Ok(())
    }

    /// Whether `name` is on.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.on.iter().any(|(n, _)| *n == name)
    }

    /// The names on, in the order they were turned on.
    pub(crate) fn names(&self) -> Vec<String> {
        self.on.iter().map(|(n, _)| n.to_string()).collect()
    }

    /// Refuses the first feature kiln cannot write, naming where it came
    /// from, then combinations kiln's writer refuses.
    pub(crate) fn check_kiln(&self) -> Result<(), MkfsError> {
        if let Some((name, source)) = self
            .on
            .iter()
            .find(|(name, _)| Features::default().edit(name).is_err())
        {
            return Err(MkfsError::refused(
                format!("feature {name}"),
                format!("kiln cannot write it (turned on by {source})"),
            ));
        }
        Ok(())
    }
}

/// mke2fs's name for `name`, if it knows it.
fn canonical(name: &str) -> Option<&'static str> {
    MKE2FS_FEATURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_apply_in_order_with_aliases() {
        let mut set = FeatureSet::default();
        set.edit("sparse_super,extents,flex_bg", "a").unwrap();
        set.edit("^flex_bg,has_journal", "b").unwrap();
        assert_eq!(set.names(), ["sparse_super", "extent", "has_journal"]);
        set.edit("none,filetype", "c").unwrap();
        assert_eq!(set.names(), ["filetype"]);
        set.check_kiln().unwrap();
    }

    #[test]
    fn unknown_and_unwritable_features_are_named() {
        let mut set = FeatureSet::default();
        let err = set.edit("bogus", "-O").unwrap_err().to_string();
        assert_eq!(err, "-O: \"bogus\" is not a feature mke2fs knows");
        set.edit("^bigalloc", "-O").unwrap();
        set.check_kiln().unwrap();
        set.edit("bigalloc", "-O").unwrap();
        let err = set.check_kiln().unwrap_err().to_string();
        assert_eq!(
            err,
            "feature bigalloc: kiln cannot honour it: kiln cannot write it (turned on by -O)"
        );
    }
}
