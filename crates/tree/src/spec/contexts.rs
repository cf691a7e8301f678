//! SELinux `file_contexts`: security labels for image paths, set as
//! `setfiles` sets them.
//!
//! Each line is `REGEX [TYPE] CONTEXT`: the regex is matched against the
//! whole image path (libselinux compiles `^REGEX$`, with `.` matching any
//! byte), TYPE (`--` file, `-d`, `-l`, `-c`, `-b`, `-p`, `-s`) limits the
//! line to one kind of node, and CONTEXT `<<none>>` means no label. The last
//! matching line wins, where libselinux first moves the lines without regex
//! meta characters to the end (so an exact path beats any pattern).

use std::path::Path;

use kiln_host::HostFileType;
use regex::bytes::{Regex, RegexBuilder};

use super::apply::walk;
use super::{fields, file_type, numbered_lines, set_xattr, LineError};
use crate::model::{NodeId, Xattr};
use crate::{Tree, TreeError};

/// The xattr that holds a node's SELinux label.
const XATTR_NAME: &[u8] = b"security.selinux";
/// The characters libselinux takes as regex meta characters: a line with
/// none of them (after `\` escapes) names one exact path.
const META: &str = ".^$?*+|[({";

/// Parsed SELinux file_contexts; [`FileContexts::apply`] labels a tree.
#[derive(Clone, Debug)]
pub struct FileContexts {
    /// In the order libselinux tries them backwards: regex lines as written,
    /// then exact lines as written.
    lines: Vec<ContextLine>,
}

/// One line of a file_contexts file.
#[derive(Clone, Debug)]
struct ContextLine {
    regex: Regex,
    /// Text every match starts with, checked before the regex because it
    /// is cheap and rules out most lines.
    prefix: Vec<u8>,
    /// The kind of node the line is for, if limited.
    kind: Option<HostFileType>,
    /// The `security.selinux` value (the context and a NUL), `None` for
    /// `<<none>>`.
    label: Option<Vec<u8>>,
}

/// The node type a file_contexts type field names (`--` is a regular file).
fn parse_type(text: &str) -> Option<HostFileType> {
    Some(match text {
        "--" => HostFileType::File,
        "-d" => HostFileType::Dir,
        "-l" => HostFileType::Symlink,
        "-c" => HostFileType::CharDevice,
        "-b" => HostFileType::BlockDevice,
        "-p" => HostFileType::Fifo,
        "-s" => HostFileType::Socket,
        _ => return None,
    })
}

/// SELinux file_contexts (`--file-contexts`): regex, optional file type and
/// context per line; errors carry file, line and column.
pub fn parse_file_contexts(text: &str, origin: &Path) -> Result<FileContexts, TreeError> {
    let mut regex_lines = Vec::new();
    let mut exact_lines = Vec::new();
    for (line, content) in numbered_lines(text) {
        let fields = fields(content);
        match fields.first() {
            None => continue,
            Some((_, first)) if first.starts_with('#') => continue,
            Some(_) => {}
        }
        let (parsed, exact) = parse_line(&fields).map_err(|e| e.at(origin, line))?;
        if exact {
            exact_lines.push(parsed);
        } else {
            regex_lines.push(parsed);
        }
    }
    regex_lines.append(&mut exact_lines);
    Ok(FileContexts { lines: regex_lines })
}

/// Parses `REGEX [TYPE] CONTEXT`; tells whether the regex is an exact path.
fn parse_line(fields: &[(usize, &str)]) -> Result<(ContextLine, bool), LineError> {
    let (regex_field, kind_field, context_field) = match fields {
        [r, c] => (r, None, c),
        [r, k, c] => (r, Some(k), c),
        [(column, _)] => return Err(LineError::new(*column, "missing context")),
        _ => {
            let column = fields.get(3).map_or(1, |f| f.0);
            return Err(LineError::new(
                column,
                "too many fields (REGEX [TYPE] CONTEXT)",
            ));
        }
    };
    let (column, pattern) = *regex_field;
    let regex = RegexBuilder::new(&format!("^{pattern}$"))
        .unicode(false)
        .dot_matches_new_line(true)
        .build()
        .map_err(|e| LineError::new(column, regex_error(&e)))?;
    let kind = match kind_field {
        Some(&(column, text)) => Some(parse_type(text).ok_or_else(|| {
            LineError::new(
                column,
                format!("unknown file type `{text}` (--, -d, -l, -c, -b, -p or -s)"),
            )
        })?),
        None => None,
    };
    let label = match context_field.1 {
        "<<none>>" => None,
        context => Some([context.as_bytes(), b"\0"].concat()),
    };
    let line = ContextLine {
        regex,
        prefix: literal_prefix(pattern).into_bytes(),
        kind,
        label,
    };
    Ok((line, is_exact(pattern)))
}

/// The regex crate's message on one line.
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    format!("bad regex: {}", lines.join(" "))
}

/// Whether `pattern` has no meta characters, as libselinux decides it.
fn is_exact(pattern: &str) -> bool {
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            chars.next();
        } else if META.contains(c) {
            return false;
        }
    }
    true
}

/// The literal text every match of `^pattern$` starts with: the characters
/// before the first meta character or escape, less the last one if a `?`,
/// `*` or `{` may repeat it away. An alternation anywhere may start
/// elsewhere, so it leaves no prefix.
fn literal_prefix(pattern: &str) -> String {
    if pattern.contains('|') {
        return String::new();
    }
    let mut prefix = String::new();
    for c in pattern.chars() {
        if c == '\\' || META.contains(c) {
            if matches!(c, '?' | '*' | '{') {
                prefix.pop();
            }
            break;
        }
        prefix.push(c);
    }
    prefix
}

impl FileContexts {
    /// Sets `security.selinux` on every node whose path the file_contexts
    /// label (the last matching line wins); nodes that match nothing, or
    /// match `<<none>>`, keep what they have. A hard-linked node takes the
    /// label of the path the walk reaches last.
    pub fn apply(&self, tree: &mut Tree) {
        let mut labels: Vec<(NodeId, &[u8])> = Vec::new();
        walk(tree, Tree::ROOT, Vec::new(), None, |components, id| {
            let path = image_path(components);
            let kind = file_type(&tree.node(id).body);
            if let Some(label) = self.label(&path, kind) {
                labels.push((id, label));
            }
        });
        for (id, label) in labels {
            let xattr = Xattr {
                name: XATTR_NAME.to_vec(),
                value: label.to_vec(),
            };
            tree.node_mut(id)
                .meta
                .edit_xattrs(|xattrs| set_xattr(xattrs, xattr));
        }
    }

    /// The label of the last line matching `path` and `kind`.
    fn label(&self, path: &[u8], kind: HostFileType) -> Option<&[u8]> {
        self.lines
            .iter()
            .rev()
            .find(|l| {
                l.kind.is_none_or(|k| k == kind)
                    && path.starts_with(&l.prefix)
                    && l.regex.is_match(path)
            })
            .and_then(|l| l.label.as_deref())
    }
}

/// `/` and the components joined by `/`.
fn image_path(components: &[Vec<u8>]) -> Vec<u8> {
    if components.is_empty() {
        return b"/".to_vec();
    }
    let mut path = Vec::new();
    for c in components {
        path.push(b'/');
        path.extend_from_slice(c);
    }
    path
}
