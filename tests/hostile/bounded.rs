//! Running a command within bounds: a time limit (killed when it passes)
//! and an address-space limit (`RLIMIT_AS`: an allocation beyond it fails,
//! and Rust aborts, which the exit status shows), with its output kept up
//! to a cap however much it prints.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any command may run on any image: the images are a few MiB.
pub const TIME_LIMIT: Duration = Duration::from_secs(20);
/// Address space of any command: a small multiple of what reading a sane
/// image of these sizes takes (the pristine test runs every command
/// within it), far below what a bomb asks for.
pub const MEMORY_LIMIT: u64 = 2 << 30;
/// Bytes of each output stream kept (an `ls -R` of a shared directory
/// graph prints without end); the rest is read and dropped.
const OUTPUT_CAP: usize = 4 << 20;

/// A command that ended (or was killed at the time limit).
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub elapsed: Duration,
    pub timed_out: bool,
}

impl Finished {
    /// The exit code, `None` if a signal ended it.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// stdout and stderr, lossily as text.
    pub fn text(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.stdout),
            String::from_utf8_lossy(&self.stderr)
        )
    }

    /// How it ended, and what it printed (shortened), for failure messages.
    pub fn describe(&self) -> String {
        let how = match (self.timed_out, self.status.code(), self.status.signal()) {
            (true, _, _) => format!("killed after {:?}", self.elapsed),
            (_, Some(code), _) => format!("exit status {code} after {:?}", self.elapsed),
            (_, None, Some(sig)) => format!("killed by signal {sig}"),
            _ => format!("{}", self.status),
        };
        format!(
            "{how}\n    stdout: {}\n    stderr: {}",
            shorten(&self.stdout),
            shorten(&self.stderr)
        )
    }
}

/// Output for a message: escaped (control bytes visible) and cut short.
fn shorten(bytes: &[u8]) -> String {
    const SHOWN: usize = 600;
    let text = bytes.escape_ascii().to_string();
    if text.len() <= SHOWN {
        return text;
    }
    let mut cut = SHOWN;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}... ({} bytes)", &text[..cut], bytes.len())
}

/// Sets the address-space limit in the child, between fork and exec, so
/// that it holds from the child's first allocation (setting it from the
/// parent after spawning would race with the child).
pub fn limit_memory(cmd: &mut Command, bytes: u64) {
    use rustix::process::{setrlimit, Resource, Rlimit};
    let limit = Rlimit {
        current: Some(bytes),
        maximum: Some(bytes),
    };
    // SAFETY: the closure makes one system call and allocates nothing,
    // which is what may run in a forked child.
    unsafe {
        cmd.pre_exec(move || setrlimit(Resource::As, limit).map_err(std::io::Error::from));
    }
}

/// Runs `cmd` (stdin empty, output captured) within [`TIME_LIMIT`] and
/// [`MEMORY_LIMIT`].
pub fn run(cmd: &mut Command) -> Finished {
    run_within(cmd, TIME_LIMIT)
}

/// Runs `cmd` as [`run`] does, with a time limit of its own.
pub fn run_within(cmd: &mut Command, limit: Duration) -> Finished {
    limit_memory(cmd, MEMORY_LIMIT);
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    wait_bounded(child, limit)
}

/// Waits for `child` for at most `limit`, killing it then; collects its
/// output, which must have been piped.
pub fn wait_bounded(mut child: Child, limit: Duration) -> Finished {
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if start.elapsed() > limit {
            timed_out = true;
            // Our own child, by its pid.
            let _ = child.kill();
            break child.wait().expect("wait for the killed child");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Finished {
        status,
        elapsed: start.elapsed(),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
        timed_out,
    }
}

/// Reads a pipe to its end on a thread, keeping the first [`OUTPUT_CAP`]
/// bytes (the child never blocks on a full pipe).
fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = vec![0u8; 64 << 10];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            let room = OUTPUT_CAP.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
        kept
    })
}

/// Runs `cmd` (within the bounds) and sends it SIGTERM as soon as `ready`
/// holds; panics if it ends first.
pub fn interrupt_when(cmd: &mut Command, ready: impl Fn() -> bool) -> Finished {
    limit_memory(cmd, MEMORY_LIMIT);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < TIME_LIMIT,
            "not ready within {:?}",
            TIME_LIMIT
        );
        if child.try_wait().expect("wait").is_some() {
            panic!("{cmd:?} finished before the signal could be sent: give it more to do");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("a pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("send SIGTERM");
    wait_bounded(child, TIME_LIMIT)
}
