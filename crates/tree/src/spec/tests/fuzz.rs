//! Property tests: no text, random or a mutation of a valid spec, makes the
//! parsers or `apply` panic.

use proptest::prelude::*;

use super::*;

/// A valid spec using every kind of line.
const VALID: &str = "\
dir /srv 0755 0 0 mtime=2024-05-01T12:00:00Z
file \"/srv/a b\" 0644 1 1 text \"x\\xff\\n\" xattr=user.a=0x6869
file /srv/c 0644 0 0 from ./missing
symlink /srv/l 0777 0 0 ../x
link /srv/h \"/srv/a b\"
char /dev/null 0666 0 0 1 3
block /dev/sda 0660 0 6 8 0
fifo /run/f 0600 0 0 atime=1.5
socket /run/s 0600 0 0
chmod /bin/*.sh 0755
chown /etc/** 1 -
?set /srv/[a-c]* caps=cap_net_raw+ep rmxattr=user.a time=0
";

/// Words the structured strategy builds lines from.
const WORDS: &[&str] = &[
    "dir",
    "file",
    "symlink",
    "link",
    "char",
    "block",
    "fifo",
    "socket",
    "chmod",
    "chown",
    "set",
    "?set",
    "?chmod",
    "/",
    "/a",
    "/a/b",
    "/etc",
    "/etc/passwd",
    "/bin/**",
    "/**",
    "/*/*",
    "/[a-z]*",
    "/bin/ls/x",
    "0755",
    "0",
    "7777",
    "1",
    "-",
    "text",
    "from",
    "x",
    "\"a b\"",
    "mtime=0",
    "time=-1.5",
    "xattr=user.a=b",
    "rmxattr=user.a",
    "caps=cap_chown+ep",
    "caps==ep",
    "'",
    "\"",
    "\\x",
    "#",
    "=",
];

fn tree_after(text: &str) {
    if let Ok(spec) = Spec::parse(text, Path::new("/nonexistent/fuzz.spec")) {
        let _ = spec.apply(&mut small_tree());
    }
    if let Ok(table) = parse_device_table(text, Path::new("t")) {
        let _ = table.apply(&mut small_tree());
    }
    if let Ok(contexts) = parse_file_contexts(text, Path::new("fc")) {
        contexts.apply(&mut small_tree());
    }
}

/// `VALID` with a few characters replaced, inserted or removed.
fn mutated() -> impl Strategy<Value = String> {
    let edit = (any::<prop::sample::Index>(), 0..3u8, any::<char>());
    prop::collection::vec(edit, 1..6).prop_map(|edits| {
        let mut chars: Vec<char> = VALID.chars().collect();
        for (at, how, c) in edits {
            let i = at.index(chars.len() + 1);
            match how {
                0 if i < chars.len() => chars[i] = c,
                1 => chars.insert(i, c),
                _ if i < chars.len() => {
                    chars.remove(i);
                }
                _ => {}
            }
        }
        chars.into_iter().collect()
    })
}

/// Lines of words from `WORDS`.
fn worded() -> impl Strategy<Value = String> {
    let line = prop::collection::vec(prop::sample::select(WORDS), 0..9).prop_map(|w| w.join(" "));
    prop::collection::vec(line, 0..8).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        tree_after(&text);
    }

    #[test]
    fn mutated_specs_never_panic(text in mutated()) {
        tree_after(&text);
    }

    #[test]
    fn worded_specs_never_panic(text in worded()) {
        tree_after(&text);
    }
}

#[test]
fn the_valid_spec_parses() {
    let spec = Spec::parse(VALID, Path::new("v")).unwrap();
    assert_eq!(spec.entries.len(), 12);
}
