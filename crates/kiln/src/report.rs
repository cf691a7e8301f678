//! What a build made: [`BuildReport`], per partition its place, type,
//! UUIDs and filesystem counts; the disk's size, SHA-256 and compressed
//! size. It is also the JSON of `--report FILE.json`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use kiln_ext::Plan;
use kiln_fat::FatPlan;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use crate::disk::PartitionVerity;
use crate::fs::FsPlan;
use crate::layout::{Layout, Table};
use crate::output::Written;
use crate::verity::VerityReport;
use crate::OutputRequest;
use kiln_disk::layout::DiskLayout;

/// What a build wrote.
#[derive(Clone, Debug, Serialize)]
pub struct BuildReport {
    /// The whole image.
    pub disk: DiskReport,
    /// Its partitions in disk order (a plain filesystem image is one).
    pub partitions: Vec<PartitionReport>,
    /// The dm-verity tree of a plain image, when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verity: Option<VerityReport>,
}

/// The whole image.
#[derive(Clone, Debug, Serialize)]
pub struct DiskReport {
    /// `gpt`, or `none` for an image without a partition table.
    pub table: &'static str,
    /// Bytes.
    pub size: u64,
    /// The disk GUID (GPT only).
    pub uuid: Option<String>,
    /// The image's SHA-256 in hex, when a report file was asked for.
    pub sha256: Option<String>,
    /// The size of the zstd stream, when compressed.
    pub zstd_bytes: Option<u64>,
    /// The output's format: `raw`, or a container (`qcow2`, `vhd`,
    /// `vhd-dynamic`, `vmdk`, `android-sparse`).
    pub format: &'static str,
    /// The size of the container file, for a container.
    pub format_bytes: Option<u64>,
    /// The bytes of source files cloned into the image rather than written
    /// ([`OutputRequest::reflink`]): they take no disk space of their own
    /// until either copy is changed.
    pub shared_bytes: u64,
}

/// One partition.
#[derive(Clone, Debug, Serialize)]
pub struct PartitionReport {
    /// Its number, from 1.
    pub number: u32,
    /// Its GPT name.
    pub label: String,
    /// The type's short name (`esp`, `root-x86-64`), if kiln knows it.
    pub type_name: Option<&'static str>,
    /// The type GUID.
    pub type_guid: String,
    /// The partition GUID (GPT only).
    pub uuid: Option<String>,
    /// Byte offset in the image.
    pub offset: u64,
    /// Bytes.
    pub size: u64,
    /// The filesystem built into it, if any.
    pub filesystem: Option<FsReport>,
    /// Its part in a dm-verity pair, with the root hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verity: Option<PartitionVerity>,
}

/// A filesystem's numbers.
#[derive(Clone, Debug, Serialize)]
pub struct FsReport {
    /// `ext2`, `ext3`, `ext4`, `fat12`, `fat16` or `fat32`.
    pub fs_type: &'static str,
    /// The filesystem UUID (FAT: the volume id, `XXXX-XXXX`).
    pub uuid: String,
    /// Bytes per block (FAT: per cluster).
    pub block_size: u32,
    /// Blocks in all (FAT: data clusters).
    pub blocks: u64,
    /// Blocks in use.
    pub blocks_used: u64,
    /// Free blocks.
    pub blocks_free: u64,
    /// Inodes in all (FAT has none: 0).
    pub inodes: u64,
    /// Inodes in use.
    pub inodes_used: u64,
    /// Free inodes.
    pub inodes_free: u64,
    /// Block groups (FAT: 0).
    #[serde(skip)]
    pub groups: u32,
    /// A warning when the free blocks or inodes are under 1 %.
    #[serde(skip)]
    pub low_room: Option<String>,
}

impl FsReport {
    /// The numbers of a planned filesystem.
    pub(crate) fn of(plan: &Plan<'_>) -> FsReport {
        let geo = &plan.geometry;
        let (blocks_free, inodes_free) = plan.free_counts();
        let inodes = u64::from(geo.inodes_count());
        FsReport {
            fs_type: plan.fs_type().name(),
            uuid: uuid::Uuid::from_bytes(plan.uuid()).to_string(),
            block_size: geo.block_size,
            blocks: geo.blocks_count,
            blocks_used: geo.blocks_count - blocks_free,
            blocks_free,
            inodes,
            inodes_used: inodes - inodes_free,
            inodes_free,
            groups: geo.groups,
            low_room: plan.low_room(),
        }
    }

    /// The numbers of a planned FAT volume.
    pub(crate) fn of_fat(plan: &FatPlan<'_>) -> FsReport {
        let geo = plan.geometry();
        let blocks = u64::from(geo.clusters);
        let used = u64::from(plan.used_clusters());
        let id = plan.volume_id();
        FsReport {
            fs_type: match geo.variant {
                kiln_fat::FatVariant::Fat12 => "fat12",
                kiln_fat::FatVariant::Fat16 => "fat16",
                kiln_fat::FatVariant::Fat32 => "fat32",
            },
            uuid: format!("{:04X}-{:04X}", id >> 16, id & 0xffff),
            block_size: geo.cluster_bytes(),
            blocks,
            blocks_used: used,
            blocks_free: blocks - used,
            inodes: 0,
            inodes_used: 0,
            inodes_free: 0,
            groups: 0,
            low_room: ((blocks - used) * 100 < blocks).then(|| {
                format!(
                    "the filesystem is almost full: {} of {blocks} clusters free; give room \
                     with --free or a larger --size",
                    blocks - used
                )
            }),
        }
    }
}

/// The type of a plain filesystem image's one partition, as reported: the
/// Discoverable Partitions Specification's generic Linux data.
const PLAIN_TYPE: &str = "linux-generic";

impl BuildReport {
    /// The report of a disk.
    pub(crate) fn disk(
        layout_file: &Layout,
        layout: &DiskLayout,
        plans: &[Option<FsPlan<'_>>],
        written: &Written,
    ) -> BuildReport {
        let gpt = layout_file.table == Table::Gpt;
        BuildReport {
            disk: DiskReport {
                table: if gpt { "gpt" } else { "none" },
                size: layout.size,
                uuid: gpt.then(|| layout.disk_guid.to_string()),
                sha256: None,
                zstd_bytes: written.zstd_bytes(),
                format: written.format.name(),
                format_bytes: written.format_bytes(),
                shared_bytes: written.shared,
            },
            partitions: layout
                .partitions
                .iter()
                .zip(plans)
                .map(|(p, plan)| PartitionReport {
                    number: p.number,
                    label: p.label.clone(),
                    type_name: kiln_disk::type_name(&p.type_guid.to_string()),
                    type_guid: p.type_guid.to_string(),
                    uuid: gpt.then(|| p.uuid.to_string()),
                    offset: p.region.offset,
                    size: p.region.len,
                    filesystem: plan.as_ref().map(FsPlan::report),
                    verity: None,
                })
                .collect(),
            verity: None,
        }
    }

    /// The report of a plain filesystem image.
    pub(crate) fn plain(plan: &FsPlan<'_>, written: &Written) -> BuildReport {
        BuildReport {
            disk: DiskReport {
                table: "none",
                size: plan.size(),
                uuid: None,
                sha256: None,
                zstd_bytes: written.zstd_bytes(),
                format: written.format.name(),
                format_bytes: written.format_bytes(),
                shared_bytes: written.shared,
            },
            partitions: vec![PartitionReport {
                number: 1,
                label: String::new(),
                type_name: Some(PLAIN_TYPE),
                // OK: kiln-disk's table names every type kiln reports.
                type_guid: kiln_disk::type_guid(PLAIN_TYPE)
                    .expect("a known type")
                    .to_string(),
                uuid: None,
                offset: 0,
                size: plan.size(),
                filesystem: Some(plan.report()),
                verity: None,
            }],
            verity: None,
        }
    }

    /// Writes the JSON report the output asks for, if any, with the
    /// image's SHA-256 (`sha256`, from a stream, or read back from the
    /// output).
    pub(crate) fn write_if_asked(
        &mut self,
        output: &OutputRequest,
        sha256: Option<[u8; 32]>,
    ) -> Result<()> {
        let Some(path) = &output.report else {
            return Ok(());
        };
        let sha = match sha256 {
            Some(s) => s,
            None => sha256_of(&output.path, output.offset.unwrap_or(0), self.disk.size)?,
        };
        self.disk.sha256 = Some(sha.iter().map(|b| format!("{b:02x}")).collect());
        let text = serde_json::to_string_pretty(&self)? + "\n";
        std::fs::write(path, text).with_context(|| path.display().to_string())
    }
}

/// The SHA-256 of `len` bytes of the file at `path` from `offset` (for the
/// report of outputs that are not streams).
fn sha256_of(path: &Path, offset: u64, len: u64) -> Result<[u8; 32]> {
    let file = std::fs::File::open(path).with_context(|| path.display().to_string())?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < len {
        let n = buf.len().min((len - at) as usize);
        let got = kiln_host::read_at(&file, &mut buf[..n], offset + at)
            .with_context(|| path.display().to_string())?;
        if got < n {
            bail!("{}: ends before byte {}", path.display(), offset + len);
        }
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok(hasher.finalize().into())
}
