//! Heap bytes the tree model takes per entry, past the names: reads a
//! directory or an archive into a [`Tree`] and counts what stays allocated.
//!
//! `cargo run --release -p kiln-tree --example tree-bytes -- PATH`
//! (`cargo xtask bench` runs it on its corpora).

use std::path::Path;

use kiln_tree::TreeError;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() -> Result<(), TreeError> {
    let path = std::env::args_os().nth(1).expect("usage: tree-bytes PATH");
    let path = Path::new(&path);
    // The global thread pool, set up once, is not the tree's.
    rayon::current_num_threads();
    let _profiler = dhat::Profiler::builder().testing().build();
    let before = dhat::HeapStats::get();
    let mut tree = if path.is_dir() {
        kiln_tree::read_dir_tree(path)?
    } else {
        kiln_tree::read_tar(path)?
    };
    tree.finish();
    let after = dhat::HeapStats::get();
    let (entries, name_bytes) = tree.entries_and_name_bytes();
    let bytes = after.curr_bytes - before.curr_bytes;
    let blocks = after.curr_blocks - before.curr_blocks;
    println!(
        "{entries} entries, {name_bytes} name bytes, {bytes} heap bytes in {blocks} blocks: \
         {:.1} bytes per entry plus the names",
        (bytes - name_bytes) as f64 / entries as f64
    );
    Ok(())
}
