//! Issue 17, point 8: the output file. Failures that have no byte offset
//! name none; temporary files of killed builds do not pile up beside the
//! output.

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
