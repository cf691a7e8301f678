//! `kiln extract IMAGE[:PART] [PATH] DEST`: flags to a [`kiln_lib::extract`]
//! request, which restores the image's tree (or the subtree at PATH) into a
//! new directory, confined to it.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{Context, Result};
use kiln_lib::ExtractRequest;

use crate::flags::ExtractArgs;
use crate::Stderr;

/// `kiln extract IMAGE[:PART] [PATH] DEST`.
pub(crate) fn extract(args: &ExtractArgs) -> Result<()> {
    let (dest, rest) = args
        .paths
        .split_last()
        .context("kiln extract: no destination given")?;
    let root = rest.first().cloned().unwrap_or_else(|| OsString::from("/"));
    let req = ExtractRequest {
        image: args.image.clone(),
        path: kiln_host::name_bytes(&root).into_owned(),
        dest: PathBuf::from(dest),
        ignore_checksums: args.ignore_checksums,
    };
    let report = kiln_lib::extract(&req, &Stderr)?;
    for line in report.to_string().lines() {
        eprintln!("kiln: {line}");
    }
    Ok(())
}
