//! End-to-end tests of the `kiln` binary. Images are judged with the real
//! tools: `e2fsck -fn`, `debugfs`, the kernel (loop mounts, as root),
//! `resize2fs`, and ext4-view. Where a tool, root or loop devices are missing,
//! tests skip with a message outside CI and fail under `CI=true`.
//!
//! Linux only: the fixtures and checks use Linux calls (statx, xattrs,
//! `SEEK_DATA`, loop mounts).
#![cfg(target_os = "linux")]

// The modules live in e2e/ so that cargo does not take each for a test
// target of its own (tests/*.rs are auto-discovered).

// The `kiln_test!` (one test per fs type and block size) and `eqnice!` macros.
#[macro_use]
#[path = "e2e/macros.rs"]
mod macros;

// Running kiln, e2fsck, debugfs and mount; the skip-or-fail rule.
#[path = "e2e/helpers.rs"]
mod helpers;
// Linux calls through rustix: statx, xattrs, mknod, times, holes, fd-relative walks.
#[path = "e2e/sys.rs"]
mod sys;
// Deterministic source trees: everything `cp -ax` keeps.
#[path = "e2e/fixture.rs"]
mod fixture;
// Tree comparator: (layered) sources against a mounted image.
#[path = "e2e/compare.rs"]
mod compare;

// Building the fixture: e2fsck clean, debugfs metadata, mount comparison.
#[path = "e2e/build.rs"]
mod build;
// Documented defaults and options, read back by dumpe2fs.
#[path = "e2e/options.rs"]
mod options;
// Reading images back with ext4-view, and its hole limitation.
#[path = "e2e/ext4_view.rs"]
mod ext4_view;
// Read-write mount and resize2fs on built images.
#[path = "e2e/modify.rs"]
mod modify;
// Byte-identical output across thread counts and rebuilds.
#[path = "e2e/determinism.rs"]
mod determinism;
// Layered sources and mount points inside sources.
#[path = "e2e/sources.rs"]
mod sources;
// Errors: existing output, too small, unreadable, too large, missing source.
#[path = "e2e/bad_input.rs"]
mod bad_input;
// The torture corpus (slow; CI or an existing tree only).
#[path = "e2e/torture.rs"]
mod torture;
