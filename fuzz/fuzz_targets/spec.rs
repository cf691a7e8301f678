//! Any text given as a spec file parses or fails with an error, and a parsed
//! spec applies to a tree or fails with an error, never a panic.
#![no_main]

use kiln_tree::{Metadata, Spec, Tree};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(spec) = Spec::parse(text, "fuzz.spec".as_ref()) {
        let mut tree = Tree::new(Metadata::made(0o755, 0, 0));
        let _ = spec.apply(&mut tree);
    }
});
