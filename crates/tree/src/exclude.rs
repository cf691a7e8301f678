//! `--exclude GLOB`: entries whose image path matches are left out of the
//! image (a directory with everything below it).

use crate::model::{NodeId, Tree};
use crate::spec::glob::Glob;
use crate::TreeError;

/// Globs over image paths (`/var/cache/**`, `*.pyc` anywhere needs `/**/*.pyc`).
#[derive(Clone, Debug, Default)]
pub struct Excludes(Vec<Glob>);

impl Excludes {
    /// Parses the globs; each must be an absolute image path pattern.
    pub fn parse(globs: &[String]) -> Result<Excludes, TreeError> {
        let parsed = globs
            .iter()
            .map(|g| {
                Glob::parse(g.as_bytes())
                    .map_err(|what| TreeError::Policy(format!("--exclude: {what}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Excludes(parsed))
    }

    /// Removes every matching entry from `tree`.
    pub fn apply(&self, tree: &mut Tree) {
        if !self.0.is_empty() {
            self.prune(tree, Tree::ROOT, &mut Vec::new());
        }
    }

    fn prune(&self, tree: &mut Tree, dir: NodeId, path: &mut Vec<Vec<u8>>) {
        let entries: Vec<(Vec<u8>, NodeId)> = tree
            .node(dir)
            .entries()
            .map(|(n, id)| (n.to_vec(), id))
            .collect();
        for (name, child) in entries {
            path.push(name);
            if self.0.iter().any(|g| g.matches(path)) {
                tree.unlink(dir, &path[path.len() - 1]);
            } else if tree.node(child).is_dir() {
                self.prune(tree, child, path);
            }
            path.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Body, Metadata, Node};

    #[test]
    fn matching_entries_and_their_subtrees_go() {
        let meta = Metadata::made(0o755, 0, 0);
        let mut t = Tree::new(meta.clone());
        let node = |body| Node {
            meta: meta.clone(),
            body,
        };
        let var = t.add(node(Body::Dir(Default::default())));
        t.link(Tree::ROOT, b"var", var);
        let cache = t.add(node(Body::Dir(Default::default())));
        t.link(var, b"cache", cache);
        let pyc = t.add(node(Body::Fifo));
        t.link(var, b"x.pyc", pyc);
        let keep = t.add(node(Body::Fifo));
        t.link(var, b"keep", keep);
        Excludes::parse(&["/var/cache".into(), "/**/*.pyc".into()])
            .unwrap()
            .apply(&mut t);
        let names: Vec<_> = t.node(var).entries().map(|(n, _)| n.to_vec()).collect();
        assert_eq!(names, vec![b"keep".to_vec()]);
        assert!(Excludes::parse(&["relative".into()]).is_err());
    }
}
