//! Issue 4, point 8: the inputs beside directories. One tree given as a
//! directory, as tar archives (each format, each compression, stdin) and as a
//! spec file gives byte-identical images; a container tree archived by root
//! and built by user nobody keeps its owners, devices and capability; tar
//! whiteout layers; spec, device-table and file_contexts inputs; bad archives.
//!
//! GNU tar stores xattrs only in POSIX (pax) archives (`--xattrs` with
//! `--format=gnu` or `ustar` is refused) and sparse files only in GNU and pax
//! ones (`--sparse` with `ustar` is refused), so each format archives the
//! variant of the tree it can hold, and is compared with that variant as a
//! directory.

use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::bad_input::{assert_dir_holds, assert_error};
use crate::compare::{assert_no_diffs, Snapshot};
use crate::determinism::assert_identical;
use crate::fixture::{self, KIB, MIB};
use crate::helpers::*;
use crate::sys::{self, Kind};

/// `--timestamp` of the identity builds: times are stored differently by
/// each tar format (whole seconds in ustar and GNU, no atime or ctime).
pub(crate) const TIMESTAMP: &str = "1000000000";

/// Each compressor kiln reads, with the arguments that make it write to stdout.
const COMPRESSORS: [(&str, &[&str]); 4] = [
    ("gzip", &["-c", "-n"]),
    ("xz", &["-c"]),
    ("zstd", &["-c", "-q"]),
    ("bzip2", &["-c"]),
];

/// What of the tree a tar format can hold.
#[derive(Clone, Copy)]
pub(crate) struct Holds {
    pub(crate) xattrs: bool,
    pub(crate) sparse: bool,
}

pub(crate) const ALL: Holds = Holds {
    xattrs: true,
    sparse: true,
};

/// A moderate tree, made as root: files (a sparse one), directories,
/// symlinks, hard links, a FIFO, devices, owners, setuid and sticky bits and
/// (with `holds.xattrs`) xattrs of every namespace, an ACL and a capability.
pub(crate) fn tree(root: &Path, holds: Holds) {
    let p = |rel: &str| root.join(rel);
    for dir in [
        "etc",
        "usr/bin",
        "usr/lib",
        "home/user",
        "run",
        "dev",
        "tmp",
    ] {
        std::fs::create_dir_all(p(dir)).expect("mkdir");
    }
    write_file(&p("etc/hostname"), b"kiln\n");
    write_file(&p("etc/shadow"), b"root:*:19000:0:99999:7:::\n");
    sys::lchown(&p("etc/shadow"), 0, 42);
    sys::chmod(&p("etc/shadow"), 0o640);
    write_file(&p("usr/bin/tool"), &fixture::bytes(8, 100_000));
    sys::chmod(&p("usr/bin/tool"), 0o755);
    std::fs::hard_link(p("usr/bin/tool"), p("usr/bin/tool-again")).expect("link");
    write_file(&p("usr/bin/su"), b"#!/bin/sh\n");
    sys::chmod(&p("usr/bin/su"), 0o4755);
    if holds.sparse {
        let size = 2 * MIB;
        fixture::sparse(
            &p("usr/lib/sparse"),
            size,
            &[(0, 4 * KIB), (MIB, 4 * KIB), (size - 1, 1)],
        );
    }
    std::os::unix::fs::symlink("usr/bin", p("bin")).expect("symlink");
    std::os::unix::fs::symlink("x".repeat(80), p("usr/lib/slow-link")).expect("symlink");
    write_file(&p("home/user/notes"), b"notes\n");
    // A path beyond the 100 bytes of a tar name field (ustar's prefix, GNU's `L`).
    let long = p(&format!("usr/share/{}/{}", "d".repeat(70), "f".repeat(70)));
    std::fs::create_dir_all(long.parent().unwrap()).expect("mkdir");
    write_file(&long, b"long path\n");
    for rel in ["home/user/notes", "home/user"] {
        sys::lchown(&p(rel), 1000, 1000);
    }
    sys::chmod(&p("home/user"), 0o700);
    sys::mknod(&p("run/initctl"), Kind::Fifo, 0o600, 0, 0);
    sys::mknod(&p("dev/null"), Kind::CharDev, 0o666, 1, 3);
    sys::mknod(&p("dev/sda"), Kind::BlockDev, 0o660, 8, 0);
    sys::lchown(&p("dev/sda"), 0, 6);
    sys::chmod(&p("tmp"), 0o1777);
    if holds.xattrs {
        sys::set_xattr(&p("home/user/notes"), "user.note", b"two words");
        sys::set_xattr(&p("etc/hostname"), "trusted.origin", b"\0\x01binary");
        sys::set_xattr(
            &p("etc/shadow"),
            "security.selinux",
            b"system_u:object_r:shadow_t:s0\0",
        );
        sys::set_xattr(
            &p("usr/bin/tool"),
            "security.capability",
            &fixture::capability_v2_of(1 << 13),
        );
        use fixture::acl::{encode, GROUP_OBJ, MASK, OTHER, UNDEFINED_ID, USER, USER_OBJ};
        let acl = encode(&[
            (USER_OBJ, 6, UNDEFINED_ID),
            (USER, 4, 1000),
            (GROUP_OBJ, 4, UNDEFINED_ID),
            (MASK, 4, UNDEFINED_ID),
            (OTHER, 0, UNDEFINED_ID),
        ]);
        sys::set_xattr(&p("etc/hostname"), "system.posix_acl_access", &acl);
    }
}

/// `tar --format=FORMAT` of the whole of `src` (as `./`), with every option
/// of `--numeric-owner --xattrs --xattrs-include='*' --sparse` the format takes.
pub(crate) fn tar(case: &Case, src: &Path, format: &str) -> PathBuf {
    let archive = case.path(&format!("{format}.tar"));
    let mut cmd = tool("tar");
    cmd.arg(format!("--format={format}")).arg("--numeric-owner");
    if format == "posix" {
        cmd.args(["--xattrs", "--xattrs-include=*"]);
    }
    if format != "ustar" {
        cmd.arg("--sparse");
    }
    let out = run(cmd.arg("-cf").arg(&archive).arg("-C").arg(src).arg("."));
    assert_success(&out, &format!("tar --format={format}"));
    archive
}

/// `archive` compressed by each compressor that is installed (a missing one
/// is a skip, or a failure under CI).
pub(crate) fn compressed(archive: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (program, args) in COMPRESSORS {
        if !require_tool(program) {
            continue;
        }
        let target = archive.with_extension(format!("tar.{program}"));
        let status = run(tool(program)
            .args(args)
            .stdin(File::open(archive).expect("open the archive"))
            .stdout(File::create(&target).expect("create the compressed archive")));
        assert_success(&status, &format!("{program} {}", archive.display()));
        out.push(target);
    }
    out
}

/// Builds `sources` (and `extra` options) with `--timestamp` into `name`.
fn build_at_timestamp(case: &Case, sources: &[&Path], name: &str, extra: &[&str]) -> PathBuf {
    let image = case.path(name);
    let mut args = vec!["--timestamp", TIMESTAMP];
    args.extend_from_slice(extra);
    case.build(sources, &image, &args);
    image
}

/// Builds each input alone and asserts its image is `reference`, byte for byte.
fn assert_same_images(case: &Case, reference: &Path, inputs: &[PathBuf]) {
    for (i, input) in inputs.iter().enumerate() {
        let image = build_at_timestamp(case, &[input], &format!("input{i}.img"), &[]);
        let what = format!("the image of {} and of the directory", input.display());
        assert_identical(reference, &image, case.block_size, &what);
    }
}

/// A spec word: the bytes in double quotes, all but plain path bytes as `\xHH`.
fn quoted(bytes: &[u8]) -> String {
    let mut s = String::from("\"");
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"/._-+".contains(&b) {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s.push('"');
    s
}

/// A spec file describing the snapshot of `src`: one line per entry, file
/// data `from` the source, a `link` line for every further name of an inode.
pub(crate) fn spec_of(snap: &Snapshot, src: &Path) -> String {
    let mut first_names = std::collections::HashMap::new();
    let mut text = String::from("# The tree, by hand.\n");
    for (key, node) in &snap.entries {
        let path: Vec<u8> = key
            .iter()
            .flat_map(|c| [&b"/"[..], c])
            .flatten()
            .copied()
            .collect();
        let path = if path.is_empty() { b"/".to_vec() } else { path };
        let m = &node.meta;
        if m.kind != Kind::Dir {
            if let Some(first) = first_names.get(&m.ino) {
                text += &format!("link {} {first}\n", quoted(&path));
                continue;
            }
            first_names.insert(m.ino, quoted(&path));
        }
        let kind = match m.kind {
            Kind::Dir => "dir",
            Kind::File => "file",
            Kind::Symlink => "symlink",
            Kind::CharDev => "char",
            Kind::BlockDev => "block",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
        };
        text += &format!(
            "{kind} {} {:04o} {} {}",
            quoted(&path),
            m.perm,
            m.uid,
            m.gid
        );
        match m.kind {
            Kind::File => {
                let host = src.join(std::ffi::OsStr::from_bytes(&path[1..]));
                text += &format!(" from {}", quoted(host.as_os_str().as_bytes()));
            }
            Kind::Symlink => text += &format!(" {}", quoted(node.target.as_deref().unwrap())),
            Kind::CharDev | Kind::BlockDev => text += &format!(" {} {}", m.rdev.0, m.rdev.1),
            _ => {}
        }
        for (name, value) in &node.xattrs {
            let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
            let name = String::from_utf8(name.clone()).expect("an ASCII xattr name");
            text += &format!(" xattr={name}=0x{hex}");
        }
        text.push('\n');
    }
    text
}

/// Compares the mounted image with the snapshot in everything but times
/// (the time policy replaced them), and checks that policy on the root.
pub(crate) fn assert_matches_but_times(snap: &Snapshot, mount: &Path) {
    let diffs: Vec<_> = snap
        .compare_image(mount, 4096)
        .into_iter()
        .filter(|d| !matches!(d.what.as_str(), "atime" | "mtime" | "ctime"))
        .collect();
    assert_no_diffs(&format!("the sources and {}", mount.display()), &diffs);
    let root = sys::lstat(mount).expect("lstat the root");
    assert_eq!(root.mtime.secs.to_string(), TIMESTAMP, "--timestamp on /");
}

/// Makes the tree variant `holds` as a directory and as a FORMAT archive,
/// plain and in each compression, and asserts that the archives give the
/// directory's image. Returns the case, the directory and its image (`None`
/// after a skip).
fn archives_give_the_directory_image(
    format: &str,
    holds: Holds,
) -> Option<(Case, PathBuf, PathBuf)> {
    if !(require_root() && require_tool("tar")) {
        return None;
    }
    let case = Case::new("ext4", 4096);
    let src = case.mkdir("src");
    tree(&src, holds);
    let reference = build_at_timestamp(&case, &[&src], "directory.img", &[]);
    let archive = tar(&case, &src, format);
    let mut inputs = vec![archive.clone()];
    inputs.extend(compressed(&archive));
    assert_same_images(&case, &reference, &inputs);
    Some((case, src, reference))
}

/// 1: the directory, the pax archive with xattrs and holes, plain and in each
/// compression, and a spec file of the same tree give the same bytes; the
/// image is clean and the kernel sees the tree.
#[test]
fn posix_tar_and_spec_give_the_directory_image() {
    if !require_mount() {
        return;
    }
    let Some((case, src, reference)) = archives_give_the_directory_image("posix", ALL) else {
        return;
    };
    let snap = Snapshot::take(&[&src]);

    let spec = case.path("tree.spec");
    write_file(&spec, spec_of(&snap, &src).as_bytes());
    let spec_arg = spec.to_str().expect("a UTF-8 temporary path");
    let from_spec = build_at_timestamp(&case, &[], "spec.img", &["--spec", spec_arg]);
    assert_identical(
        &reference,
        &from_spec,
        4096,
        "the images of the spec and the directory",
    );

    e2fsck_clean(&reference);
    let mount = Mount::ro(&case.path("input0.img"), "ext4");
    assert_matches_but_times(&snap, mount.path());
}

/// 1: GNU archives hold holes but no xattrs.
#[test]
fn gnu_tar_gives_the_directory_image() {
    let holds = Holds {
        xattrs: false,
        sparse: true,
    };
    archives_give_the_directory_image("gnu", holds);
}

/// 1: ustar archives hold neither xattrs nor holes.
#[test]
fn ustar_gives_the_directory_image() {
    let holds = Holds {
        xattrs: false,
        sparse: false,
    };
    archives_give_the_directory_image("ustar", holds);
}

/// 8: `kiln build -` reads the archive (plain, and gzip-compressed) from
/// stdin, its data spooled, and gives the image of the plain archive file,
/// whose data (a sparse file's too) are read in place (issue 17, point 8).
#[test]
fn tar_on_stdin_gives_the_image_of_the_file() {
    if !(require_tool("tar") && require_tool("gzip")) {
        return;
    }
    let case = Case::new("ext4", 4096);
    let src = case.mkdir("src");
    fixture::small(&src);
    let pieces = [(0, 4 * KIB), (MIB + 5, 4 * KIB), (2 * MIB - 1, 1)];
    fixture::sparse(&src.join("usr/sparse"), 2 * MIB, &pieces);
    let archive = tar(&case, &src, "posix");
    let gz = compressed(&archive).remove(0);
    let from_file = build_at_timestamp(&case, &[&archive], "file.img", &[]);
    for (i, input) in [archive, gz].iter().enumerate() {
        let image = case.path(&format!("stdin{i}.img"));
        let out = run(case
            .build_command(&[Path::new("-")], &image)
            .args(["--timestamp", TIMESTAMP])
            .stdin(File::open(input).expect("open the archive")));
        assert_success(&out, &format!("kiln build - < {}", input.display()));
        assert_identical(
            &from_file,
            &image,
            4096,
            "the images of stdin and of the file",
        );
    }
}

/// 2: a container tree archived by root (devices, setuid binaries, a file
/// capability), built by user nobody: the kernel sees root's tree.
#[test]
fn root_archive_built_by_nobody_keeps_owners_devices_and_caps() {
    if !(require_mount() && require_tool("tar") && require_tool("setpriv")) {
        return;
    }
    let case = Case::new("ext4", 4096);
    let src = case.mkdir("rootfs");
    for dir in ["dev", "usr/bin", "home/user"] {
        std::fs::create_dir_all(src.join(dir)).expect("mkdir");
    }
    sys::mknod(&src.join("dev/null"), Kind::CharDev, 0o666, 1, 3);
    sys::mknod(&src.join("dev/sda"), Kind::BlockDev, 0o660, 8, 0);
    for name in ["su", "mount", "ping"] {
        let bin = src.join("usr/bin").join(name);
        write_file(&bin, &fixture::bytes(name.len() as u64, 3000));
        let perm = if name == "ping" { 0o755 } else { 0o4755 };
        sys::chmod(&bin, perm);
    }
    sys::lchown(&src.join("home/user"), 1000, 1000);
    let ping = src.join("usr/bin/ping");
    let cap = fixture::capability_v2_of(1 << 13);
    if tool_path("setcap").is_some() {
        assert_success(
            &run(tool("setcap").arg("cap_net_raw+ep").arg(&ping)),
            "setcap",
        );
    } else {
        sys::set_xattr(&ping, "security.capability", &cap);
    }
    assert_eq!(
        sys::get_xattr(&ping, "security.capability"),
        Some(cap.clone())
    );
    let snap = Snapshot::take(&[&src]);
    let archive = tar(&case, &src, "posix");
    sys::chmod(&archive, 0o644);

    let args = ["--timestamp", TIMESTAMP];
    let Some((out, image)) = kiln_build_as_nobody(&case, &archive, &args) else {
        return;
    };
    assert_success(&out, "kiln build of root's archive as nobody");
    e2fsck_clean(&image);
    let mount = Mount::ro(&image, "ext4");
    let m = |rel: &str| sys::lstat(&mount.path().join(rel)).expect("lstat");
    let seen = |rel: &str| {
        let s = m(rel);
        (s.kind, s.perm, s.uid, s.gid, s.rdev)
    };
    assert_eq!(seen("dev/null"), (Kind::CharDev, 0o666, 0, 0, (1, 3)));
    assert_eq!(seen("dev/sda"), (Kind::BlockDev, 0o660, 0, 0, (8, 0)));
    assert_eq!(seen("usr/bin/su"), (Kind::File, 0o4755, 0, 0, (0, 0)));
    assert_eq!(seen("usr/bin/mount"), (Kind::File, 0o4755, 0, 0, (0, 0)));
    assert_eq!((m("home/user").uid, m("home/user").gid), (1000, 1000));
    let ping = mount.path().join("usr/bin/ping");
    assert_eq!(sys::get_xattr(&ping, "security.capability"), Some(cap));
    if tool_path("getcap").is_some() {
        let out = run(tool("getcap").arg(&ping));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("cap_net_raw=ep"),
            "getcap: {}",
            describe(&out)
        );
    }
    assert_matches_but_times(&snap, mount.path());
}

/// 3: an OCI-style layer as a tar archive, with whiteouts, over a directory.
#[test]
fn whiteouts_in_a_tar_layer_over_a_directory() {
    if !(require_mount() && require_tool("tar")) {
        return;
    }
    let case = Case::new("ext4", 4096);
    let base = case.mkdir("base");
    for rel in [
        "usr/lib/libold.so",
        "usr/lib/libkept.so",
        "opt/app/a",
        "opt/app/b",
    ] {
        let path = base.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).expect("mkdir");
        write_file(&path, rel.as_bytes());
    }
    std::fs::create_dir_all(base.join("srv/data/deep")).expect("mkdir");
    write_file(&base.join("srv/data/deep/file"), b"deep");
    let layer = case.mkdir("layer");
    std::fs::create_dir_all(layer.join("usr/lib")).expect("mkdir");
    std::fs::create_dir_all(layer.join("opt/app")).expect("mkdir");
    std::fs::create_dir_all(layer.join("srv")).expect("mkdir");
    for rel in [
        "usr/lib/.wh.libold.so",
        "opt/app/.wh..wh..opq",
        "srv/.wh.data",
    ] {
        write_file(&layer.join(rel), b"");
    }
    write_file(&layer.join("opt/app/c"), b"from the layer");
    let archive = tar(&case, &layer, "posix");

    let image = case.path("layered.img");
    case.build(&[&base, &archive], &image, &["--whiteouts"]);
    e2fsck_clean(&image);
    let mount = Mount::ro(&image, "ext4");
    let m = mount.path();
    assert_eq!(list_dir(&m.join("usr/lib")), ["libkept.so"]);
    assert_eq!(list_dir(&m.join("opt/app")), ["c"]);
    assert_eq!(read_file(&m.join("opt/app/c")), b"from the layer");
    assert!(
        list_dir(&m.join("srv")).is_empty(),
        "srv/data was whited out"
    );
}

/// 4: a line that does not parse, a rule matching nothing (unless `?`), and a
/// hard link to a missing path are errors naming the place; nothing written.
#[test]
fn spec_errors_name_the_line_and_write_nothing() {
    let case = Case::new("ext4", 4096);
    let loc = |name: &str, place: &str| format!("{}:{place}", case.path(name).display());
    let bad = [
        (
            "mode.spec",
            "dir /a 0755 0 0\ndir /b 0999 0 0\n",
            "2:8",
            "0999",
        ),
        ("kind.spec", "dir /a 0755 0 0\n\n  frob /b\n", "3:3", "frob"),
        (
            "quote.spec",
            "file /a 0644 0 0 text \"abc\n",
            "1:23",
            "quote",
        ),
        (
            "match.spec",
            "dir /a 0755 0 0\nchmod /a/** 0700\nchmod /nothing/** 0644\n",
            "3",
            "/nothing/**",
        ),
        (
            "link.spec",
            "file /a/f 0644 0 0 text ''\nlink /a/l /a/missing\n",
            "2",
            "/a/missing",
        ),
    ];
    for (name, text, place, word) in bad {
        let (out, out_dir) = case.build_spec(name, text);
        assert_error(&out, &[&loc(name, place), word], name);
        assert_dir_holds(&out_dir, &[], name);
    }
    let (out, out_dir) =
        case.build_spec("maybe.spec", "dir /a 0755 0 0\n?chmod /nothing/** 0644\n");
    assert_success(&out, "a `?chmod` matching nothing");
    assert_dir_holds(&out_dir, &["image.img"], "?chmod");
}

/// 5: the device table of genext2fs's manual page.
#[test]
fn genext2fs_manual_device_table() {
    if !require_mount() {
        return;
    }
    let case = Case::new("ext4", 4096);
    let table = case.path("device_table.txt");
    write_file(
        &table,
        b"# name\ttype mode uid gid major minor start inc count\n\n\
          /dev\t\td\t755\t0\t0\t-\t-\t-\t-\t-\n\
          /dev/mem\tc\t640\t0\t0\t1\t1\t0\t0\t-\n\
          /dev/tty\tc\t666\t0\t0\t5\t0\t0\t0\t-\n\
          /dev/tty\tc\t666\t0\t0\t4\t0\t0\t1\t6\n\
          /dev/loop\tb\t640\t0\t0\t7\t0\t0\t1\t2\n\
          /dev/hda\tb\t640\t0\t0\t3\t0\t0\t0\t-\n\
          /dev/hda\tb\t640\t0\t0\t3\t1\t1\t1\t16\n\
          /dev/log\ts\t666\t0\t0\t-\t-\t-\t-\t-\n",
    );
    let image = case.path("dev.img");
    case.build(&[], &image, &["--device-table", table.to_str().unwrap()]);
    e2fsck_clean(&image);
    // "creates /dev/mem, /dev/tty, /dev/tty[0-5], /dev/loop[0-1], /dev/hda,
    // /dev/hda1 to /dev/hda15 and /dev/log".
    let mut expected = vec![
        ("mem".to_string(), Kind::CharDev, 0o640, (1, 1)),
        ("tty".to_string(), Kind::CharDev, 0o666, (5, 0)),
        ("hda".to_string(), Kind::BlockDev, 0o640, (3, 0)),
        ("log".to_string(), Kind::Socket, 0o666, (0, 0)),
    ];
    expected.extend((0..6).map(|i| (format!("tty{i}"), Kind::CharDev, 0o666, (4, i))));
    expected.extend((0..2).map(|i| (format!("loop{i}"), Kind::BlockDev, 0o640, (7, i))));
    expected.extend((1..16).map(|i| (format!("hda{i}"), Kind::BlockDev, 0o640, (3, i))));
    expected.sort();
    let mount = Mount::ro(&image, "ext4");
    let dev = mount.path().join("dev");
    let got: Vec<_> = list_dir(&dev)
        .into_iter()
        .map(|name| {
            let s = sys::lstat(&dev.join(&name)).expect("lstat");
            assert_eq!((s.uid, s.gid), (0, 0), "/dev/{name} owner");
            (name, s.kind, s.perm, s.rdev)
        })
        .collect();
    assert_eq!(got, expected);
    let d = sys::lstat(&dev).expect("lstat /dev");
    assert_eq!((d.kind, d.perm), (Kind::Dir, 0o755));
}

/// 6: file_contexts labels the matching entries (last match wins, exact
/// paths last, types limit lines, `<<none>>` leaves the label).
#[test]
fn file_contexts_label_the_matching_entries() {
    if !require_mount() {
        return;
    }
    let case = Case::new("ext4", 4096);
    let src = case.mkdir("src");
    for dir in ["etc/ssh", "tmp/cache", "usr/bin"] {
        std::fs::create_dir_all(src.join(dir)).expect("mkdir");
    }
    for file in [
        "etc/passwd",
        "etc/shadow",
        "etc/ssh/sshd_config",
        "tmp/cache/x",
        "usr/bin/ls",
    ] {
        write_file(&src.join(file), b"x");
    }
    sys::set_xattr(&src.join("tmp/cache/x"), "security.selinux", b"kept_t\0");
    let contexts = case.path("file_contexts");
    write_file(
        &contexts,
        b"# comment\n\
          /etc/shadow  --   system_u:object_r:shadow_t:s0\n\
          /.*               system_u:object_r:default_t:s0\n\
          /etc(/.*)?        system_u:object_r:etc_t:s0\n\
          /etc/ssh    -d    system_u:object_r:ssh_dir_t:s0\n\
          /usr/bin/.* --    system_u:object_r:bin_t:s0\n\
          /tmp/.*           <<none>>\n",
    );
    let image = case.path("labels.img");
    case.build(
        &[&src],
        &image,
        &["--file-contexts", contexts.to_str().unwrap()],
    );
    e2fsck_clean(&image);
    let mount = Mount::ro(&image, "ext4");
    let label = |rel: &str| -> Option<String> {
        let path = mount.path().join(rel);
        let value = sys::get_xattr(&path, "security.selinux").or_else(|| {
            // A kernel may hide the label (an SELinux host with another policy): ask debugfs.
            let text = debugfs(&image, &format!("ea_list \"/{rel}\""));
            let line = text
                .lines()
                .find(|l| l.trim_start().starts_with("security.selinux"))?;
            let quoted = &line[line.find('"')? + 1..line.rfind('"')?];
            Some(quoted.replace("\\000", "\0").into_bytes())
        })?;
        Some(String::from_utf8(value).expect("a text label"))
    };
    let expect = [
        ("", Some("default_t")),
        ("etc", Some("etc_t")),
        ("etc/passwd", Some("etc_t")),
        ("etc/shadow", Some("shadow_t")),
        ("etc/ssh", Some("ssh_dir_t")),
        ("etc/ssh/sshd_config", Some("etc_t")),
        ("usr/bin", Some("default_t")),
        ("usr/bin/ls", Some("bin_t")),
        ("tmp", Some("default_t")),
        ("tmp/cache", None),
    ];
    for (rel, t) in expect {
        let want = t.map(|t| format!("system_u:object_r:{t}:s0\0"));
        assert_eq!(label(rel), want, "security.selinux of /{rel}");
    }
    assert_eq!(
        label("tmp/cache/x").as_deref(),
        Some("kept_t\0"),
        "<<none>> keeps a label"
    );
}

/// 7: an archive with a `../` member and a truncated one are refused, naming
/// the archive and the member; nothing is written.
#[test]
fn escaping_and_truncated_archives_are_refused() {
    if !require_tool("tar") {
        return;
    }
    let case = Case::new("ext4", 4096);
    let inner = case.mkdir("inner");
    write_file(&case.path("escape"), b"outside\n");
    let escaping = case.path("escaping.tar");
    // -P keeps the `../` in the member name.
    let out = run(tool("tar")
        .current_dir(&inner)
        .arg("-cPf")
        .arg(&escaping)
        .arg("../escape"));
    assert_success(&out, "tar -P ../escape");

    let src = case.mkdir("src");
    write_file(&src.join("big"), &fixture::bytes(9, 100_000));
    let whole = tar(&case, &src, "ustar");
    // Headers of `./` and `./big`, then 5000 of big's 100000 bytes.
    let truncated = case.path("truncated.tar");
    write_file(&truncated, &read_file(&whole)[..2 * 512 + 5000]);

    for (archive, names) in [
        (&escaping, ["escaping.tar", "../escape"]),
        (&truncated, ["truncated.tar", "./big"]),
    ] {
        let out_dir = case.mkdir("out");
        let out = run(&mut case.build_command(&[archive], &out_dir.join("image.img")));
        assert_error(&out, &names, &archive.display().to_string());
        assert_dir_holds(&out_dir, &[], &archive.display().to_string());
    }
}

/// The entries of `image` as `kiln ls -R` lists them, without lost+found.
fn image_entries(image: &Path) -> Vec<String> {
    let out = kiln(["ls".as_ref(), "-R".as_ref(), image.as_os_str()]);
    assert_success(&out, &format!("kiln ls -R {}", image.display()));
    let mut entries: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| !line.starts_with("lost+found"))
        .map(str::to_owned)
        .collect();
    entries.sort();
    entries
}

/// The members of `archive` as `tar -tf` (with `flags`) lists them, as
/// paths below the root.
fn tar_members(archive: &Path, flags: &str) -> Vec<String> {
    let out = run(tool("tar").arg(flags).arg(archive));
    assert_success(&out, &format!("tar {flags} {}", archive.display()));
    let mut members: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|m| m.trim_start_matches("./").trim_end_matches('/').to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    members.sort();
    members.dedup();
    members
}

/// Issue 16, point 5: `cat a.tar b.tar` is refused, naming where the data
/// after the first end-of-archive marker starts; with `--ignore-zeros` it
/// gives both archives' members, as `tar -tif` lists them. Zero padding
/// after the marker is fine, and an archive of zero blocks only (`tar -cf
/// e.tar -T /dev/null`) is an empty source.
#[test]
fn concatenated_archives_need_ignore_zeros() {
    if !require_tool("tar") {
        return;
    }
    let case = Case::new("ext4", 4096);
    let archive = |name: &str, files: &[&str]| {
        let dir = case.mkdir(name);
        for file in files {
            write_file(&dir.join(file), file.as_bytes());
        }
        let tar = case.path(&format!("{name}.tar"));
        let out = run(tool("tar")
            .arg("-cf")
            .arg(&tar)
            .arg("-C")
            .arg(&dir)
            .arg("."));
        assert_success(&out, "tar -cf");
        tar
    };
    let first = archive("first", &["a", "b"]);
    let second = archive("second", &["c"]);
    let both = case.path("both.tar");
    let first_len = read_file(&first).len();
    write_file(&both, &[read_file(&first), read_file(&second)].concat());

    let out_dir = case.mkdir("both.out");
    let out = run(&mut case.build_command(&[&both], &out_dir.join("both.img")));
    let at = format!("both.tar: at byte {first_len}: data after the end-of-archive marker");
    assert_error(&out, &[&at, "--ignore-zeros"], "cat a.tar b.tar");
    assert_dir_holds(&out_dir, &[], "cat a.tar b.tar");

    let image = case.path("both.img");
    case.build(&[&both], &image, &["--ignore-zeros"]);
    let members = tar_members(&both, "-tif");
    assert_eq!(members, ["a", "b", "c"], "tar -tif");
    assert_eq!(image_entries(&image), members, "the image of both archives");

    let padded = case.path("padded.tar");
    write_file(&padded, &[read_file(&first), vec![0; 100_000]].concat());
    let image = case.path("padded.img");
    case.build(&[&padded], &image, &[]);
    assert_eq!(image_entries(&image), ["a", "b"], "a padded archive");

    let empty = case.path("empty.tar");
    let out = run(tool("tar").arg("-cf").arg(&empty).args(["-T", "/dev/null"]));
    assert_success(&out, "tar -cf empty.tar -T /dev/null");
    let image = case.path("empty.img");
    case.build(&[&empty, &case.path("second")], &image, &[]);
    assert_eq!(
        image_entries(&image),
        ["c"],
        "an empty archive and a directory"
    );
}
