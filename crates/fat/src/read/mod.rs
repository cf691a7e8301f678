//! [`FatReader`]: kiln's reader of FAT12/16/32 images (VFAT long names),
//! from the writer's own offsets and decoders.
//!
//! Every image is untrusted. The boot sector is checked (`bpb.rs`) before
//! anything is read by it, and the volume must fit its partition or file;
//! the FAT is read once (at most the bytes that map the volume's
//! clusters, which the volume holds); every chain is walked by `chain.rs`,
//! bounded by what it is for (a file's size, the largest directory FAT
//! allows) and refused where it loops, leaves the volume or runs into a
//! free or bad cluster; directories are decoded by `dir.rs`, whose names
//! are single path components, each once per directory; a walk refuses a
//! directory reached twice. So no command allocates or loops beyond what
//! the image's size allows. `check.rs` judges the rest: cross-linked and
//! lost clusters, chains longer than their files, FSInfo's free count,
//! FAT copies that differ.

use std::collections::HashSet;
use std::fs::File;
use std::path::Path;

use kiln_tree::{escape, Timestamp};

use crate::dirent::{ATTR_DIRECTORY, DIR_ENTRY_SIZE};
use crate::error::ReadError;
use crate::name::fold;
use crate::table::{get, Link};
use crate::time::FAT_EPOCH;
use crate::FatVariant;

pub(crate) mod bpb;
mod chain;
mod check;
pub(crate) mod dir;
mod source;

pub use bpb::{probe, Volume};
pub use chain::Run;
pub use check::CheckReport;
pub use dir::DirEntry;
pub use source::FatSource;

/// The most entries of a directory (the FAT specification's limit, which
/// the writer keeps too): bounds every directory's chain.
const MAX_DIR_BYTES: u64 = crate::plan::MAX_DIR_ENTRIES * DIR_ENTRY_SIZE as u64;
/// The deepest path a walk follows: a corrupt image can link a directory
/// into its own subtree, and real trees are far shallower.
pub const MAX_DEPTH: usize = 4096;
/// The most bytes all the paths of one walk may add up to: far beyond any
/// real tree, and a bound on what a corrupt image can make a walk hold.
const MAX_PATH_BYTES: u64 = 512 << 20;

/// One entry of a walk: its path from the start, and its entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalkEntry {
    /// The path from the start of the walk, components joined by `/`,
    /// without a leading `/` (empty for the start itself).
    pub path: Vec<u8>,
    /// Its directory entry (the start's is the one looked up).
    pub entry: DirEntry,
}

/// Where a file's bytes are: its chain as runs, and its size.
#[derive(Clone, Debug)]
pub struct FileMap {
    runs: Vec<Run>,
    /// Byte offset in the file of each run's first byte.
    starts: Vec<u64>,
    size: u64,
}

impl FileMap {
    /// The file's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Its clusters, as runs, in file order.
    pub fn runs(&self) -> &[Run] {
        &self.runs
    }
}

/// FSInfo's record (FAT32): what the last writer counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsInfo {
    /// `FSI_Free_Count`; 0xFFFFFFFF: unknown.
    pub free_count: u32,
    /// `FSI_Nxt_Free`; 0xFFFFFFFF: unknown.
    pub next_free: u32,
}

/// The clusters the FAT marks, counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Free clusters.
    pub free: u32,
    /// Clusters in use (in chains, or lost).
    pub used: u32,
    /// Clusters marked bad.
    pub bad: u32,
}

/// An open FAT image: its checked boot sector and its FAT.
#[derive(Debug)]
pub struct FatReader {
    file: File,
    /// Where the volume starts in the file (a partition's offset).
    base: u64,
    vol: Volume,
    /// The active FAT's bytes that map the volume's clusters.
    fat: Vec<u8>,
    fsinfo: Option<FsInfo>,
}

impl FatReader {
    /// Opens the FAT image at `path`.
    pub fn open(path: &Path) -> Result<FatReader, ReadError> {
        FatReader::open_at(path, 0, None)
    }

    /// Opens the FAT volume that starts `base` bytes into the file at
    /// `path` (a partition of a disk image) and spans at most `len` bytes;
    /// a volume larger than that (or than the file) is refused.
    pub fn open_at(path: &Path, base: u64, len: Option<u64>) -> Result<FatReader, ReadError> {
        let file = File::open(path)?;
        let (container, avail) = match len {
            Some(len) => ("partition", len),
            None => ("image file", file.metadata()?.len().saturating_sub(base)),
        };
        let mut head = [0u8; bpb::BOOT_SECTOR];
        if kiln_host::read_at(&file, &mut head, base)? < head.len() {
            return Err(ReadError::corrupt(
                "boot sector",
                "the image ends before it",
            ));
        }
        let vol = bpb::decode(&head)?;
        if vol.size() > avail {
            return Err(ReadError::LargerThanContainer {
                fs_bytes: vol.size(),
                container,
                len: avail,
            });
        }
        let mut reader = FatReader {
            file,
            base,
            vol,
            fat: Vec::new(),
            fsinfo: None,
        };
        let (at, _) = reader.vol.fat_range(reader.vol.active_fat);
        // OK to cast: at most the FAT's size, which the file holds.
        let mut fat = vec![0u8; reader.vol.fat_bytes_used() as usize];
        reader.read_exact(at, &mut fat, "FAT")?;
        reader.fat = fat;
        reader.fsinfo = reader.read_fsinfo()?;
        Ok(reader)
    }

    /// FSInfo, if the boot sector names a sector that carries it.
    fn read_fsinfo(&self) -> Result<Option<FsInfo>, ReadError> {
        let Some(sector) = self.vol.fsinfo_sector else {
            return Ok(None);
        };
        let mut s = [0u8; bpb::BOOT_SECTOR];
        self.read_exact(self.vol.sector_offset(u64::from(sector)), &mut s, "FSInfo")?;
        Ok(
            bpb::decode_fsinfo(&s).map(|(free_count, next_free)| FsInfo {
                free_count,
                next_free,
            }),
        )
    }

    /// The checked boot sector.
    pub fn volume(&self) -> &Volume {
        &self.vol
    }

    /// FSInfo's record, if the volume has a valid one (FAT32).
    pub fn fsinfo(&self) -> Option<FsInfo> {
        self.fsinfo
    }

    /// The active FAT's bytes.
    pub(crate) fn fat(&self) -> &[u8] {
        &self.fat
    }

    /// Counts the free, used and bad clusters of the FAT.
    pub fn usage(&self) -> Usage {
        let mut u = Usage {
            free: 0,
            used: 0,
            bad: 0,
        };
        for n in 2..self.vol.clusters.saturating_add(2) {
            match get(self.vol.variant, &self.fat, n) {
                Some(Link::Free) => u.free += 1,
                Some(Link::Bad) | None => u.bad += 1,
                Some(_) => u.used += 1,
            }
        }
        u
    }

    /// The volume label: the root directory's label entry, else the boot
    /// sector's (`NO NAME` and blank count as none).
    pub fn label(&self) -> Result<Option<Vec<u8>>, ReadError> {
        let root = self.decode_dir(&self.root())?;
        let label = root.label.or_else(|| self.vol.label.clone());
        Ok(label.filter(|l| !l.is_empty() && l != b"NO NAME"))
    }

    /// The root directory as an entry (no name, no times of its own).
    pub fn root(&self) -> DirEntry {
        DirEntry {
            name: Vec::new(),
            short_name: String::new(),
            attributes: ATTR_DIRECTORY,
            size: 0,
            cluster: self.vol.root_cluster,
            mtime: Timestamp {
                secs: FAT_EPOCH,
                nanos: 0,
            },
            crtime: None,
            atime: None,
        }
    }

    /// Whether `dir` is the root directory (on FAT12/16, a directory entry
    /// with cluster 0 means the root, as `..` entries name it).
    fn is_root(&self, dir: &DirEntry) -> bool {
        dir.cluster == self.vol.root_cluster
    }

    /// The entries of directory `dir` other than its dot entries, in
    /// on-disk order. Names are checked (see `dir.rs`).
    pub fn read_dir(&self, dir: &DirEntry) -> Result<Vec<DirEntry>, ReadError> {
        Ok(self.decode_dir(dir)?.entries)
    }

    /// The name errors give the directory `dir`.
    fn dir_name(dir: &DirEntry) -> String {
        format!("directory at cluster {}", dir.cluster)
    }

    /// Reads and decodes directory `dir`.
    fn decode_dir(&self, dir: &DirEntry) -> Result<dir::Decoded, ReadError> {
        let bytes = self.dir_bytes(dir)?;
        let fat32 = self.vol.variant == FatVariant::Fat32;
        dir::decode(&bytes, self.is_root(dir), fat32)
            .map_err(|e| ReadError::corrupt(Self::dir_name(dir), e))
    }

    /// The bytes of directory `dir`: the fixed root, or its chain (at most
    /// the largest directory FAT allows).
    fn dir_bytes(&self, dir: &DirEntry) -> Result<Vec<u8>, ReadError> {
        if self.vol.variant != FatVariant::Fat32 && dir.cluster == 0 {
            let (at, len) = self.vol.root_range();
            // OK to cast: at most 65,535 entries of 32 bytes.
            let mut bytes = vec![0u8; len as usize];
            self.read_exact(at, &mut bytes, "root directory")?;
            return Ok(bytes);
        }
        let cb = u64::from(self.vol.cluster_bytes());
        let limit = MAX_DIR_BYTES.div_ceil(cb);
        let chain = chain::walk(&self.vol, &self.fat, dir.cluster, limit)
            .map_err(|e| ReadError::corrupt(Self::dir_name(dir), format!("its chain: {e}")))?;
        if !chain.ended {
            return Err(ReadError::corrupt(
                Self::dir_name(dir),
                "longer than the 65,536 entries a FAT directory may hold",
            ));
        }
        let map = self.map_of(chain.runs, chain.len * cb);
        // OK to cast: at most MAX_DIR_BYTES rounded up to a cluster.
        let mut bytes = vec![0u8; map.size as usize];
        self.read_file(&map, 0, &mut bytes)?;
        Ok(bytes)
    }

    /// Looks up the absolute `path` (components compared as FAT compares
    /// names: without case).
    pub fn lookup(&self, path: &[u8]) -> Result<DirEntry, ReadError> {
        let mut at = self.root();
        let mut walked: Vec<u8> = Vec::new();
        for name in path.split(|&c| c == b'/').filter(|c| !c.is_empty()) {
            if !at.is_dir() {
                return Err(ReadError::NotADirectory {
                    path: format!("/{}", escape(&walked)),
                });
            }
            if !walked.is_empty() {
                walked.push(b'/');
            }
            walked.extend(name);
            let want = fold(&String::from_utf8_lossy(name));
            let entries = self.read_dir(&at)?;
            at = entries
                .into_iter()
                .find(|e| fold(&String::from_utf8_lossy(&e.name)) == want)
                .ok_or_else(|| ReadError::NotFound {
                    path: format!("/{}", escape(&walked)),
                })?;
        }
        Ok(at)
    }

    /// Every entry from `start` down (`start` first, with an empty path):
    /// each directory's entries in name order, then those of its
    /// subdirectories, depth first. A directory reached twice, a tree
    /// deeper than [`MAX_DEPTH`] or paths adding up to absurd sizes are
    /// corrupt.
    pub fn walk(&self, start: &DirEntry) -> Result<Vec<WalkEntry>, ReadError> {
        let mut out = vec![WalkEntry {
            path: Vec::new(),
            entry: start.clone(),
        }];
        if !start.is_dir() {
            return Ok(out);
        }
        let mut seen = HashSet::from([start.cluster]);
        let mut path_bytes = 0u64;
        let mut stack = vec![(start.clone(), Vec::new(), 0usize)];
        while let Some((dir, prefix, depth)) = stack.pop() {
            let mut subdirs = Vec::new();
            let mut entries = self.read_dir(&dir)?;
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            for e in entries {
                let path = join(&prefix, &e.name);
                path_bytes += path.len() as u64;
                if path_bytes > MAX_PATH_BYTES {
                    return Err(ReadError::corrupt(
                        "directory tree",
                        "its paths add up to more than 512 MiB",
                    ));
                }
                if e.is_dir() {
                    if !seen.insert(e.cluster) {
                        return Err(ReadError::corrupt(
                            format!("directory /{}", escape(&path)),
                            format!("cluster {} is reached twice (a loop)", e.cluster),
                        ));
                    }
                    if depth >= MAX_DEPTH {
                        return Err(ReadError::corrupt(
                            format!("directory /{}", escape(&path)),
                            format!("nested deeper than {MAX_DEPTH} levels"),
                        ));
                    }
                    subdirs.push((e.clone(), path.clone(), depth + 1));
                }
                out.push(WalkEntry { path, entry: e });
            }
            stack.extend(subdirs.into_iter().rev());
        }
        Ok(out)
    }

    /// Where file `e`'s bytes are: its chain, which must hold its size.
    pub fn file_map(&self, e: &DirEntry) -> Result<FileMap, ReadError> {
        self.chain_map(e.cluster, e.size, &|| format!("file {}", escape(&e.name)))
    }

    /// Where the `size` bytes of the file whose chain starts at `cluster`
    /// are (see [`file_map`](Self::file_map)); `what` names the file in
    /// errors.
    pub(crate) fn chain_map(
        &self,
        cluster: u32,
        size: u32,
        what: &dyn Fn() -> String,
    ) -> Result<FileMap, ReadError> {
        let size = u64::from(size);
        if size == 0 {
            return Ok(self.map_of(Vec::new(), 0));
        }
        let cb = u64::from(self.vol.cluster_bytes());
        let need = size.div_ceil(cb);
        let chain = chain::walk(&self.vol, &self.fat, cluster, need)
            .map_err(|b| ReadError::corrupt(what(), format!("its chain: {b}")))?;
        if chain.len < need {
            return Err(ReadError::corrupt(
                what(),
                format!(
                    "{size} bytes need {need} clusters, its chain has {}",
                    chain.len
                ),
            ));
        }
        Ok(self.map_of(chain.runs, size))
    }

    /// The map of `runs` holding `size` bytes.
    fn map_of(&self, runs: Vec<Run>, size: u64) -> FileMap {
        let cb = u64::from(self.vol.cluster_bytes());
        let mut starts = Vec::with_capacity(runs.len());
        let mut at = 0u64;
        for r in &runs {
            starts.push(at);
            at += u64::from(r.len) * cb;
        }
        FileMap { runs, starts, size }
    }

    /// Reads `buf.len()` bytes of the file `map` from `pos`; a range
    /// beyond its size is an error.
    pub fn read_file(&self, map: &FileMap, pos: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let end = pos.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > map.size) {
            return Err(ReadError::corrupt(
                "file",
                format!("a read of {} bytes at {pos} is past its end", buf.len()),
            ));
        }
        let cb = u64::from(self.vol.cluster_bytes());
        let mut done = 0usize;
        while done < buf.len() {
            let at = pos + done as u64;
            // The run holding `at`: the last that starts at or before it.
            let i = map.starts.partition_point(|&s| s <= at) - 1;
            let run = map.runs[i];
            let into = at - map.starts[i];
            let left = u64::from(run.len) * cb - into;
            // OK to cast: at most what is left of `buf`.
            let n = left.min((buf.len() - done) as u64) as usize;
            let disk = self.vol.cluster_offset(run.first) + into;
            self.read_exact(disk, &mut buf[done..done + n], "data cluster")?;
            done += n;
        }
        Ok(())
    }

    /// Reads `buf` at `off` from the volume's start; an image that ends
    /// first is corrupt.
    pub(crate) fn read_exact(
        &self,
        off: u64,
        buf: &mut [u8],
        what: &'static str,
    ) -> Result<(), ReadError> {
        let n = kiln_host::read_at(&self.file, buf, self.base + off)?;
        if n < buf.len() {
            return Err(ReadError::corrupt(
                what,
                format!("the image ends at byte {} of the volume", off + n as u64),
            ));
        }
        Ok(())
    }
}

/// `prefix/name`, or `name` when `prefix` is empty.
fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = prefix.to_vec();
    if !path.is_empty() {
        path.push(b'/');
    }
    path.extend(name);
    path
}
