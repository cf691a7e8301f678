//! Issue 23, part 1: shared extents. On an XFS (`reflink=1`) and a btrfs
//! loop filesystem, sources and image on it, kiln clones the whole blocks
//! of source files into the image: the image is byte-identical to a
//! `--no-reflink` build, e2fsck finds it clean, the summary says how many
//! bytes were shared, the image's extents are shared and it adds little
//! to the filesystem's used space.

use std::path::{Path, PathBuf};

use crate::fixture::{self, MIB};
use crate::helpers::*;

/// A loop filesystem of `fs_type` made by `mkfs` (with `args`) in a file of
/// its own temporary directory, mounted read-write; `None` after a skip.
fn reflink_fs(fs_type: &str, mkfs: &str, args: &[&str]) -> Option<(Case, Mount)> {
    if !(require_mount() && require_tool(mkfs) && require_tool("filefrag")) {
        return None;
    }
    let case = Case::new("ext4", 4096);
    let backing = case.path("fs.img");
    std::fs::File::create(&backing)
        .and_then(|f| f.set_len(512 * MIB))
        .unwrap_or_else(|e| panic!("{}: {e}", backing.display()));
    let out = run(tool(mkfs).args(args).arg(&backing));
    assert_success(&out, mkfs);
    let mount = Mount::rw(&backing, fs_type);
    Some((case, mount))
}

/// The source tree: a large file with an unaligned tail, a file with a hole,
/// one with all-zero blocks written as data, one of exactly a block and a
/// small one (both written, not cloned: under kiln's 64 KiB). Returns the
/// bytes of data in whole blocks of the files that may be shared.
fn sources(src: &Path) -> u64 {
    std::fs::create_dir(src).expect("create the source directory");
    write_file(
        &src.join("large"),
        &fixture::bytes(1, (8 * MIB + 1234) as usize),
    );
    fixture::sparse(
        &src.join("holes"),
        6 * MIB + 100,
        &[(0, MIB), (4 * MIB, 2 * MIB + 100)],
    );
    let mut zeros = fixture::bytes(2, (3 * MIB) as usize);
    zeros[MIB as usize..2 * MIB as usize].fill(0);
    write_file(&src.join("zeros"), &zeros);
    write_file(&src.join("block"), &fixture::bytes(3, 4096));
    write_file(&src.join("small"), b"a few bytes");
    8 * MIB + 3 * MIB + 3 * MIB
}

/// Bytes in use on the filesystem mounted at `mount`, after a sync (so
/// that delayed allocation and deferred frees have settled).
fn used_bytes(mount: &Path) -> u64 {
    assert_success(&run(tool("sync").arg("-f").arg(mount)), "sync -f");
    let st = rustix::fs::statvfs(mount).expect("statvfs");
    (st.f_blocks - st.f_bfree) * st.f_frsize
}

/// `kiln build -t ext4 [-b BLOCK] [EXTRA...] -o IMAGE SRC`, asserted to
/// succeed; returns its stderr, and how much the filesystem's used space
/// grew.
fn build(src: &Path, image: &Path, block: &str, extra: &[&str], mount: &Path) -> (String, u64) {
    let before = used_bytes(mount);
    let out = run(kiln_command()
        .args(["build", "-t", "ext4", "-b", block])
        .args(extra)
        .arg("-o")
        .arg(image)
        .arg(src));
    assert_success(&out, &format!("kiln build {}", image.display()));
    let grown = used_bytes(mount).saturating_sub(before);
    (String::from_utf8_lossy(&out.stderr).into_owned(), grown)
}

/// The `N` of the summary's `, N bytes shared with the sources`, 0 if none.
fn shared_bytes(summary: &str) -> u64 {
    let Some((before, _)) = summary.split_once(" bytes shared with the sources") else {
        return 0;
    };
    let n = before.rsplit(' ').next().expect("a word");
    n.parse()
        .unwrap_or_else(|e| panic!("{n:?} in {summary:?}: {e}"))
}

/// Builds the sources on the mounted filesystem with and without
/// `--no-reflink` (4 KiB blocks, then 1 KiB blocks, where only some runs are
/// aligned with the host's blocks) and checks what the issue asks.
fn shares_source_extents(mount: &Mount) {
    let root = mount.path();
    let src = root.join("src");
    let whole_blocks = sources(&src);
    for block in ["4096", "1024"] {
        let image = |name: &str| -> PathBuf { root.join(format!("{name}-{block}.img")) };
        let (cloned, cloned_grew) = build(&src, &image("cloned"), block, &[], root);
        let (copied, copied_grew) = build(&src, &image("copied"), block, &["--no-reflink"], root);
        assert!(
            read_file(&image("cloned")) == read_file(&image("copied")),
            "-b {block}: the cloned image differs from the copied one"
        );
        e2fsck_clean(&image("cloned"));
        let verify = run(kiln_command()
            .arg("verify")
            .arg(image("cloned"))
            .arg("--against")
            .arg(&src));
        assert_success(&verify, "kiln verify");
        let shared = shared_bytes(&cloned);
        assert_eq!(shared_bytes(&copied), 0, "{copied}");
        if block == "1024" {
            // Runs are aligned with the host's blocks or not, by chance.
            assert!(shared <= whole_blocks, "{cloned}");
            continue;
        }
        assert_eq!(shared, whole_blocks, "{cloned}");
        let frag = run(tool("filefrag").arg("-v").arg(image("cloned")));
        assert_success(&frag, "filefrag -v");
        assert!(
            String::from_utf8_lossy(&frag.stdout).contains("shared"),
            "no shared extent in the cloned image:\n{}",
            describe(&frag)
        );
        assert!(
            copied_grew >= whole_blocks && cloned_grew < copied_grew / 4,
            "the cloned image took {cloned_grew} bytes, the copied one {copied_grew}"
        );
    }
}

#[test]
fn on_xfs_with_reflink_whole_blocks_are_shared_and_the_image_is_the_same() {
    if let Some((_case, mount)) = reflink_fs("xfs", "mkfs.xfs", &["-q", "-m", "reflink=1"]) {
        shares_source_extents(&mount);
    }
}

#[test]
fn on_btrfs_whole_blocks_are_shared_and_the_image_is_the_same() {
    if let Some((_case, mount)) = reflink_fs("btrfs", "mkfs.btrfs", &["-q"]) {
        shares_source_extents(&mount);
    }
}

/// Where the filesystem cannot share extents (here the test directory's,
/// or XFS without reflink), nothing is cloned: the summary says nothing of
/// it, and the image is written as before.
#[test]
fn without_reflinks_nothing_is_shared() {
    let Some((_case, mount)) = reflink_fs("xfs", "mkfs.xfs", &["-q", "-m", "reflink=0"]) else {
        return;
    };
    let src = mount.path().join("src");
    sources(&src);
    let image = mount.path().join("image.img");
    let (summary, _) = build(&src, &image, "4096", &[], mount.path());
    assert_eq!(shared_bytes(&summary), 0, "{summary}");
    assert!(!summary.contains("shared"), "{summary}");
    e2fsck_clean(&image);
}

/// Issue 24: an image source's files are cloned from the source image, run
/// by run, where the sink clones: the same bytes as a `--no-reflink`
/// build, and every whole block of the sources' files shared (the same
/// tree is laid out as in the source image, so its runs line up).
#[test]
fn on_xfs_an_image_source_is_cloned_from_the_image() {
    let Some((_case, mount)) = reflink_fs("xfs", "mkfs.xfs", &["-q", "-m", "reflink=1"]) else {
        return;
    };
    let root = mount.path();
    let src = root.join("src");
    let whole_blocks = sources(&src);
    let base = root.join("base.img");
    build(&src, &base, "4096", &["--no-reflink"], root);
    let cloned = root.join("cloned.img");
    let copied = root.join("copied.img");
    let (summary, cloned_grew) = build(&base, &cloned, "4096", &[], root);
    let (_, copied_grew) = build(&base, &copied, "4096", &["--no-reflink"], root);
    assert!(
        read_file(&cloned) == read_file(&copied),
        "the image cloned from the source image differs from the copied one"
    );
    e2fsck_clean(&cloned);
    assert_eq!(shared_bytes(&summary), whole_blocks, "{summary}");
    assert!(
        cloned_grew < copied_grew / 4,
        "the cloned image took {cloned_grew} bytes, the copied one {copied_grew}"
    );
}
