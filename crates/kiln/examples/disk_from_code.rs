//! Builds a GPT disk from a layout made in code: a 32 MiB EFI system
//! partition holding a FAT filesystem made from spec lines, then a root
//! partition holding an ext4 filesystem of a directory, sized for it plus
//! 16 MiB:
//!
//! ```sh
//! cargo run -p kiln-lib --example disk_from_code -- fixtures/example disk.img
//! ```

use std::path::Path;

use anyhow::{bail, Result};
use kiln_lib::kiln_ext::FsType;
use kiln_lib::layout::{Content, Filesystem, Layout, Partition, Size, Table};
use kiln_lib::{BuildReport, DiskRequest, FsRequest, Layer, OutputRequest, Quiet, TreeRequest};

fn main() -> Result<()> {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let [root, disk] = args.as_slice() else {
        bail!("usage: disk_from_code ROOT_DIR DISK_IMAGE");
    };
    let report = build_disk(root.as_ref(), disk.as_ref())?;
    for p in &report.partitions {
        println!(
            "{} {:?}: {} bytes at {}",
            p.number, p.label, p.size, p.offset
        );
    }
    Ok(())
}

/// A GPT disk at `disk`: a FAT ESP with a systemd-boot loader.conf, and an
/// ext4 root of `root`.
pub fn build_disk(root: &Path, disk: &Path) -> Result<BuildReport> {
    let layout = Layout {
        table: Table::Gpt,
        size: None,
        uuid: None,
        partitions: vec![
            partition(
                "esp",
                "esp",
                Size::Fixed(32 << 20),
                Content::Filesystem(Box::new(Filesystem {
                    tree: TreeRequest {
                        layers: vec![
                            Layer::SpecLine(
                                "file /loader/loader.conf 0644 0 0 text \"timeout 3\\n\"".into(),
                            ),
                            Layer::SpecLine("attr /loader/loader.conf system".into()),
                        ],
                        timestamp: Some(1_700_000_000),
                        ..TreeRequest::default()
                    },
                    fs: FsRequest {
                        label: "ESP".into(),
                        ..FsRequest::fat(None)
                    },
                })),
            ),
            partition(
                "root",
                "root-x86-64",
                Size::Auto {
                    min: None,
                    max: None,
                    free: 16 << 20,
                },
                Content::Filesystem(Box::new(Filesystem {
                    tree: TreeRequest {
                        layers: vec![Layer::Source(root.to_path_buf())],
                        all_root: true,
                        timestamp: Some(1_700_000_000),
                        ..TreeRequest::default()
                    },
                    fs: FsRequest::new(FsType::Ext4),
                })),
            ),
        ],
        // Seeds the GUIDs kiln derives: the same bytes, the same disk.
        identity: b"disk_from_code example".to_vec(),
        file: None,
    };
    let request = DiskRequest {
        layout,
        output: OutputRequest::file(disk),
        live: false,
        source_date_epoch: None,
    };
    kiln_lib::build_disk(&request, &Quiet)
}

/// One partition named `label`, of the type named `type_name`.
fn partition(label: &str, type_name: &str, size: Size, content: Content) -> Partition {
    Partition {
        key: label.to_string(),
        label: label.to_string(),
        type_guid: kiln_lib::layout::type_guid(type_name).expect("a known type"),
        size,
        uuid: None,
        attributes: 0,
        content,
        verity: None,
    }
}
