//! One filesystem image: options settled and the output checked, then
//! sources → tree → plan → emit → sink.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kiln_sink::Sink;
use kiln_verity::VeritySink;

use crate::fs::{FsInput, FsPlan};
use crate::output::{Output, Provenance, Target};
use crate::progress::CountingSink;
use crate::verity::{VerityPlan, VerityReport};
use crate::{BuildReport, BuildRequest, FsRequest, Observer, OutputRequest, Phase};

/// Builds the filesystem image `req` asks for. Every option is checked,
/// and the output too, before any source is read; nothing is left at the
/// output when the build fails.
pub fn build(req: &BuildRequest, observer: &dyn Observer) -> Result<BuildReport> {
    let fs_req = fs_request(req, observer);
    let opts = fs_req
        .options(req.tree.live)
        .with_context(|| req.output.path.display().to_string())?;
    let input_files: Vec<PathBuf> = req.tree.input_files().collect();
    let inputs: Vec<&Path> = input_files.iter().map(PathBuf::as_path).collect();
    let target = Target::check(&req.output, &inputs)?;
    if let Some(verity) = &req.verity {
        verity.check(&req.output, &inputs)?;
    }
    let fs = FsInput::read(&req.tree, &fs_req, opts, target.place(), observer)?;
    enter(observer, Phase::Planning);
    let plan = fs
        .plan(None, 0)
        .map_err(|e| name_output(e, &req.output.path))?;
    for note in plan.notes() {
        observer.note(note);
    }
    let verity = match &req.verity {
        Some(v) => Some(VerityPlan::new(v, plan.size(), &fs.identity()?, observer)?),
        None => None,
    };
    let size = verity.as_ref().map_or(plan.size(), VerityPlan::output_size);
    let identity = fs.identity()?;
    let provenance = Provenance {
        identity: &identity,
        timestamp: fs.timestamp,
    };
    let out = Output::open(&req.output, &target, size, &provenance)?;
    enter(observer, Phase::Writing);
    if let Some(progress) = observer.progress() {
        progress.set_bytes_total(plan.bytes_to_write());
    }
    let verity_report = emit(&plan, verity.as_ref(), out.sink(), &req.output, observer)?;
    enter(observer, Phase::Committing);
    let written = out.finish(req.output.durability)?;
    let mut report = BuildReport::plain(&plan, &written);
    report.disk.size = size;
    report.verity = verity_report;
    report.write_if_asked(&req.output, written.sha256)?;
    Ok(report)
}

/// The filesystem `req` asks for, made read-only when it gets a dm-verity
/// tree (a journal asked for anyway is kept, with a warning).
fn fs_request<'r>(req: &'r BuildRequest, observer: &dyn Observer) -> Cow<'r, FsRequest> {
    if req.verity.is_none() {
        return Cow::Borrowed(&req.fs);
    }
    let (fs, warning) = req.fs.read_only();
    if let Some(warning) = warning {
        observer.warning(&warning);
    }
    Cow::Owned(fs)
}

/// Emits the filesystem into `sink`; with `verity`, through a
/// [`VeritySink`] that hashes it on the way, then writes the tree.
fn emit(
    plan: &FsPlan<'_>,
    verity: Option<&VerityPlan>,
    sink: &dyn Sink,
    output: &OutputRequest,
    observer: &dyn Observer,
) -> Result<Option<VerityReport>> {
    let Some(verity) = verity else {
        counted(sink, observer, |sink| plan.emit(sink, observer))?;
        return Ok(None);
    };
    let hashing = VeritySink::new(sink, verity.params.clone())?;
    counted(&hashing, observer, |sink| plan.emit(sink, observer))?;
    let area = hashing.finish();
    Ok(Some(verity.write(&area, sink, output)?))
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
