//! The torture corpus (`shared/corpus/make_torture.sh`, beside the clone):
//! every file type, 1,000 hard links to one file, 100,000- and 20,000-entry
//! directories, non-UTF-8 names, 200-level nesting, a 5 GiB sparse file,
//! timestamps from 1901 to 2400. SLOW: generating it takes minutes the first
//! time (the script is idempotent and reuses `$BASE/torture`).
//!
//! Runs when `$BASE/torture` (default `/tmp/corpus/torture`) exists or under
//! `CI=true` (which generates it); otherwise it is skipped with a message.

use std::path::PathBuf;
use std::time::Instant;

use crate::compare::Snapshot;
use crate::helpers::*;

#[test]
fn torture_tree_ext3_4k() {
    let base = PathBuf::from(std::env::var_os("BASE").unwrap_or_else(|| "/tmp/corpus".into()));
    let tree = base.join("torture");
    if !tree.exists() && !in_ci() {
        eprintln!(
            "SKIPPED torture_tree_ext3_4k: {} does not exist (generate it with \
             `bash ../shared/corpus/make_torture.sh` as root, or run with CI=true)",
            tree.display()
        );
        return;
    }
    if !(require_mount() && require_tool("e2fsck") && require_tool("bash")) {
        return;
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/make_torture.sh");
    if script.is_file() {
        let out = run(tool("bash").arg(&script).env("BASE", &base));
        assert_success(&out, &format!("bash {}", script.display()));
    } else if !base.join(".torture_done").exists() {
        skip(&format!(
            "{} not found and {} is incomplete",
            script.display(),
            tree.display()
        ));
        return;
    }

    let case = Case::new("ext3", 4096);
    let snap = Snapshot::take(&[&tree]);
    let image = case.path("torture.img");
    let start = Instant::now();
    case.build(&[&tree], &image, &[]);
    eprintln!(
        "kiln built the torture tree ({} entries) in {:.1?}",
        snap.entries.len(),
        start.elapsed()
    );
    e2fsck_clean(&image);
    snap.assert_sources_unchanged();
    let mount = Mount::ro(&image, case.fs_type);
    snap.assert_image_matches(mount.path(), 4096);
}
