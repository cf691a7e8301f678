//! Cloning source ranges into an output file: [`Cloning`], what a
//! [`SparseFile`](crate::SparseFile) on a filesystem that shares extents
//! (XFS with `reflink=1`, btrfs) uses for [`Sink::clone_range`](crate::Sink::clone_range).
//!
//! Only whole blocks of the output's filesystem are cloned, from a source on
//! the same filesystem, at offsets that are multiples of its block size in
//! both files; the emitter writes the rest (a file's tail) as usual. The
//! first clone that fails turns cloning off for the rest of the build: the
//! bytes are then written, and a real fault of the source or the output
//! shows in those reads and writes, with its path.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The cloning state of one output file.
#[derive(Debug)]
pub(crate) struct Cloning {
    /// The output filesystem's block size: what offsets and lengths must be
    /// multiples of.
    block: u64,
    /// The output's filesystem, read once: a source is cloned only from it.
    filesystem: u64,
    /// Set after a clone failed: no more tries.
    off: AtomicBool,
    /// The bytes cloned so far.
    shared: AtomicU64,
}

impl Cloning {
    /// Cloning into `out`, a new file named `target`, if the filesystem of
    /// its directory shares extents.
    pub(crate) fn probe(target: &Path, out: &File) -> Option<Cloning> {
        Some(Cloning {
            block: kiln_host::reflink_block(kiln_host::parent_dir(target))?,
            filesystem: kiln_host::filesystem_of(out)?,
            off: AtomicBool::new(false),
            shared: AtomicU64::new(0),
        })
    }

    /// Whether clones are still tried.
    pub(crate) fn on(&self) -> bool {
        !self.off.load(Ordering::Relaxed)
    }

    /// The bytes cloned so far.
    pub(crate) fn shared(&self) -> u64 {
        self.shared.load(Ordering::Relaxed)
    }

    /// Clones what it can of `len` bytes of `src` from `src_offset` into
    /// `out` at `offset`: see [`Sink::clone_range`](crate::Sink::clone_range).
    pub(crate) fn clone_into(
        &self,
        out: &File,
        offset: u64,
        src: &File,
        src_offset: u64,
        len: u64,
    ) -> u64 {
        let len = aligned_len(offset, src_offset, len, self.block);
        let same_filesystem = kiln_host::filesystem_of(src) == Some(self.filesystem);
        if len == 0 || !self.on() || !same_filesystem {
            return 0;
        }
        match kiln_host::clone_range(src, src_offset, out, offset, len) {
            Ok(done) => {
                self.shared.fetch_add(done, Ordering::Relaxed);
                done
            }
            Err(_) => {
                self.off.store(true, Ordering::Relaxed);
                0
            }
        }
    }
}

/// How much of `len` bytes from `offset` (in the output) and `src_offset`
/// (in the source) can be cloned with blocks of `block` bytes: the whole
/// blocks from the start when both offsets are on a block boundary, else
/// nothing.
pub(crate) fn aligned_len(offset: u64, src_offset: u64, len: u64, block: u64) -> u64 {
    if offset % block != 0 || src_offset % block != 0 {
        return 0;
    }
    len - len % block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_blocks_from_aligned_offsets_are_cloned() {
        // The aligned part, the tail left to the caller.
        assert_eq!(aligned_len(8192, 4096, 3 * 4096 + 100, 4096), 3 * 4096);
        assert_eq!(aligned_len(0, 0, 4095, 4096), 0);
        assert_eq!(aligned_len(0, 0, 1 << 20, 4096), 1 << 20);
        // Misaligned in either file: nothing.
        assert_eq!(aligned_len(1024, 4096, 1 << 20, 4096), 0);
        assert_eq!(aligned_len(4096, 512, 1 << 20, 4096), 0);
        // A larger block size.
        assert_eq!(aligned_len(65536, 0, 100_000, 65536), 65536);
    }
}
