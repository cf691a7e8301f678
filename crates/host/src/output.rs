//! [`OutputFile`]: a new file beside an output's target that takes the
//! target's name only when complete, so that whatever stops the writer (an
//! error, a signal, SIGKILL, a power cut) leaves no partial output.
//!
//! On Linux the file is made with `O_TMPFILE`: it has no name until
//! [`OutputFile::persist`] links it into the directory, so a killed build
//! leaves nothing at all. Where that is not supported (filesystems without
//! it, such as vfat; macOS; Windows) the file is a hidden
//! `.kiln-<HASH>-<RANDOM>.tmp` beside the target, `HASH` naming the target.
//! Its writer holds it locked (`flock`; on Windows, its open handle refuses
//! exclusive opens) and lists it in the [partial outputs](crate::partial),
//! which a SIGINT or SIGTERM handler removes. A process killed outright
//! cannot remove it, so every new output file of the same target first
//! removes the temporary files of that target that nobody holds.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use tempfile::TempPath;

use crate::imp;
use crate::partial::partial_outputs;

/// The suffix of every temporary output name.
const TEMP_SUFFIX: &str = ".tmp";

/// A file being written beside `target`, named `target` by
/// [`persist`](OutputFile::persist); dropped before, it leaves nothing.
#[derive(Debug)]
pub struct OutputFile {
    file: File,
    /// The file's temporary name; `None` for an unnamed (`O_TMPFILE`) file.
    /// Declared after `file`, so that the file is closed before its name
    /// is removed (Windows removes no file that is open).
    name: Option<TempName>,
    target: PathBuf,
}

impl OutputFile {
    /// Creates the file in `target`'s directory, first removing temporary
    /// files of `target` that a killed process left there.
    pub fn create(target: &Path) -> io::Result<OutputFile> {
        let dir = parent_dir(target);
        let prefix = temp_prefix(target);
        remove_abandoned(dir, &prefix);
        let (file, name) = match imp::open_unnamed(dir)? {
            Some(file) => {
                // Locked as a named one is: with `persist(true)` it gets a
                // temporary name for a moment.
                imp::lock_writer(&file)?;
                (file, None)
            }
            None => {
                let (file, name) = TempName::create(dir, &prefix)?;
                (file, Some(name))
            }
        };
        Ok(OutputFile {
            file,
            name,
            target: target.to_path_buf(),
        })
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Gives the file the target's name: atomically replacing what is
    /// there with `replace`, failing if anything is there without
    /// (`AlreadyExists`).
    pub fn persist(mut self, replace: bool) -> io::Result<()> {
        let name = match self.name.take() {
            Some(name) => name,
            // Linking fails if the target exists: the no-clobber case.
            None if !replace => return imp::link_unnamed(&self.file, &self.target),
            // A name of its own first, then renamed over the target.
            None => {
                let dir = parent_dir(&self.target);
                TempName::link(&self.file, dir, &temp_prefix(&self.target))?
            }
        };
        name.persist(&self.target, replace)
    }
}

/// The directory that a file named `target` is created in (`.` for a bare
/// name).
pub fn parent_dir(target: &Path) -> &Path {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `.kiln-<HASH>-`: the start of the temporary names of outputs named
/// `target`, its file name hashed (the name itself might not fit).
fn temp_prefix(target: &Path) -> String {
    let name = target.file_name().unwrap_or(target.as_os_str());
    format!(".kiln-{:016x}-", fnv1a(&crate::name_bytes(name)))
}

/// The 64-bit FNV-1a hash: stable across builds and versions of kiln, so
/// that the next version still finds what this one left.
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(PRIME)
    })
}

/// Removes the temporary files named `<prefix>…` in `dir` that no live
/// writer holds. Best effort: an entry that cannot be removed (someone
/// else's, say) is left alone, and an unreadable directory fails later,
/// when the output is created.
fn remove_abandoned(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(prefix) && name.ends_with(TEMP_SUFFIX) {
            let _ = imp::remove_if_abandoned(&entry.path());
        }
    }
}

/// A temporary name beside the target, listed in the partial outputs
/// while it exists; dropped, it removes the file and unlists it.
#[derive(Debug)]
struct TempName(Option<TempPath>);

impl TempName {
    /// A new named file in `dir`, listed, and locked until the process
    /// ends: a later build of the same target must not take it for one
    /// that a killed process left.
    fn create(dir: &Path, prefix: &str) -> io::Result<(File, TempName)> {
        loop {
            // Held from before the file exists until it is listed, so that
            // an interruption in between waits for the listing and removes
            // it too.
            let mut partial = partial_outputs();
            let (file, path) = builder(prefix).tempfile_in(dir)?.into_parts();
            imp::lock_writer(&file)?;
            // Another build's cleanup may have removed it between its
            // creation and the lock: then try another name.
            if imp::is_linked(&file)? {
                partial.add(&path);
                return Ok((file, TempName(Some(path))));
            }
        }
    }

    /// A temporary name in `dir` for the unnamed `file`, listed.
    fn link(file: &File, dir: &Path, prefix: &str) -> io::Result<TempName> {
        let mut partial = partial_outputs();
        let linked = builder(prefix).make_in(dir, |path| imp::link_unnamed(file, path))?;
        let path = linked.into_temp_path();
        partial.add(&path);
        Ok(TempName(Some(path)))
    }

    /// Renames the file to `target` (over it with `replace`) and unlists it.
    fn persist(mut self, target: &Path, replace: bool) -> io::Result<()> {
        let path = self.0.take().expect("a name is persisted once");
        let mut partial = partial_outputs();
        let listed = path.to_path_buf();
        let renamed = if replace {
            path.persist(target)
        } else {
            path.persist_noclobber(target)
        };
        // On failure the temporary path is dropped here: the file is removed.
        let result = renamed.map_err(|e| e.error);
        partial.remove(&listed);
        result
    }
}

impl Drop for TempName {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let mut partial = partial_outputs();
            let listed = path.to_path_buf();
            drop(path);
            partial.remove(&listed);
        }
    }
}

/// Random names `<prefix>XXXXXX.tmp`.
fn builder(prefix: &str) -> tempfile::Builder<'_, 'static> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix).suffix(TEMP_SUFFIX);
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn persisted_once_complete_and_never_over_a_file_unasked() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.img");
        let out = OutputFile::create(&target).unwrap();
        crate::write_at(out.file(), b"new", 0).unwrap();
        assert!(!target.exists());
        out.persist(false).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");

        let again = OutputFile::create(&target).unwrap();
        let err = again.persist(false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(names(dir.path()), ["out.img"]);

        let forced = OutputFile::create(&target).unwrap();
        crate::write_at(forced.file(), b"newer", 0).unwrap();
        forced.persist(true).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"newer");
        assert_eq!(names(dir.path()), ["out.img"]);
    }

    #[test]
    fn dropped_unpersisted_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        drop(OutputFile::create(&dir.path().join("out.img")).unwrap());
        assert_eq!(names(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn abandoned_temporary_files_of_the_same_target_only_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = temp_prefix(&dir.path().join("out.img"));
        let abandoned = format!("{prefix}abc123{TEMP_SUFFIX}");
        let other = format!("{}abc123{TEMP_SUFFIX}", temp_prefix(Path::new("other.img")));
        std::fs::write(dir.path().join(&abandoned), b"old").unwrap();
        std::fs::write(dir.path().join(&other), b"old").unwrap();
        let (_file, held) = TempName::create(dir.path(), &prefix).unwrap();
        let held_name = held.0.as_ref().unwrap().file_name().unwrap().to_owned();

        remove_abandoned(dir.path(), &prefix);
        let mut expected = vec![other, held_name.to_string_lossy().into_owned()];
        expected.sort();
        assert_eq!(names(dir.path()), expected);
    }

    #[test]
    fn the_hash_is_fnv1a() {
        // The published test vectors of FNV-1a 64.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
