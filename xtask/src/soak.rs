//! `cargo xtask soak`: the long checks that the normal test run is too short for. First the
//! property tests of the integration suite with many cases (`KILN_PROPTEST_CASES`), each
//! image also through the kernel (`KILN_PROPTEST_MOUNTS`, as root), then
//! each libFuzzer target of `fuzz/` for a while (cargo-fuzz, its nightly flags enabled on
//! the stable toolchain with `RUSTC_BOOTSTRAP=1`). Prints what ran, how many inputs each
//! target tried, and what failed; exits non-zero if anything did.

use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

/// How many lines of a failed run's output to show.
const SHOWN_LINES: usize = 30;

/// Options of `cargo xtask soak`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Seconds each fuzz target runs (libFuzzer's -max_total_time).
    #[arg(long = "fuzz-seconds", value_name = "N", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..))]
    fuzz_seconds: u64,
    /// Cases of each property test (KILN_PROPTEST_CASES).
    #[arg(long, value_name = "N", default_value_t = 256)]
    cases: u32,
    /// Fuzz only this target (repeatable); default: every target of fuzz/.
    #[arg(long = "target", value_name = "NAME")]
    targets: Vec<String>,
    /// Skip the property tests.
    #[arg(long)]
    no_proptest: bool,
    /// Skip the fuzz targets.
    #[arg(long)]
    no_fuzz: bool,
}

/// How one fuzz target's run ended.
struct FuzzRun {
    target: String,
    /// Inputs tried, if libFuzzer said.
    executions: Option<u64>,
    /// None if it ran clean; otherwise what went wrong (with the crash input's path).
    failure: Option<String>,
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let mut failed = Vec::new();
    if !args.no_proptest {
        if let Err(e) = proptests(args.cases) {
            eprintln!("soak: {e:#}");
            failed.push("property tests".to_string());
        }
    }
    let mut runs = Vec::new();
    if !args.no_fuzz {
        let targets = if args.targets.is_empty() {
            fuzz_targets()?
        } else {
            args.targets.clone()
        };
        for target in targets {
            let run = fuzz(&target, args.fuzz_seconds)?;
            if run.failure.is_some() {
                failed.push(format!("fuzz target {target}"));
            }
            runs.push(run);
        }
    }
    if !runs.is_empty() {
        println!("{:<16} {:>14}  result", "fuzz target", "executions");
        for run in &runs {
            let executions = run
                .executions
                .map_or_else(|| "?".to_string(), |n| n.to_string());
            let result = run.failure.as_deref().unwrap_or("ok");
            println!("{:<16} {executions:>14}  {result}", run.target);
        }
    }
    if failed.is_empty() {
        println!("soak: everything passed");
        return Ok(());
    }
    bail!("failed: {}", failed.join(", "))
}

/// The cargo that runs this xtask, in the repository root (or in `fuzz/`).
fn cargo(dir: &str) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(crate::repo_root().join(dir));
    cmd
}

/// `cargo test --release --test integration -- prop` with `cases` cases per property.
fn proptests(cases: u32) -> Result<()> {
    eprintln!("soak: property tests, {cases} cases each");
    let status = cargo(".")
        .args(["test", "--release", "--test", "integration", "--", "prop"])
        .env("KILN_PROPTEST_CASES", cases.to_string())
        // Every image is also mounted, compared and written by the kernel.
        .env("KILN_PROPTEST_MOUNTS", cases.to_string())
        .env("CI", "true")
        .status()
        .context("could not run cargo")?;
    if !status.success() {
        bail!("the property tests failed ({status})");
    }
    Ok(())
}

/// The fuzz targets, as `cargo fuzz list` names them.
fn fuzz_targets() -> Result<Vec<String>> {
    let output = cargo("fuzz")
        .args(["fuzz", "list"])
        .env("RUSTC_BOOTSTRAP", "1")
        .output()
        .context("could not run cargo fuzz (cargo install cargo-fuzz)")?;
    if !output.status.success() {
        bail!(
            "cargo fuzz list failed ({}):\n{}",
            output.status,
            tail(&output.stderr)
        );
    }
    let targets: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    if targets.is_empty() {
        bail!("cargo fuzz list named no target");
    }
    Ok(targets)
}

/// Runs one fuzz target for `seconds` (after building it).
fn fuzz(target: &str, seconds: u64) -> Result<FuzzRun> {
    eprintln!("soak: fuzzing {target} for {seconds} s");
    let output = cargo("fuzz")
        .args(["fuzz", "run", target, "--"])
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        .env("RUSTC_BOOTSTRAP", "1")
        .output()
        .context("could not run cargo fuzz (cargo install cargo-fuzz)")?;
    Ok(fuzz_result(target, &output))
}

/// What a fuzz run's exit status and output say.
fn fuzz_result(target: &str, output: &Output) -> FuzzRun {
    // libFuzzer and cargo-fuzz both write to stderr; stdout is the target's own.
    let text = String::from_utf8_lossy(&output.stderr);
    let failure = (!output.status.success()).then(|| {
        eprintln!(
            "soak: {target} failed ({}):\n{}",
            output.status,
            tail(&output.stderr)
        );
        match artifact(&text) {
            Some(path) => format!("FAILED, input: {path}"),
            None => format!("FAILED ({})", output.status),
        }
    });
    FuzzRun {
        target: target.to_string(),
        executions: executions(&text),
        failure,
    }
}

/// Inputs run, from libFuzzer's final statistics (`-print_final_stats=1`) or else from its
/// last status line (`#1234\tDONE ...`).
fn executions(text: &str) -> Option<u64> {
    let stat = text.lines().rev().find_map(|line| {
        line.trim()
            .strip_prefix("stat::number_of_executed_units:")
            .and_then(|n| n.trim().parse().ok())
    });
    stat.or_else(|| {
        text.lines().rev().find_map(|line| {
            let (count, rest) = line
                .trim()
                .strip_prefix('#')?
                .split_once(char::is_whitespace)?;
            rest.trim_start()
                .starts_with("DONE")
                .then(|| count.parse().ok())?
        })
    })
}

/// The path of the input that crashed the target, as libFuzzer reports it.
fn artifact(text: &str) -> Option<String> {
    text.lines().rev().find_map(|line| {
        let (_, path) = line.split_once("Test unit written to ")?;
        Some(path.trim().to_string())
    })
}

/// The last `SHOWN_LINES` lines of a tool's output.
fn tail(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(SHOWN_LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executions_from_final_stats_or_done_line() {
        let stats = "#65536\tpulse  cov: 10 ft: 20 corp: 3/4b exec/s: 32768 rss: 40Mb\n\
                     #200000\tDONE   cov: 10 ft: 20 corp: 3/4b exec/s: 3333 rss: 40Mb\n\
                     Done 200000 runs in 61 second(s)\n\
                     stat::number_of_executed_units: 200001\n\
                     stat::average_exec_per_sec:     3278\n";
        assert_eq!(executions(stats), Some(200_001));
        let done =
            "#4\tINITED cov: 1\n#1234\tDONE   cov: 10 ft: 20\nDone 1234 runs in 60 second(s)\n";
        assert_eq!(executions(done), Some(1234));
        assert_eq!(executions("INFO: Seed: 1\n"), None);
    }

    #[test]
    fn crash_inputs_are_named() {
        let text = "==123== ERROR: libFuzzer: deadly signal\n\
                    artifact_prefix='/w/fuzz/artifacts/image/'; \
                    Test unit written to /w/fuzz/artifacts/image/crash-0a1b\n\
                    Base64: AAAA\n";
        assert_eq!(
            artifact(text).as_deref(),
            Some("/w/fuzz/artifacts/image/crash-0a1b")
        );
        assert_eq!(artifact("Done 5 runs\n"), None);
    }
}
