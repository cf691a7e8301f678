//! A FAT image as a source: its tree read into a [`Tree`] like a
//! directory's, and its files read when the new image is written.
//!
//! FAT holds directories and regular files only, with no owners or modes:
//! every entry is owned by 0:0, directories are 0755 and files 0644, or
//! 0444 when read-only (as `kiln extract` restores them, and as the FAT
//! writer marks a file its owner may not write). Each entry keeps its
//! modification time, and its creation time and access date where the
//! entry records them (the access time is the modification time
//! otherwise). The hidden and system bits, and read-only on a directory,
//! which no mode expresses, stay in the tree as [`DosAttributes`] for a
//! FAT image built from it. The root has no entry, hence no times: it gets
//! FAT's epoch, 1980-01-01.
//!
//! A file's data is not copied: the tree names it by a key into a table of
//! first clusters and sizes ([`DataSource::Image`]), and [`FatSource`]
//! maps its chain through the reader again at emit time, after checking
//! that the image has not changed since.
//!
//! The image is untrusted. The tree comes from [`FatReader::walk`], which
//! refuses a directory reached twice, trees deeper than [`MAX_DEPTH`] and
//! absurd path totals, and every file's chain is mapped (and must hold its
//! size) before the tree is returned; so the tree holds one node per
//! directory entry, and no read goes beyond a chain the reader checked.
//!
//! [`MAX_DEPTH`]: super::MAX_DEPTH

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use kiln_tree::{
    escape, split_parent, Body, DataError, DataSource, DosAttributes, FileData, ImageFile,
    ImageFiles, Metadata, Node, NodeId, SourceImage, Times, Tree, Unchanged,
};

use super::{DirEntry, FatReader, FileMap, WalkEntry};
use crate::dirent::{ATTR_HIDDEN, ATTR_READ_ONLY, ATTR_SYSTEM};
use crate::error::ReadError;

/// The permission bits of a directory.
const DIR_PERM: u16 = 0o755;
/// The permission bits of a file.
const FILE_PERM: u16 = 0o644;
/// The permission bits of a read-only file.
const READ_ONLY_PERM: u16 = 0o444;

/// A FAT image whose tree is a source: the reader, shared by the tree it
/// was read into (its files name it), and the first cluster and size of
/// each file, by the key the tree gives it.
#[derive(Debug)]
pub struct FatSource {
    reader: FatReader,
    /// The image as messages name it (`disk.img:1`).
    origin: PathBuf,
    /// The image file's size and modification time when the source was
    /// made: its files' bytes are read later, from an image that must not
    /// have changed.
    stamp: Unchanged,
    /// Each file's first cluster and size, indexed by its key. Filled
    /// while the tree is read, before the source is shared.
    files: Vec<(u32, u32)>,
}

impl FatSource {
    /// The image `reader` reads, named `origin` in messages; refused if
    /// its dirty bit is set ([`ReadError::Dirty`]).
    pub fn new(reader: FatReader, origin: PathBuf) -> Result<FatSource, ReadError> {
        if reader.volume().dirty {
            return Err(ReadError::Dirty);
        }
        let stamp = Unchanged::of(&reader.file)?;
        Ok(FatSource {
            reader,
            origin,
            stamp,
            files: Vec::new(),
        })
    }

    /// Reads the image's tree: every entry under the root, with its
    /// metadata; `entries` (if given) counts them as they are read.
    pub fn read_tree(mut self, entries: Option<&AtomicU64>) -> Result<Tree, ReadError> {
        let root = self.reader.root();
        let walk = self.reader.walk(&root)?;
        // The files' table is filled first, the nodes made after: the
        // nodes name the source, which is shared (and so fixed) from then.
        let keys = self.number_files(&walk)?;
        let source = Arc::new(self);
        let image = SourceImage(Arc::clone(&source) as Arc<dyn ImageFiles>);
        let mut tree = Tree::new(Metadata::new(DIR_PERM, 0, 0, Times::at(root.mtime)));
        // The directories read so far, by path: a walk lists a directory
        // before its entries.
        let mut dirs: HashMap<&[u8], NodeId> = HashMap::from([(&[][..], Tree::ROOT)]);
        let mut files = keys.into_iter();
        for w in walk.iter().skip(1) {
            let (parent, name) = split_parent(&w.path);
            let &dir = dirs.get(parent).ok_or_else(|| {
                ReadError::corrupt(
                    format!("entry /{}", escape(&w.path)),
                    "listed before its directory",
                )
            })?;
            let body = if w.entry.is_dir() {
                Body::Dir(Box::default())
            } else {
                // OK: number_files gave a key to every file of the walk.
                let key = files.next().expect("a key per file");
                let size = u64::from(w.entry.size);
                // No holes: one data range, or none when empty.
                let data = (size > 0).then_some(0..size).into_iter().collect();
                Body::File(FileData::new(
                    DataSource::Image(image.clone(), key),
                    size,
                    data,
                ))
            };
            let node = tree.add(Node {
                body,
                meta: metadata(&w.entry),
            });
            if let Some(dos) = dos_attributes(&w.entry) {
                tree.set_dos_attributes(node, dos);
            }
            tree.link(dir, name, node);
            if w.entry.is_dir() {
                dirs.insert(&w.path, node);
            }
            if let Some(counter) = entries {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        tree.finish();
        Ok(tree)
    }

    /// Maps the chain of every file of `walk` (each must hold its size)
    /// and records its first cluster and size; returns their keys, in the
    /// walk's order.
    fn number_files(&mut self, walk: &[WalkEntry]) -> Result<Vec<u32>, ReadError> {
        let mut keys = Vec::new();
        for w in walk.iter().skip(1).filter(|w| !w.entry.is_dir()) {
            let e = &w.entry;
            self.reader
                .chain_map(e.cluster, e.size, &|| format!("file /{}", escape(&w.path)))?;
            let key = u32::try_from(self.files.len()).map_err(|_| {
                ReadError::corrupt("directory tree", "more files than a source may hold")
            })?;
            self.files.push((e.cluster, e.size));
            keys.push(key);
        }
        Ok(keys)
    }
}

impl ImageFiles for FatSource {
    fn origin(&self) -> &Path {
        &self.origin
    }

    fn open_file(&self, key: u32) -> Result<Box<dyn ImageFile + '_>, DataError> {
        self.stamp.check(&self.reader.file, "source image")?;
        let what = || format!("file {key} of the image");
        let &(cluster, size) = usize::try_from(key)
            .ok()
            .and_then(|i| self.files.get(i))
            .ok_or_else(|| DataError::Corrupt(format!("{}: no such file", what())))?;
        let map = self
            .reader
            .chain_map(cluster, size, &what)
            .map_err(|e| DataError::Corrupt(e.to_string()))?;
        Ok(Box::new(OpenFile {
            reader: &self.reader,
            key,
            map,
        }))
    }
}

/// A file of a source image, its chain mapped.
#[derive(Debug)]
struct OpenFile<'a> {
    reader: &'a FatReader,
    key: u32,
    map: FileMap,
}

impl ImageFile for OpenFile<'_> {
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> Result<(), DataError> {
        self.reader
            .read_file(&self.map, pos, buf)
            .map_err(|e| DataError::Corrupt(format!("file {} of the image: {e}", self.key)))
    }

    /// The run of clusters holding byte `pos`, from there to its end (or
    /// the file's, or `len` bytes, whichever comes first).
    fn backing(&self, pos: u64, len: u64) -> Option<(&File, u64, u64)> {
        let map = &self.map;
        if pos >= map.size {
            return None;
        }
        let i = map.starts.partition_point(|&s| s <= pos).checked_sub(1)?;
        let run = map.runs.get(i)?;
        let into = pos - map.starts.get(i)?;
        let cb = u64::from(self.reader.vol.cluster_bytes());
        let held = (u64::from(run.len) * cb)
            .checked_sub(into)?
            .min(map.size - pos)
            .min(len);
        let at = self
            .reader
            .vol
            .cluster_offset(run.first)
            .checked_add(into)?;
        Some((&self.reader.file, self.reader.base.checked_add(at)?, held))
    }
}

/// The tree metadata of `e`: owner 0:0, the mode FAT's attributes imply,
/// its times.
fn metadata(e: &DirEntry) -> Metadata {
    let perm = if e.is_dir() {
        DIR_PERM
    } else if e.read_only() {
        READ_ONLY_PERM
    } else {
        FILE_PERM
    };
    let times = Times {
        atime: e.atime.unwrap_or(e.mtime),
        mtime: e.mtime,
        ctime: e.mtime,
        crtime: e.crtime,
    };
    Metadata::new(perm, 0, 0, times)
}

/// The DOS attributes of `e` that its mode does not carry (hidden, system,
/// a directory's read-only), if it has any.
fn dos_attributes(e: &DirEntry) -> Option<DosAttributes> {
    let dos = DosAttributes {
        read_only: e.is_dir() && e.attributes & ATTR_READ_ONLY != 0,
        hidden: e.attributes & ATTR_HIDDEN != 0,
        system: e.attributes & ATTR_SYSTEM != 0,
    };
    (dos != DosAttributes::default()).then_some(dos)
}
