//! The disk layout file of `kiln build --config disk.toml`: a partition
//! table and the partitions in order, each with what fills it. See
//! `docs/disk-config.md` for the format.
//!
//! Parsing checks everything that can be checked without reading sources:
//! sizes, types, labels, attributes, which contents each partition has.
//! Every error names the key (`partition[2].size`); [`Config::load`] adds
//! the file.

use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::size::parse_size;

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
}

/// `[partition.filesystem]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilesystem {
    #[serde(rename = "type")]
    type_: Option<String>,
    #[serde(default)]
    sources: Vec<PathBuf>,
    #[serde(default)]
    options: Vec<String>,
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// Nothing (zeros).
    Empty,
    /// A raw image file, copied in.
    Image(PathBuf),
    /// An ext2/3/4 filesystem built from sources: the arguments of `kiln
    /// build` (sources, `-t TYPE`, then the options), paths absolute.
    Filesystem(Vec<String>),
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
}

/// A checked disk layout file.
#[derive(Clone, Debug)]
pub struct Config {
    /// The partition table.
    pub table: Table,
    /// A fixed disk size, if given.
    pub size: Option<u64>,
    /// The disk GUID, if given.
    pub uuid: Option<uuid::Uuid>,
    /// The partitions in disk order (at least one).
    pub partitions: Vec<Partition>,
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

impl Config {
    /// Reads and checks the file at `path`; relative paths in it are
    /// relative to its directory. Errors name the file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base).map_err(|e| ConfigError::In {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    /// Parses and checks `text`, resolving relative paths against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
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
        if let Some(w) = labels.windows(2).find(|w| w[0] == w[1]) {
            return layout_fail(format!(
                "two partitions are labelled {:?}: labels pick partitions, so they must differ",
                w[0]
            ));
        }
        if partitions.iter().any(|p| p.size == Size::Grow) && size.is_none() {
            return layout_fail("size = \"grow\" fills a fixed disk: set disk.size");
        }
        Ok(Config {
            table,
            size,
            uuid,
            partitions,
        })
    }
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
    let type_guid = match kiln_disk::type_guid(&type_name) {
        Some(g) => guid(&at("type"), g)?,
        None => match uuid::Uuid::parse_str(&type_name) {
            Ok(g) => g,
            Err(_) => return fail(
                at("type"),
                format!("{type_name:?} is neither a known type (esp, root-x86-64, root-arm64, usr-x86-64, home, srv, var, swap, linux-generic, ...) nor a GUID"),
            ),
        },
    };
    let content = match (p.image, p.filesystem) {
        (Some(_), Some(_)) => return fail(key, "give image or filesystem, not both"),
        (Some(image), None) => Content::Image(base.join(image)),
        (None, Some(fs)) => Content::Filesystem(build_args(&at("filesystem"), fs, base)?),
        (None, None) => Content::Empty,
    };
    let size = partition_size(&key, p.size.as_deref(), [p.min, p.max, p.free])?;
    if size == Size::Grow && !last {
        return fail(at("size"), "only the last partition can grow");
    }
    if matches!(size, Size::Auto { .. }) && content == Content::Empty {
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

/// The `kiln build` arguments of a filesystem partition: its sources made
/// absolute, `-t TYPE`, then its options (paths after --spec and the like
/// are made absolute too).
fn build_args(key: &str, fs: RawFilesystem, base: &Path) -> Result<Vec<String>, ConfigError> {
    let fs_type = fs.type_.unwrap_or_else(|| "ext4".to_string());
    if fs.sources.is_empty() && !fs.options.iter().any(|o| is_path_flag(o)) {
        return fail(
            format!("{key}.sources"),
            "missing (or give --spec, -p or --device-table in options)",
        );
    }
    let path = |p: &Path| -> Result<String, ConfigError> {
        base.join(p)
            .into_os_string()
            .into_string()
            .or_else(|p| fail(key, format!("{p:?} is not UTF-8")))
    };
    let mut args = fs
        .sources
        .iter()
        .map(|s| path(s))
        .collect::<Result<Vec<_>, _>>()?;
    args.extend(["-t".to_string(), fs_type]);
    let mut options = fs.options.into_iter();
    while let Some(option) = options.next() {
        let takes_path = is_path_flag(&option) && option != "-p" && option != "--spec-line";
        if takes_path {
            let Some(value) = options.next() else {
                return fail(format!("{key}.options"), format!("{option} needs a value"));
            };
            args.push(option);
            args.push(path(Path::new(&value))?);
        } else {
            args.push(option);
        }
    }
    Ok(args)
}

/// Options that add layers (and, but for -p, name a file).
fn is_path_flag(option: &str) -> bool {
    matches!(
        option,
        "--spec" | "--device-table" | "--file-contexts" | "-p" | "--spec-line"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/cfg"))
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_full_layout() {
        let c = parse(
            r#"
            [disk]
            size = "1G"
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
            free = "10M"
            uuid = "11111111-2222-3333-4444-555555555555"
            [partition.filesystem]
            sources = ["rootfs", "/abs/overlay"]
            options = ["--all-root", "--spec", "extra.spec"]
            [[partition]]
            label = "home"
            type = "home"
            size = "grow"
            "#,
        )
        .unwrap();
        assert_eq!(c.table, Table::Gpt);
        assert_eq!(c.size, Some(1 << 30));
        let p = &c.partitions;
        assert_eq!(p[0].size, Size::Fixed(64 << 20));
        assert_eq!(p[0].attributes, 1 | 1 << 60);
        assert_eq!(p[0].content, Content::Image("/cfg/esp.img".into()));
        assert_eq!(
            p[1].content,
            Content::Filesystem(
                [
                    "/cfg/rootfs",
                    "/abs/overlay",
                    "-t",
                    "ext4",
                    "--all-root",
                    "--spec",
                    "/cfg/extra.spec"
                ]
                .map(String::from)
                .to_vec()
            )
        );
        assert_eq!(
            p[1].size,
            Size::Auto {
                min: Some(100 << 20),
                max: None,
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
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(e.starts_with(&path.display().to_string()), "{e}");
        std::fs::write(
            &path,
            "[[partition]]\nlabel = \"a\"\ntype = \"home\"\nsize = \"0\"\n",
        )
        .unwrap();
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("disk.toml: partition[1].size: a size of zero"),
            "{e}"
        );
        std::fs::write(
            &path,
            "[[partition]]\nlabel = \"a\"\ntype = \"home\"\nsize = \"1M\"\n",
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.partitions[0].content, Content::Empty);
    }

    #[test]
    fn options_needing_a_value() {
        let e = error(
            "[[partition]]\nlabel = \"r\"\ntype = \"home\"\n[partition.filesystem]\noptions = [\"--spec\"]\n",
        );
        assert_eq!(e, "partition[1].filesystem.options: --spec needs a value");
    }

    /// A layout using every key, for the mutation property.
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
sources = ["rootfs"]
options = ["--all-root", "--spec", "x.spec", "-p", "dir /x 0755 0 0"]
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
