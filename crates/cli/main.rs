//! `kiln`: build ext2/ext3/ext4 filesystem images and GPT disk images from
//! directory trees and archives, without root, loop devices or mounting.
//!
//! This crate is only flags and printing: it maps the command line to the
//! typed requests of [`kiln_lib`] (build, build a disk, verify, extract)
//! and prints their reports; `info`, `ls` and `cat` (in `inspect`) show
//! what kiln's image reader finds.
#![forbid(unsafe_code)]

mod build;
mod display;
mod extract;
mod flags;
mod generate;
mod inspect;
mod mkfs;
mod verify;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::FromArgMatches;
use kiln_lib::Observer;

use flags::{Cli, Command};

fn main() -> ExitCode {
    // Destructors do not run when a signal ends the process: remove the
    // output being written (never renamed into place), then exit as
    // interrupted. Without a handler (it failed to install) the temporary
    // file beside the output is left, which is still never the output.
    let _ = ctrlc::set_handler(|| {
        kiln_host::remove_partial_outputs();
        eprintln!("kiln: interrupted: the partial output was removed");
        std::process::exit(130);
    });
    kiln_lib::size_thread_pool();
    if let Some(program) = mkfs::invoked_as() {
        return match mkfs::run(&program, std::env::args_os().skip(1).collect()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{program}: {}", message(&e));
                ExitCode::FAILURE
            }
        };
    }
    let matches = flags::command().get_matches();
    let result = Cli::from_arg_matches(&matches)
        .map_err(|e| e.exit())
        .and_then(|cli| match cli.command {
            Command::Build(args) => {
                // OK: clap only yields Build when the build subcommand matched.
                let sub = matches.subcommand_matches("build").expect("build matches");
                build::build(&args, args.tree.layers(&args.sources, sub))
            }
            Command::Verify(args) => {
                // OK: as for build.
                let sub = matches
                    .subcommand_matches("verify")
                    .expect("verify matches");
                verify::verify(&args, args.tree.layers(&args.sources, sub))
            }
            Command::Info(args) => inspect::info(&args),
            Command::Ls(args) => inspect::ls(&args),
            Command::Cat(args) => inspect::cat(&args),
            Command::Extract(args) => extract::extract(&args),
            Command::Generate(args) => generate::generate(&args),
            Command::Mkfs(args) => mkfs::run("mke2fs", args.args),
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::from(BROKEN_PIPE_STATUS),
        Err(e) => {
            eprintln!("kiln: error: {}", message(&e));
            failure_status(&e, matches.subcommand_name())
        }
    }
}

/// The exit status when the reader of standard output goes away (`kiln ls
/// IMG | head -1`): what a shell reports for `cat`, which SIGPIPE ends
/// (128 + 13). Rust ignores SIGPIPE, so kiln sees the write fail instead.
const BROKEN_PIPE_STATUS: u8 = 141;

/// Whether `e` comes from a pipe whose reader went away: as with any tool
/// that SIGPIPE ends, that is no error to report. Only standard output is
/// a pipe kiln writes to.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// 1 for a failure, but `verify` says 1 only for differences and 2 for
/// trouble, as `cmp` and `diff` do, so a script can tell them apart.
fn failure_status(e: &anyhow::Error, command: Option<&str>) -> ExitCode {
    if command == Some("verify") && !e.is::<verify::Differences>() {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

/// The error and its causes on one line; a cause that the message already
/// quotes (kiln's errors include the host's words) is not repeated.
pub(crate) fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

/// Prints what the library reports as kiln's own lines on stderr (around
/// a progress display, if one is drawn).
pub(crate) struct Stderr;

impl Observer for Stderr {
    fn note(&self, text: &str) {
        display::message(&format!("kiln: note: {text}"));
    }

    fn warning(&self, text: &str) {
        display::message(&format!("kiln: warning: {text}"));
    }
}

/// `SOURCE_DATE_EPOCH`, if set.
pub(crate) fn source_date_epoch() -> Result<Option<i64>> {
    let Some(v) = std::env::var_os("SOURCE_DATE_EPOCH") else {
        return Ok(None);
    };
    let s = v.to_string_lossy();
    let secs = s
        .trim()
        .parse::<i64>()
        .with_context(|| format!("SOURCE_DATE_EPOCH={s:?} is not a number of seconds"))?;
    Ok(Some(secs))
}
