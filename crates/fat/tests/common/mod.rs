//! Shared helpers of the judges: building images from host directories,
//! running dosfstools and mtools on them, comparing trees, and the
//! skip-or-fail rule for missing tools (as the root package's
//! tests/helpers.rs: a missing tool skips outside CI, fails under `CI=true`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kiln_fat::{FatOptions, FatVariant};
use kiln_tree::Tree;

/// Whether we run under CI (`CI=true`), where skipping is not allowed.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The full path of a tool, looked up in `PATH` and the sbin directories.
pub fn tool_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// `true` if every tool of `names` is installed; otherwise prints why and
/// returns `false` outside CI, panics under `CI=true`.
pub fn require_tools(names: &[&str]) -> bool {
    for name in names {
        if tool_path(name).is_none() {
            let why =
                format!("the tool `{name}` is not installed (apt-get install dosfstools mtools)");
            assert!(
                !in_ci(),
                "{why} (CI=true: a missing tool is a failure, not a skip)"
            );
            eprintln!("SKIPPED: {why}");
            return false;
        }
    }
    true
}

/// Runs a tool (in a UTF-8 C locale, mtools' checks off) and returns its output.
pub fn run(name: &str, args: &[&str]) -> Output {
    let path = tool_path(name).unwrap_or_else(|| panic!("`{name}` is not installed"));
    Command::new(path)
        .args(args)
        .env("LC_ALL", "C.UTF-8")
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"))
}

/// The output as one readable text.
pub fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Reads `dir` into a finished tree with times that do not depend on
/// when or in what order it was made: no creation time, the access time
/// equal to the modification time (which the tests set).
pub fn tree_of(dir: &Path) -> Tree {
    let mut tree = kiln_tree::read_dir_tree(dir).unwrap();
    for id in tree.reachable() {
        let meta = &mut tree.node_mut(id).meta;
        let times = meta.times();
        meta.set_times(kiln_tree::Times {
            atime: times.mtime,
            crtime: None,
            ..times
        });
    }
    tree.finish();
    tree
}

/// Builds the image of `dir` at `image`; returns the image's bytes.
pub fn build(dir: &Path, opts: &FatOptions, image: &Path) -> kiln_fat::Geometry {
    let tree = tree_of(dir);
    let plan = kiln_fat::plan(&tree, opts).unwrap_or_else(|e| panic!("plan: {e}"));
    let sink = kiln_sink::SparseFile::create(image, plan.size(), true).unwrap();
    let report = kiln_fat::emit(&plan, &sink).unwrap_or_else(|e| panic!("emit: {e}"));
    assert!(report.notes().len() <= 1);
    sink.commit(kiln_sink::Durability::Writeback).unwrap();
    *plan.geometry()
}

/// `fsck.fat -n -v` must exit 0 and report nothing beyond its summary.
pub fn fsck_clean(image: &Path) {
    let out = run("fsck.fat", &["-n", "-v", image.to_str().unwrap()]);
    let text = describe(&out);
    assert!(out.status.success(), "fsck.fat: {text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    // Verbose output: the version, the boot sector's fields, "Checking …"
    // lines and the file count; any other line is a finding.
    for line in stdout.lines() {
        let benign = line.starts_with("fsck.fat ")
            || line.starts_with("Checking ")
            || line.starts_with("Reclaiming")
            || line.contains(" files, ")
            || line.starts_with("Boot sector contents:")
            || line.starts_with("System ID")
            || line.starts_with("Media byte")
            || line.contains("bytes per logical sector")
            || line.contains("bytes per cluster")
            || line.contains("reserved sector")
            || line.starts_with("First FAT starts")
            || line.contains("FATs, ")
            || line.contains("bytes per FAT")
            || line.starts_with("Root directory start")
            || line.starts_with("Root directory starts")
            || line.contains("root directory entries")
            || line.starts_with("Data area starts")
            || line.contains("data clusters (")
            || line.contains("sectors/track")
            || line.contains("hidden sectors")
            || line.contains("sectors total")
            || line.starts_with("Starting check")
            || line.starts_with("Checking file")
            || line.starts_with("Volume label")
            || line.trim().is_empty();
        assert!(benign, "fsck.fat says: {line:?}\n{text}");
    }
}

/// Everything under `dir`: relative path → file bytes (`None` for a
/// directory).
pub fn contents(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in fs::read_dir(dir.join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let rel = rel.join(entry.file_name());
            let key = rel.to_str().unwrap().to_string();
            if entry.file_type().unwrap().is_dir() {
                out.insert(key, None);
                stack.push(rel);
            } else {
                out.insert(key, Some(fs::read(entry.path()).unwrap()));
            }
        }
    }
    out
}

/// mtools must list the root and copy every file back, byte for byte and
/// name for name as in `source`.
pub fn mtools_match(image: &Path, source: &Path) {
    let img = image.to_str().unwrap();
    let out = run("mdir", &["-i", img, "::/"]);
    assert!(out.status.success(), "mdir: {}", describe(&out));
    let dest = tempfile::tempdir().unwrap();
    let to = dest.path().join("out");
    fs::create_dir(&to).unwrap();
    let out = run(
        "mcopy",
        &["-i", img, "-s", "-n", "-m", "::/*", to.to_str().unwrap()],
    );
    let empty_root = fs::read_dir(source).unwrap().next().is_none();
    assert!(
        out.status.success() || empty_root,
        "mcopy: {}",
        describe(&out)
    );
    // mtools 4.0 reads long names as UCS-2: each half of a surrogate pair
    // (a character outside the BMP, which kiln stores as UTF-16 as Windows
    // does) comes back as `_`. Expect that, which still checks that the
    // pair took two units.
    let ucs2 = |name: &str| -> String {
        name.chars()
            .map(|c| {
                if c.len_utf16() == 2 {
                    "__".to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    };
    let want: BTreeMap<_, _> = contents(source)
        .into_iter()
        .map(|(k, v)| (ucs2(&k), v))
        .collect();
    let got = contents(&to);
    let names = |m: &BTreeMap<String, Option<Vec<u8>>>| m.keys().cloned().collect::<Vec<_>>();
    let (wn, gn) = (names(&want), names(&got));
    if wn != gn {
        let missing: Vec<_> = wn
            .iter()
            .filter(|n| !got.contains_key(*n))
            .take(10)
            .collect();
        let extra: Vec<_> = gn
            .iter()
            .filter(|n| !want.contains_key(*n))
            .take(10)
            .collect();
        panic!("names differ: missing {missing:?}, extra {extra:?}");
    }
    for (name, data) in &want {
        assert!(&got[name] == data, "{name}: bytes differ");
    }
}

/// The BPB of an image as an independent reader sees it: the variant the
/// cluster count implies, the variant the boot sector names, sectors per
/// cluster, cluster count.
pub fn read_bpb(image: &Path) -> (FatVariant, String, u32, u32) {
    let b = fs::read(image).map(|d| d[..512].to_vec()).unwrap();
    let u16_at = |o: usize| u32::from(u16::from_le_bytes([b[o], b[o + 1]]));
    let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let (bps, spc, rsv, nfats, root) = (
        u16_at(11),
        u32::from(b[13]),
        u16_at(14),
        u32::from(b[16]),
        u16_at(17),
    );
    let total = if u16_at(19) != 0 {
        u16_at(19)
    } else {
        u32_at(32)
    };
    let fatsz = if u16_at(22) != 0 {
        u16_at(22)
    } else {
        u32_at(36)
    };
    let root_sectors = (root * 32).div_ceil(bps);
    let data = total - rsv - nfats * fatsz - root_sectors;
    let clusters = data / spc;
    let by_count = if clusters < 4085 {
        FatVariant::Fat12
    } else if clusters < 65525 {
        FatVariant::Fat16
    } else {
        FatVariant::Fat32
    };
    let named = if u16_at(22) != 0 {
        &b[54..62]
    } else {
        &b[82..90]
    };
    (
        by_count,
        String::from_utf8_lossy(named).trim().to_string(),
        spc,
        clusters,
    )
}

/// Writes `data` at `path` (creating parents) with a fixed modification time.
pub fn put(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
    set_time(path, 1_700_000_000);
}

/// Sets the modification and access time of `path` (file or directory).
pub fn set_time(path: &Path, secs: u64) {
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    let f = fs::File::open(path).unwrap();
    f.set_times(fs::FileTimes::new().set_modified(when).set_accessed(when))
        .unwrap();
}

/// Gives every directory under `dir` (and `dir`) a fixed time, after its
/// entries were made.
pub fn settle(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            settle(&entry.path());
        }
    }
    set_time(dir, 1_690_000_000);
}

/// Deterministic bytes: `len` of a simple generator seeded by `seed`.
pub fn bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Writes `bytes` at `at` in the image.
pub fn patch(image: &Path, at: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new().write(true).open(image).unwrap();
    f.write_all_at(bytes, at).unwrap();
}

/// Sets FAT16 entry `n` to `value` in both FAT copies.
pub fn set_fat(image: &Path, r: &kiln_fat::FatReader, n: u32, value: u16) {
    let v = r.volume();
    for i in 0..v.fat_count {
        let fat = u64::from(v.reserved_sectors + i * v.fat_sectors) * 512;
        patch(image, fat + u64::from(n) * 2, &value.to_le_bytes());
    }
}
