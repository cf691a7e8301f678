//! VHD, fixed and dynamic, judged by QEMU's vpc driver: `qemu-img info`
//! gives the format and the virtual size (the image rounded up to whole
//! MiB), `qemu-img compare` finds the raw image in it, and the encoding is
//! the same bytes every time and through a stream.

mod common;

use std::path::Path;

use common::{
    assert_qemu_finds_raw, encode_file, encode_stream, json_field, path_str, raw_bytes,
    require_tools, run, run_ok, sparse_image, test_image, Step,
};
use kiln_container::{ContainerOptions, ImageFormat};

const MIB: u64 = 1 << 20;
/// A dynamic VHD's block.
const BLOCK: u64 = 2 * MIB;

/// The images judged: (name, steps).
fn cases() -> Vec<(&'static str, Vec<Step>)> {
    vec![
        ("small", test_image(1, 100_000)),
        ("odd-size", test_image(2, 3 * MIB + 12_345)),
        ("whole-blocks", test_image(3, 8 * MIB)),
        ("all-zero", vec![Step::Gap(5 * MIB + 4096)]),
        ("large-sparse", sparse_image(4, 70 * MIB + 65_536 + 512)),
    ]
}

fn options(format: ImageFormat, size: u64) -> ContainerOptions {
    let mut o = ContainerOptions::new(format, size);
    o.identity = *b"kiln-vhd-test-id";
    o.timestamp = 1_700_000_000;
    o
}

/// The raw image padded with zeros to `len` bytes.
fn write_padded_raw(steps: &[Step], len: u64, path: &Path) {
    let mut raw = raw_bytes(steps);
    raw.resize(len as usize, 0);
    std::fs::write(path, raw).unwrap();
}

/// `qemu-img check`, or a note that the driver has none.
fn check(file: &Path, format: &str) -> &'static str {
    let out = run("qemu-img", &["check", "-f", format, path_str(file)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("does not support checks") {
        return "unsupported";
    }
    assert!(
        out.status.success(),
        "qemu-img check {}: {}{stderr}",
        file.display(),
        String::from_utf8_lossy(&out.stdout)
    );
    "clean"
}

/// The parts of the judgement both subformats share: the format and size
/// QEMU sees, and the data it reads.
fn judge_with_qemu(file: &Path, raw: &Path, probe_args: &[&str], virtual_size: u64) {
    let mut args = vec!["info", "--output=json"];
    args.extend_from_slice(probe_args);
    args.push(path_str(file));
    let info = run_ok("qemu-img", &args);
    assert_eq!(json_field(&info, "format"), "vpc", "{info}");
    assert_eq!(
        json_field(&info, "virtual-size"),
        virtual_size.to_string(),
        "{info}"
    );
    assert_qemu_finds_raw(raw, file, "vpc", &file.display().to_string());
}

#[test]
fn fixed_vhd_is_read_by_qemu() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, steps) in cases() {
        let size = raw_bytes(&steps).len() as u64;
        let o = options(ImageFormat::Vhd, size);
        let virtual_size = ImageFormat::Vhd.virtual_size(size);
        let file = dir.path().join(format!("{name}.vhd"));
        let raw = dir.path().join(format!("{name}.raw"));
        let len = encode_file(&o, &steps, &file);
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(len, Some(virtual_size + 512), "{name}");
        assert_eq!(bytes.len() as u64, virtual_size + 512, "{name}");

        // A fixed VHD probes as raw (its footer is at the end): QEMU is
        // told the format.
        write_padded_raw(&steps, virtual_size, &raw);
        judge_with_qemu(&file, &raw, &["-f", "vpc"], virtual_size);
        let checked = check(&file, "vpc");
        eprintln!("{name}: fixed VHD of {virtual_size} bytes, qemu-img check: {checked}");

        // The data is the raw image, padded, as it is.
        assert_eq!(
            bytes[..virtual_size as usize],
            std::fs::read(&raw).unwrap()[..]
        );
        assert_eq!(encode_stream(&o, &steps), bytes, "{name}: stream");
        encode_file(&o, &steps, &file);
        assert_eq!(std::fs::read(&file).unwrap(), bytes, "{name}: again");
    }
}

#[test]
fn dynamic_vhd_is_read_by_qemu() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, steps) in cases() {
        let raw_image = raw_bytes(&steps);
        let size = raw_image.len() as u64;
        let o = options(ImageFormat::VhdDynamic, size);
        let virtual_size = ImageFormat::VhdDynamic.virtual_size(size);
        let file = dir.path().join(format!("{name}.vhd"));
        let raw = dir.path().join(format!("{name}.raw"));
        let len = encode_file(&o, &steps, &file);
        let bytes = std::fs::read(&file).unwrap();

        // Only the blocks that hold data are there, each with its bitmap.
        let blocks = virtual_size.div_ceil(BLOCK);
        let used = raw_image
            .chunks(BLOCK as usize)
            .filter(|b| b.iter().any(|&x| x != 0))
            .count() as u64;
        let bat = (blocks * 4).next_multiple_of(512);
        let want = 512 + 1024 + bat + used * (512 + BLOCK) + 512;
        assert_eq!(len, Some(want), "{name}");
        assert_eq!(bytes.len() as u64, want, "{name}");
        assert_eq!(
            bytes[..512],
            bytes[bytes.len() - 512..],
            "{name}: footer copy"
        );

        // A dynamic VHD has its footer copy first: QEMU finds the format.
        write_padded_raw(&steps, virtual_size, &raw);
        judge_with_qemu(&file, &raw, &[], virtual_size);
        let checked = check(&file, "vpc");
        eprintln!(
            "{name}: dynamic VHD of {virtual_size} bytes, {used} of {blocks} blocks, {} bytes, qemu-img check: {checked}",
            bytes.len()
        );

        encode_file(&o, &steps, &file);
        assert_eq!(std::fs::read(&file).unwrap(), bytes, "{name}: again");
    }
}

/// Compared with the raw image at its own size (not padded), QEMU warns of
/// the size mismatch and still finds them identical: the padding is zeros.
#[test]
fn vhd_padding_compares_equal_to_the_unpadded_image() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let steps = test_image(9, 3 * MIB + 12_345);
    let size = raw_bytes(&steps).len() as u64;
    let raw = dir.path().join("odd.raw");
    common::write_raw(&steps, &raw);
    for format in [ImageFormat::Vhd, ImageFormat::VhdDynamic] {
        let file = dir.path().join(format!("odd-{format}.vhd"));
        encode_file(&options(format, size), &steps, &file);
        let out = run(
            "qemu-img",
            &[
                "compare",
                "-f",
                "raw",
                "-F",
                "vpc",
                path_str(&raw),
                path_str(&file),
            ],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{format}: {stdout}");
        assert!(
            stdout.contains("Images are identical"),
            "{format}: {stdout}"
        );
    }
}

/// More bytes than the image's size are refused, not written past the
/// disk.
#[test]
fn vhd_refuses_bytes_past_the_image() {
    let dir = tempfile::tempdir().unwrap();
    for format in [ImageFormat::Vhd, ImageFormat::VhdDynamic] {
        let file = std::fs::File::create(dir.path().join("x.vhd")).unwrap();
        let mut e = kiln_container::file_encoder(&options(format, 1000), file).unwrap();
        e.data(&[1; 600]).unwrap();
        e.zeros(400).unwrap();
        assert!(e.data(&[1]).is_err(), "{format}");
    }
}
