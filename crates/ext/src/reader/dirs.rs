//! Directories read back: the entries of one directory (blocks, hash-index
//! leaves or inline), path lookup, and a walk of the whole tree that yields
//! inode numbers (which `ext4-view` does not expose).

use std::collections::HashSet;

use super::map::FileMap;
use super::ImageReader;
use crate::dir::{self, DirEntryView};
use crate::error::ReadError;
use crate::features;
use crate::htree::INDEX_FL;
use crate::inline::INLINE_DATA_FL;
use crate::inode::mode;
use crate::layout::ROOT_INO;
use crate::plan::LOST_FOUND;

/// Bytes before an inline directory's entries: the parent's inode number.
const INLINE_PARENT: usize = 4;
/// The deepest path a walk follows: a corrupt image can link a directory
/// into its own subtree, and real trees are far shallower.
pub(crate) const MAX_DEPTH: usize = 4096;
/// The most symbolic links one [`ImageReader::resolve`] follows (the
/// kernel's `MAXSYMLINKS`): a loop of links is then an error, not a hang.
pub(crate) const MAX_SYMLINKS: usize = 40;
/// The most bytes all the paths of one walk may add up to: far beyond any
/// real tree (the Linux source tree's add up to about 5 MB), and a bound on
/// what a corrupt image can make a walk hold.
const MAX_PATH_BYTES: u64 = 512 << 20;

/// One entry of a walk: its path from the root, and what it links to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalkEntry {
    /// The path from the start of the walk, components joined by `/`,
    /// without a leading `/` (empty for the start itself).
    pub path: Vec<u8>,
    /// The inode the entry links to.
    pub ino: u32,
    /// The `file_type` byte of its directory entry (0 for the start).
    pub file_type: u8,
}

impl WalkEntry {
    /// Whether the entry is the root's lost+found or below it (in a walk
    /// from the root): the filesystem's own, not content.
    pub fn in_lost_found(&self) -> bool {
        self.path
            .strip_prefix(LOST_FOUND)
            .is_some_and(|rest| rest.is_empty() || rest[0] == b'/')
    }
}

impl ImageReader {
    /// The entries of directory `ino` other than its own `.` and `..`, in
    /// on-disk order (hash order in indexed directories).
    ///
    /// Every name is one path component: empty names, `.` and `..` beyond
    /// the real dot entries, names holding `/` or NUL, and a name twice in
    /// the directory are corrupt, so no caller can be led out of a
    /// destination or into listing one entry twice.
    pub fn read_dir(&self, ino: u32) -> Result<Vec<DirEntryView>, ReadError> {
        let inode = self.inode(ino)?;
        let corrupt = |what: String| ReadError::CorruptInode {
            ino,
            what: format!("directory: {what}"),
        };
        if inode.kind() != mode::S_IFDIR {
            return Err(ReadError::CorruptInode {
                ino,
                what: "is not a directory".into(),
            });
        }
        let bs = u64::from(self.sb.block_size);
        if inode.size > self.sb.blocks_count.saturating_mul(bs) {
            return Err(corrupt(format!(
                "size {} is larger than the filesystem",
                inode.size
            )));
        }
        let filetype = self.sb.features.has(features::FILETYPE);
        let mut out = Vec::new();
        match self.file_map(ino, &inode)? {
            FileMap::Inline(bytes) if inode.flags & INLINE_DATA_FL != 0 => {
                // i_block after the parent, then system.data: entries never
                // straddle the two. Inline directories have no dot entries.
                let split = bytes.len().min(60);
                for area in [&bytes[INLINE_PARENT.min(split)..split], &bytes[split..]] {
                    out.extend(dir::decode_entries(area, filetype).map_err(corrupt)?);
                }
            }
            FileMap::Inline(_) => return Err(corrupt("no blocks".into())),
            map @ FileMap::Blocks { .. } => {
                let seed = self.inode_csum_seed(ino, &inode);
                let indexed = inode.flags & INDEX_FL != 0;
                let mut block = vec![0u8; bs as usize];
                for lblk in 0..inode.size / bs {
                    self.read_file(&map, lblk * bs, &mut block)?;
                    if let Some(seed) = seed {
                        if !dir::block_checksum_matches(&block, lblk, indexed, seed) {
                            return Err(ReadError::BadChecksum {
                                what: format!("directory block {lblk} of inode {ino}"),
                            });
                        }
                    }
                    let mut entries = dir::decode_entries(&block, filetype).map_err(corrupt)?;
                    if lblk == 0 {
                        drop_dot_entries(&mut entries);
                    }
                    out.extend(entries);
                }
            }
        }
        check_names(&out).map_err(corrupt)?;
        Ok(out)
    }

    /// The inode at `path` (components separated by `/`; empty or `/` is
    /// the root), following no symlinks.
    pub fn lookup(&self, path: &[u8]) -> Result<u32, ReadError> {
        let mut ino = ROOT_INO;
        for name in path.split(|&c| c == b'/').filter(|c| !c.is_empty()) {
            let entries = self.read_dir(ino)?;
            ino = entries
                .into_iter()
                .find(|e| e.name == name)
                .map(|e| e.ino)
                .ok_or_else(|| ReadError::NotFound {
                    path: kiln_tree::escape(path),
                })?;
        }
        Ok(ino)
    }

    /// The inode at `path` inside the image, following the symlinks met on
    /// the way (and a final one if `follow_last`) as the kernel would with
    /// the image as its root: `.` and `..` are resolved (never above the
    /// root), an absolute target starts again from the root, and at most 40
    /// links are followed (the kernel's `MAXSYMLINKS`).
    pub fn resolve(&self, path: &[u8], follow_last: bool) -> Result<u32, ReadError> {
        let not_found = || ReadError::NotFound {
            path: kiln_tree::escape(path),
        };
        // The inodes from the root to where the walk is, and whether the
        // last is a directory.
        let mut stack = vec![ROOT_INO];
        let mut at_dir = self.inode(ROOT_INO)?.kind() == mode::S_IFDIR;
        let mut pending: Vec<Vec<u8>> = components(path);
        let mut hops = 0;
        while let Some(name) = pending.pop() {
            match &name[..] {
                b"." => continue,
                b".." => {
                    if stack.len() > 1 {
                        stack.pop();
                        // Every inode below the top was entered as a directory.
                        at_dir = true;
                    }
                    continue;
                }
                _ => {}
            }
            if !at_dir {
                return Err(not_found());
            }
            // OK to unwrap: the stack never loses the root.
            let dir = *stack.last().expect("the root");
            let ino = self
                .read_dir(dir)?
                .into_iter()
                .find(|e| e.name == name)
                .map(|e| e.ino)
                .ok_or_else(not_found)?;
            let inode = self.inode(ino)?;
            if inode.kind() == mode::S_IFLNK && (follow_last || !pending.is_empty()) {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(ReadError::CorruptInode {
                        ino,
                        what: format!(
                            "more than {MAX_SYMLINKS} symbolic links on the way to {}",
                            kiln_tree::escape(path)
                        ),
                    });
                }
                let target = self.read_link(ino, &inode)?;
                if target.starts_with(b"/") {
                    stack.truncate(1);
                    at_dir = true;
                }
                pending.extend(components(&target));
            } else {
                stack.push(ino);
                at_dir = inode.kind() == mode::S_IFDIR;
            }
        }
        // OK to unwrap: the stack never loses the root.
        Ok(*stack.last().expect("the root"))
    }

    /// Every entry under `start`, depth first, each directory's entries
    /// sorted by name, `start` itself first (alone if not a directory). A
    /// directory reached twice (a loop, or a graph of shared directories, in
    /// a corrupt image), directories nested deeper than 4096 levels, and
    /// paths adding up to more than 512 MiB are errors: each entry holds its
    /// whole path, and this bounds what a walk can hold.
    pub fn walk(&self, start: u32) -> Result<Vec<WalkEntry>, ReadError> {
        let mut walk = Walk {
            out: vec![WalkEntry {
                path: Vec::new(),
                ino: start,
                file_type: 0,
            }],
            seen: HashSet::from([start]),
            path_bytes: 0,
        };
        if self.inode(start)?.kind() == mode::S_IFDIR {
            self.walk_into(start, &[], 0, &mut walk)?;
        }
        Ok(walk.out)
    }

    /// Appends the subtree of directory `ino` at `prefix` to the walk.
    fn walk_into(
        &self,
        ino: u32,
        prefix: &[u8],
        depth: usize,
        walk: &mut Walk,
    ) -> Result<(), ReadError> {
        let mut entries = self.read_dir(ino)?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for e in entries {
            let mut path = prefix.to_vec();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend(&e.name);
            walk.path_bytes += path.len() as u64;
            if walk.path_bytes > MAX_PATH_BYTES {
                return Err(ReadError::CorruptInode {
                    ino,
                    what: format!(
                        "the paths of the tree add up to more than {MAX_PATH_BYTES} bytes"
                    ),
                });
            }
            // The entry's file type says, with the filetype feature: no
            // inode read per entry just to know whether to descend.
            let is_dir = match e.file_type {
                0 => self.inode(e.ino)?.kind() == mode::S_IFDIR,
                t => t == dir::ftype::DIR,
            };
            walk.out.push(WalkEntry {
                path: path.clone(),
                ino: e.ino,
                file_type: e.file_type,
            });
            if is_dir {
                let what = if !walk.seen.insert(e.ino) {
                    "directory reached twice"
                } else if depth >= MAX_DEPTH {
                    "directories nest deeper than 4096 levels"
                } else {
                    self.walk_into(e.ino, &path, depth + 1, walk)?;
                    continue;
                };
                return Err(ReadError::CorruptInode {
                    ino: e.ino,
                    what: format!("{what}, at {}", kiln_tree::escape(&path)),
                });
            }
        }
        Ok(())
    }
}

/// A walk in progress.
struct Walk {
    out: Vec<WalkEntry>,
    /// The directories entered so far.
    seen: HashSet<u32>,
    /// The bytes of every path in `out`.
    path_bytes: u64,
}

/// The non-empty components of a `/`-separated path, last first (the
/// order [`ImageReader::resolve`] pops them in).
fn components(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&c| c == b'/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(<[u8]>::to_vec)
        .collect()
}

/// Removes a directory's own `.` and `..`: the first two entries of its
/// first block, where the writer and the kernel put them.
fn drop_dot_entries(entries: &mut Vec<DirEntryView>) {
    let dots = entries
        .iter()
        .zip([&b"."[..], b".."])
        .take_while(|(e, dot)| e.name == *dot)
        .count();
    entries.drain(..dots);
}

/// Refuses a name that is not one path component (empty, `.`, `..`, or
/// holding `/` or NUL), and a name that appears twice.
fn check_names(entries: &[DirEntryView]) -> Result<(), String> {
    let mut seen = HashSet::with_capacity(entries.len());
    for e in entries {
        let why = if e.name.is_empty() {
            Some("is empty")
        } else if e.name == b"." || e.name == b".." {
            Some("is a second dot entry")
        } else if e.name.contains(&b'/') {
            Some("holds a '/'")
        } else if e.name.contains(&0) {
            Some("holds a NUL byte")
        } else if !seen.insert(&e.name[..]) {
            Some("appears twice")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(format!(
                "the name \"{}\" (inode {}) {why}",
                kiln_tree::escape(&e.name),
                e.ino
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &[u8]) -> DirEntryView {
        DirEntryView {
            ino: 12,
            file_type: 1,
            name: name.to_vec(),
        }
    }

    #[test]
    fn only_the_first_two_dot_entries_are_the_directory_s_own() {
        let mut entries = vec![entry(b"."), entry(b".."), entry(b"a"), entry(b"..")];
        drop_dot_entries(&mut entries);
        assert_eq!(entries, [entry(b"a"), entry(b"..")]);
        assert!(check_names(&entries)
            .unwrap_err()
            .contains("second dot entry"));
    }

    #[test]
    fn names_must_be_single_components_once_each() {
        assert!(check_names(&[entry(b"a"), entry(b"b")]).is_ok());
        for (names, why) in [
            (&[&b"../../x"[..]][..], "holds a '/'"),
            (&[b"a\0b"], "NUL"),
            (&[b""], "is empty"),
            (&[b"."], "second dot entry"),
            (&[b"dup", b"x", b"dup"], "appears twice"),
        ] {
            let entries: Vec<_> = names.iter().map(|n| entry(n)).collect();
            let err = check_names(&entries).unwrap_err();
            assert!(err.contains(why) && err.contains("inode 12"), "{err}");
        }
        let err = check_names(&[entry(b"\x1b[31m")]).map(|_| ()).err();
        assert!(
            err.is_none(),
            "control characters are legal, only escaped when shown"
        );
    }
}
