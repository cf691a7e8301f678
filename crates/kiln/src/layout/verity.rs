//! dm-verity in a layout: a partition's `verity = "data"` or `"hash"`
//! role and the `verity_match` key that pairs a data partition with its
//! hash partition, as systemd-repart's `Verity=` and `VerityMatchKey=` do.
//!
//! The pairs are checked when the layout is parsed: each key names exactly
//! one data and one hash partition, and the hash partition comes after its
//! data partition, because the tree is computed while the data partition
//! is written and the disk is written in one forward pass.

use super::{fail, layout_fail, ConfigError, Content, Partition, Size};

/// A partition's part in a dm-verity pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerityRole {
    /// The filesystem the tree protects.
    Data,
    /// The hash tree (with its superblock) of the data partition.
    Hash,
}

/// A partition's dm-verity role and the key that pairs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verity {
    /// Data or hash.
    pub role: VerityRole,
    /// The same on a data partition and its hash partition.
    pub match_key: String,
}

/// The `verity` and `verity_match` keys of partition `key`, checked
/// against what fills it and its size.
pub(super) fn role(
    key: &str,
    verity: Option<&str>,
    match_key: Option<String>,
    content: &Content,
    size: &Size,
) -> Result<Option<Verity>, ConfigError> {
    let at = |field: &str| format!("{key}.{field}");
    let role = match (verity, &match_key) {
        (None, None) => return Ok(None),
        (None, Some(_)) => {
            return fail(
                at("verity_match"),
                "goes with verity = \"data\" or \"hash\"",
            )
        }
        (Some("data"), _) => VerityRole::Data,
        (Some("hash"), _) => VerityRole::Hash,
        (Some(other), _) => {
            return fail(
                at("verity"),
                format!("{other:?} is not a role (data or hash)"),
            )
        }
    };
    let Some(match_key) = match_key.filter(|k| !k.is_empty()) else {
        return fail(
            at("verity_match"),
            "missing: the key that pairs the data partition with its hash partition",
        );
    };
    match role {
        VerityRole::Data if !matches!(content, Content::Filesystem(_)) => fail(
            key,
            "a verity data partition holds a filesystem kiln builds ([partition.filesystem])",
        ),
        VerityRole::Hash if *content != Content::Empty => fail(
            key,
            "a verity hash partition is filled with its data partition's hash tree: give no \
             image or filesystem",
        ),
        VerityRole::Hash if *size == Size::Grow => fail(
            at("size"),
            "a verity hash partition is \"auto\" (what the tree needs) or a fixed size",
        ),
        _ => Ok(Some(Verity { role, match_key })),
    }
}

/// Checks that every `verity_match` key pairs one data partition with one
/// later hash partition.
pub(super) fn check_pairs(partitions: &[Partition]) -> Result<(), ConfigError> {
    let with = |key: &str, role: VerityRole| -> Vec<&Partition> {
        partitions
            .iter()
            .filter(|p| {
                p.verity
                    .as_ref()
                    .is_some_and(|v| v.role == role && v.match_key == key)
            })
            .collect()
    };
    for v in partitions.iter().filter_map(|p| p.verity.as_ref()) {
        let (data, hash) = (
            with(&v.match_key, VerityRole::Data),
            with(&v.match_key, VerityRole::Hash),
        );
        let keys = |ps: &[&Partition]| -> String {
            ps.iter()
                .map(|p| p.key.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (data.as_slice(), hash.as_slice()) {
            ([d], [h]) => {
                let index = |p: &Partition| partitions.iter().position(|q| q.key == p.key);
                if index(h) < index(d) {
                    return layout_fail(format!(
                        "{} (verity hash, verity_match = {:?}) comes before its data partition \
                         {}: the tree is computed while the data is written, so the hash \
                         partition must follow it",
                        h.key, v.match_key, d.key
                    ));
                }
            }
            ([], _) | (_, []) => {
                let (has, lacks) = if data.is_empty() {
                    ("hash", "data")
                } else {
                    ("data", "hash")
                };
                return layout_fail(format!(
                    "verity_match = {:?}: {} is a verity {has} partition, but no partition is \
                     its verity {lacks} partition",
                    v.match_key,
                    keys(if data.is_empty() { &hash } else { &data })
                ));
            }
            _ => {
                return layout_fail(format!(
                    "verity_match = {:?} pairs one data and one hash partition, not {}",
                    v.match_key,
                    keys(&[data, hash].concat())
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::Layout;

    /// A layout of `parts`, each `(label, verity, match key, filesystem)`.
    fn error(parts: &[(&str, &str, &str, bool)]) -> String {
        let text: String = parts
            .iter()
            .map(|(label, role, key, fs)| {
                let content = if *fs {
                    "[partition.filesystem]\nsources = [\"t\"]\n"
                } else {
                    "size = \"1M\"\n"
                };
                format!(
                    "[[partition]]\nlabel = \"{label}\"\ntype = \"linux-generic\"\n\
                     verity = \"{role}\"\nverity_match = \"{key}\"\n{content}"
                )
            })
            .collect();
        Layout::parse(&text, Path::new("/"))
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn pairs_are_checked() {
        assert_eq!(
            error(&[("d", "data", "k", true), ("h", "hash", "k", false)]),
            ""
        );
        for (parts, want) in [
            (
                vec![("d", "data", "k", true)],
                "partition[1] is a verity data partition, but no partition",
            ),
            (
                vec![("d", "data", "k", true), ("h", "hash", "j", false)],
                "verity_match = \"k\"",
            ),
            (
                vec![("h", "hash", "k", false), ("d", "data", "k", true)],
                "partition[1] (verity hash, verity_match = \"k\") comes before",
            ),
            (
                vec![
                    ("d", "data", "k", true),
                    ("e", "data", "k", true),
                    ("h", "hash", "k", false),
                ],
                "not partition[1], partition[2], partition[3]",
            ),
            (vec![("d", "wat", "k", true)], "partition[1].verity"),
            (
                vec![("h", "hash", "k", true)],
                "give no image or filesystem",
            ),
            (
                vec![("d", "data", "", true)],
                "partition[1].verity_match: missing",
            ),
        ] {
            let e = error(&parts);
            assert!(e.contains(want), "{want:?} not in {e:?}");
        }
    }
}
