//! One hostile image and the commands run on it: the reading commands,
//! and `kiln build IMAGE -o DEST` (the image as a source, issue 24). Every
//! command ends normally within the bounds, writes nothing outside DEST,
//! and does what its class expects; a build leaves no DEST (nor a
//! temporary file beside it) when it fails, and an image `e2fsck -fn`
//! finds clean when it succeeds.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use super::arena::{changes, disk_usage, prepare_for_nobody, remove_dest, snapshot, Hostile};
use super::bounded::{self, Finished};
use super::edit::{has_metadata_csum, Sums};
use crate::helpers::*;

/// Who runs the commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum User {
    Root,
    /// User and group nobody (65534), no groups: no privilege to lean on.
    Nobody,
}

/// One way of making and reading a hostile image.
#[derive(Clone, Copy, Debug)]
pub struct Variant {
    pub sums: Sums,
    pub user: User,
    /// Whether an error naming a checksum is right whatever else a
    /// command was expected to do (checksums left stale by the edit).
    pub checksum_error_suffices: bool,
}

/// The variants, by the names the tests take.
pub mod variant {
    use super::{Sums, User, Variant};

    /// Checksums made right after the edit: only a semantic check can stop it.
    pub fn checksums_recomputed() -> Variant {
        Variant {
            sums: Sums::Recomputed,
            user: User::Root,
            checksum_error_suffices: false,
        }
    }

    /// Checksums left as they were: a checksum check may stop it first.
    pub fn checksums_stale() -> Variant {
        Variant {
            sums: Sums::Stale,
            checksum_error_suffices: true,
            ..checksums_recomputed()
        }
    }

    /// Checksums recomputed, commands run as user nobody.
    pub fn as_nobody() -> Variant {
        Variant {
            user: User::Nobody,
            ..checksums_recomputed()
        }
    }

    /// An image without metadata_csum (ext2, ext3), or not edited at all.
    pub fn no_checksums() -> Variant {
        checksums_recomputed()
    }

    /// A checksum made wrong on purpose, and judged as such (class 9).
    pub fn checksum_wrong() -> Variant {
        Variant {
            sums: Sums::Stale,
            ..checksums_recomputed()
        }
    }
}

/// How long `e2fsck -fn` may judge an image (it walks a shared extent
/// tree for minutes).
const E2FSCK_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What a command must do, beyond ending normally within the bounds.
pub enum Expect {
    /// Nothing more.
    Any,
    /// Exit 1 (verify: 1 or 2) and name every needle.
    Fails(Vec<String>),
    /// Exit 0, every needle on stdout.
    Prints(Vec<String>),
    /// Exit 0, every needle on stderr (a warning).
    Warns(Vec<String>),
    /// Exit 0 printing exactly these bytes, or fail.
    OutputsOrFails(Vec<u8>),
    /// A check of its own: `Err` says what is wrong.
    Custom(fn(&Finished) -> Result<(), String>),
}

/// [`Expect::Fails`]: each needle is a `|`-separated list of alternatives,
/// matched without regard to case in stdout and stderr.
pub fn fails(needles: &[&str]) -> Expect {
    Expect::Fails(needles.iter().map(|s| s.to_string()).collect())
}

/// [`Expect::Prints`], needles as for [`fails`].
pub fn prints(needles: &[&str]) -> Expect {
    Expect::Prints(needles.iter().map(|s| s.to_string()).collect())
}

/// [`Expect::Warns`], needles as for [`fails`].
pub fn warns(needles: &[&str]) -> Expect {
    Expect::Warns(needles.iter().map(|s| s.to_string()).collect())
}

/// Whether `text` holds every needle (one of its `|` alternatives),
/// ignoring case.
fn mentions(text: &str, needles: &[String]) -> bool {
    let text = text.to_lowercase();
    needles
        .iter()
        .all(|n| n.split('|').any(|alt| text.contains(&alt.to_lowercase())))
}

/// The commands run on an image: the reading commands, and a build with
/// the image as its source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Info,
    Ls,
    Cat(String),
    Extract,
    Verify,
    /// `kiln build IMAGE -o DEST -t ext4`: DEST is the new image.
    Build,
}

/// One command to run and what it must do.
struct Cmd {
    kind: Kind,
    flags: Vec<&'static str>,
    expect: Expect,
}

impl Hostile {
    /// The commands to run on the image: by default `info`, `info
    /// --json`, `ls -lR /`, `verify --against SRC`, `extract` and `build`,
    /// each expected only to end normally (and a build that succeeds to
    /// make a clean image).
    pub fn check(&self, v: Variant) -> Checks<'_> {
        let any = |kind, flags| Cmd {
            kind,
            flags,
            expect: Expect::Any,
        };
        Checks {
            h: self,
            v,
            cmds: vec![
                any(Kind::Info, vec![]),
                any(Kind::Info, vec!["--json"]),
                any(Kind::Ls, vec!["-lR"]),
                any(Kind::Verify, vec![]),
                any(Kind::Extract, vec![]),
                any(Kind::Build, vec![]),
            ],
        }
    }
}

/// The commands of one case, run by [`Checks::run`].
pub struct Checks<'a> {
    h: &'a Hostile,
    v: Variant,
    cmds: Vec<Cmd>,
}

impl Checks<'_> {
    /// Sets what the command `kind` with `flags` must do (added if it is
    /// not among the defaults).
    pub fn expect(mut self, kind: Kind, flags: &[&'static str], expect: Expect) -> Self {
        let flags = flags.to_vec();
        match self
            .cmds
            .iter_mut()
            .find(|c| c.kind == kind && c.flags == flags)
        {
            Some(cmd) => cmd.expect = expect,
            None => self.cmds.push(Cmd {
                kind,
                flags,
                expect,
            }),
        }
        self
    }

    pub fn info(self, expect: Expect) -> Self {
        self.expect(Kind::Info, &[], expect)
    }

    pub fn info_json(self, expect: Expect) -> Self {
        self.expect(Kind::Info, &["--json"], expect)
    }

    /// `ls -lR /`.
    pub fn ls(self, expect: Expect) -> Self {
        self.expect(Kind::Ls, &["-lR"], expect)
    }

    pub fn cat(self, path: &str, expect: Expect) -> Self {
        self.expect(Kind::Cat(path.to_string()), &[], expect)
    }

    pub fn extract(self, expect: Expect) -> Self {
        self.expect(Kind::Extract, &[], expect)
    }

    pub fn verify(self, expect: Expect) -> Self {
        self.expect(Kind::Verify, &[], expect)
    }

    /// `build IMAGE -o DEST -t ext4`.
    pub fn build(self, expect: Expect) -> Self {
        self.expect(Kind::Build, &[], expect)
    }

    /// Runs every command and panics with every failure found (not only
    /// the first: the list tells what a broken build still gets wrong).
    pub fn run(self) {
        let h = self.h;
        if self.v.user == User::Nobody && !prepare_for_nobody(h) {
            return;
        }
        let mut failures = self.checksums_judged_by_e2fsck();
        let image_len = std::fs::metadata(&h.image).expect("image").len();
        for cmd in &self.cmds {
            let (args, shown) = self.args(cmd);
            let before = snapshot(h.case.dir(), &h.dest());
            let out = bounded::run(&mut self.command(&args));
            let mut problems = ended_normally(&out, cmd);
            problems.extend(self.met(&out, cmd));
            problems.extend(changes(&before, &snapshot(h.case.dir(), &h.dest())));
            match cmd.kind {
                Kind::Extract => {
                    problems.extend(dest_problems(&h.dest(), &out, image_len));
                    remove_dest(&h.dest());
                }
                Kind::Build => {
                    problems.extend(built_image_problems(&h.dest(), &out));
                    remove_dest(&h.dest());
                }
                _ => {}
            }
            failures.extend(
                problems
                    .into_iter()
                    .map(|p| format!("`kiln {shown}`: {p}\n    ({})", out.describe())),
            );
        }
        assert!(
            failures.is_empty(),
            "{} failures ({:?}):\n{}",
            failures.len(),
            self.v,
            failures.join("\n")
        );
    }

    /// The arguments of `cmd`, and how to show them.
    fn args(&self, cmd: &Cmd) -> (Vec<OsString>, String) {
        let h = self.h;
        let mut args: Vec<OsString> = Vec::new();
        let mut word = |s: &str| args.push(s.into());
        match &cmd.kind {
            Kind::Info => word("info"),
            Kind::Ls => word("ls"),
            Kind::Cat(_) => word("cat"),
            Kind::Extract => word("extract"),
            Kind::Verify => word("verify"),
            Kind::Build => word("build"),
        }
        cmd.flags.iter().for_each(|f| word(f));
        args.push(h.image_arg());
        match &cmd.kind {
            Kind::Info => {}
            Kind::Ls => args.push("/".into()),
            Kind::Cat(path) => args.push(path.into()),
            Kind::Extract => args.push(h.dest().into()),
            Kind::Verify => args.extend(["--against".into(), h.src.clone().into()]),
            Kind::Build => args.extend(["-o".into(), h.dest().into(), "-t".into(), "ext4".into()]),
        }
        let shown = args
            .iter()
            .map(|a| {
                a.to_string_lossy()
                    .replace(&h.case.dir().display().to_string(), "…")
            })
            .collect::<Vec<_>>()
            .join(" ");
        (args, shown)
    }

    /// `kiln ARGS` as the variant's user.
    fn command(&self, args: &[OsString]) -> Command {
        let mut cmd = match self.v.user {
            User::Root => kiln_command(),
            User::Nobody => {
                let mut cmd = as_nobody(Path::new(env!("CARGO_BIN_EXE_kiln")));
                cmd.env("LC_ALL", "C");
                cmd
            }
        };
        cmd.args(args);
        cmd
    }

    /// What `cmd`'s expectation finds wrong with `out`.
    fn met(&self, out: &Finished, cmd: &Cmd) -> Vec<String> {
        let failed = matches!(out.code(), Some(1 | 2));
        if self.v.checksum_error_suffices
            && failed
            && out.text().to_lowercase().contains("checksum")
        {
            return Vec::new();
        }
        let allowed_failure = match cmd.kind {
            Kind::Verify => [1, 2].as_slice(),
            _ => [1].as_slice(),
        };
        let succeeded = out.code() == Some(0);
        let problem = match &cmd.expect {
            Expect::Any => None,
            Expect::Fails(needles) => {
                if !out.code().is_some_and(|c| allowed_failure.contains(&c)) {
                    Some(format!("should fail with status {allowed_failure:?}"))
                } else if !mentions(&out.text(), needles) {
                    Some(format!("the message should mention {needles:?}"))
                } else {
                    None
                }
            }
            Expect::Prints(needles) => (!succeeded
                || !mentions(&String::from_utf8_lossy(&out.stdout), needles))
            .then(|| format!("should succeed and print {needles:?}")),
            Expect::Warns(needles) => (!succeeded
                || !mentions(&String::from_utf8_lossy(&out.stderr), needles))
            .then(|| format!("should succeed and warn about {needles:?}")),
            Expect::OutputsOrFails(bytes) => (succeeded && out.stdout != *bytes).then(|| {
                format!(
                    "succeeded, so it should print {:?}",
                    bytes.escape_ascii().to_string()
                )
            }),
            Expect::Custom(check) => check(out).err(),
        };
        problem.into_iter().collect()
    }

    /// With checksums recomputed, `e2fsck -fn` must not find a checksum
    /// wrong: the test's own proof that the editors recompute them as the
    /// kernel does (it may, and should, complain about the damage itself).
    fn checksums_judged_by_e2fsck(&self) -> Vec<String> {
        if self.v.sums != Sums::Recomputed
            || self.h.part.is_some()
            || !has_metadata_csum(&self.h.image)
            || !require_tool("e2fsck")
        {
            return Vec::new();
        }
        let out = bounded::run_within(
            tool("e2fsck").arg("-fn").arg(&self.h.image),
            E2FSCK_TIME_LIMIT,
        );
        // A bomb may outlast the limit: what it printed so far is judged.
        let text = out.text();
        let complaints: Vec<&str> = text
            .lines()
            .filter(|l| l.to_lowercase().contains("checksum"))
            .map(|l| l.trim())
            .collect::<Vec<_>>();
        if !complaints.is_empty() {
            return vec![format!(
                "e2fsck -fn finds a checksum wrong after they were recomputed (a bug of the test's editors): {complaints:?}"
            )];
        }
        Vec::new()
    }
}

/// The checks every command passes on every image: it ended by itself
/// within the time limit, with status 0, 1 or 2 (no signal, no abort, no
/// panic's 101), with a message on failure and no raw control bytes in
/// what a terminal would show.
fn ended_normally(out: &Finished, cmd: &Cmd) -> Vec<String> {
    let mut problems = Vec::new();
    if out.timed_out {
        problems.push(format!("did not finish within {:?}", bounded::TIME_LIMIT));
    } else if !matches!(out.code(), Some(0..=2)) {
        problems.push("ended abnormally (a signal, an abort, or a panic's status)".into());
    }
    if out.text().contains("panicked") {
        problems.push("panicked".into());
    }
    let failed = out.code().is_some_and(|c| c != 0);
    if failed && !String::from_utf8_lossy(&out.stderr).contains("kiln: error:") {
        problems.push("failed without a `kiln: error:` message".into());
    }
    let mut streams = vec![("stderr", &out.stderr)];
    if !matches!(cmd.kind, Kind::Cat(_)) {
        streams.push(("stdout", &out.stdout));
    }
    for (name, bytes) in streams {
        if let Some(&c) = bytes.iter().find(|&&c| is_raw_control(c)) {
            problems.push(format!("printed the raw control byte {c:#04x} on {name}"));
        }
    }
    problems
}

/// A byte a terminal acts on rather than shows (line ends and tabs aside).
fn is_raw_control(c: u8) -> bool {
    (c < 0x20 && c != b'\n' && c != b'\t') || c == 0x7F
}

/// What a build left wrong in DEST, its output: after a failure, DEST must
/// not exist (a temporary file left beside it is a change outside DEST,
/// which the snapshots catch); after a success, it must be an image
/// `e2fsck -fn` finds clean.
fn built_image_problems(dest: &Path, out: &Finished) -> Vec<String> {
    if out.code() != Some(0) {
        return match dest.symlink_metadata() {
            Ok(_) => vec!["failed but left its output behind".into()],
            Err(_) => Vec::new(),
        };
    }
    if !dest.is_file() {
        return vec!["succeeded but wrote no image".into()];
    }
    if !require_tool("e2fsck") {
        return Vec::new();
    }
    let fsck = bounded::run_within(tool("e2fsck").arg("-fn").arg(dest), E2FSCK_TIME_LIMIT);
    if fsck.code() == Some(0) {
        return Vec::new();
    }
    let text = fsck.text();
    let complaints: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("Pass ") && !l.starts_with("e2fsck "))
        .take(8)
        .collect();
    vec![format!(
        "succeeded, but e2fsck -fn finds its output unclean ({}): {complaints:?}",
        fsck.describe().lines().next().unwrap_or_default()
    )]
}

/// What an extract left wrong in DEST: after a failure, DEST must be gone;
/// in any case it may not hold more than the image (a bomb's output).
fn dest_problems(dest: &Path, out: &Finished, image_len: u64) -> Vec<String> {
    let mut problems = Vec::new();
    if out.code() != Some(0) && dest.symlink_metadata().is_ok() {
        problems.push("failed but left DEST behind (half-written)".into());
    }
    let used = disk_usage(dest);
    if used > image_len {
        problems.push(format!(
            "DEST uses {used} bytes of disk, more than the whole image ({image_len})"
        ));
    }
    problems
}
