//! `kiln generate man|bash|zsh|fish|powershell DIR` (hidden): man pages and
//! shell completions, made from the same clap definitions as `--help`
//! (flags.rs), as ripgrep's `--generate` makes its own. `cargo xtask dist`
//! runs it for every kind into `target/dist/`; packagers can run it too.

use std::path::Path;

use anyhow::{Context, Result};
use clap_complete::Shell;

use crate::flags::{command, GenerateArgs, Generated};

/// Writes what `args` asks for into its directory (created if missing).
pub(crate) fn generate(args: &GenerateArgs) -> Result<()> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    let shell = match args.what {
        Generated::Man => return man_pages(dir),
        Generated::Bash => Shell::Bash,
        Generated::Zsh => Shell::Zsh,
        Generated::Fish => Shell::Fish,
        Generated::Powershell => Shell::PowerShell,
    };
    let path = clap_complete::generate_to(shell, &mut command(), "kiln", dir)
        .with_context(|| dir.display().to_string())?;
    println!("{}", path.display());
    Ok(())
}

/// `kiln.1`, and a page per subcommand that is not hidden (`kiln-build.1`, ...).
fn man_pages(dir: &Path) -> Result<()> {
    clap_mangen::generate_to(command(), dir).with_context(|| dir.display().to_string())?;
    let mut pages: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "1"))
        .collect();
    pages.sort();
    for page in pages {
        println!("{}", page.display());
    }
    Ok(())
}
