//! What `kiln build` shows while it runs: the progress display on standard
//! error (indicatif), drawn by a thread of its own that polls a
//! [`Progress`]'s counters, and the time each phase took (`--verbose`).
//!
//! The display appears only once a build has run for [`SHOW_AFTER`] (a
//! quick build shows nothing), shows the phase (reading sources: entries so
//! far; planning; writing: bytes of bytes, throughput, time left;
//! committing) and is cleared when the build ends. With `--progress auto`
//! (the default) it is drawn only when standard error is a terminal, so a
//! log or a pipe gets the summary lines alone; `always` draws it anyway
//! (benchmarks, tests), `never` not at all, nor does `--quiet`.

use std::io::{IsTerminal, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

use kiln_lib::{Phase, Progress};

/// How long a build runs before the display appears.
const SHOW_AFTER: Duration = Duration::from_millis(1000);
/// How often the display thread reads the counters and redraws.
const TICK: Duration = Duration::from_millis(150);

/// `--progress`: when to draw the display.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProgressMode {
    /// When standard error is a terminal.
    Auto,
    /// Even when standard error is not a terminal (escape sequences and
    /// all: for benchmarks and tests).
    Always,
    /// Never.
    Never,
}

/// The display of one build, and its phase timings. Made by
/// [`Display::start`], moved through the phases by [`Display::phase`],
/// ended by [`Display::finish`] (or dropped, on an error).
pub(crate) struct Display {
    progress: Arc<Progress>,
    /// The display thread and the channel that stops it (none when nothing
    /// is drawn).
    thread: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    /// The phase in progress and when it began.
    current: (Phase, Instant),
    /// The phases done, with how long each took.
    timings: Vec<(Phase, Duration)>,
}

/// The bar being drawn, if any, for [`message`] to clear while it prints.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

impl Display {
    /// Starts a build's display in [`Phase::Reading`], drawn as `mode`
    /// says unless `quiet`.
    pub(crate) fn start(mode: ProgressMode, quiet: bool) -> Display {
        let progress = Arc::new(Progress::new());
        let target = match mode {
            _ if quiet => None,
            ProgressMode::Never => None,
            ProgressMode::Auto if !std::io::stderr().is_terminal() => None,
            ProgressMode::Auto => Some(ProgressDrawTarget::stderr_with_hz(10)),
            // A draw target of indicatif's own hides itself off a terminal.
            ProgressMode::Always => Some(ProgressDrawTarget::term_like_with_hz(
                Box::new(AnsiStderr),
                10,
            )),
        };
        let thread = target.map(|target| {
            let (stop, stopped) = mpsc::channel();
            let counters = Arc::clone(&progress);
            let handle = std::thread::Builder::new()
                .name("kiln-progress".into())
                .spawn(move || draw(&counters, target, &stopped))
                // OK: a thread that cannot be made leaves no display, not a failed build.
                .ok();
            handle.map(|handle| (stop, handle))
        });
        Display {
            progress,
            thread: thread.flatten(),
            current: (Phase::Reading, Instant::now()),
            timings: Vec::new(),
        }
    }

    /// The counters the build bumps.
    pub(crate) fn progress(&self) -> &Arc<Progress> {
        &self.progress
    }

    /// Ends the phase in progress and enters `phase`.
    pub(crate) fn phase(&mut self, phase: Phase) {
        let (done, since) = self.current;
        let now = Instant::now();
        self.timings.push((done, now - since));
        self.current = (phase, now);
    }

    /// Ends the last phase and clears the display; returns how long each
    /// phase took, in order.
    pub(crate) fn finish(mut self) -> Vec<(Phase, Duration)> {
        self.phase(self.current.0);
        self.stop();
        std::mem::take(&mut self.timings)
    }

    /// Stops the display thread, which clears the display.
    fn stop(&mut self) {
        if let Some((stop, handle)) = self.thread.take() {
            let _ = stop.send(());
            let _ = handle.join();
        }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `--verbose`'s line: how long each phase took, and the whole build.
pub(crate) fn timings_line(timings: &[(Phase, Duration)]) -> String {
    let mut line = String::from("kiln: time:");
    for (phase, took) in timings {
        line.push_str(&format!(" {} {:.3} s,", phase.name(), took.as_secs_f64()));
    }
    let total: Duration = timings.iter().map(|(_, took)| *took).sum();
    line.push_str(&format!(" total {:.3} s", total.as_secs_f64()));
    line
}

/// Prints `line` on standard error with the display (if one is drawn)
/// cleared first and drawn again after, so that a warning printed during a
/// build is neither overwritten nor mixed into the display.
pub(crate) fn message(line: &str) {
    // A poisoned lock only means a panic elsewhere: print anyway.
    let bar = BAR.lock().unwrap_or_else(|e| e.into_inner());
    match &*bar {
        Some(bar) => bar.suspend(|| eprintln!("{line}")),
        None => eprintln!("{line}"),
    }
}

/// The display thread: waits [`SHOW_AFTER`], then every [`TICK`] draws the
/// phase and its counters until told to stop, and clears the display.
fn draw(progress: &Progress, target: ProgressDrawTarget, stop: &mpsc::Receiver<()>) {
    if stop.recv_timeout(SHOW_AFTER) != Err(RecvTimeoutError::Timeout) {
        return;
    }
    // Styled before it has a target, so that nothing is drawn in indicatif's default style.
    let bar = ProgressBar::hidden().with_style(style(progress.phase()));
    bar.set_draw_target(target);
    *BAR.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
    let mut shown = None;
    loop {
        let phase = progress.phase();
        if shown != Some(phase) {
            // A new phase: its own style (first, so that nothing is drawn in the last
            // phase's), and rates and estimates from zero (a new bar starts there).
            bar.set_style(style(phase));
            if shown.is_some() {
                bar.reset();
            }
            shown = Some(phase);
        }
        match phase {
            Phase::Reading => bar.set_position(progress.entries()),
            Phase::Writing => {
                let total = progress.bytes_total();
                let written = progress.bytes_written();
                bar.set_length(total.max(written));
                bar.set_position(written);
            }
            Phase::Planning | Phase::Committing => {}
        }
        bar.tick();
        if stop.recv_timeout(TICK) != Err(RecvTimeoutError::Timeout) {
            break;
        }
    }
    let mut shared = BAR.lock().unwrap_or_else(|e| e.into_inner());
    bar.finish_and_clear();
    *shared = None;
}

/// The line drawn in `phase`.
fn style(phase: Phase) -> ProgressStyle {
    let template = match phase {
        Phase::Reading => "{spinner} kiln: reading sources: {human_pos} entries",
        Phase::Planning => "{spinner} kiln: planning",
        Phase::Writing => {
            "{spinner} kiln: writing [{bar:30}] {binary_bytes} of {binary_total_bytes}, \
             {binary_bytes_per_sec}, {eta} left"
        }
        Phase::Committing => "{spinner} kiln: committing",
    };
    // OK: the templates are constants, and the unit test parses each.
    ProgressStyle::with_template(template)
        .expect("a valid template")
        .progress_chars("=> ")
}

/// Standard error as a terminal that understands ANSI escape sequences,
/// whatever it is (`--progress always`): indicatif's own terminal target
/// draws nothing off a terminal.
#[derive(Debug)]
struct AnsiStderr;

impl AnsiStderr {
    fn write(&self, text: &str) -> std::io::Result<()> {
        std::io::stderr().lock().write_all(text.as_bytes())
    }
}

impl TermLike for AnsiStderr {
    fn width(&self) -> u16 {
        100
    }

    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.write(&format!("\x1b[{n}A"))
    }

    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.write(&format!("\x1b[{n}B"))
    }

    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.write(&format!("\x1b[{n}C"))
    }

    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        self.write(&format!("\x1b[{n}D"))
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.write(&format!("{s}\n"))
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.write(s)
    }

    fn clear_line(&self) -> std::io::Result<()> {
        self.write("\r\x1b[2K")
    }

    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_has_a_valid_style() {
        for phase in Phase::ALL {
            style(phase);
        }
    }

    #[test]
    fn timings_name_every_phase_and_the_total() {
        let timings = [
            (Phase::Reading, Duration::from_millis(1500)),
            (Phase::Planning, Duration::from_millis(20)),
        ];
        assert_eq!(
            timings_line(&timings),
            "kiln: time: reading 1.500 s, planning 0.020 s, total 1.520 s"
        );
    }

    #[test]
    fn a_quick_build_draws_nothing() {
        let mut display = Display::start(ProgressMode::Always, false);
        display.phase(Phase::Planning);
        let timings = display.finish();
        let phases: Vec<Phase> = timings.iter().map(|(p, _)| *p).collect();
        assert_eq!(phases, [Phase::Reading, Phase::Planning]);
        assert!(BAR.lock().unwrap().is_none());
    }
}
