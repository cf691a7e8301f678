//! VMDK streamOptimized judged by QEMU's vmdk driver: `qemu-img check`
//! finds no errors, `qemu-img info` detects the format unaided and gives
//! the virtual size, `qemu-img compare` finds the raw image in it; the
//! encoding is the same bytes every time and through a stream, and its
//! size is set beside `qemu-img convert`'s own streamOptimized output.

mod common;

use common::{
    assert_qemu_finds_raw, encode_file, encode_stream, json_field, path_str, raw_bytes,
    require_tools, run_ok, sparse_image, test_image, write_raw, Step,
};
use kiln_container::{ContainerOptions, ImageFormat};

const MIB: u64 = 1 << 20;

/// The images judged: (name, steps).
fn cases() -> Vec<(&'static str, Vec<Step>)> {
    vec![
        ("small", test_image(11, 100_000)),
        // Not a whole number of sectors, grains or MiB.
        ("odd-size", test_image(12, 3 * MIB + 12_345)),
        ("whole-grains", test_image(13, 8 * MIB)),
        ("all-zero", vec![Step::Gap(5 * MIB + 4096)]),
        // Over 512 grains (32 MiB): three grain tables' worth, the middle
        // one without data.
        ("large-sparse", sparse_image(14, 70 * MIB + 65_536 + 512)),
        // Data all through a first full grain table and into a second.
        ("large-dense", test_image(15, 33 * MIB + 4096)),
    ]
}

#[test]
fn vmdk_is_read_by_qemu() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, steps) in cases() {
        let size = raw_bytes(&steps).len() as u64;
        let mut o = ContainerOptions::new(ImageFormat::Vmdk, size);
        o.identity = *b"kiln-vmdk-testid";
        o.vmdk_extent_name = format!("{name}.vmdk");
        let file = dir.path().join(format!("{name}.vmdk"));
        let raw = dir.path().join(format!("{name}.raw"));
        write_raw(&steps, &raw);
        let len = encode_file(&o, &steps, &file);
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(len, Some(bytes.len() as u64), "{name}");

        let check = run_ok("qemu-img", &["check", path_str(&file)]);
        assert!(check.contains("No errors were found"), "{name}: {check}");
        // Detected without -f.
        let info = run_ok("qemu-img", &["info", "--output=json", path_str(&file)]);
        assert_eq!(json_field(&info, "format"), "vmdk", "{info}");
        assert_eq!(
            json_field(&info, "create-type"),
            "streamOptimized",
            "{info}"
        );
        // The capacity is whole sectors: the odd size is rounded up (with
        // zeros, which compare finds equal).
        let virtual_size = size.next_multiple_of(512);
        assert_eq!(
            json_field(&info, "virtual-size"),
            virtual_size.to_string(),
            "{info}"
        );
        assert_qemu_finds_raw(&raw, &file, "vmdk", name);

        assert_eq!(encode_stream(&o, &steps), bytes, "{name}: stream");
        encode_file(&o, &steps, &file);
        assert_eq!(std::fs::read(&file).unwrap(), bytes, "{name}: again");

        let qemu = dir.path().join(format!("{name}.qemu.vmdk"));
        run_ok(
            "qemu-img",
            &[
                "convert",
                "-f",
                "raw",
                "-O",
                "vmdk",
                "-o",
                "subformat=streamOptimized",
                path_str(&raw),
                path_str(&qemu),
            ],
        );
        let qemu_len = std::fs::metadata(&qemu).unwrap().len();
        eprintln!(
            "{name}: image {size} bytes; kiln's VMDK {} bytes, qemu-img convert's {qemu_len} bytes",
            bytes.len()
        );
        // Both deflate the same grains at zlib's default level: kiln's
        // stream differs by its metadata (the 64 KiB before the first
        // grain, grain tables only where there is data, a footer).
        assert!(
            bytes.len() as u64 <= qemu_len + 64 * 1024,
            "{name}: {} against qemu-img's {qemu_len}",
            bytes.len()
        );
    }
}

/// The descriptor QEMU reads back: the content ID from the identity, no
/// parent, the extent as named.
#[test]
fn vmdk_descriptor_is_read_by_qemu() {
    if !require_tools(&["qemu-img"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let steps = test_image(21, 2 * MIB);
    let mut o = ContainerOptions::new(ImageFormat::Vmdk, 2 * MIB);
    o.identity = [0x10, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0x30, 0, 0, 0, 0, 0x40];
    o.vmdk_extent_name = "disk-1.vmdk".into();
    let file = dir.path().join("disk.vmdk");
    encode_file(&o, &steps, &file);
    let info = run_ok("qemu-img", &["info", "--output=json", path_str(&file)]);
    assert_eq!(
        json_field(&info, "cid"),
        0x1020_3040u32.to_string(),
        "{info}"
    );
    assert_eq!(
        json_field(&info, "parent-cid"),
        u32::MAX.to_string(),
        "{info}"
    );
    assert_eq!(json_field(&info, "compressed"), "true", "{info}");
    assert_eq!(json_field(&info, "cluster-size"), "65536", "{info}");
    let text = std::fs::read(&file).unwrap();
    let text = String::from_utf8_lossy(&text[512..1024]);
    assert!(
        text.contains("\nRW 4096 SPARSE \"disk-1.vmdk\"\n"),
        "{text}"
    );
}
