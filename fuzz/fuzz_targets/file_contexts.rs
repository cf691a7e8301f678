//! Any text given as a SELinux file_contexts file parses or fails with an
//! error, and parsed contexts label a small tree, never a panic.
#![no_main]

use std::sync::OnceLock;

use kiln_tree::{parse_file_contexts, Metadata, Spec, Tree};
use libfuzzer_sys::fuzz_target;

/// Every kind of entry, a few levels deep.
const TREE: &str = "\
dir /etc 0755 0 0
file /etc/hostname 0644 0 0 text \"vm1\\n\"
dir /usr/bin 0755 0 0
file /usr/bin/app 0755 0 0 text \"#!/bin/sh\\n\"
symlink /usr/bin/sh 0777 0 0 app
link /usr/bin/app2 /usr/bin/app
dir /var/lib/x 0700 1 1
char /dev/null 0666 0 0 1 3
block /dev/sda 0660 0 6 8 0
fifo /run/fifo 0600 0 0
socket /run/sock 0666 0 0
";

fn tree() -> &'static Tree {
    static TREE_CELL: OnceLock<Tree> = OnceLock::new();
    TREE_CELL.get_or_init(|| {
        let mut tree = Tree::new(Metadata::made(0o755, 0, 0));
        // OK: a fixed spec, checked by the first run.
        Spec::parse(TREE, "tree.spec".as_ref())
            .expect("the fuzz tree's spec parses")
            .apply(&mut tree)
            .expect("the fuzz tree's spec applies");
        tree
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(contexts) = parse_file_contexts(text, "fuzz.contexts".as_ref()) {
        let mut tree = tree().clone();
        contexts.apply(&mut tree);
    }
});
