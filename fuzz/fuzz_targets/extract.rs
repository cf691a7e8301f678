//! `kiln extract` on corrupted images: every run extracts a patched copy of
//! a valid image (see `images::decode_input`) into a fresh destination in a
//! sandbox directory that also holds a canary directory and symlinks out of
//! the sandbox (absolute and relative). Whatever the image says, nothing
//! may appear in the sandbox but the destination, the canaries stay as
//! they were, and a failed extraction leaves no destination. Errors are
//! fine; panics, hangs and absurd allocations are findings.
#![no_main]

use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use kiln_ext::ImageReader;
use libfuzzer_sys::fuzz_target;

#[path = "images.rs"]
mod images;

/// The sandbox: `canary/` (empty), `up -> ..`, `root -> /`, and the
/// destination `dest` created by each run.
fn sandbox() -> &'static tempfile::TempDir {
    static SANDBOX: OnceLock<tempfile::TempDir> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        let dir = images::memory_tempdir();
        fs::create_dir(dir.path().join("canary")).unwrap();
        std::os::unix::fs::symlink("..", dir.path().join("up")).unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("root")).unwrap();
        dir
    })
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    names
}

/// Extracts the image at `path` (checksums verified if `checksums`) into
/// the sandbox and checks that nothing escaped.
fn extract(path: &Path, checksums: bool) {
    let sandbox = sandbox().path();
    let dest = sandbox.join("dest");
    if let Ok(mut reader) = ImageReader::open(path) {
        reader.set_checksums(checksums);
        let result = kiln_extract::extract(&reader, b"/", &dest);
        if result.is_err() {
            assert!(
                !dest.exists(),
                "a failed extraction left {}",
                dest.display()
            );
        }
    }
    // A corrupt root inode can be a file: extracted as one.
    match dest.symlink_metadata() {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(&dest).unwrap(),
        Ok(_) => fs::remove_file(&dest).unwrap(),
        Err(_) => {}
    }
    assert_eq!(
        names(sandbox),
        ["canary", "root", "up"],
        "something escaped into the sandbox"
    );
    assert!(
        names(&sandbox.join("canary")).is_empty(),
        "something escaped into canary/"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((image, patches)) = images::decode_input(data) else {
        return;
    };
    // The first patch byte's low bit: most fuzzed images fail their
    // checksums, so half the runs go on past them.
    let checksums = patches.first().is_some_and(|&(_, b)| b & 1 == 1);
    images::with_patched(image, &patches, |path| extract(path, checksums));
});
