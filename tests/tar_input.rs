//! Issue 17, points 7 and 8: tar archives as the tars extract them, read
//! where they are. ACLs archived by GNU tar or bsdtar give the modes and
//! ACLs both tars extract: the group bits of the mode are the ACL's mask,
//! which bsdtar's header does not hold (it writes the `group::` entry
//! there). A plain archive file is read in place, with no copy of its data
//! in `$TMPDIR`, and gives the image that the same archive gives on stdin
//! or compressed (those are spooled).

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::determinism::assert_identical;
use crate::fixture::{self, MIB};
use crate::helpers::*;
use crate::inputs::{compressed, tar, TIMESTAMP};
use crate::sys;

/// The entries of the ACL tree: name, directory or not, the mode set before
/// the ACLs, and the `setfacl` calls (arguments before the path).
const ACL_TREE: &[(&str, bool, u16, &[&[&str]])] = &[
    // The case: 755 before, the named user makes the mask rwx, so
    // the mode is 775 while `group::` stays r-x.
    ("dir-775", true, 0o755, &[&["-m", "u:1234:rwx"]]),
    // The mask narrower than `group::` (rw-): mode 640, the user's rwx
    // effective r--.
    ("file-640", false, 0o660, &[&["-m", "u:1234:rwx,m::r--"]]),
    // An access ACL (mask rwx) and a default ACL with another mask (r--):
    // the default's mask must not give the mode its group bits.
    (
        "dir-both",
        true,
        0o700,
        &[&["-m", "u:1234:rwx"], &["-d", "-m", "u:1234:r--,m::r--"]],
    ),
    // A default ACL alone: the mode stays the header's.
    (
        "dir-default",
        true,
        0o751,
        &[&["-d", "-m", "u:1234:rwx,m::rw-"]],
    ),
    ("plain", false, 0o644, &[]),
];

/// Runs `setfacl ARGS PATH`.
fn setfacl(args: &[&str], path: &Path) {
    let out = run(tool("setfacl").args(args).arg(path));
    assert_success(&out, &format!("setfacl {args:?} {}", path.display()));
}

/// Makes the ACL tree in `root`.
fn acl_tree(root: &Path) {
    for &(name, dir, mode, calls) in ACL_TREE {
        let path = root.join(name);
        if dir {
            std::fs::create_dir(&path).expect("mkdir");
        } else {
            write_file(&path, b"data\n");
        }
        sys::chmod(&path, mode);
        for args in calls {
            setfacl(args, &path);
        }
    }
}

/// What each entry of the ACL tree under `root` is: its mode as `stat -c %a`
/// shows it and its ACLs as `getfacl -n` prints them.
fn acl_view(root: &Path) -> Vec<String> {
    ACL_TREE
        .iter()
        .map(|&(name, ..)| {
            let path = root.join(name);
            let mode = std::fs::symlink_metadata(&path)
                .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
                .permissions()
                .mode();
            let acl = run(tool("getfacl").args(["-n", "-c"]).arg(&path));
            assert_success(&acl, &format!("getfacl {}", path.display()));
            let acl = String::from_utf8_lossy(&acl.stdout).into_owned();
            format!("{name} {:o}\n{acl}", mode & 0o7777)
        })
        .collect()
}

/// Runs `PROGRAM ARGS` (a tar, creating or extracting), asserting success.
fn tar_run(program: &str, args: &[&str], archive: &Path, dir: &Path) {
    let out = run(tool(program)
        .args(args)
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .arg("."));
    assert_success(&out, &format!("{program} {args:?} {}", archive.display()));
}

/// Extracts `archive` with `program` (`tar` or `bsdtar`, ACLs and modes
/// kept) into a new directory `dir`.
fn extract(program: &str, archive: &Path, dir: &Path) {
    std::fs::create_dir(dir).expect("mkdir");
    let out = run(tool(program)
        .args(["--acls", "-xpf"])
        .arg(archive)
        .arg("-C")
        .arg(dir));
    assert_success(&out, &format!("{program} -x {}", archive.display()));
}

/// The archives of `src`: bsdtar's `--acls`, GNU tar's `--acls` (ACLs as
/// text) and GNU tar's `--acls --xattrs` (also as binary xattrs).
fn acl_archives(case: &Case, src: &Path) -> Vec<PathBuf> {
    let makers: [(&str, &[&str]); 3] = [
        ("bsdtar", &["--acls", "-cf"]),
        ("tar", &["--format=posix", "--acls", "-cf"]),
        (
            "tar",
            &[
                "--format=posix",
                "--acls",
                "--xattrs",
                "--xattrs-include=*",
                "-cf",
            ],
        ),
    ];
    makers
        .iter()
        .enumerate()
        .map(|(i, &(program, args))| {
            let archive = case.path(&format!("{program}-{i}.tar"));
            tar_run(program, args, &archive, src);
            archive
        })
        .collect()
}

/// 7: archives of bsdtar and GNU tar give the modes and ACLs that both tars
/// extract, as debugfs and the kernel see them in the image.
#[test]
fn acl_archives_give_what_both_tars_extract() {
    if !(require_mount()
        && require_tool("tar")
        && require_tool("bsdtar")
        && require_tool("setfacl")
        && require_tool("getfacl"))
    {
        return;
    }
    let case = Case::new("ext4", 4096);
    let src = case.mkdir("src");
    acl_tree(&src);
    let want = acl_view(&src);
    for (i, archive) in acl_archives(&case, &src).iter().enumerate() {
        for program in ["tar", "bsdtar"] {
            let dir = case.path(&format!("x{i}-{program}"));
            extract(program, archive, &dir);
            eqnice!(
                want.concat(),
                acl_view(&dir).concat(),
                "{program} -x {}",
                archive.display()
            );
        }
        let image = case.path(&format!("acl{i}.img"));
        case.build(&[archive], &image, &[]);
        e2fsck_clean(&image);
        for (&(name, ..), view) in ACL_TREE.iter().zip(&want) {
            let stat = DebugfsStat::parse(&debugfs_stat(&image, &format!("/{name}")));
            let shown = format!("{name} {:o}", stat.perm);
            assert!(
                view.starts_with(&format!("{shown}\n")),
                "debugfs of {} shows {shown}, the tars extract {view}",
                archive.display()
            );
        }
        let mount = Mount::ro(&image, "ext4");
        eqnice!(
            want.concat(),
            acl_view(mount.path()).concat(),
            "the kernel on {}",
            image.display()
        );
    }
}

/// A tree of 10 MiB of data, 4 MiB of them in a sparse file of 64 MiB.
fn large_tree(root: &Path) {
    for i in 0..3 {
        let data = fixture::bytes(i, 2 * MIB as usize);
        write_file(&root.join(format!("big{i}")), &data);
    }
    let pieces = [(0, 2 * MIB), (32 * MIB + 5, 2 * MIB), (64 * MIB - 1, 1)];
    fixture::sparse(&root.join("sparse"), 64 * MIB, &pieces);
}

/// Builds `input` (`-` with `stdin` as standard input) with `--timestamp`
/// and `TMPDIR` set to
/// `tmpdir`, into `image`; asserts success.
fn build_with_tmpdir(case: &Case, input: &Path, stdin: Option<&Path>, tmpdir: &Path, image: &Path) {
    let mut cmd = case.build_command(&[input], image);
    cmd.args(["--timestamp", TIMESTAMP]).env("TMPDIR", tmpdir);
    if let Some(stdin) = stdin {
        cmd.stdin(File::open(stdin).expect("open the archive"));
    }
    let out = run(&mut cmd);
    assert_success(
        &out,
        &format!(
            "kiln build {} (TMPDIR={})",
            input.display(),
            tmpdir.display()
        ),
    );
}

/// 8: a plain archive of 10 MiB of data (sparse members too) builds and
/// verifies with `TMPDIR` on a 1 MiB tmpfs, leaving nothing there; the
/// kernel reads the source's bytes, and the archive on stdin or compressed
/// (spooled to the ordinary temporary directory) gives the same image.
#[test]
fn plain_archive_is_read_in_place_not_spooled() {
    if !(require_mount() && require_tool("tar")) {
        return;
    }
    let case = Case::new("ext4", 4096);
    let src = case.mkdir("src");
    large_tree(&src);
    let archive = tar(&case, &src, "posix");
    let small_tmp = case.mkdir("tmp");
    let tmpfs = Mount::tmpfs(&small_tmp);
    let image = case.path("in-place.img");
    build_with_tmpdir(&case, &archive, None, &small_tmp, &image);
    let verify = run(kiln_command()
        .arg("verify")
        .arg(&image)
        .arg("--against")
        .arg(&archive)
        .args(["--timestamp", TIMESTAMP])
        .env("TMPDIR", &small_tmp));
    assert_success(&verify, "kiln verify with TMPDIR on a 1 MiB tmpfs");
    assert!(
        list_dir(&small_tmp).is_empty(),
        "left in TMPDIR: {:?}",
        list_dir(&small_tmp)
    );
    tmpfs.unmount();
    e2fsck_clean(&image);
    let mount = Mount::ro(&image, "ext4");
    for name in list_dir(&src) {
        let (want, got) = (
            read_file(&src.join(&name)),
            read_file(&mount.path().join(&name)),
        );
        assert!(
            want == got,
            "{name}: the image's content differs from the source's"
        );
    }
    drop(mount);

    let tmp = std::env::temp_dir();
    let stdin = case.path("stdin.img");
    build_with_tmpdir(&case, Path::new("-"), Some(&archive), &tmp, &stdin);
    assert_identical(
        &image,
        &stdin,
        4096,
        "the images of the archive in place and on stdin",
    );
    for (i, packed) in compressed(&archive).iter().enumerate() {
        let spooled = case.path(&format!("compressed{i}.img"));
        build_with_tmpdir(&case, packed, None, &tmp, &spooled);
        let what = format!(
            "the images of the archive in place and {}",
            packed.display()
        );
        assert_identical(&image, &spooled, 4096, &what);
    }
}
