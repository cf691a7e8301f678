//! kiln as `mke2fs`: invoked under the name `mke2fs`, `mkfs.ext2`,
//! `mkfs.ext3` or `mkfs.ext4` (a symlink; `argv[0]` decides), or as `kiln
//! mkfs ARGS...`, it takes mke2fs 1.47's command line. `kiln-mkfs` resolves
//! it with mke2fs.conf into a build request; this module reads what that
//! needs from the environment (`MKE2FS_CONFIG`, `E2FSPROGS_FAKE_TIME`,
//! `SOURCE_DATE_EPOCH`, the device's size, the process's ids), then builds.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _, Result};
use kiln_lib::kiln_sink::target::is_block_device;
use kiln_lib::Quiet;
use kiln_mkfs::{conf, Args, Context, Device};

/// The program names under which kiln is mke2fs.
const NAMES: [&str; 4] = ["mke2fs", "mkfs.ext2", "mkfs.ext3", "mkfs.ext4"];

/// The mke2fs name kiln was invoked under, if it was.
pub(crate) fn invoked_as() -> Option<String> {
    let argv0 = std::env::args_os().next()?;
    let name = Path::new(&argv0).file_name()?.to_str()?;
    NAMES.contains(&name).then(|| name.to_string())
}

/// Runs the mke2fs command line `args` (after the program name) as
/// `program` would.
pub(crate) fn run(program: &str, args: Vec<OsString>) -> Result<()> {
    // mke2fs has no --help; kiln's tells how it differs from mke2fs.
    if args.first().is_some_and(|a| a == "--help") {
        let mut command = crate::flags::command();
        let mkfs = command.find_subcommand_mut("mkfs").expect("kiln mkfs");
        print!("{}", mkfs.render_long_help());
        return Ok(());
    }
    let words = args
        .into_iter()
        .map(|a| {
            a.into_string()
                .map_err(|a| anyhow!("{}: not UTF-8", a.to_string_lossy()))
        })
        .collect::<Result<Vec<_>>>()?;
    let args = Args::parse(words)?;
    if args.count('V') > 0 {
        eprintln!("mke2fs 1.47.0 (kiln {})", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let config = std::env::var_os("MKE2FS_CONFIG").map(PathBuf::from);
    let (profile, _) =
        conf::load(config.as_deref()).map_err(|(source, e)| anyhow!("{source}: {e}"))?;
    let fake_time = std::env::var("E2FSPROGS_FAKE_TIME").ok();
    let source_date_epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
    let (device, device_size) = examine_device(&args.device)?;
    let ctx = Context {
        program,
        profile: &profile,
        fake_time: fake_time.as_deref(),
        source_date_epoch: source_date_epoch.as_deref(),
        device_size,
        device,
        ids: kiln_host::process_ids(),
        now: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    };
    let plan = kiln_mkfs::plan(&args, &ctx)?;
    if !plan.quiet {
        for note in &plan.notes {
            eprintln!("{program}: {}: {}", note.option, note.note);
        }
    }
    if plan.dry_run {
        eprintln!(
            "{program}: -n: would make {} ({}) with features {}",
            args.device.display(),
            plan.usage_types.join(","),
            plan.features.join(",")
        );
        return Ok(());
    }
    // kiln-lib's errors name the output or the source they are about.
    let report = kiln_lib::build(&plan.request, &Quiet)?;
    if !plan.quiet {
        for fs in report
            .partitions
            .iter()
            .filter_map(|p| p.filesystem.as_ref())
        {
            eprintln!(
                "{program}: {}: {} blocks of {} bytes, {} inodes, UUID {}",
                args.device.display(),
                fs.blocks,
                fs.block_size,
                fs.inodes,
                fs.uuid
            );
        }
    }
    Ok(())
}

/// What the device path names and its size (a file's length, a block
/// device's), which an fs-size left out fills, as mke2fs does. Nothing
/// else is opened: a FIFO would block.
fn examine_device(path: &Path) -> Result<(Device, Option<u64>)> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok((Device::File, Some(m.len()))),
        Ok(_) if is_block_device(path) => {
            use std::io::{Seek, SeekFrom};
            let mut f = std::fs::File::open(path).with_context(|| path.display().to_string())?;
            Ok((Device::BlockDevice, Some(f.seek(SeekFrom::End(0))?)))
        }
        Ok(_) => Ok((Device::Other, None)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Device::Missing, None)),
        Err(e) => Err(e).with_context(|| path.display().to_string()),
    }
}
