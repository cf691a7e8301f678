//! Directories read back: the entries of one directory (blocks, hash-index
//! leaves or inline), path lookup, and a walk of the whole tree that yields
//! inode numbers (which `ext4-view` does not expose).

use std::collections::HashSet;

use super::map::FileMap;
use super::ImageReader;
use crate::dir::{self, DirEntryView};
use crate::error::ReadError;
use crate::features;
use crate::inline::INLINE_DATA_FL;
use crate::inode::mode;
use crate::layout::ROOT_INO;
use crate::plan::LOST_FOUND;

/// Bytes before an inline directory's entries: the parent's inode number.
const INLINE_PARENT: usize = 4;
/// The deepest path a walk follows: a corrupt image can link a directory
/// into its own subtree, and real trees are far shallower.
const MAX_DEPTH: usize = 4096;

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
    /// The entries of directory `ino` other than `.` and `..`, in on-disk
    /// order (hash order in indexed directories).
    pub fn read_dir(&self, ino: u32) -> Result<Vec<DirEntryView>, ReadError> {
        let inode = self.inode(ino)?;
        if inode.kind() != mode::S_IFDIR {
            return Err(ReadError::CorruptInode {
                ino,
                what: "is not a directory".into(),
            });
        }
        let filetype = self.sb.features.has(features::FILETYPE);
        let corrupt = |what: String| ReadError::CorruptInode {
            ino,
            what: format!("directory: {what}"),
        };
        let mut out = Vec::new();
        match self.file_map(ino, &inode)? {
            FileMap::Inline(bytes) if inode.flags & INLINE_DATA_FL != 0 => {
                // i_block after the parent, then system.data: entries never
                // straddle the two.
                let split = bytes.len().min(60);
                for area in [&bytes[INLINE_PARENT.min(split)..split], &bytes[split..]] {
                    out.extend(dir::decode_entries(area, filetype).map_err(corrupt)?);
                }
            }
            FileMap::Inline(_) => return Err(corrupt("no blocks".into())),
            map @ FileMap::Blocks { .. } => {
                let bs = self.sb.block_size as usize;
                let mut block = vec![0u8; bs];
                for at in (0..inode.size).step_by(bs) {
                    self.read_file(&map, at, &mut block)?;
                    out.extend(dir::decode_entries(&block, filetype).map_err(corrupt)?);
                }
            }
        }
        out.retain(|e| e.name != b"." && e.name != b"..");
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
                    path: String::from_utf8_lossy(path).into_owned(),
                })?;
        }
        Ok(ino)
    }

    /// Every entry under `start`, depth first, each directory's entries
    /// sorted by name, `start` itself first (alone if not a directory). A
    /// directory reached twice (a loop in a corrupt image) is an error.
    pub fn walk(&self, start: u32) -> Result<Vec<WalkEntry>, ReadError> {
        let mut out = vec![WalkEntry {
            path: Vec::new(),
            ino: start,
            file_type: 0,
        }];
        if self.inode(start)?.kind() == mode::S_IFDIR {
            let mut seen = HashSet::from([start]);
            self.walk_into(start, &[], 0, &mut seen, &mut out)?;
        }
        Ok(out)
    }

    /// Appends the subtree of directory `ino` at `prefix` to `out`.
    fn walk_into(
        &self,
        ino: u32,
        prefix: &[u8],
        depth: usize,
        seen: &mut HashSet<u32>,
        out: &mut Vec<WalkEntry>,
    ) -> Result<(), ReadError> {
        let mut entries = self.read_dir(ino)?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for e in entries {
            let mut path = prefix.to_vec();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend(&e.name);
            // The entry's file type says, with the filetype feature: no
            // inode read per entry just to know whether to descend.
            let is_dir = match e.file_type {
                0 => self.inode(e.ino)?.kind() == mode::S_IFDIR,
                t => t == dir::ftype::DIR,
            };
            out.push(WalkEntry {
                path: path.clone(),
                ino: e.ino,
                file_type: e.file_type,
            });
            if is_dir {
                if !seen.insert(e.ino) || depth >= MAX_DEPTH {
                    return Err(ReadError::CorruptInode {
                        ino: e.ino,
                        what: format!(
                            "directory reached again at {}",
                            String::from_utf8_lossy(&path)
                        ),
                    });
                }
                self.walk_into(e.ino, &path, depth + 1, seen, out)?;
            }
        }
        Ok(())
    }
}
