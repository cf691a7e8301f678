//! A source that changes between reading the tree and copying its data must
//! fail the build with an error naming the file, and leave no output behind.

use std::path::Path;

use kiln_ext::{BuildOptions, EmitError, FsType};
use kiln_sink::SparseFile;

/// Reads `src` into a tree, runs `change`, then plans and emits into `out`.
fn build_after(src: &Path, out: &Path, change: impl FnOnce()) -> Result<(), EmitError> {
    let tree = kiln_tree::read_dir_tree(src).unwrap();
    change();
    let opts = BuildOptions::new(FsType::Ext2);
    let plan = kiln_ext::plan(&tree, &opts).unwrap();
    let sink = SparseFile::create(out, plan.image_size, false).unwrap();
    kiln_ext::emit(&plan, &sink)?;
    sink.commit(kiln_sink::Durability::Writeback).unwrap();
    Ok(())
}

fn source_with_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("data"), vec![7u8; 100_000]).unwrap();
    (dir, src)
}

#[test]
fn vanished_file_is_named() {
    let (dir, src) = source_with_file();
    let out = dir.path().join("out.img");
    let err = build_after(&src, &out, || {
        std::fs::remove_file(src.join("data")).unwrap()
    })
    .unwrap_err();
    assert!(matches!(err, EmitError::Source { .. }), "{err:?}");
    assert!(err.to_string().contains("src/data"), "{err}");
    assert!(!out.exists());
}

#[test]
fn shrunk_file_is_named() {
    let (dir, src) = source_with_file();
    let out = dir.path().join("out.img");
    let err = build_after(&src, &out, || {
        std::fs::write(src.join("data"), b"short").unwrap()
    })
    .unwrap_err();
    assert!(matches!(err, EmitError::SourceChanged { .. }), "{err:?}");
    assert!(
        err.to_string().contains("src/data") && err.to_string().contains("changed"),
        "{err}"
    );
    assert!(!out.exists());
    // Nothing else (no temporary file) is left beside the output either.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("src")]);
}
