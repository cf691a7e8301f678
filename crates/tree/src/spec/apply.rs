//! Applying a spec to a tree, line after line.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::{file_type, type_name, Attrs, Change, Glob, ImagePath, NewBody, Op, Owner, Spec};
use crate::data::{Fingerprint, HostPath, Inline};
use crate::model::{Body, FileData, Metadata, Node, NodeId};
use crate::{DataSource, Tree, TreeError};

/// Where a line comes from: for messages, and to find relative host paths.
struct Place<'a> {
    origin: &'a Path,
    line: usize,
}

impl Owner {
    fn set(self, meta: &mut Metadata) {
        meta.perm = self.perm;
        meta.uid = self.uid;
        meta.gid = self.gid;
    }

    /// Metadata of a node made now: this owner, times at the epoch (never
    /// the clock, so builds repeat), no xattrs.
    fn new_meta(self) -> Metadata {
        Metadata::made(self.perm, self.uid, self.gid)
    }
}

/// Parent directories made for a path are 0755 and owned by root, as
/// `mkdir -p` run by root makes them.
const PARENT: Owner = Owner {
    perm: 0o755,
    uid: 0,
    gid: 0,
};

/// Runs every line of `spec` on `tree`, in order.
pub(super) fn apply(spec: &Spec, tree: &mut Tree) -> Result<(), TreeError> {
    for entry in &spec.entries {
        let place = Place {
            origin: &spec.origin,
            line: entry.line,
        };
        apply_op(tree, &entry.op, &place).map_err(|what| TreeError::Rule {
            origin: spec.origin.clone(),
            line: entry.line,
            what,
        })?;
    }
    Ok(())
}

fn apply_op(tree: &mut Tree, op: &Op, place: &Place<'_>) -> Result<(), String> {
    match op {
        Op::Create {
            path,
            body,
            owner,
            attrs,
        } => create(tree, path, body, *owner, attrs, place),
        Op::Link { path, target } => link(tree, path, target),
        Op::Modify {
            verb,
            glob,
            optional,
            change,
        } => modify(tree, verb, glob, *optional, change),
        Op::Adjust {
            path,
            body,
            kind,
            owner,
        } => match (resolve(tree, &path.0), body) {
            (Some(id), _) => {
                owner.set(&mut tree.node_mut(id).meta);
                Ok(())
            }
            (None, Some(body)) => create(tree, path, body, *owner, &Attrs::default(), place),
            (None, None) => Err(format!(
                "`{path}` does not exist (a device table line of type `{kind}` only adjusts \
                 an existing entry)"
            )),
        },
    }
}

/// Makes `path`, or updates it when both it and the line are directories.
fn create(
    tree: &mut Tree,
    path: &ImagePath,
    body: &NewBody,
    owner: Owner,
    attrs: &Attrs,
    place: &Place<'_>,
) -> Result<(), String> {
    let Some((name, parents)) = path.0.split_last() else {
        // The root: the parser lets only directories name it.
        update(tree, Tree::ROOT, owner, attrs);
        return Ok(());
    };
    let body = match body {
        NewBody::Dir => Body::Dir(Box::default()),
        NewBody::HostFile(host) => host_file(host, place)?,
        NewBody::Text(bytes) => text_file(bytes, place),
        NewBody::Symlink(target) => Body::Symlink(target.clone()),
        NewBody::CharDevice(major, minor) => Body::CharDevice(*major, *minor),
        NewBody::BlockDevice(major, minor) => Body::BlockDevice(*major, *minor),
        NewBody::Fifo => Body::Fifo,
        NewBody::Socket => Body::Socket,
    };
    let parent = make_parents(tree, parents, path)?;
    let existing_dir = tree
        .lookup(parent, name)
        .filter(|&id| tree.node(id).is_dir());
    match existing_dir {
        Some(id) if matches!(body, Body::Dir(_)) => update(tree, id, owner, attrs),
        _ => {
            let mut meta = owner.new_meta();
            attrs.apply_to(&mut meta);
            let id = tree.add(Node { meta, body });
            tree.link(parent, name, id);
        }
    }
    Ok(())
}

/// Sets mode, owner and options of an existing node, keeping the rest.
fn update(tree: &mut Tree, id: NodeId, owner: Owner, attrs: &Attrs) {
    let meta = &mut tree.node_mut(id).meta;
    owner.set(meta);
    attrs.apply_to(meta);
}

/// A regular file with the bytes of host file `host` (relative to the
/// spec's directory), whose size and holes are read now.
fn host_file(host: &Path, place: &Place<'_>) -> Result<Body, String> {
    let full = match place.origin.parent() {
        Some(dir) if host.is_relative() => dir.join(host),
        _ => host.to_path_buf(),
    };
    let err = |e: std::io::Error| format!("{}: {e}", full.display());
    // Checked before opening: opening a fifo would wait for a writer.
    if !std::fs::metadata(&full).map_err(err)?.is_file() {
        return Err(format!("{}: not a regular file", full.display()));
    }
    let file = kiln_host::open_source(&full).map_err(err)?;
    let stamp = kiln_host::file_stamp(&file).map_err(err)?;
    let data = kiln_host::data_ranges(&file, stamp.size).map_err(err)?;
    let source = DataSource::Host(HostPath::new(&full), Fingerprint::of(&stamp));
    Ok(Body::File(FileData::new(source, stamp.size, data)))
}

/// A regular file holding `bytes`, named in messages by the spec line.
fn text_file(bytes: &std::sync::Arc<[u8]>, place: &Place<'_>) -> Body {
    let size = bytes.len() as u64;
    let origin = PathBuf::from(format!("{}:{}", place.origin.display(), place.line));
    let inline = Inline::new(bytes.clone(), origin);
    Body::File(FileData::new(
        DataSource::Bytes(inline.into()),
        size,
        vec![0..size],
    ))
}

/// Finds or makes the directories `parents` (the leading components of
/// `path`); returns the last one. Symlinks are not followed.
fn make_parents(tree: &mut Tree, parents: &[Vec<u8>], path: &ImagePath) -> Result<NodeId, String> {
    let mut dir = Tree::ROOT;
    for (depth, name) in parents.iter().enumerate() {
        dir = match tree.lookup(dir, name) {
            Some(id) if tree.node(id).is_dir() => id,
            Some(id) => {
                return Err(format!(
                    "cannot make `{path}`: `{}` is a {}, not a directory",
                    ImagePath(parents[..=depth].to_vec()),
                    type_name(file_type(&tree.node(id).body))
                ))
            }
            None => {
                let id = tree.add(Node {
                    meta: PARENT.new_meta(),
                    body: Body::Dir(Box::default()),
                });
                tree.link(dir, name, id);
                id
            }
        };
    }
    Ok(dir)
}

/// Names the node at `target` at `path` too.
fn link(tree: &mut Tree, path: &ImagePath, target: &ImagePath) -> Result<(), String> {
    let id = resolve(tree, &target.0)
        .ok_or_else(|| format!("cannot link `{path}` to `{target}`: it does not exist"))?;
    if tree.node(id).is_dir() {
        return Err(format!(
            "cannot link `{path}` to `{target}`: it is a directory, and directories cannot be \
             hard-linked"
        ));
    }
    let (name, parents) = path
        .0
        .split_last()
        .ok_or("the root cannot be a hard link")?;
    let parent = make_parents(tree, parents, path)?;
    tree.link(parent, name, id);
    Ok(())
}

/// Applies `change` to every node `glob` matches.
fn modify(
    tree: &mut Tree,
    verb: &str,
    glob: &Glob,
    optional: bool,
    change: &Change,
) -> Result<(), String> {
    let ids = matching(tree, glob);
    if ids.is_empty() && !optional {
        return Err(format!(
            "`{verb} {glob}` matches nothing in the image (write `?{verb}` if that may happen)"
        ));
    }
    for id in ids {
        if let Some(dos) = change.dos {
            tree.set_dos_attributes(id, dos);
        }
        let meta = &mut tree.node_mut(id).meta;
        if let Some(perm) = change.perm {
            meta.perm = perm;
        }
        if let Some(uid) = change.uid {
            meta.uid = uid;
        }
        if let Some(gid) = change.gid {
            meta.gid = gid;
        }
        change.attrs.apply_to(meta);
    }
    Ok(())
}

/// The nodes whose paths `glob` matches, each once.
fn matching(tree: &Tree, glob: &Glob) -> Vec<NodeId> {
    let prefix = glob.literal_prefix();
    let Some(start) = resolve(tree, &prefix) else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    walk(tree, start, prefix, glob.max_depth(), |path, id| {
        if glob.matches(path) {
            ids.push(id);
        }
    });
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The node at `path`, not following symlinks.
fn resolve(tree: &Tree, path: &[Vec<u8>]) -> Option<NodeId> {
    path.iter()
        .try_fold(Tree::ROOT, |dir, name| tree.lookup(dir, name))
}

/// Calls `visit` with the path components and id of `start` (at `prefix`)
/// and of every node below it, down to `max_depth` components; each
/// directory is entered once, so no tree can make the walk loop.
pub(super) fn walk(
    tree: &Tree,
    start: NodeId,
    prefix: Vec<Vec<u8>>,
    max_depth: Option<usize>,
    mut visit: impl FnMut(&[Vec<u8>], NodeId),
) {
    let mut entered = HashSet::new();
    let mut stack = vec![(start, prefix)];
    while let Some((id, path)) = stack.pop() {
        visit(&path, id);
        let deep = max_depth.is_some_and(|max| path.len() >= max);
        if deep || !tree.node(id).is_dir() || !entered.insert(id) {
            continue;
        }
        for (name, child) in tree.node(id).entries() {
            let mut child_path = path.clone();
            child_path.push(name.to_vec());
            stack.push((child, child_path));
        }
    }
}
