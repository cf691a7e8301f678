//! The drop-in mke2fs row of `cargo xtask bench` (`--mkfs` runs it alone): a client's
//! command line run end to end, once with e2fsprogs' mke2fs and once with kiln as
//! `mkfs.ext4` (a symlink first on `PATH`), on each `--corpus` (default: linux; issue 22
//! asks for linux and rootfs).
//!
//! The client is Buildroot (`fs/ext2/ext2.mk`, ext4 chosen, its default options):
//! `rm -f IMG; mkfs.ext4 -d TREE -N 0 -m 5 -L rootfs -I 256 -O ^64bit IMG SIZE`, with SIZE
//! the tree's room in whole MiB (Buildroot's is a user setting). Each way runs `--runs`
//! times (median); the last image of each is checked by `e2fsck -fn`, and the two images'
//! geometry (`dumpe2fs -h`) must be the same.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

use super::verity::shell;
use super::{fsck, header_fields, median, remove, tree_name, warm, Bench, Geometry, MIB};
use crate::tree;

/// The sbin and bin directories a root shell has, where e2fsprogs' mke2fs lives.
const SYSTEM_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// The `dumpe2fs -h` fields both images must agree on.
const GEOMETRY: [&str; 6] = [
    "Filesystem features:",
    "Block count:",
    "Block size:",
    "Inode count:",
    "Inode size:",
    "Reserved block count:",
];

/// The row of one tree: each way's median seconds and peak RSS (KiB).
pub(super) struct MkfsRow {
    name: String,
    entries: u64,
    size_mib: u64,
    ways: Vec<(f64, u64)>,
}

/// What the table calls each way, in `MkfsRow::ways` order.
const WAYS: [&str; 2] = [
    "Buildroot's line, e2fsprogs' `mkfs.ext4`",
    "Buildroot's line, kiln as `mkfs.ext4`",
];

impl Bench<'_> {
    /// Times Buildroot's command line on `tree` with each mke2fs.
    pub(super) fn mkfs(&mut self, tree: &Path) -> Result<MkfsRow> {
        let stats = tree::stats(tree)?;
        warm(tree)?;
        let size_mib = Geometry::for_tree(&stats).size / MIB;
        let bin = self.scratch.join("kiln-mke2fs");
        std::fs::create_dir_all(&bin)?;
        let link = bin.join("mkfs.ext4");
        remove(&link)?;
        link_kiln(&self.kiln, &link)?;
        let path = |p: &Path| p.display().to_string();
        let paths = [
            SYSTEM_PATH.to_string(),
            format!("{}:{SYSTEM_PATH}", path(&bin)),
        ];
        eprintln!(
            "bench mkfs {}: {} entries, Buildroot's line, {size_mib}M",
            tree_name(tree),
            stats.entries
        );
        let mut ways = Vec::new();
        let mut images = Vec::new();
        for (i, search) in paths.iter().enumerate() {
            let image = self.scratch.join(format!("mkfs-{i}.img"));
            let chain = buildroot_line(search, tree, &image, size_mib);
            let mut secs = Vec::new();
            let mut rss = 0;
            for _ in 0..self.args.runs {
                let run = self.timed(shell(&chain), None)?.expect("no timeout");
                secs.push(run.secs);
                rss = rss.max(run.rss_kib);
            }
            ways.push((median(&secs), rss));
            eprintln!("  {}: median {:.3} s", WAYS[i], median(&secs));
            if let Some(said) = fsck(&image)? {
                writeln!(self.notes, "mkfs: {}: {said}", WAYS[i])?;
            }
            images.push(image);
        }
        let [real, kiln] = [&images[0], &images[1]].map(|i| header_fields(i, &GEOMETRY));
        let (real, kiln) = (real?, kiln?);
        if real != kiln {
            writeln!(
                self.notes,
                "mkfs {}: the geometry differs:\n  mke2fs: {real}\n  kiln:   {kiln}",
                tree_name(tree)
            )?;
        }
        for image in &images {
            remove(image)?;
        }
        Ok(MkfsRow {
            name: tree_name(tree),
            entries: stats.entries,
            size_mib,
            ways,
        })
    }
}

/// Makes `link` run `kiln` under the link's name (`argv[0]` decides).
#[cfg(unix)]
fn link_kiln(kiln: &Path, link: &Path) -> Result<()> {
    Ok(std::os::unix::fs::symlink(kiln, link)?)
}

/// mke2fs and the clients that call it are Unix programs.
#[cfg(not(unix))]
fn link_kiln(_: &Path, _: &Path) -> Result<()> {
    anyhow::bail!("--mkfs runs mke2fs and kiln as mkfs.ext4: a Unix host is needed")
}

/// Buildroot's `ROOTFS_EXT2_CMD` with its default options and ext4, under `search` as
/// `PATH`, making `image` of `size_mib` MiB from `tree`.
fn buildroot_line(search: &str, tree: &Path, image: &Path, size_mib: u64) -> Vec<Vec<String>> {
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (tree, image) = (tree.display().to_string(), image.display().to_string());
    let mut mkfs = words(&["env", &format!("PATH={search}"), "mkfs.ext4", "-d"]);
    mkfs.push(tree);
    mkfs.extend(words(&[
        "-N", "0", "-m", "5", "-L", "rootfs", "-I", "256", "-O", "^64bit",
    ]));
    mkfs.extend([image.clone(), format!("{size_mib}M")]);
    vec![words(&["rm", "-f", &image]), mkfs]
}

/// Prints the mkfs table.
pub(super) fn report(rows: &[MkfsRow]) {
    for row in rows {
        println!();
        println!(
            "| drop-in mke2fs, {} ({} entries, {} MiB ext4) | s | /e2fsprogs | peak RSS MiB |",
            row.name, row.entries, row.size_mib
        );
        println!("|---|--:|--:|--:|");
        for (name, &(secs, rss)) in WAYS.iter().zip(&row.ways) {
            println!(
                "| {name} | {secs:.3} | {:.2} | {:.1} |",
                secs / row.ways[0].0,
                rss as f64 / 1024.0
            );
        }
    }
}
