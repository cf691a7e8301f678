//! The plan against the real mke2fs: for a matrix of command lines, the
//! image `mke2fs -q -F` makes on a new sparse file (read with `dumpe2fs
//! -h`) has the block size, inode size, reserved blocks and features the
//! plan resolved, and an inode count that is the plan's wanted count
//! rounded up to whole inode table blocks per group.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::conf::builtin;
use crate::plan::{plan, Context, MkfsPlan};
use crate::test_tools::missing;
use crate::Args;

/// What dumpe2fs says of an image.
#[derive(Debug)]
struct Made {
    block_size: u32,
    inode_size: u16,
    inodes: u64,
    blocks: u64,
    reserved: u64,
    features: BTreeSet<String>,
}

fn tools_present() -> bool {
    let ok = |tool: &str| Command::new(tool).arg("-V").output().is_ok();
    ok("mke2fs") && ok("dumpe2fs")
}

/// Runs the real `program` (mke2fs, mkfs.extN: the name counts, as for
/// mkfs.ext3's journal) with `opts` on a new file and reads the image.
fn make(dir: &Path, program: &str, opts: &[&str], size: &str) -> Result<Made, String> {
    let img = dir.join("img");
    let _ = std::fs::remove_file(&img);
    std::fs::File::create(&img).map_err(|e| e.to_string())?;
    let out = Command::new(program)
        .args(["-q", "-F"])
        .args(opts)
        .arg(&img)
        .arg(size)
        .env("MKE2FS_CONFIG", dir.join("mke2fs.conf"))
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let out = Command::new("dumpe2fs")
        .arg("-h")
        .arg(&img)
        .output()
        .map_err(|e| e.to_string())?;
    parse_dumpe2fs(&String::from_utf8_lossy(&out.stdout))
}

fn parse_dumpe2fs(text: &str) -> Result<Made, String> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .ok_or_else(|| format!("dumpe2fs printed no {name:?}"))
    };
    let num = |name: &str| -> Result<u64, String> {
        field(name)?.parse().map_err(|e| format!("{name}: {e}"))
    };
    Ok(Made {
        block_size: num("Block size")? as u32,
        inode_size: num("Inode size")? as u16,
        inodes: num("Inode count")?,
        blocks: num("Block count")?,
        reserved: num("Reserved block count")?,
        features: field("Filesystem features")?
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    })
}

/// The differences between the plan and the image, if any.
fn differences(p: &MkfsPlan, made: &Made) -> Vec<String> {
    let ext = p.ext();
    let mut diffs = Vec::new();
    let mut check = |what: &str, ours: String, theirs: String| {
        if ours != theirs {
            diffs.push(format!("{what}: plan {ours}, mke2fs {theirs}"));
        }
    };
    check(
        "block size",
        ext.block_size.to_string(),
        made.block_size.to_string(),
    );
    check(
        "inode size",
        ext.inode_size.to_string(),
        made.inode_size.to_string(),
    );
    let ours: BTreeSet<String> = p.features.iter().cloned().collect();
    check(
        "features",
        format!("{ours:?}"),
        format!("{:?}", made.features),
    );
    // What kiln's writer will be given (its options, checked) says the same.
    match p.request.fs.options(false) {
        Ok(kiln_lib::FsOptions::Ext(opts)) => {
            let kiln: BTreeSet<String> = opts.features.list().into_iter().collect();
            check(
                "kiln's features",
                format!("{kiln:?}"),
                format!("{:?}", made.features),
            );
        }
        other => check("kiln's options", format!("{other:?}"), "ext options".into()),
    }
    let reserved = (made.blocks as f64 * ext.reserved_percent / 100.0) as u64;
    check(
        "reserved blocks",
        reserved.to_string(),
        made.reserved.to_string(),
    );
    // mke2fs rounds the wanted count per group up to whole inode table
    // blocks, then down to whole bitmap bytes (at most 4 fewer a group
    // with 4 inodes a block), and never makes fewer than 16 a group.
    let groups = made.blocks.div_ceil(8 * u64::from(made.block_size));
    let per_block = u64::from(made.block_size / u32::from(made.inode_size)).max(8);
    let low = p.inodes_wanted.saturating_sub(4 * groups);
    let high = p.inodes_wanted.max(16 * groups) + groups * per_block;
    if made.inodes < low || made.inodes > high {
        diffs.push(format!(
            "inodes: plan wants {}, mke2fs made {} ({groups} groups)",
            p.inodes_wanted, made.inodes
        ));
    }
    diffs
}

fn our_plan(program: &str, opts: &[&str], size: &str) -> Result<MkfsPlan, String> {
    let mut argv: Vec<&str> = vec!["-q", "-F"];
    argv.extend(opts);
    argv.extend(["img", size]);
    let args = Args::parse(argv).map_err(|e| e.to_string())?;
    let profile = builtin();
    let ctx = Context {
        program,
        profile: &profile,
        fake_time: None,
        source_date_epoch: None,
        device_size: None,
        device: crate::plan::Device::Missing,
        ids: (0, 0),
        now: 1_700_000_000,
    };
    plan(&args, &ctx).map_err(|e| e.to_string())
}

const PROGRAMS: [&str; 3] = ["mkfs.ext4", "mkfs.ext3", "mke2fs"];
const SIZES: [&str; 7] = ["1M", "2M", "8M", "100M", "600M", "2G", "20G"];
const OPTIONS: [&[&str]; 10] = [
    &[],
    &["-T", "small"],
    &["-T", "news"],
    &["-T", "largefile"],
    &["-b", "1024"],
    &["-I", "128"],
    &["-N", "5000"],
    &["-i", "8192"],
    &["-m", "1"],
    &["-O", "^has_journal"],
];

#[test]
fn plans_match_real_mke2fs() {
    if !tools_present() {
        missing("mke2fs or dumpe2fs");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The real mke2fs reads the same profile as the plan (the built-in one).
    std::fs::write(dir.path().join("mke2fs.conf"), crate::conf::BUILTIN_CONF).unwrap();
    let mut failures = Vec::new();
    let mut compared = 0;
    for program in PROGRAMS {
        for size in SIZES {
            for opts in OPTIONS {
                let case = format!("{program} {} img {size}", opts.join(" "));
                let mut real_opts = opts.to_vec();
                if program == "mke2fs" {
                    real_opts.extend(["-t", "ext2"]);
                }
                let ours = our_plan(program, &real_opts, size);
                match (ours, make(dir.path(), program, &real_opts, size)) {
                    (Ok(p), Ok(made)) => {
                        compared += 1;
                        for d in differences(&p, &made) {
                            failures.push(format!("{case}: {d}"));
                        }
                    }
                    (Err(_), Err(_)) => {}
                    // A tree that does not fit is kiln's writer's to find.
                    (Ok(_), Err(e)) if e.contains("Could not allocate") => {}
                    (Ok(_), Err(e)) => failures.push(format!(
                        "{case}: mke2fs failed ({}), the plan did not",
                        e.trim()
                    )),
                    (Err(e), Ok(_)) => {
                        failures.push(format!("{case}: the plan failed ({e}), mke2fs did not"))
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {compared} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(compared > 150, "only {compared} cases compared");
}
