//! Restoring an image's tree, or a subtree, into a new directory:
//! [`kiln_extract::extract`] on an image named as the other commands name
//! it, with its checksums verified (ext) or [`kiln_extract::extract_fat`]
//! for a FAT image.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::{FsKind, Image, Observer};

/// What to restore, and where.
#[derive(Clone, Debug)]
pub struct ExtractRequest {
    /// The image: a filesystem image, or `IMAGE:PART`.
    pub image: OsString,
    /// The absolute path inside the image of the subtree (`/` for all).
    pub path: Vec<u8>,
    /// The destination directory, which must not exist or be empty.
    pub dest: PathBuf,
    /// Read on past metadata checksums that do not match, with a warning.
    pub ignore_checksums: bool,
}

/// Restores the tree `req` names; the report counts what was restored and
/// what the host could not restore.
pub fn extract(req: &ExtractRequest, observer: &dyn Observer) -> Result<kiln_extract::Report> {
    let image = Image::resolve(&req.image)?;
    let report = match image.kind()? {
        FsKind::Fat => {
            let reader = image.fat_reader()?;
            kiln_extract::extract_fat(&reader, &req.path, &req.dest)
        }
        FsKind::Ext => {
            let reader = image.reader_checked(req.ignore_checksums, observer)?;
            kiln_extract::extract(&reader, &req.path, &req.dest)
        }
    };
    report.with_context(|| image.name.clone())
}
