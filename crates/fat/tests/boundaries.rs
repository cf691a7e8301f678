//! The variant is the cluster count's: images sized right at the FAT12/16
//! (4,084 / 4,085 clusters) and FAT16/32 (65,524 / 65,525) edges are
//! checked with fsck.fat and mtools, and their BPB read back must imply the
//! variant kiln wrote. The geometry kiln chooses by default is mkfs.fat's.

mod common;

use common::*;
use kiln_fat::{FatOptions, FatVariant};
use kiln_tree::{Metadata, Tree};

fn empty_tree() -> Tree {
    Tree::new(Metadata::made(0o755, 0, 0))
}

fn at(variant: FatVariant, cluster_size: u32, size: u64) -> FatOptions {
    FatOptions {
        variant: Some(variant),
        cluster_size: Some(cluster_size),
        size: Some(size),
        ..FatOptions::default()
    }
}

/// The smallest size whose volume of `variant` with clusters of
/// `cluster_size` bytes has exactly `clusters` clusters.
fn size_for(variant: FatVariant, cluster_size: u32, clusters: u32) -> u64 {
    let tree = empty_tree();
    let start = u64::from(clusters) * u64::from(cluster_size / 512);
    (start..start + 20_000)
        .map(|sectors| sectors * 512)
        .find(|&size| {
            kiln_fat::plan(&tree, &at(variant, cluster_size, size))
                .is_ok_and(|p| p.geometry().clusters == clusters)
        })
        .unwrap_or_else(|| panic!("no {variant} size with {clusters} clusters of {cluster_size}"))
}

#[test]
fn images_at_the_cluster_count_edges() {
    if !require_tools(&["fsck.fat", "mdir", "mcopy"]) {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    put(&src.path().join("Some File.txt"), &bytes(5000, 1));
    put(&src.path().join("dir/inner.bin"), &bytes(70_000, 2));
    settle(src.path());
    use FatVariant::*;
    for (variant, cs, clusters, other) in [
        (Fat12, 512, 4084, Fat16),
        (Fat16, 512, 4085, Fat12),
        (Fat12, 4096, 4084, Fat16),
        (Fat16, 4096, 4085, Fat12),
        (Fat16, 512, 65_524, Fat32),
        (Fat32, 512, 65_525, Fat16),
        (Fat16, 2048, 65_524, Fat32),
    ] {
        let size = size_for(variant, cs, clusters);
        let out = tempfile::tempdir().unwrap();
        let image = out.path().join("edge.img");
        let g = build(src.path(), &at(variant, cs, size), &image);
        assert_eq!((g.variant, g.clusters), (variant, clusters));
        fsck_clean(&image);
        mtools_match(&image, src.path());
        let (by_count, named, spc, read) = read_bpb(&image);
        assert_eq!(
            (by_count, read, spc * 512),
            (variant, clusters, cs),
            "{variant} at {size}"
        );
        assert_eq!(named, variant.to_string());
        // fsck.fat's own inference, from its verbose summary.
        let bits = match variant {
            Fat12 => 12,
            Fat16 => 16,
            Fat32 => 32,
        };
        let out = run("fsck.fat", &["-n", "-v", image.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("2 FATs, {bits} bit entries")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{clusters} data clusters")),
            "{text}"
        );
        // The other side of the edge cannot be that size and cluster size.
        let e = kiln_fat::plan(&empty_tree(), &at(other, cs, size)).unwrap_err();
        assert!(e.to_string().contains(&format!("no {other} volume")), "{e}");
    }
}

#[test]
fn default_geometry_matches_mkfs_fat() {
    if !require_tools(&["mkfs.fat"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for kib in [
        1440u64, 2880, 4096, 8192, 16_384, 65_536, 262_144, 266_240, 524_288, 614_400,
    ] {
        let image = dir.path().join(format!("mkfs-{kib}.img"));
        let out = run(
            "mkfs.fat",
            &["-C", image.to_str().unwrap(), &kib.to_string()],
        );
        assert!(out.status.success(), "mkfs.fat: {}", describe(&out));
        let (by_count, named, spc, _) = read_bpb(&image);
        let opts = FatOptions {
            size: Some(kib * 1024),
            ..FatOptions::default()
        };
        let tree = empty_tree();
        let plan = kiln_fat::plan(&tree, &opts).unwrap();
        let g = plan.geometry();
        assert_eq!(
            (g.variant, g.sectors_per_cluster),
            (by_count, spc),
            "{kib} KiB ({named})"
        );
        std::fs::remove_file(&image).unwrap();
    }
}

/// Every cluster size from 512 bytes to 64 KiB, on FAT16 and FAT32.
#[test]
fn every_cluster_size() {
    if !require_tools(&["fsck.fat", "mdir", "mcopy"]) {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    put(&src.path().join("small"), b"s");
    put(&src.path().join("dir/large.bin"), &bytes(200_000, 3));
    settle(src.path());
    for shift in 9..=16 {
        let cs = 1u32 << shift;
        for (variant, clusters) in [(FatVariant::Fat16, 5000), (FatVariant::Fat32, 65_600)] {
            let size = size_for(variant, cs, clusters);
            let out = tempfile::tempdir().unwrap();
            let image = out.path().join("cs.img");
            let g = build(src.path(), &at(variant, cs, size), &image);
            assert_eq!((g.variant, g.cluster_bytes()), (variant, cs));
            fsck_clean(&image);
            mtools_match(&image, src.path());
            let (by_count, _, spc, _) = read_bpb(&image);
            assert_eq!((by_count, spc * 512), (variant, cs));
        }
    }
}

#[test]
fn a_given_volume_id_is_written() {
    let opts = FatOptions {
        volume_id: Some(0xDEAD_BEEF),
        label: Some("esp".into()),
        size: Some(1_474_560),
        ..FatOptions::default()
    };
    let tree = empty_tree();
    let plan = kiln_fat::plan(&tree, &opts).unwrap();
    assert_eq!(plan.volume_id(), 0xDEAD_BEEF);
    let out = tempfile::tempdir().unwrap();
    let image = out.path().join("id.img");
    let sink = kiln_sink::SparseFile::create(&image, plan.size(), false).unwrap();
    kiln_fat::emit(&plan, &sink).unwrap();
    sink.commit(kiln_sink::Durability::Writeback).unwrap();
    let b = std::fs::read(&image).unwrap();
    assert_eq!(&b[39..43], &0xDEAD_BEEFu32.to_le_bytes());
    assert_eq!(&b[43..54], b"ESP        ");
    if require_tools(&["fsck.fat"]) {
        fsck_clean(&image);
    }
}
