//! genext2fs device tables (`--device-table`): one node, or one range of
//! numbered nodes, per line.
//!
//! A line is `NAME TYPE MODE UID GID MAJOR MINOR START INC COUNT`, fields
//! separated by blanks, `-` (or a missing field) meaning none; `#` starts a
//! comment. TYPE is `d`, `c`, `b`, `p`, `s` (made if missing), `f` or `l`
//! (must exist). An existing entry, whatever its kind, gets the mode and
//! owner and nothing else. With COUNT, names `NAME<i>` for `i` from START
//! up to COUNT (excluded) get minor `MINOR + i*INC - START`: genext2fs's
//! arithmetic, so `/dev/hda b 640 0 0 3 1 1 1 16` makes `hda1` to `hda15`.

use std::path::Path;

use super::{
    fields, numbered_lines, parse_mode, parse_u32, Entry, ImagePath, LineError, NewBody, Op, Owner,
    Spec,
};
use crate::TreeError;

/// The most nodes one line can make: ranges are for numbered devices
/// (`tty0` to `tty63`), and a count in the millions is a typo.
const MAX_RANGE: u64 = 65_536;

/// The field names, for messages.
const FIELDS: [&str; 10] = [
    "name", "type", "mode", "uid", "gid", "major", "minor", "start", "inc", "count",
];

/// genext2fs device table (`--device-table`): "name type mode uid gid major
/// minor start inc count", with ranges for numbered devices, as a [`Spec`].
/// Missing parent directories are made as in a spec file.
pub fn parse_device_table(text: &str, origin: &Path) -> Result<Spec, TreeError> {
    let mut entries = Vec::new();
    for (line, content) in numbered_lines(text) {
        let fields = fields(content.split('#').next().unwrap_or(""));
        if fields.is_empty() {
            continue;
        }
        let end = content.chars().count() + 1;
        let ops = parse_line(&fields, end).map_err(|e| e.at(origin, line))?;
        entries.extend(ops.into_iter().map(|op| Entry { line, op }));
    }
    Ok(Spec {
        origin: origin.to_path_buf(),
        entries,
    })
}

/// The nodes of one line.
fn parse_line(fields: &[(usize, &str)], end: usize) -> Result<Vec<Op>, LineError> {
    if fields.len() < 3 {
        return Err(LineError::new(
            end,
            "missing type and mode (name type mode uid gid ...)",
        ));
    }
    if let Some(&(column, _)) = fields.get(FIELDS.len()) {
        return Err(LineError::new(
            column,
            "too many fields (name type mode uid gid major minor start inc count)",
        ));
    }
    let (name_column, name) = fields[0];
    let path = ImagePath::parse(name.as_bytes()).map_err(|e| LineError::new(name_column, e))?;
    let (type_column, kind) = fields[1];
    let (body, kind) = match kind {
        "d" => (Some(NewBody::Dir), "d"),
        "c" => (
            Some(NewBody::CharDevice(
                needed(fields, 5, end)?,
                needed(fields, 6, end)?,
            )),
            "c",
        ),
        "b" => (
            Some(NewBody::BlockDevice(
                needed(fields, 5, end)?,
                needed(fields, 6, end)?,
            )),
            "b",
        ),
        "p" => (Some(NewBody::Fifo), "p"),
        "s" => (Some(NewBody::Socket), "s"),
        "f" => (None, "f"),
        "l" => (None, "l"),
        _ => {
            return Err(LineError::new(
                type_column,
                format!("unknown type `{kind}` (d, f, l, c, b, p or s)"),
            ))
        }
    };
    if path.0.is_empty() && kind != "d" {
        return Err(LineError::new(
            name_column,
            "the root `/` can only be a directory",
        ));
    }
    let (mode_column, mode) = fields[2];
    let perm = parse_mode(mode).map_err(|e| LineError::new(mode_column, e))?;
    let (uid, gid) = (
        field(fields, 3)?.unwrap_or(0),
        field(fields, 4)?.unwrap_or(0),
    );
    let owner = Owner { perm, uid, gid };
    let one = |(path, body)| Op::Adjust {
        path,
        body,
        kind,
        owner,
    };
    let nodes = match field(fields, 9)? {
        // Like genext2fs, a line for the root only sets its mode and owner.
        Some(count) if count > 0 && !path.0.is_empty() => {
            let range = Range {
                start: field(fields, 7)?.unwrap_or(0).into(),
                inc: field(fields, 8)?.unwrap_or(1).into(),
                count: count.into(),
            };
            range.expand(&path, body, end)?
        }
        _ => vec![(path, body)],
    };
    Ok(nodes.into_iter().map(one).collect())
}

/// The START, INC and COUNT of a line.
struct Range {
    start: u64,
    inc: u64,
    count: u64,
}

impl Range {
    /// The numbered paths and bodies, each device with its minor number.
    fn expand(
        &self,
        path: &ImagePath,
        body: Option<NewBody>,
        end: usize,
    ) -> Result<Vec<(ImagePath, Option<NewBody>)>, LineError> {
        if self.count <= self.start {
            return Err(LineError::new(
                end,
                "the range is empty (count is at most start)",
            ));
        }
        if self.count - self.start > MAX_RANGE {
            return Err(LineError::new(
                end,
                format!("a range makes at most {MAX_RANGE} nodes"),
            ));
        }
        let Some((last, parents)) = path.0.split_last() else {
            return Ok(vec![(path.clone(), body)]);
        };
        (self.start..self.count)
            .map(|i| {
                let mut name = last.clone();
                name.extend_from_slice(i.to_string().as_bytes());
                let mut numbered = parents.to_vec();
                numbered.push(name);
                let body = match &body {
                    Some(NewBody::CharDevice(major, minor)) => {
                        Some(NewBody::CharDevice(*major, self.minor(*minor, i, end)?))
                    }
                    Some(NewBody::BlockDevice(major, minor)) => {
                        Some(NewBody::BlockDevice(*major, self.minor(*minor, i, end)?))
                    }
                    other => other.clone(),
                };
                Ok((ImagePath(numbered), body))
            })
            .collect()
    }

    /// The minor number of node `i`: `minor + i*inc - start`.
    fn minor(&self, minor: u32, i: u64, end: usize) -> Result<u32, LineError> {
        i.checked_mul(self.inc)
            .and_then(|step| u64::from(minor).checked_add(step))
            .and_then(|m| m.checked_sub(self.start))
            .and_then(|m| u32::try_from(m).ok())
            .ok_or_else(|| {
                LineError::new(end, format!("the minor number of node {i} is out of range"))
            })
    }
}

/// Field `i` as a 32-bit decimal number; absent or `-` is `None`.
fn field(fields: &[(usize, &str)], i: usize) -> Result<Option<u32>, LineError> {
    let Some(&(column, text)) = fields.get(i) else {
        return Ok(None);
    };
    if text == "-" {
        return Ok(None);
    }
    parse_u32(text, FIELDS[i])
        .map(Some)
        .map_err(|e| LineError::new(column, e))
}

/// Field `i`, which a device must have.
fn needed(fields: &[(usize, &str)], i: usize, end: usize) -> Result<u32, LineError> {
    let column = fields.get(i).map_or(end, |f| f.0);
    field(fields, i)?
        .ok_or_else(|| LineError::new(column, format!("a device needs a {} number", FIELDS[i])))
}
