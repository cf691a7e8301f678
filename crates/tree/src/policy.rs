//! Ownership and time policies applied to a whole tree after its sources are
//! layered: what lets a plain user describe an image owned by root, and a
//! reproducible build pin every timestamp.

use crate::model::Tree;
use crate::{Timestamp, TreeError};

/// A range of ids mapped to another range, as in a user namespace's
/// `uid_map`: ids `from..from + count` become `to..to + count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdMap {
    /// First id in the sources.
    pub from: u32,
    /// First id in the image.
    pub to: u32,
    /// How many ids.
    pub count: u32,
}

impl IdMap {
    /// Parses `FROM:TO:COUNT`.
    pub fn parse(text: &str) -> Result<IdMap, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let [from, to, count] = parts[..] else {
            return Err(format!("{text:?}: expected FROM:TO:COUNT"));
        };
        let num = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| format!("{text:?}: {s:?} is not a 32-bit id"))
        };
        let map = IdMap {
            from: num(from)?,
            to: num(to)?,
            count: num(count)?,
        };
        let fits = |start: u32| u64::from(start) + u64::from(map.count) <= 1 << 32;
        if map.count == 0 || !fits(map.from) || !fits(map.to) {
            return Err(format!(
                "{text:?}: the range must hold 1 or more ids below 2^32"
            ));
        }
        Ok(map)
    }

    /// The image id of `id`, if this range covers it.
    fn map(&self, id: u32) -> Option<u32> {
        let offset = id.checked_sub(self.from)?;
        (offset < self.count).then(|| self.to + offset)
    }
}

/// Maps `id` through the first range that covers it; others stay.
fn map_id(maps: &[IdMap], id: u32) -> u32 {
    maps.iter().find_map(|m| m.map(id)).unwrap_or(id)
}

/// The policies of one build: ownership per source tree, then the root's
/// owner and mode and the times on the finished tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// `--uid-map`: source uids to image uids.
    pub uid_map: Vec<IdMap>,
    /// `--gid-map`: source gids to image gids.
    pub gid_map: Vec<IdMap>,
    /// `--all-root`: every entry owned by 0:0 (after the maps, which it overrides).
    pub all_root: bool,
    /// `--root-owner UID:GID` of the root directory.
    pub root_owner: Option<(u32, u32)>,
    /// `--root-mode`: permission bits of the root directory.
    pub root_mode: Option<u16>,
    /// `--timestamp`: every time of every entry.
    pub set_time: Option<i64>,
    /// `SOURCE_DATE_EPOCH`: every time later than this becomes this.
    pub clamp_time: Option<i64>,
}

impl Policy {
    /// Applies the ownership policies (id maps, then `all_root`) to a tree read
    /// from a source (a directory or an archive); explicit spec lines are not
    /// passed through here, so what they set wins.
    pub fn apply_to_source(&self, tree: &mut Tree) {
        for id in tree.reachable() {
            let meta = &mut tree.node_mut(id).meta;
            meta.uid = map_id(&self.uid_map, meta.uid);
            meta.gid = map_id(&self.gid_map, meta.gid);
            if self.all_root {
                (meta.uid, meta.gid) = (0, 0);
            }
        }
    }

    /// Applies what holds for the finished tree: the root's owner and mode,
    /// and the time policies on every entry.
    pub fn apply_to_image(&self, tree: &mut Tree) -> Result<(), TreeError> {
        if let Some(mode) = self.root_mode {
            if mode > 0o7777 {
                return Err(TreeError::Policy(format!(
                    "root mode {mode:o} has bits beyond 07777"
                )));
            }
        }
        for id in tree.reachable() {
            let meta = &mut tree.node_mut(id).meta;
            let mut times = meta.times();
            if self.set_time.is_some() {
                // Every time, creation time too, whether the source had one
                // (a directory) or not (an archive): the same image either way.
                times.crtime.get_or_insert_default();
            }
            let clocks = [&mut times.atime, &mut times.mtime, &mut times.ctime];
            for t in clocks.into_iter().chain(times.crtime.as_mut()) {
                *t = self.time(*t);
            }
            meta.set_times(times);
        }
        let root = &mut tree.node_mut(Tree::ROOT).meta;
        if let Some((uid, gid)) = self.root_owner {
            (root.uid, root.gid) = (uid, gid);
        }
        if let Some(mode) = self.root_mode {
            root.perm = mode;
        }
        Ok(())
    }

    /// A time after the time policies.
    fn time(&self, t: Timestamp) -> Timestamp {
        match (self.set_time, self.clamp_time) {
            (Some(secs), _) => Timestamp { secs, nanos: 0 },
            (None, Some(limit))
                if t > (Timestamp {
                    secs: limit,
                    nanos: 0,
                }) =>
            {
                Timestamp {
                    secs: limit,
                    nanos: 0,
                }
            }
            _ => t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Body, Metadata, Node, NodeId, Times};

    fn meta(uid: u32, secs: i64) -> Metadata {
        Metadata::new(0o755, uid, uid, Times::at(Timestamp { secs, nanos: 7 }))
    }

    fn tree() -> (Tree, NodeId) {
        let mut t = Tree::new(meta(1000, 100));
        let f = t.add(Node {
            meta: meta(100_000, 2_000),
            body: Body::Fifo,
        });
        t.link(Tree::ROOT, b"f", f);
        (t, f)
    }

    #[test]
    fn maps_then_root_owner() {
        let (mut t, f) = tree();
        let policy = Policy {
            uid_map: vec![IdMap::parse("100000:0:65536").unwrap()],
            root_owner: Some((0, 0)),
            root_mode: Some(0o700),
            ..Policy::default()
        };
        policy.apply_to_source(&mut t);
        policy.apply_to_image(&mut t).unwrap();
        assert_eq!(t.node(f).meta.uid, 0);
        assert_eq!(t.node(f).meta.gid, 100_000, "gids are mapped separately");
        assert_eq!(
            (t.node(Tree::ROOT).meta.uid, t.node(Tree::ROOT).meta.perm),
            (0, 0o700)
        );
    }

    #[test]
    fn source_date_epoch_clamps_only_newer_times() {
        let (mut t, f) = tree();
        let policy = Policy {
            clamp_time: Some(1_000),
            ..Policy::default()
        };
        policy.apply_to_image(&mut t).unwrap();
        assert_eq!(
            t.node(f).meta.mtime(),
            Timestamp {
                secs: 1_000,
                nanos: 0
            }
        );
        assert_eq!(
            t.node(Tree::ROOT).meta.mtime(),
            Timestamp {
                secs: 100,
                nanos: 7
            }
        );
        let set = Policy {
            set_time: Some(5),
            all_root: true,
            ..Policy::default()
        };
        set.apply_to_source(&mut t);
        set.apply_to_image(&mut t).unwrap();
        assert_eq!(
            t.node(f).meta.crtime(),
            Some(Timestamp { secs: 5, nanos: 0 })
        );
        assert_eq!(
            t.node(Tree::ROOT).meta.atime(),
            Timestamp { secs: 5, nanos: 0 }
        );
        assert_eq!(t.node(f).meta.uid, 0);
    }

    #[test]
    fn bad_maps_are_refused() {
        assert!(IdMap::parse("1:2").is_err());
        assert!(IdMap::parse("4294967295:0:2").is_err());
        assert!(IdMap::parse("0:0:0").is_err());
        assert!(IdMap::parse("a:0:1").is_err());
    }
}
