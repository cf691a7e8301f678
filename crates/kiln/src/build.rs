//! One filesystem image: options settled and the output checked, then
//! sources → tree → plan → emit → sink.

use std::path::Path;

use anyhow::{Context, Result};
use kiln_ext::{BuildOptions, Plan};
use kiln_sink::Sink;
use kiln_tree::{OutputPlace, Tree};

use crate::output::{Output, Target};
use crate::progress::CountingSink;
use crate::tree::{fs_timestamp, read_tree};
use crate::{BuildReport, BuildRequest, FsRequest, Observer, Phase, TreeRequest};

/// Builds the filesystem image `req` asks for. Every option is checked,
/// and the output too, before any source is read; nothing is left at the
/// output when the build fails.
pub fn build(req: &BuildRequest, observer: &dyn Observer) -> Result<BuildReport> {
    let opts = req
        .fs
        .options(req.tree.live)
        .with_context(|| req.output.path.display().to_string())?;
    let inputs: Vec<&Path> = req.tree.input_files().collect();
    let target = Target::check(&req.output, &inputs)?;
    let fs = FsInput::read(&req.tree, &req.fs, opts, target.place(), observer)?;
    enter(observer, Phase::Planning);
    let plan = fs
        .plan(fs.opts.size)
        .map_err(|e| name_output(e, &req.output.path))?;
    for note in &plan.notes {
        observer.note(note);
    }
    let out = Output::open(&req.output, &target, plan.image_size)?;
    enter(observer, Phase::Writing);
    if let Some(progress) = observer.progress() {
        progress.set_bytes_total(bytes_to_write(&plan));
    }
    counted(out.sink(), observer, |sink| {
        warn_stored_anyway(&kiln_ext::emit(&plan, sink)?, observer);
        Ok(())
    })?;
    enter(observer, Phase::Committing);
    let written = out.finish(req.output.durability)?;
    let mut report = BuildReport::plain(&plan, written.compressed);
    report.write_if_asked(&req.output, written.sha256)?;
    Ok(report)
}

/// Enters `phase`: tells the observer, and sets its counters' phase.
pub(crate) fn enter(observer: &dyn Observer, phase: Phase) {
    if let Some(progress) = observer.progress() {
        progress.set_phase(phase);
    }
    observer.phase(phase);
}

/// Runs `write` with `sink`, counted into the observer's progress if it
/// has one.
pub(crate) fn counted<T>(
    sink: &dyn Sink,
    observer: &dyn Observer,
    write: impl FnOnce(&dyn Sink) -> Result<T>,
) -> Result<T> {
    match observer.progress() {
        Some(progress) => write(&CountingSink::new(sink, progress)),
        None => write(sink),
    }
}

/// What a progress display counts the writing of `plan` against: the
/// blocks the filesystem uses, not the image size, which for a sparse
/// image is mostly holes that are never written. An upper bound: the
/// journal's body, the unused tail of each inode table and the zero blocks
/// of files count as used but are never written.
pub(crate) fn bytes_to_write(plan: &Plan<'_>) -> u64 {
    let geo = &plan.geometry;
    let (free_blocks, _) = plan.free_counts();
    (geo.blocks_count - free_blocks) * u64::from(geo.block_size)
}

/// Passes on the warnings of a live build about source files stored as
/// they could be read.
pub(crate) fn warn_stored_anyway(report: &kiln_ext::EmitReport, observer: &dyn Observer) {
    for line in report.warnings() {
        observer.warning(&line);
    }
}

/// Names the output in a planning error that concerns the whole image
/// (too small, too many inodes, invalid options); errors about one entry
/// already name its image path and are kept as they are.
fn name_output(e: anyhow::Error, output: &Path) -> anyhow::Error {
    match e.downcast_ref::<kiln_ext::PlanError>() {
        Some(kiln_ext::PlanError::Limit { .. }) | None => e,
        Some(_) => e.context(output.display().to_string()),
    }
}

/// A filesystem's tree and settled options, ready to plan.
pub(crate) struct FsInput {
    pub(crate) tree: Tree,
    pub(crate) opts: BuildOptions,
}

impl FsInput {
    /// Reads the tree of `tree` and settles what depends on it: the
    /// filesystem timestamp, and the UUID and hash seed derived from the
    /// inputs unless `fs` fixes them. `output` is where a file output
    /// goes, which no directory source may hold.
    pub(crate) fn read(
        tree: &TreeRequest,
        fs: &FsRequest,
        mut opts: BuildOptions,
        output: Option<&OutputPlace>,
        observer: &dyn Observer,
    ) -> Result<FsInput> {
        let tree_read = read_tree(tree, output, observer)?;
        opts.timestamp = fs_timestamp(&tree_read, tree.timestamp.or(tree.source_date_epoch));
        let (uuid, seed) = kiln_ext::derive_ids(&tree_read, &opts);
        opts.uuid = fs.uuid.unwrap_or(uuid);
        opts.hash_seed = fs.seed.unwrap_or(seed);
        Ok(FsInput {
            tree: tree_read,
            opts,
        })
    }

    /// Plans the filesystem with `size` bytes (None: sized as the options'
    /// `auto` says).
    pub(crate) fn plan(&self, size: Option<u64>) -> Result<Plan<'_>> {
        let mut opts = self.opts.clone();
        opts.size = size;
        Ok(kiln_ext::plan(&self.tree, &opts)?)
    }
}
