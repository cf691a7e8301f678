//! `kiln extract IMAGE[:PART] [PATH] DEST`: flags to a [`kiln_extract::extract`]
//! call, which restores the image's tree (or the subtree at PATH) into a new
//! directory, confined to it.

use std::ffi::OsString;
use std::path::Path;

use anyhow::{Context, Result};

use crate::flags::ExtractArgs;
use crate::image::Image;

/// `kiln extract IMAGE[:PART] [PATH] DEST`.
pub(crate) fn extract(args: &ExtractArgs) -> Result<()> {
    let image = Image::resolve(&args.image)?;
    let (dest, rest) = args
        .paths
        .split_last()
        .context("kiln extract: no destination given")?;
    let root = rest.first().cloned().unwrap_or_else(|| OsString::from("/"));
    let root = kiln_host::name_bytes(&root).into_owned();
    let reader = image.reader_checked(args.ignore_checksums)?;
    let report = kiln_extract::extract(&reader, &root, Path::new(dest))
        .with_context(|| image.name.clone())?;
    for line in report.to_string().lines() {
        eprintln!("kiln: {line}");
    }
    Ok(())
}
