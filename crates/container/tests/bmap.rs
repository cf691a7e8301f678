//! bmap files judged by bmaptool: `bmaptool copy` (which checks the bmap
//! file's own SHA-256 and every range's) restores the raw image, rejects a
//! corrupted range, and `bmaptool create` on a sparse copy of the image
//! maps the same blocks.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};

use common::{feed, raw_bytes, require_tools, run, run_ok, test_image, write_raw, Rng, Step};
use kiln_container::bmap::Bmap;
use kiln_container::{file_encoder, ContainerOptions, ImageFormat};
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;
const BLOCK: usize = 4096;

/// The images judged: a name, the image size and its steps.
fn cases() -> Vec<(&'static str, u64, Vec<Step>)> {
    let mut rng = Rng::new(99);
    let gappy = vec![
        Step::Data(rng.bytes(10_000)),
        Step::Gap(7 * MIB),
        Step::Data(vec![0; 2 * BLOCK]),
        Step::Data(rng.bytes(3 * BLOCK + 5)),
        Step::Gap(MIB - 5),
        Step::Data([1u8, 2, 3, 4].repeat(MIB as usize)),
        Step::Gap(3 * MIB + 123),
        Step::Data(rng.bytes(1)),
        Step::Gap(2 * MIB - 124),
    ];
    let gappy_size = raw_bytes(&gappy).len() as u64;
    vec![
        ("mixed-16MiB", 16 * MIB, test_image(11, 16 * MIB)),
        // Not a multiple of 4096: the last block is partial and holds data.
        (
            "mixed-5MiB+100",
            5 * MIB + 100,
            test_image(12, 5 * MIB + 100),
        ),
        // A partial last block of zeros, left unmapped.
        (
            "partial-zero-tail",
            3 * BLOCK as u64 + 1000,
            vec![
                Step::Data(vec![7; 2 * BLOCK]),
                Step::Gap(BLOCK as u64 + 1000),
            ],
        ),
        ("zeros-8MiB", 8 * MIB, vec![Step::Gap(8 * MIB)]),
        ("small-1", 1, vec![Step::Data(vec![0x42])]),
        ("small-4096", 4096, test_image(13, 4096)),
        ("gappy", gappy_size, gappy),
    ]
}

/// Writes the raw image through kiln's raw file encoder wrapped in a
/// [`Bmap`]; returns the image and bmap paths.
fn encode(dir: &Path, name: &str, size: u64, steps: &[Step]) -> (PathBuf, PathBuf) {
    let image = dir.join(format!("{name}.raw"));
    let bmap = dir.join(format!("{name}.bmap"));
    let options = ContainerOptions::new(ImageFormat::Raw, size);
    let inner = file_encoder(&options, File::create(&image).unwrap()).unwrap();
    let encoder = Bmap::wrap(inner, size, Box::new(File::create(&bmap).unwrap()));
    assert_eq!(feed(encoder, steps), None, "{name}: raw keeps its length");
    (image, bmap)
}

/// A bmap range: first block, last block, SHA-256.
type Range = (u64, u64, String);

/// The ranges of a bmap file, read as bmaptool reads them (the text of
/// each `Range` is `first-last` or a single block).
fn ranges(xml: &str) -> Vec<Range> {
    xml.lines()
        .filter_map(|l| l.trim().strip_prefix("<Range"))
        .map(|r| {
            let (attrs, rest) = r.split_once('>').unwrap();
            let text = rest.strip_suffix("</Range>").unwrap().trim();
            let sum = attrs.split_once("chksum=\"").unwrap().1;
            let sum = sum.split_once('"').unwrap().0.to_string();
            let (first, last) = match text.split_once('-') {
                Some((f, l)) => (f.trim().parse().unwrap(), l.trim().parse().unwrap()),
                None => (text.parse().unwrap(), text.parse().unwrap()),
            };
            (first, last, sum)
        })
        .collect()
}

/// The text of element `tag`, on a line of its own (bmaptool's comments
/// name the elements too).
fn field<'a>(xml: &'a str, tag: &str) -> &'a str {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(open.as_str())?
                .strip_suffix(close.as_str())
        })
        .unwrap_or_else(|| panic!("no {tag} element"))
        .trim()
}

/// The blocks that are not all zeros, as ranges (what a bmap must map).
fn nonzero_ranges(raw: &[u8]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (i, block) in raw.chunks(BLOCK).enumerate() {
        let i = i as u64;
        if block.iter().any(|&b| b != 0) {
            match out.last_mut() {
                Some((_, last)) if *last + 1 == i => *last = i,
                _ => out.push((i, i)),
            }
        }
    }
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Recomputes a bmap's file checksum as bmaptool checks it: the SHA-256 of
/// the file with the checksum's digits replaced by ASCII zeros.
fn reseal(xml: &str) -> String {
    let old = field(xml, "BmapFileChecksum").to_string();
    let zeroed = xml.replacen(&old, &"0".repeat(old.len()), 1);
    let new = sha256_hex(zeroed.as_bytes());
    zeroed.replacen(&"0".repeat(old.len()), &new, 1)
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn bmaptool_copy_restores_the_image() {
    if !require_tools(&["bmaptool"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, size, steps) in cases() {
        let raw = raw_bytes(&steps);
        assert_eq!(raw.len() as u64, size, "{name}");
        let (image, bmap) = encode(dir.path(), name, size, &steps);
        assert!(
            std::fs::read(&image).unwrap() == raw,
            "{name}: the raw image"
        );
        let xml = std::fs::read_to_string(&bmap).unwrap();

        // Exactly the blocks that are not all zeros, each range's SHA-256
        // over its bytes in the image file (a partial last block: the
        // bytes it has).
        let got = ranges(&xml);
        let spans: Vec<_> = got.iter().map(|(f, l, _)| (*f, *l)).collect();
        assert_eq!(spans, nonzero_ranges(&raw), "{name}: mapped blocks");
        for (first, last, sum) in &got {
            let start = *first as usize * BLOCK;
            let end = ((*last as usize + 1) * BLOCK).min(raw.len());
            assert_eq!(
                *sum,
                sha256_hex(&raw[start..end]),
                "{name}: range {first}-{last}"
            );
        }
        let mapped: u64 = spans.iter().map(|(f, l)| l - f + 1).sum();
        assert_eq!(field(&xml, "ImageSize"), size.to_string());
        assert_eq!(field(&xml, "BlockSize"), "4096");
        assert_eq!(field(&xml, "BlocksCount"), size.div_ceil(4096).to_string());
        assert_eq!(field(&xml, "MappedBlocksCount"), mapped.to_string());
        assert_eq!(field(&xml, "ChecksumType"), "sha256");
        assert_eq!(reseal(&xml), xml, "{name}: the file checksum");

        let dest = dir.path().join(format!("{name}.dest"));
        run_ok(
            "bmaptool",
            &["copy", "--bmap", path(&bmap), path(&image), path(&dest)],
        );
        assert!(
            std::fs::read(&dest).unwrap() == raw,
            "{name}: bmaptool's copy differs"
        );
        eprintln!(
            "{name}: {size} bytes, {mapped} of {} blocks mapped in {} ranges",
            size.div_ceil(4096),
            got.len()
        );
    }
}

#[test]
fn bmaptool_rejects_a_corrupted_range() {
    if !require_tools(&["bmaptool"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (name, size, steps) = ("corrupt", 16 * MIB, test_image(21, 16 * MIB));
    let (image, bmap) = encode(dir.path(), name, size, &steps);
    let xml = std::fs::read_to_string(&bmap).unwrap();
    let got = ranges(&xml);
    assert!(got.len() >= 2, "the test image maps several ranges");
    let (first, last, sum) = &got[got.len() / 2];
    let mut bad = sum.clone().into_bytes();
    bad[10] = if bad[10] == b'0' { b'1' } else { b'0' };
    let bad = String::from_utf8(bad).unwrap();
    let corrupted = xml.replacen(sum.as_str(), &bad, 1);
    let copy = |xml: &str, tag: &str| {
        let file = dir.path().join(format!("{tag}.bmap"));
        std::fs::write(&file, xml).unwrap();
        let dest = dir.path().join(format!("{tag}.dest"));
        run(
            "bmaptool",
            &["copy", "--bmap", path(&file), path(&image), path(&dest)],
        )
    };

    // The re-sealing below is bmaptool's own computation: an untouched
    // bmap re-sealed is still taken.
    assert!(copy(&reseal(&xml), "resealed").status.success());

    // One digit off: the bmap file's checksum no longer matches.
    let out = copy(&corrupted, "corrupted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "bmaptool took a corrupted bmap");
    assert!(
        stderr.contains("checksum mismatch for bmap file"),
        "{stderr}"
    );

    // The file checksum sealed again over the corrupted range: the range
    // itself fails when bmaptool reads it.
    let out = copy(&reseal(&corrupted), "corrupted-range");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "bmaptool took a corrupted range");
    assert!(
        stderr.contains(&format!(
            "checksum mismatch for blocks range {first}-{last}"
        )),
        "{stderr}"
    );
}

#[test]
fn maps_the_blocks_bmaptool_create_maps() {
    if !require_tools(&["bmaptool", "cp"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, size, steps) in cases() {
        let (_, ours) = encode(dir.path(), name, size, &steps);
        let ours = std::fs::read_to_string(&ours).unwrap();
        // A sparse copy of the raw image, made by cp (holes for the
        // all-zero blocks), then bmaptool's own map of it.
        let written = dir.path().join(format!("{name}.written"));
        write_raw(&steps, &written);
        let sparse = dir.path().join(format!("{name}.sparse"));
        run_ok("cp", &["--sparse=always", path(&written), path(&sparse)]);
        let theirs = dir.path().join(format!("{name}.created.bmap"));
        run_ok("bmaptool", &["create", "-o", path(&theirs), path(&sparse)]);
        let theirs = std::fs::read_to_string(&theirs).unwrap();
        assert_eq!(
            ranges(&ours),
            ranges(&theirs),
            "{name}: ranges and checksums"
        );
        for tag in [
            "ImageSize",
            "BlockSize",
            "BlocksCount",
            "MappedBlocksCount",
            "ChecksumType",
        ] {
            assert_eq!(field(&ours, tag), field(&theirs, tag), "{name}: {tag}");
        }
    }
}

#[test]
fn wraps_an_android_sparse_encoder() {
    if !require_tools(&["bmaptool", "simg2img"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (size, steps) = (12 * MIB, test_image(31, 12 * MIB));
    let raw = raw_bytes(&steps);
    let simg = dir.path().join("image.simg");
    let bmap = dir.path().join("image.bmap");
    let options = ContainerOptions::new(ImageFormat::AndroidSparse, size);
    let inner = file_encoder(&options, File::create(&simg).unwrap()).unwrap();
    let encoder = Bmap::wrap(inner, size, Box::new(File::create(&bmap).unwrap()));
    let len = feed(encoder, &steps).expect("the sparse file's length passes through");
    assert_eq!(std::fs::metadata(&simg).unwrap().len(), len);
    // The bmap is the raw image's: it fits the image simg2img expands.
    let expanded = dir.path().join("image.raw");
    run_ok("simg2img", &[path(&simg), path(&expanded)]);
    let dest = dir.path().join("image.dest");
    run_ok(
        "bmaptool",
        &["copy", "--bmap", path(&bmap), path(&expanded), path(&dest)],
    );
    assert!(std::fs::read(&dest).unwrap() == raw);
}

#[test]
fn two_encodes_give_the_same_bmap() {
    let dir = tempfile::tempdir().unwrap();
    for (name, size, steps) in cases() {
        let (_, a) = encode(dir.path(), &format!("{name}.a"), size, &steps);
        let (_, b) = encode(dir.path(), &format!("{name}.b"), size, &steps);
        assert!(
            std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
            "{name}: two bmaps differ"
        );
    }
}
