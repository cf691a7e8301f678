//! `kiln verify` of a FAT image: what FAT keeps of the tree compared
//! entry by entry, then the volume's structures checked
//! ([`kiln_fat::FatReader::check`]).
//!
//! FAT keeps names, types (directory or file), file bytes and times, not
//! owners, modes, links or xattrs. Each source name must be found as the
//! entry's long name (or the short name the writer gave an 8.3 name,
//! which reads back the same); the modification time is compared as the
//! writer stores it: clamped to FAT's range and floored to 2 seconds,
//! after the build's time policies (`SOURCE_DATE_EPOCH`), which the tree
//! is read with.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use anyhow::{Context, Result};
use kiln_fat::{DirEntry, FatReader, WalkEntry};
use kiln_tree::{Body, FileData, Tree};

use super::{compare_bytes, tree_paths, type_bits, type_name, Reports, Time};
use crate::tree::read_tree;
use crate::{Image, Observer, VerifyReport, VerifyRequest};

/// [`super::verify`] of an image `image` that holds FAT.
pub(super) fn verify(
    req: &VerifyRequest,
    image: Image,
    out: &mut dyn Write,
    observer: &dyn Observer,
) -> Result<VerifyReport> {
    let reader = image.fat_reader()?;
    let tree = read_tree(&req.tree, None, observer)?;
    let walk = reader
        .walk(&reader.root())
        .with_context(|| format!("{}: reading the directory tree", image.name))?;
    let mut v = FatVerifier {
        reader: &reader,
        tree: &tree,
        out: Reports::new(req.max_reports, out),
        bytes: 0,
    };
    v.compare(&walk).with_context(|| image.name.clone())?;
    let diffs = v.out.count_the_rest();
    let check = reader
        .check(&walk, v.out.room())
        .with_context(|| image.name.clone())?;
    v.out.inconsistencies(&check.problems, check.total);
    v.out.check()?;
    Ok(VerifyReport {
        image: image.name,
        entries: walk.len(),
        bytes: v.bytes,
        differences: diffs,
        inconsistencies: check.total,
    })
}

/// One comparison of a FAT image with its tree.
struct FatVerifier<'a, 'o> {
    reader: &'a FatReader,
    tree: &'a Tree,
    out: Reports<'o>,
    /// Content bytes compared.
    bytes: u64,
}

impl FatVerifier<'_, '_> {
    /// Compares every entry of the tree with the walk, then reports what
    /// the image has beyond the tree.
    fn compare(&mut self, walk: &[WalkEntry]) -> Result<()> {
        let by_path: HashMap<&[u8], &DirEntry> =
            walk.iter().map(|w| (w.path.as_slice(), &w.entry)).collect();
        let expected = tree_paths(self.tree);
        // The root has no entry of its own, so nothing of it to compare.
        for (path, id) in expected.iter().filter(|(p, _)| !p.is_empty()) {
            self.out.check()?;
            match by_path.get(path.as_slice()) {
                Some(entry) => self.compare_entry(path, *id, entry)?,
                None => self.out.diff(path, "missing from the image"),
            }
        }
        let known: HashSet<&[u8]> = expected.iter().map(|(p, _)| p.as_slice()).collect();
        for w in walk {
            if !known.contains(w.path.as_slice()) {
                self.out.diff(&w.path, "in the image, not in the sources");
            }
        }
        Ok(())
    }

    /// Compares one entry: type, modification time, and a file's bytes.
    fn compare_entry(&mut self, path: &[u8], id: kiln_tree::NodeId, e: &DirEntry) -> Result<()> {
        let node = self.tree.node(id);
        let got = if e.is_dir() {
            "directory"
        } else {
            "regular file"
        };
        let want = type_name(type_bits(&node.body));
        if self.out.field(path, "type", got, want) {
            return Ok(());
        }
        self.out.field(
            path,
            "mtime",
            Time(e.mtime),
            Time(kiln_fat::stored_mtime(node.meta.mtime())),
        );
        if let Body::File(data) = &node.body {
            self.compare_file(path, e, data)?;
        }
        Ok(())
    }

    /// Compares a file's size and bytes.
    fn compare_file(&mut self, path: &[u8], e: &DirEntry, data: &FileData) -> Result<()> {
        if self.out.field(path, "size", u64::from(e.size), data.size) {
            return Ok(());
        }
        let shown = || format!("/{}", kiln_tree::escape(path));
        let map = self.reader.file_map(e).with_context(shown)?;
        let reader = self.reader;
        // FAT has no holes: the whole file is compared.
        let whole = 0..data.size;
        let compared = compare_bytes(data, std::slice::from_ref(&whole), |at, buf| {
            reader.read_file(&map, at, buf).with_context(shown)
        })?;
        self.bytes += compared.bytes;
        if let Some(first) = compared.first_difference {
            self.out
                .diff(path, format!("content differs from byte {first}"));
        }
        Ok(())
    }
}
