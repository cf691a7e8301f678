//! A disk's layout ([`Layout`]): a partition table and the partitions in
//! order, each with what fills it, typed. A program builds one in memory;
//! `kiln build --config disk.toml` loads one from TOML
//! (`docs/disk-config.md`), whose filesystem keys deserialise into the
//! same [`TreeRequest`] and [`FsRequest`] that `kiln build`'s flags fill.
//!
//! Parsing checks everything that can be checked without reading sources:
//! sizes, types, labels, attributes, which contents each partition has,
//! every filesystem option. Every error names the key
//! (`partition[2].size`); [`Layout::load`] adds the file.

use std::io;
use std::path::{Path, PathBuf};

use kiln_tree::IdMap;
use serde::Deserialize;

use crate::values::{self, parse_size};
use crate::{ExtRequest, FatRequest, Format, FsRequest, Layer, SizeRequest, TreeRequest};

mod verity;

pub use verity::{Verity, VerityRole};

/// Why a disk layout file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not TOML, or a key the format does not have: the toml crate's
    /// message, which names the key and the line.
    #[error("{0}")]
    Toml(Box<toml::de::Error>),
    /// A value that is wrong.
    #[error("{key}: {what}")]
    Key {
        /// Where in the file: `disk.table`, `partition[2].size`.
        key: String,
        /// What is wrong with it.
        what: String,
    },
    /// A rule of the whole layout (labels differ, at least one partition).
    #[error("{what}")]
    Layout {
        /// What is wrong.
        what: String,
    },
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The layout file.
        path: PathBuf,
        /// What the host said.
        source: io::Error,
    },
    /// An error in the file at `path`.
    #[error("{}: {source}", path.display())]
    In {
        /// The layout file.
        path: PathBuf,
        /// What is wrong in it.
        source: Box<ConfigError>,
    },
}

impl From<toml::de::Error> for ConfigError {
    fn from(e: toml::de::Error) -> Self {
        ConfigError::Toml(Box::new(e))
    }
}

/// `Err(ConfigError::Key)` from `key` and a message.
fn fail<T>(key: impl Into<String>, what: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::Key {
        key: key.into(),
        what: what.into(),
    })
}

/// `Err(ConfigError::Layout)`.
fn layout_fail<T>(what: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::Layout { what: what.into() })
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    disk: RawDisk,
    #[serde(default)]
    partition: Vec<RawPartition>,
}

/// `[disk]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDisk {
    table: Option<String>,
    size: Option<String>,
    uuid: Option<String>,
}

/// One `[[partition]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartition {
    label: Option<String>,
    #[serde(rename = "type")]
    type_: Option<String>,
    size: Option<String>,
    min: Option<String>,
    max: Option<String>,
    free: Option<String>,
    uuid: Option<String>,
    #[serde(default)]
    attributes: Vec<toml::Value>,
    image: Option<PathBuf>,
    filesystem: Option<RawFilesystem>,
    /// `data` or `hash`: a dm-verity pair's part.
    verity: Option<String>,
    /// The key pairing a verity data partition with its hash partition.
    verity_match: Option<String>,
}

/// `[partition.filesystem]`: each key is a `kiln build` flag's long name
/// with `_` for `-` (`--all-root` is `all_root`), a repeatable flag's a
/// list.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawFilesystem {
    #[serde(rename = "type")]
    type_: Option<String>,
    sources: Vec<PathBuf>,
    device_table: Vec<PathBuf>,
    spec: Vec<PathBuf>,
    spec_line: Vec<String>,
    file_contexts: Option<PathBuf>,
    exclude: Vec<String>,
    whiteouts: bool,
    ignore_zeros: bool,
    ignore_checksums: bool,
    all_root: bool,
    uid_map: Vec<String>,
    gid_map: Vec<String>,
    root_owner: Option<String>,
    root_mode: Option<String>,
    timestamp: Option<i64>,
    label: Option<String>,
    /// A UUID for ext, a volume id (`1234-ABCD`) for FAT.
    uuid: Option<String>,
    /// ext: bytes per block; FAT: bytes per cluster.
    block_size: Option<u32>,
    /// ext only, from here to `journal_size`.
    features: Vec<String>,
    inode_size: Option<u16>,
    inodes: Option<u64>,
    bytes_per_inode: Option<u64>,
    reserved_percent: Option<f64>,
    seed: Option<String>,
    hash_alg: Option<String>,
    journal_size: Option<String>,
    /// The old spelling (`kiln build` arguments), refused with the new one.
    options: Option<Vec<String>>,
}

/// The partition table of the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// A GUID partition table.
    Gpt,
    /// No table: the disk is its one partition's content.
    None,
}

/// How big a partition is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Size {
    /// Exactly this many bytes (rounded up to the alignment).
    Fixed(u64),
    /// What the content needs, plus `free`, within `min..=max`.
    Auto {
        /// At least this many bytes.
        min: Option<u64>,
        /// At most this many bytes.
        max: Option<u64>,
        /// Headroom beyond what the content needs.
        free: u64,
    },
    /// The rest of a fixed-size disk (the last partition only).
    Grow,
}

/// What fills a partition.
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    /// Nothing (zeros).
    Empty,
    /// A raw image file, copied in.
    Image(PathBuf),
    /// An ext2/3/4 filesystem built from sources (paths absolute).
    Filesystem(Box<Filesystem>),
}

/// A filesystem partition's tree and options. Its size comes from the
/// partition; `live` and `source_date_epoch` from the disk's request.
#[derive(Clone, Debug, PartialEq)]
pub struct Filesystem {
    /// What it holds.
    pub tree: TreeRequest,
    /// The filesystem (its `size` is the partition's, set when laid out).
    pub fs: FsRequest,
}

/// One partition, checked.
#[derive(Clone, Debug)]
pub struct Partition {
    /// Where it is in the file, for messages: `partition[N]`.
    pub key: String,
    /// The GPT partition name.
    pub label: String,
    /// The partition type.
    pub type_guid: uuid::Uuid,
    /// How big it is.
    pub size: Size,
    /// The partition GUID, if given.
    pub uuid: Option<uuid::Uuid>,
    /// GPT attribute bits.
    pub attributes: u64,
    /// What fills it.
    pub content: Content,
    /// Its part in a dm-verity pair, if any.
    pub verity: Option<Verity>,
}

/// A checked disk layout.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The partition table.
    pub table: Table,
    /// A fixed disk size, if given.
    pub size: Option<u64>,
    /// The disk GUID, if given.
    pub uuid: Option<uuid::Uuid>,
    /// The partitions in disk order (at least one).
    pub partitions: Vec<Partition>,
    /// Bytes that seed the GUIDs kiln derives, with each filesystem's
    /// UUID: the layout file's text, for one loaded from a file; any bytes
    /// that tell this layout apart, for one made in code.
    pub identity: Vec<u8>,
    /// The file it was loaded from (which the output must not be), if any.
    pub file: Option<PathBuf>,
}

/// GPT attribute bits by name (UEFI, and the Discoverable Partitions
/// Specification's bits 59, 60 and 63).
const ATTRIBUTES: [(&str, u32); 6] = [
    ("required", 0),
    ("no-block-io", 1),
    ("legacy-bios-bootable", 2),
    ("grow-file-system", 59),
    ("read-only", 60),
    ("no-auto", 63),
];

impl Layout {
    /// Reads and checks the file at `path`; relative paths in it are
    /// relative to its directory. Errors name the file.
    pub fn load(path: &Path) -> Result<Layout, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut layout = Layout::parse(&text, base).map_err(|e| ConfigError::In {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        layout.file = Some(path.to_path_buf());
        Ok(layout)
    }

    /// Parses and checks `text`, resolving relative paths against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Layout, ConfigError> {
        let raw: RawConfig = toml::from_str(text)?;
        let table = match raw.disk.table.as_deref() {
            None | Some("gpt") => Table::Gpt,
            Some("none") => Table::None,
            Some(other) => {
                return fail(
                    "disk.table",
                    format!("{other:?} is not a partition table (gpt or none)"),
                )
            }
        };
        let size = raw
            .disk
            .size
            .as_deref()
            .map(|s| size_value("disk.size", s))
            .transpose()?;
        let uuid = raw
            .disk
            .uuid
            .as_deref()
            .map(|s| guid("disk.uuid", s))
            .transpose()?;
        if raw.partition.is_empty() {
            return layout_fail("no [[partition]]: a disk needs at least one");
        }
        let count = raw.partition.len();
        let partitions = raw
            .partition
            .into_iter()
            .enumerate()
            .map(|(i, p)| partition(i + 1, p, base, i + 1 == count))
            .collect::<Result<Vec<_>, _>>()?;
        if table == Table::None && partitions.len() != 1 {
            return layout_fail(format!(
                "disk.table = \"none\" holds exactly one partition, not {count}"
            ));
        }
        let mut labels: Vec<&str> = partitions.iter().map(|p| p.label.as_str()).collect();
        labels.sort_unstable();
        verity::check_pairs(&partitions)?;
        if let Some(w) = labels.windows(2).find(|w| w[0] == w[1]) {
            return layout_fail(format!(
                "two partitions are labelled {:?}: labels pick partitions, so they must differ",
                w[0]
            ));
        }
        if partitions.iter().any(|p| p.size == Size::Grow) && size.is_none() {
            return layout_fail("size = \"grow\" fills a fixed disk: set disk.size");
        }
        Ok(Layout {
            table,
            size,
            uuid,
            partitions,
            identity: text.as_bytes().to_vec(),
            file: None,
        })
    }
}

/// The partition type GUID of a type name (`esp`, `root-x86-64`, ...; the
/// Discoverable Partitions Specification's) or of a GUID's text.
pub fn type_guid(name_or_guid: &str) -> Option<uuid::Uuid> {
    let text = kiln_disk::type_guid(name_or_guid).unwrap_or(name_or_guid);
    uuid::Uuid::parse_str(text).ok()
}

/// Checks one partition (`n` counts from 1).
fn partition(n: usize, p: RawPartition, base: &Path, last: bool) -> Result<Partition, ConfigError> {
    let key = format!("partition[{n}]");
    let at = |field: &str| format!("{key}.{field}");
    let Some(label) = p.label else {
        return fail(at("label"), "missing");
    };
    if label.encode_utf16().count() > 36 {
        return fail(
            at("label"),
            format!("{label:?} is longer than GPT's 36 characters"),
        );
    }
    let Some(type_name) = p.type_ else {
        return fail(at("type"), "missing");
    };
    let Some(type_guid) = type_guid(&type_name) else {
        return fail(
            at("type"),
            format!("{type_name:?} is neither a known type (esp, root-x86-64, root-arm64, usr-x86-64, home, srv, var, swap, linux-generic, ...) nor a GUID"),
        );
    };
    let content = match (p.image, p.filesystem) {
        (Some(_), Some(_)) => return fail(key, "give image or filesystem, not both"),
        (Some(image), None) => Content::Image(base.join(image)),
        (None, Some(fs)) => Content::Filesystem(Box::new(filesystem(
            &at("filesystem"),
            &type_name,
            fs,
            base,
        )?)),
        (None, None) => Content::Empty,
    };
    let size = partition_size(&key, p.size.as_deref(), [p.min, p.max, p.free])?;
    if size == Size::Grow && !last {
        return fail(at("size"), "only the last partition can grow");
    }
    let verity = verity::role(&key, p.verity.as_deref(), p.verity_match, &content, &size)?;
    let hash = verity.as_ref().is_some_and(|v| v.role == VerityRole::Hash);
    if matches!(size, Size::Auto { .. }) && content == Content::Empty && !hash {
        return fail(at("size"), "an empty partition needs a fixed size");
    }
    Ok(Partition {
        key: key.clone(),
        label,
        type_guid,
        size,
        uuid: p
            .uuid
            .as_deref()
            .map(|s| guid(&at("uuid"), s))
            .transpose()?,
        attributes: attributes(&at("attributes"), &p.attributes)?,
        content,
        verity,
    })
}

/// A partition's size: a number with a unit, `auto` (the default, with
/// optional min, max and free) or `grow`.
fn partition_size(
    key: &str,
    size: Option<&str>,
    bounds: [Option<String>; 3],
) -> Result<Size, ConfigError> {
    let [min, max, free] = bounds;
    let bound = |name: &str, v: Option<String>| {
        v.map(|s| size_value(&format!("{key}.{name}"), &s))
            .transpose()
    };
    let (min, max, free) = (bound("min", min)?, bound("max", max)?, bound("free", free)?);
    let auto_only = min.is_some() || max.is_some() || free.is_some();
    let size = match size.unwrap_or("auto") {
        "auto" => Size::Auto {
            min,
            max,
            free: free.unwrap_or(0),
        },
        "grow" => Size::Grow,
        s => Size::Fixed(size_value(&format!("{key}.size"), s)?),
    };
    if auto_only && !matches!(size, Size::Auto { .. }) {
        return fail(key, "min, max and free go with size = \"auto\"");
    }
    if let (Some(lo), Some(hi)) = (min, max) {
        if lo > hi {
            return fail(
                key,
                format!("min ({lo} bytes) is larger than max ({hi} bytes)"),
            );
        }
    }
    Ok(size)
}

/// A size with a K, M, G or T suffix, more than zero.
fn size_value(key: &str, s: &str) -> Result<u64, ConfigError> {
    match parse_size(s) {
        Err(what) => fail(key, what),
        Ok(0) => fail(key, "a size of zero"),
        Ok(n) => Ok(n),
    }
}

/// A GUID.
fn guid(key: &str, s: &str) -> Result<uuid::Uuid, ConfigError> {
    uuid::Uuid::parse_str(s).or_else(|e| fail(key, format!("{s:?} is not a GUID: {e}")))
}

/// GPT attribute flags from names and bit numbers.
fn attributes(key: &str, values: &[toml::Value]) -> Result<u64, ConfigError> {
    let mut bits = 0u64;
    for v in values {
        let bit = match v {
            toml::Value::Integer(n) if (0..64).contains(n) => *n as u32,
            toml::Value::String(name) => match ATTRIBUTES.iter().find(|(known, _)| known == name) {
                Some(&(_, bit)) => bit,
                None => {
                    let names: Vec<&str> = ATTRIBUTES.iter().map(|(n, _)| *n).collect();
                    return fail(
                        key,
                        format!(
                            "unknown attribute {name:?} (known: {}, or a bit number 0-63)",
                            names.join(", ")
                        ),
                    );
                }
            },
            other => {
                return fail(
                    key,
                    format!("{other} is not an attribute name or a bit number 0-63"),
                )
            }
        };
        bits |= 1 << bit;
    }
    Ok(bits)
}

/// A filesystem partition's keys, checked into its requests (paths made
/// relative to `base`, the options validated).
fn filesystem(
    key: &str,
    type_name: &str,
    fs: RawFilesystem,
    base: &Path,
) -> Result<Filesystem, ConfigError> {
    let at = |field: &str| format!("{key}.{field}");
    if let Some(options) = &fs.options {
        return fail(at("options"), respell(options));
    }
    let default_type = if type_name == "esp" { "vfat" } else { "ext4" };
    let mut req = typed(
        &at("type"),
        values::parse_format(fs.type_.as_deref().unwrap_or(default_type)),
    )?;
    req.label = fs.label.clone().unwrap_or_default();
    match &mut req.format {
        Format::Ext(ext) => ext_keys(&at, ext, &fs)?,
        Format::Fat(fat) => fat_keys(&at, fat, &fs)?,
    }
    let layers: Vec<Layer> = (fs.sources.iter().map(|p| Layer::Source(base.join(p))))
        .chain(
            fs.device_table
                .iter()
                .map(|p| Layer::DeviceTable(base.join(p))),
        )
        .chain(fs.spec.iter().map(|p| Layer::Spec(base.join(p))))
        .chain(fs.spec_line.iter().cloned().map(Layer::SpecLine))
        .collect();
    if layers.is_empty() {
        return fail(
            at("sources"),
            "missing (or give spec, spec_line or device_table)",
        );
    }
    let id_maps = |field: &str, maps: &[String]| -> Result<Vec<IdMap>, ConfigError> {
        maps.iter()
            .map(|m| typed(&at(field), IdMap::parse(m)))
            .collect()
    };
    let tree = TreeRequest {
        layers,
        file_contexts: fs.file_contexts.map(|p| base.join(p)),
        exclude: fs.exclude,
        whiteouts: fs.whiteouts,
        ignore_zeros: fs.ignore_zeros,
        ignore_checksums: fs.ignore_checksums,
        all_root: fs.all_root,
        uid_map: id_maps("uid_map", &fs.uid_map)?,
        gid_map: id_maps("gid_map", &fs.gid_map)?,
        root_owner: optional(&at("root_owner"), fs.root_owner, values::parse_owner)?,
        root_mode: optional(&at("root_mode"), fs.root_mode, values::parse_mode)?,
        timestamp: fs.timestamp,
        source_date_epoch: None,
        fs_time: None,
        live: false,
    };
    // Its size is the partition's: checked here with a placeholder.
    req.size = SizeRequest::Roomy;
    if let Err(e) = req.options(false) {
        return fail(key, e.to_string());
    }
    Ok(Filesystem { tree, fs: req })
}

/// An ext filesystem's own keys.
fn ext_keys(
    at: &dyn Fn(&str) -> String,
    req: &mut ExtRequest,
    keys: &RawFilesystem,
) -> Result<(), ConfigError> {
    req.features = keys.features.clone();
    req.block_size = keys.block_size.unwrap_or(req.block_size);
    req.inode_size = keys.inode_size.unwrap_or(req.inode_size);
    req.inodes = keys.inodes;
    req.bytes_per_inode = keys.bytes_per_inode;
    req.reserved_percent = keys.reserved_percent.unwrap_or(req.reserved_percent);
    req.uuid = optional(&at("uuid"), keys.uuid.clone(), values::parse_uuid)?;
    req.seed = optional(&at("seed"), keys.seed.clone(), values::parse_uuid)?;
    req.hash_alg = optional(
        &at("hash_alg"),
        keys.hash_alg.clone(),
        values::parse_hash_alg,
    )?
    .unwrap_or(req.hash_alg);
    req.journal_size = optional(
        &at("journal_size"),
        keys.journal_size.clone(),
        values::parse_journal_size,
    )?;
    Ok(())
}

/// A FAT filesystem's own keys; ext's are refused by name.
fn fat_keys(
    at: &dyn Fn(&str) -> String,
    req: &mut FatRequest,
    keys: &RawFilesystem,
) -> Result<(), ConfigError> {
    let ext_only = [
        ("features", !keys.features.is_empty()),
        ("inode_size", keys.inode_size.is_some()),
        ("inodes", keys.inodes.is_some()),
        ("bytes_per_inode", keys.bytes_per_inode.is_some()),
        ("reserved_percent", keys.reserved_percent.is_some()),
        ("seed", keys.seed.is_some()),
        ("hash_alg", keys.hash_alg.is_some()),
        ("journal_size", keys.journal_size.is_some()),
    ];
    if let Some((key, _)) = ext_only.iter().find(|(_, given)| *given) {
        return fail(at(key), "an ext key; FAT has no such option");
    }
    req.cluster_size = keys.block_size;
    req.volume_id = optional(&at("uuid"), keys.uuid.clone(), values::parse_volume_id)?;
    Ok(())
}

/// A parsed value, or the error naming `key`.
fn typed<T>(key: &str, value: Result<T, String>) -> Result<T, ConfigError> {
    value.or_else(|what| fail(key, what))
}

/// An optional key's value, parsed.
fn optional<T>(
    key: &str,
    value: Option<String>,
    parse: fn(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    value.map(|v| typed(key, parse(&v))).transpose()
}

/// What a filesystem flag becomes as a key.
#[derive(Clone, Copy)]
enum KeyKind {
    /// `true`.
    Switch,
    /// A string.
    Text,
    /// A number.
    Number,
    /// A list of strings (a repeatable flag).
    Texts,
}

/// The flags an old layout's `options` took: long name, short name, key
/// (the long name with `_` for `-`, but `type`), and kind.
const FLAG_KEYS: [(&str, Option<char>, &str, KeyKind); 25] = [
    ("all-root", None, "all_root", KeyKind::Switch),
    ("whiteouts", None, "whiteouts", KeyKind::Switch),
    ("ignore-zeros", None, "ignore_zeros", KeyKind::Switch),
    ("spec", None, "spec", KeyKind::Texts),
    ("spec-line", Some('p'), "spec_line", KeyKind::Texts),
    ("device-table", None, "device_table", KeyKind::Texts),
    ("file-contexts", None, "file_contexts", KeyKind::Text),
    ("exclude", None, "exclude", KeyKind::Texts),
    ("uid-map", None, "uid_map", KeyKind::Texts),
    ("gid-map", None, "gid_map", KeyKind::Texts),
    ("root-owner", None, "root_owner", KeyKind::Text),
    ("root-mode", None, "root_mode", KeyKind::Text),
    ("timestamp", None, "timestamp", KeyKind::Number),
    ("fs-type", Some('t'), "type", KeyKind::Text),
    ("features", Some('O'), "features", KeyKind::Texts),
    ("block-size", Some('b'), "block_size", KeyKind::Number),
    ("inode-size", Some('I'), "inode_size", KeyKind::Number),
    ("inodes", Some('N'), "inodes", KeyKind::Number),
    (
        "bytes-per-inode",
        Some('i'),
        "bytes_per_inode",
        KeyKind::Number,
    ),
    (
        "reserved-percent",
        Some('m'),
        "reserved_percent",
        KeyKind::Number,
    ),
    ("label", Some('L'), "label", KeyKind::Text),
    ("uuid", Some('U'), "uuid", KeyKind::Text),
    ("seed", None, "seed", KeyKind::Text),
    ("hash-alg", None, "hash_alg", KeyKind::Text),
    ("journal-size", Some('J'), "journal_size", KeyKind::Text),
];

/// The refusal of an old `options` list: what to write instead.
fn respell(options: &[String]) -> String {
    let mut keys: Vec<(&str, KeyKind, Vec<String>)> = Vec::new();
    let mut args = options.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if arg.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        let known = FLAG_KEYS.iter().find(|(long, short, ..)| {
            flag.strip_prefix("--") == Some(long)
                || short
                    .is_some_and(|c| flag.len() == 2 && flag.ends_with(c) && flag.starts_with('-'))
        });
        let Some(&(_, _, key, kind)) = known else {
            return format!(
                "layout files take typed keys, not `kiln build` arguments, and {flag:?} has no key \
                 (see docs/disk-config.md)"
            );
        };
        let value = match kind {
            KeyKind::Switch => "true".to_string(),
            _ => inline.or_else(|| args.next().cloned()).unwrap_or_default(),
        };
        match keys.iter_mut().find(|(k, ..)| *k == key) {
            Some((.., values)) => values.push(value),
            None => keys.push((key, kind, vec![value])),
        }
    }
    let lines: Vec<String> = keys
        .iter()
        .map(|(key, kind, values)| {
            let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
            let value = match kind {
                KeyKind::Switch | KeyKind::Number => values.join(", "),
                KeyKind::Text => quoted.join(", "),
                KeyKind::Texts => format!("[{}]", quoted.join(", ")),
            };
            format!("{key} = {value}")
        })
        .collect();
    format!(
        "layout files take typed keys, not `kiln build` arguments: write {} instead",
        lines.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Layout, ConfigError> {
        Layout::parse(text, Path::new("/cfg"))
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_full_layout() {
        let c = parse(FULL).unwrap();
        assert_eq!(c.table, Table::Gpt);
        assert_eq!(c.size, Some(1 << 30));
        let p = &c.partitions;
        assert_eq!(p[0].size, Size::Fixed(64 << 20));
        assert_eq!(p[0].attributes, 1 | 1 << 60);
        assert_eq!(p[0].content, Content::Image("/cfg/esp.img".into()));
        let Content::Filesystem(fs) = &p[1].content else {
            panic!("partition 2 holds {:?}", p[1].content);
        };
        assert_eq!(
            fs.tree.layers,
            [
                Layer::Source("/cfg/rootfs".into()),
                Layer::Source("/abs/overlay".into()),
                Layer::Spec("/cfg/x.spec".into()),
                Layer::SpecLine("dir /x 0755 0 0".into())
            ]
        );
        assert!(fs.tree.all_root);
        assert_eq!(fs.tree.uid_map, [IdMap::parse("1000:0:1").unwrap()]);
        assert_eq!(fs.tree.root_owner, Some((0, 0)));
        let Format::Ext(ext) = &fs.fs.format else {
            panic!("{:?}", fs.fs.format)
        };
        assert_eq!(ext.fs_type, kiln_ext::FsType::Ext4);
        assert_eq!((fs.fs.label.as_str(), ext.block_size), ("root", 1024));
        assert_eq!(
            p[1].size,
            Size::Auto {
                min: Some(100 << 20),
                max: Some(200 << 20),
                free: 10 << 20
            }
        );
        assert_eq!(p[2].size, Size::Grow);
        assert_eq!(p[2].content, Content::Empty);
        assert_eq!(
            p[1].type_guid.to_string(),
            "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"
        );
    }

    #[test]
    fn errors_name_the_key() {
        let one = |extra: &str| {
            format!(
                "[[partition]]\nlabel = \"root\"\ntype = \"linux-generic\"\nsize = \"8M\"\n{extra}"
            )
        };
        for (text, want) in [
            (one("").replace("8M", "8Q"), "partition[1].size"),
            (one("").replace("linux-generic", "wat"), "partition[1].type"),
            (one("uuid = \"x\""), "partition[1].uuid"),
            (one("attributes = [\"shiny\"]"), "partition[1].attributes"),
            (one("colour = 1"), "colour"),
            (one("").replace("8M", "grow"), "disk.size"),
            (
                format!("[disk]\ntable = \"mbr\"\n{}", one("")),
                "disk.table",
            ),
            (format!("{}{}", one(""), one("")), "labelled \"root\""),
            (
                one("").replace("size = \"8M\"", "max = \"1M\"\nmin = \"2M\""),
                "larger than max",
            ),
            ("[disk]\n".to_string(), "no [[partition]]"),
        ] {
            let e = error(&text);
            assert!(e.contains(want), "{want:?} not in {e:?} for {text}");
        }
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.toml");
        let e = Layout::load(&path).unwrap_err().to_string();
        assert!(e.starts_with(&path.display().to_string()), "{e}");
        std::fs::write(
            &path,
            "[[partition]]\nlabel = \"a\"\ntype = \"home\"\nsize = \"0\"\n",
        )
        .unwrap();
        let e = Layout::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("disk.toml: partition[1].size: a size of zero"),
            "{e}"
        );
        std::fs::write(
            &path,
            "[[partition]]\nlabel = \"a\"\ntype = \"home\"\nsize = \"1M\"\n",
        )
        .unwrap();
        let c = Layout::load(&path).unwrap();
        assert_eq!(c.partitions[0].content, Content::Empty);
    }

    #[test]
    fn old_options_are_refused_with_their_new_spelling() {
        let fs = |keys: &str| {
            error(&format!(
                "[[partition]]\nlabel = \"r\"\ntype = \"home\"\n[partition.filesystem]\nsources = [\"t\"]\n{keys}"
            ))
        };
        assert_eq!(
            fs(
                r#"options = ["--all-root", "-L", "root", "-p", "dir /x 0755 0 0", "--spec=a.spec", "-b", "1024", "-p", "dir /y 0755 0 0"]"#
            ),
            "partition[1].filesystem.options: layout files take typed keys, not `kiln build` \
             arguments: write all_root = true; label = \"root\"; \
             spec_line = [\"dir /x 0755 0 0\", \"dir /y 0755 0 0\"]; spec = [\"a.spec\"]; \
             block_size = 1024 instead"
        );
        assert!(fs(r#"options = ["--force"]"#).contains("\"--force\" has no key"));
    }

    #[test]
    fn filesystem_values_are_checked_before_anything_is_read() {
        let fs = |keys: &str| {
            error(&format!(
                "[[partition]]\nlabel = \"r\"\ntype = \"home\"\n[partition.filesystem]\nsources = [\"t\"]\n{keys}"
            ))
        };
        for (keys, want) in [
            ("block_size = 512", "block size 512"),
            ("type = \"ext5\"", "partition[1].filesystem.type: \"ext5\""),
            ("uid_map = [\"x\"]", "partition[1].filesystem.uid_map"),
            ("root_mode = \"9\"", "partition[1].filesystem.root_mode"),
            ("hash_alg = \"md5\"", "partition[1].filesystem.hash_alg"),
            ("features = [\"^wat\"]", "partition[1].filesystem"),
            ("all_root = \"yes\"", "all_root"),
            ("colour = 1", "colour"),
            (
                "type = \"vfat\"\ninode_size = 128",
                "inode_size: an ext key",
            ),
            (
                "type = \"fat32\"\nuuid = \"12-34\"",
                "uuid: \"12-34\" is not a FAT volume id",
            ),
            ("type = \"vfat\"\nlabel = \"a:b\"", "label \"a:b\""),
            ("type = \"fat16\"\nblock_size = 3000", "cluster size 3000"),
        ] {
            let e = fs(keys);
            assert!(e.contains(want), "{want:?} not in {e:?} for {keys}");
        }
    }

    #[test]
    fn an_esp_with_sources_is_fat_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.toml");
        let text = |fs_keys: &str| {
            format!(
                "[[partition]]\nlabel = \"esp\"\ntype = \"esp\"\n[partition.filesystem]\n\
                 sources = [\"esp\"]\n{fs_keys}\n\
                 [[partition]]\nlabel = \"root\"\ntype = \"root-x86-64\"\n\
                 [partition.filesystem]\nsources = [\"root\"]\n"
            )
        };
        let formats = |fs_keys: &str| {
            std::fs::write(&path, text(fs_keys)).unwrap();
            Layout::load(&path)
                .unwrap()
                .partitions
                .iter()
                .map(|p| match &p.content {
                    Content::Filesystem(fs) => fs.fs.format.clone(),
                    other => panic!("{other:?}"),
                })
                .collect::<Vec<_>>()
        };
        let fat = |variant, volume_id, cluster_size| {
            Format::Fat(FatRequest {
                variant,
                cluster_size,
                volume_id,
            })
        };
        let ext4 = Format::Ext(ExtRequest::new(kiln_ext::FsType::Ext4));
        assert_eq!(formats(""), [fat(None, None, None), ext4.clone()]);
        assert_eq!(
            formats("type = \"fat16\"\nuuid = \"1234-abcd\"\nblock_size = 2048"),
            [
                fat(
                    Some(kiln_fat::FatVariant::Fat16),
                    Some(0x1234_abcd),
                    Some(2048)
                ),
                ext4.clone()
            ]
        );
        assert_eq!(formats("type = \"ext4\""), [ext4.clone(), ext4]);
    }

    /// A layout using every key: `a_full_layout` checks what each becomes,
    /// `no_text_panics` mutates it.
    const FULL: &str = r#"
[disk]
table = "gpt"
size = "1G"
uuid = "11111111-2222-3333-4444-555555555555"
[[partition]]
label = "esp"
type = "esp"
size = "64M"
image = "esp.img"
attributes = ["required", 60]
[[partition]]
label = "root"
type = "root-x86-64"
min = "100M"
max = "200M"
free = "10M"
[partition.filesystem]
type = "ext4"
sources = ["rootfs", "/abs/overlay"]
all_root = true
spec = ["x.spec"]
spec_line = ["dir /x 0755 0 0"]
uid_map = ["1000:0:1"]
root_owner = "0:0"
block_size = 1024
label = "root"
[[partition]]
label = "home"
type = "home"
size = "grow"
"#;

    proptest::proptest! {
        /// The normal run's sample of the `disk_config` fuzz target: no
        /// text, random or a mutation of a full layout, panics.
        #[test]
        fn no_text_panics(
            text in "\\PC{0,300}",
            edits in proptest::collection::vec((0usize..2000, proptest::char::any()), 0..8),
        ) {
            let _ = parse(&text);
            let mut chars: Vec<char> = FULL.chars().collect();
            for (at, c) in edits {
                let i = at % chars.len();
                chars[i] = c;
            }
            let _ = parse(&chars.into_iter().collect::<String>());
        }
    }
}
