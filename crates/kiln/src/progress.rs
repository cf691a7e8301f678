//! How far a build is: counters that the pipeline bumps and a display
//! polls (the CLI's on a terminal; a program may poll them its own way),
//! handed to a build by its [`Observer`](crate::Observer).
//!
//! Counters, not callbacks: the hot paths (the directory walk, the tar
//! reader, every write of the emitter) do one relaxed atomic add and never
//! wait for a display, and whoever shows progress reads the counters at its
//! own pace. Nothing here changes what is built.
//!
//! - [`Progress::entries`]: entries read from the sources so far, added per
//!   directory listed by `kiln_tree`'s walk (`WalkOptions::entries`) and
//!   per tar member (`TarOptions::count_entries`).
//! - [`Progress::bytes_total`] and [`Progress::bytes_written`]: the bytes
//!   emit is expected to write and has written, counted by [`CountingSink`]
//!   around the output's sink, so the writer needs no hook of its own.
//! - [`Progress::phase`]: the [`Phase`] the build is in.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use kiln_sink::{Sink, SinkError};

/// The phases of a build, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Reading the sources into a tree (walks, tar archives, specs, then
    /// the policies and the derived ids).
    Reading,
    /// Deciding the geometry and every address.
    Planning,
    /// Writing the image into its sink.
    Writing,
    /// Renaming the output into place (after a flush with `--sync`),
    /// finishing a stream, flushing a device.
    Committing,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 4] = [
        Phase::Reading,
        Phase::Planning,
        Phase::Writing,
        Phase::Committing,
    ];

    /// The phase's name in the display and in `--verbose`'s timings.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Reading => "reading",
            Phase::Planning => "planning",
            Phase::Writing => "writing",
            Phase::Committing => "committing",
        }
    }
}

/// The counters of one build. Shared (`Arc`) between the build and
/// whoever displays it; every access is a relaxed atomic load or add: the
/// numbers are for a human, nothing is ordered by them.
#[derive(Debug, Default)]
pub struct Progress {
    /// The current [`Phase`], as its `u8`.
    phase: AtomicU8,
    /// Entries read from the sources so far (in an `Arc` of its own:
    /// `kiln_tree::TarOptions` keeps a handle to it).
    entries: Arc<AtomicU64>,
    /// See [`Progress::bytes_total`].
    bytes_total: AtomicU64,
    /// Bytes passed to the output's sink so far.
    bytes_written: AtomicU64,
}

impl Progress {
    /// Counters at zero, in [`Phase::Reading`].
    pub fn new() -> Progress {
        Progress::default()
    }

    /// The phase the build is in.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Reading,
            1 => Phase::Planning,
            2 => Phase::Writing,
            _ => Phase::Committing,
        }
    }

    /// Enters `phase`.
    pub fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    /// Entries read from the sources so far.
    pub fn entries(&self) -> u64 {
        self.entries.load(Ordering::Relaxed)
    }

    /// The counter of entries read, for `kiln_tree`'s directory walk
    /// (`WalkOptions::entries`) and tar reader (`TarOptions::count_entries`).
    pub fn entries_counter(&self) -> &Arc<AtomicU64> {
        &self.entries
    }

    /// The bytes the build expects to write: the blocks the filesystem
    /// uses (all its blocks less the free ones) times the block size, set
    /// once planned. Not the image size, which for a sparse image (`--size
    /// 1T`) is mostly holes that are never written. An upper bound: the
    /// body of the journal, the unused tail of each inode table and the
    /// zero blocks of files count as used but are never written, so the
    /// display may end short of its total and its estimate of the time
    /// left errs long, never short.
    pub fn bytes_total(&self) -> u64 {
        self.bytes_total.load(Ordering::Relaxed)
    }

    /// Sets [`Progress::bytes_total`].
    pub fn set_bytes_total(&self, bytes: u64) {
        self.bytes_total.store(bytes, Ordering::Relaxed);
    }

    /// Bytes written into the output's sink so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written.load(Ordering::Relaxed)
    }
}

/// A [`Sink`] that counts the bytes written through it into
/// [`Progress::bytes_written`] and forwards every call to `inner`
/// unchanged: every method of the trait, so that a sink's own answers
/// (`pending`, `rewrites`) and hints (`reserve`, `advance`, `zero`) still
/// reach the emitter and the sink.
pub(crate) struct CountingSink<'a> {
    inner: &'a dyn Sink,
    progress: &'a Progress,
}

impl<'a> CountingSink<'a> {
    /// `inner`, counted into `progress`.
    pub(crate) fn new(inner: &'a dyn Sink, progress: &'a Progress) -> CountingSink<'a> {
        CountingSink { inner, progress }
    }

    fn count(&self, buf: &[u8]) {
        self.progress
            .bytes_written
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
    }
}

impl Sink for CountingSink<'_> {
    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), SinkError> {
        self.inner.write_at(offset, buf)?;
        self.count(buf);
        Ok(())
    }

    fn advance(&self, offset: u64) -> Result<(), SinkError> {
        self.inner.advance(offset)
    }

    fn zero(&self, range: Range<u64>) -> Result<(), SinkError> {
        self.inner.zero(range)
    }

    fn reserve(&self, range: Range<u64>) -> Result<(), SinkError> {
        self.inner.reserve(range)
    }

    fn pending(&self) -> u64 {
        self.inner.pending()
    }

    fn rewrites(&self) -> bool {
        self.inner.rewrites()
    }

    /// Counted too: `--live` copying a file again is work the build does.
    fn rewrite_at(&self, offset: u64, buf: &[u8]) -> Result<(), SinkError> {
        self.inner.rewrite_at(offset, buf)?;
        self.count(buf);
        Ok(())
    }

    fn clones(&self) -> bool {
        self.inner.clones()
    }

    /// Counted as written: the cloned bytes are part of the image.
    fn clone_range(
        &self,
        offset: u64,
        src: &std::fs::File,
        src_offset: u64,
        len: u64,
    ) -> Result<u64, SinkError> {
        let done = self.inner.clone_range(offset, src, src_offset, len)?;
        self.progress
            .bytes_written
            .fetch_add(done, Ordering::Relaxed);
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A sink that records what reaches it, and answers as a file does.
    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<String>>,
    }

    impl Sink for Recorder {
        fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), SinkError> {
            let call = format!("write {offset} {}", buf.len());
            self.calls.lock().unwrap().push(call);
            Ok(())
        }
        fn advance(&self, offset: u64) -> Result<(), SinkError> {
            self.calls.lock().unwrap().push(format!("advance {offset}"));
            Ok(())
        }
        fn zero(&self, range: Range<u64>) -> Result<(), SinkError> {
            self.calls.lock().unwrap().push(format!("zero {range:?}"));
            Ok(())
        }
        fn reserve(&self, range: Range<u64>) -> Result<(), SinkError> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("reserve {range:?}"));
            Ok(())
        }
        fn pending(&self) -> u64 {
            7
        }
        fn rewrites(&self) -> bool {
            true
        }
        fn rewrite_at(&self, offset: u64, buf: &[u8]) -> Result<(), SinkError> {
            let call = format!("rewrite {offset} {}", buf.len());
            self.calls.lock().unwrap().push(call);
            Ok(())
        }
        fn clones(&self) -> bool {
            true
        }
        /// Takes the whole 4 KiB blocks.
        fn clone_range(
            &self,
            offset: u64,
            _src: &std::fs::File,
            src_offset: u64,
            len: u64,
        ) -> Result<u64, SinkError> {
            let call = format!("clone {offset} {src_offset} {len}");
            self.calls.lock().unwrap().push(call);
            Ok(len - len % 4096)
        }
    }

    #[test]
    fn counting_sink_forwards_every_call_and_counts_writes() {
        let inner = Recorder::default();
        let progress = Progress::new();
        let sink = CountingSink::new(&inner, &progress);
        sink.reserve(0..8192).unwrap();
        sink.write_at(0, &[1; 100]).unwrap();
        sink.zero(4096..8192).unwrap();
        sink.rewrite_at(0, &[2; 10]).unwrap();
        let src = tempfile::tempfile().unwrap();
        assert_eq!(sink.clone_range(8192, &src, 4096, 5000).unwrap(), 4096);
        sink.advance(4096).unwrap();
        assert_eq!(
            (sink.pending(), sink.rewrites(), sink.clones()),
            (7, true, true)
        );
        assert_eq!(
            *inner.calls.lock().unwrap(),
            [
                "reserve 0..8192",
                "write 0 100",
                "zero 4096..8192",
                "rewrite 0 10",
                "clone 8192 4096 5000",
                "advance 4096"
            ]
        );
        assert_eq!(progress.bytes_written(), 110 + 4096);
    }

    #[test]
    fn phases_round_trip() {
        let progress = Progress::new();
        assert_eq!(progress.phase(), Phase::Reading);
        for phase in Phase::ALL {
            progress.set_phase(phase);
            assert_eq!(progress.phase(), phase);
        }
    }
}
