//! mke2fs.conf: its profile format (`[stanza]`, `tag = value`,
//! `tag = { ... }` subsections, `#`/`;` comments) and mke2fs's way of
//! looking a relation up through the list of filesystem and usage types.
//!
//! The parser takes untrusted text: the file is bounded in size and
//! nesting, every error names its line, and nothing panics.

use std::path::{Path, PathBuf};

/// The largest mke2fs.conf read, in bytes.
pub const MAX_CONF_BYTES: usize = 1 << 20;
/// The deepest nesting of `{ ... }` subsections below a stanza.
pub const MAX_DEPTH: usize = 8;

/// The file `MKE2FS_CONFIG` names when unset.
pub const SYSTEM_CONF: &str = "/etc/mke2fs.conf";

/// The profile mke2fs uses when no file is found: the values of
/// e2fsprogs 1.47's shipped mke2fs.conf.
pub const BUILTIN_CONF: &str = "\
[defaults]
    base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
    default_mntopts = acl,user_xattr
    enable_periodic_fsck = 0
    blocksize = 4096
    inode_size = 256
    inode_ratio = 16384

[fs_types]
    ext3 = {
        features = has_journal
    }
    ext4 = {
        features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
    }
    small = {
        blocksize = 1024
        inode_ratio = 4096
    }
    floppy = {
        blocksize = 1024
        inode_ratio = 8192
    }
    big = {
        inode_ratio = 32768
    }
    huge = {
        inode_ratio = 65536
    }
    news = {
        inode_ratio = 4096
    }
    largefile = {
        inode_ratio = 1048576
        blocksize = -1
    }
    largefile4 = {
        inode_ratio = 4194304
        blocksize = -1
    }
    hurd = {
        blocksize = 4096
        inode_size = 128
        warn_y2038_dates = 0
    }
";

/// Why a profile could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfError {
    /// A line the format does not allow.
    #[error("line {line}: {why}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        why: String,
    },
    /// The text is larger than [`MAX_CONF_BYTES`].
    #[error("{bytes} bytes: a mke2fs.conf is at most {MAX_CONF_BYTES} bytes")]
    TooLarge {
        /// The text's size.
        bytes: usize,
    },
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Io(String),
}

/// One relation's value: a string, or a subsection of relations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// `tag = value`.
    Value(String),
    /// `tag = { ... }`.
    Section(Vec<(String, Node)>),
}

/// A parsed profile: its stanzas in file order (a stanza named twice
/// keeps both parts, looked up in order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    stanzas: Vec<(String, Vec<(String, Node)>)>,
}

/// Where a profile came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfSource {
    /// A file (from `MKE2FS_CONFIG`, or /etc/mke2fs.conf).
    File(PathBuf),
    /// [`BUILTIN_CONF`].
    Builtin,
}

impl std::fmt::Display for ConfSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfSource::File(p) => write!(f, "{}", p.display()),
            ConfSource::Builtin => f.write_str("built-in mke2fs.conf"),
        }
    }
}

/// The profile mke2fs would read: the file `mke2fs_config` names (the
/// value of `MKE2FS_CONFIG`) if given, else [`SYSTEM_CONF`]; where that
/// file does not exist, [`BUILTIN_CONF`], as mke2fs falls back to its own.
pub fn load(
    mke2fs_config: Option<&Path>,
) -> Result<(Profile, ConfSource), (ConfSource, ConfError)> {
    let path = mke2fs_config.unwrap_or(Path::new(SYSTEM_CONF));
    if !path.exists() {
        return Ok((builtin(), ConfSource::Builtin));
    }
    let path = path.to_path_buf();
    let source = ConfSource::File(path.clone());
    let text = read_bounded(&path).map_err(|e| (source.clone(), e))?;
    Profile::parse(&text)
        .map(|p| (p, source.clone()))
        .map_err(|e| (source, e))
}

/// [`BUILTIN_CONF`], parsed.
pub fn builtin() -> Profile {
    // OK to expect: a constant, parsed by a unit test.
    Profile::parse(BUILTIN_CONF).expect("the built-in profile parses")
}

/// Reads at most [`MAX_CONF_BYTES`] (and one more to tell it is larger).
fn read_bounded(path: &Path) -> Result<String, ConfError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| ConfError::Io(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_CONF_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ConfError::Io(e.to_string()))?;
    if bytes.len() > MAX_CONF_BYTES {
        return Err(ConfError::TooLarge { bytes: bytes.len() });
    }
    String::from_utf8(bytes).map_err(|_| ConfError::Io("not UTF-8 text".into()))
}

/// The relations of a stanza or subsection, in file order.
type Relations = Vec<(String, Node)>;

/// The parser's state: the stanza being filled and the open subsections.
struct Parser {
    profile: Profile,
    /// Open `{` subsections: their tag, relations so far and opening line.
    open: Vec<(String, Relations, usize)>,
}

impl Parser {
    /// The relation list new relations go into.
    fn target(&mut self, line: usize) -> Result<&mut Vec<(String, Node)>, ConfError> {
        if let Some((_, relations, _)) = self.open.last_mut() {
            return Ok(relations);
        }
        match self.profile.stanzas.last_mut() {
            Some((_, relations)) => Ok(relations),
            None => Err(syntax(line, "a relation before any [stanza]")),
        }
    }

    fn line(&mut self, n: usize, raw: &str) -> Result<(), ConfError> {
        let text = raw.trim();
        if text.is_empty() || text.starts_with('#') || text.starts_with(';') {
            return Ok(());
        }
        if let Some(rest) = text.strip_prefix('[') {
            return self.stanza(n, rest);
        }
        if let Some(rest) = text.strip_prefix('}') {
            return self.close(n, rest);
        }
        self.relation(n, text)
    }

    fn stanza(&mut self, n: usize, rest: &str) -> Result<(), ConfError> {
        if let Some((tag, _, opened)) = self.open.last() {
            return Err(syntax(
                n,
                &format!("a [stanza] inside the subsection {tag:?} opened on line {opened}"),
            ));
        }
        let name = rest
            .strip_suffix(']')
            .or_else(|| rest.split_once(']').map(|(name, _)| name))
            .ok_or_else(|| syntax(n, "a [stanza] header without its closing ]"))?;
        if name.is_empty() {
            return Err(syntax(n, "an empty [stanza] name"));
        }
        self.profile.stanzas.push((name.to_string(), Vec::new()));
        Ok(())
    }

    fn close(&mut self, n: usize, rest: &str) -> Result<(), ConfError> {
        // `}*` marks a final subsection in the profile format.
        if !matches!(rest.trim(), "" | "*") {
            return Err(syntax(n, "text after a closing }"));
        }
        let (tag, relations, _) = self
            .open
            .pop()
            .ok_or_else(|| syntax(n, "a } with no subsection open"))?;
        self.target(n)?.push((tag, Node::Section(relations)));
        Ok(())
    }

    fn relation(&mut self, n: usize, text: &str) -> Result<(), ConfError> {
        let (tag, value) = text
            .split_once('=')
            .ok_or_else(|| syntax(n, "expected `tag = value`, `tag = {`, `}` or `[stanza]`"))?;
        let tag = unquote(n, tag.trim())?;
        if tag.is_empty() {
            return Err(syntax(n, "a relation without a tag"));
        }
        let value = value.trim();
        self.target(n)?;
        if value == "{" {
            if self.open.len() >= MAX_DEPTH {
                return Err(syntax(
                    n,
                    &format!("subsections nested deeper than {MAX_DEPTH}"),
                ));
            }
            self.open.push((tag, Vec::new(), n));
            return Ok(());
        }
        let value = unquote(n, value)?;
        self.target(n)?.push((tag, Node::Value(value)));
        Ok(())
    }
}

fn syntax(line: usize, why: &str) -> ConfError {
    ConfError::Syntax {
        line,
        why: why.to_string(),
    }
}

/// A tag or value: as written, or between double quotes with `\n`, `\t`,
/// `\b` and `\\` escapes.
fn unquote(line: usize, s: &str) -> Result<String, ConfError> {
    let Some(inner) = s.strip_prefix('"') else {
        return Ok(s.to_string());
    };
    let inner = inner
        .strip_suffix('"')
        .ok_or_else(|| syntax(line, "a quoted string without its closing \""))?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('b') => out.push('\u{8}'),
            Some(other) => out.push(other),
            None => return Err(syntax(line, "a quoted string ending in a lone \\")),
        }
    }
    Ok(out)
}

impl Profile {
    /// Parses profile text; errors name the line.
    pub fn parse(text: &str) -> Result<Profile, ConfError> {
        if text.len() > MAX_CONF_BYTES {
            return Err(ConfError::TooLarge { bytes: text.len() });
        }
        let mut parser = Parser {
            profile: Profile::default(),
            open: Vec::new(),
        };
        for (i, raw) in text.lines().enumerate() {
            parser.line(i + 1, raw)?;
        }
        if let Some((tag, _, opened)) = parser.open.last() {
            return Err(syntax(
                *opened,
                &format!("the subsection {tag:?} is never closed"),
            ));
        }
        Ok(parser.profile)
    }

    /// The relations of every part of `stanza`, in file order.
    fn stanza<'a: 's, 's>(
        &'a self,
        stanza: &'s str,
    ) -> impl Iterator<Item = &'a (String, Node)> + 's {
        self.stanzas
            .iter()
            .filter(move |(name, _)| name == stanza)
            .flat_map(|(_, relations)| relations)
    }

    /// The first value of `tag` in `[stanza]`.
    pub fn get(&self, stanza: &str, tag: &str) -> Option<&str> {
        self.stanza(stanza).find_map(|(t, node)| match node {
            Node::Value(v) if t == tag => Some(v.as_str()),
            _ => None,
        })
    }

    /// The first value of `tag` in the subsection `sub` of `[stanza]`.
    pub fn get_in(&self, stanza: &str, sub: &str, tag: &str) -> Option<&str> {
        self.stanza(stanza).find_map(|(t, node)| match node {
            Node::Section(relations) if t == sub => relations.iter().find_map(|(t, n)| match n {
                Node::Value(v) if t == tag => Some(v.as_str()),
                _ => None,
            }),
            _ => None,
        })
    }

    /// Whether `[fs_types]` has a subsection `name`.
    pub fn has_fs_type(&self, name: &str) -> bool {
        self.stanza("fs_types")
            .any(|(t, node)| t == name && matches!(node, Node::Section(_)))
    }

    /// A relation as mke2fs looks it up for the list `types` (the
    /// filesystem type, then the usage types): from the last type whose
    /// `[fs_types]` subsection has it, else from `[defaults]`.
    pub fn lookup(&self, types: &[String], tag: &str) -> Option<&str> {
        types
            .iter()
            .rev()
            .find_map(|ty| self.get_in("fs_types", ty, tag))
            .or_else(|| self.get("defaults", tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn types(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn builtin_profile_has_mke2fs_values() {
        let p = builtin();
        assert_eq!(p.get("defaults", "blocksize"), Some("4096"));
        assert_eq!(p.get_in("fs_types", "small", "inode_ratio"), Some("4096"));
        assert_eq!(
            p.lookup(&types(&["ext4", "small"]), "blocksize"),
            Some("1024")
        );
        assert_eq!(p.lookup(&types(&["ext4"]), "blocksize"), Some("4096"));
        assert_eq!(
            p.lookup(&types(&["ext4", "largefile"]), "blocksize"),
            Some("-1")
        );
        assert!(p.has_fs_type("ext3") && !p.has_fs_type("ext5"));
    }

    #[test]
    fn installed_file_matches_builtin_values() {
        let Ok(text) = std::fs::read_to_string(SYSTEM_CONF) else {
            crate::test_tools::missing("/etc/mke2fs.conf");
            return;
        };
        let installed = Profile::parse(&text).unwrap();
        let builtin = builtin();
        for ty in [
            "ext3",
            "ext4",
            "small",
            "floppy",
            "big",
            "huge",
            "news",
            "largefile",
        ] {
            for tag in ["features", "blocksize", "inode_ratio", "inode_size"] {
                let t = types(&[ty]);
                assert_eq!(
                    installed.lookup(&t, tag),
                    builtin.lookup(&t, tag),
                    "{ty}.{tag}"
                );
            }
        }
    }

    #[test]
    fn later_types_override_and_quotes_unescape() {
        let p = Profile::parse(
            "; comment\n[defaults]\n  hash_alg = tea\n[fs_types]\n a = {\n  x = 1\n }\n b = {\n  x = 2\n }*\n\
             [options]\n \"spaced tag\" = \"a\\tb\\\\\"\n",
        )
        .unwrap();
        assert_eq!(p.lookup(&types(&["a", "b"]), "x"), Some("2"));
        assert_eq!(p.lookup(&types(&["b", "a"]), "x"), Some("1"));
        assert_eq!(p.lookup(&types(&["a"]), "hash_alg"), Some("tea"));
        assert_eq!(p.get("options", "spaced tag"), Some("a\tb\\"));
    }

    #[test]
    fn malformed_input_names_the_line() {
        let cases = [
            ("x = 1\n", 1, "before any [stanza]"),
            ("[a]\n\nnonsense\n", 3, "expected `tag = value`"),
            ("[a]\n t = {\n u = 1\n", 2, "never closed"),
            ("[a]\n}\n", 2, "no subsection open"),
            ("[a\n", 1, "closing ]"),
            ("[a]\n t = \"open\n", 2, "closing \""),
            ("[a]\n t = {\n [b]\n", 3, "inside the subsection"),
            ("[a]\n = 3\n", 2, "without a tag"),
        ];
        for (text, line, why) in cases {
            match Profile::parse(text) {
                Err(ConfError::Syntax { line: l, why: w }) => {
                    assert_eq!(l, line, "{text:?}: {w}");
                    assert!(w.contains(why), "{text:?}: {w:?} should say {why:?}");
                }
                other => panic!("{text:?} parsed as {other:?}"),
            }
        }
    }

    #[test]
    fn nesting_and_size_are_bounded() {
        let deep = format!("[a]\n{}", "t = {\n".repeat(MAX_DEPTH + 1));
        let err = Profile::parse(&deep).unwrap_err().to_string();
        assert!(err.contains(&format!("line {}", MAX_DEPTH + 2)), "{err}");
        let big = "#".repeat(MAX_CONF_BYTES + 1);
        assert!(matches!(
            Profile::parse(&big),
            Err(ConfError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_named_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.conf");
        std::fs::write(&path, "[defaults]\n blocksize = 2048\n").unwrap();
        let (p, source) = load(Some(&path)).unwrap();
        assert_eq!(p.get("defaults", "blocksize"), Some("2048"));
        assert_eq!(source, ConfSource::File(path.clone()));
        std::fs::write(&path, "[defaults\n").unwrap();
        let (_, err) = load(Some(&path)).unwrap_err();
        assert!(err.to_string().starts_with("line 1:"), "{err}");
        // A file that is not there gives the built-in profile, as in mke2fs.
        let (_, source) = load(Some(&dir.path().join("absent"))).unwrap();
        assert_eq!(source, ConfSource::Builtin);
    }

    proptest::proptest! {
        #[test]
        fn random_text_never_panics(text in "(\\PC|[\\[\\]{}=\"\\\\#;\n ]){0,400}") {
            let _ = Profile::parse(&text);
        }
    }
}
