//! `cargo xtask dist`: what a package of kiln ships besides the binary, made by the binary
//! itself from its clap definitions (the hidden `kiln generate`): man pages in
//! `target/dist/man/` (`kiln.1`, `kiln-build.1`, ...) and shell completions in
//! `target/dist/completions/` (bash, zsh, fish and PowerShell).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};

/// What `kiln generate` takes, and the directory under `target/dist/` each goes to.
const KINDS: [(&str, &str); 5] = [
    ("man", "man"),
    ("bash", "completions"),
    ("zsh", "completions"),
    ("fish", "completions"),
    ("powershell", "completions"),
];

/// Builds kiln (release) and writes everything into `target/dist/`; prints each file.
pub(crate) fn run() -> Result<()> {
    let kiln = crate::build_kiln(crate::Profile::Release)?;
    let dist = dist_dir();
    for (kind, sub) in KINDS {
        generate(&kiln, kind, &dist.join(sub))?;
    }
    Ok(())
}

/// `target/dist` (under `$CARGO_TARGET_DIR` if set).
fn dist_dir() -> PathBuf {
    let root = crate::repo_root();
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), |dir| root.join(dir))
        .join("dist")
}

/// `kiln generate KIND DIR`.
fn generate(kiln: &Path, kind: &str, dir: &Path) -> Result<()> {
    let status = Command::new(kiln)
        .args(["generate", kind])
        .arg(dir)
        .status()
        .with_context(|| format!("could not run {}", kiln.display()))?;
    ensure!(status.success(), "kiln generate {kind} failed ({status})");
    Ok(())
}
