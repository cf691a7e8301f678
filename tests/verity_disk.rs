//! Issue 20, part 3: dm-verity data and hash partitions on a disk, judged
//! by `sgdisk` (a valid GPT, the types, the UUIDs equal to the root hash's
//! halves), `systemd-dissect` (the pair matched by the root hash) and
//! `veritysetup verify` of the data partition against the hash partition,
//! both copied out of the disk by their offsets.

use std::path::{Path, PathBuf};

use crate::fixture;
use crate::helpers::*;

/// A data partition and its hash partition, paired by `verity_match`;
/// `uuids` adds a fixed `uuid` to both.
fn layout(case: &Case, hash_first: bool, uuids: bool) -> PathBuf {
    let src = case.mkdir("src");
    write_file(&src.join("hello"), b"verity\n");
    write_file(&src.join("big.bin"), &fixture::bytes(7, 500_000));
    let uuid = |n: u8| {
        if uuids {
            format!("uuid = \"{n}{n}{n}{n}{n}{n}{n}{n}-0000-4000-8000-000000000000\"\n")
        } else {
            String::new()
        }
    };
    let data = format!(
        "[[partition]]\nlabel = \"root\"\ntype = \"root-x86-64\"\nverity = \"data\"\n\
         verity_match = \"root\"\n{}[partition.filesystem]\nsources = [\"src\"]\nall_root = true\n",
        uuid(1)
    );
    let hash = format!(
        "[[partition]]\nlabel = \"root-verity\"\ntype = \"root-x86-64-verity\"\nverity = \"hash\"\n\
         verity_match = \"root\"\n{}",
        uuid(2)
    );
    let text = if hash_first {
        hash + &data
    } else {
        data + &hash
    };
    let path = case.path("disk.toml");
    write_file(&path, text.as_bytes());
    path
}

/// The bytes of a partition as the report places it.
fn partition_bytes(disk: &[u8], p: &serde_json::Value) -> Vec<u8> {
    let at = p["offset"].as_u64().unwrap() as usize;
    disk[at..at + p["size"].as_u64().unwrap() as usize].to_vec()
}

/// `sgdisk -i N`'s "Partition unique GUID", lower case.
fn sgdisk_guid(disk: &Path, n: u32) -> String {
    let out = run(tool("sgdisk").arg("-i").arg(n.to_string()).arg(disk));
    assert_success(&out, "sgdisk -i");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("Partition unique GUID: "))
        .unwrap_or_else(|| panic!("no GUID in {text}"))
        .trim()
        .to_lowercase()
}

/// Copies the two partitions out, checks that veritysetup verifies them
/// with `root`, and that one flipped byte of the data fails.
fn assert_verifies(case: &Case, disk: &[u8], report: &serde_json::Value, root: &str) {
    let parts = report["partitions"].as_array().unwrap();
    let (data, hash) = (case.path("data.img"), case.path("hash.img"));
    write_file(&data, &partition_bytes(disk, &parts[0]));
    write_file(&hash, &partition_bytes(disk, &parts[1]));
    let out = run(tool("veritysetup")
        .arg("verify")
        .arg(&data)
        .arg(&hash)
        .arg(root));
    assert_success(&out, "veritysetup verify of the data partition");
    e2fsck_clean(&data);
    let mut bytes = read_file(&data);
    bytes[5000] ^= 1;
    write_file(&data, &bytes);
    let out = run(tool("veritysetup")
        .arg("verify")
        .arg(&data)
        .arg(&hash)
        .arg(root));
    assert!(!out.status.success(), "a flipped byte verified");
}

/// The UUIDs are the root hash's halves, the GPT is valid, the hash
/// partition holds the data partition's tree, and the report and stderr
/// give `roothash=`.
#[test]
fn data_and_hash_partitions_verify() {
    if !(require_tool("veritysetup") && require_tool("sgdisk") && require_tool("e2fsck")) {
        return;
    }
    let case = Case::new("ext4", 4096);
    let config = layout(&case, false, false);
    let (disk, report) = (case.path("disk.img"), case.path("report.json"));
    let out = kiln([
        "build".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "-o".as_ref(),
        disk.as_os_str(),
        "--report".as_ref(),
        report.as_os_str(),
    ]);
    assert_success(&out, "kiln build --config (verity)");
    let json: serde_json::Value = serde_json::from_slice(&read_file(&report)).unwrap();
    let v = &json["partitions"][0]["verity"];
    let root = v["root_hash"].as_str().unwrap();
    assert_eq!(v["kernel_cmdline"], format!("roothash={root}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("roothash={root}")), "{stderr}");
    let sg = run(tool("sgdisk").arg("-v").arg(&disk));
    assert!(
        String::from_utf8_lossy(&sg.stdout).contains("No problems found"),
        "{}",
        describe(&sg)
    );
    let dashed = |hex: &str| {
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    };
    assert_eq!(sgdisk_guid(&disk, 1), dashed(&root[..32]));
    assert_eq!(sgdisk_guid(&disk, 2), dashed(&root[32..]));
    let types = run(tool("sgdisk").arg("-i").arg("2").arg(&disk));
    assert!(String::from_utf8_lossy(&types.stdout).contains("2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5"));
    dissected_with_verity(&disk, root);
    assert_verifies(&case, &read_file(&disk), &json, root);
}

/// systemd-dissect (systemd-container; it reads the disk through a loop
/// device, so as root) finds the root and its verity partition, and with
/// the root hash matches the pair by their UUIDs: the root is read-only
/// and verity-protected.
fn dissected_with_verity(disk: &Path, root: &str) {
    if !(require_tool("systemd-dissect") && require_root()) {
        return;
    }
    let out = run(tool("systemd-dissect")
        .arg("--json=short")
        .arg(format!("--root-hash={root}"))
        .arg(disk));
    assert_success(&out, "systemd-dissect");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mounts = json["mounts"].as_array().unwrap();
    let by = |designator: &str| {
        mounts
            .iter()
            .find(|m| m["designator"] == designator)
            .unwrap_or_else(|| panic!("no {designator} in {json}"))
    };
    let data = by("root");
    assert_eq!(
        (&data["rw"], &data["verity"], &data["fstype"]),
        (&"ro".into(), &"yes".into(), &"ext4".into()),
        "{json}"
    );
    assert_eq!(by("root-verity")["fstype"], "DM_verity_hash", "{json}");
}

/// A streamed disk needs the verity partitions' UUIDs given (the GPT
/// cannot wait for the root hash); with them, it verifies.
#[test]
fn streamed_disks_need_given_uuids() {
    if !(require_tool("veritysetup") && require_tool("e2fsck")) {
        return;
    }
    let case = Case::new("ext4", 4096);
    let config = layout(&case, false, false);
    let out = kiln([
        "build".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "-o".as_ref(),
        "-".as_ref(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("partition[1], partition[2]: no uuid") && stderr.contains("streamed"),
        "{stderr}"
    );
    let case = Case::new("ext4", 4096);
    let config = layout(&case, false, true);
    let report = case.path("report.json");
    let out = kiln([
        "build".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "-o".as_ref(),
        "-".as_ref(),
        "--report".as_ref(),
        report.as_os_str(),
    ]);
    assert_success(&out, "kiln build --config -o - (verity, given uuids)");
    let json: serde_json::Value = serde_json::from_slice(&read_file(&report)).unwrap();
    assert_eq!(
        json["partitions"][0]["uuid"],
        "11111111-0000-4000-8000-000000000000"
    );
    let root = json["partitions"][1]["verity"]["root_hash"]
        .as_str()
        .unwrap();
    assert_verifies(&case, &out.stdout, &json, root);
}

/// A hash partition before its data partition is refused, naming both.
#[test]
fn hash_before_data_is_refused() {
    let case = Case::new("ext4", 4096);
    let config = layout(&case, true, false);
    let disk = case.path("disk.img");
    let out = kiln([
        "build".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "-o".as_ref(),
        disk.as_os_str(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("partition[1] (verity hash, verity_match = \"root\") comes before its data partition partition[2]"),
        "{stderr}"
    );
}
