//! Spec files, genext2fs device tables and SELinux file_contexts, applied to
//! a [`Tree`].
//!
//! A **spec** describes image entries by hand, one per line, and is applied
//! after the sources: it creates entries and modifies those the sources
//! brought. [`Spec::parse`] reads one, [`Spec::apply`] runs its lines in order.
//! A genext2fs device table ([`parse_device_table`]) becomes a [`Spec`] too.
//! SELinux `file_contexts` ([`parse_file_contexts`]) label the finished tree.
//! The full reference, with examples, is `docs/spec-format.md`.
//!
//! # Line format
//!
//! ```text
//! # creating entries (mode in octal, uid and gid in decimal)
//! dir     PATH MODE UID GID [OPTION...]
//! file    PATH MODE UID GID from HOSTPATH [OPTION...]
//! file    PATH MODE UID GID text STRING [OPTION...]
//! symlink PATH MODE UID GID TARGET [OPTION...]
//! link    PATH EXISTING-PATH
//! char    PATH MODE UID GID MAJOR MINOR [OPTION...]
//! block   PATH MODE UID GID MAJOR MINOR [OPTION...]
//! fifo    PATH MODE UID GID [OPTION...]
//! socket  PATH MODE UID GID [OPTION...]
//! # modifying entries: a leading `?` lets the glob match nothing
//! [?]chmod GLOB MODE [OPTION...]
//! [?]chown GLOB UID|- GID|- [OPTION...]
//! [?]set   GLOB OPTION...
//! [?]attr  GLOB readonly|hidden|system|none...
//! ```
//!
//! Options: `mtime=T`, `atime=T`, `ctime=T`, `crtime=T`, `time=T` (the first
//! three at once), `xattr=NAME=VALUE`, `rmxattr=NAME`, `caps=TEXT`
//! (`security.capability` from `cap_from_text` syntax such as
//! `cap_net_raw+ep`). Times are RFC 3339 (`2024-05-01T12:00:00Z`) or seconds
//! since the epoch with optional nanoseconds (`1714564800.5`). Xattr values are
//! text, hex after `0x` or base64 after `0s`, like `setfattr -v`; a value that
//! starts with a quote is always text.
//!
//! `attr` sets exactly the DOS attributes named (`none`: none), which only a
//! FAT image keeps: `attr /EFI/BOOT/BOOTX64.EFI system hidden`.
//!
//! Words are separated by spaces or tabs; `#` at the start of a word begins a
//! comment. `"..."` quotes with escapes, `'...'` quotes without; the escapes
//! `\\ \" \' \  \# \n \t \r \0 \xHH` work inside double quotes and outside
//! quotes, and `\xHH` writes any byte, so names need not be UTF-8.
//!
//! Image paths are absolute; `.` and `..` are refused. Missing parent
//! directories are created (0755, owner 0:0) like `mkdir -p`. Entries created
//! without times get the Unix epoch, so output never depends on the clock.
//! A `dir` line on an existing directory keeps its entries, times and xattrs
//! and sets its mode, owner and the options named; any other kind replaces
//! what the sources had at that path. Within one spec, creating a path twice
//! is an error (except directories), naming both lines.
//!
//! Globs match image paths on raw bytes: `*` any run of bytes within one name,
//! `?` one byte, `[a-z]` / `[!a-z]` a byte class, `**` as a whole component
//! any number of components (including none, so `/srv/**` is `/srv` and all
//! below it). A name with a literal `*`, `?` or `[` is matched with `[*]`,
//! `[?]`, `[[]`.

mod apply;
mod caps;
mod contexts;
mod devtable;
pub(crate) mod glob;
mod lex;
mod parse;
mod time;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use contexts::{parse_file_contexts, FileContexts};
pub use devtable::parse_device_table;
pub use time::{civil_from_days, days_from_civil};

use kiln_host::HostFileType;
use thin_vec::ThinVec;

use crate::model::{Body, DosAttributes, Metadata, Times, Xattr};
use crate::{Timestamp, Tree, TreeError};
use glob::Glob;

/// A parsed spec: lines in order, each with its origin (file, line).
#[derive(Clone, Debug)]
pub struct Spec {
    /// The file the spec came from; relative host paths are resolved
    /// against its directory.
    origin: PathBuf,
    entries: Vec<Entry>,
}

impl Spec {
    /// Parses spec text; errors carry file, line and column.
    pub fn parse(text: &str, origin: &Path) -> Result<Spec, TreeError> {
        parse::parse_spec(text, origin)
    }

    /// Applies the spec to `tree` (creating and modifying entries), line
    /// after line. Host files referenced by `from` are stat'ed now (size,
    /// data ranges) and read when the image is written; inline text is kept
    /// in memory.
    pub fn apply(&self, tree: &mut Tree) -> Result<(), TreeError> {
        apply::apply(self, tree)
    }

    /// Whether a line may read or change the entry at image path `path`
    /// (its components) or an entry below it: a line whose path is there
    /// (creating there checks the parents on the way), a hard link to
    /// there, or a glob that may match there. A walk must read such an
    /// entry even when it is excluded: the line fails without it, or
    /// changes a node that a hard link also names elsewhere.
    pub(crate) fn reaches(&self, path: &[&[u8]]) -> bool {
        self.entries.iter().any(|e| match &e.op {
            Op::Create { path: at, .. } | Op::Adjust { path: at, .. } => at.starts_with(path),
            Op::Link { path: at, target } => at.starts_with(path) || target.starts_with(path),
            Op::Modify { glob, .. } => glob.may_match_within(path),
        })
    }
}

/// One line of a spec, or one node of a device table line.
#[derive(Clone, Debug)]
struct Entry {
    /// Line number in the origin, from 1.
    line: usize,
    op: Op,
}

/// What a line does.
#[derive(Clone, Debug)]
enum Op {
    /// Creates a node at `path` (a directory line also updates an existing
    /// directory).
    Create {
        path: ImagePath,
        body: NewBody,
        owner: Owner,
        attrs: Attrs,
    },
    /// Names the node at `target` (not a directory) at `path` too.
    Link { path: ImagePath, target: ImagePath },
    /// Changes every node whose path matches `glob`.
    Modify {
        /// The verb as written, for messages.
        verb: &'static str,
        glob: Glob,
        /// Matching nothing is allowed.
        optional: bool,
        change: Change,
    },
    /// A device table line: sets mode and owner of an existing node, or
    /// creates it where `body` says how.
    Adjust {
        path: ImagePath,
        /// `None` for types that only adjust (`f`, `l`).
        body: Option<NewBody>,
        /// The type letter, for messages.
        kind: &'static str,
        owner: Owner,
    },
}

/// Mode and owner given on a line.
#[derive(Clone, Copy, Debug)]
struct Owner {
    perm: u16,
    uid: u32,
    gid: u32,
}

/// The body of a node a spec creates.
#[derive(Clone, Debug)]
enum NewBody {
    Dir,
    /// A regular file with the bytes of a host file, found when applied.
    HostFile(PathBuf),
    /// A regular file with inline bytes.
    Text(Arc<[u8]>),
    Symlink(Vec<u8>),
    CharDevice(u32, u32),
    BlockDevice(u32, u32),
    Fifo,
    Socket,
}

impl NewBody {
    /// The type of node this makes.
    fn file_type(&self) -> HostFileType {
        match self {
            NewBody::Dir => HostFileType::Dir,
            NewBody::HostFile(_) | NewBody::Text(_) => HostFileType::File,
            NewBody::Symlink(_) => HostFileType::Symlink,
            NewBody::CharDevice(..) => HostFileType::CharDevice,
            NewBody::BlockDevice(..) => HostFileType::BlockDevice,
            NewBody::Fifo => HostFileType::Fifo,
            NewBody::Socket => HostFileType::Socket,
        }
    }
}

/// The type of a tree node.
fn file_type(body: &Body) -> HostFileType {
    match body {
        Body::Dir(_) => HostFileType::Dir,
        Body::File(_) => HostFileType::File,
        Body::Symlink(_) => HostFileType::Symlink,
        Body::CharDevice(..) => HostFileType::CharDevice,
        Body::BlockDevice(..) => HostFileType::BlockDevice,
        Body::Fifo => HostFileType::Fifo,
        Body::Socket => HostFileType::Socket,
    }
}

/// A node type as a word, for messages.
fn type_name(file_type: HostFileType) -> &'static str {
    match file_type {
        HostFileType::Dir => "directory",
        HostFileType::File => "regular file",
        HostFileType::Symlink => "symlink",
        HostFileType::CharDevice => "character device",
        HostFileType::BlockDevice => "block device",
        HostFileType::Fifo => "fifo",
        HostFileType::Socket => "socket",
    }
}

/// What a modify line changes; `None` keeps the value.
#[derive(Clone, Debug, Default)]
struct Change {
    perm: Option<u16>,
    uid: Option<u32>,
    gid: Option<u32>,
    /// DOS attributes (an `attr` line), for FAT images.
    dos: Option<DosAttributes>,
    attrs: Attrs,
}

/// The options of a line: times and xattr edits.
#[derive(Clone, Debug, Default)]
struct Attrs {
    atime: Option<Timestamp>,
    mtime: Option<Timestamp>,
    ctime: Option<Timestamp>,
    crtime: Option<Timestamp>,
    /// Applied in the order written.
    xattrs: Vec<XattrEdit>,
}

/// One xattr option.
#[derive(Clone, Debug)]
enum XattrEdit {
    Set(Xattr),
    Remove(Vec<u8>),
}

impl Attrs {
    /// Writes the options into `meta`.
    fn apply_to(&self, meta: &mut Metadata) {
        let old = meta.times();
        meta.set_times(Times {
            atime: self.atime.unwrap_or(old.atime),
            mtime: self.mtime.unwrap_or(old.mtime),
            ctime: self.ctime.unwrap_or(old.ctime),
            crtime: self.crtime.or(old.crtime),
        });
        if self.xattrs.is_empty() {
            return;
        }
        meta.edit_xattrs(|xattrs| {
            for edit in &self.xattrs {
                match edit {
                    XattrEdit::Set(x) => set_xattr(xattrs, x.clone()),
                    XattrEdit::Remove(name) => xattrs.retain(|x| x.name != *name),
                }
            }
        });
    }
}

/// Sets `x` in `xattrs`, which stay sorted by name.
fn set_xattr(xattrs: &mut ThinVec<Xattr>, x: Xattr) {
    match xattrs.binary_search_by(|old| old.name.cmp(&x.name)) {
        Ok(i) => xattrs[i] = x,
        Err(i) => xattrs.insert(i, x),
    }
}

/// An absolute image path as its components (none for the root).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ImagePath(Vec<Vec<u8>>);

impl ImagePath {
    /// Parses an absolute path: empty components (`//`, a trailing `/`)
    /// are dropped, `.` and `..` refused.
    fn parse(bytes: &[u8]) -> Result<ImagePath, String> {
        if bytes.first() != Some(&b'/') {
            return Err(format!("`{}`: image paths start with `/`", show(bytes)));
        }
        let mut parts = Vec::new();
        for part in bytes.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
            if part == b"." || part == b".." {
                return Err(format!(
                    "`{}`: `.` and `..` are not allowed in image paths",
                    show(bytes)
                ));
            }
            if part.contains(&0) {
                return Err(format!("`{}`: a name cannot hold a NUL byte", show(bytes)));
            }
            parts.push(part.to_vec());
        }
        Ok(ImagePath(parts))
    }

    /// Whether this path is `prefix` or below it.
    fn starts_with(&self, prefix: &[&[u8]]) -> bool {
        self.0.len() >= prefix.len() && self.0.iter().zip(prefix).all(|(a, b)| a == b)
    }
}

impl fmt::Display for ImagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("/");
        }
        for part in &self.0 {
            write!(f, "/{}", show(part))?;
        }
        Ok(())
    }
}

/// Shows raw bytes as text: UTF-8 as is, other bytes as `\xHH` (the spec
/// escape that writes them).
fn show(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The largest permission value: setuid, setgid, sticky and rwxrwxrwx.
const MAX_PERM: u32 = 0o7777;

/// Octal permission bits, at most 7777.
fn parse_mode(text: &str) -> Result<u16, String> {
    if text.is_empty() || !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(format!("`{text}` is not an octal mode"));
    }
    match u32::from_str_radix(text, 8) {
        Ok(v) if v <= MAX_PERM => Ok(v as u16),
        _ => Err(format!(
            "mode {text} is above 7777 (only permission bits are given here)"
        )),
    }
}

/// A decimal number of 32 bits (uid, gid, major, minor), `what` it is
/// named in messages.
fn parse_u32(text: &str, what: &str) -> Result<u32, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{what} `{text}` is not a decimal number"));
    }
    text.parse()
        .map_err(|_| format!("{what} {text} is out of range (0 to {})", u32::MAX))
}

/// The blank-separated fields of a line, each with its column (from 1).
fn fields(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (column, (at, c)) in (1..).zip(line.char_indices()) {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some((column, at)),
            (true, Some((col, from))) => {
                out.push((col, &line[from..at]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some((col, from)) = start {
        out.push((col, &line[from..]));
    }
    out
}

/// An error within one line: the column (in characters, from 1) and what.
#[derive(Debug, PartialEq, Eq)]
struct LineError {
    column: usize,
    what: String,
}

impl LineError {
    fn new(column: usize, what: impl Into<String>) -> LineError {
        LineError {
            column,
            what: what.into(),
        }
    }

    /// The error of line `line` of `origin`.
    fn at(self, origin: &Path, line: usize) -> TreeError {
        TreeError::Spec {
            origin: origin.to_path_buf(),
            line,
            column: self.column,
            what: self.what,
        }
    }
}

/// The lines of a text with their numbers (from 1), without a trailing
/// carriage return (files written on Windows).
fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
}

#[cfg(test)]
mod tests;
