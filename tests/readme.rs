//! Issue 18, point 4: README.md's flag table of `kiln build` and `kiln build
//! --help` list the same flags, so neither can drift from the other.

use std::collections::BTreeSet;

use crate::helpers::*;

/// The flags (`-o`, `--output`, ...) named in the first column of the flag
/// table of README.md's section "## `kiln build`": in each backquoted span
/// of that cell, the words that start with `-`.
fn readme_flags(readme: &str) -> BTreeSet<String> {
    let (_, section) = readme
        .split_once("\n## `kiln build`\n")
        .expect("README.md has a section \"## `kiln build`\"");
    let section = section.split("\n## ").next().unwrap_or_default();
    let mut lines = section.lines().skip_while(|l| !l.starts_with("| flag |"));
    assert!(lines.next().is_some(), "no `| flag |` table in the section");
    let mut flags = BTreeSet::new();
    for row in lines
        .skip(1) // the |---| line
        .take_while(|l| l.starts_with('|'))
    {
        let first = row.split(" | ").next().unwrap_or_default();
        for (i, span) in first.split('`').enumerate() {
            if i % 2 == 0 {
                continue; // outside backquotes
            }
            for word in span.split_whitespace() {
                let word = word.trim_end_matches(',');
                if word.starts_with('-') {
                    flags.insert(word.to_string());
                }
            }
        }
    }
    flags
}

/// The flags that `kiln build -h` lists (clap's hidden ones are not), less
/// `-h, --help`: the lines `  -o, --output <IMAGE>  …` and
/// `      --config <FILE>  …` (descriptions stay on their flag's line).
fn help_flags(help: &str) -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    for line in help.lines() {
        let text = line.trim_start();
        let indent = line.len() - text.len();
        if !text.starts_with('-') || !(indent == 2 || indent == 6) {
            continue;
        }
        let names = text.split("  ").next().unwrap_or_default();
        for word in names.split_whitespace() {
            let word = word.trim_end_matches(',');
            if word.starts_with('-') {
                flags.insert(word.to_string());
            }
        }
    }
    flags.remove("-h");
    flags.remove("--help");
    flags
}

#[test]
fn readme_flag_table_matches_build_help() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let documented = readme_flags(&readme);
    let out = kiln(["build", "-h"]);
    assert_success(&out, "kiln build -h");
    let defined = help_flags(&String::from_utf8_lossy(&out.stdout));
    // The parsers found what they should (a broken parser would find nothing on both sides).
    for flag in [
        "-o",
        "--output",
        "--fs-type",
        "--sync",
        "--free-inodes",
        "-q",
        "--progress",
    ] {
        assert!(
            defined.contains(flag),
            "kiln build -h: no {flag} in {defined:?}"
        );
    }
    assert!(defined.len() > 40, "{defined:?}");
    let missing: Vec<_> = defined.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&defined).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "README.md's `kiln build` table and `kiln build --help` disagree:\n\
         not in the table: {missing:?}\nnot flags of kiln build: {stale:?}"
    );
}

#[test]
fn the_parsers_read_both_formats() {
    let help = "Options:\n  -o, --output <IMAGE>  The image (-x is not a flag)\n      \
                --config <FILE>  A layout\n  -h, --help  Print help\n  [SOURCE]...  Sources\n";
    assert_eq!(
        help_flags(help),
        ["--config", "--output", "-o"].map(String::from).into()
    );
    let readme = "# x\n\n## `kiln build`\n\n| flag | meaning | default |\n|---|---|---|\n\
                  | `-o, --output IMAGE` | the image, `-` for stdout | required |\n\
                  | `--free SIZE\\|PERCENT`, `--free-inodes N` | room | none |\n\n\
                  | flag | meaning | default |\n\n## next\n";
    assert_eq!(
        readme_flags(readme),
        ["--free", "--free-inodes", "--output", "-o"]
            .map(String::from)
            .into()
    );
}
