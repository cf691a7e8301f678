//! Any bytes given as a tar archive (compressed or not) give a tree or an
//! error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kiln_tree::read_tar_from(std::io::Cursor::new(data.to_vec()), "fuzz.tar".as_ref());
});
