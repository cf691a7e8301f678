//! Issue 7, point 5: SIGINT or SIGTERM during a build removes the partial
//! output; nothing is left beside the target either.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

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

/// Starts a build, waits for its temporary output, sends `signal`, and
/// checks that the build stopped and left nothing.
fn interrupted(signal: rustix::process::Signal) {
    let case = Case::new("ext4", 4096);
    let src = case.mkdir("src");
    // Non-zero data, so every block is copied.
    write_file(&src.join("big"), &vec![0x5a; SOURCE_BYTES]);
    let out_dir = case.mkdir("out");
    let mut child = case
        .build_command(&[&src], &out_dir.join("image.img"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kiln");
    let start = Instant::now();
    while !names(&out_dir).iter().any(|n| n.starts_with(".kiln-")) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no partial output appeared"
        );
        if child.try_wait().unwrap().is_some() {
            panic!("kiln finished before the signal could be sent: make the source larger");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
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

#[test]
fn sigint_removes_the_partial_output() {
    interrupted(rustix::process::Signal::INT);
}

#[test]
fn sigterm_removes_the_partial_output() {
    interrupted(rustix::process::Signal::TERM);
}
