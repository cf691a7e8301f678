//! What `bench` needs to know about a source tree: how many entries and inodes it has and
//! how much data, so that kiln and mke2fs can be given the same image size and inode count.

use std::collections::HashSet;
use std::fs::{self, Metadata};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The file system block size that `bench` asks both tools for.
pub(crate) const BLOCK_SIZE: u64 = 4096;

/// Counts and sizes of one tree, hard links counted once.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Names in the tree, the root included (as `corpus_stats.py` counts them).
    pub(crate) entries: u64,
    /// Distinct inodes: a file with several hard links is one.
    pub(crate) inodes: u64,
    /// Apparent size of the distinct inodes, in bytes.
    pub(crate) bytes: u64,
    /// The same sizes, each rounded up to whole blocks: a closer guess of the space the data
    /// takes in an image than `bytes`, because most files of a rootfs are far smaller than a
    /// block.
    pub(crate) block_bytes: u64,
    /// Bytes of the entries' names, the root's excepted (as kiln-tree's
    /// `Tree::entries_and_name_bytes` counts them): what the tree model must keep whatever
    /// its layout, and what `bench --memory` takes off the peak RSS before dividing it.
    pub(crate) name_bytes: u64,
}

impl Stats {
    /// Counts one entry of a name `name_len` bytes long, and its size if its inode was not
    /// seen before.
    fn add(&mut self, meta: &Metadata, name_len: usize, seen: &mut HashSet<(u64, u64)>) {
        self.entries += 1;
        self.name_bytes += name_len as u64;
        if let Some(key) = inode_key(meta) {
            if !seen.insert(key) {
                return;
            }
        }
        self.inodes += 1;
        self.bytes += meta.len();
        self.block_bytes += meta.len().div_ceil(BLOCK_SIZE) * BLOCK_SIZE;
    }
}

/// Walks `root` without following symbolic links and adds up its entries.
pub(crate) fn stats(root: &Path) -> Result<Stats> {
    let mut stats = Stats::default();
    let mut seen = HashSet::new();
    let meta = fs::symlink_metadata(root).with_context(|| format!("lstat {}", root.display()))?;
    // The root's name is not the tree's: it counts no name bytes.
    stats.add(&meta, 0, &mut seen);
    // An explicit stack rather than recursion: the torture tree nests 200 levels deep.
    let mut dirs: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("read {}", dir.display()))?;
            // DirEntry::metadata does not follow symbolic links.
            let meta = entry
                .metadata()
                .with_context(|| format!("lstat {}", entry.path().display()))?;
            stats.add(&meta, entry.file_name().len(), &mut seen);
            if meta.is_dir() {
                dirs.push(entry.path());
            }
        }
    }
    Ok(stats)
}

/// Makes `dir` holding one sparse file `big` of `size` bytes with `chunk` bytes of data at
/// its start, middle and end (a simple pseudo-random pattern), unless it is already there.
pub(crate) fn make_sparse(dir: &Path, size: u64, chunk: u64) -> Result<()> {
    use std::io::{Seek, SeekFrom, Write};

    let file = dir.join("big");
    if fs::symlink_metadata(&file).is_ok_and(|meta| meta.len() == size) {
        return Ok(());
    }
    fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    let mut out = fs::File::create(&file).with_context(|| format!("create {}", file.display()))?;
    out.set_len(size)?;
    let data = pseudo_random(0, chunk as usize);
    for offset in [0, (size / 2) & !0xfff, size - chunk] {
        out.seek(SeekFrom::Start(offset))?;
        out.write_all(&data)?;
    }
    out.sync_all()?;
    Ok(())
}

/// Makes `dir` holding `count` files `large-N` of `size` bytes each, every byte of them
/// data (pseudo-random, 1 MiB at a time, each MiB its own), unless they are already there.
pub(crate) fn make_large_files(dir: &Path, count: u64, size: u64) -> Result<()> {
    use std::io::Write;

    const CHUNK: u64 = 1 << 20;
    fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    for n in 0..count {
        let file = dir.join(format!("large-{n:03}"));
        if fs::symlink_metadata(&file).is_ok_and(|meta| meta.len() == size) {
            continue;
        }
        let mut out =
            fs::File::create(&file).with_context(|| format!("create {}", file.display()))?;
        for at in (0..size).step_by(CHUNK as usize) {
            let data = pseudo_random((n << 32) | (at / CHUNK), CHUNK.min(size - at) as usize);
            out.write_all(&data)
                .with_context(|| format!("write {}", file.display()))?;
        }
    }
    Ok(())
}

/// Bytes of no pattern that a tool could skip or compress (xorshift64 from `seed`), as the
/// data of kernels, initrds and firmware looks.
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut data = Vec::with_capacity(len.next_multiple_of(8));
    while data.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(len);
    data
}

/// The large files of the ESP-like tree: EFI binaries, unified kernel images, kernels and
/// initrds (sizes in KiB, as Debian's of 6.1 with some room to grow).
const ESP_LARGE_KIB: &[(&str, u64)] = &[
    ("EFI/BOOT/BOOTX64.EFI", 950),
    ("EFI/BOOT/mmx64.efi", 850),
    ("EFI/BOOT/fbx64.efi", 90),
    ("EFI/debian/shimx64.efi", 950),
    ("EFI/debian/grubx64.efi", 2_600),
    ("EFI/Linux/debian-6.1.0-21-amd64.efi", 70 << 10),
    ("EFI/Linux/debian-6.1.0-22-amd64.efi", 72 << 10),
    ("vmlinuz-6.1.0-20-amd64", 10 << 10),
    ("vmlinuz-6.1.0-21-amd64", 10 << 10),
    ("vmlinuz-6.1.0-22-amd64", 11 << 10),
    ("initrd.img-6.1.0-20-amd64", 60 << 10),
    ("initrd.img-6.1.0-21-amd64", 80 << 10),
    ("initrd.img-6.1.0-22-amd64", 100 << 10),
];

/// Firmware-like vendors of the ESP-like tree, each with `ESP_CHIPS` chip folders of
/// `ESP_BLOBS` files of 1 to 61 KiB.
const ESP_VENDORS: &[&str] = &[
    "amdgpu", "iwlwifi", "i915", "rtl_nic", "qcom", "mediatek", "brcm", "ath10k", "nvidia",
    "radeon", "Intel", "cirrus",
];
const ESP_CHIPS: u64 = 16;
const ESP_BLOBS: u64 = 11;
/// Locale-like folders (`locale/LANG/LC_MESSAGES`), each with `ESP_DOMAINS` catalogues of
/// 200 bytes to 16 KiB.
const ESP_LANGS: u64 = 60;
const ESP_DOMAINS: u64 = 15;

/// Makes `root`, an EFI system partition as a distribution fills it: the large files of
/// [`ESP_LARGE_KIB`], some 2,100 firmware blobs and 900 message catalogues in nested
/// folders, and a few loader entries (about 490 MiB in all, the same bytes every time).
pub(crate) fn make_esp(root: &Path) -> Result<()> {
    let mut files: Vec<(PathBuf, usize)> = ESP_LARGE_KIB
        .iter()
        .map(|&(path, kib)| (PathBuf::from(path), (kib << 10) as usize))
        .collect();
    for (v, vendor) in ESP_VENDORS.iter().enumerate() {
        for c in 0..ESP_CHIPS {
            for b in 0..ESP_BLOBS {
                let i = (v as u64 * ESP_CHIPS + c) * ESP_BLOBS + b;
                let path = format!("firmware/{vendor}/Chip{c:02}/{vendor}_chip{c:02}_fw-{b}.bin");
                files.push((path.into(), (1024 + i * 7_919 % (60 << 10)) as usize));
            }
        }
    }
    for lang in 0..ESP_LANGS {
        for d in 0..ESP_DOMAINS {
            let path = format!("locale/lang{lang:02}/LC_MESSAGES/domain-{d:02}.mo");
            files.push((
                path.into(),
                (200 + (lang * 31 + d) * 977 % (16 << 10)) as usize,
            ));
        }
    }
    for k in 20..23 {
        let path = format!("loader/entries/debian-6.1.0-{k}-amd64.conf");
        files.push((path.into(), 180));
    }
    for (i, (rel, len)) in files.iter().enumerate() {
        let path = root.join(rel);
        // OK to unwrap: every path above has a parent under `root`.
        let dir = path.parent().unwrap();
        fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
        fs::write(&path, pseudo_random(i as u64, *len))
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

/// Makes `path`, a tar archive of `files` small files (0 to 60 bytes, so that each fits in
/// its inode with inline_data) in directories of `per_dir` each, unless it is already there;
/// returns the archive's tree as [`Stats`]. A tar, because so many files would take tens of
/// GiB of a host file system as files of their own.
pub(crate) fn make_many_files_tar(path: &Path, files: u64, per_dir: u64) -> Result<Stats> {
    use std::io::{BufWriter, Write};

    let dirs = files.div_ceil(per_dir);
    let size_of = |i: u64| i % 61;
    let dir_name = |d: u64| format!("d{d:05}");
    let file_name = |i: u64| format!("f{i:07}");
    let bytes: u64 = (0..files).map(size_of).sum();
    let name_len = |name: String| name.len() as u64;
    let stats = Stats {
        entries: 1 + dirs + files,
        inodes: 1 + dirs + files,
        bytes,
        block_bytes: (0..files)
            .map(|i| size_of(i).div_ceil(BLOCK_SIZE) * BLOCK_SIZE)
            .sum(),
        name_bytes: (0..dirs).map(|d| name_len(dir_name(d))).sum::<u64>()
            + (0..files).map(|i| name_len(file_name(i))).sum::<u64>(),
    };
    let data_blocks: u64 = (0..files).map(|i| size_of(i).div_ceil(512)).sum();
    let tar_len = (dirs + files + data_blocks + 2) * 512;
    if fs::metadata(path).is_ok_and(|meta| meta.len() == tar_len) {
        return Ok(stats);
    }
    let temp = path.with_extension("partial");
    let file = fs::File::create(&temp).with_context(|| format!("create {}", temp.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut block = [0u8; 512];
    for d in 0..dirs {
        out.write_all(&ustar_header(&format!("{}/", dir_name(d)), b'5', 0o755, 0))?;
        for i in d * per_dir..((d + 1) * per_dir).min(files) {
            let size = size_of(i);
            out.write_all(&ustar_header(
                &format!("{}/{}", dir_name(d), file_name(i)),
                b'0',
                0o644,
                size,
            ))?;
            if size > 0 {
                let text = format!("{i:07} ").repeat(8);
                block.fill(0);
                block[..size as usize].copy_from_slice(&text.as_bytes()[..size as usize]);
                out.write_all(&block)?;
            }
        }
    }
    out.write_all(&[0u8; 1024])?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    fs::rename(&temp, path).with_context(|| format!("rename to {}", path.display()))?;
    Ok(stats)
}

/// A ustar header block: owner 0:0, mtime 2023-11-14 (1,700,000,000).
fn ustar_header(name: &str, kind: u8, mode: u32, size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    let mut put = |at: usize, text: &[u8]| h[at..at + text.len()].copy_from_slice(text);
    put(0, name.as_bytes());
    put(100, format!("{mode:07o}\0").as_bytes());
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{size:011o}\0").as_bytes());
    put(136, format!("{:011o}\0", 1_700_000_000u32).as_bytes());
    put(148, b"        ");
    put(156, &[kind]);
    put(257, b"ustar\0");
    put(263, b"00");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// Identifies an inode so that hard links are counted once.
#[cfg(unix)]
fn inode_key(meta: &Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

/// Elsewhere std has no stable inode number, so every name counts as its own inode.
#[cfg(not(unix))]
fn inode_key(_meta: &Metadata) -> Option<(u64, u64)> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> PathBuf {
        crate::repo_root().join("fixtures/example")
    }

    #[test]
    fn counts_the_example_fixture() {
        let stats = stats(&example()).unwrap();
        // The root, bin, etc and its 4 files, usr, usr/bin, hello, usr/share, doc, kiln,
        // README, var, var/log and its README.
        assert_eq!(stats.entries, 17);
        // The 16 names but the root's, as `find fixtures/example` lists them.
        assert_eq!(stats.name_bytes, 71, "{stats:?}");
        assert_eq!(stats.inodes, 17);
        assert!(stats.bytes > 3000, "{stats:?}");
        assert_eq!(stats.block_bytes % BLOCK_SIZE, 0);
        assert!(stats.block_bytes >= stats.bytes);
    }

    /// The README's main job depends on what git has to keep for this tree: a symbolic
    /// link and an executable bit. A checkout without either (core.symlinks=false, a
    /// file system without modes) would build a different image.
    #[cfg(unix)]
    #[test]
    fn example_fixture_keeps_its_symlink_and_mode() {
        use std::os::unix::fs::PermissionsExt;

        let root = example();
        assert_eq!(
            fs::read_link(root.join("bin")).unwrap(),
            Path::new("usr/bin")
        );
        let hello = fs::symlink_metadata(root.join("usr/bin/hello")).unwrap();
        assert_eq!(hello.permissions().mode() & 0o777, 0o755);
    }

    /// The ESP-like tree holds what its doc says, of bytes that depend only on each file's
    /// place in it.
    #[test]
    fn esp_tree_is_as_documented_and_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        make_esp(dir.path()).unwrap();
        let stats = stats(dir.path()).unwrap();
        let blobs = ESP_VENDORS.len() as u64 * ESP_CHIPS * ESP_BLOBS;
        let files = ESP_LARGE_KIB.len() as u64 + blobs + ESP_LANGS * ESP_DOMAINS + 3;
        let dirs = stats.entries - files;
        assert_eq!((blobs, files, dirs), (2_112, 3_028, 333), "{stats:?}");
        let mib = stats.bytes >> 20;
        assert!((450..500).contains(&mib), "{mib} MiB");
        assert_eq!(pseudo_random(7, 1000), pseudo_random(7, 1000));
        assert_ne!(pseudo_random(7, 1000), pseudo_random(8, 1000));
        let kernel = fs::read(dir.path().join("vmlinuz-6.1.0-21-amd64")).unwrap();
        assert_eq!(kernel, pseudo_random(8, 10 << 20));
    }

    /// The many-files archive is one GNU tar reads: every directory and file, with the
    /// sizes its stats count; a second call keeps the archive.
    #[test]
    fn many_files_tar_is_a_valid_archive() {
        let dir = tempfile::tempdir().unwrap();
        let tar = dir.path().join("many.tar");
        let stats = make_many_files_tar(&tar, 25, 10).unwrap();
        assert_eq!(stats.entries, 1 + 3 + 25);
        assert_eq!(stats.bytes, (0..25).sum::<u64>());
        assert_eq!(
            stats.name_bytes,
            3 * "d00000".len() as u64 + 25 * "f0000000".len() as u64
        );
        let out = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(&tar)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 3 + 25, "{listing}");
        assert!(lines[0].starts_with("drwxr-xr-x 0/0") && lines[0].ends_with(" d00000/"));
        let last = lines.last().unwrap();
        assert!(last.starts_with("-rw-r--r-- 0/0") && last.ends_with(" d00002/f0000024"));
        assert!(last.contains(" 24 2023-11-14"), "{last}");
        let modified = fs::metadata(&tar).unwrap().modified().unwrap();
        make_many_files_tar(&tar, 25, 10).unwrap();
        assert_eq!(fs::metadata(&tar).unwrap().modified().unwrap(), modified);
    }
}
