//! Issue 9: the Windows build of kiln, run under Wine, writes the same bytes
//! as the Linux build from tar archives and spec files; a directory source
//! gets the documented defaults and a warning; the kernel reads the Wine
//! build of an archive back as the source; Windows paths (drive letters,
//! `\\?\` long paths, non-ASCII names) work; a failed build leaves nothing.
//! Issue 19: so do FAT images of every variant (from a tar archive and a spec
//! file).
//!
//! The Windows binary is `$KILN_WINDOWS_EXE`, else
//! `target/x86_64-pc-windows-gnu/debug/kiln.exe`, which `.ci/run` builds
//! before the tests (`cargo build -p kiln --target x86_64-pc-windows-gnu`).
//! Wine is Debian's `wine64`. Everything runs in one test: the Wine prefix it
//! makes is shared by every run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::compare::Snapshot;
use crate::determinism::assert_identical;
use crate::fixture;
use crate::helpers::*;
use crate::inputs::{assert_matches_but_times, spec_of, tar, tree, Holds, ALL, TIMESTAMP};

/// The Windows kiln under Wine: a copy of the binary in the case folder, with
/// the stand-in DLL beside it, and a Wine prefix of its own.
struct WineKiln {
    wine: PathBuf,
    exe: PathBuf,
    prefix: PathBuf,
}

impl WineKiln {
    /// Finds the binary and Wine and prepares the copy; `None` after a skip
    /// (outside CI).
    fn prepare(case: &Case) -> Option<WineKiln> {
        let exe = windows_exe();
        if !exe.is_file() {
            skip(&format!(
                "no Windows build at {} (cargo build -p kiln --target x86_64-pc-windows-gnu)",
                exe.display()
            ));
            return None;
        }
        let Some(wine) = wine() else {
            skip("Wine is not installed (apt-get install wine64)");
            return None;
        };
        if !require_tool("x86_64-w64-mingw32-gcc") {
            return None;
        }
        let dir = case.mkdir("win");
        let copy = dir.join("kiln.exe");
        std::fs::copy(&exe, &copy).expect("copy kiln.exe");
        build_prng_dll(&dir);
        Some(WineKiln {
            wine,
            exe: copy,
            prefix: case.mkdir("wineprefix"),
        })
    }

    /// `wine64 kiln.exe ARGS`, in `cwd`, with a fixed SOURCE_DATE_EPOCH.
    fn run(&self, cwd: &Path, args: &[&str]) -> Output {
        run(Command::new(&self.wine)
            .arg(&self.exe)
            .args(args)
            .current_dir(cwd)
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .env("SOURCE_DATE_EPOCH", TIMESTAMP))
    }

    /// Runs `args` under Wine and requires success.
    fn ok(&self, cwd: &Path, args: &[&str]) -> Output {
        let out = self.run(cwd, args);
        assert_success(&out, &format!("kiln.exe {}", args.join(" ")));
        out
    }
}

/// The Windows binary to test.
fn windows_exe() -> PathBuf {
    if let Some(path) = std::env::var_os("KILN_WINDOWS_EXE") {
        return path.into();
    }
    // CARGO_BIN_EXE_kiln is TARGET/debug/kiln (or TARGET/release/kiln).
    let linux = Path::new(env!("CARGO_BIN_EXE_kiln"));
    let target = linux.parent().and_then(Path::parent).expect("target dir");
    target.join("x86_64-pc-windows-gnu/debug/kiln.exe")
}

/// Debian's wine64 loader (not on PATH without the `wine` package).
fn wine() -> Option<PathBuf> {
    tool_path("wine64")
        .or_else(|| Some(PathBuf::from("/usr/lib/wine/wine64")).filter(|p| p.is_file()))
}

/// Compiles tests/wine/bcryptprimitives.c into `dir`: Wine 8 has no
/// bcryptprimitives.dll, from which Rust's std takes random bytes.
fn build_prng_dll(dir: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wine");
    let out = run(tool("x86_64-w64-mingw32-gcc")
        .args(["-O2", "-shared", "-o"])
        .arg(dir.join("bcryptprimitives.dll"))
        .arg(src.join("bcryptprimitives.c"))
        .arg(src.join("bcryptprimitives.def"))
        .arg("-ladvapi32"));
    assert_success(&out, "building the stand-in bcryptprimitives.dll");
}

/// The Linux kiln with the same arguments and SOURCE_DATE_EPOCH.
fn linux_build(cwd: &Path, args: &[&str]) {
    let out = run(kiln_command()
        .args(args)
        .current_dir(cwd)
        .env("SOURCE_DATE_EPOCH", TIMESTAMP));
    assert_success(&out, &format!("kiln {}", args.join(" ")));
}

/// `Z:\...`: how a Windows program under Wine names the host path `path`.
fn drive_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// The build options every image here gets (ext4 with metadata_csum, the
/// type users of both hosts would pick).
const TYPE: [&str; 2] = ["-t", "ext4"];

/// The tar and spec inputs of the fixture tree, built by both hosts' kiln
/// into the same bytes; the zstd output, stdout and Windows path forms too.
fn same_bytes_as_linux(case: &Case, wine: &WineKiln) {
    let dir = case.dir();
    let src = case.mkdir("src");
    tree(&src, ALL);
    let archive = tar(case, &src, "posix");
    let out = run(tool("gzip")
        .args(["-k", "-n"])
        .arg(&archive)
        .current_dir(dir));
    assert_success(&out, "gzip the archive");
    // The spec's files are read from the host, where Windows cannot tell
    // holes: they are dense here (the README says so; tar carries holes).
    let dense = case.mkdir("dense");
    tree(
        &dense,
        Holds {
            sparse: false,
            ..ALL
        },
    );
    let spec = case.path("tree.spec");
    write_file(
        &spec,
        spec_of(&Snapshot::take(&[&dense]), &dense).as_bytes(),
    );

    let linux = |input: &str, image: &str| {
        let mut args = vec!["build", input, "-o", image];
        args.extend(TYPE);
        linux_build(dir, &args);
        case.path(image)
    };
    let windows = |input: &str, image: &str| {
        let mut args = vec!["build", input, "-o", image];
        args.extend(TYPE);
        wine.ok(dir, &args);
    };

    let reference = linux("posix.tar", "linux-tar.img");
    e2fsck_clean(&reference);
    windows("posix.tar", "win-tar.img");
    assert_identical(
        &reference,
        &case.path("win-tar.img"),
        4096,
        "tar: Wine vs Linux",
    );
    // The kernel reads the Wine build back as the source (times are all
    // SOURCE_DATE_EPOCH: the tree's are later).
    let mount = Mount::ro(&case.path("win-tar.img"), "ext4");
    assert_matches_but_times(&Snapshot::take(&[&src]), mount.path());
    drop(mount);
    windows("posix.tar.gz", "win-gz.img");
    assert_identical(
        &reference,
        &case.path("win-gz.img"),
        4096,
        "tar.gz: Wine vs Linux",
    );

    // A spec reads its files from host paths, which Wine maps onto drive Z:.
    let mut spec_args = vec!["build", "--spec", "tree.spec", "-o", "linux-spec.img"];
    spec_args.extend(TYPE);
    linux_build(dir, &spec_args);
    let spec_image = case.path("linux-spec.img");
    e2fsck_clean(&spec_image);
    spec_args[4] = "win-spec.img";
    wine.ok(dir, &spec_args);
    assert_identical(
        &spec_image,
        &case.path("win-spec.img"),
        4096,
        "spec: Wine vs Linux",
    );

    // Drive-letter and `\\?\` paths for the input and the output.
    let drive_in = drive_path(&archive);
    let drive_out = drive_path(&case.path("win-drive.img"));
    let long_out = format!(r"\\?\{}", drive_path(&case.path("win-long.img")));
    windows(&drive_in, &drive_out);
    windows("posix.tar", &long_out);
    // Non-ASCII names of the input's folder and of the output.
    let accented = case.mkdir("donn\u{e9}es");
    std::fs::copy(&archive, accented.join("posix.tar")).expect("copy the archive");
    windows("donn\u{e9}es/posix.tar", "r\u{e9}sultat-\u{65e5}.img");
    for name in [
        "win-drive.img",
        "win-long.img",
        "r\u{e9}sultat-\u{65e5}.img",
    ] {
        assert_identical(
            &reference,
            &case.path(name),
            4096,
            &format!("{name} vs Linux"),
        );
    }

    // zstd (zstd's C library, built by mingw) and standard output.
    windows("posix.tar", "win.img.zst");
    let unpacked = run(tool("zstd")
        .args(["-d", "-c", "win.img.zst"])
        .current_dir(dir));
    assert_success(&unpacked, "zstd -d");
    assert!(
        unpacked.stdout == read_file(&reference),
        "the Wine .zst unpacks to other bytes"
    );
    let mut args = vec!["build", "posix.tar", "-o", "-"];
    args.extend(TYPE);
    let streamed = wine.ok(dir, &args);
    assert!(
        streamed.stdout == read_file(&reference),
        "Wine's -o - differs from the image"
    );
}

/// The FAT images of the Wine test: each `-t` kiln takes for FAT, with a
/// size for FAT12 and FAT16 (so each is that variant) and none for FAT32
/// and vfat (kiln's automatic size).
const FAT_TYPES: [(&str, Option<&str>); 4] = [
    ("fat12", Some("4194304")),
    ("fat16", Some("67108864")),
    ("fat32", None),
    ("vfat", None),
];

/// A tree FAT can hold (no links, devices or owners): names long and short,
/// mixed case and non-ASCII; files of 0 bytes, one cluster and many, one
/// with a run of zeros (clusters kiln leaves unwritten), a read-only one; a
/// directory of many clusters.
fn fat_tree(root: &Path) {
    let long = "x".repeat(200);
    let files: [(&str, Vec<u8>); 9] = [
        ("EFI/BOOT/BOOTX64.EFI", fixture::bytes(21, 300_001)),
        ("vmlinuz", fixture::bytes(22, 2 * 1024 * 1024 + 3)),
        ("empty", Vec::new()),
        ("UPPER.TXT", b"upper\n".to_vec()),
        ("lower.txt", b"lower\n".to_vec()),
        ("Mixed Case, a Longer Name.conf", fixture::bytes(23, 512)),
        (
            "donn\u{e9}es \u{65e5}\u{672c} \u{1f600}.txt",
            b"unicode\n".to_vec(),
        ),
        (&long, b"200 units\n".to_vec()),
        ("readonly.txt", b"fixed\n".to_vec()),
    ];
    for (rel, data) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).expect("mkdir");
        write_file(&path, &data);
    }
    let mut holey = fixture::bytes(24, 8192);
    holey.extend(vec![0; 256 * 1024]);
    holey.extend(fixture::bytes(25, 100));
    write_file(&root.join("zeros inside.bin"), &holey);
    crate::sys::chmod(&root.join("readonly.txt"), 0o444);
    std::fs::create_dir(root.join("big")).expect("mkdir");
    for i in 0..300 {
        let name = format!("big/Entry {i:03} with a long name.conf");
        write_file(&root.join(name), format!("{i}\n").as_bytes());
    }
}

/// `kiln build INPUT -o IMAGE -t TYPE [--size SIZE]`.
fn fat_args<'a>(
    input: &[&'a str],
    image: &'a str,
    fs_type: &'a str,
    size: Option<&'a str>,
) -> Vec<&'a str> {
    let mut args = vec!["build"];
    args.extend(input);
    args.extend(["-o", image, "-t", fs_type]);
    args.extend(size.iter().flat_map(|size| ["--size", size]));
    args
}

/// 19: every FAT variant, from a tar archive and from a spec file, in the
/// same bytes from the Windows build as from the Linux one; fsck.fat finds
/// the Linux images clean.
fn fat_same_bytes_as_linux(case: &Case, wine: &WineKiln) {
    let dir = case.dir();
    let src = case.mkdir("fatsrc");
    fat_tree(&src);
    let out = run(tool("tar")
        .args(["--format=posix", "-cf", "fat.tar", "-C"])
        .arg(&src)
        .arg(".")
        .current_dir(dir));
    assert_success(&out, "tar of the FAT tree");
    write_file(
        &case.path("fat.spec"),
        spec_of(&Snapshot::take(&[&src]), &src).as_bytes(),
    );
    for (fs_type, size) in FAT_TYPES {
        for (input, what) in [(&["fat.tar"][..], "tar"), (&["--spec", "fat.spec"], "spec")] {
            let linux = format!("linux-{fs_type}-{what}.img");
            let windows = format!("win-{fs_type}-{what}.img");
            linux_build(dir, &fat_args(input, &linux, fs_type, size));
            let fsck = run(tool("fsck.fat").arg("-n").arg(case.path(&linux)));
            assert_success(&fsck, &format!("fsck.fat -n {linux}"));
            wine.ok(dir, &fat_args(input, &windows, fs_type, size));
            assert_identical(
                &case.path(&linux),
                &case.path(&windows),
                512,
                &format!("{fs_type} from {what}: Wine vs Linux"),
            );
        }
    }
}

/// A directory source under Wine: files 0644, `#!` and ELF files 0755,
/// read-only files 0444, directories 0755, owner 0:0, names in UTF-8, hard
/// links kept, a warning that says so; a spec sets what the host cannot.
fn directory_defaults(case: &Case, wine: &WineKiln) {
    let src = case.mkdir("winsrc");
    let p = |rel: &str| src.join(rel);
    for d in ["etc", "bin", "usr/share"] {
        std::fs::create_dir_all(p(d)).expect("mkdir");
    }
    write_file(&p("etc/hostname"), b"kiln\n");
    write_file(&p("etc/readonly"), b"fixed\n");
    write_file(&p("bin/script"), b"#!/bin/sh\necho hi\n");
    write_file(&p("bin/elf"), b"\x7fELF\x02\x01\x01\0");
    write_file(&p("usr/share/caf\u{e9}.txt"), b"accent\n");
    write_file(&p("usr/share/\u{65e5}\u{672c}"), b"kanji\n");
    std::fs::hard_link(p("bin/script"), p("bin/script-again")).expect("hard link");
    // What the Linux side says must not leak through: the defaults replace it.
    crate::sys::chmod(&p("etc/hostname"), 0o600);
    crate::sys::lchown(&p("etc/hostname"), 1000, 1000);
    crate::sys::chmod(&p("etc/readonly"), 0o444);
    crate::sys::chmod(&p("usr"), 0o700);

    let mut args = vec![
        "build",
        "winsrc",
        "-o",
        "win-dir.img",
        "-p",
        "chown /etc/hostname 0 42",
        "-p",
        "char /dev/console 0600 0 5 5 1",
    ];
    args.extend(TYPE);
    let out = wine.ok(case.dir(), &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains("does not keep owners"),
        "no warning about the missing metadata:\n{stderr}"
    );
    let image = case.path("win-dir.img");
    e2fsck_clean(&image);
    let stat = |path: &str| DebugfsStat::parse(&debugfs_stat(&image, path));
    let expect = [
        ("/etc", 0o755, 0),
        ("/usr", 0o755, 0),
        ("/etc/hostname", 0o644, 42),
        ("/etc/readonly", 0o444, 0),
        ("/bin/script", 0o755, 0),
        ("/bin/elf", 0o755, 0),
        ("/usr/share/caf\u{e9}.txt", 0o644, 0),
        ("/usr/share/\u{65e5}\u{672c}", 0o644, 0),
    ];
    for (path, perm, gid) in expect {
        let s = stat(path);
        assert_eq!((s.perm, s.uid, s.gid), (perm, 0, gid), "{path}: {s:?}");
    }
    let links = |path: &str| debugfs(&image, &format!("stat {path}"));
    let inode = |text: String| text.split_whitespace().nth(1).map(str::to_string);
    assert_eq!(
        inode(links("/bin/script")),
        inode(links("/bin/script-again")),
        "the hard link became two files"
    );
    assert_eq!(stat("/bin/script").links, 2);
    let console = stat("/dev/console");
    assert_eq!(console.device, Some((5, 1)), "{console:?}");
}

/// Bad input under Wine: a clear error naming the path, and nothing written.
fn failures_leave_nothing(case: &Case, wine: &WineKiln) {
    let out_dir = case.mkdir("winfail");
    write_file(&out_dir.join("broken.tar"), &[0x55; 1000]);
    for input in ["no-such.tar", "broken.tar"] {
        let mut args = vec!["build", input, "-o", "out.img"];
        args.extend(TYPE);
        let out = wine.run(&out_dir, &args);
        assert!(!out.status.success(), "{input}: {}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(input),
            "{input}: the error does not name it:\n{stderr}"
        );
        let left = list_dir(&out_dir);
        assert_eq!(
            left,
            vec!["broken.tar".to_string()],
            "{input} left files behind"
        );
    }
}

/// 9 and 19: under Wine, the Windows build makes Linux's bytes (ext4 and
/// every FAT variant) from tar and spec inputs, gives a directory source
/// the documented defaults, takes Windows paths and writes nothing on bad
/// input.
#[test]
fn windows_build_under_wine() {
    let case = Case::new("ext4", 4096);
    let tools = ["tar", "gzip", "zstd", "fsck.fat"];
    if !(require_mount() && tools.into_iter().all(require_tool)) {
        return;
    }
    let Some(wine) = WineKiln::prepare(&case) else {
        return;
    };
    same_bytes_as_linux(&case, &wine);
    fat_same_bytes_as_linux(&case, &wine);
    directory_defaults(&case, &wine);
    failures_leave_nothing(&case, &wine);
}
