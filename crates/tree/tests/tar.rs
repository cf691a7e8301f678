//! `read_tar` against GNU tar: a tree made here is archived in each format
//! (and compression) and must read back as `read_dir_tree` reads the tree
//! itself, as far as the format stores it.
//!
//! Needs `tar`, `gzip`, `xz`, `zstd`, `bzip2`, `mkfifo`, `setfattr` and
//! `setfacl` (Debian: tar, gzip, xz-utils, zstd, bzip2, coreutils, attr,
//! acl); devices and foreign owners need root. What is missing skips the
//! test outside CI and fails it under `CI=true`.
#![cfg(unix)]

use std::collections::HashMap;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_tree::{
    read_dir_tree, read_tar, Body, FileData, Metadata, NodeId, TarOptions, Timestamp, Tree,
    TreeError,
};

/// True if `tool` runs; otherwise prints why and returns false outside CI,
/// panics under `CI=true`.
fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "`{tool}` is not installed (CI=true: a failure, not a skip)"
        );
        eprintln!("SKIPPED: `{tool}` is not installed");
    }
    found
}

/// Runs a command that must succeed.
fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What an archive format keeps of the tree.
#[derive(Clone, Copy)]
struct Keeps {
    /// Nanoseconds of mtime, and atime and ctime at all (PAX).
    pax_times: bool,
    /// Extended attributes.
    xattrs: bool,
    /// Holes of sparse files.
    holes: bool,
}

const GNU: Keeps = Keeps {
    pax_times: false,
    xattrs: false,
    holes: true,
};
const POSIX: Keeps = Keeps {
    pax_times: true,
    xattrs: true,
    holes: true,
};
const USTAR: Keeps = Keeps {
    pax_times: false,
    xattrs: false,
    holes: false,
};

/// The source tree and what reading it directly gives.
struct Source {
    _dir: tempfile::TempDir,
    root: PathBuf,
    work: PathBuf,
    expected: Tree,
}

/// Makes a tree of every kind of node: `rich` adds what plain ustar cannot
/// hold (names and link targets past 100 bytes, sparse files, xattrs).
fn source(rich: bool) -> Source {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("src");
    let work = dir.path().to_path_buf();
    let p = |rel: &str| root.join(rel);
    std::fs::create_dir_all(p("sub/deeper")).unwrap();
    std::fs::create_dir(p("sticky")).unwrap();
    std::fs::write(p("sub/file"), b"hello, tar\n").unwrap();
    std::fs::write(p("exec"), vec![0x7f; 5000]).unwrap();
    std::fs::write(p("empty"), b"").unwrap();
    std::fs::write(p("sub/deeper/zeros"), vec![0; 10000]).unwrap();
    std::fs::hard_link(p("sub/file"), p("hard")).unwrap();
    std::os::unix::fs::symlink("sub/file", p("sym")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", p("abs")).unwrap();
    run(Command::new("mkfifo").arg(p("fifo")));
    run(Command::new("chmod").args(["4755"]).arg(p("exec")));
    run(Command::new("chmod").args(["1777"]).arg(p("sticky")));
    run(Command::new("chmod").args(["0600"]).arg(p("sub/file")));
    let root_user = std::fs::metadata(&root).unwrap().uid() == 0;
    if root_user {
        run(Command::new("mknod").arg(p("chr")).args(["c", "1", "3"]));
        run(Command::new("mknod").arg(p("blk")).args(["b", "7", "1000"]));
        run(Command::new("chown")
            .args(["-h", "1234:5678"])
            .arg(p("sym")));
    } else {
        eprintln!("not root: no devices or foreign owners in the tree");
    }
    if rich {
        add_rich(&root);
        if root_user {
            // Past the 21 bits of an octal ustar field.
            run(Command::new("chown")
                .args(["4000000:4000001"])
                .arg(p("exec")));
        }
    }
    set_times(&root);
    let expected = read_dir_tree(&root).unwrap();
    Source {
        _dir: dir,
        root,
        work,
        expected,
    }
}

/// Long names, a long symlink target, sparse files and xattrs.
fn add_rich(root: &Path) {
    let long_dir = root.join("d".repeat(120));
    std::fs::create_dir(&long_dir).unwrap();
    let long_file = long_dir.join("f".repeat(130));
    std::fs::write(&long_file, b"long").unwrap();
    std::fs::hard_link(&long_file, root.join("hard-to-long")).unwrap();
    std::os::unix::fs::symlink("t/".repeat(80), root.join("long-target")).unwrap();
    let sparse = std::fs::File::create(root.join("sparse")).unwrap();
    sparse.set_len(5 << 20).unwrap();
    sparse.write_all_at(b"head", 0).unwrap();
    sparse.write_all_at(&[1; 9000], 2 << 20).unwrap();
    sparse.write_all_at(b"tail", (5 << 20) - 4).unwrap();
    // Enough segments for GNU extension blocks and a 1.0 map past one block.
    let holes = std::fs::File::create(root.join("many-holes")).unwrap();
    for i in 0..70u64 {
        holes.write_all_at(b"x", i * 65536 + 100).unwrap();
    }
    std::fs::File::create(root.join("all-hole"))
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    if have("setfattr") {
        let file = root.join("sub/file");
        let set = |name: &str, value: &str, path: &Path| {
            Command::new("setfattr")
                .args(["-n", name, "-v", value])
                .arg(path)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !(set("user.text", "hello", &file)
            && set("user.bin", "0x00ff0a", &file)
            && set("user.empty", "", &root.join("sub")))
        {
            eprintln!("this filesystem refuses user xattrs: none in the tree");
        }
    }
    // GNU tar keeps an ACL as the binary system.posix_acl_access xattr.
    if have("setfacl") {
        run(Command::new("setfacl")
            .args(["-m", "u:1234:r,g:5678:rw"])
            .arg(root.join("exec")));
        run(Command::new("setfacl")
            .args(["-d", "-m", "u:99:rx"])
            .arg(root.join("sticky")));
    }
}

/// Gives every entry its own mtime with nanoseconds and an atime an hour
/// ahead (so reading a symlink leaves it alone under relatime); directories
/// last, as creating entries moves their mtime.
fn set_times(root: &Path) {
    let mut paths = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        paths.push(dir.clone());
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                paths.push(entry.path());
            }
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (i, path) in paths.iter().rev().enumerate() {
        let mtime = format!("@{}.{:09}", 1_234_567_890 + i * 1000, 123_456_789 + i);
        let atime = format!("@{}.5", now + 3600);
        run(Command::new("touch")
            .args(["-h", "-m", "-d", &mtime])
            .arg(path));
        run(Command::new("touch")
            .args(["-h", "-a", "-d", &atime])
            .arg(path));
    }
}

impl Source {
    /// Archives the tree with GNU tar and the given options.
    fn archive(&self, name: &str, options: &[&str]) -> PathBuf {
        let out = self.work.join(name);
        run(Command::new("tar")
            .args(["--atime-preserve=system", "-cf"])
            .arg(&out)
            .args(options)
            .arg("-C")
            .arg(&self.root)
            .arg("."));
        out
    }

    /// Reads `archive` and compares it with the tree.
    fn check(&self, archive: &Path, keeps: Keeps) {
        let got = read_tar(archive).unwrap_or_else(|e| panic!("{e}"));
        let mut pairs = HashMap::new();
        compare(
            &self.expected,
            &got,
            Tree::ROOT,
            Tree::ROOT,
            ".",
            keeps,
            &mut pairs,
        );
    }
}

/// Compares the subtrees at `e` (expected) and `g` (got); `pairs` maps the
/// nodes seen, so hard links must pair the same way.
fn compare(
    expected: &Tree,
    got: &Tree,
    e: NodeId,
    g: NodeId,
    path: &str,
    keeps: Keeps,
    pairs: &mut HashMap<NodeId, NodeId>,
) {
    if let Some(&seen) = pairs.get(&e) {
        assert_eq!(seen, g, "{path}: hard links differ");
        return;
    }
    pairs.insert(e, g);
    let (en, gn) = (expected.node(e), got.node(g));
    compare_meta(&en.meta, &gn.meta, path, keeps);
    match (&en.body, &gn.body) {
        (Body::Dir(_), Body::Dir(_)) => {
            let names = |t: &Tree, id| t.node(id).entries().map(|(n, _)| n.to_vec()).collect();
            let (en_names, gn_names): (Vec<_>, Vec<_>) = (names(expected, e), names(got, g));
            assert_eq!(en_names, gn_names, "{path}: entries differ");
            for (name, child) in en.entries() {
                let other = got.lookup(g, name).unwrap();
                let sub = format!("{path}/{}", String::from_utf8_lossy(name));
                compare(expected, got, child, other, &sub, keeps, pairs);
            }
        }
        (Body::File(ef), Body::File(gf)) => compare_files(ef, gf, path, keeps),
        (eb, gb) => assert_eq!(eb, gb, "{path}"),
    }
}

fn compare_meta(e: &Metadata, g: &Metadata, path: &str, keeps: Keeps) {
    assert_eq!((e.perm, e.uid, e.gid), (g.perm, g.uid, g.gid), "{path}");
    assert_eq!(g.crtime(), None, "{path}");
    if keeps.pax_times {
        assert_eq!(
            (e.mtime(), e.atime(), e.ctime()),
            (g.mtime(), g.atime(), g.ctime()),
            "{path}"
        );
    } else {
        let secs = Timestamp {
            secs: e.mtime().secs,
            nanos: 0,
        };
        assert_eq!(
            (g.mtime(), g.atime(), g.ctime()),
            (secs, secs, secs),
            "{path}"
        );
    }
    if keeps.xattrs {
        assert_eq!(e.xattrs(), g.xattrs(), "{path}");
    } else {
        assert!(g.xattrs().is_empty(), "{path}");
    }
}

fn compare_files(e: &FileData, g: &FileData, path: &str, keeps: Keeps) {
    assert_eq!(e.size, g.size, "{path}");
    assert_eq!(bytes(e), bytes(g), "{path}");
    if keeps.holes {
        assert_eq!(e.data(), g.data(), "{path}");
    } else if g.size > 0 {
        assert_eq!(g.data().to_vec(), vec![0..g.size], "{path}");
    }
}

/// A file's bytes through its data source.
fn bytes(f: &FileData) -> Vec<u8> {
    f.read_all().unwrap()
}

#[test]
fn gnu_format_with_old_sparse_members() {
    if !(have("tar") && have("mkfifo")) {
        return;
    }
    let s = source(true);
    s.check(&s.archive("gnu.tar", &["--format=gnu", "--sparse"]), GNU);
}

#[test]
fn posix_format_with_each_sparse_version() {
    if !(have("tar") && have("mkfifo")) {
        return;
    }
    let s = source(true);
    for version in ["0.0", "0.1", "1.0"] {
        let options = [
            "--format=posix",
            "--xattrs",
            "--xattrs-include=*",
            "--sparse",
            &format!("--sparse-version={version}"),
        ];
        s.check(&s.archive(&format!("pax-{version}.tar"), &options), POSIX);
    }
}

#[test]
fn acls_as_text() {
    if !(have("tar") && have("mkfifo") && have("setfacl")) {
        return;
    }
    let s = source(true);
    let got = read_tar(&s.archive("acl.tar", &["--format=posix", "--acls"])).unwrap();
    let acls = |tree: &Tree, name: &str| {
        let id = tree.lookup(Tree::ROOT, name.as_bytes()).unwrap();
        let mut xattrs = tree.node(id).meta.xattrs().to_vec();
        xattrs.retain(|x| x.name.starts_with(b"system.posix_acl_"));
        xattrs
    };
    for name in ["exec", "sticky"] {
        assert!(!acls(&s.expected, name).is_empty(), "{name}");
        assert_eq!(acls(&got, name), acls(&s.expected, name), "{name}");
    }
}

#[test]
fn ustar_format() {
    if !(have("tar") && have("mkfifo")) {
        return;
    }
    let s = source(false);
    s.check(&s.archive("ustar.tar", &["--format=ustar"]), USTAR);
}

#[test]
fn compressed_archives() {
    if !(have("tar") && have("mkfifo")) {
        return;
    }
    let s = source(true);
    let plain = s.archive(
        "c.tar",
        &["--format=posix", "--xattrs", "--xattrs-include=*"],
    );
    let keeps = Keeps {
        holes: false,
        ..POSIX
    };
    for (tool, suffix) in [
        ("gzip", "gz"),
        ("xz", "xz"),
        ("zstd", "zst"),
        ("bzip2", "bz2"),
    ] {
        if !have(tool) {
            continue;
        }
        run(Command::new(tool).args(["-k", "-q", "-f"]).arg(&plain));
        s.check(&s.work.join(format!("c.tar.{suffix}")), keeps);
    }
}

#[test]
fn hostile_archives_are_errors() {
    if !(have("tar") && have("mkfifo")) {
        return;
    }
    let s = source(false);
    let evil = s.work.join("evil.tar");
    run(Command::new("tar")
        .args(["-P", "--transform=s,^,../,", "-cf"])
        .arg(&evil)
        .arg("-C")
        .arg(&s.root)
        .arg("empty"));
    let e = read_tar(&evil).unwrap_err().to_string();
    assert!(e.contains("evil.tar") && e.contains("../empty"), "{e}");

    let whole = std::fs::read(s.archive("t.tar", &["--format=posix"])).unwrap();
    let cut = s.work.join("cut.tar");
    std::fs::write(&cut, &whole[..whole.len() / 3]).unwrap();
    let e = read_tar(&cut).unwrap_err().to_string();
    assert!(e.contains("ends early"), "{e}");

    let garbage = s.work.join("garbage.tar");
    std::fs::write(&garbage, vec![b'?'; 10240]).unwrap();
    let e = read_tar(&garbage).unwrap_err().to_string();
    assert!(
        e.contains("garbage.tar: not a tar archive: unknown data"),
        "{e}"
    );

    let e = read_tar(&s.work.join("missing.tar"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.tar"), "{e}");
}

/// Every path in `tree` below the root, sorted.
fn paths(tree: &Tree) -> Vec<String> {
    fn walk(tree: &Tree, dir: NodeId, prefix: &str, out: &mut Vec<String>) {
        for (name, id) in tree.node(dir).entries() {
            let path = format!("{prefix}{}", String::from_utf8_lossy(name));
            out.push(path.clone());
            if tree.node(id).is_dir() {
                walk(tree, id, &format!("{path}/"), out);
            }
        }
    }
    let mut out = Vec::new();
    walk(tree, Tree::ROOT, "", &mut out);
    out.sort();
    out
}

/// The members `tar -tif` lists in `archive` (past zero blocks), as paths
/// below the root.
fn members_past_zeros(archive: &Path) -> Vec<String> {
    let out = Command::new("tar")
        .arg("-tif")
        .arg(archive)
        .output()
        .unwrap();
    assert!(out.status.success(), "tar -tif");
    let mut members: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|m| m.trim_start_matches("./").trim_end_matches('/').to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    members.sort();
    members.dedup();
    members
}

/// Issue 16, point 5: archives joined with `cat` are an error that names
/// where the second starts; with `ignore_zeros` they give what `tar -tif`
/// lists, compressed too. An archive with no members is empty.
#[test]
fn joined_archives_as_gnu_tar_reads_them() {
    if !(have("tar") && have("mkfifo") && have("gzip")) {
        return;
    }
    let s = source(false);
    let first = s.archive("first.tar", &["--format=gnu"]);
    std::fs::create_dir_all(s.work.join("more/sub")).unwrap();
    std::fs::write(s.work.join("more/sub/file"), b"second archive\n").unwrap();
    let second = s.work.join("second.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&second)
        .arg("-C")
        .arg(&s.work)
        .arg("more"));
    let joined = s.work.join("joined.tar");
    let first_len = std::fs::metadata(&first).unwrap().len();
    let bytes = [
        std::fs::read(&first).unwrap(),
        std::fs::read(&second).unwrap(),
    ]
    .concat();
    std::fs::write(&joined, bytes).unwrap();
    run(Command::new("gzip").args(["-k", "-f"]).arg(&joined));

    let ignoring = TarOptions::new().ignore_zeros(true);
    for archive in [joined.clone(), s.work.join("joined.tar.gz")] {
        match read_tar(&archive) {
            Err(TreeError::DataAfterEnd { offset, .. }) => assert_eq!(offset, first_len),
            other => panic!("{}: {:?}", archive.display(), other.map(|t| paths(&t))),
        }
        let tree = ignoring.read(&archive).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(paths(&tree), members_past_zeros(&joined));
        assert!(paths(&tree).contains(&"more/sub/file".to_owned()));
    }

    let empty = s.work.join("empty.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&empty)
        .args(["-T", "/dev/null"]));
    let tree = read_tar(&empty).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(paths(&tree), Vec::<String>::new());
}

/// Reads a gzip-compressed archive from a pipe on standard input: the test
/// runs itself again as a child process, with the archive piped in.
#[test]
fn standard_input() {
    if std::env::var_os("KILN_TAR_FROM_STDIN").is_some() {
        let tree = read_tar(Path::new("-")).unwrap_or_else(|e| panic!("{e}"));
        let sub = tree.lookup(Tree::ROOT, b"sub").unwrap();
        let file = tree.lookup(sub, b"file").unwrap();
        assert_eq!(tree.lookup(Tree::ROOT, b"hard"), Some(file));
        let Body::File(f) = &tree.node(file).body else {
            panic!("sub/file is not a file")
        };
        assert_eq!(bytes(f), b"hello, tar\n");
        assert_eq!(f.origin(), PathBuf::from("<stdin>"));
        return;
    }
    if !(have("tar") && have("mkfifo") && have("gzip")) {
        return;
    }
    let s = source(false);
    let archive = std::fs::read(s.archive("in.tar.gz", &["--gzip"])).unwrap();
    let piped = std::process::Stdio::piped;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "standard_input", "--nocapture"])
        .env("KILN_TAR_FROM_STDIN", "1")
        .stdin(piped())
        .stdout(piped())
        .stderr(piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &archive));
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the child reading stdin failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    writer.join().unwrap().unwrap();
    // Not a vacuous pass: the filter found the test.
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}
