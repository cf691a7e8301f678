//! `kiln build`: the flags as a [`kiln_lib::BuildRequest`] (or, with
//! `--config`, a [`kiln_lib::DiskRequest`]), then the summary of what was
//! written.

use std::path::Path;

use anyhow::{bail, Result};
use kiln_lib::{BuildReport, DiskRequest, Layout};

use crate::flags::{BuildArgs, Layer};
use crate::{source_date_epoch, Stderr};

/// `kiln build`.
pub(crate) fn build(args: &BuildArgs, layers: Vec<Layer>) -> Result<()> {
    let sde = source_date_epoch()?;
    if let Some(config) = &args.config {
        if !layers.is_empty() {
            bail!(
                "with --config, the sources and specs of each filesystem go in {}",
                config.display()
            );
        }
        let req = DiskRequest {
            layout: Layout::load(config)?,
            output: args.output_request(),
            live: args.live,
            source_date_epoch: sde,
        };
        let report = kiln_lib::build_disk(&req, &Stderr)?;
        print_disk_summary(&report, &args.output);
        return Ok(());
    }
    let req = args.request(layers, sde)?;
    let report = kiln_lib::build(&req, &Stderr)?;
    print_summary(&report, &args.output);
    Ok(())
}

/// One stderr line: what was written, and the filesystem's numbers.
fn print_summary(report: &BuildReport, output: &Path) {
    let d = &report.disk;
    let zstd = compressed(report);
    for fs in report
        .partitions
        .iter()
        .filter_map(|p| p.filesystem.as_ref())
    {
        eprintln!(
            "kiln: wrote {} ({} bytes{zstd}): {}, {} blocks of {} bytes ({} free), {} inodes ({} free), {} groups",
            output.display(),
            d.size,
            fs.fs_type,
            fs.blocks,
            fs.block_size,
            fs.blocks_free,
            fs.inodes,
            fs.inodes_free,
            fs.groups
        );
        if let Some(warning) = &fs.low_room {
            eprintln!("kiln: warning: {}: {warning}", output.display());
        }
    }
}

/// A line for the disk, then one per partition.
fn print_disk_summary(report: &BuildReport, output: &Path) {
    let zstd = compressed(report);
    eprintln!(
        "kiln: wrote {} ({} bytes{zstd})",
        output.display(),
        report.disk.size
    );
    for p in &report.partitions {
        let fs = p
            .filesystem
            .as_ref()
            .map_or("no filesystem".to_string(), |f| {
                format!(
                    "{} {}, {} of {} blocks and {} of {} inodes used",
                    f.fs_type, f.uuid, f.blocks_used, f.blocks, f.inodes_used, f.inodes
                )
            });
        eprintln!(
            "kiln:   {} {:?} ({}): {} bytes at {}: {fs}",
            p.number,
            p.label,
            p.type_name.unwrap_or(&p.type_guid),
            p.size,
            p.offset
        );
    }
    for p in &report.partitions {
        if let Some(warning) = p.filesystem.as_ref().and_then(|f| f.low_room.as_ref()) {
            eprintln!("kiln: warning: partition {}: {warning}", p.label);
        }
    }
}

/// `, N bytes compressed` for a compressed output.
fn compressed(report: &BuildReport) -> String {
    report
        .disk
        .zstd_bytes
        .map_or(String::new(), |z| format!(", {z} bytes compressed"))
}
