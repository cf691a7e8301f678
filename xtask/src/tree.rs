//! What `bench` needs to know about a source tree: how many entries and inodes it has and
//! how much data, so that kiln and mke2fs can be given the same image size and inode count.

use std::collections::HashSet;
use std::fs::{self, Metadata};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The file system block size that `bench` asks both tools for.
pub(crate) const BLOCK_SIZE: u64 = 4096;

/// Counts and sizes of one tree, hard links counted once.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Names in the tree, the root included (as `corpus_stats.py` counts them).
    pub(crate) entries: u64,
    /// Distinct inodes: a file with several hard links is one.
    pub(crate) inodes: u64,
    /// Apparent size of the distinct inodes, in bytes.
    pub(crate) bytes: u64,
    /// The same sizes, each rounded up to whole blocks: a closer guess of the space the data
    /// takes in an image than `bytes`, because most files of a rootfs are far smaller than a
    /// block.
    pub(crate) block_bytes: u64,
}

impl Stats {
    /// Counts one entry, and its size if its inode was not seen before.
    fn add(&mut self, meta: &Metadata, seen: &mut HashSet<(u64, u64)>) {
        self.entries += 1;
        if let Some(key) = inode_key(meta) {
            if !seen.insert(key) {
                return;
            }
        }
        self.inodes += 1;
        self.bytes += meta.len();
        self.block_bytes += meta.len().div_ceil(BLOCK_SIZE) * BLOCK_SIZE;
    }
}

/// Walks `root` without following symbolic links and adds up its entries.
pub(crate) fn stats(root: &Path) -> Result<Stats> {
    let mut stats = Stats::default();
    let mut seen = HashSet::new();
    let meta = fs::symlink_metadata(root).with_context(|| format!("lstat {}", root.display()))?;
    stats.add(&meta, &mut seen);
    // An explicit stack rather than recursion: the torture tree nests 200 levels deep.
    let mut dirs: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("read {}", dir.display()))?;
            // DirEntry::metadata does not follow symbolic links.
            let meta = entry
                .metadata()
                .with_context(|| format!("lstat {}", entry.path().display()))?;
            stats.add(&meta, &mut seen);
            if meta.is_dir() {
                dirs.push(entry.path());
            }
        }
    }
    Ok(stats)
}

/// Makes `dir` holding one sparse file `big` of `size` bytes with `chunk` bytes of data at
/// its start, middle and end (a simple pseudo-random pattern), unless it is already there.
pub(crate) fn make_sparse(dir: &Path, size: u64, chunk: u64) -> Result<()> {
    use std::io::{Seek, SeekFrom, Write};

    let file = dir.join("big");
    if fs::symlink_metadata(&file).is_ok_and(|meta| meta.len() == size) {
        return Ok(());
    }
    fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    let mut out = fs::File::create(&file).with_context(|| format!("create {}", file.display()))?;
    out.set_len(size)?;
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let data: Vec<u8> = (0..chunk)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    for offset in [0, (size / 2) & !0xfff, size - chunk] {
        out.seek(SeekFrom::Start(offset))?;
        out.write_all(&data)?;
    }
    out.sync_all()?;
    Ok(())
}

/// Identifies an inode so that hard links are counted once.
#[cfg(unix)]
fn inode_key(meta: &Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

/// Elsewhere std has no stable inode number, so every name counts as its own inode.
#[cfg(not(unix))]
fn inode_key(_meta: &Metadata) -> Option<(u64, u64)> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> PathBuf {
        crate::repo_root().join("fixtures/example")
    }

    #[test]
    fn counts_the_example_fixture() {
        let stats = stats(&example()).unwrap();
        // The root, bin, etc and its 4 files, usr, usr/bin, hello, usr/share, doc, kiln,
        // README, var, var/log and its README.
        assert_eq!(stats.entries, 17);
        assert_eq!(stats.inodes, 17);
        assert!(stats.bytes > 3000, "{stats:?}");
        assert_eq!(stats.block_bytes % BLOCK_SIZE, 0);
        assert!(stats.block_bytes >= stats.bytes);
    }

    /// The README's main job depends on what git has to keep for this tree: a symbolic
    /// link and an executable bit. A checkout without either (core.symlinks=false, a
    /// file system without modes) would build a different image.
    #[cfg(unix)]
    #[test]
    fn example_fixture_keeps_its_symlink_and_mode() {
        use std::os::unix::fs::PermissionsExt;

        let root = example();
        assert_eq!(
            fs::read_link(root.join("bin")).unwrap(),
            Path::new("usr/bin")
        );
        let hello = fs::symlink_metadata(root.join("usr/bin/hello")).unwrap();
        assert_eq!(hello.permissions().mode() & 0o777, 0o755);
    }
}
