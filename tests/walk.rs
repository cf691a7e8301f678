//! Issue 17, point 2: `--exclude` prunes the directory walk (an excluded
//! entry is never stat'ed, opened or listed), and whether the output is
//! inside a source is the walk's to tell (an output on another filesystem,
//! or in an excluded directory, is fine). Point 8: the output is checked
//! before any source is read.
//! <https://kiln.invalid/issues/17>

use std::path::{Path, PathBuf};

use crate::bad_input::{assert_dir_holds, assert_error};
use crate::helpers::*;
use crate::sys;

/// Every path in `image` below the root (but lost+found), sorted, as
/// debugfs lists them.
fn image_tree(image: &Path) -> Vec<String> {
    let mut paths = Vec::new();
    let mut dirs = vec![String::new()];
    while let Some(dir) = dirs.pop() {
        let listing = debugfs(image, &format!("ls -p \"{}/\"", dir));
        // Lines are `/INODE/MODE/UID/GID/NAME/SIZE/`.
        for line in listing.lines() {
            let fields: Vec<&str> = line.split('/').collect();
            let [_, _, mode, _, _, name, ..] = fields[..] else {
                continue;
            };
            if matches!(name, "." | ".." | "lost+found") {
                continue;
            }
            let path = format!("{dir}/{name}");
            if mode.starts_with("040") {
                dirs.push(path.clone());
            }
            paths.push(path);
        }
    }
    paths.sort();
    paths
}

/// Asserts that `image` is e2fsck clean and holds exactly `expected`.
fn assert_image_holds(image: &Path, expected: &[&str]) {
    e2fsck_clean(image);
    eqnice!(
        expected.join("\n"),
        image_tree(image).join("\n"),
        "the paths in {}",
        image.display()
    );
}

/// A source for the exclusion tests, `src` in `case`: `/keep/a`, and an
/// excluded part under `/tmp` that `spoil` makes unreadable.
fn source_with_spoiled_tmp(case: &Case, spoil: impl FnOnce(&Path)) -> PathBuf {
    let src = case.mkdir("src");
    case.mkdir("src/keep");
    write_file(&src.join("keep/a"), b"kept\n");
    let tmp = case.mkdir("src/tmp");
    spoil(&tmp);
    src
}

/// Builds `src` as nobody with `--exclude /tmp/*` and asserts the image is
/// clean and holds the kept tree, with an empty `/tmp`.
fn assert_builds_without_tmp(case: &Case, src: &Path) {
    let Some((out, image)) = kiln_build_as_nobody(case, src, &["--exclude", "/tmp/*"]) else {
        return;
    };
    assert_success(&out, "a build whose unreadable part is excluded");
    assert_image_holds(&image, &["/keep", "/keep/a", "/tmp"]);
}

fn require_nobody_and_judges() -> bool {
    require_root() && require_tool("setpriv") && require_tool("e2fsck") && require_tool("debugfs")
}

/// An unreadable directory (mode 0000, kiln runs as nobody) under an
/// excluded path is never opened: the build used to stop at it with
/// "Permission denied".
#[test]
fn excluded_unreadable_directory_is_not_opened() {
    let case = Case::new("ext4", 4096);
    if !require_nobody_and_judges() {
        return;
    }
    let src = source_with_spoiled_tmp(&case, |tmp| {
        let locked = tmp.join("locked");
        std::fs::create_dir(&locked).expect("mkdir");
        write_file(&locked.join("secret"), b"secret\n");
        sys::chmod(&locked, 0o000);
    });
    assert_builds_without_tmp(&case, &src);
}

/// Entries under an excluded path that cannot be stat'ed are never
/// stat'ed: a file deleted by another program between readdir and statx
/// (a live `/tmp`), made deterministic by a directory that can be listed
/// but not searched (mode 0444, as nobody: statx of its entries fails).
#[test]
fn excluded_entries_that_cannot_be_stated_are_not_stated() {
    let case = Case::new("ext4", 4096);
    if !require_nobody_and_judges() {
        return;
    }
    let src = source_with_spoiled_tmp(&case, |tmp| {
        write_file(&tmp.join("vanishing"), b"gone\n");
        sys::chmod(tmp, 0o444);
    });
    // The walk lists /tmp (kept, empty) and never stats its entries.
    let Some((out, image)) = kiln_build_as_nobody(&case, &src, &["--exclude", "/tmp/*"]) else {
        return;
    };
    assert_success(&out, "a build whose unstatable part is excluded");
    assert_image_holds(&image, &["/keep", "/keep/a", "/tmp"]);
    // Not excluded, the same entry is an error naming it.
    let out = run(as_nobody(Path::new(env!("CARGO_BIN_EXE_kiln")))
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(image.with_file_name("all.img")));
    assert_error(&out, &["tmp/vanishing", "Permission denied"], "unexcluded");
}

/// `kiln build SRC -o SRC/mnt/root.img` where `SRC/mnt` is another
/// filesystem (a tmpfs): the walk does not enter it (`cp -ax`), so the
/// output is not in the tree and the build works; `/mnt` is an empty
/// directory in the image. It used to be refused on path prefixes alone.
#[test]
fn output_on_another_filesystem_inside_the_source() {
    let case = Case::new("ext4", 4096);
    if !(require_root()
        && require_tool("mount")
        && require_tool("umount")
        && require_tool("e2fsck")
        && require_tool("debugfs"))
    {
        return;
    }
    let src = case.mkdir("src");
    write_file(&src.join("a"), b"kept\n");
    let mnt = case.mkdir("src/mnt");
    let mount = Mount::tmpfs_of(&mnt, "size=64m");
    write_file(&mnt.join("on-the-tmpfs"), b"not copied\n");
    let image = mnt.join("root.img");
    let out = run(&mut case.build_command(&[&src], &image));
    assert_success(&out, "an output on another filesystem inside the source");
    assert_image_holds(&image, &["/a", "/mnt"]);
    drop(mount);
}

/// An output in an excluded directory of the source, or whose own name is
/// excluded, is never read: the build works and the image holds the rest.
#[test]
fn output_in_an_excluded_part_of_the_source() {
    let case = Case::new("ext4", 4096);
    if !(require_tool("e2fsck") && require_tool("debugfs")) {
        return;
    }
    let src = case.mkdir("src");
    write_file(&src.join("a"), b"kept\n");
    case.mkdir("src/out");
    for (image, exclude, holds) in [
        ("out/image.img", "/out", &["/a"][..]),
        ("out/image.img", "/out/*", &["/a", "/out"][..]),
        ("image.img", "/*.img", &["/a", "/out"][..]),
    ] {
        let image = src.join(image);
        let out = run(case
            .build_command(&[&src], &image)
            .args(["--exclude", exclude]));
        assert_success(&out, &format!("-o {} --exclude {exclude}", image.display()));
        // Moved out of the source before it is judged (the next case
        // builds the source again).
        let judged = case.path("judged.img");
        std::fs::rename(&image, &judged).expect("rename");
        assert_image_holds(&judged, holds);
    }
}

/// The output's directory is known by device and inode: reached through a
/// symlink, or bind-mounted inside the source, it is still refused (a bind
/// mount used to pass the path check), and nothing is written.
#[test]
fn output_reached_another_way_is_still_refused() {
    let case = Case::new("ext4", 4096);
    let src = case.mkdir("src");
    write_file(&src.join("a"), b"kept\n");
    case.mkdir("src/sub");
    let link = case.path("link");
    std::os::unix::fs::symlink(&src, &link).expect("symlink");
    let out = run(&mut case.build_command(&[&src], &link.join("sub/image.img")));
    assert_error(
        &out,
        &["image.img", "inside the source"],
        "through a symlink",
    );
    assert_dir_holds(&src.join("sub"), &[], "through a symlink");

    if !(require_root() && require_tool("mount") && require_tool("umount")) {
        return;
    }
    let out_dir = case.mkdir("out");
    let bound = case.mkdir("src/bound");
    let bind = Mount::bind(&out_dir, &bound);
    let out = run(&mut case.build_command(&[&src], &out_dir.join("image.img")));
    assert_error(
        &out,
        &["image.img", "inside the source", "bound"],
        "bind-mounted into the source",
    );
    assert_dir_holds(&out_dir, &[], "bind-mounted into the source");
    // Excluded, the bind mount is not walked.
    let out = run(case
        .build_command(&[&src], &out_dir.join("image.img"))
        .args(["--exclude", "/bound"]));
    assert_success(&out, "the bind mount excluded");
    drop(bind);
}

/// The walk leaves excluded entries unread, but the image is the one a
/// walk of everything makes: a build whose spec reaches every entry (so
/// nothing is pruned) gives the same bytes; a later spec that names an
/// excluded entry (a hard link to it, a chmod) still finds it; a whiteout
/// that is excluded still deletes from the layer below.
#[test]
fn pruning_keeps_the_image_as_it_was() {
    let case = Case::new("ext4", 4096);
    let src = case.mkdir("src");
    for dir in ["a", "keep", "tmp/deep", "z"] {
        case.mkdir(&format!("src/{dir}"));
    }
    // A hard link whose first name (in walk order) is excluded.
    write_file(&src.join("a/h"), b"linked\n");
    std::fs::hard_link(src.join("a/h"), src.join("z/h")).expect("link");
    write_file(&src.join("tmp/deep/f"), b"in tmp\n");
    write_file(&src.join("keep/x"), b"x\n");
    let excludes = ["--exclude", "/a", "--exclude", "/tmp/*"];
    let build = |name: &str, extra: &[&str]| {
        let image = case.path(name);
        let out = run(case
            .build_command(&[&src], &image)
            .args(excludes)
            .args(extra)
            .env("SOURCE_DATE_EPOCH", "1700000000"));
        assert_success(&out, name);
        image
    };
    let pruned = build("pruned.img", &[]);
    let whole = build("whole.img", &["-p", "?set /** rmxattr=user.kiln-none"]);
    assert!(
        read_file(&pruned) == read_file(&whole),
        "pruning changed the image"
    );

    let spec = "link /keep/l /tmp/deep/f\nchmod /tmp/deep/f 0600\n";
    let linked = build("linked.img", &["-p", spec]);
    if require_tool("debugfs") {
        eqnice!("in tmp\n", debugfs(&linked, "cat /keep/l"), "the link");
        assert!(debugfs_stat(&linked, "/keep/l").contains("Mode:  0600"));
    }

    let lower = case.mkdir("lower");
    case.mkdir("lower/etc");
    write_file(&lower.join("etc/gone"), b"deleted\n");
    write_file(&lower.join("etc/kept"), b"kept\n");
    let upper = case.mkdir("upper");
    case.mkdir("upper/etc");
    write_file(&upper.join("etc/.wh.gone"), b"");
    let image = case.path("whiteouts.img");
    let out = run(case.build_command(&[&lower, &upper], &image).args([
        "--whiteouts",
        "--exclude",
        "/etc/.wh.*",
    ]));
    assert_success(&out, "an excluded whiteout");
    if require_tool("e2fsck") && require_tool("debugfs") {
        assert_image_holds(&image, &["/etc", "/etc/kept"]);
    }
}

/// Point 8: the output is checked before any source is read. Each refused
/// output is given with a source that does not exist: the error is the
/// output's, and nothing is written. `-o DIR --force` used to build the
/// whole image and then fail at the rename.
#[test]
fn output_refused_before_reading() {
    let case = Case::new("ext4", 4096);
    let missing_src = case.path("no-such-source");
    let out_dir = case.mkdir("out");
    let refused = |image: &Path, extra: &[&str], names: &[&str], what: &str| {
        let out = run(case.build_command(&[&missing_src], image).args(extra));
        assert_error(&out, names, what);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("no-such-source"),
            "{what}: the source was read first: {stderr}"
        );
    };
    let dir_name = out_dir.display().to_string();
    for extra in [&[][..], &["--force"][..]] {
        refused(
            &out_dir,
            extra,
            &[&dir_name, "is a directory"],
            "an existing directory",
        );
    }
    refused(
        &case.path("missing/image.img"),
        &[],
        &["missing/image.img", "does not exist"],
        "a missing directory",
    );
    refused(
        &case.path("missing.img"),
        &["--offset", "1M"],
        &["missing.img", "existing file"],
        "--offset into no file",
    );
    // A whole disk (--config) is checked the same way.
    let config = case.path("disk.toml");
    write_file(
        &config,
        b"[disk]\nsize = \"16M\"\n[[partition]]\nlabel = \"root\"\ntype = \"root-x86-64\"\n\
          [partition.filesystem]\nsources = [\"no-such-source\"]\n",
    );
    let out = run(kiln_command()
        .arg("build")
        .arg("--config")
        .arg(&config)
        .arg("-o")
        .arg(&out_dir)
        .arg("--force"));
    assert_error(
        &out,
        &[&dir_name, "is a directory"],
        "--config to a directory",
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("no-such-source"),
        "--config: the source was read first: {}",
        describe(&out)
    );
    assert_dir_holds(&out_dir, &[], "refused outputs");
    assert_dir_holds(case.dir(), &["disk.toml", "out"], "refused outputs");
}

/// Point 8: an output that is an input of the build (the tar archive, the
/// spec) is refused, even with `--force`, and the input is left as it was;
/// it used to be replaced by the image.
#[test]
fn output_that_is_an_input_is_refused() {
    let case = Case::new("ext4", 4096);
    if !require_tool("tar") {
        return;
    }
    let src = case.mkdir("src");
    write_file(&src.join("a"), b"kept\n");
    let archive = case.path("src.tar");
    let out = run(tool("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&src)
        .arg("."));
    assert_success(&out, "tar -cf");
    let before = read_file(&archive);
    let out = run(case.build_command(&[&archive], &archive).arg("--force"));
    assert_error(&out, &["src.tar", "an input of this build"], "-o the tar");
    assert!(read_file(&archive) == before, "the archive was changed");

    let spec = case.path("image.spec");
    write_file(&spec, b"dir /etc 0755 0 0\n");
    let out = run(case
        .build_command(&[&src], &spec)
        .args(["--force", "--spec"])
        .arg(&spec));
    assert_error(
        &out,
        &["image.spec", "an input of this build"],
        "-o the spec",
    );
    assert!(
        read_file(&spec) == b"dir /etc 0755 0 0\n",
        "the spec was changed"
    );
}

/// Point 8: a directory the caller cannot write is refused before any
/// source is read (as nobody, in a directory of root's).
#[test]
fn output_in_an_unwritable_directory() {
    let case = Case::new("ext4", 4096);
    if !(require_root() && require_tool("setpriv")) {
        return;
    }
    sys::chmod(case.dir(), 0o755);
    let Some(kiln_bin) = kiln_for_nobody() else {
        return;
    };
    let roots = case.mkdir("roots");
    let out = run(as_nobody(kiln_bin)
        .arg("build")
        .arg(case.path("no-such-source"))
        .arg("-o")
        .arg(roots.join("image.img")));
    assert_error(&out, &["roots", "cannot write"], "an unwritable directory");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("no-such-source"),
        "the source was read first: {}",
        describe(&out)
    );
    assert_dir_holds(&roots, &[], "an unwritable directory");
}
