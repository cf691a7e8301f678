//! Errors of reading sources, each naming the path it concerns.

use std::io;
use std::path::PathBuf;

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
    /// An ownership or time policy is invalid.
    #[error("{0}")]
    Policy(String),
    /// A source given on the command line is not a directory.
    #[error("{}: not a directory (a source must be a directory)", path.display())]
    NotADirectory {
        /// The source path concerned.
        path: PathBuf,
    },
}

impl TreeError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> TreeError {
        TreeError::Io {
            path: path.into(),
            source,
        }
    }
}
