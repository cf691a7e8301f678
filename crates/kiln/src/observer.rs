//! What a running build tells its caller: the phase it is in, notes and
//! warnings, and the counters of its [`Progress`]. The library prints
//! nothing itself; the CLI prints these on stderr.

use crate::{Phase, Progress};

/// Receives what a build reports while it runs. Every method has a default
/// that ignores it.
pub trait Observer: Sync {
    /// The build enters `phase` (it starts in [`Phase::Reading`]).
    fn phase(&self, phase: Phase) {
        let _ = phase;
    }

    /// The counters the build bumps as it goes, if the caller watches them
    /// (the build also sets their phase).
    fn progress(&self) -> Option<&Progress> {
        None
    }

    /// Something the build did that the caller may want to know (a
    /// feature left out, as mke2fs would).
    fn note(&self, text: &str) {
        let _ = text;
    }

    /// Something the build stored other than asked, or that will cause
    /// trouble (a source file stored as it could be read, an image with no
    /// room left); the build goes on.
    fn warning(&self, text: &str) {
        let _ = text;
    }
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quiet;

impl Observer for Quiet {}
