//! `kiln`: build ext2/ext3 filesystem images from directory trees, without
//! root, loop devices or mounting.
//!
//! This crate is only flags and glue: parse the command line into
//! [`kiln_ext::BuildOptions`], read the sources into a tree, plan, and emit
//! into a sink; `info`, `ls` and `cat` (in `inspect`) read an image back, `extract`
//! restores its tree.
#![forbid(unsafe_code)]

mod disk;
mod display;
mod extract;
mod flags;
mod generate;
mod image;
mod inspect;
mod output;
mod progress;
mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches};
use kiln_tree::{
    parse_device_table, parse_file_contexts, Excludes, Metadata, OutputPlace, Policy, Spec,
    TarOptions, Tree, WalkOptions,
};

use display::Display;
use flags::{BuildArgs, Cli, Command, Layer, TreeArgs};
use progress::{CountingSink, Phase, Progress};

fn main() -> ExitCode {
    // Destructors do not run when a signal ends the process: remove the
    // output being written (never renamed into place), then exit as
    // interrupted. Without a handler (it failed to install) the temporary
    // file beside the output is left, which is still never the output.
    let _ = ctrlc::set_handler(|| {
        kiln_host::remove_partial_outputs();
        eprintln!("kiln: interrupted: the partial output was removed");
        std::process::exit(130);
    });
    let matches = Cli::command().get_matches();
    let result = Cli::from_arg_matches(&matches)
        .map_err(|e| e.exit())
        .and_then(|cli| match cli.command {
            Command::Build(args) => {
                // OK: clap only yields Build when the build subcommand matched.
                let sub = matches.subcommand_matches("build").expect("build matches");
                build(&args, &args.tree.layers(&args.sources, sub))
            }
            Command::Verify(args) => {
                // OK: as for build.
                let sub = matches
                    .subcommand_matches("verify")
                    .expect("verify matches");
                verify::verify(&args, &args.tree.layers(&args.sources, sub))
            }
            Command::Info(args) => inspect::info(&args),
            Command::Ls(args) => inspect::ls(&args),
            Command::Cat(args) => inspect::cat(&args),
            Command::Extract(args) => extract::extract(&args),
            Command::Generate(args) => generate::generate(&args),
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::from(BROKEN_PIPE_STATUS),
        Err(e) => {
            eprintln!("kiln: error: {}", message(&e));
            failure_status(&e, matches.subcommand_name())
        }
    }
}

/// The exit status when the reader of standard output goes away (`kiln ls
/// IMG | head -1`): what a shell reports for `cat`, which SIGPIPE ends
/// (128 + 13). Rust ignores SIGPIPE, so kiln sees the write fail instead.
const BROKEN_PIPE_STATUS: u8 = 141;

/// Whether `e` comes from a pipe whose reader went away: as with any tool
/// that SIGPIPE ends, that is no error to report. Only standard output is
/// a pipe kiln writes to.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// 1 for a failure, but `verify` says 1 only for differences and 2 for
/// trouble, as `cmp` and `diff` do, so a script can tell them apart.
fn failure_status(e: &anyhow::Error, command: Option<&str>) -> ExitCode {
    if command == Some("verify") && !e.is::<verify::Differences>() {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

/// The error and its causes on one line; a cause that the message already
/// quotes (kiln's errors include the host's words) is not repeated.
pub(crate) fn message(e: &anyhow::Error) -> String {
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

/// `kiln build`: sources → tree → plan → emit → sink (or a whole disk
/// from a layout file).
fn build(args: &BuildArgs, layers: &[Layer]) -> Result<()> {
    if let Some(config) = &args.config {
        if !layers.is_empty() {
            anyhow::bail!(
                "with --config, the sources and specs of each filesystem go in {}",
                config.display()
            );
        }
        return disk::build(args, config);
    }
    let target = output::Target::check(&disk::output_args(args), &input_files(layers, &args.tree))?;
    let mut display = Display::start(args.progress, args.quiet);
    let sde = source_date_epoch()?;
    let fs = prepare_fs_with(args, layers, sde, target.place(), Some(display.progress()))?;
    display.phase(Phase::Planning);
    let plan = fs.plan(fs.opts.size).map_err(|e| name_output(e, args))?;
    // Notes say how the plan adjusted the options: informational, so not under -q.
    for note in plan.notes.iter().filter(|_| !args.quiet) {
        display::message(&format!("kiln: note: {note}"));
    }
    let geo = &plan.geometry;
    let (free_blocks, free_inodes) = plan.free_counts();
    let used_bytes = (geo.blocks_count - free_blocks) * u64::from(geo.block_size);
    display.progress().set_bytes_total(used_bytes);
    display.phase(Phase::Writing);
    let out = output::Output::open(&disk::output_args(args), &target, plan.image_size)?;
    let sink = CountingSink::new(out.sink(), display.progress());
    let report = kiln_ext::emit(&plan, &sink)?;
    warn_stored_anyway(&report);
    display.phase(Phase::Committing);
    let written = out.finish(args.durability())?;
    let timings = display.finish();
    let zstd = written
        .compressed
        .map_or(String::new(), |z| format!(", {z} bytes compressed"));
    if !args.quiet {
        eprintln!(
            "kiln: wrote {} ({} bytes{zstd}): {}, {} blocks of {} bytes ({free_blocks} free), {} inodes ({free_inodes} free), {} groups",
            args.output.display(),
            plan.image_size,
            plan.fs_type().name(),
            geo.blocks_count,
            geo.block_size,
            geo.inodes_count(),
            geo.groups
        );
    }
    if let Some(warning) = plan.low_room() {
        eprintln!("kiln: warning: {}: {warning}", args.output.display());
    }
    if args.verbose {
        eprintln!("{}", display::timings_line(&timings));
    }
    if let Some(path) = &args.report {
        disk::Report::plain(&plan, written.compressed).write(path, written.sha256, args)?;
    }
    Ok(())
}

/// The files a build's layers read (a directory source too: only files
/// can be outputs, so it never matches): the output must be none of them.
pub(crate) fn input_files<'a>(layers: &'a [Layer], tree: &'a TreeArgs) -> Vec<&'a Path> {
    layers
        .iter()
        .filter_map(|layer| match layer {
            Layer::Source(path) | Layer::Spec(path) | Layer::DeviceTable(path) => {
                Some(path.as_path())
            }
            Layer::SpecLine(_) => None,
        })
        .chain(tree.file_contexts.as_deref())
        .collect()
}

/// Prints the warnings of `--live` about source files stored as they could
/// be read.
pub(crate) fn warn_stored_anyway(report: &kiln_ext::EmitReport) {
    for line in report.warnings() {
        display::message(&format!("kiln: warning: {line}"));
    }
}

/// Prints the warning of `--live` about entries that vanished while the
/// tree was read (the first few, then how many more).
fn warn_vanished(vanished: &[PathBuf]) {
    let shown = kiln_ext::SourceIssues::SHOWN;
    for path in vanished.iter().take(shown) {
        display::message(&format!(
            "kiln: warning: {}: vanished while the tree was read; left out",
            path.display()
        ));
    }
    if vanished.len() > shown {
        let more = vanished.len() - shown;
        display::message(&format!(
            "kiln: warning: and {more} more entries vanished and were left out"
        ));
    }
}

/// Names the output in a planning error that concerns the whole image
/// (too small, too many inodes, invalid options); errors about one entry
/// already name its image path and are kept as they are.
fn name_output(e: anyhow::Error, args: &BuildArgs) -> anyhow::Error {
    match e.downcast_ref::<kiln_ext::PlanError>() {
        Some(kiln_ext::PlanError::Limit { .. }) | None => e,
        Some(_) => e.context(args.output.display().to_string()),
    }
}

/// A filesystem's tree and options, ready to plan.
pub(crate) struct FsInput {
    pub(crate) tree: Tree,
    pub(crate) opts: kiln_ext::BuildOptions,
}

impl FsInput {
    /// Plans the filesystem with `size` bytes (None: sized as the options'
    /// `auto` says).
    pub(crate) fn plan(&self, size: Option<u64>) -> Result<kiln_ext::Plan<'_>> {
        let mut opts = self.opts.clone();
        opts.size = size;
        Ok(kiln_ext::plan(&self.tree, &opts)?)
    }
}

/// Reads a build's sources and settles its options: the filesystem
/// timestamp, and the UUID and hash seed derived from the inputs. `output`
/// is where the image goes, which no directory source may hold.
pub(crate) fn prepare_fs(
    args: &BuildArgs,
    layers: &[Layer],
    source_date_epoch: Option<i64>,
    output: Option<&OutputPlace>,
) -> Result<FsInput> {
    prepare_fs_with(args, layers, source_date_epoch, output, None)
}

/// [`prepare_fs`], counting the entries read into `progress`.
fn prepare_fs_with(
    args: &BuildArgs,
    layers: &[Layer],
    source_date_epoch: Option<i64>,
    output: Option<&OutputPlace>,
    progress: Option<&Progress>,
) -> Result<FsInput> {
    let mut opts = args.options()?;
    let live = args.live;
    let tree = read_tree_with(
        layers,
        &args.tree,
        source_date_epoch,
        output,
        live,
        progress,
    )?;
    opts.timestamp = fs_timestamp(&tree, args.tree.timestamp.or(source_date_epoch));
    let (uuid, seed) = kiln_ext::derive_ids(&tree, &opts);
    opts.uuid = args.uuid.unwrap_or(uuid);
    opts.hash_seed = args.seed.unwrap_or(seed);
    Ok(FsInput { tree, opts })
}

/// The tree an image holds: the layers, then excludes, SELinux labels and
/// the image-wide policies. `kiln build` writes it (to `output`, which no
/// directory source may hold), `kiln verify` compares an image with it.
/// With `live` (`--live`), directory entries that vanish while they are
/// read are left out, with a warning.
pub(crate) fn read_tree(
    layers: &[Layer],
    args: &TreeArgs,
    source_date_epoch: Option<i64>,
    output: Option<&OutputPlace>,
    live: bool,
) -> Result<Tree> {
    read_tree_with(layers, args, source_date_epoch, output, live, None)
}

/// [`read_tree`], counting the entries read into `progress`.
fn read_tree_with(
    layers: &[Layer],
    args: &TreeArgs,
    source_date_epoch: Option<i64>,
    output: Option<&OutputPlace>,
    live: bool,
    progress: Option<&Progress>,
) -> Result<Tree> {
    let policy = args.policy(source_date_epoch);
    let excludes = Excludes::parse(&args.exclude)?;
    let walk = WalkOptions {
        output,
        live,
        entries: progress.map(|p| &**p.entries_counter()),
        ..WalkOptions::default()
    };
    let mut tar = args.tar_options();
    if let Some(progress) = progress {
        tar = tar.count_entries(progress.entries_counter().clone());
    }
    let mut tree = read_layers(layers, args, &policy, &excludes, &walk, &tar)?;
    // Directory sources left most excluded entries unread; tar sources,
    // specs and the entries later specs needed are removed here.
    excludes.apply(&mut tree);
    if let Some(path) = &args.file_contexts {
        parse_file_contexts(&read_text(path)?, path)?.apply(&mut tree);
    }
    policy.apply_to_image(&mut tree)?;
    tree.finish();
    Ok(tree)
}

/// Reads the layers in order: each source (with the ownership policies
/// applied) is laid over the tree so far, each spec edits it. A directory
/// source's walk (as `walk` says, with its pruning set here) leaves unread
/// what `excludes` removes anyway, except what the specs after it may need.
fn read_layers(
    layers: &[Layer],
    args: &TreeArgs,
    policy: &Policy,
    excludes: &Excludes,
    walk: &WalkOptions<'_>,
    tar: &TarOptions,
) -> Result<Tree> {
    let specs = parse_specs(layers)?;
    // The specs not applied yet: those after the layer at hand.
    let mut later_specs = specs.as_slice();
    let mut tree: Option<Tree> = None;
    for layer in layers {
        let Layer::Source(path) = layer else {
            // OK: parse_specs gave one spec per layer that is not a source.
            let (spec, rest) = later_specs.split_first().expect("a spec per spec layer");
            spec.apply(tree.get_or_insert_with(empty_tree))?;
            later_specs = rest;
            continue;
        };
        let walk = WalkOptions {
            pruning: excludes.pruning(later_specs, args.whiteouts),
            ..*walk
        };
        let mut upper = read_source(path, tar, &walk)?;
        policy.apply_to_source(&mut upper);
        match &mut tree {
            Some(lower) => lower.overlay(&upper, args.whiteouts),
            None => tree = Some(upper),
        }
    }
    tree.context("no source given")
}

/// The spec layers (spec files, `-p` lines, device tables), parsed in
/// order before any source is read: a directory walk needs to know what
/// the specs after it reach.
fn parse_specs(layers: &[Layer]) -> Result<Vec<Spec>> {
    layers
        .iter()
        .filter_map(|layer| match layer {
            Layer::Source(_) => None,
            Layer::Spec(path) => Some(read_text(path).and_then(|t| Ok(Spec::parse(&t, path)?))),
            Layer::SpecLine(line) => Some(Spec::parse(line, Path::new("-p")).map_err(Into::into)),
            Layer::DeviceTable(path) => {
                Some(read_text(path).and_then(|t| Ok(parse_device_table(&t, path)?)))
            }
        })
        .collect()
}

/// A tree of only a root directory (0755, owned by root, epoch times), for
/// images described by spec files alone.
fn empty_tree() -> Tree {
    Tree::new(Metadata::made(0o755, 0, 0))
}

/// A directory (walked as `walk` says), or else a tar archive (`-` is
/// stdin), read with `tar`.
fn read_source(path: &Path, tar: &TarOptions, walk: &WalkOptions<'_>) -> Result<Tree> {
    if path.as_os_str() != "-" && path.is_dir() {
        if let Some(missing) = kiln_host::missing_metadata() {
            display::message(&format!(
                "kiln: warning: {}: this host does not keep {missing}; set what matters \
                 with a spec (--spec, -p) or --all-root, or build from a tar archive",
                path.display()
            ));
        }
        let (tree, vanished) = kiln_tree::read_dir_tree_with(path, walk)?;
        warn_vanished(&vanished);
        Ok(tree)
    } else {
        Ok(tar.read(path)?)
    }
}

/// Reads a spec, device table or file_contexts file.
fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| path.display().to_string())
}

/// `SOURCE_DATE_EPOCH`, if set.
pub(crate) fn source_date_epoch() -> Result<Option<i64>> {
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
