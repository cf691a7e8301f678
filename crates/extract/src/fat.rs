//! [`extract_fat`]: a FAT image's tree restored, through the same staging
//! directory and directory fds as an ext image's.
//!
//! The reader has already refused every name that is not one path
//! component (`.`, `..`, `/`, `\`, NUL, a name twice in a directory, two
//! equal but for case) and every directory reached twice, so each entry
//! lands below the staging directory exactly once.

use std::path::Path;

use kiln_fat::{DirEntry, FatReader, ReadError};
use kiln_host::HostTime;
use kiln_tree::escape;

use crate::{check_dest, At, ExtractError, Out, Report, Staging, CHUNK};

/// Restores the entry at `path` inside the FAT image (`/` for all of it)
/// and everything below it to `dest`, as [`crate::extract`] does for ext.
/// Directories and files get their modification times (and access dates
/// where recorded); read-only files lose their write bits.
pub fn extract_fat(reader: &FatReader, path: &[u8], dest: &Path) -> Result<Report, ExtractError> {
    let read_err = |p: &[u8]| {
        let path = escape(p);
        move |source| ExtractError::FatRead { path, source }
    };
    if !path.starts_with(b"/") {
        return Err(ExtractError::NotAbsolute { path: escape(path) });
    }
    let start = reader.lookup(path).map_err(read_err(path))?;
    let replaces_empty_dir = check_dest(dest, start.is_dir())?;
    let walk = reader.walk(&start).map_err(read_err(path))?;
    let staging = Staging::create(dest)?;
    let mut x = FatExtractor {
        reader,
        out: Out::new(&staging, path, dest)?,
        report: Report::default(),
        dirs: Vec::new(),
    };
    for w in &walk {
        x.restore(&w.path, &w.entry)?;
    }
    for (at, entry) in std::mem::take(&mut x.dirs).iter().rev() {
        x.set_meta(at, entry)?;
    }
    let report = x.report;
    staging.commit(dest, replaces_empty_dir)?;
    Ok(report)
}

/// One run of [`extract_fat`].
struct FatExtractor<'r> {
    reader: &'r FatReader,
    out: Out<'r>,
    report: Report,
    /// Directories restored, parents first; their times are set at the
    /// end, children first (creating an entry changes its parent's mtime).
    dirs: Vec<(At, DirEntry)>,
}

impl FatExtractor<'_> {
    /// The [`ExtractError::FatRead`] of a read at `at`.
    fn read_err(at: &At) -> impl FnOnce(ReadError) -> ExtractError + '_ {
        |source| ExtractError::FatRead {
            path: escape(&at.image_path),
            source,
        }
    }

    /// Creates the entry at `path` (relative to the walk's start).
    fn restore(&mut self, path: &[u8], entry: &DirEntry) -> Result<(), ExtractError> {
        let at = self.out.place(path);
        let (parent, name) = at.parent_and_name();
        if entry.is_dir() {
            let made = self.out.dir(parent)?.create_dir(name);
            made.map_err(self.out.dest_err(&at, "creating the directory"))?;
            self.dirs.push((at, entry.clone()));
            return Ok(());
        }
        let map = self.reader.file_map(entry).map_err(Self::read_err(&at))?;
        let file = self
            .out
            .dir(parent)?
            .create_file(name)
            .map_err(self.out.dest_err(&at, "creating the file"))?;
        let mut buf = vec![0u8; CHUNK];
        let mut pos = 0u64;
        while pos < map.size() {
            // OK to cast: at most CHUNK.
            let n = CHUNK.min((map.size() - pos) as usize);
            self.reader
                .read_file(&map, pos, &mut buf[..n])
                .map_err(Self::read_err(&at))?;
            kiln_host::write_at(&file, &buf[..n], pos)
                .map_err(self.out.dest_err(&at, "writing"))?;
            pos += n as u64;
        }
        self.set_meta(&at, entry)
    }

    /// Sets the times and, for a read-only file, the mode `0444`;
    /// reporting what the host refused.
    fn set_meta(&mut self, at: &At, entry: &DirEntry) -> Result<(), ExtractError> {
        let (parent, name) = at.parent_and_name();
        let dir = self.out.dir(parent)?;
        let time = |t: kiln_tree::Timestamp| HostTime {
            secs: t.secs,
            nanos: t.nanos,
        };
        let mtime = time(entry.mtime);
        let atime = entry.atime.map_or(mtime, time);
        let mut results = Vec::new();
        if entry.read_only() && !entry.is_dir() {
            results.push(("modes", dir.set_perm(name, READ_ONLY_PERM)));
        }
        results.push(("times", dir.set_times(name, atime, mtime)));
        for (what, result) in results {
            self.report.check(what, &at.image_path, result);
        }
        Ok(())
    }
}

/// The permission bits of a read-only file once extracted.
const READ_ONLY_PERM: u16 = 0o444;
