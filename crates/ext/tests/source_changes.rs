//! Sources that change between reading the tree and copying their data, or
//! while emit runs (issue 17, point 3).
//!
//! By default every such file is an error, all of them named in one
//! [`EmitError::Sources`], and no output is left. With `live` a file that
//! was rewritten is stored with its new bytes, and one that vanished,
//! changed size or kept changing is stored as it could be read, each with a
//! warning; never a torn copy and a silent success.
//!
//! Changes are made deterministically: between reading the tree and
//! emitting, or from a sink that rewrites a source when emit writes
//! through it (with one worker thread, so the order of pieces is fixed).
//! Each rewrite sets an explicit mtime, so it is seen even within one tick
//! of the host's clock.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use kiln_ext::{BuildOptions, EmitError, EmitReport, FsType, ImageReader, IssueKind};
use kiln_sink::stream::{Compression, StreamSink};
use kiln_sink::{Sink, SinkError, SparseFile};

/// The largest file `--live` reads whole before writing it (8 MiB): larger
/// ones are copied as they are read, again over the same blocks of a file
/// sink, once into a stream.
const LIVE_COPY_BUFFER: usize = 8 << 20;

/// Reads `src` into a tree, runs `change`, then plans and emits into `out`
/// (through `hook`, called with the offset and length of each write before it, with one worker thread), and
/// commits the image if emit succeeded.
fn build(
    src: &Path,
    out: &Path,
    live: bool,
    change: impl FnOnce(),
    hook: impl FnMut(u64, usize) + Send,
) -> Result<EmitReport, EmitError> {
    build_to(src, out, live, false, change, hook)
}

/// [`build`], into a raw stream when `stream`, else a sparse file.
fn build_to(
    src: &Path,
    out: &Path,
    live: bool,
    stream: bool,
    change: impl FnOnce(),
    hook: impl FnMut(u64, usize) + Send,
) -> Result<EmitReport, EmitError> {
    let tree = kiln_tree::read_dir_tree(src).unwrap();
    change();
    let mut opts = BuildOptions::new(FsType::Ext4);
    opts.live = live;
    let plan = kiln_ext::plan(&tree, &opts).unwrap();
    let emit = |inner: &dyn Sink| {
        let sink = Hooked {
            inner,
            hook: Mutex::new(Box::new(hook)),
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        pool.install(|| kiln_ext::emit(&plan, &sink))
    };
    let durability = kiln_sink::Durability::Writeback;
    if stream {
        let file = StreamSink::to_file(out, plan.image_size, false, Compression::None).unwrap();
        let report = emit(&file)?;
        file.commit(durability).unwrap();
        Ok(report)
    } else {
        let file = SparseFile::create(out, plan.image_size, false).unwrap();
        let report = emit(&file)?;
        file.commit(durability).unwrap();
        Ok(report)
    }
}

/// Builds after `change`, with no change during emit.
fn build_after(
    src: &Path,
    out: &Path,
    live: bool,
    change: impl FnOnce(),
) -> Result<EmitReport, EmitError> {
    build(src, out, live, change, |_, _| {})
}

/// A sink that calls `hook` with the offset and length of each write before
/// making it.
struct Hooked<'a> {
    inner: &'a dyn Sink,
    hook: Mutex<Box<dyn FnMut(u64, usize) + Send + 'a>>,
}

impl Sink for Hooked<'_> {
    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), SinkError> {
        (self.hook.lock().unwrap())(offset, buf.len());
        self.inner.write_at(offset, buf)
    }
    fn advance(&self, offset: u64) -> Result<(), SinkError> {
        self.inner.advance(offset)
    }
    fn zero(&self, range: std::ops::Range<u64>) -> Result<(), SinkError> {
        self.inner.zero(range)
    }
    fn reserve(&self, range: std::ops::Range<u64>) -> Result<(), SinkError> {
        self.inner.reserve(range)
    }
    fn pending(&self) -> u64 {
        self.inner.pending()
    }
    fn rewrites(&self) -> bool {
        self.inner.rewrites()
    }
    fn rewrite_at(&self, offset: u64, buf: &[u8]) -> Result<(), SinkError> {
        (self.hook.lock().unwrap())(offset, buf.len());
        self.inner.rewrite_at(offset, buf)
    }
}

/// Writes `data` over `path` in place (same inode) and sets its mtime to
/// `stamp` seconds past a fixed date: a change the host's clock cannot hide.
fn rewrite(path: &Path, data: &[u8], stamp: u64) {
    std::fs::write(path, data).unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000 + stamp);
    file.set_modified(when).unwrap();
}

/// Writes byte `stamp` at the start of `path` and sets its mtime as
/// [`rewrite`] does: a change as cheap as can be, for a large file.
fn touch(path: &Path, stamp: u64) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.write_all_at(&[stamp as u8], 0).unwrap();
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000 + stamp);
    file.set_modified(when).unwrap();
}

/// A temporary directory with `src/` holding `names`, each 100,000 bytes
/// of 7s.
fn source_with(names: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for name in names {
        std::fs::write(src.join(name), vec![7u8; 100_000]).unwrap();
    }
    (dir, src)
}

/// The paths an error names, in its order.
fn named(err: &EmitError) -> Vec<(PathBuf, String)> {
    let EmitError::Sources(issues) = err else {
        panic!("not a source error: {err:?}");
    };
    issues
        .0
        .iter()
        .map(|i| (i.path.clone(), i.kind.to_string()))
        .collect()
}

/// Asserts that only `src/` is left beside it: no image, no temporary file.
fn assert_no_output(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("src")]);
}

/// The bytes of `/name` in the image, by kiln's reader and by debugfs
/// (which must agree).
fn image_file(img: &Path, name: &str) -> Vec<u8> {
    let reader = ImageReader::open(img).unwrap();
    let ino = reader.lookup(format!("/{name}").as_bytes()).unwrap();
    let inode = reader.inode(ino).unwrap();
    let map = reader.file_map(ino, &inode).unwrap();
    let mut ours = vec![0u8; inode.size as usize];
    reader.read_file(&map, 0, &mut ours).unwrap();
    let debugfs = std::process::Command::new("debugfs")
        .arg("-R")
        .arg(format!("cat /{name}"))
        .arg(img)
        .output();
    match debugfs {
        Ok(out) => assert!(out.stdout == ours, "debugfs reads /{name} otherwise"),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("debugfs: {e}"),
        Err(e) => eprintln!("SKIPPED the debugfs check: {e}"),
    }
    ours
}

#[test]
fn vanished_file_is_named() {
    let (dir, src) = source_with(&["data"]);
    let out = dir.path().join("out.img");
    let err = build_after(&src, &out, false, || {
        std::fs::remove_file(src.join("data")).unwrap()
    })
    .unwrap_err();
    let named = named(&err);
    assert_eq!(named.len(), 1, "{err}");
    assert!(named[0].0.ends_with("src/data"), "{err}");
    assert!(named[0].1.contains("vanished"), "{err}");
    assert_no_output(dir.path());
}

#[test]
fn shrunk_file_is_named() {
    let (dir, src) = source_with(&["data"]);
    let out = dir.path().join("out.img");
    let err = build_after(&src, &out, false, || {
        std::fs::write(src.join("data"), b"short").unwrap()
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("src/data") && err.to_string().contains("changed"),
        "{err}"
    );
    assert_no_output(dir.path());
}

/// Old behaviour: the new bytes under the old mtime, and success.
#[test]
fn a_file_rewritten_in_place_with_the_same_size_is_an_error_naming_it() {
    let (dir, src) = source_with(&["data"]);
    let out = dir.path().join("out.img");
    let err = build_after(&src, &out, false, || {
        rewrite(&src.join("data"), &[8u8; 100_000], 1)
    })
    .unwrap_err();
    let named = named(&err);
    assert_eq!(named.len(), 1, "{err}");
    assert!(named[0].0.ends_with("src/data"), "{err}");
    assert!(
        named[0].1.contains("changed after the tree was read"),
        "{err}"
    );
    assert_no_output(dir.path());
}

/// The file is rewritten by the sink's first write, which emit makes
/// (group 0) before it copies any file.
#[test]
fn a_file_rewritten_during_emit_is_an_error_naming_it() {
    let (dir, src) = source_with(&["data"]);
    let out = dir.path().join("out.img");
    let mut done = false;
    let err = build(
        &src,
        &out,
        false,
        || {},
        |_, _| {
            if !std::mem::replace(&mut done, true) {
                rewrite(&src.join("data"), &[8u8; 100_000], 1);
            }
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("src/data"), "{err}");
    assert_no_output(dir.path());
}

/// Old behaviour: only the first was named (and the rewritten one not at
/// all).
#[test]
fn every_changed_file_is_named_in_one_error() {
    let (dir, src) = source_with(&["a", "b", "c", "d"]);
    let out = dir.path().join("out.img");
    let err = build_after(&src, &out, false, || {
        rewrite(&src.join("a"), &[8u8; 100_000], 1);
        std::fs::write(src.join("b"), b"short").unwrap();
        std::fs::remove_file(src.join("d")).unwrap();
    })
    .unwrap_err();
    let names: Vec<_> = named(&err).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        names,
        [src.join("a"), src.join("b"), src.join("d")],
        "{err}"
    );
    let message = err.to_string();
    assert!(message.starts_with("3 source files"), "{message}");
    assert_no_output(dir.path());
}

#[test]
fn a_long_list_of_changed_files_is_cut_short() {
    let names: Vec<String> = (0..60).map(|i| format!("f{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (dir, src) = source_with(&refs);
    let out = dir.path().join("out.img");
    let err = build_after(&src, &out, false, || {
        for name in &names {
            std::fs::write(src.join(name), b"short").unwrap();
        }
    })
    .unwrap_err();
    let message = err.to_string();
    assert!(message.starts_with("60 source files"), "{message}");
    assert!(message.contains("src/f49") && !message.contains("src/f50"));
    assert!(message.ends_with("and 10 more"), "{message}");
}

#[test]
fn under_live_a_rewritten_file_is_stored_with_its_new_bytes_and_no_warning() {
    let (dir, src) = source_with(&["data"]);
    let out = dir.path().join("out.img");
    let mut done = false;
    let report = build(
        &src,
        &out,
        true,
        || {},
        |_, _| {
            if !std::mem::replace(&mut done, true) {
                rewrite(&src.join("data"), &[8u8; 100_000], 1);
            }
        },
    )
    .unwrap();
    assert!(report.warnings().is_empty(), "{:?}", report.warnings());
    assert_eq!(image_file(&out, "data"), vec![8u8; 100_000]);
}

#[test]
fn under_live_a_vanished_file_is_stored_as_zeros_with_a_warning() {
    let (dir, src) = source_with(&["data", "kept"]);
    let out = dir.path().join("out.img");
    let report = build_after(&src, &out, true, || {
        std::fs::remove_file(src.join("data")).unwrap()
    })
    .unwrap();
    let warnings = report.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("src/data") && warnings[0].contains("vanished"),
        "{warnings:?}"
    );
    assert_eq!(image_file(&out, "data"), vec![0u8; 100_000]);
    assert_eq!(image_file(&out, "kept"), vec![7u8; 100_000]);
}

#[test]
fn under_live_a_resized_file_keeps_its_planned_size_with_a_warning() {
    let (dir, src) = source_with(&["shrunk", "grown"]);
    let out = dir.path().join("out.img");
    let report = build_after(&src, &out, true, || {
        rewrite(&src.join("shrunk"), &[9u8; 1000], 1);
        rewrite(&src.join("grown"), &[5u8; 200_000], 2);
    })
    .unwrap();
    let kinds: Vec<_> = report.stored_anyway.0.iter().map(|i| &i.kind).collect();
    assert!(
        matches!(
            kinds[..],
            [
                IssueKind::Resized {
                    planned: 100_000,
                    now: 200_000
                },
                IssueKind::Resized {
                    planned: 100_000,
                    now: 1000
                }
            ]
        ),
        "{kinds:?}"
    );
    let mut shrunk = vec![9u8; 1000];
    shrunk.resize(100_000, 0);
    assert_eq!(image_file(&out, "shrunk"), shrunk);
    assert_eq!(image_file(&out, "grown"), vec![5u8; 100_000]);
    assert_eq!(report.warnings().len(), 2);
}

/// A file too large to be read whole first, rewritten at each write of its
/// data, is copied 3 times into a file sink, then stored as last read, with
/// a warning.
#[test]
fn under_live_a_large_file_changing_while_copied_is_stored_with_a_warning() {
    let (dir, src) = source_with(&[]);
    let big = src.join("big");
    let len = 2 * LIVE_COPY_BUFFER;
    std::fs::write(&big, vec![1u8; len]).unwrap();
    let out = dir.path().join("out.img");
    let mut stamp = 0;
    let report = build(
        &src,
        &out,
        true,
        || {},
        |offset, _| {
            // Past the metadata of group 0: the big file's data.
            if offset >= 1 << 20 {
                stamp += 1;
                touch(&big, stamp);
            }
        },
    )
    .unwrap();
    let warnings = report.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("src/big") && warnings[0].contains("copied (3 times)"),
        "{warnings:?}"
    );
    // And without --live the same is an error.
    let out = dir.path().join("strict.img");
    let err = build(
        &src,
        &out,
        false,
        || {},
        |offset, _| {
            if offset >= 1 << 20 {
                stamp += 1;
                touch(&big, stamp);
            }
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("src/big"), "{err}");
}

/// The large file of the `--live` tests below: `big` in `src/`, twice
/// [`LIVE_COPY_BUFFER`] of 1s, and what it is rewritten to during its
/// first copy: its first MiB (its first chunk, written before the change)
/// zeros, the rest 2s.
fn large_source() -> (tempfile::TempDir, PathBuf, Vec<u8>) {
    let (dir, src) = source_with(&[]);
    let len = 2 * LIVE_COPY_BUFFER;
    std::fs::write(src.join("big"), vec![1u8; len]).unwrap();
    let mut new = vec![2u8; len];
    new[..1 << 20].fill(0);
    (dir, src, new)
}

/// Builds `src` with `--live`, rewriting `big` to `new` at the first write
/// of its data (the first whole 1 MiB chunk, past the metadata of group 0).
fn build_changing_once(
    src: &Path,
    out: &Path,
    stream: bool,
    new: &[u8],
) -> Result<EmitReport, EmitError> {
    let mut done = false;
    build_to(
        src,
        out,
        true,
        stream,
        || {},
        |offset, len| {
            if offset >= 1 << 20 && len == 1 << 20 && !std::mem::replace(&mut done, true) {
                rewrite(&src.join("big"), new, 1);
            }
        },
    )
}

/// Old behaviour: copied once, stored as read (its first MiB still 1s),
/// with a warning.
#[test]
fn under_live_a_large_file_changed_while_copied_is_copied_again_into_a_file() {
    let (dir, src, new) = large_source();
    let out = dir.path().join("out.img");
    let report = build_changing_once(&src, &out, false, &new).unwrap();
    assert!(report.warnings().is_empty(), "{:?}", report.warnings());
    // The zeros of the second copy replaced the 1s of the first.
    assert!(image_file(&out, "big") == new, "not the new bytes");
}

/// A stream cannot take bytes back: the file is stored as read, with the
/// warning.
#[test]
fn under_live_a_large_file_changed_while_copied_into_a_stream_is_stored_as_read() {
    let (dir, src, new) = large_source();
    let out = dir.path().join("out.img");
    let report = build_changing_once(&src, &out, true, &new).unwrap();
    let warnings = report.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("src/big") && warnings[0].contains("not copied again into a stream"),
        "{warnings:?}"
    );
    let mut read = new;
    read[..1 << 20].fill(1);
    assert!(image_file(&out, "big") == read, "not the bytes as read");
}

/// Removed during its first copy (which reads on from the open file), a
/// large file is stored as zeros over that copy, with a warning.
#[test]
fn under_live_a_large_file_vanishing_while_copied_is_stored_as_zeros() {
    let (dir, src, _) = large_source();
    let out = dir.path().join("out.img");
    let mut done = false;
    let report = build(
        &src,
        &out,
        true,
        || {},
        |offset, len| {
            if offset >= 1 << 20 && len == 1 << 20 && !std::mem::replace(&mut done, true) {
                std::fs::remove_file(src.join("big")).unwrap();
            }
        },
    )
    .unwrap();
    let warnings = report.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("vanished"), "{warnings:?}");
    assert!(image_file(&out, "big") == vec![0u8; 2 * LIVE_COPY_BUFFER]);
}
