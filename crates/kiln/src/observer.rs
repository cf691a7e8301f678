//! What a running build tells its caller: the phase it is in, notes and
//! warnings. The library prints nothing itself; the CLI prints these on
//! stderr.

/// The phases of a build, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Reading the sources into a tree.
    Reading,
    /// Planning every address.
    Planning,
    /// Writing the image.
    Writing,
    /// Completing the output (renaming, flushing, finishing a stream).
    Committing,
}

/// Receives what a build reports while it runs. Every method has a default
/// that ignores it.
pub trait Observer: Sync {
    /// The build enters `phase`.
    fn phase(&self, phase: Phase) {
        let _ = phase;
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
