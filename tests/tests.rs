//! End-to-end tests of the `kiln` binary. Images are judged with the real
//! tools: `e2fsck -fn`, `debugfs`, the kernel (loop mounts, as root),
//! `resize2fs`, and ext4-view. Where a tool, root or loop devices are missing,
//! tests skip with a message outside CI and fail under `CI=true`.
//!
//! Linux only: the fixtures and checks use Linux calls (statx, xattrs,
//! `SEEK_DATA`, loop mounts).
#![cfg(target_os = "linux")]
// Vectors of one byte or block range are data here (a file that is one extent).
#![allow(clippy::single_range_in_vec_init)]

// One test target: Cargo.toml sets `autotests = false` (as ripgrep does), so
// the files beside this one are its modules, not targets of their own.

// The `kiln_test!` (one test per fs type and block size) and `eqnice!` macros.
#[macro_use]
mod macros;

// Running kiln, e2fsck, debugfs and mount; the skip-or-fail rule.
mod helpers;
// Linux calls through rustix: statx, xattrs, mknod, times, holes, fd-relative walks.
mod sys;
// Deterministic source trees: everything `cp -ax` keeps.
mod fixture;
// Tree comparator: (layered) sources against a mounted image.
mod compare;
// POSIX ustar headers for the archives tests make.
mod ustar;

// Building the fixture: e2fsck clean, debugfs metadata, mount comparison.
mod build;
// Documented defaults and options, read back by dumpe2fs.
mod options;
// Reading images back with ext4-view, and its hole limitation.
mod ext4_view;
// Read-write mount and resize2fs on built images.
mod modify;
// Byte-identical output across thread counts and rebuilds.
mod determinism;
// Layered sources and mount points inside sources.
mod sources;
// Errors: existing output, too small, unreadable, too large, missing source.
mod bad_input;
// ext4 and -O edits: feature matrix, htrees, extent trees, 5 TiB file, dir_nlink.
mod ext4;
// Issue 4: whiteouts, ownership and time policies, a build by a plain user.
mod policies;
// Issue 4, point 8: tar archives, spec files, device tables, file_contexts, stdin.
mod inputs;
// Issue 5: kiln info (against dumpe2fs -h), ls and cat on plain images.
mod inspect;
// Issue 5, point 2: kiln extract, compared with the source and rebuilt.
mod extract;
// `kiln verify`: damage reported; partitioned disk images.
mod verify;
// Issue 19: FAT images and FAT partitions, judged by fsck.fat and mtools.
mod fat;
// Issue 21: qcow2, VHD, VMDK, Android sparse and bmap outputs, judged by qemu-img,
// simg2img and bmaptool.
mod containers;
// Issue 7: random trees and options, judged by e2fsck, verify and the kernel.
mod prop;
// Issue 7: SIGINT and SIGTERM leave no partial output.
mod signals;
// Issue 17: a closed standard output ends every command quietly.
mod broken_pipe;
// Issue 17: the output file: messages, temporary files of killed builds.
mod output;
// Issue 7: the reading commands on damaged images.
mod corrupt;
// Issue 16: hand-edited hostile images: escapes, bombs, loops, lies, bad checksums.
mod hostile;
// Issue 6: GPT disks from layout files; zstd, stdout, block device and --offset outputs.
mod disk;
// The torture corpus (slow; CI or an existing tree only).
mod torture;
// Issue 9: the Windows build under Wine makes the Linux build's bytes.
mod windows;
// Issue 17, points 2 and 8: excludes prune the walk; the output checked by
// the walk and before any source is read.
mod walk;
// Issue 10: GRUB's ext2 driver (grub-fstest) reads every image type.
mod grub;
// Issue 17, points 7 and 8: tar ACLs as GNU tar and bsdtar extract them; plain tars read in place.
mod tar_input;
// Issue 20: dm-verity trees, judged by veritysetup verify and format.
mod verity;
// Issue 20: dm-verity data and hash partitions on a disk.
mod verity_disk;
// Issue 17, point 3: sources written during the build, and --live.
mod live;
// Issue 19 (readers): info, ls, cat, extract and verify of FAT images and partitions; hostile FAT images.
mod fat_read;
// Issue 24, FAT part: FAT images and FAT partitions as build sources, rebuilt as
// ext4 and FAT, judged by e2fsck, fsck.fat and mtools.
mod fat_source;
// Issue 18: every flag checked before any source is read.
mod flags;
// Issue 18, point 4: the progress display on a terminal (under `script`), -q and -v.
mod progress;
// Issue 18, point 4: README.md's `kiln build` flag table agrees with `kiln build --help`.
mod readme;
// Issue 18, point 4: man pages (checked by groff) and shell completions.
mod generate;
// Issue 22: kiln as mke2fs, run by genimage, systemd-repart and the command
// lines of Buildroot, Yocto, nixpkgs and debos; judged against e2fsprogs' mke2fs.
mod mkfs;
// Issue 23, part 1: source extents shared with the image on XFS (reflink=1) and
// btrfs loop filesystems; byte-identical to --no-reflink.
mod reflink;
// Issue 24: ext2/3/4 images and GPT partitions as build sources: round trips,
// mke2fs images, conversions, tailoring, refusals.
mod image_source;
