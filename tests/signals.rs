//! Issue 7, point 5: SIGINT or SIGTERM during a build removes the partial
//! output; nothing is left beside the target either. Issue 17: nor after
//! SIGKILL.

use std::path::Path;
use std::process::Stdio;

use crate::helpers::*;

/// Bytes of the source file: enough that the build is still copying when
/// the signal arrives (the signal is sent as soon as the partial output
/// exists, not after a guessed delay).
const SOURCE_BYTES: usize = 512 << 20;

/// The names in `dir`.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A build of a large file into the empty directory `out/` of `case`,
/// started and seen to have its output open.
fn build_under_way(case: &Case) -> (std::process::Child, std::path::PathBuf) {
    let src = case.mkdir("src");
    // Non-zero data, so every block is copied.
    write_file(&src.join("big"), &vec![0x5a; SOURCE_BYTES]);
    let out_dir = case.mkdir("out");
    let mut child = case
        .build_command(&[&src], &out_dir.join("image.img"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kiln");
    wait_for_open_file(&mut child, &out_dir);
    (child, out_dir)
}

/// Starts a build, waits for its temporary output, sends `signal`, and
/// checks that the build stopped and left nothing.
fn interrupted(signal: rustix::process::Signal) {
    let case = Case::new("ext4", 4096);
    let (child, out_dir) = build_under_way(&case);
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("a pid");
    rustix::process::kill_process(pid, signal).expect("send the signal");
    let out = child.wait_with_output().expect("wait for kiln");
    assert_eq!(out.status.code(), Some(130), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("interrupted"),
        "{}",
        describe(&out)
    );
    assert_eq!(names(&out_dir), Vec::<String>::new(), "left behind");
}

/// Whether files in `dir` can be made with `O_TMPFILE`.
fn has_tmpfile(dir: &Path) -> bool {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        dir,
        OFlags::TMPFILE | OFlags::RDWR,
        Mode::from_raw_mode(0o600),
    )
    .is_ok()
}

/// Issue 17, point 8: SIGKILL leaves no handler a chance; on Linux the
/// output is written unnamed (`O_TMPFILE`) and named only when complete,
/// so nothing is left beside the target either.
#[test]
fn sigkill_leaves_nothing() {
    let case = Case::new("ext4", 4096);
    if !has_tmpfile(case.dir()) {
        skip("the temporary directory's filesystem has no O_TMPFILE");
        return;
    }
    let (mut child, out_dir) = build_under_way(&case);
    child.kill().expect("send SIGKILL");
    let status = child.wait().expect("wait for kiln");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{status}"
    );
    assert_eq!(names(&out_dir), Vec::<String>::new(), "left behind");
}

#[test]
fn sigint_removes_the_partial_output() {
    interrupted(rustix::process::Signal::INT);
}

#[test]
fn sigterm_removes_the_partial_output() {
    interrupted(rustix::process::Signal::TERM);
}
