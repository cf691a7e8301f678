//! Android sparse images judged by AOSP's own tools: `simg2img` expands
//! each one back to the raw image, `img2simg` gives the size to compare
//! with, and the CRC32 chunk is checked against the image independently.

mod common;

use std::path::Path;

use common::{encode_file, raw_bytes, require_tools, run_ok, test_image, write_raw, Rng, Step};
use kiln_container::{ContainerOptions, ImageFormat};

const MIB: u64 = 1 << 20;

/// The images judged: a name, the image size and its steps.
fn cases() -> Vec<(&'static str, u64, Vec<Step>)> {
    let mut cases = vec![
        ("mixed-16MiB", 16 * MIB, test_image(1, 16 * MIB)),
        // Not a multiple of 4096 or 1024: 512-byte blocks.
        (
            "mixed-5MiB+1536",
            5 * MIB + 1536,
            test_image(2, 5 * MIB + 1536),
        ),
        // A multiple of 1024 but not of 4096: 1024-byte blocks.
        (
            "mixed-3MiB+1024",
            3 * MIB + 1024,
            test_image(3, 3 * MIB + 1024),
        ),
        ("zeros-8MiB", 8 * MIB, vec![Step::Gap(8 * MIB)]),
        ("small-4096", 4096, test_image(4, 4096)),
        ("small-512", 512, test_image(5, 512)),
        ("one-fill-block", 4096, vec![Step::Data(vec![0xC3; 4096])]),
        // No blocks: the header alone (as img2simg writes it), and with
        // sparse_crc the CRC of nothing.
        ("empty", 0, vec![]),
    ];
    let (size, steps) = fills_and_gaps();
    cases.push(("fills-and-gaps", size, steps));
    cases
}

/// Long runs of a repeated word (some not block-aligned, two words back to
/// back), long gaps, written zeros, and data between them.
fn fills_and_gaps() -> (u64, Vec<Step>) {
    let word = |w: u32, len: u64| {
        Step::Data(
            w.to_le_bytes()
                .iter()
                .cycle()
                .take(len as usize)
                .copied()
                .collect(),
        )
    };
    let mut rng = Rng::new(77);
    let mut steps = vec![
        word(0x1234_5678, 3 * MIB + 100),
        Step::Gap(20 * MIB - 100),
        Step::Data(rng.bytes(10_000)),
        word(0xFFFF_FFFF, 2 * MIB),
        word(0x0000_0001, 6 * MIB),
        Step::Data(vec![0; MIB as usize]),
        Step::Gap(9 * MIB + 7),
        Step::Data(rng.bytes(5 * MIB as usize)),
        word(0xDEAD_BEEF, 4096 * 3),
    ];
    let len: u64 = raw_bytes(&steps).len() as u64;
    let size = (len + 1).div_ceil(4096) * 4096;
    steps.push(Step::Gap(size - len - 1));
    steps.push(Step::Data(vec![0x55]));
    (size, steps)
}

fn options(size: u64, crc: bool) -> ContainerOptions {
    let mut options = ContainerOptions::new(ImageFormat::AndroidSparse, size);
    options.sparse_crc = crc;
    options
}

/// What a sparse file's headers say, read independently of the encoder:
/// the block size, and the CRC32 chunk's value if there is one.
struct Parsed {
    blk_sz: u32,
    chunks: u32,
    crc: Option<u32>,
}

/// Walks a sparse file's chunks, checking the header fields, that every
/// chunk's length matches its type, and that the chunks cover the image.
fn parse(file: &[u8], size: u64) -> Parsed {
    let u16_at = |o: usize| u16::from_le_bytes(file[o..o + 2].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(file[o..o + 4].try_into().unwrap());
    assert_eq!(u32_at(0), 0xed26_ff3a, "magic");
    assert_eq!((u16_at(4), u16_at(6)), (1, 0), "version");
    assert_eq!((u16_at(8), u16_at(10)), (28, 12), "header lengths");
    let blk_sz = u32_at(12);
    let total_blks = u32_at(16);
    let total_chunks = u32_at(20);
    // libsparse writes 0 here, with or without a CRC32 chunk.
    assert_eq!(u32_at(24), 0, "image_checksum");
    assert_eq!(u64::from(blk_sz) * u64::from(total_blks), size);
    let mut at = 28;
    let mut blocks = 0u64;
    let mut crc = None;
    for i in 0..total_chunks {
        assert!(crc.is_none(), "a chunk after the CRC32 chunk");
        let (kind, chunk_sz, total_sz) = (u16_at(at), u32_at(at + 4), u32_at(at + 8) as usize);
        assert_eq!(u16_at(at + 2), 0, "reserved1 of chunk {i}");
        let data = total_sz - 12;
        match kind {
            0xCAC1 => assert_eq!(data as u64, u64::from(chunk_sz) * u64::from(blk_sz)),
            0xCAC2 => assert_eq!(data, 4),
            0xCAC3 => assert_eq!(data, 0),
            0xCAC4 => {
                assert_eq!((data, chunk_sz), (4, 0));
                crc = Some(u32_at(at + 12));
            }
            _ => panic!("chunk {i}: type {kind:#x}"),
        }
        blocks += u64::from(chunk_sz);
        at += total_sz;
    }
    assert_eq!(at, file.len(), "the chunks end where the file does");
    assert_eq!(blocks, u64::from(total_blks));
    Parsed {
        blk_sz,
        chunks: total_chunks,
        crc,
    }
}

/// The block size the encoder should pick.
fn expected_block_size(size: u64) -> u32 {
    [4096, 1024, 512]
        .into_iter()
        .find(|b| size % b == 0)
        .unwrap() as u32
}

fn expand_and_compare(sparse: &Path, expanded: &Path, raw: &[u8]) {
    run_ok(
        "simg2img",
        &[sparse.to_str().unwrap(), expanded.to_str().unwrap()],
    );
    let got = std::fs::read(expanded).unwrap();
    assert_eq!(
        got.len(),
        raw.len(),
        "{}: expanded length",
        sparse.display()
    );
    assert!(
        got == raw,
        "{}: simg2img's image differs from the raw image",
        sparse.display()
    );
}

#[test]
fn simg2img_expands_to_the_raw_image() {
    if !require_tools(&["simg2img", "img2simg"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, size, steps) in cases() {
        let raw = raw_bytes(&steps);
        assert_eq!(raw.len() as u64, size, "{name}");
        let raw_path = dir.path().join(format!("{name}.raw"));
        write_raw(&steps, &raw_path);
        let blk = expected_block_size(size);

        let sparse = dir.path().join(format!("{name}.simg"));
        let len = encode_file(&options(size, false), &steps, &sparse).unwrap();
        let file = std::fs::read(&sparse).unwrap();
        assert_eq!(file.len() as u64, len, "{name}: the length finish gives");
        let parsed = parse(&file, size);
        assert_eq!(parsed.blk_sz, blk, "{name}");
        assert_eq!(parsed.crc, None, "{name}");
        expand_and_compare(&sparse, &dir.path().join(format!("{name}.out")), &raw);

        // img2simg with the same block size, for comparison (it takes no
        // block size below 1024: a 512-byte-block image is compared with
        // its 1024-byte-block one, whose last block is padded).
        let their_blk = blk.max(1024);
        let reference = dir.path().join(format!("{name}.img2simg"));
        run_ok(
            "img2simg",
            &[
                raw_path.to_str().unwrap(),
                reference.to_str().unwrap(),
                &their_blk.to_string(),
            ],
        );
        let theirs = std::fs::read(&reference).unwrap();
        let theirs_chunks = u32::from_le_bytes(theirs[20..24].try_into().unwrap());
        eprintln!(
            "{name}: {size} bytes; kiln ({blk}-byte blocks) {len} bytes in {} chunks; img2simg ({their_blk}-byte blocks) {} bytes in {theirs_chunks} chunks",
            parsed.chunks,
            theirs.len()
        );
        if their_blk == blk {
            // The same runs make the same chunks, but zero runs are
            // don't-care chunks here (12 bytes) and fill chunks of zeros
            // there (16 bytes).
            assert_eq!(parsed.chunks, theirs_chunks, "{name}: chunk count");
            assert!(len <= theirs.len() as u64, "{name}: larger than img2simg's");
        }
    }
}

#[test]
fn crc32_chunk_holds_the_image_crc() {
    if !require_tools(&["simg2img"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, size, steps) in cases() {
        let raw = raw_bytes(&steps);
        let sparse = dir.path().join(format!("{name}.crc.simg"));
        encode_file(&options(size, true), &steps, &sparse);
        let file = std::fs::read(&sparse).unwrap();
        let parsed = parse(&file, size);
        // The CRC-32 (zlib's) of the whole expanded image, as libsparse's
        // reader computes it across every chunk, don't-care ones as zeros.
        assert_eq!(parsed.crc, Some(crc32fast::hash(&raw)), "{name}");
        // simg2img reads the CRC32 chunk and still expands the image.
        expand_and_compare(&sparse, &dir.path().join(format!("{name}.crc.out")), &raw);
    }
}

#[test]
fn two_encodes_give_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for (name, size, steps) in cases() {
        for crc in [false, true] {
            let a = dir.path().join(format!("{name}.a.simg"));
            let b = dir.path().join(format!("{name}.b.simg"));
            encode_file(&options(size, crc), &steps, &a);
            encode_file(&options(size, crc), &steps, &b);
            assert!(
                std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
                "{name} (crc {crc}): two encodes differ"
            );
        }
    }
}

#[test]
fn refuses_sizes_not_a_multiple_of_512() {
    let file = tempfile::tempfile().unwrap();
    let err = kiln_container::file_encoder(&options(4096 + 100, false), file)
        .err()
        .expect("an image of 4196 bytes is refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}
