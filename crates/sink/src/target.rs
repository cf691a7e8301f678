//! The output path, checked before any source is read: a build that cannot
//! write where it is told fails at once, naming the output, rather than
//! after reading and planning everything.
//!
//! [`check_output`] decides what the path names ([`OutputKind`]) and
//! refuses a directory, an existing file without `--force`, a missing or
//! unwritable directory, a block device without `--force`, and a file that
//! the build also reads (a tar archive, a spec). Whether a directory source
//! holds the output is for the directory walk to tell (`kiln_tree`'s
//! `OutputPlace`): only the walk knows what it excludes and which
//! filesystems it does not enter.

use std::io;
use std::path::{Path, PathBuf};

use crate::SinkError;

/// What an output path names, once checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// `-`: standard output.
    Stdout,
    /// A file, written beside the path and renamed over it when complete.
    File,
    /// An existing block device, written in place (`--force`).
    BlockDevice,
    /// An existing file written in place from this byte on (`--offset`).
    Region(u64),
}

/// The output flags of a build, and the files it reads.
#[derive(Clone, Copy, Debug)]
pub struct OutputRequest<'a> {
    /// The output path (`-` for standard output).
    pub path: &'a Path,
    /// Overwrite an existing file, write onto a block device.
    pub force: bool,
    /// Write into an existing file from this byte on.
    pub offset: Option<u64>,
    /// With `offset`: create the file if it is missing (mke2fs's device
    /// file); [`BlockDevice::open_file_at`](crate::device::BlockDevice::open_file_at)
    /// then extends a short one.
    pub grow: bool,
    /// The files and directories the build reads (`-` is standard input):
    /// the output must be none of them.
    pub inputs: &'a [&'a Path],
}

/// Why an output path is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    /// The output path is an existing directory.
    #[error(
        "{}: is a directory: the output is a file, name it (as {})",
        path.display(),
        path.join("image.img").display()
    )]
    IsDirectory {
        /// The output path.
        path: PathBuf,
    },
    /// The output exists and `--force` was not given.
    #[error(transparent)]
    Exists(SinkError),
    /// The output's directory does not exist, or is not a directory.
    #[error("{}: its directory {} {what}", path.display(), dir.display())]
    NoDirectory {
        /// The output path.
        path: PathBuf,
        /// Its directory.
        dir: PathBuf,
        /// "does not exist" or "is not a directory".
        what: &'static str,
    },
    /// The output's directory (or the file written in place) cannot be
    /// written by this process.
    #[error("{}: cannot write {}: {source}", path.display(), place.display())]
    NotWritable {
        /// The output path.
        path: PathBuf,
        /// The directory (or file) that cannot be written.
        place: PathBuf,
        /// What the host said.
        #[source]
        source: io::Error,
    },
    /// The output is a block device and `--force` was not given.
    #[error("{}: is a block device: pass --force to write the image onto it", path.display())]
    BlockDeviceNeedsForce {
        /// The output path.
        path: PathBuf,
    },
    /// `--offset` names a file that does not exist.
    #[error("{}: --offset writes into an existing file, and there is none", path.display())]
    NoFileForOffset {
        /// The output path.
        path: PathBuf,
    },
    /// `--offset` with standard output.
    #[error("--offset places an image inside an existing file, not on standard output")]
    OffsetOnStdout,
    /// The output is a file the build reads.
    #[error(
        "{}: is {}, an input of this build: the image would replace what it is built from; write it elsewhere",
        path.display(),
        input.display()
    )]
    IsInput {
        /// The output path.
        path: PathBuf,
        /// The input it is.
        input: PathBuf,
    },
    /// The output path could not be examined.
    #[error("{}: {source}", path.display())]
    Io {
        /// The output path.
        path: PathBuf,
        /// What the host said.
        #[source]
        source: io::Error,
    },
}

/// Checks the output of a build before anything is read, and tells what it
/// names.
pub fn check_output(req: &OutputRequest<'_>) -> Result<OutputKind, OutputError> {
    let path = req.path;
    if path.as_os_str() == "-" {
        return match req.offset {
            Some(_) => Err(OutputError::OffsetOnStdout),
            None => Ok(OutputKind::Stdout),
        };
    }
    let exists = match path.symlink_metadata() {
        Ok(_) => true,
        // Under a file: the directory check names the file.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            false
        }
        Err(source) => return Err(io_error(path, source)),
    };
    if exists {
        refuse_existing(path, req.inputs)?;
    }
    if let Some(offset) = req.offset {
        match (exists, req.grow) {
            (true, _) => check_writable(path, path)?,
            (false, true) => check_directory(path)?,
            (false, false) => return Err(OutputError::NoFileForOffset { path: path.into() }),
        }
        return Ok(OutputKind::Region(offset));
    }
    if is_block_device(path) {
        if !req.force {
            return Err(OutputError::BlockDeviceNeedsForce { path: path.into() });
        }
        check_writable(path, path)?;
        return Ok(OutputKind::BlockDevice);
    }
    if exists && !req.force {
        return Err(OutputError::Exists(SinkError::Exists { path: path.into() }));
    }
    check_directory(path)?;
    Ok(OutputKind::File)
}

/// Whether `path` is (or links to) an existing block device.
pub fn is_block_device(path: &Path) -> bool {
    std::fs::canonicalize(path)
        .and_then(|real| kiln_host::lstat(&real))
        .is_ok_and(|m| m.file_type == kiln_host::HostFileType::BlockDevice)
}

/// Refuses an existing output that is a directory (or links to one), or
/// one of the build's inputs.
fn refuse_existing(path: &Path, inputs: &[&Path]) -> Result<(), OutputError> {
    if path.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(OutputError::IsDirectory { path: path.into() });
    }
    let input = inputs
        .iter()
        .filter(|input| input.as_os_str() != "-")
        .find(|input| is_same_file(path, input));
    match input {
        Some(input) => Err(OutputError::IsInput {
            path: path.into(),
            input: input.into(),
        }),
        None => Ok(()),
    }
}

/// Whether `a` and `b` are one file: the same canonical path, or the same
/// device and inode (a hard link) where the host has inode numbers.
fn is_same_file(a: &Path, b: &Path) -> bool {
    let (Ok(a), Ok(b)) = (std::fs::canonicalize(a), std::fs::canonicalize(b)) else {
        return false;
    };
    if a == b {
        return true;
    }
    match (kiln_host::lstat(&a), kiln_host::lstat(&b)) {
        (Ok(a), Ok(b)) => a.ino != 0 && (a.dev, a.ino) == (b.dev, b.ino),
        _ => false,
    }
}

/// Checks that the directory a new output file goes in exists and can be
/// written (the file is created there, beside the output's name).
fn check_directory(path: &Path) -> Result<(), OutputError> {
    let dir = kiln_host::parent_dir(path);
    let no_directory = |what| OutputError::NoDirectory {
        path: path.into(),
        dir: dir.into(),
        what,
    };
    match dir.metadata() {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(no_directory("is not a directory")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(no_directory("does not exist"))
        }
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
            return Err(no_directory("is not a directory"))
        }
        Err(source) => return Err(io_error(path, source)),
    }
    check_writable(path, dir)
}

/// Checks that this process may write `place` (the output's directory, or
/// the output itself when written in place).
fn check_writable(path: &Path, place: &Path) -> Result<(), OutputError> {
    kiln_host::check_writable(place).map_err(|source| OutputError::NotWritable {
        path: path.into(),
        place: place.into(),
        source,
    })
}

fn io_error(path: &Path, source: io::Error) -> OutputError {
    OutputError::Io {
        path: path.into(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &Path, force: bool, offset: Option<u64>, inputs: &[&Path]) -> String {
        check_growing(path, force, offset, false, inputs)
    }

    fn check_growing(
        path: &Path,
        force: bool,
        offset: Option<u64>,
        grow: bool,
        inputs: &[&Path],
    ) -> String {
        let req = OutputRequest {
            path,
            force,
            offset,
            grow,
            inputs,
        };
        match check_output(&req) {
            Ok(kind) => format!("{kind:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn refuses_what_cannot_be_written() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let file = d.join("old.img");
        std::fs::write(&file, b"old").unwrap();
        let tar = d.join("src.tar");
        std::fs::write(&tar, b"tar").unwrap();
        let link = d.join("link.tar");
        std::fs::hard_link(&tar, &link).unwrap();

        assert_eq!(check(&d.join("new.img"), false, None, &[&tar]), "File");
        assert_eq!(check(&file, true, None, &[]), "File");
        assert!(check(&file, false, None, &[]).contains("already exists"));
        for force in [false, true] {
            assert!(check(d, force, None, &[]).contains("is a directory"));
        }
        let missing = d.join("missing/new.img");
        assert!(check(&missing, false, None, &[]).contains("does not exist"));
        let under_file = file.join("new.img");
        assert!(check(&under_file, true, None, &[]).contains("is not a directory"));
        for input in [&tar, &link] {
            let message = check(input, true, None, &[Path::new("-"), &tar]);
            assert!(message.contains("an input of this build"), "{message}");
        }
        assert!(check(&d.join("none"), false, Some(0), &[]).contains("existing file"));
        assert_eq!(check(&file, false, Some(512), &[]), "Region(512)");
        // Growing (mke2fs's device file): a missing file is made, if its
        // directory is there.
        let grown = check_growing(&d.join("none"), false, Some(0), true, &[]);
        assert_eq!(grown, "Region(0)");
        let nowhere = check_growing(&missing, false, Some(0), true, &[]);
        assert!(nowhere.contains("does not exist"), "{nowhere}");
        assert_eq!(check(Path::new("-"), false, None, &[]), "Stdout");
        assert!(check(Path::new("-"), false, Some(1), &[]).contains("standard output"));
    }
}
