//! Reproducible output (point g): the same sources give byte-identical
//! images whatever the thread count, and a rebuild after earlier builds read
//! every file (which could have moved access times) is identical too.

use std::fs::File;
use std::path::Path;

use crate::build::full_source;
use crate::compare::read_full;
use crate::fixture;
use crate::helpers::*;

/// `Err` with the first differing offset (and block) unless the files are identical.
fn identical(a: &Path, b: &Path, block_size: u32) -> Result<(), String> {
    let (fa, fb) = (File::open(a).expect("open"), File::open(b).expect("open"));
    let (la, lb) = (
        fa.metadata().expect("stat").len(),
        fb.metadata().expect("stat").len(),
    );
    if la != lb {
        return Err(format!("sizes differ: {la} and {lb} bytes"));
    }
    const CHUNK: u64 = 1 << 20;
    let (mut ba, mut bb) = (vec![0u8; CHUNK as usize], vec![0u8; CHUNK as usize]);
    let mut off = 0;
    while off < la {
        let n = (la - off).min(CHUNK) as usize;
        read_full(&fa, &mut ba[..n], off);
        read_full(&fb, &mut bb[..n], off);
        if let Some(i) = ba[..n].iter().zip(&bb[..n]).position(|(x, y)| x != y) {
            let at = off + i as u64;
            return Err(format!(
                "first difference at byte {at} (block {}, offset {} in it)",
                at / u64::from(block_size),
                at % u64::from(block_size)
            ));
        }
        off += n as u64;
    }
    Ok(())
}

/// Panics (with the first differing byte and block) unless `a` and `b` are identical.
pub fn assert_identical(a: &Path, b: &Path, block_size: u32, what: &str) {
    if let Err(e) = identical(a, b, block_size) {
        panic!("{what}: {} and {} differ: {e}", a.display(), b.display());
    }
}

kiln_test!(
    /// g: RAYON_NUM_THREADS=1 and =2 give the same bytes, and so does a third
    /// build after those two, flushed before its rename (--sync) (automatic
    /// size, fixed SOURCE_DATE_EPOCH: the fixture has a 2100 mtime, which
    /// would otherwise be clamped to "now").
    same_image_whatever_the_threads,
    |case| {
        if !require_root() {
            return;
        }
        let (src, snap) = full_source(&case);
        let build = |name: &str, threads: &str, extra: &[&str]| {
            let image = case.path(name);
            let out = run(case
                .build_command(&[&src], &image)
                .args(extra)
                .env("RAYON_NUM_THREADS", threads)
                .env("SOURCE_DATE_EPOCH", "1700000000"));
            assert_success(&out, &format!("kiln build with {threads} thread(s) ({case})"));
            image
        };
        let one = build("one.img", "1", &[]);
        // A build that moved source atimes makes the next one differ: say so first.
        snap.assert_sources_unchanged();
        let two = build("two.img", "2", &[]);
        assert_identical(&one, &two, case.block_size, "RAYON_NUM_THREADS=1 vs =2");
        let again = build("again.img", "1", &["--sync"]);
        assert_identical(&one, &again, case.block_size, "a rebuild with --sync after two builds");
    }
);

kiln_test!(
    /// g: without SOURCE_DATE_EPOCH (filesystem times from the newest mtime of
    /// a tree with only past times), two builds are identical.
    same_image_without_source_date_epoch,
    |case| {
        let src = case.mkdir("src");
        fixture::small(&src);
        let build = |name: &str| {
            let image = case.path(name);
            let out = run(case.build_command(&[&src], &image).env_remove("SOURCE_DATE_EPOCH"));
            assert_success(&out, &format!("kiln build ({case})"));
            image
        };
        let first = build("first.img");
        let second = build("second.img");
        assert_identical(&first, &second, case.block_size, "two builds without SOURCE_DATE_EPOCH");
    }
);
