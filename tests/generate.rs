//! Issue 18, point 4: man pages and shell completions from the clap
//! definitions (`kiln generate`, which `cargo xtask dist` runs), checked by
//! groff.

use std::path::Path;

use crate::helpers::*;

/// Runs `kiln generate KIND DIR` and returns the text of `file` in DIR,
/// which must be there and mention `kiln build` and its `--fs-type`.
fn generated(kind: &str, dir: &Path, file: &str) -> String {
    let out = kiln([
        std::ffi::OsStr::new("generate"),
        kind.as_ref(),
        dir.as_ref(),
    ]);
    assert_success(&out, &format!("kiln generate {kind}"));
    let text = std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("kiln generate {kind}: {file}: {e}"));
    // roff writes a hyphen as `\-`.
    let plain = text.replace("\\-", "-");
    assert!(plain.contains("build"), "{file}: no `build`");
    assert!(plain.contains("fs-type"), "{file}: no `--fs-type`");
    text
}

#[test]
fn completions_for_every_shell() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, file) in [
        ("bash", "kiln.bash"),
        ("zsh", "_kiln"),
        ("fish", "kiln.fish"),
        ("powershell", "_kiln.ps1"),
    ] {
        let text = generated(kind, dir.path(), file);
        // Every command is completed (clap_complete also offers the hidden `generate`).
        for command in ["info", "ls", "cat", "extract", "verify", "mkfs"] {
            assert!(text.contains(command), "{file}: no {command}");
        }
    }
}

#[test]
fn man_pages_for_kiln_and_each_command() {
    let dir = tempfile::tempdir().unwrap();
    let page = generated("man", dir.path(), "kiln-build.1");
    assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
    let mut pages = list_dir(dir.path());
    pages.sort();
    assert_eq!(
        pages,
        [
            "kiln-build.1",
            "kiln-cat.1",
            "kiln-extract.1",
            "kiln-info.1",
            "kiln-ls.1",
            "kiln-mkfs.1",
            "kiln-verify.1",
            "kiln.1"
        ]
    );
    if !require_tool("groff") {
        return;
    }
    for name in &pages {
        // -ww: every warning; -z: format, print nothing but the diagnostics.
        let out = run(tool("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(dir.path().join(name)));
        assert_success(&out, &format!("groff {name}"));
        assert!(
            out.stderr.is_empty(),
            "groff {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // And read as a man page: the options section names the flags.
    let text = as_read(&dir.path().join("kiln-build.1"));
    assert!(text.contains("--fs-type"), "{text}");
    assert!(text.contains("--progress"), "{text}");
    // kiln mkfs's page carries kiln-mkfs's table of mke2fs options.
    let text = as_read(&dir.path().join("kiln-mkfs.1"));
    assert!(text.contains("Differences from mke2fs"), "{text}");
    assert!(text.contains("-E root_owner"), "{text}");
}

/// The man page `page` as a terminal shows it (`groff -man -Tutf8`).
fn as_read(page: &Path) -> String {
    let out = run(tool("groff").args(["-man", "-Tutf8"]).arg(page));
    assert_success(&out, &format!("groff {}", page.display()));
    plain_text(&String::from_utf8_lossy(&out.stdout))
}

/// What a terminal shows of grotty's output: bold and underlined letters are
/// written over themselves (`N\bN`, `_\bx`), and `-` may come out as U+2010
/// or U+2212.
fn plain_text(troff: &str) -> String {
    let mut out: Vec<char> = Vec::new();
    for c in troff.chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    let text: String = out.into_iter().collect();
    text.replace(['\u{2010}', '\u{2212}'], "-")
}
