//! Issue 17, point 8: a reader of standard output that goes away (`kiln ls
//! IMG | head -1`) ends kiln quietly, as SIGPIPE ends `cat`: nothing on
//! stderr, status 141 (what a shell reports for `cat`).

use std::path::Path;
use std::process::{Output, Stdio};

use crate::helpers::*;

/// The exit status kiln documents for a closed standard output.
const BROKEN_PIPE_STATUS: i32 = 141;

/// Runs `kiln ARGS` with a standard output whose reader has already gone
/// (the read end of the pipe is closed before kiln starts, so every write
/// fails, however little kiln prints).
fn with_closed_stdout(args: &[&std::ffi::OsStr]) -> Output {
    let (read, write) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("create a pipe");
    drop(read);
    run(kiln_command()
        .args(args)
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped()))
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let case = Case::new("ext4", 4096);
    let src = case.mkdir("src");
    write_file(&src.join("big"), &vec![0x5a; 1 << 20]);
    for i in 0..100 {
        write_file(&src.join(format!("f{i}")), b"x");
    }
    let image = case.path("image.img");
    case.build(&[&src], &image, &[]);
    // verify prints its differences on stdout: an empty source gives some.
    let empty = case.mkdir("empty");
    let img = image.as_os_str();
    let commands: Vec<Vec<&std::ffi::OsStr>> = vec![
        vec![
            "ls".as_ref(),
            img,
            "/".as_ref(),
            "-l".as_ref(),
            "-R".as_ref(),
        ],
        vec!["cat".as_ref(), img, "/big".as_ref()],
        vec!["info".as_ref(), img],
        vec!["verify".as_ref(), img, "--against".as_ref(), empty.as_ref()],
        vec!["build".as_ref(), src.as_ref(), "-o".as_ref(), "-".as_ref()],
        vec![
            "build".as_ref(),
            src.as_ref(),
            "-o".as_ref(),
            "-".as_ref(),
            "--compress".as_ref(),
            "zstd".as_ref(),
        ],
    ];
    for args in commands {
        let out = with_closed_stdout(&args);
        let shown: Vec<_> = args.iter().map(|a| Path::new(a).display()).collect();
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).as_ref()
            ),
            (Some(BROKEN_PIPE_STATUS), ""),
            "kiln {shown:?} with a closed stdout: {}",
            describe(&out)
        );
    }
}
