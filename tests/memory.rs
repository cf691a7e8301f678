//! A build's memory per entry: at most 120 heap bytes per entry past the
//! names, at the peak of a whole build (tree, plan and emit) of 250,000
//! small files from a tar archive as ext4 with inline data: the form of the
//! 5,000,000-file benchmark, whose peak RSS issue 23 holds to the same
//! figure (BENCHMARKS.md). The same holds for a build from that image
//! (issue 24: an image source keeps no copy of its tree's data, so it
//! costs no more than other sources).
//!
//! One test in its own binary: dhat's allocator counts every thread, so
//! nothing else may run beside it.
#![cfg(target_os = "linux")]

use std::io::{BufWriter, Write};
use std::path::Path;

use kiln_lib::kiln_ext::FsType;
use kiln_lib::{
    build, BuildRequest, Format, FsRequest, Layer, OutputRequest, Quiet, SizeRequest, TreeRequest,
};

#[path = "ustar.rs"]
mod ustar;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// The budget: bytes per entry past the names.
const BUDGET: f64 = 120.0;
/// Directories of the archive, and files in each.
const DIRS: u64 = 250;
const FILES_PER_DIR: u64 = 1000;

#[test]
fn a_build_takes_at_most_120_heap_bytes_per_entry_past_the_names() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("files.tar");
    let (entries, names) = write_archive(&archive);
    let image = dir.path().join("files.img");
    let rebuilt = dir.path().join("rebuilt.img");

    // The global thread pool, set up once, is not the build's.
    rayon::current_num_threads();
    for (source, output) in [(&archive, &image), (&image, &rebuilt)] {
        // A profiler per build: each peak its own.
        let _profiler = dhat::Profiler::builder().testing().build();
        let before = dhat::HeapStats::get();
        build(&request(source, output), &Quiet).unwrap();
        let after = dhat::HeapStats::get();
        let peak = after.max_bytes - before.curr_bytes;
        let per_entry = (peak - names) as f64 / entries as f64;
        eprintln!(
            "from {}: {entries} entries, {names} name bytes, peak heap {peak} bytes: \
             {per_entry:.1} per entry",
            source.display()
        );
        assert!(
            per_entry <= BUDGET,
            "from {}: {per_entry:.1} heap bytes per entry past the names (at most {BUDGET})",
            source.display()
        );
    }
    assert!(
        std::fs::read(&image).unwrap() == std::fs::read(&rebuilt).unwrap(),
        "the image rebuilt from the image differs from it"
    );
}

/// ext4 with inline data, as small as the tree allows.
fn request(archive: &Path, image: &Path) -> BuildRequest {
    let mut fs = FsRequest::new(FsType::Ext4);
    if let Format::Ext(ext) = &mut fs.format {
        ext.features.push("inline_data".into());
    }
    fs.size = SizeRequest::Auto {
        free: None,
        free_inodes: None,
    };
    BuildRequest {
        tree: TreeRequest {
            layers: vec![Layer::Source(archive.into())],
            ..TreeRequest::default()
        },
        fs,
        output: OutputRequest::file(image),
        verity: None,
    }
}

/// A ustar archive of [`DIRS`] directories of [`FILES_PER_DIR`] files of 0
/// to 60 bytes; returns its entries (with the root) and their name bytes.
fn write_archive(path: &Path) -> (usize, usize) {
    let mut out = BufWriter::new(std::fs::File::create(path).unwrap());
    let (mut entries, mut names) = (1, 0);
    for d in 0..DIRS {
        let dir = format!("d{d:03}");
        out.write_all(&ustar::ustar_header(&format!("{dir}/"), b'5', 0, ""))
            .unwrap();
        (entries, names) = (entries + 1, names + dir.len());
        for f in 0..FILES_PER_DIR {
            let name = format!("f{f:04}");
            let size = (d * FILES_PER_DIR + f) % 61;
            let header = ustar::ustar_header(&format!("{dir}/{name}"), b'0', size, "");
            out.write_all(&header).unwrap();
            if size > 0 {
                let mut block = [0u8; 512];
                block[..size as usize].fill(b'a' + (f % 26) as u8);
                out.write_all(&block).unwrap();
            }
            (entries, names) = (entries + 1, names + name.len());
        }
    }
    out.write_all(&[0u8; 1024]).unwrap();
    out.into_inner().unwrap().sync_all().unwrap();
    (entries, names)
}
