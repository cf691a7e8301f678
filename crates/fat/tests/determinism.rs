//! The same tree gives the same bytes: built twice, or read from
//! directories made in a different order.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use kiln_fat::{FatOptions, FatVariant};

/// A tree of files and directories made in `order` (forward or reverse).
fn make(dir: &Path, reverse: bool) {
    let mut names: Vec<String> = (0..60).map(|i| format!("Entry number {i}")).collect();
    if reverse {
        names.reverse();
    }
    for name in &names {
        let i: usize = name.rsplit(' ').next().unwrap().parse().unwrap();
        if i % 3 == 0 {
            put(
                &dir.join(name).join("inside.txt"),
                &bytes(i * 100, i as u32),
            );
        } else {
            put(&dir.join(name), &bytes(i * 1000, i as u32));
        }
    }
    settle(dir);
}

fn image(dir: &Path, opts: &FatOptions) -> Vec<u8> {
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("fat.img");
    build(dir, opts, &path);
    fs::read(&path).unwrap()
}

#[test]
fn same_tree_same_bytes() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    make(a.path(), false);
    make(b.path(), true);
    for variant in [FatVariant::Fat12, FatVariant::Fat16, FatVariant::Fat32] {
        let opts = FatOptions {
            variant: Some(variant),
            ..FatOptions::default()
        };
        let first = image(a.path(), &opts);
        assert!(first == image(a.path(), &opts), "{variant}: built twice");
        assert!(
            first == image(b.path(), &opts),
            "{variant}: made in another order"
        );
    }
}

/// A streaming sink (which can never go back) gets the same bytes as the
/// sparse file.
#[test]
fn a_stream_gets_the_same_bytes() {
    let src = tempfile::tempdir().unwrap();
    make(src.path(), false);
    let tree = tree_of(src.path());
    for variant in [FatVariant::Fat12, FatVariant::Fat16, FatVariant::Fat32] {
        let opts = FatOptions {
            variant: Some(variant),
            ..FatOptions::default()
        };
        let plan = kiln_fat::plan(&tree, &opts).unwrap();
        let out = tempfile::tempdir().unwrap();
        let streamed = out.path().join("stream.img");
        let file = fs::File::create(&streamed).unwrap();
        let sink = kiln_sink::stream::StreamSink::raw(file, plan.size());
        kiln_fat::emit(&plan, &sink).unwrap();
        sink.finish().unwrap();
        assert!(
            fs::read(&streamed).unwrap() == image(src.path(), &opts),
            "{variant}"
        );
    }
}
