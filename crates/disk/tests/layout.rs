//! Disk layout and GPT encoding, checked with `sgdisk`, `sfdisk` and kiln's
//! own GPT reader.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;

use kiln_disk::layout::{
    gpt_writes, layout, resolve_type, DiskError, DiskLayout, DiskSpec, PartitionSpec,
};
use kiln_disk::{read_table, Region};
use uuid::Uuid;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn part(label: &str, ty: &str, size: u64) -> PartitionSpec {
    PartitionSpec::new(label, resolve_type(ty).expect(ty), size)
}

/// esp 64 MiB + root 300 MiB + home growing, on a fixed 1 GiB disk.
fn three_partitions() -> DiskSpec {
    let mut home = part("home", "home", 0);
    home.grow = true;
    home.attributes = 1 << 63 | 1;
    let mut esp = part("esp", "esp", 64 * MIB);
    esp.uuid = Some(Uuid::parse_str("11111111-2222-4333-8444-555555555555").unwrap());
    DiskSpec {
        partitions: vec![esp, part("root", "root-x86-64", 300 * MIB - 5), home],
        size: Some(GIB),
        seed: *b"kiln-test-seed!!",
        disk_guid: None,
    }
}

/// Writes the GPT of `layout` into a sparse file of its size.
fn write_image(layout: &DiskLayout, path: &Path) {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .unwrap();
    file.set_len(layout.size).unwrap();
    let writes = gpt_writes(layout).unwrap();
    let mut end = 0;
    for (offset, bytes) in writes {
        assert!(offset >= end, "writes must ascend without overlapping");
        end = offset + bytes.len() as u64;
        file.seek(SeekFrom::Start(offset)).unwrap();
        file.write_all(&bytes).unwrap();
    }
    assert!(end <= layout.size);
}

/// Whether `tool` runs; if not, fails under CI=true, else says it skips.
/// Runs `tool flag image`; returns its output and its stdout as text.
fn tool_on(image: &std::path::Path, tool: &str, flag: &str) -> (std::process::Output, String) {
    let out = Command::new(tool).arg(flag).arg(image).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, text)
}

fn have_tool(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{tool} is not installed (needed under CI=true)");
        }
        eprintln!("skipping the {tool} checks: {tool} is not installed");
    }
    found
}

#[test]
fn layout_of_esp_root_and_growing_home() {
    let layout = layout(&three_partitions()).unwrap();
    assert_eq!(layout.size, GIB);
    let regions: Vec<Region> = layout.partitions.iter().map(|p| p.region).collect();
    assert_eq!(
        regions,
        [
            Region {
                offset: MIB,
                len: 64 * MIB
            },
            Region {
                offset: 65 * MIB,
                len: 300 * MIB
            },
            // Up to the last usable LBA rounded down to 1 MiB.
            Region {
                offset: 365 * MIB,
                len: 1023 * MIB - 365 * MIB
            },
        ]
    );
    let numbers: Vec<u32> = layout.partitions.iter().map(|p| p.number).collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(
        layout.partitions[0].uuid.to_string(),
        "11111111-2222-4333-8444-555555555555"
    );
    for p in &layout.partitions[1..] {
        assert_eq!(p.uuid.get_version_num(), 4);
    }
    assert_eq!(layout.disk_guid.get_version_num(), 4);
}

#[test]
fn image_passes_sgdisk_sfdisk_and_read_table() {
    let layout = layout(&three_partitions()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("disk.img");
    write_image(&layout, &image);

    // kiln's own reader (through the gpt crate).
    let table = read_table(&image).unwrap().expect("a GPT");
    assert_eq!(table.len(), 3);
    for (read, placed) in table.iter().zip(&layout.partitions) {
        assert_eq!(read.number, placed.number);
        assert_eq!(read.label, placed.label);
        assert_eq!(read.type_guid, placed.type_guid.to_string());
        assert_eq!(read.uuid, placed.uuid.to_string());
        assert_eq!(read.region, placed.region);
        assert_eq!(read.attributes, placed.attributes);
    }
    let names: Vec<_> = table.iter().map(|p| p.type_name).collect();
    assert_eq!(names, [Some("esp"), Some("root-x86-64"), Some("home")]);
    let gpt = kiln_disk::read_gpt(&image).unwrap().unwrap();
    assert_eq!(gpt.disk_guid, layout.disk_guid.to_string());
    assert!(!gpt.from_backup);

    if have_tool("sgdisk") {
        let (out, text) = tool_on(&image, "sgdisk", "-v");
        assert!(
            out.status.success() && text.contains("No problems found"),
            "sgdisk -v: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    if have_tool("sfdisk") {
        let (out, text) = tool_on(&image, "sfdisk", "-d");
        assert!(
            out.status.success(),
            "sfdisk -d: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let field = |line: &str, key: &str| -> Option<String> {
            line.split(&[':', ','][..])
                .filter_map(|f| f.trim().split_once('='))
                .find(|(k, _)| k.trim() == key)
                .map(|(_, v)| v.trim().trim_matches('"').to_string())
        };
        let header = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}: ")))
                .map(str::to_string)
        };
        assert_eq!(header("label").as_deref(), Some("gpt"), "{text}");
        assert_eq!(
            header("label-id").map(|s| s.to_lowercase()),
            Some(layout.disk_guid.to_string())
        );
        assert_eq!(header("first-lba").as_deref(), Some("2048"));
        assert_eq!(
            header("last-lba"),
            Some((GIB / 512 - 34).to_string()),
            "{text}"
        );
        assert_eq!(header("sector-size").as_deref(), Some("512"));
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("start=")).collect();
        assert_eq!(lines.len(), 3, "{text}");
        for (line, p) in lines.iter().zip(&layout.partitions) {
            let num = |k| field(line, k).unwrap().parse::<u64>().unwrap();
            assert_eq!(num("start") * 512, p.region.offset, "{line}");
            assert_eq!(num("size") * 512, p.region.len, "{line}");
            assert_eq!(
                field(line, "type").unwrap().to_lowercase(),
                p.type_guid.to_string()
            );
            assert_eq!(
                field(line, "uuid").unwrap().to_lowercase(),
                p.uuid.to_string()
            );
            assert_eq!(field(line, "name").unwrap(), p.label);
        }
        // Not `field`: the value holds a colon.
        let attrs = lines[2]
            .split_once("attrs=\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(attrs, _)| attrs)
            .unwrap_or_default();
        assert!(
            attrs.contains("RequiredPartition") && attrs.contains("GUID:63"),
            "{}",
            lines[2]
        );
    }
}

#[test]
fn automatic_size_leaves_one_mib_for_the_backup_gpt() {
    let spec = DiskSpec {
        partitions: vec![
            part("esp", "esp", 1),
            part("data", "linux-generic", 3 * MIB),
        ],
        size: None,
        seed: [0; 16],
        disk_guid: Some(Uuid::parse_str("01234567-89ab-4def-8123-456789abcdef").unwrap()),
    };
    let layout = layout(&spec).unwrap();
    assert_eq!(layout.size, 6 * MIB);
    assert_eq!(
        layout.disk_guid.to_string(),
        "01234567-89ab-4def-8123-456789abcdef"
    );
    assert_eq!(
        layout.partitions[0].region,
        Region {
            offset: MIB,
            len: MIB
        }
    );
    assert_eq!(
        layout.partitions[1].region,
        Region {
            offset: 2 * MIB,
            len: 3 * MIB
        }
    );

    let writes = gpt_writes(&layout).unwrap();
    let spans: Vec<(u64, usize)> = writes.iter().map(|(o, b)| (*o, b.len())).collect();
    // MBR + header + 16 KiB array; 16 KiB array + header at the end.
    assert_eq!(spans, [(0, 34 * 512), (6 * MIB - 33 * 512, 33 * 512)]);
    let (_, start) = &writes[0];
    assert_eq!(&start[510..512], &[0x55, 0xAA]);
    assert_eq!(start[446 + 4], 0xEE);
    assert_eq!(
        u32::from_le_bytes(start[446 + 12..446 + 16].try_into().unwrap()),
        (6 * MIB / 512 - 1) as u32
    );
    assert_eq!(&start[512..520], b"EFI PART");
    // The disk GUID, mixed-endian at offset 56 of the header.
    assert_eq!(
        &start[512 + 56..512 + 72],
        &layout.disk_guid.to_bytes_le()[..]
    );
    let (_, end) = &writes[1];
    assert_eq!(&end[32 * 512..32 * 512 + 8], b"EFI PART");
    // The entry arrays are the same.
    assert_eq!(&start[1024..], &end[..32 * 512]);

    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("auto.img");
    write_image(&layout, &image);
    let table = read_table(&image).unwrap().unwrap();
    assert_eq!(table.len(), 2);
    if have_tool("sgdisk") {
        let (_, text) = tool_on(&image, "sgdisk", "-v");
        assert!(text.contains("No problems found"), "{text}");
    }
}

#[test]
fn same_spec_gives_same_bytes() {
    let a = gpt_writes(&layout(&three_partitions()).unwrap()).unwrap();
    let b = gpt_writes(&layout(&three_partitions()).unwrap()).unwrap();
    assert_eq!(a, b);
    let mut other = three_partitions();
    other.seed[0] ^= 1;
    let c = gpt_writes(&layout(&other).unwrap()).unwrap();
    assert_ne!(a, c);
}

#[test]
fn repeated_labels_get_distinct_guids() {
    let spec = DiskSpec {
        partitions: vec![
            part("", "linux-generic", MIB),
            part("", "linux-generic", MIB),
            part("x", "swap", MIB),
        ],
        size: None,
        seed: [1; 16],
        disk_guid: None,
    };
    let first = layout(&spec).unwrap();
    let g: Vec<Uuid> = first.partitions.iter().map(|p| p.uuid).collect();
    assert_ne!(g[0], g[1]);
    // Dropping the repeat leaves the others' GUIDs alone.
    let mut fewer = spec.clone();
    fewer.partitions.remove(1);
    let second = layout(&fewer).unwrap();
    assert_eq!(second.partitions[0].uuid, g[0]);
    assert_eq!(second.partitions[1].uuid, g[2]);

    let mut fixed = spec;
    fixed.partitions[2].uuid = Some(g[0]);
    let err = layout(&fixed).unwrap_err();
    assert!(matches!(err, DiskError::DuplicateGuid { .. }), "{err}");
}

#[test]
fn partitions_too_large_for_the_fixed_size() {
    let spec = DiskSpec {
        partitions: vec![part("esp", "esp", 59 * MIB), part("home", "home", 8 * MIB)],
        size: Some(64 * MIB),
        seed: [0; 16],
        disk_guid: None,
    };
    let err = layout(&spec).unwrap_err().to_string();
    assert_eq!(
        err,
        "partition \"home\": 8 MiB does not fit: the disk is 64 MiB, partitions must end by \
         63 MiB (the backup GPT follows), and the partitions before it end at 60 MiB"
    );

    // The last MiB is the backup GPT's, even for a growing partition.
    let mut grow = spec.clone();
    grow.partitions[0].size = 62 * MIB;
    grow.partitions[1].size = 0;
    grow.partitions[1].grow = true;
    let err = layout(&grow).unwrap_err().to_string();
    assert!(
        err.contains("partition \"home\": 1 MiB does not fit"),
        "{err}"
    );
    grow.partitions[0].size = 61 * MIB;
    let l = layout(&grow).unwrap();
    assert_eq!(
        l.partitions[1].region,
        Region {
            offset: 62 * MIB,
            len: MIB
        }
    );
}

#[test]
fn refusals() {
    let msg = |spec: &DiskSpec| layout(spec).unwrap_err().to_string();
    let base = three_partitions();

    let mut s = base.clone();
    s.partitions[1].grow = true;
    assert_eq!(
        msg(&s),
        "partition \"root\": only the last partition can grow"
    );

    let mut s = base.clone();
    s.size = None;
    assert_eq!(
        msg(&s),
        "partition \"home\": growing needs a fixed disk size"
    );

    let mut s = base.clone();
    s.partitions[0].label = "x".repeat(37);
    assert!(msg(&s).contains("37 UTF-16 code units"), "{}", msg(&s));
    assert!(msg(&s).contains(&"x".repeat(37)));
    // 36 code units fit, counted in UTF-16 (one astral character is two).
    s.partitions[0].label = "é".repeat(36);
    layout(&s).unwrap();
    s.partitions[0].label = "😀".repeat(18) + "a";
    assert!(msg(&s).contains("37 UTF-16 code units"));

    let mut s = base.clone();
    s.partitions[1].size = 0;
    assert!(msg(&s).contains("partition \"root\": size 0"));

    let mut s = base.clone();
    s.size = Some(GIB + 1);
    assert!(msg(&s).contains("not a multiple of 512"));

    let mut s = base.clone();
    s.partitions[0].type_guid = Uuid::nil();
    assert!(msg(&s).contains("nil type GUID"));

    let mut s = base.clone();
    s.partitions = (0..129)
        .map(|i| part(&format!("p{i}"), "linux-generic", MIB))
        .collect();
    s.size = None;
    assert!(msg(&s).contains("at most 128"));

    let mut s = base;
    s.partitions[0].size = u64::MAX;
    assert!(msg(&s).contains("too large"));
}

#[test]
fn hand_made_layouts_are_checked() {
    let mut l = layout(&three_partitions()).unwrap();
    l.partitions[1].region.offset -= MIB; // overlaps the ESP
    let err = gpt_writes(&l).unwrap_err().to_string();
    assert!(err.contains("overlaps"), "{err}");

    let mut l = layout(&three_partitions()).unwrap();
    l.partitions[2].region.len += MIB; // into the backup GPT
    let err = gpt_writes(&l).unwrap_err().to_string();
    assert!(err.contains("outside the usable bytes"), "{err}");

    let mut l = layout(&three_partitions()).unwrap();
    l.partitions[0].label = "y".repeat(40);
    assert!(matches!(
        gpt_writes(&l).unwrap_err(),
        DiskError::LabelTooLong { units: 40, .. }
    ));
}
