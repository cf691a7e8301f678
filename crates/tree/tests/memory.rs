//! The tree model's cost in heap bytes per entry past the names, counted
//! by dhat's allocator once the tree is finished: at most 200 (issue 8's
//! budget) for a directory source, whose entries each keep their own
//! access, change and creation times, and at most 100 (issue 23) for an
//! archive listed out of name order, whose entries without PAX times keep
//! only a modification time.
//!
//! One test in its own binary: the allocator counts every thread, so
//! nothing else may run beside it.
#![cfg(unix)]

use std::path::Path;
use std::process::Command;

use kiln_tree::{read_dir_tree, read_tar, Tree};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Heap bytes per entry of a directory source, the names not counted
/// (138 when this was written: a 72-byte node, a 48-byte box of times, a
/// 16-byte directory entry, and the test's holes and xattrs).
const DIR_BUDGET: f64 = 200.0;

/// Heap bytes per entry of an archive, the names not counted (92 when this
/// was written: a 72-byte node, a 16-byte directory entry, and the test's
/// holes and xattrs; the 5,000,000-file benchmark needs the whole build
/// under 120).
const ARCHIVE_BUDGET: f64 = 100.0;

#[test]
fn the_tree_model_keeps_to_its_bytes_per_entry_past_the_names() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let (dirs, files) = make_tree(&src);
    let archive = dir.path().join("shuffled.tar");
    make_shuffled_tar(&src, &dirs, &files, &archive);
    let listed = dirs.len() + files.len();

    // The global thread pool, set up once, is not the tree's.
    rayon::current_num_threads();
    let _profiler = dhat::Profiler::builder().testing().build();
    let (entries, per_entry) = measure(|| read_dir_tree(&src).unwrap());
    assert_eq!(entries, listed, "entries of the directory source");
    assert!(
        per_entry <= DIR_BUDGET,
        "directory source: {per_entry:.1} bytes per entry"
    );
    let (entries, per_entry) = measure(|| read_tar(&archive).unwrap());
    assert_eq!(entries, listed, "entries of the archive");
    assert!(
        per_entry <= ARCHIVE_BUDGET,
        "archive: {per_entry:.1} bytes per entry"
    );
}

/// Reads a tree with `read`, finishes it, and returns its entries and the
/// heap bytes per entry it keeps, past the names.
fn measure(read: impl FnOnce() -> Tree) -> (usize, f64) {
    let before = dhat::HeapStats::get().curr_bytes;
    let mut tree = read();
    tree.finish();
    let bytes = dhat::HeapStats::get().curr_bytes - before;
    let (entries, names) = tree.entries_and_name_bytes();
    let per_entry = (bytes - names) as f64 / entries as f64;
    eprintln!(
        "{entries} entries, {names} name bytes, {bytes} heap bytes: {per_entry:.1} per entry"
    );
    (entries, per_entry)
}

/// 40 directories of 250 entries: files of a few bytes (some with a
/// hole, some with an xattr), symlinks and hard links; returns the
/// directories and the other entries made, relative to `root`.
fn make_tree(root: &Path) -> (Vec<String>, Vec<String>) {
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for d in 0..40 {
        let dir = format!("dir-{d:02}");
        std::fs::create_dir_all(root.join(&dir)).unwrap();
        dirs.push(dir.clone());
        for f in 0..250 {
            let name = format!("{dir}/entry-{f:04}.txt");
            let path = root.join(&name);
            match f % 25 {
                0 => std::os::unix::fs::symlink("entry-0001.txt", &path).unwrap(),
                1 => std::fs::write(&path, format!("{name}\n")).unwrap(),
                2 => std::fs::hard_link(root.join(format!("{dir}/entry-0001.txt")), &path).unwrap(),
                3 => {
                    let file = std::fs::File::create(&path).unwrap();
                    file.set_len(1 << 20).unwrap();
                    std::os::unix::fs::FileExt::write_at(&file, b"end", (1 << 20) - 3).unwrap();
                }
                4 => {
                    std::fs::write(&path, b"labelled\n").unwrap();
                    // Where the temporary filesystem keeps user xattrs (tmpfs
                    // before Linux 6.6 does not); the budget holds either way.
                    let _ = kiln_host::set_xattr(&path, b"user.kiln", b"a value");
                }
                _ => std::fs::write(&path, format!("{name}\n")).unwrap(),
            }
            files.push(name);
        }
    }
    (dirs, files)
}

/// A pax archive (with xattrs) of `dirs`, then `files` scrambled (below
/// `root`), as an archive made in readdir order lists names: its
/// directories are built out of order and searched through their index.
fn make_shuffled_tar(root: &Path, dirs: &[String], files: &[String], archive: &Path) {
    let n = files.len();
    // 7919 is prime and no factor of n: every file once.
    let scrambled = (0..n).map(|i| &files[i * 7919 % n]);
    let list = archive.with_extension("list");
    let text: String = dirs
        .iter()
        .chain(scrambled)
        .map(|p| format!("{p}\n"))
        .collect();
    std::fs::write(&list, text).unwrap();
    let status = Command::new("tar")
        .args(["--format=pax", "--xattrs", "--no-recursion", "-cf"])
        .arg(archive)
        .arg("-C")
        .arg(root)
        .arg("-T")
        .arg(&list)
        .status()
        .expect("tar, which CI installs, is needed to make the archive");
    assert!(status.success(), "tar failed");
}
