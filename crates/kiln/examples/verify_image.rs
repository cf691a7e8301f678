//! Verifies that an image holds exactly a directory (owned by root, as
//! `build_image` builds it), and that its structures are consistent:
//!
//! ```sh
//! cargo run -p kiln-lib --example verify_image -- example.img fixtures/example
//! ```

use std::path::Path;

use anyhow::{bail, Result};
use kiln_lib::{Layer, Quiet, TreeRequest, VerifyReport, VerifyRequest};

fn main() -> Result<()> {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let [image, source] = args.as_slice() else {
        bail!("usage: verify_image IMAGE SOURCE_DIR");
    };
    let report = verify_image(Path::new(image), Path::new(source), &mut std::io::stdout())?;
    if !report.matches() {
        bail!(
            "{}: {} differences, {} inconsistencies",
            report.image,
            report.differences,
            report.inconsistencies
        );
    }
    println!("{}: {} entries match", report.image, report.entries);
    Ok(())
}

/// Compares `image` with `source`, writing each difference to `out`.
pub fn verify_image(
    image: &Path,
    source: &Path,
    out: &mut dyn std::io::Write,
) -> Result<VerifyReport> {
    let request = VerifyRequest {
        image: image.as_os_str().to_owned(),
        tree: TreeRequest {
            layers: vec![Layer::Source(source.to_path_buf())],
            all_root: true,
            timestamp: Some(1_700_000_000),
            ..TreeRequest::default()
        },
        no_atime: false,
        max_reports: 50,
    };
    kiln_lib::verify(&request, out, &Quiet)
}
