//! One filesystem image: options settled and the output checked, then
//! sources → tree → plan → emit → sink.

use std::path::Path;

use anyhow::{Context, Result};
use kiln_sink::Sink;

use crate::fs::FsInput;
use crate::output::{Output, Target};
use crate::progress::CountingSink;
use crate::{BuildReport, BuildRequest, Observer, Phase};

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
        .plan(None, 0)
        .map_err(|e| name_output(e, &req.output.path))?;
    for note in plan.notes() {
        observer.note(note);
    }
    let out = Output::open(&req.output, &target, plan.size())?;
    enter(observer, Phase::Writing);
    if let Some(progress) = observer.progress() {
        progress.set_bytes_total(plan.bytes_to_write());
    }
    counted(out.sink(), observer, |sink| plan.emit(sink, observer))?;
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
    let whole_image = match (
        e.downcast_ref::<kiln_ext::PlanError>(),
        e.downcast_ref::<kiln_fat::FatError>(),
    ) {
        (Some(kiln_ext::PlanError::Limit { .. }), _) => false,
        (Some(_), _) => true,
        (_, Some(fat)) => !fat.names_an_entry(),
        (None, None) => false,
    };
    if whole_image {
        e.context(output.display().to_string())
    } else {
        e
    }
}
