//! `kiln extract IMAGE [PATH] DEST`: restores an image's tree, or the subtree
//! at PATH, into a new directory, without mounting it.
//!
//! Content, directories, symlinks and named pipes are read through
//! `ext4-view`; modes, owners and times are restored where the host allows.
//! Holes: `ext4-view` has no hole API, so the content is read in chunks of
//! the image's block size and all-zero chunks are not written. The result is
//! sparse wherever the image had holes, and also where it had allocated
//! blocks of zeros (those become holes too).
//!
//! Not restored yet, because `ext4-view` does not expose them: hard links
//! (each name becomes its own file), xattrs and ACLs, device numbers (device
//! nodes are skipped) and sockets. ctime cannot be set by any host call.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ext4_view::{Ext4, Metadata, PathBuf as ImagePath, Timestamp};
use kiln_host::HostTime;

use crate::flags::ExtractArgs;
use crate::inspect::{image_path, load, read_head, MAX_DEPTH};

/// How many paths of each kind of failure the report names.
const SHOWN_PATHS: usize = 3;

/// What could not be restored: per kind, the count and the first few paths.
#[derive(Default)]
struct Report(BTreeMap<&'static str, (usize, Vec<PathBuf>)>);

impl Report {
    /// Records that `what` could not be restored at `path`.
    fn add(&mut self, what: &'static str, path: &Path) {
        let (count, paths) = self.0.entry(what).or_default();
        *count += 1;
        if paths.len() < SHOWN_PATHS {
            paths.push(path.to_path_buf());
        }
    }

    /// Records a failed host call (an `Err` of `result`) as `what` at
    /// `path`; returns whether the call succeeded.
    fn check(&mut self, what: &'static str, path: &Path, result: std::io::Result<()>) -> bool {
        if result.is_err() {
            self.add(what, path);
        }
        result.is_ok()
    }

    /// One stderr line per kind: `not restored: 3 owners (a, b, c, ...)`.
    fn print(&self) {
        for (what, (count, paths)) in &self.0 {
            let mut shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            if *count > paths.len() {
                shown.push("...".to_string());
            }
            eprintln!("kiln: not restored: {count} {what} ({})", shown.join(", "));
        }
    }
}

/// One walk of `extract`: the open image and what went wrong so far.
struct Extractor<'a> {
    fs: Ext4,
    image: &'a Path,
    /// Chunk size for holes: the image's block size.
    block_size: usize,
    report: Report,
    /// Directories restored, parents first; their metadata is set at the
    /// end, children first, since creating an entry changes its parent's mtime.
    dirs: Vec<(PathBuf, Metadata)>,
}

/// `kiln extract IMAGE [PATH] DEST`.
pub(crate) fn extract(args: &ExtractArgs) -> Result<()> {
    let image = &args.image;
    let (dest, rest) = args
        .paths
        .split_last()
        .context("kiln extract: no destination given")?;
    let root = rest.first().cloned().unwrap_or_else(|| OsString::from("/"));
    let root = image_path(image, &root)?;
    let sb = kiln_ext::read_superblock(&read_head(image)?)
        .with_context(|| image.display().to_string())?;
    let mut x = Extractor {
        fs: load(image)?,
        image,
        block_size: sb.block_size as usize,
        report: Report::default(),
        dirs: Vec::new(),
    };
    let meta = x.fs.symlink_metadata(&root).with_context(|| x.at(&root))?;
    let dest = Path::new(dest);
    let reuse_dest = check_dest(dest, meta.is_dir())?;
    x.restore_tree(root, meta, dest, reuse_dest)?;
    for (dir, meta) in std::mem::take(&mut x.dirs).iter().rev() {
        x.set_meta(dir, meta, true);
    }
    x.report.print();
    Ok(())
}

/// Refuses a destination that exists, unless it is an empty directory and
/// a directory is restored into it; returns whether it exists.
fn check_dest(dest: &Path, is_dir: bool) -> Result<bool> {
    if dest.symlink_metadata().is_err() {
        return Ok(false);
    }
    let empty_dir = dest.is_dir()
        && std::fs::read_dir(dest)
            .with_context(|| dest.display().to_string())?
            .next()
            .is_none();
    if !(empty_dir && is_dir) {
        bail!(
            "{}: already exists (the destination must not exist, or be an empty directory)",
            dest.display()
        );
    }
    Ok(true)
}

impl Extractor<'_> {
    /// `IMAGE: PATH`, for messages.
    fn at(&self, path: &ImagePath) -> String {
        format!("{}: {}", self.image.display(), path.display())
    }

    /// Restores `root` (whose metadata is `meta`) as `dest`, then everything
    /// below it, breadth-first with an explicit queue (depth is bounded by
    /// [`MAX_DEPTH`], against directory loops in corrupt images).
    fn restore_tree(
        &mut self,
        root: ImagePath,
        meta: Metadata,
        dest: &Path,
        reuse_dest: bool,
    ) -> Result<()> {
        if reuse_dest {
            self.dirs.push((dest.to_path_buf(), meta));
        } else {
            self.restore_entry(&root, meta, dest)?;
        }
        let mut queue = std::collections::VecDeque::from([(root, dest.to_path_buf(), 0usize)]);
        while let Some((dir, out, depth)) = queue.pop_front() {
            if !self
                .fs
                .symlink_metadata(&dir)
                .with_context(|| self.at(&dir))?
                .is_dir()
            {
                continue;
            }
            if depth >= MAX_DEPTH {
                bail!(
                    "{}: directories nest deeper than {MAX_DEPTH} levels (a loop in a corrupt image?)",
                    self.at(&dir)
                );
            }
            for entry in self.fs.read_dir(&dir).with_context(|| self.at(&dir))? {
                let entry = entry.with_context(|| self.at(&dir))?;
                let name = entry.file_name().as_ref().to_vec();
                if name == b"." || name == b".." {
                    continue;
                }
                // The filesystem's own lost+found is not content: a build
                // from the extracted tree makes its own.
                if depth == 0 && is_image_root(&dir) && name == b"lost+found" {
                    continue;
                }
                let child = entry.path();
                let target = out.join(kiln_host::name_from_bytes(&name));
                let meta = entry.metadata().with_context(|| self.at(&child))?;
                self.restore_entry(&child, meta, &target)?;
                queue.push_back((child, target, depth + 1));
            }
        }
        Ok(())
    }

    /// Creates one entry at `dest`; a directory's metadata waits for the end.
    fn restore_entry(&mut self, path: &ImagePath, meta: Metadata, dest: &Path) -> Result<()> {
        let kind = meta.file_type();
        let made = if kind.is_dir() {
            std::fs::create_dir(dest).with_context(|| dest.display().to_string())?;
            self.dirs.push((dest.to_path_buf(), meta));
            return Ok(());
        } else if kind.is_regular_file() {
            self.restore_file(path, &meta, dest)?;
            true
        } else if kind.is_symlink() {
            let target = self.fs.read_link(path).with_context(|| self.at(path))?;
            let made = kiln_host::make_symlink(target.as_ref(), dest);
            self.report.check("symlinks", dest, made)
        } else if kind.is_fifo() {
            let made = kiln_host::make_fifo(dest, meta.mode());
            self.report.check("named pipes", dest, made)
        } else if kind.is_socket() {
            self.report.add("sockets", dest);
            false
        } else {
            self.report
                .add("device nodes (no device numbers yet)", dest);
            false
        };
        if made {
            self.set_meta(dest, &meta, !kind.is_symlink());
        }
        Ok(())
    }

    /// Copies a regular file's content, leaving all-zero blocks as holes.
    fn restore_file(&mut self, path: &ImagePath, meta: &Metadata, dest: &Path) -> Result<()> {
        let at_dest = || dest.display().to_string();
        let mut src = self.fs.open(path).with_context(|| self.at(path))?;
        let out = File::create_new(dest).with_context(at_dest)?;
        let mut buf = vec![0u8; self.block_size];
        let mut offset = 0u64;
        loop {
            let n = fill(&mut src, &mut buf).with_context(|| self.at(path))?;
            if n == 0 {
                break;
            }
            if buf[..n].iter().any(|&b| b != 0) {
                kiln_host::write_at(&out, &buf[..n], offset).with_context(at_dest)?;
            }
            offset += n as u64;
        }
        // Sets the size past a final hole, and checks the read was complete.
        if offset != meta.len() {
            bail!(
                "{}: read {offset} bytes of a {}-byte file",
                self.at(path),
                meta.len()
            );
        }
        out.set_len(offset).with_context(at_dest)
    }

    /// Restores owner, mode (unless a symlink) and times, reporting what the
    /// host refused. Times come last: the other calls move ctime only.
    fn set_meta(&mut self, dest: &Path, meta: &Metadata, has_mode: bool) {
        let current = kiln_host::lstat(dest).ok();
        if current.is_none_or(|c| (c.uid, c.gid) != (meta.uid(), meta.gid())) {
            let set = kiln_host::set_owner(dest, meta.uid(), meta.gid());
            self.report.check("owners", dest, set);
        }
        if has_mode {
            let set = kiln_host::set_perm(dest, meta.mode());
            self.report.check("modes", dest, set);
        }
        let set =
            kiln_host::set_times(dest, host_time(meta.accessed()), host_time(meta.modified()));
        self.report.check("times", dest, set);
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn fill(src: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match src.read(&mut buf[done..])? {
            0 => break,
            n => done += n,
        }
    }
    Ok(done)
}

/// An image time as a host time.
fn host_time(t: Timestamp) -> HostTime {
    HostTime {
        secs: t.seconds(),
        nanos: t.nanoseconds(),
    }
}

/// Whether `path` is the image's root directory.
fn is_image_root(path: &ImagePath) -> bool {
    path.as_ref() == b"/"
}
