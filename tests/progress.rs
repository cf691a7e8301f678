//! Issue 18, point 4: the progress display of `kiln build` on a terminal
//! (under `script`, which gives kiln a pty), gone when standard error is a
//! pipe; `-q` and `-v`.
//!
//! A build is made slow on purpose, in both phases the display shows: its
//! source is a tar stream on stdin whose second half comes 2.5 s after its
//! first (two archives joined, read with `--ignore-zeros`), and its output
//! is a stream to stdout whose reader starts reading 5 s after the start,
//! so that writing waits for it some 2.5 s (the display shows from 1 s on).

use std::path::Path;
use std::process::Stdio;

use crate::helpers::*;

/// The escape character that starts every terminal control sequence.
const ESC: char = '\u{1b}';

/// Makes `a.tar` and `b.tar` in `dir` (200 small files and a 4 MiB file of
/// data each), and returns the shell pipeline that runs `kiln build` on
/// them as described above, with `flags`, writing the image to `out.img`.
fn slow_build(dir: &Path, flags: &str) -> String {
    for part in ["a", "b"] {
        let src = dir.join(part).join(part);
        std::fs::create_dir_all(&src).unwrap();
        for i in 0..200 {
            write_file(
                &src.join(format!("f{i}")),
                format!("{part}{i}\n").as_bytes(),
            );
        }
        let big: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8 + 1).collect();
        write_file(&src.join("big"), &big);
        let tar = dir.join(format!("{part}.tar"));
        let out = run(tool("tar")
            .arg("-cf")
            .arg(&tar)
            .arg("-C")
            .arg(dir.join(part))
            .arg(part));
        assert_success(&out, "tar");
    }
    let kiln = env!("CARGO_BIN_EXE_kiln");
    let d = dir.display();
    format!(
        "{{ cat {d}/a.tar; sleep 2.5; cat {d}/b.tar; }} | \
         {kiln} build - --ignore-zeros -t ext4 -o - {flags} | \
         {{ sleep 5; cat > {d}/out.img; }}"
    )
}

/// On a terminal, the display shows each slow phase, and is cleared before
/// the summary, which is the last thing printed.
#[test]
fn the_display_appears_on_a_terminal_and_is_cleared() {
    if !require_tool("script") || !require_tool("tar") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pipeline = slow_build(dir.path(), "");
    // `script -qec CMD /dev/null`: CMD on a new pty, its output on ours.
    let out = run(tool("script")
        .args(["-qec", &pipeline, "/dev/null"])
        .stdin(Stdio::null()));
    assert_success(&out, "kiln build under script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("kiln: reading sources: ") && text.contains(" entries"),
        "no reading phase: {text:?}"
    );
    assert!(
        text.contains("kiln: writing [") && text.contains(" of "),
        "no writing phase: {text:?}"
    );
    // Cleared: after the last line erase (and the cursor's move back up to
    // where the display was), only the summary.
    let (_, after) = text.rsplit_once(&format!("{ESC}[2K")).unwrap();
    let after = after.trim_start_matches(&format!("{ESC}[1A"));
    assert!(after.starts_with("kiln: wrote -"), "{after:?}");
    assert!(!after.contains(ESC), "{after:?}");
    assert!(std::fs::metadata(dir.path().join("out.img")).unwrap().len() > 8 << 20);
}

/// Standard error a pipe: the same slow build prints the summary alone (no
/// escape sequence, no phase), unless `--progress always` asks for it.
#[test]
fn no_display_when_stderr_is_a_pipe_unless_always() {
    if !require_tool("tar") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pipeline = slow_build(dir.path(), "");
    let out = run(tool("sh").args(["-c", &pipeline]));
    assert_success(&out, "kiln build");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("kiln: wrote -"), "{stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(!stderr.contains(ESC), "{stderr:?}");

    let pipeline = slow_build(dir.path(), "--progress always");
    let out = run(tool("sh").args(["-c", &pipeline]));
    assert_success(&out, "kiln build --progress always");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("kiln: reading sources: "), "{stderr:?}");
    assert!(stderr.contains(ESC), "{stderr:?}");

    let pipeline = slow_build(dir.path(), "--progress never");
    let out = run(tool("sh").args(["-c", &pipeline]));
    assert_success(&out, "kiln build --progress never");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(ESC), "{stderr:?}");
}

/// `-q`: no summary (nor display, even with --progress always); warnings
/// still print. `-v`: the time of each phase after the summary.
#[test]
fn quiet_and_verbose() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    write_file(&src.join("f"), b"hello\n");
    let build = |name: &str, flags: &[&str]| {
        let mut cmd = kiln_command();
        cmd.arg("build")
            .arg(&src)
            .arg("-o")
            .arg(dir.path().join(name));
        run(cmd.args(flags))
    };

    let out = build("q.img", &["-q", "--progress", "always"]);
    assert_success(&out, "kiln build -q");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");

    // --size auto is full by design (an ext2 of small files has no block
    // left over): the low-room warning stays under -q.
    for i in 0..300 {
        write_file(&src.join(format!("f{i}")), b"x");
    }
    let full = ["--quiet", "--size", "auto", "-t", "ext2", "-b", "1024"];
    let out = build("full.img", &full);
    assert_success(&out, "kiln build -q --size auto");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("kiln: warning: "), "{stderr:?}");
    assert!(!stderr.contains("kiln: wrote"), "{stderr:?}");

    let out = build("v.img", &["-v"]);
    assert_success(&out, "kiln build -v");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr:?}");
    assert!(lines[0].starts_with("kiln: wrote "), "{stderr:?}");
    let timing = lines[1];
    for phase in ["reading", "planning", "writing", "committing", "total"] {
        assert!(
            timing.contains(&format!(" {phase} ")) && timing.contains(" s"),
            "{phase}: {timing:?}"
        );
    }

    let out = build("qv.img", &["-q", "-v"]);
    assert!(!out.status.success(), "-q with -v: {}", describe(&out));
}
