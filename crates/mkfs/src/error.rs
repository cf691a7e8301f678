//! The errors of resolving a mke2fs command line.

use crate::conf::{ConfError, ConfSource};

/// Why a mke2fs command line cannot be made into a kiln build.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MkfsError {
    /// The command line is wrong as mke2fs would judge it: an unknown
    /// option, a missing argument, a value out of range.
    #[error("{option}: {why}")]
    Usage {
        /// The option or operand (`-b`, `-E offset`, `fs-size`).
        option: String,
        /// What is wrong with it.
        why: String,
    },
    /// mke2fs would honour the option, and it changes the filesystem or
    /// the device, but kiln cannot do what it asks.
    #[error("{option}: kiln cannot honour it: {why}")]
    Refused {
        /// The option (`-c`, `-E stride`, `feature bigalloc`).
        option: String,
        /// Why not.
        why: String,
    },
    /// The mke2fs.conf profile could not be read.
    #[error("{file}: {error}")]
    Conf {
        /// The file (or the built-in profile).
        file: ConfSource,
        /// What was wrong.
        error: ConfError,
    },
}

impl MkfsError {
    /// A [`MkfsError::Usage`].
    pub fn usage(option: impl Into<String>, why: impl Into<String>) -> MkfsError {
        MkfsError::Usage {
            option: option.into(),
            why: why.into(),
        }
    }

    /// A [`MkfsError::Refused`].
    pub fn refused(option: impl Into<String>, why: impl Into<String>) -> MkfsError {
        MkfsError::Refused {
            option: option.into(),
            why: why.into(),
        }
    }
}
