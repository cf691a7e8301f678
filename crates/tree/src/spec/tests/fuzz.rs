//! Property tests: no text, random or a mutation of a valid spec, device
//! table or file_contexts file, makes the parsers or `apply` panic (the
//! normal run's sample of the cargo-fuzz targets of the same parsers).

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

/// `valid` with a few characters replaced, inserted or removed.
fn mutated(valid: &'static str) -> impl Strategy<Value = String> {
    let edit = (any::<prop::sample::Index>(), 0..3u8, any::<char>());
    prop::collection::vec(edit, 1..6).prop_map(move |edits| {
        let mut chars: Vec<char> = valid.chars().collect();
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
    fn mutated_specs_never_panic(text in mutated(VALID)) {
        tree_after(&text);
    }

    #[test]
    fn worded_specs_never_panic(text in worded()) {
        tree_after(&text);
    }
}

/// A genext2fs device table using every kind of line, ranges included.
const DEVICE_TABLE: &str = "\
# name type mode uid gid major minor start inc count
/dev d 755 0 0 - - - - -
/dev/null c 666 0 0 1 3 0 0 -
/dev/sda b 660 0 6 8 0 0 1 4
/dev/tty c 620 0 5 4 0 0 1 3
/run/p p 600 0 0 - - - - -
/etc/f f 644 0 0 - - - - -
";

/// A file_contexts file with regexes, types and `<<none>>`.
const FILE_CONTEXTS: &str = "\
/.* system_u:object_r:default_t:s0
/dev(/.*)? -c system_u:object_r:device_t:s0
/etc/[^/]+ -- system_u:object_r:etc_t:s0
/run/p -p <<none>>
";

proptest! {
    #[test]
    fn mutated_device_tables_never_panic(text in mutated(DEVICE_TABLE)) {
        tree_after(&text);
    }

    #[test]
    fn mutated_file_contexts_never_panic(text in mutated(FILE_CONTEXTS)) {
        tree_after(&text);
    }
}

#[test]
fn the_valid_tables_parse() {
    assert!(parse_device_table(DEVICE_TABLE, Path::new("t")).is_ok());
    assert!(parse_file_contexts(FILE_CONTEXTS, Path::new("c")).is_ok());
}

#[test]
fn the_valid_spec_parses() {
    let spec = Spec::parse(VALID, Path::new("v")).unwrap();
    assert_eq!(spec.entries.len(), 12);
}
