//! Laying out whole disk images and encoding their GUID Partition Table.
//!
//! [`layout`] places the partitions of a [`DiskSpec`] on a disk; [`gpt_writes`]
//! encodes the protective MBR and both GPTs of the resulting [`DiskLayout`] as
//! positioned writes, for a sink or any file. Pure
//! computation: nothing here touches a file.
//!
//! # Layout rules
//!
//! * 512-byte logical sectors; 128 partition entries of 128 bytes (16 KiB
//!   arrays), the primary array at LBA 2, the backup array just before the
//!   backup header in the last sector.
//! * The first usable LBA written in the headers is 2048 (1 MiB), as `sfdisk`
//!   and `systemd-repart` write it; the last usable LBA is `size / 512 - 34`.
//! * Partitions are placed in order, back to back, from 1 MiB; every start and
//!   size is a multiple of 1 MiB (sizes are rounded up).
//! * With a fixed disk size, the partitions must end by the last usable byte
//!   rounded down to 1 MiB; the last partition may `grow` to that point.
//!   Without one, the disk ends 1 MiB after the last partition (room for the
//!   backup GPT, keeping the size aligned).
//!
//! # Deterministic GUIDs
//!
//! GUIDs not given are derived from the spec's 16-byte `seed`, so the same
//! spec always yields the same bytes: the first 16 bytes of a SHA-256 with the
//! version (4) and variant bits set, so they look like random UUIDs (as
//! `systemd-repart` does with its hashes):
//!
//! * the disk GUID from `sha256(seed || "disk")`,
//! * a partition GUID from `sha256(seed || "partition" || label)`.
//!
//! Labels may repeat (e.g. several unnamed partitions). The first partition
//! with a label gets the hash above; the k-th further one (k = 1, 2, ...) gets
//! `sha256(seed || "partition" || label || 0x00 || k as u32 LE)`. Labels
//! cannot contain NUL, so these never collide with another label's hash, and
//! adding a partition with a repeated label leaves the GUIDs of the earlier
//! ones alone. Two partitions ending up with the same GUID (only possible with
//! fixed GUIDs) are refused.
//!
//! # Encoding
//!
//! The tables are encoded by the [`gpt`] crate (its [`HeaderBuilder`],
//! partition entry writer and [`ProtectiveMBR`]) into an in-memory device that
//! reports the disk's size, reads zeros where nothing was written and records
//! the writes, so no disk-sized buffer or file is needed. Its high-level
//! `GptDisk` is not used: it fixes the first usable LBA at 34 and cannot
//! place partitions at chosen LBAs with chosen GUIDs.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};

use gpt::disk::LogicalBlockSize;
use gpt::header::HeaderBuilder;
use gpt::mbr::ProtectiveMBR;
use gpt::partition::Partition;
use gpt::partition_types::{OperatingSystem, Type};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::partition;
use crate::Region;

/// The logical sector size of the disks laid out here.
pub const SECTOR_SIZE: u64 = 512;

/// The alignment of partition starts and sizes: 1 MiB.
pub const ALIGNMENT: u64 = 1 << 20;

/// The number of partition entries in each GPT entry array.
pub const MAX_PARTITIONS: u32 = 128;

/// The size of one GPT partition entry.
const ENTRY_SIZE: u32 = 128;

/// The sectors of one entry array: 128 entries of 128 bytes.
const ARRAY_SECTORS: u64 = (MAX_PARTITIONS as u64 * ENTRY_SIZE as u64) / SECTOR_SIZE;

/// The first usable LBA written in the headers (1 MiB).
const FIRST_USABLE_LBA: u64 = ALIGNMENT / SECTOR_SIZE;

/// The most UTF-16 code units of a GPT partition name.
pub const MAX_LABEL_UNITS: usize = 36;

/// The smallest disk: the first usable LBA, one usable sector, the backup GPT.
const MIN_DISK_SIZE: u64 = (FIRST_USABLE_LBA + 1 + ARRAY_SECTORS + 1) * SECTOR_SIZE;

/// One partition to lay out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSpec {
    /// The GPT partition name: at most 36 UTF-16 code units, no NUL.
    pub label: String,
    /// The partition type GUID (see [`resolve_type`]); must not be nil.
    pub type_guid: Uuid,
    /// The bytes needed; rounded up to a multiple of 1 MiB. With `grow`, the
    /// least size the partition may grow to (0 for any).
    pub size: u64,
    /// Grow to fill the fixed disk size. Only on the last partition, and only
    /// with [`DiskSpec::size`] set.
    pub grow: bool,
    /// The unique partition GUID; derived from the seed and label if `None`.
    pub uuid: Option<Uuid>,
    /// The 64 GPT attribute bits (bit 0: required, 2: legacy BIOS bootable,
    /// 60: read-only, 63: no-auto, ...).
    pub attributes: u64,
}

impl PartitionSpec {
    /// A partition of `size` bytes with no fixed GUID, no attributes and no growing.
    pub fn new(label: impl Into<String>, type_guid: Uuid, size: u64) -> PartitionSpec {
        PartitionSpec {
            label: label.into(),
            type_guid,
            size,
            grow: false,
            uuid: None,
            attributes: 0,
        }
    }
}

/// The partitions of a disk and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    /// The partitions, in disk order (at most 128).
    pub partitions: Vec<PartitionSpec>,
    /// The fixed disk size in bytes (a multiple of 512), or `None` for just
    /// large enough.
    pub size: Option<u64>,
    /// The seed of derived GUIDs.
    pub seed: [u8; 16],
    /// The disk GUID; derived from the seed if `None`.
    pub disk_guid: Option<Uuid>,
}

/// Where the partitions of a disk are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskLayout {
    /// The disk size in bytes.
    pub size: u64,
    /// The disk GUID.
    pub disk_guid: Uuid,
    /// The partitions, in disk order.
    pub partitions: Vec<PlacedPartition>,
}

/// One partition as placed on the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedPartition {
    /// The 1-based partition number: its entry index plus one.
    pub number: u32,
    /// The GPT partition name.
    pub label: String,
    /// The partition type GUID.
    pub type_guid: Uuid,
    /// The unique partition GUID.
    pub uuid: Uuid,
    /// The bytes of the disk the partition spans.
    pub region: Region,
    /// The GPT attribute bits.
    pub attributes: u64,
}

/// Why a disk could not be laid out or its GPT not encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiskError {
    /// A label is longer than a GPT partition name can be.
    #[error(
        "partition {label:?}: the label is {units} UTF-16 code units long; GPT allows at most {MAX_LABEL_UNITS}"
    )]
    LabelTooLong {
        /// The label.
        label: String,
        /// Its length in UTF-16 code units.
        units: usize,
    },
    /// A label contains a NUL character, which would end a GPT name early.
    #[error("partition {label:?}: the label contains a NUL character")]
    LabelHasNul {
        /// The label.
        label: String,
    },
    /// A partition has the nil type GUID, which marks unused entries.
    #[error("partition {label:?}: the nil type GUID marks unused entries")]
    NilType {
        /// The label.
        label: String,
    },
    /// A partition GUID or the disk GUID is nil.
    #[error("{what}: the GUID must not be nil")]
    NilGuid {
        /// `partition "x"` or `the disk`.
        what: String,
    },
    /// Two partitions have the same partition GUID.
    #[error("partitions {first:?} and {second:?} both have the GUID {guid}")]
    DuplicateGuid {
        /// The label of the earlier partition.
        first: String,
        /// The label of the later partition.
        second: String,
        /// The GUID.
        guid: Uuid,
    },
    /// More partitions than the entry array holds.
    #[error("{count} partitions: a GPT holds at most {MAX_PARTITIONS}")]
    TooManyPartitions {
        /// The number of partitions asked for.
        count: usize,
    },
    /// A partition of size 0 that does not grow.
    #[error("partition {label:?}: size 0 (give a size, or let the last partition grow)")]
    EmptyPartition {
        /// The label.
        label: String,
    },
    /// `grow` on a partition other than the last.
    #[error("partition {label:?}: only the last partition can grow")]
    GrowNotLast {
        /// The label.
        label: String,
    },
    /// `grow` without a fixed disk size.
    #[error("partition {label:?}: growing needs a fixed disk size")]
    GrowWithoutSize {
        /// The label.
        label: String,
    },
    /// A fixed disk size that is not a whole number of sectors.
    #[error("disk size {size} bytes is not a multiple of {SECTOR_SIZE}")]
    UnalignedDiskSize {
        /// The size asked for.
        size: u64,
    },
    /// A fixed disk size too small for the GPT itself.
    #[error("disk size {} is too small for a GPT with partitions from 1 MiB: at least {} is needed", fmt_size(*.size), fmt_size(*.min))]
    DiskTooSmall {
        /// The size asked for.
        size: u64,
        /// The least size.
        min: u64,
    },
    /// A partition does not fit on the fixed-size disk.
    #[error(
        "partition {label:?}: {} does not fit: the disk is {}, partitions must end by {} (the backup GPT follows), and the partitions before it end at {}",
        fmt_size(*.size), fmt_size(*.disk), fmt_size(*.limit), fmt_size(*.before)
    )]
    DoesNotFit {
        /// The label.
        label: String,
        /// The size needed, rounded up to 1 MiB.
        size: u64,
        /// The disk size.
        disk: u64,
        /// Where partitions must end, at the latest.
        limit: u64,
        /// Where the partitions before this one end.
        before: u64,
    },
    /// Sizes too large to compute with.
    #[error("partition {label:?}: size {size} bytes is too large")]
    TooLarge {
        /// The label.
        label: String,
        /// The size asked for.
        size: u64,
    },
    /// A [`DiskLayout`] given to [`gpt_writes`] that [`layout`] would not make.
    #[error("invalid disk layout: {reason}")]
    InvalidLayout {
        /// What is wrong with it.
        reason: String,
    },
    /// The `gpt` crate failed to encode the table.
    #[error("encoding the GPT: {reason}")]
    Encode {
        /// What it said.
        reason: String,
    },
}

/// A byte count for messages: `1 GiB`, `300 MiB`, `17 KiB` or `1000 bytes`.
fn fmt_size(n: u64) -> String {
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    match n {
        0 => "0 bytes".into(),
        n if n % GIB == 0 => format!("{} GiB", n / GIB),
        n if n % MIB == 0 => format!("{} MiB", n / MIB),
        n if n % KIB == 0 => format!("{} KiB", n / KIB),
        n => format!("{n} bytes"),
    }
}

/// The type GUID of a Discoverable Partitions Specification name such as
/// `"esp"` or `"root-x86-64"` (see [`partition::type_guid`]), or of a GUID
/// written out (`"0fc63daf-8483-4772-8e79-3d69d8477de4"`, braces allowed).
pub fn resolve_type(name_or_guid: &str) -> Option<Uuid> {
    match partition::type_guid(name_or_guid) {
        Some(guid) => Uuid::parse_str(guid).ok(),
        None => Uuid::parse_str(name_or_guid.trim()).ok(),
    }
}

/// Places the partitions of `spec` on a disk, and picks the disk size and
/// all GUIDs (see the [module documentation](self) for the rules).
pub fn layout(spec: &DiskSpec) -> Result<DiskLayout, DiskError> {
    let count = spec.partitions.len();
    if count > MAX_PARTITIONS as usize {
        return Err(DiskError::TooManyPartitions { count });
    }
    for (i, p) in spec.partitions.iter().enumerate() {
        check_label(&p.label)?;
        if p.type_guid.is_nil() {
            return Err(DiskError::NilType {
                label: p.label.clone(),
            });
        }
        if p.uuid.is_some_and(|u| u.is_nil()) {
            return Err(DiskError::NilGuid {
                what: format!("partition {:?}", p.label),
            });
        }
        if p.grow && i + 1 != count {
            return Err(DiskError::GrowNotLast {
                label: p.label.clone(),
            });
        }
        if p.grow && spec.size.is_none() {
            return Err(DiskError::GrowWithoutSize {
                label: p.label.clone(),
            });
        }
        if !p.grow && p.size == 0 {
            return Err(DiskError::EmptyPartition {
                label: p.label.clone(),
            });
        }
    }
    if spec.disk_guid.is_some_and(|u| u.is_nil()) {
        return Err(DiskError::NilGuid {
            what: "the disk".into(),
        });
    }
    // Where partitions must end at the latest, with a fixed size.
    let limit = match spec.size {
        Some(size) => {
            check_disk_size(size)?;
            Some(partition_limit(size))
        }
        None => None,
    };

    let mut placed = Vec::with_capacity(count);
    let mut cursor = ALIGNMENT;
    let mut seen: HashMap<&str, u32> = HashMap::new();
    for (i, p) in spec.partitions.iter().enumerate() {
        let too_large = || DiskError::TooLarge {
            label: p.label.clone(),
            size: p.size,
        };
        let size = round_up(p.size, ALIGNMENT).ok_or_else(too_large)?;
        let does_not_fit = |size: u64, limit: u64| DiskError::DoesNotFit {
            label: p.label.clone(),
            size,
            disk: spec.size.unwrap_or(0),
            limit,
            before: cursor,
        };
        let len = match (p.grow, limit) {
            (true, Some(limit)) => {
                let need = size.max(ALIGNMENT);
                if limit < cursor || limit - cursor < need {
                    return Err(does_not_fit(need, limit));
                }
                limit - cursor
            }
            (_, limit) => {
                let end = cursor.checked_add(size).ok_or_else(too_large)?;
                if let Some(limit) = limit {
                    if end > limit {
                        return Err(does_not_fit(size, limit));
                    }
                }
                size
            }
        };
        let occurrence = seen.entry(p.label.as_str()).or_insert(0);
        let uuid = p
            .uuid
            .unwrap_or_else(|| partition_guid(&spec.seed, &p.label, *occurrence));
        *occurrence += 1;
        placed.push(PlacedPartition {
            number: i as u32 + 1,
            label: p.label.clone(),
            type_guid: p.type_guid,
            uuid,
            region: Region {
                offset: cursor,
                len,
            },
            attributes: p.attributes,
        });
        cursor += len;
    }
    for (i, p) in placed.iter().enumerate() {
        if let Some(q) = placed[..i].iter().find(|q| q.uuid == p.uuid) {
            return Err(DiskError::DuplicateGuid {
                first: q.label.clone(),
                second: p.label.clone(),
                guid: p.uuid,
            });
        }
    }
    let size = match spec.size {
        Some(size) => size,
        None => cursor
            .checked_add(ALIGNMENT)
            .ok_or_else(|| DiskError::TooLarge {
                label: placed.last().map(|p| p.label.clone()).unwrap_or_default(),
                size: cursor,
            })?,
    };
    Ok(DiskLayout {
        size,
        disk_guid: spec.disk_guid.unwrap_or_else(|| disk_guid(&spec.seed)),
        partitions: placed,
    })
}

/// The derived disk GUID of `seed`.
fn disk_guid(seed: &[u8; 16]) -> Uuid {
    derive_guid(&[seed, b"disk"])
}

/// The derived GUID of the `occurrence`-th (0-based) partition labelled `label`.
fn partition_guid(seed: &[u8; 16], label: &str, occurrence: u32) -> Uuid {
    if occurrence == 0 {
        derive_guid(&[seed, b"partition", label.as_bytes()])
    } else {
        derive_guid(&[
            seed,
            b"partition",
            label.as_bytes(),
            b"\0",
            &occurrence.to_le_bytes(),
        ])
    }
}

/// The first 16 bytes of the SHA-256 of `parts`, as a version 4 UUID.
fn derive_guid(parts: &[&[u8]]) -> Uuid {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part);
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

fn check_label(label: &str) -> Result<(), DiskError> {
    let units = label.encode_utf16().count();
    if units > MAX_LABEL_UNITS {
        return Err(DiskError::LabelTooLong {
            label: label.into(),
            units,
        });
    }
    if label.contains('\0') {
        return Err(DiskError::LabelHasNul {
            label: label.into(),
        });
    }
    Ok(())
}

fn check_disk_size(size: u64) -> Result<(), DiskError> {
    if size % SECTOR_SIZE != 0 {
        return Err(DiskError::UnalignedDiskSize { size });
    }
    if size < MIN_DISK_SIZE {
        return Err(DiskError::DiskTooSmall {
            size,
            min: MIN_DISK_SIZE,
        });
    }
    Ok(())
}

/// The last usable LBA of a disk of `size` bytes (at least [`MIN_DISK_SIZE`]).
fn last_usable_lba(size: u64) -> u64 {
    size / SECTOR_SIZE - 2 - ARRAY_SECTORS
}

/// Where partitions must end on a disk of `size` bytes: the end of the last
/// usable LBA, rounded down to the alignment.
fn partition_limit(size: u64) -> u64 {
    (last_usable_lba(size) + 1) * SECTOR_SIZE / ALIGNMENT * ALIGNMENT
}

fn round_up(n: u64, to: u64) -> Option<u64> {
    Some(n.checked_add(to - 1)? / to * to)
}

/// Checks a layout the way [`layout`] makes them, except that partition
/// starts and sizes need only be whole sectors and numbers may have gaps.
fn check_layout(layout: &DiskLayout) -> Result<(), DiskError> {
    let invalid = |reason: String| DiskError::InvalidLayout { reason };
    check_disk_size(layout.size)?;
    if layout.partitions.len() > MAX_PARTITIONS as usize {
        return Err(DiskError::TooManyPartitions {
            count: layout.partitions.len(),
        });
    }
    if layout.disk_guid.is_nil() {
        return Err(DiskError::NilGuid {
            what: "the disk".into(),
        });
    }
    let first = FIRST_USABLE_LBA * SECTOR_SIZE;
    let end = (last_usable_lba(layout.size) + 1) * SECTOR_SIZE;
    let mut by_offset: Vec<&PlacedPartition> = layout.partitions.iter().collect();
    by_offset.sort_by_key(|p| p.region.offset);
    for (i, p) in by_offset.iter().enumerate() {
        check_label(&p.label)?;
        let name = format!("partition {} {:?}", p.number, p.label);
        if p.type_guid.is_nil() {
            return Err(DiskError::NilType {
                label: p.label.clone(),
            });
        }
        if p.uuid.is_nil() {
            return Err(DiskError::NilGuid { what: name });
        }
        if p.number == 0 || p.number > MAX_PARTITIONS {
            return Err(invalid(format!("{name}: numbers run from 1 to 128")));
        }
        let Region { offset, len } = p.region;
        if offset % SECTOR_SIZE != 0 || len % SECTOR_SIZE != 0 || len == 0 {
            return Err(invalid(format!(
                "{name}: {len} bytes at byte {offset} is not a non-empty run of whole sectors"
            )));
        }
        if offset < first || p.region.end() > end {
            return Err(invalid(format!(
                "{name}: bytes {offset}..{} lie outside the usable bytes {first}..{end}",
                p.region.end()
            )));
        }
        if let Some(next) = by_offset.get(i + 1) {
            if next.region.offset < p.region.end() {
                return Err(invalid(format!(
                    "{name} overlaps partition {} {:?}",
                    next.number, next.label
                )));
            }
        }
        if let Some(q) = by_offset[..i]
            .iter()
            .find(|q| q.number == p.number || q.uuid == p.uuid)
        {
            return Err(invalid(format!(
                "{name} has the number or GUID of partition {} {:?}",
                q.number, q.label
            )));
        }
    }
    Ok(())
}

/// The bytes of the GPT of `layout`: the protective MBR, primary header and
/// entry array (from byte 0) and the backup entry array and header (ending at
/// the end of the disk), as `(offset, bytes)` writes in ascending order, not
/// overlapping (adjacent writes are merged: two writes of 17 KiB and 16.5 KiB).
///
/// The unused entries are written too (as zeros), so writing these over an
/// old disk leaves no stale entries. The layout is checked first, so a hand-made
/// one cannot yield a corrupt table.
pub fn gpt_writes(layout: &DiskLayout) -> Result<Vec<(u64, Vec<u8>)>, DiskError> {
    check_layout(layout)?;
    let encode = |e: &dyn fmt::Display| DiskError::Encode {
        reason: e.to_string(),
    };
    let lb = LogicalBlockSize::Lb512;
    let mut dev = RecordingDevice::new(layout.size);

    let mut primary = HeaderBuilder::new()
        .disk_guid(layout.disk_guid)
        .backup_lba(layout.size / SECTOR_SIZE - 1)
        .first_usable(FIRST_USABLE_LBA)
        .num_parts(MAX_PARTITIONS)
        .part_size(ENTRY_SIZE)
        .primary(true)
        .build(lb)
        .map_err(|e| encode(&e))?;
    let mut backup = HeaderBuilder::from_header(&primary)
        .primary(false)
        .build(lb)
        .map_err(|e| encode(&e))?;
    debug_assert_eq!(primary.first_usable, FIRST_USABLE_LBA);
    debug_assert_eq!(primary.last_usable, last_usable_lba(layout.size));

    for array_lba in [primary.part_start, backup.part_start] {
        Partition::write_zero_entries_to_device(
            &mut dev,
            0,
            u64::from(MAX_PARTITIONS),
            array_lba,
            lb,
            ENTRY_SIZE,
        )
        .map_err(|e| encode(&e))?;
        for p in &layout.partitions {
            let entry = Partition {
                part_type_guid: Type {
                    guid: p.type_guid,
                    os: OperatingSystem::None,
                },
                part_guid: p.uuid,
                first_lba: p.region.offset / SECTOR_SIZE,
                last_lba: p.region.end() / SECTOR_SIZE - 1,
                flags: p.attributes,
                name: p.label.clone(),
            };
            entry
                .write_to_device(&mut dev, u64::from(p.number - 1), array_lba, lb, ENTRY_SIZE)
                .map_err(|e| encode(&e))?;
        }
    }
    // Each header checksums the entry array it points to, read back from `dev`.
    backup.write_backup(&mut dev, lb).map_err(|e| encode(&e))?;
    primary
        .write_primary(&mut dev, lb)
        .map_err(|e| encode(&e))?;
    let sectors = (layout.size / SECTOR_SIZE - 1).min(u64::from(u32::MAX)) as u32;
    ProtectiveMBR::with_lb_size(sectors)
        .overwrite_lba0(&mut dev)
        .map_err(|e| encode(&e))?;
    Ok(dev.into_writes())
}

/// A disk of a given length held as the runs written to it; reads zeros
/// elsewhere. What the `gpt` crate writes into.
struct RecordingDevice {
    len: u64,
    pos: u64,
    /// Non-overlapping, non-adjacent runs by start offset.
    runs: BTreeMap<u64, Vec<u8>>,
}

impl RecordingDevice {
    fn new(len: u64) -> RecordingDevice {
        RecordingDevice {
            len,
            pos: 0,
            runs: BTreeMap::new(),
        }
    }

    /// Records `data` at `at`, merging it with the runs it overlaps or touches.
    fn put(&mut self, at: u64, data: &[u8]) {
        let end = at + data.len() as u64;
        let touched: Vec<u64> = self
            .runs
            .range(..=end)
            .filter(|(&start, run)| start + run.len() as u64 >= at)
            .map(|(&start, _)| start)
            .collect();
        let mut start = at;
        let mut stop = end;
        let mut old = Vec::with_capacity(touched.len());
        for key in touched {
            let run = self.runs.remove(&key).expect("key just listed");
            start = start.min(key);
            stop = stop.max(key + run.len() as u64);
            old.push((key, run));
        }
        let mut merged = vec![0u8; (stop - start) as usize];
        for (key, run) in old {
            let from = (key - start) as usize;
            merged[from..from + run.len()].copy_from_slice(&run);
        }
        let from = (at - start) as usize;
        merged[from..from + data.len()].copy_from_slice(data);
        self.runs.insert(start, merged);
    }

    fn into_writes(self) -> Vec<(u64, Vec<u8>)> {
        self.runs.into_iter().collect()
    }
}

impl fmt::Debug for RecordingDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingDevice")
            .field("len", &self.len)
            .field("pos", &self.pos)
            .field("runs", &self.runs.len())
            .finish()
    }
}

impl Read for RecordingDevice {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(self.len - self.pos) as usize;
        let (start, end) = (self.pos, self.pos + n as u64);
        let buf = &mut buf[..n];
        buf.fill(0);
        for (&at, run) in self.runs.range(..end) {
            let run_end = at + run.len() as u64;
            if run_end <= start {
                continue;
            }
            let from = at.max(start);
            let to = run_end.min(end);
            buf[(from - start) as usize..(to - start) as usize]
                .copy_from_slice(&run[(from - at) as usize..(to - at) as usize]);
        }
        self.pos = end;
        Ok(n)
    }
}

impl Write for RecordingDevice {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let fits = self
            .pos
            .checked_add(buf.len() as u64)
            .is_some_and(|end| end <= self.len);
        if !fits {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "writing {} bytes at byte {} of a {}-byte disk",
                    buf.len(),
                    self.pos,
                    self.len
                ),
            ));
        }
        self.put(self.pos, buf);
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for RecordingDevice {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let (base, delta) = match to {
            SeekFrom::Start(n) => (n, 0),
            SeekFrom::End(d) => (self.len, d),
            SeekFrom::Current(d) => (self.pos, d),
        };
        let pos = base.checked_add_signed(delta).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start or overflow",
            )
        })?;
        self.pos = pos;
        Ok(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_device_merges_and_reads_back() {
        let mut dev = RecordingDevice::new(100);
        dev.seek(SeekFrom::Start(10)).unwrap();
        dev.write_all(&[1; 5]).unwrap();
        dev.seek(SeekFrom::Start(20)).unwrap();
        dev.write_all(&[2; 5]).unwrap();
        dev.seek(SeekFrom::Start(13)).unwrap();
        dev.write_all(&[3; 7]).unwrap(); // bridges both runs
        dev.seek(SeekFrom::Start(50)).unwrap();
        dev.write_all(&[4; 2]).unwrap();
        assert!(dev.seek(SeekFrom::Current(-100)).is_err());
        assert_eq!(dev.seek(SeekFrom::End(-2)).unwrap(), 98);
        assert!(dev.write_all(&[5; 3]).is_err());

        let mut buf = [9u8; 20];
        dev.seek(SeekFrom::Start(8)).unwrap();
        dev.read_exact(&mut buf).unwrap();
        let mut want = [0u8; 20];
        want[2..5].fill(1);
        want[5..12].fill(3);
        want[12..17].fill(2);
        assert_eq!(buf, want);
        dev.seek(SeekFrom::Start(99)).unwrap();
        assert_eq!(dev.read(&mut buf).unwrap(), 1);
        assert_eq!(dev.read(&mut buf).unwrap(), 0);

        let writes = dev.into_writes();
        assert_eq!(writes.len(), 2);
        assert_eq!(writes[0].0, 10);
        assert_eq!(writes[0].1, [1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2]);
        assert_eq!(writes[1], (50, vec![4, 4]));
    }

    #[test]
    fn derived_guids_look_random_and_differ() {
        let seed = [7u8; 16];
        let d = disk_guid(&seed);
        let a = partition_guid(&seed, "a", 0);
        let a1 = partition_guid(&seed, "a", 1);
        for g in [d, a, a1] {
            assert_eq!(g.get_version_num(), 4);
            assert_eq!(g.get_variant(), uuid::Variant::RFC4122);
        }
        assert_ne!(a, a1);
        assert_ne!(d, a);
        assert_eq!(a, partition_guid(&seed, "a", 0));
        assert_ne!(a, partition_guid(&[8u8; 16], "a", 0));
    }

    #[test]
    fn sizes_format_readably() {
        assert_eq!(fmt_size(1 << 30), "1 GiB");
        assert_eq!(fmt_size(300 << 20), "300 MiB");
        assert_eq!(fmt_size(17 << 10), "17 KiB");
        assert_eq!(fmt_size(1000), "1000 bytes");
    }

    #[test]
    fn limits() {
        assert_eq!(last_usable_lba(1 << 30), (1 << 21) - 34);
        assert_eq!(partition_limit(1 << 30), 1023 << 20);
        assert_eq!(partition_limit(MIN_DISK_SIZE), 1 << 20);
        assert_eq!(round_up(1, ALIGNMENT), Some(ALIGNMENT));
        assert_eq!(round_up(u64::MAX, ALIGNMENT), None);
    }
}
