//! Placing archive members in a [`Tree`] as tar extraction would: later
//! members replace earlier ones of the same path, a directory member over an
//! existing directory only updates its metadata, and missing parents are
//! made as directories.

use crate::model::{Body, Metadata, Node, NodeId, Tree};

/// A member path split into components: no empty, `.` or `..` ones.
pub(super) type Components = Vec<Vec<u8>>;

/// Splits a member path, dropping leading `/` and `./`, doubled slashes and
/// `.` components. `..` is refused: the tree has no place above its root.
pub(super) fn components(path: &[u8]) -> Result<Components, String> {
    let mut out = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("a path with a `..` component".into()),
            _ if part.contains(&0) => return Err("a path with a NUL byte".into()),
            _ => out.push(part.to_vec()),
        }
    }
    Ok(out)
}

/// Components joined for messages (the root is `.`).
pub(super) fn display(path: &[Vec<u8>]) -> String {
    if path.is_empty() {
        return ".".into();
    }
    String::from_utf8_lossy(&path.join(&b'/')).into_owned()
}

/// The metadata of a directory the archive implies but has no member for:
/// mode 0755, owned by 0:0, all times 0 (the epoch), so the result never
/// depends on the host or the clock.
fn implied_dir_meta() -> Metadata {
    Metadata::made(0o755, 0, 0)
}

/// The tree being filled.
pub(super) struct Builder {
    /// Node 0 is the archive's root.
    tree: Tree,
}

impl Builder {
    /// A tree with a root of [`implied_dir_meta`] until a `./` member sets it.
    pub(super) fn new() -> Builder {
        Builder {
            tree: Tree::new(implied_dir_meta()),
        }
    }

    /// Puts `node` at `path`, replacing what is there unless both are
    /// directories.
    pub(super) fn put(&mut self, path: &[Vec<u8>], node: Node) -> Result<(), String> {
        let Some((name, parents)) = path.split_last() else {
            if !node.is_dir() {
                return Err("the archive's root (`.`) is not a directory".into());
            }
            self.tree.node_mut(Tree::ROOT).meta = node.meta;
            return Ok(());
        };
        let dir = self.parent(parents)?;
        match self.tree.lookup(dir, name) {
            Some(old) if self.tree.node(old).is_dir() && node.is_dir() => {
                self.tree.node_mut(old).meta = node.meta;
            }
            _ => {
                let id = self.tree.add(node);
                self.tree.link(dir, name, id);
            }
        }
        Ok(())
    }

    /// Names the node at `target`, which an earlier member made, also as
    /// `path` (a hard link).
    pub(super) fn hard_link(&mut self, path: &[Vec<u8>], target: &[Vec<u8>]) -> Result<(), String> {
        let missing = || {
            format!(
                "a hard link to {}, which no earlier member made",
                display(target)
            )
        };
        let mut id = Tree::ROOT;
        for part in target {
            id = self.tree.lookup(id, part).ok_or_else(missing)?;
        }
        if self.tree.node(id).is_dir() {
            return Err(format!("a hard link to the directory {}", display(target)));
        }
        let (name, parents) = path.split_last().ok_or("a hard link as the root")?;
        let dir = self.parent(parents)?;
        self.tree.link(dir, name, id);
        Ok(())
    }

    /// The directory at `parents`, made (with [`implied_dir_meta`]) where it
    /// is missing.
    fn parent(&mut self, parents: &[Vec<u8>]) -> Result<NodeId, String> {
        let mut dir = Tree::ROOT;
        for (i, part) in parents.iter().enumerate() {
            dir = match self.tree.lookup(dir, part) {
                Some(id) if self.tree.node(id).is_dir() => id,
                Some(_) => {
                    return Err(format!(
                        "its parent {} is not a directory",
                        display(&parents[..=i])
                    ))
                }
                None => {
                    let id = self.tree.add(Node {
                        meta: implied_dir_meta(),
                        body: Body::Dir(Box::default()),
                    });
                    self.tree.link(dir, part, id);
                    id
                }
            };
        }
        Ok(dir)
    }

    /// The finished tree.
    pub(super) fn finish(self) -> Tree {
        self.tree
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(p: &str) -> Components {
        components(p.as_bytes()).unwrap()
    }

    fn dir(perm: u16) -> Node {
        let mut meta = implied_dir_meta();
        meta.perm = perm;
        Node {
            meta,
            body: Body::Dir(Box::default()),
        }
    }

    fn symlink(target: &str) -> Node {
        Node {
            meta: implied_dir_meta(),
            body: Body::Symlink(target.as_bytes().to_vec()),
        }
    }

    #[test]
    fn paths_are_normalised() {
        assert_eq!(
            parts("./a//b/./c/"),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        assert_eq!(parts("/abs"), vec![b"abs".to_vec()]);
        assert!(parts("./").is_empty());
        assert!(components(b"a/../b").is_err());
        assert!(components(b"..").is_err());
        assert!(components(b"a/\0").is_err());
        assert_eq!(display(&parts("x/y")), "x/y");
        assert_eq!(display(&[]), ".");
    }

    #[test]
    fn replacing_merging_and_implied_parents() {
        let mut b = Builder::new();
        b.put(&parts("a/b/l"), symlink("x")).unwrap();
        b.put(&parts("a"), dir(0o700)).unwrap();
        b.put(&parts("a/b/l"), symlink("y")).unwrap();
        b.hard_link(&parts("h"), &parts("a/b/l")).unwrap();
        assert!(b
            .hard_link(&parts("h2"), &parts("a/nope"))
            .unwrap_err()
            .contains("a/nope"));
        assert!(b.hard_link(&parts("h3"), &parts("a")).is_err());
        assert!(b
            .put(&parts("a/b/l/x"), dir(0o755))
            .unwrap_err()
            .contains("a/b/l"));
        assert!(b.put(&parts("."), symlink("z")).is_err());
        b.put(&parts("."), dir(0o711)).unwrap();
        let t = b.finish();
        assert_eq!(t.node(Tree::ROOT).meta.perm, 0o711);
        let a = t.lookup(Tree::ROOT, b"a").unwrap();
        assert_eq!(t.node(a).meta.perm, 0o700);
        let bdir = t.lookup(a, b"b").unwrap();
        assert_eq!(t.node(bdir).meta, implied_dir_meta());
        let l = t.lookup(bdir, b"l").unwrap();
        assert_eq!(t.node(l).body, Body::Symlink(b"y".to_vec()));
        assert_eq!(t.lookup(Tree::ROOT, b"h"), Some(l));
    }
}
