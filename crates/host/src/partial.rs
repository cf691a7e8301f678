//! Outputs still being written beside their targets (a build's temporary
//! image file, an extraction's temporary directory): what
//! [`remove_partial_outputs`] deletes when the process is interrupted, since
//! destructors do not run in a signal handler's exit.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// The temporary outputs not yet renamed into place.
static PARTIAL: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The list of partial outputs, locked. Hold it from before a temporary
/// output is created until it is [`add`](PartialOutputs::add)ed, so that an
/// interruption in between waits for the listing and removes it too.
pub struct PartialOutputs(MutexGuard<'static, Vec<PathBuf>>);

impl PartialOutputs {
    /// Lists `path` for removal on interruption.
    pub fn add(&mut self, path: &Path) {
        self.0.push(path.to_path_buf());
    }

    /// Unlists `path` (renamed into place, or removed).
    pub fn remove(&mut self, path: &Path) {
        self.0.retain(|p| p != path);
    }
}

/// Locks the list of partial outputs.
pub fn partial_outputs() -> PartialOutputs {
    PartialOutputs(PARTIAL.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Deletes every output still being written, files and directories alike
/// (to call from a SIGINT or SIGTERM handler before exiting).
pub fn remove_partial_outputs() {
    let paths = std::mem::take(&mut *partial_outputs().0);
    for path in paths {
        // Already renamed or removed: nothing to do.
        let _ = match path.symlink_metadata() {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
    }
}
