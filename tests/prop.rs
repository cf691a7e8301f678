//! Issue 7, points 1 and 2: random trees × random options. Every image must
//! pass `e2fsck -fn` and `kiln verify` against its tree (every `Case::build`
//! runs it); a sample is also mounted by the kernel, compared with the
//! source, written to (create, append, truncate, rename, delete, mkdir in a
//! big directory, xattrs), unmounted and checked by e2fsck again.
//!
//! The trees have every file type kiln stores (devices as root), sizes with
//! holes, hard links, deep paths, long and non-UTF-8 names, big directories,
//! xattrs, random modes, owners (as root) and times before 1970 and after
//! 2038. Cases: `KILN_PROPTEST_CASES` (default 16; `cargo xtask soak` runs
//! more), kernel round trips: `KILN_PROPTEST_MOUNTS` (default 4).
//! A failure shrinks to a minimal tree; its seed is saved in
//! `fixtures/regressions/prop.txt` and replayed first on every run.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};

use crate::compare::Snapshot;
use crate::fixture::{self, KIB};
use crate::helpers::*;
use crate::sys::{self, Kind, Ts};

/// Where the seeds of failures are kept (relative to the package root,
/// where cargo runs tests).
const REGRESSIONS: &str = "fixtures/regressions/prop.txt";

/// One entry of a random tree.
#[derive(Clone, Debug)]
enum Entry {
    /// A regular file of `size` bytes with data at `pieces` (offset, len).
    File {
        size: u64,
        pieces: Vec<(u64, u64)>,
    },
    Dir(BTreeMap<Vec<u8>, (Entry, Meta)>),
    Symlink(Vec<u8>),
    Fifo,
    /// A character device (as root; a FIFO otherwise).
    Device(u32, u32),
    /// A hard link to the k-th file created before it (a file of its own
    /// if there is none).
    Link(usize),
}

/// Metadata of an entry.
#[derive(Clone, Debug)]
struct Meta {
    perm: u16,
    owner: (u32, u32),
    time: Ts,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Options of one build.
#[derive(Clone, Debug)]
struct Options {
    fs_type: &'static str,
    block_size: u32,
    inode_size: u16,
    features: &'static str,
    hash_alg: &'static str,
}

/// A name: 1 to 255 bytes without `/` or NUL, sometimes not UTF-8.
fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => "[a-z][a-z0-9._-]{0,12}".prop_map(String::into_bytes),
        1 => prop::collection::vec(1u8..=255, 1..40),
        1 => (200usize..=255).prop_map(|n| vec![b'n'; n]),
    ]
    .prop_map(|mut n| {
        for c in &mut n {
            if *c == b'/' {
                *c = b'_';
            }
        }
        if n == b"." || n == b".." {
            n.push(b'x');
        }
        n
    })
}

/// Times: ordinary ones with nanoseconds, before 1970, after 2038.
fn time() -> impl Strategy<Value = Ts> {
    prop_oneof![
        4 => (1_000_000_000i64..1_700_000_000, 0u32..1_000_000_000),
        1 => (-2_000_000_000i64..0, 0u32..1_000_000_000),
        1 => (2_200_000_000i64..4_000_000_000, 0u32..1_000_000_000),
    ]
    .prop_map(|(s, ns)| Ts::new(s, ns))
}

fn meta() -> impl Strategy<Value = Meta> {
    let owner = prop_oneof![
        Just(0u32),
        Just(1000),
        Just(65_534),
        Just(100_000),
        Just(4_000_000_000)
    ];
    let xattr = ("[a-z]{1,10}", prop::collection::vec(any::<u8>(), 0..200))
        .prop_map(|(n, v)| (format!("user.{n}"), v));
    (
        0u16..0o7777,
        (owner.clone(), owner),
        time(),
        prop::collection::vec(xattr, 0..3),
    )
        .prop_map(|(perm, owner, time, mut xattrs)| {
            xattrs.sort();
            xattrs.dedup_by(|a, b| a.0 == b.0);
            Meta {
                perm,
                owner,
                time,
                xattrs,
            }
        })
}

/// A regular file: small, block-sized, or up to 3 MiB with holes.
fn file() -> impl Strategy<Value = Entry> {
    let piece = (0u64..3 << 20, 1u64..64 * KIB);
    prop_oneof![
        3 => (0u64..5000).prop_map(|size| Entry::File { size, pieces: vec![(0, size)] }),
        2 => (1u64..3 << 20, prop::collection::vec(piece, 0..4)).prop_map(|(size, pieces)| {
            let pieces = pieces
                .into_iter()
                .filter(|&(at, _)| at < size)
                .map(|(at, len)| (at, len.min(size - at)))
                .collect();
            Entry::File { size, pieces }
        }),
    ]
}

/// A leaf entry.
fn leaf() -> impl Strategy<Value = Entry> {
    prop_oneof![
        6 => file(),
        2 => prop_oneof![
            "[a-z/.]{1,40}".prop_map(String::into_bytes),
            (60usize..500).prop_map(|n| vec![b't'; n]),
        ]
        .prop_map(Entry::Symlink),
        1 => Just(Entry::Fifo),
        1 => (0u32..300, 0u32..70_000).prop_map(|(a, b)| Entry::Device(a, b)),
        2 => (0usize..8).prop_map(Entry::Link),
    ]
}

/// A tree: nested directories, sometimes a big one.
fn tree() -> impl Strategy<Value = Entry> {
    let big = (50usize..400).prop_map(|n| {
        let entries = (0..n)
            .map(|i| {
                let m = Meta {
                    perm: 0o644,
                    owner: (0, 0),
                    time: Ts::new(1_600_000_000, 0),
                    xattrs: Vec::new(),
                };
                let name = format!("entry-{i:04}-with-a-longer-name").into_bytes();
                (
                    name,
                    (
                        Entry::File {
                            size: 3,
                            pieces: vec![(0, 3)],
                        },
                        m,
                    ),
                )
            })
            .collect();
        Entry::Dir(entries)
    });
    let leaf = prop_oneof![10 => leaf(), 1 => big];
    leaf.prop_recursive(5, 48, 8, |inner| {
        prop::collection::btree_map(name(), (inner, meta()), 0..8).prop_map(Entry::Dir)
    })
    .prop_map(|e| match e {
        Entry::Dir(_) => e,
        other => Entry::Dir(BTreeMap::from([(b"only".to_vec(), (other, plain_meta()))])),
    })
}

/// The metadata of entries that need none in particular.
fn plain_meta() -> Meta {
    Meta {
        perm: 0o755,
        owner: (0, 0),
        time: Ts::new(1_600_000_000, 0),
        xattrs: Vec::new(),
    }
}

fn options() -> impl Strategy<Value = Options> {
    let fs = prop_oneof![Just("ext2"), Just("ext3"), Just("ext4")];
    (
        fs,
        prop_oneof![Just(1024u32), Just(4096)],
        prop_oneof![Just(128u16), Just(256)],
        0usize..4,
        0usize..3,
    )
        .prop_map(|(fs_type, block_size, inode_size, f, h)| {
            let features = match (fs_type, f, inode_size) {
                ("ext4", 1, 256) => "inline_data",
                ("ext4", 2, _) => "^metadata_csum",
                ("ext4", 3, _) => "large_dir",
                (_, 1, _) => "^dir_index",
                _ => "",
            };
            Options {
                fs_type,
                block_size,
                inode_size,
                features,
                hash_alg: ["half_md4", "tea", "legacy"][h],
            }
        })
}

/// Writes `entry` at `path` (and below), then its metadata.
fn materialize(path: &Path, entry: &Entry, meta: &Meta, files: &mut Vec<std::path::PathBuf>) {
    let root = sys::is_root();
    match entry {
        Entry::Dir(children) => {
            std::fs::create_dir(path).unwrap();
            for (name, (child, m)) in children {
                let p = path.join(std::ffi::OsStr::from_bytes(name));
                materialize(&p, child, m, files);
            }
        }
        Entry::File { size, pieces } => {
            let pieces: Vec<(u64, u64)> = pieces.clone();
            fixture::sparse(path, *size, &pieces);
            files.push(path.to_path_buf());
        }
        Entry::Symlink(target) => {
            std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), path).unwrap();
            return;
        }
        Entry::Fifo => sys::mknod(path, Kind::Fifo, 0o644, 0, 0),
        Entry::Device(major, minor) if root => {
            sys::mknod(path, Kind::CharDev, 0o600, *major, *minor)
        }
        Entry::Device(..) => sys::mknod(path, Kind::Fifo, 0o644, 0, 0),
        Entry::Link(k) => {
            match files.get(k % files.len().max(1)) {
                Some(first) => std::fs::hard_link(first, path).unwrap(),
                None => fixture::sparse(path, 0, &[]),
            }
            return;
        }
    }
    if !matches!(entry, Entry::Link(_)) {
        // user.* xattrs are for regular files and directories only.
        if matches!(entry, Entry::File { .. } | Entry::Dir(_)) {
            for (name, value) in &meta.xattrs {
                sys::set_xattr(path, name, value);
            }
        }
        if root {
            sys::lchown(path, meta.owner.0, meta.owner.1);
        }
        // Directories keep write and search for the owner, so the tree
        // stays removable; chmod after chown (chown clears setuid).
        let perm = if matches!(entry, Entry::Dir(_)) {
            meta.perm | 0o700
        } else {
            meta.perm
        };
        sys::chmod(path, perm);
    }
}

/// Sets every time bottom-up (creating children moves a directory's mtime).
fn set_times(path: &Path, entry: &Entry, meta: &Meta) {
    if let Entry::Dir(children) = entry {
        for (name, (child, m)) in children {
            set_times(&path.join(std::ffi::OsStr::from_bytes(name)), child, m);
        }
    }
    if !matches!(entry, Entry::Link(_) | Entry::Symlink(_)) {
        sys::set_times(path, meta.time, meta.time);
    }
}

/// How many cases ran (the first few are also mounted).
static CASES: AtomicU32 = AtomicU32::new(0);

/// Builds one random tree with random options and judges the image.
fn check(tree: &Entry, opts: &Options) {
    let case = Case::new(opts.fs_type, opts.block_size);
    let src = case.path("src");
    let mut files = Vec::new();
    materialize(&src, tree, &plain_meta(), &mut files);
    set_times(&src, tree, &plain_meta());
    let snap = Snapshot::take(&[&src]);
    let image = case.path("image.img");
    let isize = opts.inode_size.to_string();
    let mut extra = vec!["-I", &isize, "--hash-alg", opts.hash_alg];
    if !opts.features.is_empty() {
        extra.extend(["-O", opts.features]);
    }
    // The images the kernel writes to get room for the workload; the
    // others are as small as kiln makes them.
    let n = CASES.fetch_add(1, Ordering::SeqCst);
    let mounted = n < env_count("KILN_PROPTEST_MOUNTS", 4) && sys::is_root() && require_mount();
    if mounted {
        extra.extend(["--size", "48M"]);
    }
    case.build(&[&src], &image, &extra);
    e2fsck_clean(&image);
    if mounted {
        // 128-byte inodes keep whole seconds only: `kiln verify` (run by
        // `build`) compares those; the snapshot comparator wants the
        // source's own times.
        let exact_times = opts.inode_size > 128;
        kernel_round_trip(&case, &image, exact_times.then_some(&snap));
    }
}

/// Mounts the image read-only and compares it with the source (`snap`),
/// then writes to it read-write and requires e2fsck to stay clean.
fn kernel_round_trip(case: &Case, image: &Path, snap: Option<&Snapshot>) {
    let mount = Mount::ro(image, case.fs_type);
    if let Some(snap) = snap {
        snap.assert_image_matches(mount.path(), u64::from(case.block_size));
    }
    mount.unmount();
    let mount = Mount::rw(image, case.fs_type);
    write_workload(mount.path());
    mount.unmount();
    e2fsck_clean(image);
}

/// Changes through the kernel: every kind of write a live system makes.
/// Auto-sized images have little free space: running out of it (ENOSPC)
/// ends the workload, which is the kernel's answer, not a failure; the
/// image must be clean either way.
fn write_workload(m: &Path) {
    match try_workload(m) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(28) => eprintln!("workload stopped: {e}"),
        Err(e) => panic!("write workload on {}: {e}", m.display()),
    }
}

fn try_workload(m: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let big = m.join("kiln-big-dir");
    std::fs::create_dir(&big)?;
    for i in 0..300 {
        let data = fixture::bytes(i, (i as usize * 37) % 5000);
        std::fs::write(big.join(format!("entry-{i:04}")), data)?;
    }
    for i in (0..300).step_by(7) {
        std::fs::remove_file(big.join(format!("entry-{i:04}")))?;
    }
    std::fs::rename(big.join("entry-0001"), m.join("renamed"))?;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(m.join("renamed"))?;
    f.write_all(&fixture::bytes(9, 70_000))?;
    f.set_len(1000)?;
    rustix::fs::setxattr(
        m.join("renamed"),
        "user.added",
        &[7; 300],
        rustix::fs::XattrFlags::empty(),
    )?;
    for entry in std::fs::read_dir(m)? {
        let path = entry?.path();
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.file_type().is_file() && path.file_name() != Some("renamed".as_ref()) {
            std::fs::remove_file(&path)?;
            break;
        }
    }
    Ok(())
}

/// A count from the environment, or `default`.
fn env_count(var: &str, default: u32) -> u32 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn prop_random_trees_build_clean_and_verify() {
    if !require_tool("e2fsck") {
        return;
    }
    let config = Config {
        cases: env_count("KILN_PROPTEST_CASES", 16),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&(tree(), options()), |(tree, opts)| {
        check(&tree, &opts);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
