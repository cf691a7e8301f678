//! `kiln`: build ext2/ext3 filesystem images from directory trees, without
//! root, loop devices or mounting.
//!
//! This crate is only flags and glue: parse the command line into
//! [`kiln_ext::BuildOptions`], read the sources into a tree, plan, and emit
//! into a sink.
#![forbid(unsafe_code)]

mod flags;

use std::path::Path;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::Parser;
use kiln_tree::{Policy, Tree};

use flags::{BuildArgs, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(args) => build(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kiln: error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line; a cause that the message already
/// quotes (kiln's errors include the host's words) is not repeated.
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

/// `kiln build`: sources → tree → plan → emit → sink.
fn build(args: &BuildArgs) -> Result<()> {
    let mut opts = args.options()?;
    if !args.force && args.output.symlink_metadata().is_ok() {
        anyhow::bail!(
            "{}: already exists (use --force to overwrite)",
            args.output.display()
        );
    }
    let source_date_epoch = source_date_epoch()?;
    let policy = args.policy(source_date_epoch);
    let mut tree = read_sources(&args.sources, args.whiteouts, &policy)?;
    policy.apply_to_image(&mut tree)?;
    opts.timestamp = fs_timestamp(&tree, args.timestamp.or(source_date_epoch));
    let (uuid, seed) = kiln_ext::derive_ids(&tree, &opts);
    opts.uuid = args.uuid.unwrap_or(uuid);
    opts.hash_seed = args.seed.unwrap_or(seed);
    let plan = kiln_ext::plan(&tree, &opts)?;
    for note in &plan.notes {
        eprintln!("kiln: note: {note}");
    }
    let sink = kiln_sink::SparseFile::create(&args.output, plan.image_size, args.force)?;
    kiln_ext::emit(&plan, &sink)?;
    sink.commit()?;
    let geo = plan.geometry;
    eprintln!(
        "kiln: wrote {} ({} bytes): {}, {} blocks of {} bytes, {} inodes, {} groups",
        args.output.display(),
        plan.image_size,
        opts.fs_type.name(),
        geo.blocks_count,
        geo.block_size,
        geo.inodes_count(),
        geo.groups
    );
    Ok(())
}

/// Reads every source, applies the ownership policies to it, and lays them
/// over each other in order.
fn read_sources(sources: &[std::path::PathBuf], whiteouts: bool, policy: &Policy) -> Result<Tree> {
    let mut layers = sources.iter().map(|p| {
        let mut tree = read_source(p)?;
        policy.apply_to_source(&mut tree);
        Ok::<Tree, anyhow::Error>(tree)
    });
    let mut tree = layers.next().context("no source given")??;
    for layer in layers {
        tree.overlay(&layer?, whiteouts);
    }
    Ok(tree)
}

fn read_source(path: &Path) -> Result<Tree> {
    Ok(kiln_tree::read_dir_tree(path)?)
}

/// `SOURCE_DATE_EPOCH`, if set.
fn source_date_epoch() -> Result<Option<i64>> {
    let Some(v) = std::env::var_os("SOURCE_DATE_EPOCH") else {
        return Ok(None);
    };
    let s = v.to_string_lossy();
    let secs = s
        .trim()
        .parse::<i64>()
        .with_context(|| format!("SOURCE_DATE_EPOCH={s:?} is not a number of seconds"))?;
    Ok(Some(secs))
}

/// The filesystem's own timestamps: `fixed` (`--timestamp` or
/// `SOURCE_DATE_EPOCH`) if given, else the newest mtime in the tree, never
/// later than now (e2fsck reports times in the future).
fn fs_timestamp(tree: &Tree, fixed: Option<i64>) -> i64 {
    if let Some(secs) = fixed {
        return secs;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let newest = tree
        .reachable()
        .into_iter()
        .map(|id| tree.node(id).meta.mtime.secs)
        .max()
        .unwrap_or(0);
    newest.clamp(0, now)
}
