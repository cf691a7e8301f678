//! Any text given as a disk layout file (`kiln build --config`) parses or
//! fails with an error naming the key, never a panic.
#![no_main]

use kiln_lib::layout::Layout;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Layout::parse(text, "/fuzz".as_ref());
});
