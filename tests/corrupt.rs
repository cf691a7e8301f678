//! Issue 7, point 4 (the normal run's sample of the `image` fuzz target):
//! `kiln info`, `ls -lR`, `cat`, `verify` and `extract` on images with
//! random bytes of their metadata changed. Each must end with exit status 0
//! or 1 and, on failure, a message; never a panic or a signal, and within
//! the time and memory bounds of the hostile catalogue (issue 16).

use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::fixture::{self, Prng};
use crate::helpers::*;
use crate::hostile::bounded::{self, Finished};

/// Damaged copies per image.
const ROUNDS: u64 = 30;
/// Bytes changed in each copy.
const EDITS: usize = 24;
/// Only the metadata area is damaged: superblock, descriptors, bitmaps,
/// inode tables and the first directory and extent blocks.
const METADATA_BYTES: u64 = 256 << 10;

/// Asserts that kiln ended normally: status 0, or 1 (2 for `verify`'s
/// trouble) with an error message.
fn ended_normally(out: &Finished, what: &str) {
    let text = out.describe();
    assert!(!text.contains("panicked"), "{what} panicked: {text}");
    match out.status.code() {
        Some(0) => {}
        Some(1 | 2) => assert!(
            String::from_utf8_lossy(&out.stderr).contains("kiln: error:"),
            "{what} failed without a message: {text}"
        ),
        _ => panic!("{what} ended abnormally: {text}"),
    }
}

/// Runs every reading command on `image`.
fn read_everything(image: &Path, src: &Path, dest: &Path) {
    let img = image.to_str().unwrap();
    for args in [
        vec!["info", img],
        vec!["info", "--json", img],
        vec!["ls", "-lR", img, "/"],
        vec!["cat", img, "/usr/big"],
        vec!["verify", img, "--against", src.to_str().unwrap()],
        vec!["extract", img, dest.to_str().unwrap()],
    ] {
        let out = bounded::run(kiln_command().args(&args));
        ended_normally(&out, &format!("kiln {}", args.join(" ")));
    }
    let _ = std::fs::remove_dir_all(dest);
}

/// Builds a small image and reads damaged copies of it.
fn damaged_copies(case: &Case) {
    let src = case.mkdir("src");
    fixture::small(&src);
    let image = case.path("image.img");
    case.build(&[&src], &image, &[]);
    let pristine = read_file(&image);
    let damaged = case.path("damaged.img");
    let mut rng = Prng::new(u64::from(case.block_size));
    for round in 0..ROUNDS {
        std::fs::write(&damaged, &pristine).unwrap();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&damaged)
            .unwrap();
        let area = METADATA_BYTES.min(pristine.len() as u64);
        for _ in 0..EDITS {
            let at = rng.next_u64() % area;
            file.write_all_at(&[rng.next_u64() as u8], at).unwrap();
        }
        drop(file);
        eprintln!("round {round}");
        read_everything(&damaged, &src, &case.path("out"));
    }
}

#[test]
fn damaged_ext2_1k_images_never_crash_the_readers() {
    damaged_copies(&Case::new("ext2", 1024));
}

#[test]
fn damaged_ext4_4k_images_never_crash_the_readers() {
    damaged_copies(&Case::new("ext4", 4096));
}
