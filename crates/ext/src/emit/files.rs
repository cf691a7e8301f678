//! Copying regular files from their sources into their blocks.
//!
//! Into a sink that clones ([`Sink::clones`]: an output file on a
//! filesystem that shares extents with the source), the whole blocks of a
//! file of at least [`CLONE_MIN`] bytes are cloned ([`Sink::clone_range`])
//! and only its tail is copied; the image's bytes are the same either way.
//!
//! Each copy is checked against what the tree recorded of the file
//! ([`Freshness`]: one `fstat` after the copy). Trouble with a source file
//! (unreadable, vanished, changed) is collected in [`Sources`] rather than
//! returned, so that one build names every such file; only a failing sink
//! stops the writing.
//!
//! Under `--live` a file that changed while it was copied is copied again.
//! A file of at most [`LIVE_COPY_BUFFER`] bytes is read whole into memory
//! first and written once it is settled, so that every sink gets each byte
//! range once. A larger one is copied as it is read; when it changed, it is
//! copied again over the same blocks if the sink can take a range back
//! ([`Sink::rewrites`]: a file or a device), else (a stream) it is stored as
//! read, with a warning.

use std::ops::Range;
use std::sync::Mutex;

use kiln_sink::{Sink, SinkError};
use kiln_tree::{DataError, DataReader, FileData, Freshness};

use super::content::{write_index_blocks, write_logical, zero_run_tail};
use super::COPY_CHUNK;
use crate::alloc::Mapping;
use crate::plan::Plan;
use crate::{EmitError, EmitReport, IssueKind, SourceIssue, SourceIssues};

/// How many times `--live` copies a file that keeps changing while it is
/// copied, before it stores the last copy with a warning.
const LIVE_COPIES: u32 = 3;

/// The most bytes of a file `--live` reads into memory before writing them
/// (so that it can copy the file again): per worker thread, at most one.
pub(crate) const LIVE_COPY_BUFFER: usize = 8 << 20;

/// How source files are copied (`live` or not), and the trouble met so far.
pub(super) struct Sources {
    live: bool,
    issues: Mutex<Vec<SourceIssue>>,
}

/// Why one pass over a source file stopped.
enum Stop {
    /// Reading the source failed: its trouble, emit goes on.
    Source(DataError),
    /// Writing the image failed: emit stops.
    Emit(EmitError),
}

impl From<DataError> for Stop {
    fn from(e: DataError) -> Stop {
        Stop::Source(e)
    }
}

impl From<EmitError> for Stop {
    fn from(e: EmitError) -> Stop {
        Stop::Emit(e)
    }
}

impl From<SinkError> for Stop {
    fn from(e: SinkError) -> Stop {
        Stop::Emit(e.into())
    }
}

impl Sources {
    /// No trouble yet; `live` as [`BuildOptions::live`](crate::BuildOptions::live).
    pub(super) fn new(live: bool) -> Sources {
        Sources {
            live,
            issues: Mutex::new(Vec::new()),
        }
    }

    /// Once every piece is written: an error naming every file that failed,
    /// else the report of the files stored anyway (by path either way, so
    /// the message does not depend on thread timing).
    pub(super) fn finish(self) -> Result<EmitReport, EmitError> {
        let live = self.live;
        let mut issues = self.issues.into_inner().unwrap_or_else(|e| e.into_inner());
        issues.sort_by(|a, b| a.path.cmp(&b.path));
        if issues.iter().any(|i| fails(live, &i.kind)) {
            issues.retain(|i| fails(live, &i.kind));
            return Err(EmitError::Sources(SourceIssues(issues)));
        }
        Ok(EmitReport {
            stored_anyway: SourceIssues(issues),
        })
    }

    fn record(&self, f: &FileData, kind: IssueKind) {
        let issue = SourceIssue {
            path: f.origin(),
            kind,
        };
        self.issues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(issue);
    }

    /// How many times a file read whole may be copied.
    fn copies(&self) -> u32 {
        if self.live {
            LIVE_COPIES
        } else {
            1
        }
    }

    /// All of `f`'s bytes (holes as zeros), read whole before any is
    /// written: an inline file, or under `--live` a file of at most
    /// [`LIVE_COPY_BUFFER`] bytes. Zeros where the source could not be read.
    pub(super) fn read_whole(&self, f: &FileData) -> Result<Vec<u8>, EmitError> {
        let mut data = vec![0u8; f.size as usize];
        self.copy(f, self.copies(), |reader| {
            Ok(reader.read_exact_at(&mut data, 0)?)
        })?;
        Ok(data)
    }

    /// Copies `f` with `pass`, which reads what it needs through the reader
    /// it is given (and may write to the sink as it goes: then `copies` must
    /// be 1, or the sink must rewrite), then checks the file; under `--live`
    /// a file that changed during the pass is passed over again, up to
    /// `copies` times. Records the file's trouble, if any. `Ok(false)` when
    /// the file could not be opened (for a pass after the first, when it
    /// vanished after the first pass).
    fn copy(
        &self,
        f: &FileData,
        copies: u32,
        mut pass: impl FnMut(&DataReader<'_>) -> Result<(), Stop>,
    ) -> Result<bool, EmitError> {
        let mut copy = 0;
        loop {
            copy += 1;
            let reader = match f.source.open() {
                Ok(reader) => reader,
                Err(e) => {
                    self.record(f, opening_issue(e, f.size));
                    return Ok(false);
                }
            };
            let checked = match pass(&reader) {
                // It ended early: it shrank while it was read.
                Err(Stop::Source(DataError::Changed(_))) => Ok(Freshness::Moving),
                passed => passed.and_then(|()| Ok(reader.check(f.size)?)),
            };
            let kind = match checked {
                Ok(Freshness::Unchanged) => None,
                Ok(Freshness::Rewritten) if self.live => None,
                Ok(Freshness::Moving) if copy < copies => continue,
                Ok(Freshness::Moving) => Some(IssueKind::Moving { copies }),
                Ok(Freshness::Rewritten) => Some(IssueKind::Rewritten),
                Ok(Freshness::Resized { now }) => Some(IssueKind::Resized {
                    planned: f.size,
                    now,
                }),
                Err(Stop::Source(e)) => Some(IssueKind::Unreadable(io_error(e))),
                Err(Stop::Emit(e)) => return Err(e),
            };
            if let Some(kind) = kind {
                self.record(f, kind);
            }
            return Ok(true);
        }
    }
}

/// Whether `kind` fails the build: any issue by default, only an
/// unreadable file under `--live`.
fn fails(live: bool, kind: &IssueKind) -> bool {
    !live || matches!(kind, IssueKind::Unreadable(_))
}

/// The issue of a source file that could not be opened.
fn opening_issue(e: DataError, planned: u64) -> IssueKind {
    let e = io_error(e);
    if e.kind() == std::io::ErrorKind::NotFound {
        IssueKind::Vanished { planned }
    } else {
        IssueKind::Unreadable(e)
    }
}

fn io_error(e: DataError) -> std::io::Error {
    match e {
        DataError::Io { source } => source,
        other => std::io::Error::other(other.to_string()),
    }
}

/// Writes a regular file's data and index blocks: in one write when they
/// form a small span; else the index blocks, then the data (read whole
/// first under `--live` when it is small enough, else copied in chunks).
pub(super) fn write_file(
    plan: &Plan<'_>,
    sources: &Sources,
    sink: &dyn Sink,
    mapping: &Mapping,
    index: &[(u64, Vec<u8>)],
    f: &FileData,
) -> Result<(), EmitError> {
    let bs = u64::from(plan.geometry.block_size);
    let span = small_span(mapping, index, bs).filter(|_| !may_clone(sink, f));
    if let Some(span) = span {
        return write_file_span(plan, sources, sink, mapping, index, f, span);
    }
    write_index_blocks(plan, sink, index)?;
    if sources.live && f.size <= LIVE_COPY_BUFFER as u64 {
        return write_logical(plan, sink, mapping, &sources.read_whole(f)?);
    }
    copy_file(plan, sources, sink, mapping, f)
}

/// Whether `f`'s data may be cloned into `sink` rather than copied: a sink
/// that clones ([`Sink::clone_range`]) and a file of at least [`CLONE_MIN`]
/// bytes.
fn may_clone(sink: &dyn Sink, f: &FileData) -> bool {
    sink.clones() && f.size >= CLONE_MIN
}

/// The smallest file whose data is handed to [`Sink::clone_range`]. A clone
/// costs a filesystem transaction whatever its length: on XFS (reflink=1)
/// cloning every file of a block or more made the Linux tree's build about
/// twice as slow as writing it; from 64 KiB on it is as fast, and the image
/// still adds 830 MiB to the filesystem instead of 1,458 (BENCHMARKS.md,
/// "Shared extents").
const CLONE_MIN: u64 = 64 << 10;

/// Copies a source file's data runs into their blocks: the whole blocks
/// that the sink can clone first, the rest chunk by chunk as it is read;
/// once, or under `--live` into a sink that rewrites, again over the same
/// blocks while it changes (every byte then, zeros included).
fn copy_file(
    plan: &Plan<'_>,
    sources: &Sources,
    sink: &dyn Sink,
    mapping: &Mapping,
    f: &FileData,
) -> Result<(), EmitError> {
    let mut runs = mapping.data_runs().peekable();
    if runs.peek().is_none() {
        return Ok(());
    }
    let geo = &plan.geometry;
    let bs = u64::from(geo.block_size);
    // Never larger than the file: a zeroed 1 MiB buffer for each of tens of
    // thousands of small files showed up as a tenth of the build time.
    let mut buf = vec![0u8; COPY_CHUNK.min(f.size.next_multiple_of(bs) as usize)];
    let copies = if sink.rewrites() { sources.copies() } else { 1 };
    let mut passes = 0;
    let opened = sources.copy(f, copies, |reader| {
        let again = passes > 0;
        passes += 1;
        for run in mapping.data_runs() {
            let start = u64::from(run.lblk) * bs;
            let end = (start + u64::from(run.len) * bs).min(f.size);
            let run_at = geo.offset(run.pblk);
            let mut pos = start + clone_part(sink, reader, run_at, start..end)?;
            while pos < end {
                let n = ((end - pos) as usize).min(buf.len());
                reader.read_exact_at(&mut buf[..n], pos)?;
                let at = run_at + (pos - start);
                if again {
                    sink.rewrite_at(at, &buf[..n])?;
                } else {
                    sink.write_at(at, &buf[..n])?;
                }
                pos += n as u64;
            }
            let written = end.saturating_sub(start);
            zero_run_tail(sink, run_at, run.len, bs, written)?;
        }
        Ok(())
    })?;
    if !opened {
        // A vanished file is stored as zeros (under --live): a block device
        // must be told, it may hold old bytes there, and a copy made before
        // it vanished is overwritten.
        buf.fill(0);
        for run in mapping.data_runs() {
            let at = geo.offset(run.pblk);
            if passes == 0 {
                zero_run_tail(sink, at, run.len, bs, 0)?;
                continue;
            }
            for chunk in (0..u64::from(run.len) * bs).step_by(buf.len()) {
                let n = (u64::from(run.len) * bs - chunk).min(buf.len() as u64);
                sink.rewrite_at(at + chunk, &buf[..n as usize])?;
            }
        }
    }
    Ok(())
}

/// Clones what `sink` can of the file's bytes `range`, whose place in the
/// image starts at byte `at`, from the start of the range: returns how many
/// bytes it took (the caller copies the rest).
fn clone_part(
    sink: &dyn Sink,
    reader: &DataReader<'_>,
    at: u64,
    range: Range<u64>,
) -> Result<u64, SinkError> {
    if !sink.clones() {
        return Ok(0);
    }
    match reader.backing(range.start, range.end - range.start) {
        Some((file, offset, len)) => sink.clone_range(at, file, offset, len),
        None => Ok(0),
    }
}

/// The blocks of a mapping (data and index blocks) when they are one
/// contiguous span of at most [`COPY_CHUNK`] bytes: most files, whose
/// indirect blocks (block maps) sit between their data runs.
fn small_span(mapping: &Mapping, index: &[(u64, Vec<u8>)], bs: u64) -> Option<Range<u64>> {
    let runs = mapping
        .data_runs()
        .map(|r| r.pblk..r.pblk + u64::from(r.len));
    let blocks = runs.chain(index.iter().map(|(b, _)| *b..*b + 1));
    let (mut first, mut end, mut count) = (u64::MAX, 0, 0);
    for r in blocks {
        first = first.min(r.start);
        end = end.max(r.end);
        count += r.end - r.start;
    }
    let contiguous = count > 0 && end - first == count;
    (contiguous && count * bs <= COPY_CHUNK as u64).then_some(first..end)
}

/// Writes a file whose blocks are `span` with one write: the data read into
/// its place in a buffer of the span, the index blocks beside it, the tails
/// of partial blocks zero. (Separate writes of a few blocks each cost as
/// much as the copying, and contend for the output file's lock.)
fn write_file_span(
    plan: &Plan<'_>,
    sources: &Sources,
    sink: &dyn Sink,
    mapping: &Mapping,
    index: &[(u64, Vec<u8>)],
    f: &FileData,
    span: Range<u64>,
) -> Result<(), EmitError> {
    let geo = &plan.geometry;
    let bs = u64::from(geo.block_size);
    let mut buf = vec![0u8; ((span.end - span.start) * bs) as usize];
    let at = |pblk: u64| ((pblk - span.start) * bs) as usize;
    for (block, content) in index {
        buf[at(*block)..at(*block) + content.len()].copy_from_slice(content);
    }
    sources.copy(f, sources.copies(), |reader| {
        for run in mapping.data_runs() {
            let start = u64::from(run.lblk) * bs;
            let len = (u64::from(run.len) * bs).min(f.size.saturating_sub(start)) as usize;
            reader.read_exact_at(&mut buf[at(run.pblk)..at(run.pblk) + len], start)?;
        }
        Ok(())
    })?;
    Ok(sink.write_at(geo.offset(span.start), &buf)?)
}

#[cfg(all(test, unix))]
mod tests {
    use std::path::Path;
    use std::time::{Duration, SystemTime};

    use kiln_tree::{Body, Tree};

    use super::*;

    /// The file `name` of a tree read from `dir`.
    fn file_of(dir: &Path, name: &str) -> FileData {
        let tree = kiln_tree::read_dir_tree(dir).unwrap();
        let id = tree.lookup(Tree::ROOT, name.as_bytes()).unwrap();
        match &tree.node(id).body {
            Body::File(f) => f.clone(),
            other => panic!("not a file: {other:?}"),
        }
    }

    /// Writes `data` over `path` in place, with an mtime of its own
    /// (`stamp` seconds past a fixed date), which no clock tick hides.
    fn rewrite(path: &Path, data: &[u8], stamp: u64) {
        std::fs::write(path, data).unwrap();
        let file = std::fs::File::options().write(true).open(path).unwrap();
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000 + stamp);
        file.set_modified(when).unwrap();
    }

    /// Copies `name` (4 bytes) with a pass that reads it whole, then
    /// rewrites it while `changes` says so (given the pass number); returns
    /// the passes made, the bytes of the last and what emit concludes.
    fn copy_changing(
        live: bool,
        changes: impl Fn(u32) -> bool,
    ) -> (u32, Vec<u8>, Result<EmitReport, EmitError>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"old!").unwrap();
        let f = file_of(dir.path(), "f");
        let sources = Sources::new(live);
        let (mut passes, mut buf) = (0, vec![0u8; 4]);
        let copies = sources.copies();
        let opened = sources.copy(&f, copies, |reader| {
            reader.read_exact_at(&mut buf, 0)?;
            passes += 1;
            if changes(passes) {
                rewrite(&path, format!("new{passes}").as_bytes(), u64::from(passes));
            }
            Ok(())
        });
        assert!(opened.unwrap());
        (passes, buf, sources.finish())
    }

    #[test]
    fn under_live_a_file_changed_during_its_copy_is_copied_again() {
        let (passes, bytes, outcome) = copy_changing(true, |pass| pass == 1);
        assert_eq!((passes, bytes.as_slice()), (2, &b"new1"[..]));
        assert!(outcome.unwrap().warnings().is_empty());
    }

    #[test]
    fn under_live_a_file_that_keeps_changing_is_stored_as_last_read_with_a_warning() {
        let (passes, bytes, outcome) = copy_changing(true, |_| true);
        assert_eq!((passes, bytes.as_slice()), (LIVE_COPIES, &b"new2"[..]));
        let warnings = outcome.unwrap().warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("(3 times)") && warnings[0].contains("stored as last read"),
            "{warnings:?}"
        );
    }

    #[test]
    fn by_default_a_file_changed_during_its_copy_is_an_error() {
        let (passes, _, outcome) = copy_changing(false, |_| true);
        assert_eq!(passes, 1);
        let err = outcome.unwrap_err().to_string();
        assert!(err.contains("changed while it was being copied"), "{err}");
    }
}
