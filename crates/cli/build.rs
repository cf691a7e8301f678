//! `kiln build`: the flags as a [`kiln_lib::BuildRequest`] (or, with
//! `--config`, a [`kiln_lib::DiskRequest`]), run with the progress display,
//! then the summary of what was written.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Result};
use kiln_lib::{
    BuildReport, BuildRequest, DiskRequest, FsReport, Layout, Observer, Phase, Progress,
};

use crate::display::{self, Display};
use crate::flags::{BuildArgs, Layer};
use crate::source_date_epoch;

/// `kiln build`.
pub(crate) fn build(args: &BuildArgs, layers: Vec<Layer>) -> Result<()> {
    let sde = source_date_epoch()?;
    // Every flag is settled here, before the build reads anything.
    let job = match &args.config {
        Some(config) if !layers.is_empty() => bail!(
            "with --config, the sources and specs of each filesystem go in {}",
            config.display()
        ),
        Some(config) => Job::Disk(Box::new(DiskRequest {
            layout: Layout::load(config)?,
            output: args.output_request(),
            live: args.live,
            source_date_epoch: sde,
        })),
        None => Job::Fs(Box::new(args.request(layers, sde)?)),
    };
    let console = Console::start(args);
    let report = match &job {
        Job::Disk(req) => kiln_lib::build_disk(req, &console)?,
        Job::Fs(req) => kiln_lib::build(req, &console)?,
    };
    let timings = console.finish();
    let disk = matches!(job, Job::Disk(_));
    if !args.quiet && disk {
        print_disk_summary(&report, &args.output);
    } else if !args.quiet {
        print_summary(&report, &args.output);
    }
    print_low_room(&report, &args.output, disk);
    if let Some(verity) = &report.verity {
        print_verity(verity);
    }
    print_disk_verity(&report);
    if args.verbose {
        eprintln!("{}", display::timings_line(&timings));
    }
    Ok(())
}

/// What `kiln build` was asked for (both boxed: large, and of different
/// sizes, which clippy's large_enum_variant flags).
enum Job {
    /// A whole disk (`--config`).
    Disk(Box<DiskRequest>),
    /// One filesystem image.
    Fs(Box<BuildRequest>),
}

/// The observer of a build on the command line: the progress display
/// (phases timed for `--verbose`), notes (not under `--quiet`) and
/// warnings printed around it.
struct Console {
    display: Mutex<Display>,
    progress: Arc<Progress>,
    quiet: bool,
}

impl Console {
    /// Starts the display as the flags say.
    fn start(args: &BuildArgs) -> Console {
        let display = Display::start(args.progress, args.quiet);
        let progress = Arc::clone(display.progress());
        Console {
            display: Mutex::new(display),
            progress,
            quiet: args.quiet,
        }
    }

    /// Clears the display; how long each phase took.
    fn finish(self) -> Vec<(Phase, Duration)> {
        // A poisoned lock only means a panic elsewhere: the timings stand.
        let display = self.display.into_inner().unwrap_or_else(|e| e.into_inner());
        display.finish()
    }
}

impl Observer for Console {
    fn phase(&self, phase: Phase) {
        self.display
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .phase(phase);
    }

    // Notes say how the plan adjusted the options: informational, so not under -q.
    fn note(&self, text: &str) {
        if !self.quiet {
            display::message(&format!("kiln: note: {text}"));
        }
    }

    fn warning(&self, text: &str) {
        display::message(&format!("kiln: warning: {text}"));
    }

    fn progress(&self) -> Option<&Progress> {
        Some(&self.progress)
    }
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
        let counts = if is_fat(fs) {
            format!(
                "{} clusters of {} bytes ({} free)",
                fs.blocks, fs.block_size, fs.blocks_free
            )
        } else {
            format!(
                "{} blocks of {} bytes ({} free), {} inodes ({} free), {} groups",
                fs.blocks, fs.block_size, fs.blocks_free, fs.inodes, fs.inodes_free, fs.groups
            )
        };
        eprintln!(
            "kiln: wrote {} ({} bytes{zstd}{}): {}, {counts}",
            output.display(),
            d.size,
            shared(report),
            fs.fs_type,
        );
    }
}

/// The dm-verity tree's numbers and how to open it, even under `--quiet`
/// (without the root hash the image cannot be used), on stderr like the
/// rest: stdout may be the image.
fn print_verity(v: &kiln_lib::VerityReport) {
    let place = match &v.hash_file {
        Some(path) => format!("in {}", path.display()),
        None => format!("appended at byte offset {}", v.hash_offset),
    };
    eprintln!(
        "kiln: dm-verity: root hash {}, salt {}, {} data blocks of {} bytes, hash tree ({} \
         bytes) {place}",
        v.root_hash,
        if v.salt.is_empty() { "-" } else { &v.salt },
        v.data_blocks,
        v.data_block_size,
        v.hash_size,
    );
    eprintln!("kiln: open with: {}", v.veritysetup_open);
}

/// Each dm-verity pair of a disk: its partitions, root hash and kernel
/// command line, even under `--quiet` (like [`print_verity`]).
fn print_disk_verity(report: &BuildReport) {
    let with = |role| {
        report
            .partitions
            .iter()
            .filter(move |p| p.verity.as_ref().is_some_and(|v| v.role == role))
    };
    for data in with("data") {
        // OK to unwrap: `with` keeps partitions with a verity part.
        let v = data.verity.as_ref().expect("a verity partition");
        let hash = with("hash")
            .find(|h| {
                h.verity
                    .as_ref()
                    .is_some_and(|hv| hv.verity_match == v.verity_match)
            })
            .map_or(0, |h| h.number);
        eprintln!(
            "kiln: dm-verity: partition {} ({}) hashed into partition {hash}: root hash {}, salt {}",
            data.number, data.label, v.root_hash, v.salt
        );
        eprintln!("kiln: kernel command line: {}", v.kernel_cmdline);
    }
}

/// The warning of each filesystem with under 1 % of its blocks or inodes
/// free (even under `--quiet`).
fn print_low_room(report: &BuildReport, output: &Path, disk: bool) {
    for p in &report.partitions {
        let Some(warning) = p.filesystem.as_ref().and_then(|f| f.low_room.as_ref()) else {
            continue;
        };
        if disk {
            eprintln!("kiln: warning: partition {}: {warning}", p.label);
        } else {
            eprintln!("kiln: warning: {}: {warning}", output.display());
        }
    }
}

/// A line for the disk, then one per partition.
fn print_disk_summary(report: &BuildReport, output: &Path) {
    let zstd = compressed(report);
    eprintln!(
        "kiln: wrote {} ({} bytes{zstd}{})",
        output.display(),
        report.disk.size,
        shared(report)
    );
    for p in &report.partitions {
        let fs = p
            .filesystem
            .as_ref()
            .map_or("no filesystem".to_string(), |f| {
                if is_fat(f) {
                    format!(
                        "{} {}, {} of {} clusters used",
                        f.fs_type, f.uuid, f.blocks_used, f.blocks
                    )
                } else {
                    format!(
                        "{} {}, {} of {} blocks and {} of {} inodes used",
                        f.fs_type, f.uuid, f.blocks_used, f.blocks, f.inodes_used, f.inodes
                    )
                }
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
}

/// Whether a filesystem is FAT, which counts clusters and has no inodes.
fn is_fat(fs: &FsReport) -> bool {
    fs.fs_type.starts_with("fat")
}

/// `, N bytes shared with the sources` when source ranges were cloned into
/// the image.
fn shared(report: &BuildReport) -> String {
    match report.disk.shared_bytes {
        0 => String::new(),
        n => format!(", {n} bytes shared with the sources"),
    }
}

/// `, N bytes compressed` for a compressed output, `, as qcow2 in N
/// bytes` for a container.
fn compressed(report: &BuildReport) -> String {
    let disk = &report.disk;
    match (disk.zstd_bytes, disk.format_bytes) {
        (Some(z), _) => format!(", {z} bytes compressed"),
        (None, Some(n)) => format!(", as {} in {n} bytes", disk.format),
        (None, None) => String::new(),
    }
}
