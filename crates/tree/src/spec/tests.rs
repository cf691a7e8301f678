//! Tests of spec files, device tables and file_contexts as a whole: parse
//! errors with their places, and application to small trees.

use std::path::Path;

use super::*;
use crate::model::{Body, Node, NodeId};
use crate::HostPath;

mod fuzz;

fn meta(perm: u16) -> Metadata {
    Metadata::new(perm, 0, 0, Times::at(Timestamp { secs: 7, nanos: 0 }))
}

/// `/etc/passwd`, `/etc/shadow`, `/bin/sh`, `/bin/run.sh`, `/bin/ls -> sh`.
fn small_tree() -> Tree {
    let mut tree = Tree::new(meta(0o755));
    for (dir, files) in [
        ("etc", &["passwd", "shadow"][..]),
        ("bin", &["sh", "run.sh"][..]),
    ] {
        let d = tree.add(Node {
            meta: meta(0o755),
            body: Body::Dir(Default::default()),
        });
        tree.link(Tree::ROOT, dir.as_bytes(), d);
        for f in files {
            let id = tree.add(Node {
                meta: meta(0o644),
                body: Body::Fifo,
            });
            tree.link(d, f.as_bytes(), id);
        }
    }
    let bin = tree.lookup(Tree::ROOT, b"bin").unwrap();
    let ls = tree.add(Node {
        meta: meta(0o777),
        body: Body::Symlink(b"sh".to_vec()),
    });
    tree.link(bin, b"ls", ls);
    tree
}

fn at(tree: &Tree, path: &str) -> Option<NodeId> {
    path.split('/')
        .filter(|p| !p.is_empty())
        .try_fold(Tree::ROOT, |dir, name| tree.lookup(dir, name.as_bytes()))
}

fn node<'a>(tree: &'a Tree, path: &str) -> &'a Node {
    tree.node(at(tree, path).unwrap_or_else(|| panic!("{path} is missing")))
}

fn xattr<'a>(node: &'a Node, name: &str) -> Option<&'a [u8]> {
    let x = node
        .meta
        .xattrs()
        .iter()
        .find(|x| x.name == name.as_bytes());
    x.map(|x| x.value.as_slice())
}

fn spec(text: &str) -> Spec {
    Spec::parse(text, Path::new("test.spec")).unwrap()
}

/// Parses `text` and applies it to the small tree.
fn applied(text: &str) -> Result<Tree, TreeError> {
    let mut tree = small_tree();
    spec(text).apply(&mut tree)?;
    Ok(tree)
}

/// The line, column and message of a parse error.
fn parse_error(text: &str) -> (usize, usize, String) {
    match Spec::parse(text, Path::new("test.spec")) {
        Err(TreeError::Spec {
            line, column, what, ..
        }) => (line, column, what),
        other => panic!("not a parse error: {other:?}"),
    }
}

/// The line and message of an apply error.
fn apply_error(text: &str) -> (usize, String) {
    match applied(text) {
        Err(TreeError::Rule { line, what, .. }) => (line, what),
        other => panic!("not a rule error: {other:?}"),
    }
}

#[test]
fn creates_every_kind() {
    let tree = applied(
        "# a comment, then a blank line\n\
         \n\
         dir /srv/www 0750 33 33 mtime=2024-05-01T12:00:00Z\n\
         file /etc/hostname 0644 0 0 text \"vm1\\n\"\n\
         file /empty 0600 0 0 text ''\n\
         symlink /bin/bash 0777 0 0 sh\n\
         link /bin/hard /etc/hostname\n\
         char /dev/null 0666 0 0 1 3\n\
         block /dev/sda 0660 0 6 8 0\n\
         fifo /run/initctl 0600 0 0\n\
         socket /run/log 0666 0 0 atime=1.5\n",
    )
    .unwrap();
    let www = node(&tree, "/srv/www");
    assert!(www.is_dir());
    assert_eq!((www.meta.perm, www.meta.uid, www.meta.gid), (0o750, 33, 33));
    assert_eq!({ www.meta.mtime().secs }, 1_714_564_800);
    assert_eq!(www.meta.atime(), Timestamp::default());
    // The parent made on the way: 0755, root's, at the epoch.
    let srv = node(&tree, "/srv");
    assert_eq!(
        (srv.meta.perm, srv.meta.uid, srv.meta.mtime().secs),
        (0o755, 0, 0)
    );
    match &node(&tree, "/etc/hostname").body {
        Body::File(f) => {
            assert_eq!(f.read_all().unwrap(), b"vm1\n");
            assert_eq!((f.size, f.data().to_vec()), (4, vec![0..4]));
            assert_eq!(f.origin(), Path::new("test.spec:4"));
        }
        other => panic!("{other:?}"),
    }
    match &node(&tree, "/empty").body {
        Body::File(f) => assert_eq!((f.size, f.data().len()), (0, 0)),
        other => panic!("{other:?}"),
    }
    assert_eq!(node(&tree, "/bin/bash").body, Body::Symlink(b"sh".to_vec()));
    assert_eq!(at(&tree, "/bin/hard"), at(&tree, "/etc/hostname"));
    assert_eq!(node(&tree, "/dev/null").body, Body::CharDevice(1, 3));
    assert_eq!(node(&tree, "/dev/sda").body, Body::BlockDevice(8, 0));
    assert_eq!(node(&tree, "/dev/sda").meta.gid, 6);
    assert_eq!(node(&tree, "/run/initctl").body, Body::Fifo);
    let log = node(&tree, "/run/log");
    assert_eq!(
        (log.body.clone(), log.meta.atime().nanos),
        (Body::Socket, 500_000_000)
    );
}

#[test]
fn files_from_the_host_are_stated_now_and_read_later() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("build")).unwrap();
    std::fs::write(dir.path().join("build/app"), b"\x7fELF...").unwrap();
    let origin = dir.path().join("image.spec");
    let text = "file /usr/bin/app 0755 0 0 from ./build/app caps=cap_net_raw+ep\n\
                file /usr/bin/dir 0755 0 0 from build";
    let spec = Spec::parse(text, &origin).unwrap();
    let mut tree = small_tree();
    let err = spec.apply(&mut tree).unwrap_err().to_string();
    assert!(
        err.contains("image.spec:2: ") && err.contains("not a regular file"),
        "{err}"
    );
    let app = node(&tree, "/usr/bin/app");
    match &app.body {
        Body::File(f) => {
            let host = dir.path().join("./build/app");
            assert_eq!(f.origin(), HostPath::new(&host).path());
            assert_eq!((f.size, f.data().to_vec()), (7, vec![0..7]));
        }
        other => panic!("{other:?}"),
    }
    assert!(xattr(app, "security.capability").is_some());

    let missing = Spec::parse("file /x 0644 0 0 from nothing-here", &origin).unwrap();
    let err = missing.apply(&mut small_tree()).unwrap_err().to_string();
    assert!(err.contains("nothing-here"), "{err}");
}

#[test]
fn quotes_and_escapes_name_any_bytes() {
    let tree = applied(
        "dir \"/my dir\" 0755 0 0\n\
         file /my\\ dir/caf\\xe9 0644 0 0 text 'it''s'\n\
         dir '/a#b' 0700 0 0 # a comment after the words",
    )
    .unwrap();
    let d = at(&tree, "/my dir").unwrap();
    let f = tree.lookup(d, b"caf\xe9").unwrap();
    match &tree.node(f).body {
        Body::File(file) => assert_eq!(file.read_all().unwrap(), b"its"),
        other => panic!("{other:?}"),
    }
    assert_eq!(node(&tree, "/a#b").meta.perm, 0o700);
}

#[test]
fn a_dir_line_updates_an_existing_directory() {
    let tree = applied("dir /etc 0700 1 2 xattr=user.k=v").unwrap();
    let etc = node(&tree, "/etc");
    assert_eq!((etc.meta.perm, etc.meta.uid, etc.meta.gid), (0o700, 1, 2));
    assert_eq!(
        { etc.meta.mtime().secs },
        7,
        "times the line does not name stay"
    );
    assert_eq!(xattr(etc, "user.k"), Some(&b"v"[..]));
    assert!(at(&tree, "/etc/passwd").is_some());
    let tree = applied("dir / 0700 0 0").unwrap();
    assert_eq!(tree.node(Tree::ROOT).meta.perm, 0o700);
}

#[test]
fn other_kinds_replace_what_the_sources_had() {
    let tree = applied("file /etc 0644 0 0 text x\ndir /bin/sh 0755 0 0").unwrap();
    assert!(matches!(node(&tree, "/etc").body, Body::File(_)));
    assert!(node(&tree, "/bin/sh").is_dir());
}

#[test]
fn modify_rules_match_globs() {
    let tree = applied(
        "chmod /bin/*.sh 0755\n\
         chown /etc/** 10 -\n\
         set /etc/shadow mtime=0 ctime=1 crtime=2 xattr=user.a=0x6869 xattr=user.b=0saGk= \
         xattr=user.c=\"0x41\" xattr=trusted.d=\n\
         set /bin/[lr]* rmxattr=user.none time=2000-01-01T00:00:00Z\n\
         chmod /** 0700 rmxattr=user.a\n\
         ?set /opt/** time=0",
    )
    .unwrap();
    let run = node(&tree, "/bin/run.sh");
    assert_eq!(run.meta.perm, 0o700);
    assert_eq!({ run.meta.mtime().secs }, 946_684_800);
    assert_eq!({ node(&tree, "/bin/sh").meta.mtime().secs }, 7);
    assert_eq!(node(&tree, "/etc").meta.uid, 10);
    assert_eq!(node(&tree, "/etc/passwd").meta.uid, 10);
    assert_eq!(node(&tree, "/bin").meta.uid, 0);
    let shadow = node(&tree, "/etc/shadow");
    assert_eq!((shadow.meta.uid, shadow.meta.gid), (10, 0));
    assert_eq!(
        ({ shadow.meta.mtime().secs }, { shadow.meta.ctime().secs }),
        (0, 1)
    );
    assert_eq!(shadow.meta.crtime(), Some(Timestamp { secs: 2, nanos: 0 }));
    let names: Vec<_> = shadow
        .meta
        .xattrs()
        .iter()
        .map(|x| x.name.clone())
        .collect();
    assert_eq!(
        names,
        [
            b"trusted.d".to_vec(),
            b"user.b".to_vec(),
            b"user.c".to_vec()
        ]
    );
    assert_eq!(xattr(shadow, "user.b"), Some(&b"hi"[..]));
    assert_eq!(xattr(shadow, "user.c"), Some(&b"0x41"[..]));
    assert_eq!(xattr(shadow, "trusted.d"), Some(&b""[..]));
    assert_eq!(tree.node(Tree::ROOT).meta.perm, 0o700);
}

#[test]
fn attr_sets_exactly_the_dos_attributes_named() {
    let tree = applied(
        "attr /bin/** hidden\n\
         attr /bin/sh system readonly\n\
         attr /bin/ls none\n\
         ?attr /opt/** system",
    )
    .unwrap();
    let dos = |path| tree.dos_attributes(at(&tree, path).unwrap());
    let hidden = DosAttributes {
        hidden: true,
        ..DosAttributes::default()
    };
    assert_eq!(dos("/bin"), Some(hidden));
    assert_eq!(dos("/bin/run.sh"), Some(hidden));
    assert_eq!(
        dos("/bin/sh"),
        Some(DosAttributes {
            read_only: true,
            system: true,
            hidden: false,
        })
    );
    assert_eq!(dos("/bin/ls"), Some(DosAttributes::default()));
    assert_eq!(dos("/etc/passwd"), None);
    assert!(tree.has_dos_attributes());
    assert!(!small_tree().has_dos_attributes());
    let (line, what) = apply_error("attr /opt hidden");
    assert_eq!(line, 1);
    assert!(what.contains("?attr"), "{what}");
}

#[test]
fn set_caps_writes_the_capability_xattr() {
    let tree = applied("set /bin/sh caps=cap_net_bind_service+ep").unwrap();
    let value = xattr(node(&tree, "/bin/sh"), "security.capability").unwrap();
    assert_eq!(
        value,
        &[1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
}

#[test]
fn rules_that_match_nothing_are_errors_unless_optional() {
    let (line, what) = apply_error("chmod /bin/sh 0755\nchmod /opt/** 0755");
    assert_eq!(line, 2);
    assert!(
        what.contains("/opt/**") && what.contains("?chmod"),
        "{what}"
    );
    assert!(applied("?chmod /opt/** 0755\n?chown /nothing 1 1").is_ok());
    // Globs do not follow symlinks: /bin/ls is one.
    apply_error("set /bin/ls/x time=0");
}

#[test]
fn hard_link_errors() {
    let (line, what) = apply_error("dir /x 0755 0 0\nlink /a /missing");
    assert_eq!(line, 2);
    assert!(
        what.contains("/missing") && what.contains("does not exist"),
        "{what}"
    );
    let (_, what) = apply_error("link /a /etc");
    assert!(what.contains("directory"), "{what}");
    let tree = applied("link /bin/sh2 /bin/ls").unwrap();
    assert_eq!(at(&tree, "/bin/sh2"), at(&tree, "/bin/ls"));
}

#[test]
fn parents_must_be_directories() {
    let (line, what) = apply_error("file /etc/passwd/x 0644 0 0 text x");
    assert_eq!(line, 1);
    assert!(what.contains("`/etc/passwd` is a fifo"), "{what}");
    let (_, what) = apply_error("dir /bin/ls/x 0755 0 0");
    assert!(what.contains("symlink"), "{what}");
}

#[test]
fn one_spec_cannot_make_a_path_twice_but_a_later_one_may_replace() {
    let (line, column, what) = parse_error("file /a 0644 0 0 text x\ndir /a 0755 0 0");
    assert_eq!((line, column), (2, 5));
    assert!(
        what.contains("line 1") && what.contains("regular file"),
        "{what}"
    );
    let (line, _, what) = parse_error("file /a/b 0644 0 0 text x\n\nsymlink /a 0777 0 0 t");
    assert_eq!(line, 3);
    assert!(
        what.contains("line 1") && what.contains("directory"),
        "{what}"
    );
    let (line, _, what) = parse_error("link /a /etc/passwd\nfifo /a/b 0644 0 0");
    assert_eq!(line, 2);
    assert!(
        what.contains("line 1") && what.contains("hard link"),
        "{what}"
    );
    assert!(Spec::parse(
        "dir /a 0755 0 0\ndir /a/b 0755 0 0\ndir /a 0700 0 0",
        Path::new("s")
    )
    .is_ok());

    let mut tree = small_tree();
    spec("file /a 0644 0 0 text x").apply(&mut tree).unwrap();
    spec("dir /a 0755 0 0").apply(&mut tree).unwrap();
    assert!(node(&tree, "/a").is_dir());
}

#[test]
fn parse_errors_carry_line_and_column() {
    let cases: &[(&str, usize, usize, &str)] = &[
        (
            "dir /a 0755 0 0\nfolder /b",
            2,
            1,
            "unknown entry kind `folder`",
        ),
        ("dir /a 10000 0 0", 1, 8, "above 7777"),
        ("dir /a 0758 0 0", 1, 8, "not an octal mode"),
        ("dir /a 0755 4294967296 0", 1, 13, "out of range"),
        ("dir /a 0755 0 -1", 1, 15, "not a decimal number"),
        ("dir /a 0755 0", 1, 14, "missing gid"),
        ("dir a 0755 0 0", 1, 5, "start with `/`"),
        ("dir /a/../b 0755 0 0", 1, 5, "`..`"),
        ("dir /a 0755 0 0 color=red", 1, 17, "unknown option `color`"),
        ("dir /a 0755 0 0 extra", 1, 17, "unexpected `extra`"),
        ("dir /a 0755 0 0 mtime=yesterday", 1, 17, "not a time"),
        (
            "set /a caps=cap_fly+ep",
            1,
            8,
            "unknown capability `cap_fly`",
        ),
        ("set /a xattr=other.x=1", 1, 8, "xattr names start with"),
        ("set /a xattr=user.x=0x4", 1, 8, "not hex"),
        ("set /a xattr=user.x=0s!!", 1, 8, "not base64"),
        ("set /a xattr=user.x", 1, 8, "NAME=VALUE"),
        ("set /a", 1, 7, "at least one option"),
        ("attr /a", 1, 8, "needs readonly, hidden, system or none"),
        ("attr /a archive", 1, 9, "not a DOS attribute"),
        ("attr /a none hidden", 1, 9, "none alone"),
        ("chmod /a/[b 0755", 1, 7, "not closed"),
        ("chmod /a**b 0755", 1, 7, "whole path component"),
        ("?dir /a 0755 0 0", 1, 1, "can be optional"),
        (
            "file /a 0644 0 0 copy x",
            1,
            18,
            "expected `from` or `text`",
        ),
        ("file /a 0644 0 0 from", 1, 22, "missing host path"),
        ("file /a 0644 0 0 text \"x", 1, 23, "unterminated"),
        ("file / 0644 0 0 text x", 1, 6, "root"),
        ("symlink /a 0777 0 0 ''", 1, 21, "non-empty"),
        ("char /a 0644 0 0 1", 1, 19, "missing minor"),
        ("char /a 0644 0 0 1 99999999999", 1, 20, "out of range"),
        ("link /a /b mtime=0", 1, 12, "no options"),
        ("link / /b", 1, 6, "root"),
        ("dir /a\\q 0755 0 0", 1, 7, "unknown escape"),
        ("dir /a\\x 0755 0 0", 1, 7, "two hex digits"),
        ("  dir /a 0755 0 0 \\", 1, 19, "backslash"),
    ];
    for &(text, line, column, what) in cases {
        let got = parse_error(text);
        assert_eq!((got.0, got.1), (line, column), "{text}: {}", got.2);
        assert!(got.2.contains(what), "{text}: {}", got.2);
    }
    let err = Spec::parse("\n\ndir /a 1 2", Path::new("dir/x.spec")).unwrap_err();
    assert_eq!(err.to_string(), "dir/x.spec:3:11: missing gid");
}

#[test]
fn crlf_lines_parse() {
    let tree = applied("dir /a 0700 0 0\r\nfile /a/b 0600 0 0 text x\r\n").unwrap();
    assert_eq!(node(&tree, "/a/b").meta.perm, 0o600);
}

/// The example table of genext2fs's manual page.
const MANUAL_TABLE: &str = "\
# name\ttype mode uid gid major minor start inc count

/dev\t\td\t755\t0\t0\t-\t-\t-\t-\t-
/dev/mem\tc\t640\t0\t0\t1\t1\t0\t0\t-
/dev/tty\tc\t666\t0\t0\t5\t0\t0\t0\t-
/dev/tty\tc\t666\t0\t0\t4\t0\t0\t1\t6
/dev/loop\tb\t640\t0\t0\t7\t0\t0\t1\t2
/dev/hda\tb\t640\t0\t0\t3\t0\t0\t0\t-
/dev/hda\tb\t640\t0\t0\t3\t1\t1\t1\t16
/dev/log\ts\t666\t0\t0\t-\t-\t-\t-\t-
";

#[test]
fn device_table_of_the_genext2fs_manual() {
    let table = parse_device_table(MANUAL_TABLE, Path::new("devices.txt")).unwrap();
    let mut tree = Tree::new(meta(0o755));
    table.apply(&mut tree).unwrap();
    let dev = at(&tree, "/dev").unwrap();
    let mut names: Vec<String> = tree
        .node(dev)
        .entries()
        .map(|(n, _)| String::from_utf8(n.to_vec()).unwrap())
        .collect();
    names.sort();
    let mut expected = vec!["mem", "tty", "hda", "log", "loop0", "loop1"]
        .into_iter()
        .map(String::from)
        .chain((0..6).map(|i| format!("tty{i}")))
        .chain((1..16).map(|i| format!("hda{i}")))
        .collect::<Vec<_>>();
    expected.sort();
    assert_eq!(names, expected);
    assert_eq!(node(&tree, "/dev").meta.perm, 0o755);
    assert_eq!(node(&tree, "/dev/mem").body, Body::CharDevice(1, 1));
    assert_eq!(node(&tree, "/dev/mem").meta.perm, 0o640);
    assert_eq!(node(&tree, "/dev/tty").body, Body::CharDevice(5, 0));
    assert_eq!(node(&tree, "/dev/tty5").body, Body::CharDevice(4, 5));
    assert_eq!(node(&tree, "/dev/loop1").body, Body::BlockDevice(7, 1));
    assert_eq!(node(&tree, "/dev/hda").body, Body::BlockDevice(3, 0));
    for i in 1..16 {
        assert_eq!(
            node(&tree, &format!("/dev/hda{i}")).body,
            Body::BlockDevice(3, i)
        );
    }
    let log = node(&tree, "/dev/log");
    assert_eq!((log.body.clone(), log.meta.perm), (Body::Socket, 0o666));
}

#[test]
fn device_tables_adjust_what_exists() {
    let text =
        "/etc d 700\n/etc/shadow f 600 0 42 - - - - -\n/bin/ls l 777 77 7\n/ d 700 1 1 - - - - 4";
    let table = parse_device_table(text, Path::new("t")).unwrap();
    let mut tree = small_tree();
    table.apply(&mut tree).unwrap();
    assert_eq!(node(&tree, "/etc").meta.perm, 0o700);
    assert_eq!(node(&tree, "/etc/shadow").meta.gid, 42);
    assert_eq!(
        node(&tree, "/etc/shadow").body,
        Body::Fifo,
        "only mode and owner change"
    );
    assert_eq!(node(&tree, "/bin/ls").meta.uid, 77);
    assert_eq!(tree.node(Tree::ROOT).meta.uid, 1);

    let table = parse_device_table("/dev d 755\n/etc/missing f 600 0 0", Path::new("t")).unwrap();
    let err = table.apply(&mut small_tree()).unwrap_err().to_string();
    assert!(
        err.starts_with("t:2: `/etc/missing` does not exist"),
        "{err}"
    );
}

#[test]
fn device_table_errors() {
    let cases: &[(&str, usize, &str)] = &[
        ("/dev", 5, "missing type"),
        ("/dev x 755", 6, "unknown type `x`"),
        ("/dev d 7558", 8, "octal"),
        ("/dev d 17777", 8, "above 7777"),
        ("/dev d 755 4294967296", 12, "out of range"),
        ("/dev/x c 644 0 0 1", 19, "minor number"),
        ("/dev/x c 644 0 0 - 1", 18, "major number"),
        ("/dev/x c 644 0 0 1 1 5 1 5", 27, "empty"),
        ("/dev/x c 644 0 0 1 1 0 1 99999", 31, "at most"),
        ("/dev/x c 644 0 0 1 1 0 1 4 9", 28, "too many fields"),
        ("/dev/x c 644 0 0 1 4294967295 0 1 4", 36, "out of range"),
        ("/ c 644 0 0 1 1", 1, "root"),
        ("dev d 755", 1, "start with `/`"),
    ];
    for &(text, column, what) in cases {
        match parse_device_table(text, Path::new("t")) {
            Err(TreeError::Spec {
                line: 1,
                column: c,
                what: w,
                ..
            }) => {
                assert_eq!(c, column, "{text}: {w}");
                assert!(w.contains(what), "{text}: {w}");
            }
            other => panic!("{text}: {other:?}"),
        }
    }
}

const CONTEXTS: &str = "\
# a comment
/.*\t\t\tsystem_u:object_r:default_t:s0
/etc(/.*)?\t\tsystem_u:object_r:etc_t:s0
/etc/passwd\t\tsystem_u:object_r:passwd_file_t:s0
/etc/.*\t\tsystem_u:object_r:later_t:s0
/bin/.*\t--\tsystem_u:object_r:bin_t:s0
/bin/run\\.sh\t<<none>>
";

#[test]
fn file_contexts_label_paths() {
    let contexts = parse_file_contexts(CONTEXTS, Path::new("file_contexts")).unwrap();
    let mut tree = small_tree();
    let run = at(&tree, "/bin/run.sh").unwrap();
    tree.node_mut(run).meta.set_xattrs(
        [Xattr {
            name: b"security.selinux".to_vec(),
            value: b"kept\0".to_vec(),
        }]
        .into(),
    );
    contexts.apply(&mut tree);
    let label = |path: &str| xattr(node(&tree, path), "security.selinux").map(|v| v.to_vec());
    let expect = |t: &str| Some(format!("system_u:object_r:{t}:s0\0").into_bytes());
    assert_eq!(label("/"), expect("default_t"));
    assert_eq!(label("/etc"), expect("etc_t"));
    // An exact path beats a later regex; otherwise the last match wins.
    assert_eq!(label("/etc/passwd"), expect("passwd_file_t"));
    assert_eq!(label("/etc/shadow"), expect("later_t"));
    assert_eq!(label("/bin/sh"), expect("default_t"), "a fifo is not `--`");
    assert_eq!(label("/bin/ls"), expect("default_t"));
    assert_eq!(label("/bin/run.sh"), Some(b"kept\0".to_vec()));
}

#[test]
fn file_contexts_match_the_whole_path_like_libselinux() {
    let text = "/b.n\tx_t\n/etc|/bin\ty_t\n";
    let contexts = parse_file_contexts(text, Path::new("fc")).unwrap();
    let mut tree = small_tree();
    contexts.apply(&mut tree);
    let label = |path: &str| xattr(node(&tree, path), "security.selinux").map(|v| v.to_vec());
    assert_eq!(label("/bin"), Some(b"y_t\0".to_vec()));
    // `^/etc|/bin$`, as libselinux anchors it: /etc and everything below.
    assert_eq!(label("/etc/passwd"), Some(b"y_t\0".to_vec()));
    assert_eq!(label("/"), None);
}

#[test]
fn file_contexts_match_raw_bytes() {
    let text = "/café\tu_t\n/x.\tb_t\n/x\\xff\tbyte_t\n";
    let contexts = parse_file_contexts(text, Path::new("fc")).unwrap();
    let mut tree = applied("dir /caf\u{e9} 0755 0 0\ndir /x\\xff 0755 0 0").unwrap();
    contexts.apply(&mut tree);
    let label = |path: &[u8]| {
        let id = tree.lookup(Tree::ROOT, path).unwrap();
        xattr(tree.node(id), "security.selinux").map(|v| v.to_vec())
    };
    assert_eq!(label("café".as_bytes()), Some(b"u_t\0".to_vec()));
    // `\xff` in a regex is the byte, as in libselinux's PCRE (not in UTF
    // mode); the line has no meta characters, so it beats `/x.` (any byte).
    assert_eq!(label(b"x\xff"), Some(b"byte_t\0".to_vec()));
}

#[test]
fn file_contexts_errors() {
    let cases: &[(&str, usize, usize, &str)] = &[
        ("/a(\tx_t", 1, 1, "bad regex"),
        ("\n/a -x x_t", 2, 4, "unknown file type"),
        ("/a", 1, 1, "missing context"),
        ("/a -- x_t extra", 1, 11, "too many fields"),
    ];
    for &(text, line, column, what) in cases {
        match parse_file_contexts(text, Path::new("fc")) {
            Err(TreeError::Spec {
                line: l,
                column: c,
                what: w,
                ..
            }) => {
                assert_eq!((l, c), (line, column), "{text}: {w}");
                assert!(w.contains(what), "{text}: {w}");
            }
            other => panic!("{text}: {other:?}"),
        }
    }
}

/// The value `setcap` writes must be ours, byte for byte.
#[cfg(unix)]
#[test]
fn caps_match_setcap() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"").unwrap();
    for text in [
        "cap_net_bind_service+ep",
        "cap_chown,cap_kill=eip",
        "cap_setuid+i",
        "=ep",
        "all=p cap_chown-p",
        "cap_bpf,cap_perfmon,cap_checkpoint_restore+p",
    ] {
        let run = std::process::Command::new("setcap")
            .arg(text)
            .arg(&file)
            .output();
        match run {
            Ok(out) if out.status.success() => {}
            other => {
                let why = format!("setcap {text} failed or is missing: {other:?}");
                assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
                eprintln!("skipped: {why}");
                return;
            }
        }
        let xattrs = kiln_host::read_xattrs(&file).unwrap();
        let (_, theirs) = xattrs
            .iter()
            .find(|(name, _)| name == caps::XATTR_NAME)
            .expect("setcap wrote no security.capability");
        assert_eq!(&caps::xattr_value(text).unwrap(), theirs, "{text}");
    }
}

/// The example at the top of `docs/spec-format.md` parses and applies.
#[test]
fn the_documented_example_works() {
    let doc = include_str!("../../../../docs/spec-format.md");
    let example = doc
        .split("```text\n")
        .nth(1)
        .and_then(|block| block.split("```").next())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("build")).unwrap();
    std::fs::write(dir.path().join("build/app"), b"app").unwrap();
    let spec = Spec::parse(example, &dir.path().join("image.spec")).unwrap();
    let mut tree = applied(
        "dir /home/alice/.config 0700 0 0\n\
         file /usr/lib/x86_64/libc.so.6 0644 0 0 text x",
    )
    .unwrap();
    spec.apply(&mut tree).unwrap();
    assert_eq!(node(&tree, "/home/alice/.config").meta.uid, 1000);
    assert_eq!(node(&tree, "/usr/lib/x86_64/libc.so.6").meta.perm, 0o755);
    assert_eq!(at(&tree, "/usr/bin/sh2"), at(&tree, "/usr/bin/app"));
    let label = xattr(node(&tree, "/etc/shadow"), "security.selinux");
    assert_eq!(label, Some(&b"system_u:object_r:shadow_t:s0\0"[..]));
    assert!(at(&tree, "/run/my socket").is_some());
}
