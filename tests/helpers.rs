//! Shared helpers: running kiln, judging images with e2fsprogs (`e2fsck`,
//! `debugfs`), loop mounts, and the skip-or-fail rule for missing tools or
//! privileges.
//!
//! The rule: a test that cannot run here (no root, no loop devices, a missing
//! tool) prints why and returns, but only outside CI. With `CI=true` the same
//! situation is a failure, so CI can never pass by skipping.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use crate::sys;

/// Whether we run under CI (`CI=true`), where skipping is not allowed.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Reports that the current test cannot run here: prints why and returns
/// `false` outside CI, panics under `CI=true`.
pub fn skip(why: &str) -> bool {
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_string();
    if in_ci() {
        panic!("{test}: {why} (CI=true: a missing requirement is a failure, not a skip)");
    }
    eprintln!("SKIPPED {test}: {why}");
    false
}

/// The full path of an external tool, looked up in `PATH` and then in the
/// sbin directories (where e2fsprogs lives, often outside a user's `PATH`).
pub fn tool_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// `true` if the tool `name` is installed; otherwise skip-or-fail.
pub fn require_tool(name: &str) -> bool {
    tool_path(name).is_some() || skip(&format!("the tool `{name}` is not installed"))
}

/// `true` if we run as root; otherwise skip-or-fail.
pub fn require_root() -> bool {
    sys::is_root() || skip("needs root (device nodes, chown, trusted.* xattrs, mounts)")
}

/// `true` if loop mounts are possible (root, `mount`, `umount`, loop devices);
/// otherwise skip-or-fail.
pub fn require_mount() -> bool {
    require_root()
        && require_tool("mount")
        && require_tool("umount")
        && (Path::new("/dev/loop-control").exists()
            || skip("no /dev/loop-control: loop devices are not available"))
}

/// A command for an external tool (which must be installed; check with
/// [`require_tool`] first), in the C locale so its messages can be parsed.
pub fn tool(name: &str) -> Command {
    let path = tool_path(name).unwrap_or_else(|| panic!("`{name}` is not installed"));
    let mut cmd = Command::new(path);
    cmd.env("LC_ALL", "C");
    cmd
}

/// Runs a command, panicking only if it cannot be started.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// A readable account of a finished command, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Panics with the command's output unless it exited 0.
pub fn assert_success(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed: {}", describe(out));
}

/// A command running the kiln binary under test.
pub fn kiln_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.env("LC_ALL", "C");
    cmd
}

/// Runs `kiln ARGS...` and returns its output and status.
pub fn kiln<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(kiln_command().args(args))
}

/// One filesystem flavour under test, with its own temporary directory.
pub struct Case {
    pub fs_type: &'static str,
    pub block_size: u32,
    dir: TempDir,
}

impl Case {
    pub fn new(fs_type: &'static str, block_size: u32) -> Case {
        let dir = tempfile::Builder::new()
            .prefix("kiln-test-")
            .tempdir()
            .expect("create a temporary directory");
        Case {
            fs_type,
            block_size,
            dir,
        }
    }

    /// The temporary directory of this test.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the temporary directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Creates (with parents) and returns a directory inside the temporary directory.
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        p
    }

    /// `kiln build SOURCES... -o IMAGE -t TYPE -b BLOCK_SIZE`, ready for more options.
    pub fn build_command(&self, sources: &[&Path], image: &Path) -> Command {
        let mut cmd = kiln_command();
        cmd.arg("build")
            .args(sources)
            .arg("-o")
            .arg(image)
            .args(["-t", self.fs_type, "-b"])
            .arg(self.block_size.to_string());
        cmd
    }

    /// Runs `kiln build --spec SPEC` (SPEC holding `text`, named `name`)
    /// into an empty directory `NAME.out`; returns kiln's output and that
    /// directory.
    pub fn build_spec(&self, name: &str, text: &str) -> (Output, PathBuf) {
        let spec = self.path(name);
        write_file(&spec, text.as_bytes());
        let out_dir = self.mkdir(&format!("{name}.out"));
        let out = run(self
            .build_command(&[], &out_dir.join("image.img"))
            .arg("--spec")
            .arg(&spec));
        (out, out_dir)
    }

    /// Builds an image and asserts that kiln succeeded and left the image,
    /// and that `kiln verify` finds it equal to its sources and consistent.
    pub fn build(&self, sources: &[&Path], image: &Path, extra: &[&str]) {
        let out = run(self.build_command(sources, image).args(extra));
        assert_success(&out, &format!("kiln build ({self})"));
        assert!(
            image.is_file(),
            "kiln exited 0 but wrote no image at {}",
            image.display()
        );
        assert_verified(image, sources, extra);
    }
}

/// Build flags that shape the image, not the tree: `kiln verify` reads
/// those from the image. Each takes a value.
const FORMAT_FLAGS: &[&str] = &[
    "-o",
    "--output",
    "-t",
    "--fs-type",
    "-O",
    "--features",
    "--size",
    "-b",
    "--block-size",
    "-I",
    "--inode-size",
    "-N",
    "--inodes",
    "-i",
    "--bytes-per-inode",
    "-m",
    "--reserved-percent",
    "-L",
    "--label",
    "-U",
    "--uuid",
    "--seed",
    "--hash-alg",
    "-J",
    "--journal-size",
    "--free",
    "--free-inodes",
];

/// The tree flags among build flags `extra` (format flags and `--force`
/// dropped).
pub fn tree_flags<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut args = extra.iter();
    while let Some(&arg) = args.next() {
        let name = arg.split('=').next().unwrap_or(arg);
        if FORMAT_FLAGS.contains(&name) {
            if !arg.contains('=') {
                args.next();
            }
        } else if arg != "--force" {
            out.push(arg);
        }
    }
    out
}

/// Runs `kiln verify IMAGE --against SOURCES TREE_FLAGS` and asserts it
/// finds no difference and no inconsistency.
pub fn assert_verified(image: &Path, sources: &[&Path], extra: &[&str]) {
    let mut cmd = kiln_command();
    cmd.arg("verify").arg(image);
    if !sources.is_empty() {
        cmd.arg("--against").args(sources);
    }
    let out = run(cmd.args(tree_flags(extra)));
    assert_success(&out, &format!("kiln verify {}", image.display()));
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, {}-byte blocks", self.fs_type, self.block_size)
    }
}

/// The last line of a clean `e2fsck` run:
/// `NAME: 18/16384 files (0.0% non-contiguous), 9528/65536 blocks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsckSummary {
    pub inodes_used: u64,
    pub inodes: u64,
    pub blocks_used: u64,
    pub blocks: u64,
}

fn parse_fraction(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once('/')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

fn parse_summary(line: &str) -> Option<FsckSummary> {
    // The name before ": " may itself contain ": ", the counts never do.
    let rest = &line[line.rfind(": ")? + 2..];
    let rest = rest.strip_suffix(" blocks")?;
    let (files, rest) = rest.split_once(" files (")?;
    let (pct, blocks) = rest.split_once("), ")?;
    pct.strip_suffix("% non-contiguous")?;
    let (inodes_used, inodes) = parse_fraction(files)?;
    let (blocks_used, blocks) = parse_fraction(blocks)?;
    Some(FsckSummary {
        inodes_used,
        inodes,
        blocks_used,
        blocks,
    })
}

/// The lines a clean forced check prints, besides its version banner and summary.
const E2FSCK_PASSES: [&str; 5] = [
    "Pass 1: Checking inodes, blocks, and sizes",
    "Pass 2: Checking directory structure",
    "Pass 3: Checking directory connectivity",
    "Pass 4: Checking reference counts",
    "Pass 5: Checking group summary information",
];

/// Runs `e2fsck -fn IMAGE` and asserts a clean result: exit status 0 and no
/// line besides the version banner, the five pass lines and the summary.
/// Returns the summary.
pub fn e2fsck_clean(image: &Path) -> FsckSummary {
    let out = run(tool("e2fsck").arg("-fn").arg(image));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let mut summary = None;
    let mut unexpected = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty()
            || (line.starts_with("e2fsck ") && line.ends_with(')'))
            || E2FSCK_PASSES.contains(&line)
        {
            continue;
        }
        match parse_summary(line) {
            Some(s) if summary.is_none() => summary = Some(s),
            _ => unexpected.push(line),
        }
    }
    assert!(
        out.status.success() && unexpected.is_empty() && summary.is_some(),
        "e2fsck -fn {} is not clean ({}); unexpected lines: {unexpected:#?}\nfull output:\n{text}",
        image.display(),
        out.status
    );
    summary.expect("checked above")
}

/// The text of `debugfs -R "stat PATH" IMAGE` (asserting that debugfs found the path).
pub fn debugfs_stat(image: &Path, path: &str) -> String {
    assert!(
        !path.contains('"'),
        "debugfs request quoting: no '\"' in {path}"
    );
    let out = run(tool("debugfs")
        .arg("-R")
        .arg(format!("stat \"{path}\""))
        .arg(image));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.starts_with("Inode:"),
        "debugfs stat {path} on {}: {}",
        image.display(),
        describe(&out)
    );
    stdout
}

/// The standard output of `debugfs -R REQUEST IMAGE` (debugfs exits 0 even
/// when the request fails, so callers check what it printed).
pub fn debugfs(image: &Path, request: &str) -> String {
    let out = run(tool("debugfs").arg("-R").arg(request).arg(image));
    assert_success(&out, &format!("debugfs -R {request:?} {}", image.display()));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The header fields of `dumpe2fs -h IMAGE`, by name (`Block size` -> `4096`).
pub fn dumpe2fs_header(image: &Path) -> std::collections::BTreeMap<String, String> {
    let out = run(tool("dumpe2fs").arg("-h").arg(image));
    assert_success(&out, &format!("dumpe2fs -h {}", image.display()));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The fields of a `debugfs stat` report that the tests check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebugfsStat {
    /// `regular`, `directory`, `symlink`, `character special`, `block special`, `FIFO`, `socket`.
    pub kind: String,
    /// The 12 permission bits.
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub links: u32,
    /// Device numbers, for device nodes.
    pub device: Option<(u32, u32)>,
    /// The target of a fast symlink (stored in the inode).
    pub fast_link: Option<String>,
}

/// The first whitespace-separated word after `key` in `text`.
fn word_after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text[text.find(key)? + key.len()..]
        .split_whitespace()
        .next()
}

/// debugfs prints ids with `%d`, so ids from 2^31 up appear negative.
fn parse_id(word: &str) -> u32 {
    let v: i64 = word.parse().unwrap_or_else(|_| panic!("bad id {word:?}"));
    u32::try_from(v.rem_euclid(1 << 32)).expect("reduced modulo 2^32")
}

impl DebugfsStat {
    pub fn parse(text: &str) -> DebugfsStat {
        let field = |key: &str| {
            word_after(text, key).unwrap_or_else(|| panic!("no {key} in debugfs output:\n{text}"))
        };
        let kind_start = text.find("Type: ").expect("Type:") + "Type: ".len();
        let kind_end = text[kind_start..].find("Mode:").expect("Mode:") + kind_start;
        // "Size:" also appears on the Fragment line; the file size is on the User line.
        let user_line = text
            .lines()
            .find(|l| l.starts_with("User:"))
            .expect("User: line");
        let device = text.lines().find_map(|l| {
            let rest = &l[l.find("Device major/minor number: ")? + 27..];
            let (maj, min) = rest.split_whitespace().next()?.split_once(':')?;
            Some((maj.parse().ok()?, min.parse().ok()?))
        });
        let fast_link = text.lines().find_map(|l| {
            let rest = l.strip_prefix("Fast link dest: ")?;
            Some(rest.trim().trim_matches('"').to_string())
        });
        DebugfsStat {
            kind: text[kind_start..kind_end].trim().to_string(),
            perm: u32::from_str_radix(field("Mode:"), 8).expect("octal mode"),
            uid: parse_id(field("User:")),
            gid: parse_id(field("Group:")),
            size: word_after(user_line, "Size:")
                .and_then(|w| w.parse().ok())
                .expect("Size: on the User line"),
            links: field("Links:").parse().expect("Links:"),
            device,
            fast_link,
        }
    }
}

/// A mounted filesystem, unmounted when dropped (or by [`Mount::unmount`],
/// which also checks that unmounting worked).
pub struct Mount {
    target: PathBuf,
    /// The temporary mount point, removed after unmounting (field order:
    /// dropped after `Drop::drop` has unmounted).
    _dir: Option<TempDir>,
    mounted: bool,
}

impl Mount {
    /// `mount -t TYPE -o loop,ro,noatime IMAGE <tempdir>`: read-only, and no
    /// access time can move while the tests read.
    pub fn ro(image: &Path, fs_type: &str) -> Mount {
        Mount::image(image, fs_type, "loop,ro,noatime")
    }

    /// `mount -t TYPE -o loop IMAGE <tempdir>`: read-write.
    pub fn rw(image: &Path, fs_type: &str) -> Mount {
        Mount::image(image, fs_type, "loop")
    }

    /// Mounts the image as exactly `fs_type`: the kernel then also checks that
    /// the image has no feature beyond that type (an ext2 image must mount as
    /// ext2, an ext3 image needs its journal).
    fn image(image: &Path, fs_type: &str, options: &str) -> Mount {
        // Outside the test's own directory, so removing that never walks into a mount.
        let dir = tempfile::Builder::new()
            .prefix("kiln-mnt-")
            .tempdir()
            .expect("create a mount point");
        let target = dir.path().to_path_buf();
        Mount::attach(
            &[
                OsStr::new("-t"),
                OsStr::new(fs_type),
                OsStr::new("-o"),
                OsStr::new(options),
                image.as_os_str(),
                target.as_os_str(),
            ],
            target.clone(),
            Some(dir),
        )
    }

    /// Mounts a small tmpfs on an existing directory (a mount point inside a source tree).
    pub fn tmpfs(target: &Path) -> Mount {
        Mount::tmpfs_of(target, "size=1m")
    }

    /// Mounts a tmpfs with `options` (`size=…`) on an existing directory.
    pub fn tmpfs_of(target: &Path, options: &str) -> Mount {
        Mount::attach(
            &[
                OsStr::new("-t"),
                OsStr::new("tmpfs"),
                OsStr::new("-o"),
                OsStr::new(options),
                OsStr::new("kiln-test"),
                target.as_os_str(),
            ],
            target.to_path_buf(),
            None,
        )
    }

    /// Mounts an ext image through FUSE (`fuse2fs`): a filesystem without
    /// `O_TMPFILE`.
    pub fn fuse2fs(image: &Path) -> Mount {
        let dir = tempfile::Builder::new()
            .prefix("kiln-mnt-")
            .tempdir()
            .expect("create a mount point");
        let target = dir.path().to_path_buf();
        Mount::attach_with(
            tool("fuse2fs").arg(image).arg(&target),
            target.clone(),
            Some(dir),
        )
    }

    /// Bind-mounts the directory `source` on the existing directory `target`.
    pub fn bind(source: &Path, target: &Path) -> Mount {
        Mount::attach(
            &[OsStr::new("--bind"), source.as_os_str(), target.as_os_str()],
            target.to_path_buf(),
            None,
        )
    }

    fn attach(args: &[&OsStr], target: PathBuf, dir: Option<TempDir>) -> Mount {
        Mount::attach_with(tool("mount").args(args), target, dir)
    }

    /// Runs `cmd`, which mounts a filesystem on `target`.
    fn attach_with(cmd: &mut Command, target: PathBuf, dir: Option<TempDir>) -> Mount {
        let out = run(cmd);
        if !out.status.success() {
            let kernel = Command::new("dmesg")
                .output()
                .map(|o| {
                    let text = String::from_utf8_lossy(&o.stdout).into_owned();
                    let lines: Vec<&str> = text.lines().collect();
                    lines[lines.len().saturating_sub(8)..].join("\n")
                })
                .unwrap_or_default();
            panic!(
                "{cmd:?} failed: {}\n--- last kernel messages ---\n{kernel}",
                describe(&out)
            );
        }
        Mount {
            target,
            _dir: dir,
            mounted: true,
        }
    }

    /// Where the filesystem is mounted.
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Unmounts, asserting success (for read-write mounts, this is when the
    /// kernel writes everything back, before e2fsck looks at the image).
    pub fn unmount(mut self) {
        self.mounted = false;
        let out = run(tool("umount").arg(&self.target));
        assert_success(&out, &format!("umount {}", self.target.display()));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if !self.mounted {
            return;
        }
        let umount = tool_path("umount").unwrap_or_else(|| PathBuf::from("umount"));
        let ok = Command::new(&umount)
            .arg(&self.target)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Busy (a panic left a file open): detach lazily so the loop device goes eventually.
            let _ = Command::new(&umount).arg("-l").arg(&self.target).status();
        }
    }
}

/// Waits until the running `child` has a file open in `dir` (its output,
/// named or not: `/proc/PID/fd` shows an unnamed file as `DIR/#INO
/// (deleted)`) and returns what that link reads. A wait for a state, not a
/// guessed delay; panics if the child exits first.
pub fn wait_for_open_file(child: &mut std::process::Child, dir: &Path) -> PathBuf {
    let dir = std::fs::canonicalize(dir).expect("canonical directory");
    let fds = PathBuf::from(format!("/proc/{}/fd", child.id()));
    let start = std::time::Instant::now();
    loop {
        let links = std::fs::read_dir(&fds).into_iter().flatten().flatten();
        if let Some(link) = links
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .find(|link| link.parent() == Some(&dir))
        {
            return link;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "no output was opened in {}",
            dir.display()
        );
        if child.try_wait().expect("poll the child").is_some() {
            panic!("the child finished before its output was seen: make its source larger");
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Writes a file, panicking with the path on error.
pub fn write_file(path: &Path, data: &[u8]) {
    std::fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Reads a file, panicking with the path on error.
pub fn read_file(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The names in a directory (std, sorted).
pub fn list_dir(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(path)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", path.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// `setpriv` running `program` as user and group nobody (65534), no groups.
pub fn as_nobody(program: &Path) -> Command {
    let mut cmd = tool("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(program);
    cmd
}

/// The kiln binary, if user nobody can run it (every directory above it must
/// be searchable); skips (or fails in CI) otherwise.
pub fn kiln_for_nobody() -> Option<&'static Path> {
    let kiln_bin = Path::new(env!("CARGO_BIN_EXE_kiln"));
    let probe = run(as_nobody(Path::new("/bin/sh"))
        .arg("-c")
        .arg("test -x \"$0\"")
        .arg(kiln_bin));
    if probe.status.success() {
        return Some(kiln_bin);
    }
    skip(&format!(
        "user nobody cannot run {} (a directory above it is private)",
        kiln_bin.display()
    ));
    None
}

/// Runs `kiln build SOURCE -o <case>/out/image.img -t TYPE ARGS...` as user
/// nobody, which owns `out/` (the case's directory is made searchable; the
/// source must be readable by nobody). Returns kiln's output and the image
/// path, or `None` after a skip when nobody cannot run kiln.
pub fn kiln_build_as_nobody(
    case: &Case,
    source: &Path,
    args: &[&str],
) -> Option<(Output, PathBuf)> {
    crate::sys::chmod(case.dir(), 0o755);
    let out_dir = case.mkdir("out");
    crate::sys::lchown(&out_dir, 65534, 65534);
    let kiln_bin = kiln_for_nobody()?;
    let image = out_dir.join("image.img");
    let out = run(as_nobody(kiln_bin)
        .arg("build")
        .arg(source)
        .arg("-o")
        .arg(&image)
        .args(["-t", case.fs_type])
        .args(args));
    Some((out, image))
}
