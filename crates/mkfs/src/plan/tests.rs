//! The plan's resolution, option by option.

use super::*;
use crate::conf::builtin;

/// The plan of `argv` run as `program` with the built-in profile.
fn run(program: &str, argv: &[&str]) -> Result<MkfsPlan, MkfsError> {
    run_with(program, argv, &builtin(), |_| {})
}

fn run_with(
    program: &str,
    argv: &[&str],
    profile: &Profile,
    edit: impl FnOnce(&mut Context),
) -> Result<MkfsPlan, MkfsError> {
    let args = Args::parse(argv.iter().copied())?;
    let mut ctx = Context {
        program,
        profile,
        fake_time: None,
        source_date_epoch: None,
        device_size: None,
        device: Device::Missing,
        ids: (1000, 100),
        now: 1_700_000_000,
    };
    edit(&mut ctx);
    plan(&args, &ctx)
}

fn err(program: &str, argv: &[&str]) -> String {
    run(program, argv).unwrap_err().to_string()
}

#[test]
fn fs_type_from_option_program_conf_or_journal() {
    let ty = |p: &str, argv: &[&str]| run(p, argv).unwrap().ext().fs_type;
    assert_eq!(ty("mke2fs", &["img", "8M"]), FsType::Ext2);
    assert_eq!(ty("mke2fs", &["-j", "img", "8M"]), FsType::Ext3);
    assert_eq!(ty("mkfs.ext4", &["img", "8M"]), FsType::Ext4);
    assert_eq!(ty("mkfs.ext4", &["-t", "ext3", "img", "8M"]), FsType::Ext3);
    let conf = Profile::parse("[defaults]\n fs_type = ext4\n").unwrap();
    let p = run_with("mke2fs", &["img", "8M"], &conf, |_| {}).unwrap();
    assert_eq!(p.ext().fs_type, FsType::Ext4);
    assert!(err("mkfs.xfs", &["img", "8M"]).starts_with("program name: kiln cannot honour it"));
}

#[test]
fn usage_type_from_size_thresholds() {
    let usage = |size: &str| run("mkfs.ext4", &["img", size]).unwrap().usage_types;
    assert_eq!(usage("3071k"), ["floppy"]);
    assert_eq!(usage("3M"), ["small"]);
    assert_eq!(usage("511M"), ["small"]);
    assert_eq!(usage("512M"), ["default"]);
    assert_eq!(usage("4T"), ["big"]);
    assert_eq!(usage("16T"), ["huge"]);
    let p = run("mkfs.ext4", &["-T", "news,largefile", "img", "1G"]).unwrap();
    assert_eq!(p.usage_types, ["news", "largefile"]);
    assert_eq!(p.inode_ratio, 1 << 20);
    let p = run("mkfs.ext4", &["-T", "bogus", "img", "1G"]).unwrap();
    assert!(p
        .notes
        .iter()
        .any(|n| n.note.contains("bogus is not defined")));
}

#[test]
fn sizes_block_sizes_and_minimums() {
    let p = run("mke2fs", &["-b", "2048", "img", "100"]).unwrap();
    assert_eq!(p.request.fs.size, SizeRequest::Fixed(204_800));
    let p = run("mke2fs", &["-b", "-2048", "img", "8M"]).unwrap();
    assert_eq!(
        p.ext().block_size,
        2048,
        "small's 1024 raised to the minimum"
    );
    let p = run("mke2fs", &["-T", "largefile", "img", "8M"]).unwrap();
    assert_eq!(p.ext().block_size, PAGE_SIZE);
    assert!(err("mke2fs", &["-b", "8192", "img", "8M"]).contains("kiln cannot honour it"));
    assert!(err("mke2fs", &["-b", "1000", "img", "8M"]).starts_with("-b: 1000: a power of two"));
    assert!(err("mke2fs", &["img"]).starts_with("fs-size: missing"));
    let p = run_with("mke2fs", &["img"], &builtin(), |c| {
        c.device_size = Some(8 << 20)
    })
    .unwrap();
    assert_eq!(p.request.fs.size, SizeRequest::Fixed(8 << 20));
    // As mke2fs: the device's size past the offset, with its warning.
    let p = run_with(
        "mke2fs",
        &["-E", "offset=1048576", "img"],
        &builtin(),
        |c| c.device_size = Some(16 << 20),
    )
    .unwrap();
    assert_eq!(p.request.fs.size, SizeRequest::Fixed(15 << 20));
    assert!(p.notes.iter().any(|n| n.option == "-E offset"));
}

#[test]
fn refused_options_name_themselves() {
    let cases: [(&[&str], &str); 12] = [
        (&["-c"], "-c: kiln cannot honour it"),
        (&["-l", "bb"], "-l: kiln cannot honour it"),
        (&["-C", "65536"], "-C: kiln cannot honour it"),
        (&["-S"], "-S: kiln cannot honour it"),
        (&["-z", "undo"], "-z: kiln cannot honour it"),
        (&["-o", "hurd"], "-o: kiln cannot honour it"),
        (&["-e", "panic"], "-e: kiln cannot honour it"),
        (&["-r", "0"], "-r: kiln cannot honour it"),
        (&["-g", "1024"], "-g: kiln cannot honour it"),
        (
            &["-E", "quotatype=usrquota"],
            "-E quotatype: kiln cannot honour it",
        ),
        (
            &["-O", "bigalloc"],
            "feature bigalloc: kiln cannot honour it",
        ),
        (&["-J", "device=/dev/x"], "-J device: kiln cannot honour it"),
    ];
    for (opts, want) in cases {
        let mut argv = opts.to_vec();
        argv.extend(["img", "8M"]);
        let e = err("mkfs.ext4", &argv);
        assert!(e.starts_with(want), "{opts:?}: {e}");
    }
    assert!(err("mke2fs", &["-E", "bogus", "img", "8M"])
        .starts_with("-E bogus: not an extended option"));
    assert!(
        err("mke2fs", &["-O", "bogus", "img", "8M"]).starts_with("-O: \"bogus\" is not a feature")
    );
}

#[test]
fn accepted_defaults_and_no_ops() {
    let argv = [
        "-Fq", "-D", "-e", "continue", "-o", "Linux", "-r", "1", "-g", "32768", "-G", "16", "img",
        "1G",
    ];
    let p = run("mkfs.ext4", &argv).unwrap();
    assert!(p.quiet && !p.verbose && !p.dry_run);
    let noted: Vec<_> = p.notes.iter().map(|n| n.option.as_str()).collect();
    assert_eq!(noted, ["-F", "-D"]);
    let p = run(
        "mkfs.ext4",
        &[
            "-n",
            "-V",
            "-E",
            "nodiscard,lazy_itable_init=1",
            "img",
            "1G",
        ],
    )
    .unwrap();
    assert!(p.dry_run && p.version);
    assert_eq!(p.notes.len(), 2);
}

#[test]
fn extended_options_fill_the_request() {
    let argv = [
        "-d", "root.tar", "-L", "a label longer than sixteen", "-U", "clear", "-E",
        "root_owner=0:0,root_perms=0755,offset=1048576,hash_seed=6ba7b810-9dad-11d1-80b4-00c04fd430c8,android_sparse",
        "img.qcow2", "64M",
    ];
    let p = run("mkfs.ext4", &argv).unwrap();
    let r = &p.request;
    assert_eq!(r.tree.layers, [Layer::Source("root.tar".into())]);
    assert_eq!(r.tree.root_owner, Some((0, 0)));
    assert_eq!(r.tree.root_mode, Some(0o755));
    assert_eq!(r.fs.label, "a label longer t");
    assert_eq!(p.ext().uuid, Some([0; 16]));
    assert_eq!(p.ext().seed.unwrap()[0], 0x6b);
    assert_eq!(r.output.offset, Some(1 << 20));
    assert_eq!(r.output.format, Some(ImageFormat::AndroidSparse));
    assert!(r.output.force);
    assert_eq!(r.output.compress, Some(Compress::None));
    // Repeated -E options join, a later one winning (mke2fs 1.47.4);
    // root_owner alone is the caller's ids.
    let p = run(
        "mkfs.ext4",
        &[
            "-E",
            "offset=4096,stride=16",
            "-E",
            "root_owner,stride=32",
            "img",
            "64M",
        ],
    )
    .unwrap();
    assert_eq!(p.request.output.offset, Some(4096));
    assert_eq!(p.request.tree.root_owner, Some((1000, 100)));
    assert_eq!(p.request.output.format, Some(ImageFormat::Raw));
    assert_eq!(p.ext().raid.stride, 32);
    let p = run(
        "mkfs.ext4",
        &["-E", "stride=16,stripe-width=64", "img", "64M"],
    )
    .unwrap();
    assert_eq!((p.ext().raid.stride, p.ext().raid.stripe_width), (16, 64));
    let e = err("mkfs.ext4", &["-E", "stride=70000", "img", "64M"]);
    assert_eq!(
        e,
        "-E stride: \"70000\" is not a stride of 0 to 65535 blocks"
    );
    assert!(
        err("mkfs.ext4", &["-E", "stripe_width=x", "img", "64M"]).starts_with("-E stripe_width:")
    );
    // strtoul's bases, and 0 (none), as mke2fs takes them.
    let p = run(
        "mkfs.ext4",
        &["-E", "stride=0x10,stripe_width=030", "img", "64M"],
    )
    .unwrap();
    assert_eq!((p.ext().raid.stride, p.ext().raid.stripe_width), (16, 24));
    assert!(
        p.notes
            .iter()
            .any(|n| n.note.contains("multiple of the stride")),
        "{:?}",
        p.notes
    );
    let p = run("mkfs.ext4", &["-E", "stride=0,stripe_width=", "img", "64M"]).unwrap();
    assert_eq!(p.ext().raid, kiln_lib::kiln_ext::RaidHints::default());
}

#[test]
fn features_follow_conf_then_options() {
    let p = run(
        "mke2fs",
        &["-t", "ext3", "-O", "^has_journal,extents", "img", "64M"],
    )
    .unwrap();
    assert!(!p.features.contains(&"has_journal".to_string()));
    assert!(p.features.contains(&"extent".to_string()));
    assert!(p.ext().features[0].starts_with("none,"));
    // -j wins over -O ^has_journal, as in mke2fs.
    let p = run("mke2fs", &["-O", "^has_journal", "-j", "img", "64M"]).unwrap();
    assert!(p.features.contains(&"has_journal".to_string()));
    // A default journal does not fit 1 MiB: dropped, with mke2fs's message.
    let p = run("mkfs.ext4", &["img", "1M"]).unwrap();
    assert!(!p.features.contains(&"has_journal".to_string()));
    assert!(p
        .notes
        .iter()
        .any(|n| n.note == "Filesystem too small for a journal"));
    let p = run("mkfs.ext4", &["-J", "size=4", "img", "64M"]).unwrap();
    assert_eq!(p.ext().journal_size, Some(4 << 20));
    let conf = Profile::parse(
        "[defaults]\n base_features = sparse_super\n default_features = dir_index\n hash_alg = tea\n reserved_ratio = 2\n[fs_types]\n ext4 = {\n  features = extent\n }\n",
    )
    .unwrap();
    let p = run_with("mkfs.ext4", &["img", "64M"], &conf, |_| {}).unwrap();
    assert_eq!(p.features, ["sparse_super", "extent", "dir_index"]);
    assert_eq!(p.ext().hash_alg, HashAlg::Tea);
    assert_eq!(p.ext().reserved_percent, 2.0);
    let p = run_with(
        "mkfs.ext4",
        &["-O", "filetype", "img", "64M"],
        &conf,
        |_| {},
    )
    .unwrap();
    assert_eq!(
        p.features,
        ["sparse_super", "extent", "filetype"],
        "-O replaces default_features"
    );
}

#[test]
fn inode_options_and_room() {
    let p = run("mke2fs", &["-N", "5000", "-I", "128", "img", "64M"]).unwrap();
    assert_eq!(
        (p.ext().inodes, p.ext().bytes_per_inode),
        (Some(5000), None)
    );
    assert_eq!(p.ext().inode_size, 128);
    let p = run("mke2fs", &["-i", "4096", "img", "1G"]).unwrap();
    assert_eq!(
        (p.inodes_wanted, p.ext().bytes_per_inode),
        (1 << 18, Some(4096))
    );
    assert!(err("mke2fs", &["-N", "5000", "img", "1M"]).starts_with("-N: 5000 inodes"));
    assert!(err("mke2fs", &["-I", "512", "img", "1M"]).starts_with("-I: kiln cannot honour it"));
    assert!(err("mke2fs", &["-I", "100", "img", "1M"]).starts_with("-I: 100"));
    assert!(err("mke2fs", &["-m", "60", "img", "1M"]).starts_with("-m: \"60\""));
}

#[test]
fn times_from_the_environment() {
    let p = run_with("mke2fs", &["img", "8M"], &builtin(), |c| {
        c.source_date_epoch = Some("1700000000");
    })
    .unwrap();
    assert_eq!(p.request.tree.source_date_epoch, Some(1_700_000_000));
    // SOURCE_DATE_EPOCH wins over E2FSPROGS_FAKE_TIME (mke2fs 1.47.1), which
    // alone is the filesystem's time and clamps nothing.
    let times = |sde, fake| {
        let p = run_with("mke2fs", &["-d", "d", "img", "8M"], &builtin(), |c| {
            c.source_date_epoch = sde;
            c.fake_time = fake;
        })
        .unwrap();
        (p.request.tree.source_date_epoch, p.request.tree.fs_time)
    };
    assert_eq!(times(Some("5"), Some("1000")), (Some(5), None));
    assert_eq!(times(None, Some("1000")), (None, Some(1000)));
    assert_eq!(times(None, None), (None, None));
    let e = run_with("mke2fs", &["img", "8M"], &builtin(), |c| {
        c.source_date_epoch = Some("soon")
    })
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("SOURCE_DATE_EPOCH: \"soon\""), "{e}");
}

#[test]
fn the_request_passes_kilns_own_checks() {
    for program in ["mke2fs", "mkfs.ext3", "mkfs.ext4"] {
        let p = run(program, &["-d", "x", "img", "100M"]).unwrap();
        p.request.fs.options(false).unwrap();
    }
}

/// A value of `-letter` that mke2fs takes but kiln cannot honour.
fn refused_value(letter: char) -> Option<&'static str> {
    let value = match letter {
        'C' => "65536",
        'e' => "panic",
        'g' => "1024",
        'G' => "4",
        'l' => "badblocks.txt",
        'M' => "/mnt",
        'o' => "hurd",
        'r' => "0",
        's' => "1",
        'z' => "undo",
        _ => return None,
    };
    Some(value)
}

#[test]
fn the_table_says_what_the_plan_does() {
    use crate::table::{Status, EXTENDED, OPTIONS};
    for row in OPTIONS.iter().filter(|r| r.status != Status::Honoured) {
        let letter = row.name.chars().nth(1).unwrap();
        let mut argv = vec![row.name];
        argv.extend(refused_value(letter));
        argv.extend(["img", "64M"]);
        let result = run("mkfs.ext4", &argv);
        match row.status {
            Status::NoOp => assert!(result.is_ok(), "{}: {result:?}", row.name),
            _ => assert!(
                matches!(&result, Err(MkfsError::Refused { option, .. }) if option == row.name),
                "{}: {result:?}",
                row.name
            ),
        }
    }
    for row in EXTENDED.iter().filter(|r| r.status != Status::Honoured) {
        let name = row.name.strip_prefix("-E ").unwrap();
        let list = format!("{name}=1");
        let result = run("mkfs.ext4", &["-E", &list, "img", "64M"]);
        match row.status {
            Status::NoOp => assert!(result.is_ok(), "{}: {result:?}", row.name),
            _ => assert!(
                matches!(&result, Err(MkfsError::Refused { option, .. }) if option == row.name),
                "{}: {result:?}",
                row.name
            ),
        }
    }
}

#[test]
fn without_d_an_empty_tree_at_the_filesystems_time() {
    let p = run("mke2fs", &["img", "8M"]).unwrap();
    let line = "set / time=1700000000 crtime=1700000000";
    assert_eq!(p.request.tree.layers, [Layer::SpecLine(line.into())]);
    assert_eq!(p.request.tree.fs_time, Some(1_700_000_000));
    let p = run_with("mke2fs", &["img", "8M"], &builtin(), |c| {
        c.fake_time = Some("1000");
    })
    .unwrap();
    let line = "set / time=1000 crtime=1000";
    assert_eq!(p.request.tree.layers, [Layer::SpecLine(line.into())]);
    // With -d the times come from the tree, as in any kiln build.
    let p = run("mke2fs", &["-d", "root", "img", "8M"]).unwrap();
    assert_eq!(p.request.tree.layers, [Layer::Source("root".into())]);
    assert_eq!(p.request.tree.source_date_epoch, None);
}

#[test]
fn root_directory_is_mke2fs_s_unless_extended_options_say() {
    let p = run("mke2fs", &["-d", "root", "img", "8M"]).unwrap();
    assert_eq!(p.request.tree.root_owner, Some((0, 0)));
    assert_eq!(p.request.tree.root_mode, Some(0o755));
    let p = run("mke2fs", &["-E", "root_owner,root_perms=0700", "img", "8M"]).unwrap();
    assert_eq!(p.request.tree.root_owner, Some((1000, 100)));
    assert_eq!(p.request.tree.root_mode, Some(0o700));
}

#[test]
fn zero_inodes_is_the_default_count() {
    let p = run("mkfs.ext4", &["-N", "0", "img", "60M"]).unwrap();
    assert_eq!(p.ext().inodes, None);
    assert_eq!(
        p.inodes_wanted,
        run("mkfs.ext4", &["img", "60M"]).unwrap().inodes_wanted
    );
}

#[test]
fn a_file_is_written_in_place_created_or_extended() {
    let out = |device: Device, argv: &[&str]| {
        run_with("mkfs.ext4", argv, &builtin(), |c| {
            c.device_size = (device == Device::File).then_some(100 << 20);
            c.device = device;
        })
        .map(|p| (p.request.output.offset, p.request.output.grow))
    };
    assert_eq!(out(Device::File, &["img", "64M"]), Ok((Some(0), true)));
    assert_eq!(out(Device::File, &["img", "200M"]), Ok((Some(0), true)));
    assert_eq!(
        out(Device::File, &["-E", "offset=4096", "img", "64M"]),
        Ok((Some(4096), true))
    );
    // An Android sparse image replaces the file, as mke2fs's does.
    assert_eq!(
        out(Device::File, &["-E", "android_sparse", "img", "64M"]),
        Ok((None, false))
    );
    // A new file is made whole, or grown to hold the filesystem at -E offset.
    assert_eq!(out(Device::Missing, &["img", "64M"]), Ok((None, false)));
    assert_eq!(
        out(Device::Missing, &["-E", "offset=4096", "img", "64M"]),
        Ok((Some(4096), true))
    );
    assert_eq!(out(Device::BlockDevice, &["img", "64M"]), Ok((None, false)));
    let e = out(Device::Other, &["img", "64M"]).unwrap_err().to_string();
    assert!(
        e.contains("neither a regular file nor a block device"),
        "{e}"
    );
    // `-` is a file named so, not standard output.
    let p = run("mkfs.ext4", &["-", "64M"]).unwrap();
    assert_eq!(p.request.output.path, Path::new("./-"));
}

/// e2fsprogs 1.47's own mke2fs.conf for ext4 (Debian's leaves out the last two).
const UPSTREAM_EXT4: &str = "[fs_types]\n ext4 = {\n  features = has_journal,extent,huge_file,flex_bg,metadata_csum,metadata_csum_seed,64bit,dir_nlink,extra_isize,orphan_file\n }\n";

#[test]
fn the_upstream_conf_s_features_are_all_written() {
    let conf = Profile::parse(UPSTREAM_EXT4).unwrap();
    let p = run_with("mkfs.ext4", &["-q", "img", "64M"], &conf, |_| {}).unwrap();
    for feature in ["metadata_csum_seed", "orphan_file"] {
        assert!(
            p.features.contains(&feature.to_string()),
            "{:?}",
            p.features
        );
    }
    p.request.fs.options(false).unwrap();
}

#[test]
fn mkfs_ext3_always_has_a_journal() {
    let p = run("mkfs.ext3", &["-O", "^has_journal", "img", "64M"]).unwrap();
    assert!(p.features.contains(&"has_journal".to_string()));
    let p = run(
        "mke2fs",
        &["-t", "ext3", "-O", "^has_journal", "img", "64M"],
    )
    .unwrap();
    assert!(!p.features.contains(&"has_journal".to_string()));
}
