//! qcow2 judged by qemu-img: `check` finds no errors, `compare` finds the
//! raw image, `info` reads the virtual size and compression type; two
//! encodes give the same bytes, and the file is no larger than what
//! `qemu-img convert` makes of the same raw image.

mod common;

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use common::{
    assert_qemu_finds_raw, encode_file, require_tools, run, run_ok, test_image, Rng, Step,
};
use kiln_container::{file_encoder, ClusterCompression, ContainerOptions, ImageFormat};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// Every compression mode, with its name in file names.
const MODES: [(ClusterCompression, &str); 3] = [
    (ClusterCompression::None, "plain"),
    (ClusterCompression::Deflate, "deflate"),
    (ClusterCompression::Zstd, "zstd"),
];

/// Writes the raw image to `path`, leaving its gaps as holes (a large
/// image stays cheap), `size` bytes long.
fn write_sparse_raw(steps: &[Step], size: u64, path: &Path) {
    let mut file = File::create(path).unwrap();
    for step in steps {
        match step {
            Step::Data(bytes) => file.write_all(bytes).unwrap(),
            Step::Gap(n) => {
                file.seek(SeekFrom::Current(*n as i64)).unwrap();
            }
        }
    }
    file.set_len(size).unwrap();
}

/// The length of the file at `path`.
fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// The options of a qcow2 of `size` bytes with `compression`.
fn options(size: u64, compression: ClusterCompression) -> ContainerOptions {
    let mut options = ContainerOptions::new(ImageFormat::Qcow2, size);
    options.compression = compression;
    options
}

/// What `qemu-img convert` makes of `raw` in the same mode: the file.
fn qemu_convert(raw: &Path, compression: ClusterCompression, out: &Path) {
    let mut args = vec!["convert", "-f", "raw", "-O", "qcow2"];
    match compression {
        ClusterCompression::None => {}
        ClusterCompression::Deflate => args.push("-c"),
        ClusterCompression::Zstd => args.extend(["-c", "-o", "compression_type=zstd"]),
        _ => unreachable!("a mode this test does not know"),
    }
    args.extend([raw.to_str().unwrap(), out.to_str().unwrap()]);
    run_ok("qemu-img", &args);
}

/// `qemu-img check` finds nothing wrong.
fn assert_checks(image: &Path) {
    let out = run(
        "qemu-img",
        &["check", "-f", "qcow2", image.to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("No errors were found on the image."),
        "qemu-img check {} ({}):\n{stdout}\n{}",
        image.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `qemu-img info` reads the format, virtual size and compression type.
fn assert_info(image: &Path, size: u64, compression: ClusterCompression) {
    let json = run_ok(
        "qemu-img",
        &[
            "info",
            "-f",
            "qcow2",
            "--output=json",
            image.to_str().unwrap(),
        ],
    );
    let compression_type = match compression {
        ClusterCompression::Zstd => "zstd",
        _ => "zlib",
    };
    for want in [
        r#""format": "qcow2""#.to_string(),
        format!(r#""virtual-size": {size},"#),
        format!(r#""compression-type": "{compression_type}""#),
        r#""compat": "1.1""#.to_string(),
        r#""refcount-bits": 16"#.to_string(),
    ] {
        assert!(
            json.contains(&want),
            "{want} not in the info of {}:\n{json}",
            image.display()
        );
    }
}

/// Encodes the image in every mode and judges each file; returns
/// (mode, our length, qemu-img convert's length) for each.
fn judge(name: &str, size: u64, steps: &[Step]) -> Vec<(&'static str, u64, u64)> {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join(format!("{name}.raw"));
    write_sparse_raw(steps, size, &raw);
    let mut sizes = Vec::new();
    for (compression, mode) in MODES {
        let path =
            |what: &str| -> PathBuf { dir.path().join(format!("{name}-{mode}-{what}.qcow2")) };
        let (ours, again, theirs) = (path("kiln"), path("again"), path("qemu"));
        let len = encode_file(&options(size, compression), steps, &ours);
        assert_eq!(
            len,
            Some(file_len(&ours)),
            "{name} {mode}: the length finish returns"
        );
        assert_checks(&ours);
        assert_qemu_finds_raw(&raw, &ours, "qcow2", &format!("{name} {mode}"));
        assert_info(&ours, size, compression);
        encode_file(&options(size, compression), steps, &again);
        assert!(
            std::fs::read(&ours).unwrap() == std::fs::read(&again).unwrap(),
            "{name} {mode}: two encodes differ"
        );
        qemu_convert(&raw, compression, &theirs);
        sizes.push((mode, file_len(&ours), file_len(&theirs)));
    }
    for (mode, ours, theirs) in &sizes {
        eprintln!("{name} {mode}: kiln {ours} bytes, qemu-img convert {theirs} bytes");
    }
    sizes
}

/// Judges the image and holds its size to qemu-img convert's.
fn judge_and_compare(name: &str, size: u64, steps: &[Step]) {
    for (mode, ours, theirs) in judge(name, size, steps) {
        assert!(
            ours <= theirs,
            "{name} {mode}: kiln's {ours} bytes, qemu-img convert's {theirs}"
        );
    }
}

#[test]
fn random_images() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    for (seed, size) in [
        (1, 3 * MIB + 7 * 512),
        (2, 8 * MIB),
        (3, 5 * MIB + 40 * KIB),
    ] {
        judge_and_compare(&format!("seed{seed}"), size, &test_image(seed, size));
    }
}

/// `len` bytes of text from a vocabulary of made-up words and numbers:
/// compressible about as much as logs or source code, where compressors
/// differ most.
fn words(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let vocabulary: Vec<Vec<u8>> = (0..500)
        .map(|_| {
            let n = 2 + rng.below(9) as usize;
            (0..n).map(|_| b'a' + rng.below(26) as u8).collect()
        })
        .collect();
    let mut text = Vec::with_capacity(len + 16);
    while text.len() < len {
        // Word frequencies fall off, as in real text.
        let pick = rng.below(500) * rng.below(500) / 500;
        text.extend_from_slice(&vocabulary[pick as usize]);
        match rng.below(12) {
            0 => text.extend_from_slice(format!(" {} ", rng.below(100_000)).as_bytes()),
            1 => text.extend_from_slice(b".\n"),
            _ => text.push(b' '),
        }
    }
    text.truncate(len);
    text
}

#[test]
fn text_image() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    let size = 6 * MIB + 512;
    let steps = [
        Step::Data(words(9, (3 * MIB) as usize)),
        Step::Gap(MIB),
        Step::Data(words(10, (2 * MIB + 512) as usize)),
    ];
    judge_and_compare("text", size, &steps);
}

#[test]
fn tiny_images() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    judge_and_compare("sector", 512, &test_image(4, 512));
    judge_and_compare("under-a-cluster", 60 * KIB, &test_image(5, 60 * KIB));
}

#[test]
fn all_zero_image() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    let size = 5 * MIB + 1536;
    // Written zeros and a gap: neither allocates a cluster.
    let steps = [Step::Data(vec![0; 200_000]), Step::Gap(size - 200_000)];
    judge_and_compare("zeros", size, &steps);
}

#[test]
fn over_one_l2_table() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    // One L2 table maps 512 MiB: data at the start, across that boundary
    // and at the end (three L2 tables), gaps between.
    let size = 1100 * MIB + 3 * 512;
    let mut steps = test_image(6, 2 * MIB);
    let across = 512 * MIB - 700 * KIB;
    steps.push(Step::Gap(across - 2 * MIB));
    steps.extend(test_image(7, 2 * MIB));
    let tail = 300 * KIB + 3 * 512;
    steps.push(Step::Gap(size - across - 2 * MIB - tail));
    steps.extend(test_image(8, tail));
    judge_and_compare("large", size, &steps);
}

#[test]
fn refuses_what_qcow2_cannot_hold() {
    let dir = tempfile::tempdir().unwrap();
    let file = || File::create(dir.path().join("x.qcow2")).unwrap();
    // Not a whole number of sectors.
    let err = file_encoder(&options(1000, ClusterCompression::None), file())
        .err()
        .unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    // More or fewer bytes than the options say.
    let mut encoder = file_encoder(&options(4096, ClusterCompression::None), file()).unwrap();
    encoder.data(&[1; 512]).unwrap();
    assert!(encoder.finish().is_err());
}

/// An image of `clusters` 64 KiB clusters, each holding its index in its
/// first 8 bytes and zeros after: every cluster is allocated, and each
/// compresses to a few dozen bytes.
fn numbered_clusters(clusters: u64) -> Vec<Step> {
    (0..clusters)
        .flat_map(|i| {
            [
                Step::Data(i.to_be_bytes().to_vec()),
                Step::Gap(64 * KIB - 8),
            ]
        })
        .collect()
}

#[test]
fn hundreds_of_compressed_clusters_share_a_host_cluster() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    // Hundreds of compressed clusters to a host cluster: their
    // refcounts are far above one.
    let clusters = 800;
    judge_and_compare(
        "numbered",
        clusters * 64 * KIB,
        &numbered_clusters(clusters),
    );
}

/// More than 32768 host clusters (2 GiB of data): a second refcount
/// block, which counts itself and the first. Plain clusters only (the
/// compressed modes would need several times the data to fill as many).
#[test]
fn over_one_refcount_block() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    let clusters = 33_000;
    let size = clusters * 64 * KIB;
    let steps = numbered_clusters(clusters);
    let dir = tempfile::tempdir().unwrap();
    let (raw, image) = (dir.path().join("two.raw"), dir.path().join("two.qcow2"));
    write_sparse_raw(&steps, size, &raw);
    encode_file(&options(size, ClusterCompression::None), &steps, &image);
    assert_checks(&image);
    assert_qemu_finds_raw(&raw, &image, "qcow2", "two refcount blocks");
}
