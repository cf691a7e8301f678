//! `--exclude GLOB`: entries whose image path matches are left out of the
//! image (a directory with everything below it). [`Excludes::apply`] removes
//! them from a finished tree; [`Pruning`] lets a directory walk leave them
//! unread in the first place.

use crate::model::{NodeId, Tree, WHITEOUT_PREFIX};
use crate::spec::glob::Glob;
use crate::{Spec, TreeError};

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

    /// What a walk of a directory source may leave unread: `later_specs`
    /// are the specs and device tables applied after that source, and
    /// `whiteouts` says whether its `.wh.` entries are whiteouts.
    pub fn pruning<'a>(&'a self, later_specs: &'a [Spec], whiteouts: bool) -> Pruning<'a> {
        Pruning {
            globs: &self.0,
            later_specs,
            whiteouts,
        }
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

/// The entries a directory walk leaves unread (never stat'ed, opened or
/// listed): those [`Excludes::apply`] removes from the image anyway, less
/// those that a later layer may still need, so that the image is the same
/// as from a walk of everything.
///
/// An excluded entry is still read when a spec or device table applied
/// after the source may read or change it or something below it
/// (`Spec::reaches`): without it such a line fails (a glob that matches
/// nothing, a hard link to it), or its change is lost on a hard link that
/// another name keeps. With whiteouts, `.wh.` entries are always read: they
/// delete entries of the layers below, which may not be excluded.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pruning<'a> {
    globs: &'a [Glob],
    later_specs: &'a [Spec],
    whiteouts: bool,
}

impl Pruning<'_> {
    /// Whether nothing is left unread.
    pub(crate) fn is_empty(&self) -> bool {
        self.globs.is_empty()
    }

    /// Whether the entry `name` of the directory at image path `dir` (its
    /// components) is left unread.
    pub(crate) fn skips<C: AsRef<[u8]>>(&self, dir: &[C], name: &[u8]) -> bool {
        if self.is_empty() || (self.whiteouts && name.starts_with(WHITEOUT_PREFIX)) {
            return false;
        }
        let path: Vec<&[u8]> = dir
            .iter()
            .map(AsRef::as_ref)
            .chain(std::iter::once(name))
            .collect();
        self.globs.iter().any(|g| g.matches(&path))
            && !self.later_specs.iter().any(|s| s.reaches(&path))
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

    #[test]
    fn pruning_spares_what_later_layers_need() {
        let excludes = Excludes::parse(&["/tmp/**".into(), "/var/*.log".into()]).unwrap();
        let none = excludes.pruning(&[], false);
        assert!(none.skips(&[b"tmp"], b"x"));
        assert!(none.skips::<&[u8]>(&[], b"tmp"));
        assert!(none.skips(&[b"var"], b"a.log"));
        assert!(!none.skips(&[b"var"], b"a.txt"));
        assert!(!none.skips::<&[u8]>(&[], b"var"));

        let spec = Spec::parse(
            "link /keep /tmp/a/f\n?chmod /var/**/*.log 0600\n",
            std::path::Path::new("s"),
        )
        .unwrap();
        let specs = [spec];
        let with_spec = excludes.pruning(&specs, false);
        // The link's target and the directories on the way to it are read;
        // its siblings are not.
        assert!(!with_spec.skips::<&[u8]>(&[], b"tmp"));
        assert!(!with_spec.skips(&[b"tmp"], b"a"));
        assert!(!with_spec.skips(&[&b"tmp"[..], b"a"], b"f"));
        assert!(with_spec.skips(&[&b"tmp"[..], b"a"], b"g"));
        assert!(with_spec.skips(&[b"tmp"], b"b"));
        // The glob may match any excluded log.
        assert!(!with_spec.skips(&[b"var"], b"a.log"));

        let whiteouts = excludes.pruning(&[], true);
        assert!(!whiteouts.skips(&[b"tmp"], b".wh.x"));
        assert!(whiteouts.skips(&[b"tmp"], b"x"));
        assert!(!Excludes::default()
            .pruning(&[], false)
            .skips(&[b"tmp"], b"x"));
    }
}
