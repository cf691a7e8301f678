//! Builds an ext4 image from a directory, every entry owned by root:
//!
//! ```sh
//! cargo run -p kiln-lib --example build_image -- fixtures/example example.img
//! ```

use std::path::Path;

use anyhow::{bail, Result};
use kiln_lib::kiln_ext::FsType;
use kiln_lib::{BuildReport, BuildRequest, FsRequest, Layer, OutputRequest, Quiet, TreeRequest};

fn main() -> Result<()> {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let [source, image] = args.as_slice() else {
        bail!("usage: build_image SOURCE_DIR IMAGE");
    };
    let report = build_image(source.as_ref(), image.as_ref())?;
    let fs = report.partitions[0]
        .filesystem
        .as_ref()
        .expect("one filesystem");
    println!(
        "{}: {} bytes, {} of {} inodes used",
        Path::new(image).display(),
        report.disk.size,
        fs.inodes_used,
        fs.inodes
    );
    Ok(())
}

/// The image of `source` at `image`: ext4, owned by root, with times
/// fixed so that two builds are byte-identical.
pub fn build_image(source: &Path, image: &Path) -> Result<BuildReport> {
    let request = BuildRequest {
        tree: TreeRequest {
            layers: vec![Layer::Source(source.to_path_buf())],
            all_root: true,
            timestamp: Some(1_700_000_000),
            ..TreeRequest::default()
        },
        fs: FsRequest::new(FsType::Ext4),
        output: OutputRequest::file(image),
        verity: None,
    };
    kiln_lib::build(&request, &Quiet)
}
