//! BlockDevice on a loop device: needs root and losetup (CI has both).
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_sink::device::BlockDevice;
use kiln_sink::Sink;

const SIZE: usize = 8 << 20;

/// Skips the test outside CI when loop devices cannot be had; fails in CI.
fn unavailable(why: &str) -> bool {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "loop device needed in CI: {why}"
    );
    eprintln!("skipping: {why}");
    true
}

/// A loop device over a file of 0xFF bytes, detached (and unmounted) on drop,
/// even when the test panics.
struct Loop {
    dev: PathBuf,
    backing: PathBuf,
    mount: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Loop {
    fn new() -> Option<Loop> {
        if !rustix::process::geteuid().is_root() {
            unavailable("not root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let backing = dir.path().join("disk");
        std::fs::write(&backing, vec![0xFFu8; SIZE]).unwrap();
        let out = match Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&backing)
            .output()
        {
            Ok(out) if out.status.success() => out,
            Ok(out) => {
                unavailable(&format!(
                    "losetup: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
                return None;
            }
            Err(e) => {
                unavailable(&format!("losetup: {e}"));
                return None;
            }
        };
        let dev = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        Some(Loop {
            dev,
            backing,
            mount: None,
            _dir: dir,
        })
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        if let Some(point) = &self.mount {
            let _ = Command::new("umount").arg(point).status();
        }
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

fn read_device(dev: &Path) -> Vec<u8> {
    std::fs::read(dev).unwrap()
}

#[test]
fn writes_and_zeroes_a_loop_device() {
    let Some(lo) = Loop::new() else { return };
    let image = 6 << 20;
    let sink = BlockDevice::open(&lo.dev, image).unwrap();
    assert_eq!(sink.device_size(), SIZE as u64);
    // write_at writes zeros too; zero() clears a range spanning several
    // buffers; untouched ranges keep their old bytes.
    sink.write_at(4096, &[0u8; 4096]).unwrap();
    sink.write_at(8192, b"kiln").unwrap();
    sink.zero(1 << 20..(1 << 20) + (3 << 20) + 17).unwrap();
    sink.zero(5..5).unwrap();
    let err = sink.write_at(image - 1, b"xy").unwrap_err().to_string();
    assert!(err.contains("past the end"), "{err}");
    assert!(sink.zero(image - 1..image + 1).is_err());
    sink.finish().unwrap();

    let got = read_device(&lo.dev);
    let mut want = vec![0xFFu8; SIZE];
    want[4096..8192].fill(0);
    want[8192..8196].copy_from_slice(b"kiln");
    want[1 << 20..(1 << 20) + (3 << 20) + 17].fill(0);
    assert!(got == want, "device contents differ");
    // Through a symlink (as /dev/disk/by-id/… are) too.
    let link = lo.backing.with_file_name("link");
    std::os::unix::fs::symlink(&lo.dev, &link).unwrap();
    BlockDevice::open(&link, 1).unwrap().finish().unwrap();
}

#[test]
fn refuses_small_devices_and_regular_files() {
    let Some(lo) = Loop::new() else { return };
    let err = BlockDevice::open(&lo.dev, SIZE as u64 + 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("the device has 8388608 bytes"), "{err}");
    let err = BlockDevice::open(&lo.backing, 1).unwrap_err().to_string();
    assert!(err.contains("not a block device"), "{err}");
}

#[test]
fn refuses_a_mounted_device() {
    let Some(mut lo) = Loop::new() else { return };
    // e2fsprogs as an oracle only: any mounted filesystem will do.
    let mkfs = Command::new("mkfs.ext2")
        .args(["-q", "-F"])
        .arg(&lo.dev)
        .status();
    if !mkfs.is_ok_and(|s| s.success()) {
        unavailable("mkfs.ext2 failed or missing");
        return;
    }
    let point = lo.backing.with_file_name("mnt");
    std::fs::create_dir(&point).unwrap();
    let mounted = Command::new("mount").arg(&lo.dev).arg(&point).status();
    if !mounted.is_ok_and(|s| s.success()) {
        unavailable("mount failed");
        return;
    }
    lo.mount = Some(point.clone());
    let err = BlockDevice::open(&lo.dev, 4096).unwrap_err().to_string();
    assert!(err.contains("is mounted at"), "{err}");
    assert!(err.contains(&point.display().to_string()), "{err}");
}
