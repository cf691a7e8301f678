//! The real tools judge kiln's FAT images: `fsck.fat -n -v` must find
//! nothing, and mtools (`mdir`, `mcopy`) must read back every name and
//! every byte of the source tree.

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
