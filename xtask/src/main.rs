//! `cargo xtask`: the project's own tools, run through the alias in `.cargo/config.toml`.
//!
//! - `cargo xtask bench`: time kiln against `mke2fs -d` and the read floor on real trees
//!   (without `--corpus`: the whole matrix of issue 8), with peak RSS, disk usage and
//!   `e2fsck -fn` of both images (bench.rs; results in BENCHMARKS.md).
//! - `cargo xtask corpus NAME`: prepare a corpus tree and print its path (corpus.rs).
//! - `cargo xtask soak`: the property tests with many cases, then every fuzz target for a
//!   while (soak.rs).
//! - `cargo xtask boot`: kiln's images boot under QEMU and judge themselves (boot.rs).
//! - `cargo xtask dist`: man pages and shell completions into `target/dist/` (dist.rs).
//!
//! The corpus trees are made by the scripts in `shared/corpus/` beside the repository; this
//! crate only runs them. tree.rs measures a tree so that both tools get the same geometry.

mod bench;
// Booting needs QEMU and a Linux host's tools (and Unix file modes).
#[cfg(unix)]
mod boot;
mod corpus;
mod dist;
mod soak;
mod tree;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

/// The command line of `cargo xtask`.
#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Development tasks of kiln"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

/// One subcommand each.
#[derive(Subcommand)]
enum Task {
    /// Time kiln against `mke2fs -d` on corpus trees (all of them without --corpus) and
    /// check both images with e2fsck.
    Bench(bench::Args),
    /// Prepare a corpus tree (under $BASE, default /tmp/corpus) and print its path.
    Corpus {
        /// Which corpus; `manyfiles` makes two trees, bigdir and small.
        name: corpus::Name,
    },
    /// Run the property tests with many cases, then each fuzz target for a while.
    Soak(soak::Args),
    /// Boot kiln's images under QEMU with Debian's kernel: each guest checks itself, powers
    /// off, and leaves a clean filesystem.
    #[cfg(unix)]
    Boot(boot::Args),
    /// Write kiln's man pages (target/dist/man/) and bash, zsh, fish and PowerShell
    /// completions (target/dist/completions/), generated from its clap definitions.
    Dist,
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Bench(args) => bench::run(&args),
        Task::Corpus { name } => {
            for tree in corpus::prepare(name)? {
                println!("{}", tree.display());
            }
            Ok(())
        }
        Task::Soak(args) => soak::run(&args),
        #[cfg(unix)]
        Task::Boot(args) => boot::run(&args),
        Task::Dist => dist::run(),
    }
}

/// Which build of kiln a task runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Profile {
    /// `cargo build`: what the tests run (boot checks behaviour, not speed).
    #[cfg_attr(not(unix), allow(dead_code))]
    Debug,
    /// `cargo build --release`: what is measured.
    Release,
}

/// Builds the kiln binary with the cargo that runs this xtask and returns its path.
fn build_kiln(profile: Profile) -> Result<PathBuf> {
    cargo_build(&["--bin", "kiln"], profile, Path::new("kiln"))
}

/// Builds what `target` names (cargo's target selection) with the cargo that runs this
/// xtask, and returns the path of `file` (an executable, relative to the profile's output
/// directory).
fn cargo_build(target: &[&str], profile: Profile, file: &Path) -> Result<PathBuf> {
    let root = repo_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(root).arg("build").args(target);
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    eprintln!("building: {cmd:?}");
    let status = cmd.status().context("could not run cargo")?;
    anyhow::ensure!(status.success(), "{cmd:?} failed ({status})");
    let out = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), |dir| root.join(dir));
    let dir = if profile == Profile::Release {
        "release"
    } else {
        "debug"
    };
    let mut path = out.join(dir).join(file);
    path.as_mut_os_string().push(std::env::consts::EXE_SUFFIX);
    Ok(path)
}

/// The repository root. xtask is always built from its own checkout, so the manifest
/// directory known at compile time is one level below the root.
fn repo_root() -> &'static Path {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    // OK to unwrap: CARGO_MANIFEST_DIR is an absolute path ending in `xtask`.
    manifest_dir.parent().unwrap()
}
