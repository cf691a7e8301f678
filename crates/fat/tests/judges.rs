//! The real tools judge kiln's FAT images: `fsck.fat -n -v` must find
//! nothing, mtools (`mdir`, `mcopy`) must read back every name and every
//! byte of the source tree, and so must GRUB's FAT driver (`grub-fstest`,
//! issue 19).

mod common;

use std::fs;
use std::path::Path;

use common::*;
use kiln_fat::{FatOptions, FatVariant};

/// Builds `src` with `opts`, then judges it; returns the geometry.
fn judge(src: &Path, opts: &FatOptions) -> kiln_fat::Geometry {
    let out = tempfile::tempdir().unwrap();
    let image = out.path().join("fat.img");
    let g = build(src, opts, &image);
    fsck_clean(&image);
    mtools_match(&image, src);
    let (by_count, named, spc, clusters) = read_bpb(&image);
    assert_eq!(
        by_count, g.variant,
        "the cluster count {clusters} implies {by_count}"
    );
    assert_eq!(named, g.variant.to_string());
    assert_eq!((spc, clusters), (g.sectors_per_cluster, g.clusters));
    g
}

fn opts(variant: Option<FatVariant>, size: Option<u64>) -> FatOptions {
    FatOptions {
        variant,
        size,
        label: Some("KILN TEST".into()),
        ..FatOptions::default()
    }
}

/// Names of every kind: 8.3 upper, lower, mixed, unicode, spaces, dots,
/// 255 units.
fn names_tree(dir: &Path) {
    for name in [
        "README.TXT",
        "readme2.txt",
        "Mixed.Case.Name.txt",
        "KERNEL",
        "lower",
        "UPPER.c",
        "with space.txt",
        "  leading spaces",
        "many...dots.in.name.tar.gz",
        ".hidden",
        "ünïcødé ✓ ñame.txt",
        "日本語のファイル名.txt",
        "emoji 😀.bin",
        "a+b,c;d=e[f]g.txt",
        "x",
        "ABCDEFGH.IJK",
        "abcdefghi.jk",
    ] {
        put(&dir.join(name), name.as_bytes());
    }
    put(&dir.join("x".repeat(255)), b"255 ascii units");
    // The host holds 255 bytes per name: 127 two-byte characters, and a
    // surrogate pair at the end of a long name (its 13-unit slots split it
    // across no boundary but the last).
    put(&dir.join("é".repeat(127)), b"127 accented units");
    put(
        &dir.join(format!("{}😀", "y".repeat(251))),
        b"251 + a surrogate pair",
    );
    settle(dir);
}

#[test]
fn fat12_floppy_with_all_kinds_of_names() {
    if !require_tools(&["fsck.fat", "mdir", "mcopy"]) {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    names_tree(src.path());
    put(&src.path().join("sub/inner.txt"), b"inner");
    put(&src.path().join("sub/empty"), b"");
    settle(src.path());
    let g = judge(src.path(), &opts(None, Some(1_474_560)));
    assert_eq!(
        (g.variant, g.sectors_per_cluster, g.root_entries, g.media),
        (FatVariant::Fat12, 1, 224, 0xF0)
    );
}

#[test]
fn fat16_file_sizes_around_clusters_and_holes() {
    if !require_tools(&["fsck.fat", "mdir", "mcopy"]) {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let d = src.path();
    let g = kiln_fat::plan(
        &kiln_tree::Tree::new(kiln_tree::Metadata::made(0o755, 0, 0)),
        &opts(None, Some(64 << 20)),
    )
    .unwrap()
    .geometry()
    .cluster_bytes() as usize;
    put(&d.join("zero"), b"");
    put(&d.join("one byte"), b"1");
    put(&d.join("one cluster"), &bytes(g, 1));
    put(&d.join("one cluster and a byte"), &bytes(g + 1, 2));
    put(&d.join("cluster less a byte"), &bytes(g - 1, 3));
    put(&d.join("many clusters"), &bytes(3 * 1024 * 1024 + 7, 4));
    put(&d.join("zeros"), &vec![0u8; 5 * g]);
    // A sparse file: data, a hole of several clusters, data, a hole at the end.
    let holey = d.join("holey");
    {
        use std::os::unix::fs::FileExt;
        let f = fs::File::create(&holey).unwrap();
        f.write_all_at(&bytes(1000, 5), 0).unwrap();
        f.write_all_at(&bytes(3000, 6), 10 * g as u64 + 17).unwrap();
        f.set_len(1 << 20).unwrap();
    }
    set_time(&holey, 1_700_000_000);
    let mut deep = d.to_path_buf();
    for level in 0..24 {
        deep = deep.join(format!("level {level:02}"));
    }
    put(&deep.join("bottom.txt"), b"deep");
    settle(d);
    let g = judge(d, &opts(None, Some(64 << 20)));
    assert_eq!(g.variant, FatVariant::Fat16);
}

#[test]
fn fat32_sparse_600_mib() {
    if !require_tools(&["fsck.fat", "mdir", "mcopy"]) {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let d = src.path();
    put(&d.join("EFI/BOOT/BOOTX64.EFI"), &bytes(300_000, 7));
    put(
        &d.join("loader/entries/kiln.conf"),
        b"title kiln\nlinux /vmlinuz\n",
    );
    put(&d.join("vmlinuz"), &bytes(5 << 20, 8));
    put(&d.join("empty"), b"");
    names_tree(&d.join("names"));
    settle(d);
    let g = judge(d, &opts(None, Some(600 << 20)));
    assert_eq!((g.variant, g.cluster_bytes()), (FatVariant::Fat32, 4096));
}

#[test]
fn large_directories_on_every_variant() {
    if !require_tools(&["fsck.fat", "mdir", "mcopy"]) {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let d = src.path();
    for i in 0u32..3000 {
        put(
            &d.join(format!("big/a rather long file name number {i:05}.data")),
            &i.to_le_bytes(),
        );
    }
    // Aliases that collide through ~1 … ~9, ~10 and beyond.
    for i in 0..40 {
        put(&d.join(format!("same/LongPrefix{i}.txt")), b"x");
    }
    // A root directory of more than 512 entries (FAT16 gets a larger root).
    for i in 0..600 {
        put(&d.join(format!("R{i:04}")), b"");
    }
    settle(d);
    let g = judge(d, &opts(Some(FatVariant::Fat16), Some(64 << 20)));
    assert!(g.root_entries >= 602, "{g:?}");
    judge(d, &opts(Some(FatVariant::Fat32), Some(600 << 20)));
    judge(d, &opts(Some(FatVariant::Fat12), Some(8 << 20)));
}

#[test]
fn default_size_fits_with_headroom() {
    if !require_tools(&["fsck.fat", "mdir", "mcopy"]) {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    put(&src.path().join("a/b/c.bin"), &bytes(3 << 20, 9));
    settle(src.path());
    let g = judge(src.path(), &opts(None, None));
    assert!(g.size() <= 5 << 20, "{g:?}");
    let empty = tempfile::tempdir().unwrap();
    judge(empty.path(), &opts(None, None));
    judge(empty.path(), &opts(Some(FatVariant::Fat32), None));
}

/// Random trees (names rich in dots, spaces, case, tails and non-ASCII;
/// sizes around cluster edges; nesting) on a random variant: fsck.fat and
/// mtools judge each.
mod random {
    use std::collections::HashSet;
    use std::path::PathBuf;

    use proptest::prelude::*;

    use super::*;

    fn name() -> impl Strategy<Value = String> {
        let c = prop_oneof![
            Just('a'),
            Just('B'),
            Just('.'),
            Just(' '),
            Just('~'),
            Just('1'),
            Just('+'),
            Just('é'),
            Just('日'),
        ];
        proptest::collection::vec(c, 1..16)
            .prop_map(|c| c.into_iter().collect::<String>())
            .prop_filter("FAT can hold it", |n| !n.ends_with(['.', ' ']))
    }

    /// (directory index, name, size or None for a new directory).
    fn entries() -> impl Strategy<Value = Vec<(usize, String, Option<usize>)>> {
        let size = prop_oneof![
            Just(0usize),
            Just(511),
            Just(512),
            Just(2048),
            Just(2049),
            0..20_000usize
        ];
        proptest::collection::vec(
            (0..8usize, name(), proptest::option::weighted(0.8, size)),
            1..60,
        )
    }

    fn variant() -> impl Strategy<Value = Option<FatVariant>> {
        prop_oneof![
            Just(None),
            Just(Some(FatVariant::Fat12)),
            Just(Some(FatVariant::Fat16)),
            Just(Some(FatVariant::Fat32))
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
        #[test]
        fn random_trees_pass_the_judges(entries in entries(), variant in variant()) {
            if !require_tools(&["fsck.fat", "mdir", "mcopy"]) {
                return Ok(());
            }
            let src = tempfile::tempdir().unwrap();
            let mut dirs: Vec<PathBuf> = vec![src.path().to_path_buf()];
            let mut folded = HashSet::new();
            for (i, (parent, name, size)) in entries.into_iter().enumerate() {
                let parent = dirs[parent % dirs.len()].clone();
                if !folded.insert((parent.clone(), name.to_uppercase())) {
                    continue;
                }
                let path = parent.join(&name);
                match size {
                    Some(n) => put(&path, &bytes(n, i as u32)),
                    None => {
                        fs::create_dir(&path).unwrap();
                        dirs.push(path);
                    }
                }
            }
            settle(src.path());
            judge(src.path(), &FatOptions { variant, ..FatOptions::default() });
        }
    }
}

/// GRUB's own FAT driver (`grub-fstest`, the code that finds a kernel and
/// an initrd on an ESP at boot) lists every directory of kiln's FAT12,
/// FAT16 and FAT32 images with the source's names, sizes and modification
/// times, and reads back the source's bytes.
mod grub {
    use std::collections::BTreeMap;
    use std::fs;
    use std::path::Path;

    use super::*;

    /// The modification times `put` and `settle` give, as GRUB prints
    /// them (UTC, `YYYYMMDDhhmmss`; from `date -u -d @SECS`).
    const STAMPS: [(u64, &str); 2] = [
        (1_700_000_000, "20231114221320"),
        (1_690_000_000, "20230722042640"),
    ];

    /// The names of the files that fill directories (`big/` and the root)
    /// start so: GRUB lists them all but reads back every `CAT_STRIDE`th
    /// (a process per file would take minutes), and every other file.
    const FILLER: &str = "Entry number ";
    const CAT_STRIDE: usize = 37;
    /// Filler files in `big/`, a directory of many clusters.
    const BIG_DIR_FILES: u32 = 1200;
    /// Filler files at the root: enough that FAT32's root takes several
    /// clusters and FAT12/16's fixed root more than its usual 512 entries.
    const ROOT_FILES: u32 = 150;

    /// What one listing line says: `None` for a directory, else the size;
    /// and the modification time as GRUB prints it.
    type Entry = (Option<u64>, String);

    /// The tree GRUB reads: every kind of name at the root; files of 0
    /// bytes, one byte, a cluster less a byte, one cluster, a cluster and a
    /// byte, and many clusters; a directory of many clusters; nesting with
    /// mixed-case directory names.
    fn source(dir: &Path, cluster: usize) {
        names_tree(dir);
        let sizes = [
            ("empty", 0),
            ("one byte", 1),
            ("Cluster Less A Byte", cluster - 1),
            ("ONECLUS.BIN", cluster),
            ("one cluster and a byte", cluster + 1),
            ("vmlinuz", 3_000_000 + 5),
        ];
        for (i, (name, len)) in sizes.into_iter().enumerate() {
            put(&dir.join("boot").join(name), &bytes(len, 100 + i as u32));
        }
        for i in 0..BIG_DIR_FILES {
            let name = format!("big/{FILLER}{i:05} with a long name.conf");
            put(&dir.join(name), format!("entry {i}\n").as_bytes());
        }
        for i in 0..ROOT_FILES {
            let name = format!("{FILLER}{i:03} at the root");
            put(&dir.join(name), format!("root {i}\n").as_bytes());
        }
        put(&dir.join("EFI/Boot/BOOTX64.EFI"), &bytes(300_001, 9));
        put(
            &dir.join("EFI/Linux/Deeper Dir/loader.conf"),
            b"timeout 3\n",
        );
        settle(dir);
    }

    /// The bytes of a cluster in images made with `opts`.
    fn cluster_bytes(opts: &FatOptions) -> usize {
        let empty = kiln_tree::Tree::new(kiln_tree::Metadata::made(0o755, 0, 0));
        let plan = kiln_fat::plan(&empty, opts).unwrap();
        plan.geometry().cluster_bytes() as usize
    }

    /// `grub-fstest IMAGE ARGS...`, which must succeed and say nothing on
    /// stderr (it exits 0 even for a path it cannot find).
    fn fstest(image: &Path, args: &[&str]) -> Vec<u8> {
        let out = run("grub-fstest", &[&[image.to_str().unwrap()], args].concat());
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "grub-fstest {args:?}: {}",
            describe(&out)
        );
        out.stdout
    }

    /// GRUB's `ls -l -a` of `dir` (`-a`: names starting with a dot too):
    /// name → entry, without `.` and `..`. A line is the size (or `DIR`),
    /// padding, the time, one space and the name, with `/` after a
    /// directory's; a name may itself start with spaces.
    fn grub_listing(image: &Path, dir: &str) -> BTreeMap<String, Entry> {
        let text = String::from_utf8(fstest(image, &["ls", "--", "-l", "-a", dir])).unwrap();
        let mut listing = BTreeMap::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let parse = || {
                let (kind, rest) = line.split_once(' ')?;
                let (stamp, name) = rest.trim_start().split_once(' ')?;
                let (size, name) = match kind {
                    "DIR" => (None, name.strip_suffix('/')?),
                    size => (Some(size.parse().ok()?), name),
                };
                Some((name.to_string(), (size, stamp.to_string())))
            };
            let (name, entry) = parse().unwrap_or_else(|| panic!("GRUB listed {line:?}"));
            if name != "." && name != ".." {
                listing.insert(grub_case(&name), entry);
            }
        }
        listing
    }

    /// The name as GRUB 2.06 shows it, for comparing: GRUB lower-cases
    /// every name that has no long-name entries, so a name that fits 8.3
    /// (which kiln may store as the short name alone, as Windows does) is
    /// compared in lower case; any other name must come back exactly.
    fn grub_case(name: &str) -> String {
        let legal = |part: &str, max: usize| {
            (1..=max).contains(&part.len())
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"$%'-_@~`!(){}^#&".contains(&b))
        };
        let fits = match name.split_once('.') {
            Some((base, ext)) => legal(base, 8) && legal(ext, 3),
            None => legal(name, 8),
        };
        if fits {
            name.to_ascii_lowercase()
        } else {
            name.to_string()
        }
    }

    /// The host directory `dir`: each name with what GRUB should list for
    /// it, in name order.
    fn host_listing(dir: &Path) -> Vec<(String, Entry)> {
        let stamp = |secs: u64| {
            let (_, s) = STAMPS.iter().find(|(t, _)| *t == secs).unwrap();
            s.to_string()
        };
        fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let meta = entry.metadata().unwrap();
                let secs = meta
                    .modified()
                    .unwrap()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let size = meta.is_file().then_some(meta.len());
                let name = entry.file_name().into_string().unwrap();
                (name, (size, stamp(secs)))
            })
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect()
    }

    /// Every directory of `src` as GRUB lists it in `image`, and every
    /// file's bytes as GRUB reads them (a stride of the filler files).
    fn assert_grub_reads(image: &Path, src: &Path, what: &str) {
        let mut dirs = vec![String::new()];
        let mut files = 0;
        while let Some(rel) = dirs.pop() {
            let host = src.join(rel.trim_start_matches('/'));
            let entries = host_listing(&host);
            let want: BTreeMap<_, _> = entries
                .iter()
                .map(|(name, entry)| (grub_case(name), entry.clone()))
                .collect();
            let got = grub_listing(image, if rel.is_empty() { "/" } else { &rel });
            assert!(
                got == want,
                "{what}: GRUB lists {rel}/ otherwise:\nmissing or different: {:?}\nextra: {:?}",
                want.iter()
                    .filter(|(k, v)| got.get(*k) != Some(v))
                    .take(5)
                    .collect::<Vec<_>>(),
                got.iter()
                    .filter(|(k, v)| want.get(*k) != Some(v))
                    .take(5)
                    .collect::<Vec<_>>(),
            );
            for (i, (name, (size, _))) in entries.iter().enumerate() {
                let path = format!("{rel}/{name}");
                if size.is_none() {
                    dirs.push(path);
                } else if !name.starts_with(FILLER) || i % CAT_STRIDE == 0 {
                    let read = fstest(image, &["cat", &path]);
                    assert!(
                        read == fs::read(host.join(name)).unwrap(),
                        "{what}: GRUB reads other bytes in {path}"
                    );
                    files += 1;
                }
            }
        }
        assert!(files > 50, "{what}: GRUB read only {files} files");
    }

    #[test]
    fn grub_lists_and_reads_every_variant() {
        if !require_tools(&["grub-fstest", "fsck.fat"]) {
            return;
        }
        let cases = [
            (FatVariant::Fat12, 8 << 20),
            (FatVariant::Fat16, 64 << 20),
            (FatVariant::Fat32, 600 << 20),
        ];
        for (variant, size) in cases {
            let opts = opts(Some(variant), Some(size));
            let src = tempfile::tempdir().unwrap();
            source(src.path(), cluster_bytes(&opts));
            let out = tempfile::tempdir().unwrap();
            let image = out.path().join("fat.img");
            let g = build(src.path(), &opts, &image);
            assert_eq!(g.variant, variant);
            assert!(
                variant == FatVariant::Fat32 || g.root_entries > 512,
                "{g:?}"
            );
            fsck_clean(&image);
            assert_grub_reads(&image, src.path(), &variant.to_string());
        }
    }
}
