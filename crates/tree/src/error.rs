//! Errors of reading sources, each naming the path it concerns.

use std::io;
use std::path::PathBuf;

use crate::Looks;

/// Why a source could not be read into a [`crate::Tree`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// A host call failed on a path (unreadable, vanished, ...).
    #[error("{}: {source}", path.display())]
    Io {
        /// The source path concerned.
        path: PathBuf,
        /// What the host said.
        #[source]
        source: io::Error,
    },
    /// A directory of a source is one of its own ancestors (a bind mount of
    /// a directory below itself): walking it would repeat the tree.
    #[error(
        "directory loop at {}: the same directory (device and inode) as its ancestor {} (a bind mount?)",
        path.display(),
        ancestor.display()
    )]
    DirectoryLoop {
        /// The directory met again.
        path: PathBuf,
        /// Its ancestor that it repeats.
        ancestor: PathBuf,
    },
    /// A directory source lists the directory its build writes the output
    /// to, with the output's name in it.
    #[error(
        "{}: the output is inside the source directory {}{}: the image would become part of \
         the tree it is built from; write it outside the source (another filesystem is fine) \
         or --exclude it",
        output.display(),
        root.display(),
        dir.as_ref().map_or(String::new(), |d| format!(" (in {})", d.display()))
    )]
    OutputInSource {
        /// The output, as given.
        output: PathBuf,
        /// The directory source.
        root: PathBuf,
        /// The directory of the source that holds the output, when it is
        /// not the source itself.
        dir: Option<PathBuf>,
    },
    /// An ownership or time policy is invalid.
    #[error("{0}")]
    Policy(String),
    /// A source given on the command line is not a directory.
    #[error("{}: not a directory (a source must be a directory)", path.display())]
    NotADirectory {
        /// The source path concerned.
        path: PathBuf,
    },
    /// A line of a spec file, device table or file_contexts file is malformed.
    #[error("{}:{line}:{column}: {what}", origin.display())]
    Spec {
        /// The file the line is in.
        origin: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// Column (in characters), from 1.
        column: usize,
        /// What is wrong.
        what: String,
    },
    /// A spec line could not be applied to the tree (it names the image path).
    #[error("{}:{line}: {what}", origin.display())]
    Rule {
        /// The file the line is in.
        origin: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// What is wrong, naming the image path.
        what: String,
    },
    /// A tar archive is malformed, or holds something a tree cannot.
    #[error("{}: {}{what}", archive.display(), Place { offset: *offset, entry: entry.as_deref() })]
    Archive {
        /// The archive (`<stdin>` for standard input).
        archive: PathBuf,
        /// The member concerned, as named in the archive, where known.
        entry: Option<String>,
        /// Byte offset of the member's header (or of the damage) in the
        /// uncompressed archive.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// A file given as a tar archive is not one, nor one compressed with
    /// gzip, xz, zstd or bzip2.
    #[error(
        "{}: not a tar archive: {looks}{}",
        archive.display(),
        NotTar { looks: *looks, compression: *compression, leading_zeros: *leading_zeros }
    )]
    NotAnArchive {
        /// The file (`<stdin>` for standard input).
        archive: PathBuf,
        /// What it looks like instead.
        looks: Looks,
        /// The compression it was in (`gzip`, `xz`, `zstd`, `bzip2`), when
        /// its first bytes were one's magic number.
        compression: Option<&'static str>,
        /// How many zero bytes it starts with (uncompressed).
        leading_zeros: u64,
    },
    /// A tar archive goes on after its end-of-archive marker (archives
    /// joined with `cat`, say), and zero blocks were not to be read past.
    #[error(
        "{}: at byte {offset}: data after the end-of-archive marker at byte {end}; \
         if archives were joined (cat a.tar b.tar), --ignore-zeros reads past zero blocks",
        archive.display()
    )]
    DataAfterEnd {
        /// The archive (`<stdin>` for standard input).
        archive: PathBuf,
        /// Byte offset of the marker (its first zero block) in the
        /// uncompressed archive.
        end: u64,
        /// Byte offset of the first block after it that is not all zeros.
        offset: u64,
    },
}

/// The rest of a "not a tar archive" message: the zeros it starts with and
/// its compression, or that it was in none kiln reads.
struct NotTar {
    looks: Looks,
    compression: Option<&'static str>,
    leading_zeros: u64,
}

impl std::fmt::Display for NotTar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Zero blocks are what a tar reader takes for the end of an archive:
        // worth saying when nothing else is known.
        let zero_blocks = self.leading_zeros >= ZERO_BLOCK;
        if self.looks == Looks::Unknown && zero_blocks {
            write!(f, " after {} zero bytes", self.leading_zeros)?;
        }
        match self.compression {
            Some(c) => write!(f, " ({c}-compressed)"),
            None if self.looks == Looks::Unknown && !zero_blocks => {
                f.write_str(" (not compressed with gzip, xz, zstd or bzip2 either)")
            }
            None => Ok(()),
        }
    }
}

/// The size of a tar block: one of zeros ends an archive.
const ZERO_BLOCK: u64 = 512;

/// Where in an archive an error lies, as the prefix of its message.
struct Place<'a> {
    offset: u64,
    entry: Option<&'a str>,
}

impl std::fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.entry {
            Some(entry) => write!(f, "{entry} (header at byte {}): ", self.offset),
            None => write!(f, "at byte {}: ", self.offset),
        }
    }
}

impl TreeError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> TreeError {
        TreeError::Io {
            path: path.into(),
            source,
        }
    }
}
