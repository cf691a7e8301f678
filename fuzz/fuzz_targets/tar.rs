//! Any bytes given as a tar archive (compressed or not) give a tree or an
//! error, never a panic: read as a stream (file data spooled), and from a
//! file (a plain archive's data read in place), every file's data read back.
#![no_main]

use std::sync::OnceLock;

use kiln_tree::{Body, Tree};
use libfuzzer_sys::fuzz_target;

/// The directory of the archive file each run writes.
fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap())
}

/// Reads every file's data back (errors are fine, panics are findings).
fn read_back(tree: &Tree) {
    for id in tree.reachable() {
        if let Body::File(f) = &tree.node(id).body {
            if f.size <= 1 << 20 {
                let _ = f.read_all();
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let streamed =
        kiln_tree::read_tar_from(std::io::Cursor::new(data.to_vec()), "fuzz.tar".as_ref());
    let path = dir().path().join("fuzz.tar");
    std::fs::write(&path, data).unwrap();
    let in_place = kiln_tree::read_tar(&path);
    for tree in [streamed, in_place].iter().flatten() {
        read_back(tree);
    }
});
