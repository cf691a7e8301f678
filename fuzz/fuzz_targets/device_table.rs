//! Any text given as a genext2fs device table parses or fails with an
//! error, and a parsed table applies to an empty tree or fails with an
//! error, never a panic.
#![no_main]

use kiln_tree::{parse_device_table, Metadata, Tree};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(spec) = parse_device_table(text, "fuzz.devtable".as_ref()) {
        let mut tree = Tree::new(Metadata::made(0o755, 0, 0));
        let _ = spec.apply(&mut tree);
    }
});
