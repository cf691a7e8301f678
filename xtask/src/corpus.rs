//! Corpus trees, made by the scripts in `shared/corpus/`.
//!
//! The scripts are idempotent (each leaves a `.NAME_done` marker under `$BASE`), need root
//! where their corpus does, and are run where they are: they are not copied into the
//! repository (see `shared/corpus/README.md`).

use std::io;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};
use clap::ValueEnum;

/// Where the trees go when `$BASE` is not set; the scripts use the same default.
const DEFAULT_BASE: &str = "/tmp/corpus";

/// A corpus that a script in `shared/corpus/` makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Name {
    /// A Debian bookworm minbase root file system (debootstrap; root).
    Rootfs,
    /// The Linux 6.1 source tree from Debian's linux-source package.
    Linux,
    /// One directory of 1,000,000 empty files, and 500,000 small files.
    Manyfiles,
    /// Every file type and limit that an image builder can trip over (root).
    Torture,
}

impl Name {
    /// The script that makes this corpus.
    fn script(self) -> &'static str {
        match self {
            Name::Rootfs => "make_rootfs.sh",
            Name::Linux => "make_linux.sh",
            Name::Manyfiles => "make_manyfiles.sh",
            Name::Torture => "make_torture.sh",
        }
    }

    /// The trees the script leaves under `$BASE`.
    fn trees(self) -> &'static [&'static str] {
        match self {
            Name::Rootfs => &["rootfs"],
            Name::Linux => &["linux"],
            Name::Manyfiles => &["bigdir", "small"],
            Name::Torture => &["torture"],
        }
    }
}

/// Makes the corpus unless it is already there, and returns the paths of its trees.
///
/// The script's own output goes to stderr, so that stdout carries only what the caller prints.
pub(crate) fn prepare(name: Name) -> Result<Vec<PathBuf>> {
    let script = shared_dir()?.join("corpus").join(name.script());
    ensure!(script.is_file(), "no corpus script at {}", script.display());
    let base = base();
    eprintln!("corpus: {} (BASE={})", script.display(), base.display());
    // Through `bash`, because shared/ is copied without its execute bits.
    let status = Command::new("bash")
        .arg(&script)
        .env("BASE", &base)
        .stdout(Stdio::from(io::stderr()))
        .status()
        .with_context(|| format!("could not run bash {}", script.display()))?;
    if !status.success() {
        bail!("{} failed ({status})", script.display());
    }
    Ok(name.trees().iter().map(|tree| base.join(tree)).collect())
}

/// The folder that the corpus trees go under: `$BASE`, as the scripts read it.
pub(crate) fn base() -> PathBuf {
    std::env::var_os("BASE").map_or_else(|| PathBuf::from(DEFAULT_BASE), PathBuf::from)
}

/// The project's shared folder: `$KILN_SHARED`, else `shared/` beside the repository, which
/// is where CI and the developers' machines have it.
fn shared_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os("KILN_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => crate::repo_root().join("../shared"),
    };
    ensure!(
        dir.join("corpus").is_dir(),
        "no corpus scripts in {}: set KILN_SHARED to the folder that holds corpus/",
        dir.display()
    );
    Ok(dir)
}
