//! Reads a host directory into a [`Tree`], as `cp -ax` would copy it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use kiln_host::{HostFileType, HostMeta};
use rayon::prelude::*;
use walkdir::WalkDir;

use crate::model::{Body, FileData, Metadata, Node, NodeId, Tree, Xattr};
use crate::{Timestamp, TreeError};

/// Reads the directory `root` and everything below it into a [`Tree`].
///
/// Symlinks are kept as symlinks, hard links (same device and inode) become
/// one node, and like `cp -x` the walk does not descend into directories of
/// other mounted filesystems (they appear as empty directories). Names are
/// walked in sorted order, so the result never depends on readdir order.
/// Xattrs and the data ranges of files are read in parallel.
pub fn read_dir_tree(root: &Path) -> Result<Tree, TreeError> {
    let root_meta = kiln_host::lstat(root).map_err(|e| TreeError::io(root, e))?;
    if root_meta.file_type != HostFileType::Dir {
        return Err(TreeError::NotADirectory { path: root.into() });
    }
    let mut tree = Tree::new(metadata(&root_meta));
    let mut pending = vec![(Tree::ROOT, root.to_path_buf(), root_meta.file_type)];
    // dirs[d] is the node of the directory being filled at depth d.
    let mut dirs: Vec<NodeId> = vec![Tree::ROOT];
    let mut links: HashMap<(u64, u64), NodeId> = HashMap::new();
    let walk = WalkDir::new(root)
        .follow_links(false)
        .same_file_system(true)
        .sort_by(|a, b| a.file_name().cmp(b.file_name()))
        .min_depth(1);
    for entry in walk {
        let entry = entry.map_err(walk_error)?;
        let path = entry.path();
        let meta = entry
            .metadata()
            .map(|m| kiln_host::host_meta(&m))
            .map_err(walk_error)?;
        let depth = entry.depth();
        dirs.truncate(depth);
        let parent = dirs[depth - 1];
        let name = kiln_host::name_bytes(entry.file_name());
        let linked = (meta.file_type != HostFileType::Dir && meta.nlink > 1)
            .then(|| links.get(&(meta.dev, meta.ino)).copied())
            .flatten();
        let id = match linked {
            Some(id) => id,
            None => {
                let id = tree.add(Node {
                    meta: metadata(&meta),
                    body: placeholder_body(&meta),
                });
                if meta.file_type != HostFileType::Dir && meta.nlink > 1 {
                    links.insert((meta.dev, meta.ino), id);
                }
                pending.push((id, path.to_path_buf(), meta.file_type));
                id
            }
        };
        tree.link(parent, name, id);
        if meta.file_type == HostFileType::Dir {
            dirs.push(id);
        }
    }
    fill_details(&mut tree, pending)?;
    Ok(tree)
}

fn walk_error(e: walkdir::Error) -> TreeError {
    let path = e.path().map(Path::to_path_buf).unwrap_or_default();
    let io = e
        .into_io_error()
        .unwrap_or_else(|| std::io::Error::other("filesystem loop"));
    TreeError::io(path, io)
}

fn metadata(meta: &HostMeta) -> Metadata {
    Metadata {
        perm: meta.perm,
        uid: meta.uid,
        gid: meta.gid,
        atime: meta.atime,
        mtime: meta.mtime,
        ctime: meta.ctime,
        crtime: meta.crtime,
        xattrs: Vec::new(),
    }
}

/// The body as far as `lstat` tells; file data and symlink targets are filled
/// in by [`fill_details`].
fn placeholder_body(meta: &HostMeta) -> Body {
    match meta.file_type {
        HostFileType::Dir => Body::Dir(BTreeMap::new()),
        HostFileType::File => Body::File(FileData {
            source: PathBuf::new(),
            size: meta.size,
            data: Vec::new(),
        }),
        HostFileType::Symlink => Body::Symlink(Vec::new()),
        HostFileType::CharDevice => Body::CharDevice(meta.rdev.0, meta.rdev.1),
        HostFileType::BlockDevice => Body::BlockDevice(meta.rdev.0, meta.rdev.1),
        HostFileType::Fifo => Body::Fifo,
        HostFileType::Socket => Body::Socket,
    }
}

/// What [`read_details`] found for one node.
struct Details {
    xattrs: Vec<Xattr>,
    body: Option<Body>,
    /// The access time after reading, for entries whose reading moves it.
    atime: Option<Timestamp>,
}

/// Reads xattrs, symlink targets and file data ranges for every node, in
/// parallel, then stores them in the tree.
fn fill_details(
    tree: &mut Tree,
    pending: Vec<(NodeId, PathBuf, HostFileType)>,
) -> Result<(), TreeError> {
    let details: Vec<(NodeId, Details)> = pending
        .into_par_iter()
        .map(|(id, path, ft)| read_details(&path, ft).map(|d| (id, d)))
        .collect::<Result<_, _>>()?;
    for (id, d) in details {
        let node = tree.node_mut(id);
        node.meta.xattrs = d.xattrs;
        if let Some(body) = d.body {
            node.body = body;
        }
        if let Some(atime) = d.atime {
            node.meta.atime = atime;
        }
    }
    Ok(())
}

fn read_details(path: &Path, ft: HostFileType) -> Result<Details, TreeError> {
    let err = |e| TreeError::io(path, e);
    let xattrs = kiln_host::read_xattrs(path)
        .map_err(err)?
        .into_iter()
        .map(|(name, value)| Xattr { name, value })
        .collect();
    let body = match ft {
        HostFileType::Symlink => {
            let target = std::fs::read_link(path).map_err(err)?;
            Some(Body::Symlink(kiln_host::name_bytes(target.as_os_str())))
        }
        HostFileType::File => {
            let file = kiln_host::open_source(path).map_err(err)?;
            let size = file.metadata().map_err(err)?.len();
            let data = kiln_host::data_ranges(&file, size).map_err(err)?;
            Some(Body::File(FileData {
                source: path.to_path_buf(),
                size,
                data,
            }))
        }
        _ => None,
    };
    // readdir and readlink update the access time (under relatime, once after
    // each change), and neither can be asked not to; taking the atime after the
    // walk records what the source holds from then on, so a rebuild matches.
    let atime = match ft {
        HostFileType::Dir | HostFileType::Symlink => {
            Some(kiln_host::lstat(path).map_err(err)?.atime)
        }
        _ => None,
    };
    Ok(Details {
        xattrs,
        body,
        atime,
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn reads_files_links_and_symlinks_in_sorted_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("sub/b"), b"hello").unwrap();
        std::fs::hard_link(d.join("sub/b"), d.join("a")).unwrap();
        std::os::unix::fs::symlink("sub/b", d.join("link")).unwrap();

        let tree = read_dir_tree(d).unwrap();
        let names: Vec<_> = tree
            .node(Tree::ROOT)
            .entries()
            .map(|(n, _)| n.to_vec())
            .collect();
        assert_eq!(
            names,
            vec![b"a".to_vec(), b"link".to_vec(), b"sub".to_vec()]
        );
        let a = tree.lookup(Tree::ROOT, b"a").unwrap();
        let sub = tree.lookup(Tree::ROOT, b"sub").unwrap();
        assert_eq!(tree.lookup(sub, b"b"), Some(a));
        match &tree.node(a).body {
            Body::File(f) => {
                assert_eq!(f.size, 5);
                assert_eq!(f.data, vec![0..5]);
            }
            other => panic!("not a file: {other:?}"),
        }
        let link = tree.lookup(Tree::ROOT, b"link").unwrap();
        assert_eq!(tree.node(link).body, Body::Symlink(b"sub/b".to_vec()));
    }

    #[test]
    fn missing_source_names_the_path() {
        let err = read_dir_tree(Path::new("/nonexistent/kiln-source")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/kiln-source"),
            "{err}"
        );
    }
}
