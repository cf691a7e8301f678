//! Issue 18: every option is settled before any source is read. The source
//! of these builds is a FIFO nobody writes to: whoever opens it waits
//! forever, so a build that reads its sources before checking a flag hangs
//! (and is killed here) instead of failing at once, naming the flag.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

/// How long a refused flag may take: clap and the library's checks run in
/// milliseconds; the margin covers a loaded test machine.
const PROMPT: Duration = Duration::from_secs(10);

/// Runs `kiln build FIFO -o OUT ARGS...` and returns its stderr, failing if
/// it succeeds or has not exited within [`PROMPT`].
fn refused(fifo: &Path, out: &Path, args: &[&str]) -> String {
    let mut child = kiln_command()
        .arg("build")
        .arg(fifo)
        .arg("-o")
        .arg(out)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_at_most(&mut child, PROMPT)
        .unwrap_or_else(|| panic!("kiln build {args:?} read its source before refusing a flag"));
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(!status.success(), "kiln build {args:?} succeeded");
    assert!(!out.exists(), "kiln build {args:?} left an output");
    stderr
}

/// The exit status, or None (the child killed) after `limit`.
fn wait_at_most(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    None
}

#[test]
fn a_bad_flag_fails_before_any_source_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("source");
    crate::sys::mknod(&fifo, crate::sys::Kind::Fifo, 0o600, 0, 0);
    let out = dir.path().join("out.img");
    for (args, want) in [
        (&["-b", "512"][..], "block size 512 (-b)"),
        (&["-t", "vfat", "-b", "1000"], "cluster size 1000"),
        (&["-t", "vfat", "-N", "9"], "-N: an ext option"),
        (&["-I", "1024"], "--inode-size"),
        (&["-L", "a label of 17 bytes"], "--label"),
        (&["--compress", "zstd:99"], "--compress"),
        (&["--size", "12Q"], "--size"),
        (&["--free=-3%"], "--free"),
        (&["--uid-map", "1:2"], "--uid-map"),
        (&["--root-mode", "99999"], "--root-mode"),
        (&["-O", "shiny"], "shiny"),
        (&["-O", "^has_journal", "-J", "64"], "journal"),
        (&["--size", "1G", "--free", "10%"], "--free"),
        (&["-m", "60"], "reserved"),
        (&["--exclude", "/a/[b"], "/a/[b"),
    ] {
        let stderr = refused(&fifo, &out, args);
        assert!(
            stderr.contains(want),
            "kiln build {args:?}: {want:?} not in {stderr:?}"
        );
    }
}
