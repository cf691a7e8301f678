//! The spec line grammar: one entry per line, positional words then options.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::lex::{self, Token};
use super::{
    caps, numbered_lines, parse_mode, parse_u32, show, time, type_name, Attrs, Change, Entry, Glob,
    ImagePath, LineError, NewBody, Op, Owner, Spec, XattrEdit,
};
use crate::model::DosAttributes;
use crate::model::Xattr;
use crate::TreeError;

/// The longest xattr name the Linux VFS takes (`XATTR_NAME_MAX`).
const XATTR_NAME_MAX: usize = 255;
/// The largest xattr value the Linux VFS takes (`XATTR_SIZE_MAX`).
const XATTR_SIZE_MAX: usize = 65_536;

/// Parses a whole spec.
pub(super) fn parse_spec(text: &str, origin: &Path) -> Result<Spec, TreeError> {
    let mut entries = Vec::new();
    let mut made = Made::default();
    for (line, content) in numbered_lines(text) {
        let tokens = lex::tokens(content).map_err(|e| e.at(origin, line))?;
        if tokens.is_empty() {
            continue;
        }
        let end = content.chars().count() + 1;
        let op = parse_line(&tokens, end).map_err(|e| e.at(origin, line))?;
        made.record(&op, line).map_err(|what| {
            let path_column = tokens.get(1).map_or(1, |t| t.column);
            LineError::new(path_column, what).at(origin, line)
        })?;
        entries.push(Entry { line, op });
    }
    Ok(Spec {
        origin: origin.to_path_buf(),
        entries,
    })
}

/// The words of a line, taken from the front.
struct Words<'a> {
    tokens: &'a [Token],
    /// The column just past the line, where a missing word is reported.
    end: usize,
}

impl<'a> Words<'a> {
    /// The next word, or an error that `what` is missing.
    fn take(&mut self, what: &str) -> Result<&'a Token, LineError> {
        let (first, rest) = self
            .tokens
            .split_first()
            .ok_or_else(|| LineError::new(self.end, format!("missing {what}")))?;
        self.tokens = rest;
        Ok(first)
    }
}

/// Parses the words of one line.
fn parse_line(tokens: &[Token], end: usize) -> Result<Op, LineError> {
    let mut words = Words { tokens, end };
    let verb = words.take("entry kind")?;
    let (optional, name) = match verb.bytes.strip_prefix(b"?") {
        Some(name) => (true, name),
        None => (false, verb.bytes.as_slice()),
    };
    let modify = match name {
        b"chmod" => Some("chmod"),
        b"chown" => Some("chown"),
        b"set" => Some("set"),
        b"attr" => Some("attr"),
        _ => None,
    };
    if let Some(verb) = modify {
        return modify_line(verb, optional, &mut words);
    }
    if optional {
        return Err(LineError::new(
            verb.column,
            "only chmod, chown, set and attr lines can be optional (`?`)",
        ));
    }
    match name {
        b"link" => link_line(&mut words),
        _ => create_line(verb, &mut words),
    }
}

/// `KIND PATH MODE UID GID [ARGS] [OPTIONS]`.
fn create_line(verb: &Token, words: &mut Words<'_>) -> Result<Op, LineError> {
    let kind = verb.bytes.as_slice();
    if !matches!(
        kind,
        b"dir" | b"file" | b"symlink" | b"char" | b"block" | b"fifo" | b"socket"
    ) {
        return Err(LineError::new(
            verb.column,
            format!(
                "unknown entry kind `{}` (dir, file, symlink, link, char, block, fifo, socket, \
                 chmod, chown, set, attr)",
                show(kind)
            ),
        ));
    }
    let path_word = words.take("path")?;
    let path = image_path(path_word)?;
    let perm = mode(words.take("mode")?)?;
    let uid = id(words.take("uid")?, "uid")?;
    let gid = id(words.take("gid")?, "gid")?;
    let body = match kind {
        b"dir" => NewBody::Dir,
        b"file" => file_body(words)?,
        b"symlink" => symlink_target(words.take("symlink target")?)?,
        b"char" => NewBody::CharDevice(
            device_number(words, "major")?,
            device_number(words, "minor")?,
        ),
        b"block" => NewBody::BlockDevice(
            device_number(words, "major")?,
            device_number(words, "minor")?,
        ),
        b"fifo" => NewBody::Fifo,
        // The only kind left after the check above.
        _ => NewBody::Socket,
    };
    if path.0.is_empty() && !matches!(body, NewBody::Dir) {
        return Err(LineError::new(
            path_word.column,
            "the root `/` can only be a directory",
        ));
    }
    Ok(Op::Create {
        path,
        body,
        owner: Owner { perm, uid, gid },
        attrs: options(words.tokens)?,
    })
}

/// `from HOSTPATH` or `text STRING`.
fn file_body(words: &mut Words<'_>) -> Result<NewBody, LineError> {
    let how = words.take("`from HOSTPATH` or `text STRING`")?;
    match how.bytes.as_slice() {
        b"from" => {
            let host = words.take("host path")?;
            let text = host.text("a host path")?;
            if text.is_empty() {
                return Err(LineError::new(host.column, "the host path is empty"));
            }
            Ok(NewBody::HostFile(PathBuf::from(text)))
        }
        b"text" => Ok(NewBody::Text(words.take("text")?.bytes.clone().into())),
        other => Err(LineError::new(
            how.column,
            format!("expected `from` or `text`, found `{}`", show(other)),
        )),
    }
}

fn symlink_target(word: &Token) -> Result<NewBody, LineError> {
    if word.bytes.is_empty() || word.bytes.contains(&0) {
        return Err(LineError::new(
            word.column,
            "a symlink target must be non-empty and hold no NUL byte",
        ));
    }
    Ok(NewBody::Symlink(word.bytes.clone()))
}

fn device_number(words: &mut Words<'_>, what: &str) -> Result<u32, LineError> {
    id(words.take(what)?, what)
}

/// `link PATH EXISTING-PATH`.
fn link_line(words: &mut Words<'_>) -> Result<Op, LineError> {
    let path_word = words.take("path")?;
    let path = image_path(path_word)?;
    let target = image_path(words.take("the existing path to link to")?)?;
    if path.0.is_empty() {
        return Err(LineError::new(
            path_word.column,
            "the root cannot be a hard link",
        ));
    }
    if let Some(extra) = words.tokens.first() {
        return Err(LineError::new(
            extra.column,
            "a hard link takes no options (it shares the metadata of its target)",
        ));
    }
    Ok(Op::Link { path, target })
}

/// `chmod GLOB MODE`, `chown GLOB UID GID`, `set GLOB OPTIONS`, `attr
/// GLOB FLAGS`.
fn modify_line(verb: &'static str, optional: bool, words: &mut Words<'_>) -> Result<Op, LineError> {
    let glob_word = words.take("path or glob")?;
    let glob = Glob::parse(&glob_word.bytes).map_err(|e| LineError::new(glob_word.column, e))?;
    let mut change = Change::default();
    match verb {
        "chmod" => change.perm = Some(mode(words.take("mode")?)?),
        "chown" => {
            change.uid = id_or_keep(words.take("uid (or `-`)")?, "uid")?;
            change.gid = id_or_keep(words.take("gid (or `-`)")?, "gid")?;
        }
        "attr" => {
            change.dos = Some(dos_attributes(words)?);
            return Ok(Op::Modify {
                verb,
                glob,
                optional,
                change,
            });
        }
        _ if words.tokens.is_empty() => {
            return Err(LineError::new(words.end, "`set` needs at least one option"));
        }
        _ => {}
    }
    change.attrs = options(words.tokens)?;
    Ok(Op::Modify {
        verb,
        glob,
        optional,
        change,
    })
}

/// The words of an `attr` line: the DOS attributes to set, or `none`.
fn dos_attributes(words: &Words<'_>) -> Result<DosAttributes, LineError> {
    if words.tokens.is_empty() {
        return Err(LineError::new(
            words.end,
            "`attr` needs readonly, hidden, system or none",
        ));
    }
    let mut dos = DosAttributes::default();
    for token in words.tokens {
        match token.bytes.as_slice() {
            b"readonly" => dos.read_only = true,
            b"hidden" => dos.hidden = true,
            b"system" => dos.system = true,
            b"none" if words.tokens.len() == 1 => {}
            other => {
                return Err(LineError::new(
                    token.column,
                    format!(
                        "`{}` is not a DOS attribute (readonly, hidden, system, or none alone)",
                        show(other)
                    ),
                ))
            }
        }
    }
    Ok(dos)
}

fn image_path(word: &Token) -> Result<ImagePath, LineError> {
    ImagePath::parse(&word.bytes).map_err(|e| LineError::new(word.column, e))
}

/// Octal permission bits, at most 7777.
fn mode(word: &Token) -> Result<u16, LineError> {
    parse_mode(word.text("a mode")?).map_err(|e| LineError::new(word.column, e))
}

/// A decimal number of 32 bits (uid, gid, major, minor).
fn id(word: &Token, what: &str) -> Result<u32, LineError> {
    parse_u32(word.text(what)?, what).map_err(|e| LineError::new(word.column, e))
}

/// A number, or `-` to keep the current value.
fn id_or_keep(word: &Token, what: &str) -> Result<Option<u32>, LineError> {
    match word.bytes.as_slice() {
        b"-" => Ok(None),
        _ => id(word, what).map(Some),
    }
}

/// Parses `NAME=VALUE` options.
fn options(tokens: &[Token]) -> Result<Attrs, LineError> {
    let mut attrs = Attrs::default();
    for token in tokens {
        option(&mut attrs, token).map_err(|what| LineError::new(token.column, what))?;
    }
    Ok(attrs)
}

fn option(attrs: &mut Attrs, token: &Token) -> Result<(), String> {
    let bytes = token.bytes.as_slice();
    let eq = bytes.iter().position(|&b| b == b'=').ok_or_else(|| {
        format!(
            "unexpected `{}` (options are NAME=VALUE: mtime, atime, ctime, crtime, time, \
             xattr, rmxattr, caps)",
            show(bytes)
        )
    })?;
    let (key, value) = (&bytes[..eq], &bytes[eq + 1..]);
    let text = || std::str::from_utf8(value).map_err(|_| "the value must be UTF-8".to_string());
    match key {
        b"mtime" => attrs.mtime = Some(time::parse(text()?)?),
        b"atime" => attrs.atime = Some(time::parse(text()?)?),
        b"ctime" => attrs.ctime = Some(time::parse(text()?)?),
        b"crtime" => attrs.crtime = Some(time::parse(text()?)?),
        b"time" => {
            let t = Some(time::parse(text()?)?);
            (attrs.atime, attrs.mtime, attrs.ctime) = (t, t, t);
        }
        b"xattr" => {
            let quoted_value = |at: usize| token.quoted.contains(&(eq + 1 + at));
            attrs
                .xattrs
                .push(XattrEdit::Set(xattr(value, quoted_value)?));
        }
        b"rmxattr" => attrs
            .xattrs
            .push(XattrEdit::Remove(xattr_name(value)?.to_vec())),
        b"caps" => attrs.xattrs.push(XattrEdit::Set(Xattr {
            name: caps::XATTR_NAME.to_vec(),
            value: caps::xattr_value(text()?)?,
        })),
        _ => return Err(format!("unknown option `{}`", show(key))),
    }
    Ok(())
}

/// `NAME=VALUE`; `quoted(i)` tells whether a quote opened at byte `i` of it.
fn xattr(spec: &[u8], quoted: impl Fn(usize) -> bool) -> Result<Xattr, String> {
    let eq = spec
        .iter()
        .position(|&b| b == b'=')
        .ok_or("xattr= needs NAME=VALUE")?;
    let name = xattr_name(&spec[..eq])?;
    let raw = &spec[eq + 1..];
    let value = if quoted(eq + 1) {
        raw.to_vec()
    } else {
        xattr_value(raw)?
    };
    if value.len() > XATTR_SIZE_MAX {
        return Err(format!(
            "the value of {} is above {XATTR_SIZE_MAX} bytes",
            show(name)
        ));
    }
    Ok(Xattr {
        name: name.to_vec(),
        value,
    })
}

/// Checks an xattr name: a namespace the image can hold and a name in it.
fn xattr_name(name: &[u8]) -> Result<&[u8], String> {
    let known = [&b"user."[..], b"trusted.", b"security."]
        .iter()
        .any(|p| name.len() > p.len() && name.starts_with(p))
        || name == b"system.posix_acl_access"
        || name == b"system.posix_acl_default";
    if !known {
        return Err(format!(
            "`{}`: xattr names start with user., trusted. or security. (or are \
             system.posix_acl_access / system.posix_acl_default)",
            show(name)
        ));
    }
    if name.len() > XATTR_NAME_MAX || name.contains(&0) {
        return Err(format!(
            "`{}`: an xattr name has at most {XATTR_NAME_MAX} bytes and no NUL",
            show(name)
        ));
    }
    Ok(name)
}

/// A value as `setfattr -v` takes it: hex after `0x`, base64 after `0s`,
/// else text.
fn xattr_value(raw: &[u8]) -> Result<Vec<u8>, String> {
    match raw {
        [b'0', b'x' | b'X', hex @ ..] => decode_hex(hex),
        [b'0', b's' | b'S', b64 @ ..] => {
            crate::base64::decode(b64).map_err(|_| format!("`0s{}` is not base64", show(b64)))
        }
        _ => Ok(raw.to_vec()),
    }
}

fn decode_hex(hex: &[u8]) -> Result<Vec<u8>, String> {
    let bad = || format!("`0x{}` is not hex with two digits a byte", show(hex));
    if hex.len() % 2 != 0 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return Err(bad());
    }
    hex.chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).map_err(|_| bad())?;
            u8::from_str_radix(text, 16).map_err(|_| bad())
        })
        .collect()
}

/// What the lines so far create, to find two lines making one path.
#[derive(Default)]
struct Made {
    /// Each path made, with the line that made it (a parent directory is
    /// made by the first line below it).
    paths: HashMap<Vec<Vec<u8>>, (usize, MadeAs)>,
}

/// What a line made at a path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MadeAs {
    /// A directory, named by a `dir` line or as a parent.
    Dir,
    /// Anything else, as a word.
    Other(&'static str),
}

impl Made {
    /// Records what `op` of `line` creates; errors if an earlier line made
    /// the same path differently, or made a parent a non-directory.
    fn record(&mut self, op: &Op, line: usize) -> Result<(), String> {
        let (path, kind) = match op {
            Op::Create { path, body, .. } => match body {
                NewBody::Dir => (path, MadeAs::Dir),
                body => (path, MadeAs::Other(type_name(body.file_type()))),
            },
            Op::Link { path, .. } => (path, MadeAs::Other("hard link")),
            Op::Modify { .. } | Op::Adjust { .. } => return Ok(()),
        };
        for depth in 0..path.0.len() {
            let parent = &path.0[..depth];
            match self.paths.get(parent) {
                Some(&(first, MadeAs::Other(what))) => {
                    return Err(format!(
                        "`{path}` cannot be made: line {first} made `{}` a {what}",
                        ImagePath(parent.to_vec())
                    ))
                }
                Some(_) => {}
                None => {
                    self.paths.insert(parent.to_vec(), (line, MadeAs::Dir));
                }
            }
        }
        match self.paths.get(&path.0) {
            Some(&(_, MadeAs::Dir)) if kind == MadeAs::Dir => Ok(()),
            Some(&(first, earlier)) => {
                let what = match earlier {
                    MadeAs::Dir => "directory",
                    MadeAs::Other(what) => what,
                };
                Err(format!(
                    "`{path}` is already made by line {first}, as a {what}"
                ))
            }
            None => {
                self.paths.insert(path.0.clone(), (line, kind));
                Ok(())
            }
        }
    }
}
