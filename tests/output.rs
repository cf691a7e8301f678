//! Issue 17, point 8: the output file. Failures that have no byte offset
//! name none; temporary files of killed builds do not pile up beside the
//! output.

use std::path::Path;
use std::process::Stdio;

use crate::helpers::*;

/// A directory nobody cannot write: the message names the output and the
/// cause, and no "byte offset 0" (creating a file has no offset).
#[test]
fn an_unwritable_output_directory_names_no_offset() {
    if !require_root() || !require_tool("setpriv") {
        return;
    }
    let case = Case::new("ext4", 4096);
    crate::sys::chmod(case.dir(), 0o755);
    let src = case.mkdir("src");
    write_file(&src.join("f"), b"data");
    // Owned by root, mode 0755: nobody may enter it, not create in it.
    let out_dir = case.mkdir("out");
    let Some(kiln_bin) = kiln_for_nobody() else {
        return;
    };
    let image = out_dir.join("image.img");
    let out = run(as_nobody(kiln_bin)
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&image));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr.contains(&image.display().to_string()) && stderr.contains("Permission denied"),
        "{}",
        describe(&out)
    );
    assert!(!stderr.contains("byte offset"), "{}", describe(&out));
    assert_eq!(list_dir(&out_dir), Vec::<String>::new());
}

/// A kiln process, killed if still running when dropped (a failed
/// assertion must not leave a stopped build holding the mount).
struct Running(std::process::Child);

impl Running {
    fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.0.id() as i32).expect("a pid");
        rustix::process::kill_process(pid, signal).expect("send a signal");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The names in `dir` but the filesystem's own lost+found.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names = list_dir(dir);
    names.retain(|n| n != "lost+found");
    names
}

/// Where there is no `O_TMPFILE` (a FUSE filesystem: fuse2fs has none) the
/// output is first a hidden named file. A later build of the same output
/// leaves it while its writer lives (here stopped), and removes it once the
/// writer is killed; SIGINT removes it at once.
#[test]
fn a_killed_builds_temporary_file_is_removed_by_the_next() {
    if !require_root()
        || !require_tool("fuse2fs")
        || !require_tool("mke2fs")
        || !(Path::new("/dev/fuse").exists() || skip("no /dev/fuse"))
    {
        return;
    }
    let case = Case::new("ext4", 4096);
    let backing = case.path("fuse.img");
    let made = run(tool("mke2fs")
        .args(["-q", "-F", "-t", "ext4"])
        .arg(&backing)
        .arg("512M"));
    assert_success(&made, "mke2fs");
    let mount = Mount::fuse2fs(&backing);
    let out_dir = mount.path();
    let src = case.mkdir("src");
    // Non-zero data, so every block is copied: the build is still under
    // way when it is seen to have its output open.
    write_file(&src.join("big"), &vec![0x5a; 64 << 20]);
    let image = out_dir.join("image.img");

    let mut first = Running(
        case.build_command(&[&src], &image)
            .stderr(Stdio::null())
            .spawn()
            .expect("start kiln"),
    );
    let temp = wait_for_open_file(&mut first.0, out_dir);
    first.signal(rustix::process::Signal::STOP);
    let temp_name = temp.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        temp_name.starts_with(".kiln-") && temp_name.ends_with(".tmp"),
        "not a named temporary file: {}",
        temp.display()
    );

    let second = run(&mut case.build_command(&[&src], &image));
    assert_success(&second, "a build beside a live one");
    assert_eq!(names_in(out_dir), [temp_name.as_str(), "image.img"]);

    first.signal(rustix::process::Signal::KILL);
    let _ = first.0.wait();
    assert_eq!(names_in(out_dir), [temp_name.as_str(), "image.img"]);

    let third = run(case.build_command(&[&src], &image).arg("--force"));
    assert_success(&third, "a build after a killed one");
    assert_eq!(names_in(out_dir), ["image.img"], "left behind");

    // SIGINT still removes the named file through the partial outputs.
    let mut fourth = Running(
        case.build_command(&[&src], &image)
            .arg("--force")
            .stderr(Stdio::null())
            .spawn()
            .expect("start kiln"),
    );
    wait_for_open_file(&mut fourth.0, out_dir);
    fourth.signal(rustix::process::Signal::INT);
    let status = fourth.0.wait().expect("wait for kiln");
    assert_eq!(status.code(), Some(130), "{status}");
    assert_eq!(names_in(out_dir), ["image.img"], "left behind");
    drop((first, fourth));
    mount.unmount();
}
