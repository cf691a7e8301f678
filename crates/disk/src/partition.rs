//! Reading GPT partition tables of disk images.
//!
//! kiln writes filesystems; a disk image wraps them in a GUID Partition Table.
//! This module finds the byte [`Region`] of one partition so that a filesystem
//! can be read from (or, later, written into) a partitioned image:
//!
//! * [`read_gpt`] / [`read_table`] list the partitions of an image,
//! * [`find_partition`] picks one by number or label,
//! * [`split_image_arg`] splits a command-line `IMAGE[:PART]` argument,
//! * [`type_name`] / [`type_guid`] translate partition type GUIDs of the
//!   Discoverable Partitions Specification to short names and back.
//!
//! Tables are parsed by the [`gpt`] crate. Before handing the image to it,
//! this module checks the headers itself, for two reasons: to tell "no
//! partition table" (a bare filesystem) from "a broken one", and because the
//! `gpt` crate asserts (panics) on partition entries of a size other than 128
//! bytes and allocates the whole entry array at once; both are refused here
//! with an error instead.
//!
//! # Which images have a GPT
//!
//! An image has a GPT if its first sector holds a protective MBR (a partition
//! of type `0xEE`) or a GPT header signature (`EFI PART`) is at LBA 1, for
//! 512- or 4096-byte logical sectors. A backup header at the end of the image
//! alone does not count: it is what a filesystem written over a formerly
//! partitioned disk leaves behind.
//!
//! If the primary header is damaged (bad signature or checksum) but the backup
//! header at the last sector is intact, the table is read from the backup
//! header, as the `gpt` crate does; [`GptTable::from_backup`] tells so. If the
//! header used is intact but its partition entry array fails its checksum,
//! the table is reported corrupt (the backup entry array is not tried).

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use gpt::disk::LogicalBlockSize;

use crate::Region;

/// The size of one partition entry, the only one the `gpt` crate reads.
const ENTRY_SIZE: u32 = 128;

/// The most entry-array bytes accepted (128 Ki entries of 128 bytes); the
/// usual table has 128 entries (16 KiB).
const MAX_ENTRY_ARRAY: u64 = 16 << 20;

/// The bytes of a GPT header that its checksum covers (revision 1.0).
const HEADER_LEN: usize = 92;

/// The signature at the start of a GPT header.
const SIGNATURE: &[u8; 8] = b"EFI PART";

/// Why a partition table could not be read or a partition not found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PartitionError {
    /// Opening or reading the image failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The image.
        path: PathBuf,
        /// What the host said.
        #[source]
        source: io::Error,
    },
    /// The image has a GPT, but it cannot be read.
    #[error("{}: corrupt GPT partition table: {reason}", path.display())]
    Corrupt {
        /// The image.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A partition was asked for, but the image has no partition table.
    #[error("{}: no GPT partition table, so no partition {which:?}", path.display())]
    NoTable {
        /// The image.
        path: PathBuf,
        /// The partition asked for.
        which: String,
    },
    /// The image has no partition with the number or label asked for.
    #[error("{}: no partition {which:?} (partitions: {existing})", path.display())]
    NoSuchPartition {
        /// The image.
        path: PathBuf,
        /// The partition asked for.
        which: String,
        /// The partitions the table lists, as `1 "esp", 2 "root"` or `none`.
        existing: String,
    },
    /// Several partitions carry the label asked for.
    #[error(
        "{}: several partitions are labelled {label:?} (numbers {}); select one by number",
        path.display(),
        join_numbers(numbers)
    )]
    Ambiguous {
        /// The image.
        path: PathBuf,
        /// The label asked for.
        label: String,
        /// The numbers of the partitions carrying it.
        numbers: Vec<u32>,
    },
}

fn join_numbers(numbers: &[u32]) -> String {
    let strings: Vec<String> = numbers.iter().map(u32::to_string).collect();
    strings.join(", ")
}

/// One partition as a table lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The 1-based number, as sfdisk and sgdisk number partitions: the index
    /// of the entry in the entry array plus one. Unused entries keep their
    /// numbers, so numbers may have gaps.
    pub number: u32,
    /// The GPT partition name (empty if unnamed).
    pub label: String,
    /// The partition type GUID, as a lowercase hyphenated string.
    pub type_guid: String,
    /// The short name of the type (see [`type_name`]), if known.
    pub type_name: Option<&'static str>,
    /// The unique partition GUID, as a lowercase hyphenated string.
    pub uuid: String,
    /// Where the partition is in the image: from its first LBA to the end of
    /// its last LBA.
    pub region: Region,
    /// The 64 attribute bits (bit 0: required, 2: legacy BIOS bootable,
    /// 48–63: type-specific, e.g. 60 read-only, 63 no-auto).
    pub attributes: u64,
}

/// A GPT as read from an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptTable {
    /// The logical sector size the table was found with: 512 or 4096.
    pub sector_size: u64,
    /// The disk GUID, as a lowercase hyphenated string.
    pub disk_guid: String,
    /// Whether the primary header was damaged and the table was read from the
    /// backup header at the end of the image.
    pub from_backup: bool,
    /// The used entries, in entry order.
    pub partitions: Vec<PartitionInfo>,
}

/// Reads the GPT of the image at `path`, with partitions and table details.
///
/// Returns `Ok(None)` if the image has no GPT (see the [module
/// documentation](self) for what counts), and an error if reading fails or
/// the GPT present is corrupt. Never panics on bad input.
pub fn read_gpt(path: &Path) -> Result<Option<GptTable>, PartitionError> {
    let io_err = |source| PartitionError::Io {
        path: path.to_path_buf(),
        source,
    };
    let corrupt = |reason: String| PartitionError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = File::open(path).map_err(io_err)?;
    // Not `metadata().len()`: that is 0 for block devices.
    let image_len = file.seek(SeekFrom::End(0)).map_err(io_err)?;

    let mut mbr = [0u8; 512];
    let has_pmbr = read_at(&mut file, 0, &mut mbr).map_err(io_err)? && is_protective_mbr(&mbr);

    // The sector size: the first one with a header signature at LBA 1 ...
    let mut primaries = Vec::with_capacity(2);
    for lb in [512u64, 4096] {
        primaries.push((lb, probe_header(&mut file, lb).map_err(io_err)?));
    }
    let with_signature = primaries
        .iter()
        .find(|(_, probe)| !matches!(probe, Probe::Absent));
    if with_signature.is_none() && !has_pmbr {
        return Ok(None);
    }
    let chosen = match with_signature {
        Some(&(lb, ref primary)) => {
            let backup = probe_backup(&mut file, lb, image_len).map_err(io_err)?;
            Some((lb, primary.clone(), backup))
        }
        // ... else, behind a protective MBR, the first with an intact backup.
        None => {
            let mut found = None;
            for lb in [512u64, 4096] {
                let backup = probe_backup(&mut file, lb, image_len).map_err(io_err)?;
                if matches!(backup, Probe::Valid(_)) {
                    found = Some((lb, Probe::Absent, backup));
                    break;
                }
            }
            found
        }
    };
    let Some((lb, primary, backup)) = chosen else {
        return Err(corrupt(
            "protective MBR, but no GPT header at LBA 1 or the last sector".into(),
        ));
    };
    // The header the `gpt` crate will use: the primary if intact, else the backup.
    let (header, from_backup) = match (&primary, &backup) {
        (Probe::Valid(h), _) => (h, false),
        (_, Probe::Valid(h)) => (h, true),
        _ => {
            return Err(corrupt(format!(
                "primary GPT header {}, backup header {}",
                primary.describe(),
                backup.describe()
            )))
        }
    };
    check_header(header, lb, image_len).map_err(corrupt)?;

    let lb_size = if lb == 4096 {
        LogicalBlockSize::Lb4096
    } else {
        LogicalBlockSize::Lb512
    };
    let disk = gpt::GptConfig::new()
        .writable(false)
        .logical_block_size(lb_size)
        .open_from_device(file)
        .map_err(|e| match e {
            gpt::GptError::Io(e) | gpt::GptError::Header(gpt::header::HeaderError::Io(e))
                if !is_format_error(&e) =>
            {
                io_err(e)
            }
            e => corrupt(e.to_string()),
        })?;

    let mut partitions = Vec::new();
    for (&number, p) in disk.partitions() {
        if !p.is_used() {
            continue;
        }
        let region = lba_region(p.first_lba, p.last_lba, lb).ok_or_else(|| {
            corrupt(format!(
                "partition {number} spans LBAs {}..={}",
                p.first_lba, p.last_lba
            ))
        })?;
        let type_guid = p.part_type_guid.guid.to_string();
        partitions.push(PartitionInfo {
            number,
            label: p.name.clone(),
            type_name: type_name(&type_guid),
            type_guid,
            uuid: p.part_guid.to_string(),
            region,
            attributes: p.flags,
        });
    }
    Ok(Some(GptTable {
        sector_size: lb,
        disk_guid: disk.guid().to_string(),
        from_backup,
        partitions,
    }))
}

/// Reads the GPT of the image at `path`: its used partitions in entry order.
///
/// Returns `Ok(None)` if the image has no GPT (e.g. a bare filesystem), and
/// an error on IO errors or a GPT that is present but corrupt. Tables of 512-
/// and 4096-byte logical sectors are recognised. See [`read_gpt`].
pub fn read_table(path: &Path) -> Result<Option<Vec<PartitionInfo>>, PartitionError> {
    Ok(read_gpt(path)?.map(|table| table.partitions))
}

/// Picks a partition of the image at `path` by number (`"2"`) or by label
/// (`"root"`): a non-empty string of only ASCII digits is a number.
///
/// Labels match exactly (case-sensitively). Errors name the image and the
/// selector: [`PartitionError::NoTable`] if the image has no GPT,
/// [`PartitionError::NoSuchPartition`] (listing the partitions there are) or
/// [`PartitionError::Ambiguous`] if several partitions carry the label.
pub fn find_partition(path: &Path, which: &str) -> Result<PartitionInfo, PartitionError> {
    let Some(partitions) = read_table(path)? else {
        return Err(PartitionError::NoTable {
            path: path.to_path_buf(),
            which: which.to_string(),
        });
    };
    let is_number = !which.is_empty() && which.bytes().all(|b| b.is_ascii_digit());
    let mut matching: Vec<&PartitionInfo> = if is_number {
        // Too many digits for a u32 names no partition.
        let number = which.parse::<u32>().ok();
        partitions
            .iter()
            .filter(|p| Some(p.number) == number)
            .collect()
    } else if which.is_empty() {
        Vec::new()
    } else {
        partitions.iter().filter(|p| p.label == which).collect()
    };
    match matching.len() {
        1 => Ok(matching.remove(0).clone()),
        0 => Err(PartitionError::NoSuchPartition {
            path: path.to_path_buf(),
            which: which.to_string(),
            existing: describe_partitions(&partitions),
        }),
        _ => Err(PartitionError::Ambiguous {
            path: path.to_path_buf(),
            label: which.to_string(),
            numbers: matching.iter().map(|p| p.number).collect(),
        }),
    }
}

fn describe_partitions(partitions: &[PartitionInfo]) -> String {
    if partitions.is_empty() {
        return "none".into();
    }
    let mut s = String::new();
    for (i, p) in partitions.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{} {:?}", p.number, p.label);
    }
    s
}

/// Splits a command-line `IMAGE[:PART]` argument into the image path and the
/// partition selector.
///
/// If the whole argument names an existing file, it is the image, with no
/// partition (so file names containing `:` work). Otherwise it is split at the
/// last `:`; if the part before it exists, that is the image and the rest the
/// selector. Otherwise the whole argument is returned as the image, so that
/// opening it reports the missing file by its full name.
///
/// On Unix the argument is split as bytes (a selector that is not UTF-8 is
/// converted lossily); elsewhere it must be valid Unicode to be split. A
/// Windows drive letter (`C:\x.img`) is not split off: the whole argument
/// exists, or splitting at the last colon leaves `C`, which does not.
pub fn split_image_arg(arg: &OsStr) -> (PathBuf, Option<String>) {
    let whole = PathBuf::from(arg);
    if whole.exists() {
        return (whole, None);
    }
    match split_last_colon(arg) {
        Some((image, part)) if !image.as_os_str().is_empty() && image.exists() => {
            (image, Some(part))
        }
        _ => (whole, None),
    }
}

#[cfg(unix)]
fn split_last_colon(arg: &OsStr) -> Option<(PathBuf, String)> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = arg.as_bytes();
    let colon = bytes.iter().rposition(|&b| b == b':')?;
    let image = PathBuf::from(OsStr::from_bytes(&bytes[..colon]));
    let part = String::from_utf8_lossy(&bytes[colon + 1..]).into_owned();
    Some((image, part))
}

#[cfg(not(unix))]
fn split_last_colon(arg: &OsStr) -> Option<(PathBuf, String)> {
    let s = arg.to_str()?;
    let colon = s.rfind(':')?;
    Some((PathBuf::from(&s[..colon]), s[colon + 1..].to_string()))
}

/// Partition type GUIDs (lowercase) and their short names: those of the
/// Discoverable Partitions Specification (as `systemd-repart` names them),
/// plus BIOS boot. Checked against the specification's table.
const TYPES: &[(&str, &str)] = &[
    ("esp", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"),
    ("xbootldr", "bc13c2ff-59e6-4262-a352-b275fd6f7172"),
    ("linux-generic", "0fc63daf-8483-4772-8e79-3d69d8477de4"),
    ("swap", "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"),
    ("home", "933ac7e1-2eb4-4f13-b844-0e14e2aef915"),
    ("srv", "3b8f8425-20e0-4f3b-907f-1a25a76f98e8"),
    ("var", "4d21b016-b534-45c2-a9fb-5c16e091fd2d"),
    ("tmp", "7ec6f557-3bc5-4aca-b293-16ef5df639d1"),
    ("root-x86", "44479540-f297-41b2-9af7-d131d5f0458a"),
    ("root-x86-64", "4f68bce3-e8cd-4db1-96e7-fbcaf984b709"),
    ("root-arm", "69dad710-2ce4-4e3c-b16c-21a1d49abed3"),
    ("root-arm64", "b921b045-1df0-41c3-af44-4c6f280d3fae"),
    ("root-riscv64", "72ec70a6-cf74-40e6-bd49-4bda08e8f224"),
    ("usr-x86-64", "8484680c-9521-48c6-9c11-b0720656f69e"),
    ("usr-arm64", "b0e01050-ee5f-4390-949a-9101b17104e9"),
    // The dm-verity hash partitions of the roots and /usr above.
    ("root-x86-verity", "d13c5d3b-b5d1-422a-b29f-9454fdc89d76"),
    ("root-x86-64-verity", "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5"),
    ("root-arm-verity", "7386cdf2-203c-47a9-a498-f2ecce45a2d6"),
    ("root-arm64-verity", "df3300ce-d69f-4c92-978c-9bfb0f38d820"),
    (
        "root-riscv64-verity",
        "b6ed5582-440b-4209-b8da-5ff7c419ea3d",
    ),
    ("usr-x86-64-verity", "77ff5f63-e7b6-4633-acf4-1565b864c0e6"),
    ("usr-arm64-verity", "6e11a4e7-fbca-4ded-b9e9-e1a512bb664e"),
    ("bios-boot", "21686148-6449-6e6f-744e-656564454649"),
];

/// The short name of a partition type GUID, e.g. `"esp"` or `"root-x86-64"`.
///
/// `guid` is a hyphenated GUID string in either case, optionally in braces.
/// Returns `None` for types not in the table.
pub fn type_name(guid: &str) -> Option<&'static str> {
    let guid = guid.trim();
    let guid = guid
        .strip_prefix('{')
        .and_then(|g| g.strip_suffix('}'))
        .unwrap_or(guid);
    TYPES
        .iter()
        .find(|(_, g)| g.eq_ignore_ascii_case(guid))
        .map(|&(name, _)| name)
}

/// The partition type GUID (lowercase, hyphenated) of a short name such as
/// `"esp"` or `"root-x86-64"`; the reverse of [`type_name`]. Names match
/// case-insensitively.
pub fn type_guid(name: &str) -> Option<&'static str> {
    TYPES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
        .map(|&(_, guid)| guid)
}

/// The fields of a GPT header this module checks before the `gpt` crate reads it.
#[derive(Debug, Clone)]
struct RawHeader {
    part_start: u64,
    num_parts: u32,
    part_size: u32,
}

/// What is at a GPT header location.
#[derive(Debug, Clone)]
enum Probe {
    /// No `EFI PART` signature (or the image ends first).
    Absent,
    /// The signature, but the header checksum does not match.
    BadChecksum,
    /// An intact header.
    Valid(RawHeader),
}

impl Probe {
    fn describe(&self) -> &'static str {
        match self {
            Probe::Absent => "missing",
            Probe::BadChecksum => "has a bad checksum",
            Probe::Valid(_) => "intact",
        }
    }
}

/// Reads the header at byte `offset` the way the `gpt` crate does:
/// the signature, then the CRC32 of the first 92 bytes with the CRC field zero.
fn probe_header(file: &mut File, offset: u64) -> io::Result<Probe> {
    let mut buf = [0u8; HEADER_LEN];
    if !read_at(file, offset, &mut buf)? || &buf[..8] != SIGNATURE {
        return Ok(Probe::Absent);
    }
    let stored = le32(&buf, 16);
    buf[16..20].fill(0);
    if crc32fast::hash(&buf) != stored {
        return Ok(Probe::BadChecksum);
    }
    Ok(Probe::Valid(RawHeader {
        part_start: le64(&buf, 72),
        num_parts: le32(&buf, 80),
        part_size: le32(&buf, 84),
    }))
}

/// Probes the backup header where the `gpt` crate looks for it: the last
/// whole sector of the image, if the image has at least three sectors.
fn probe_backup(file: &mut File, lb: u64, image_len: u64) -> io::Result<Probe> {
    if image_len < lb * 3 {
        return Ok(Probe::Absent);
    }
    let last_lba = (image_len - lb) / lb;
    probe_header(file, last_lba * lb)
}

/// Refuses headers the `gpt` crate would panic on or read unreasonably.
fn check_header(h: &RawHeader, lb: u64, image_len: u64) -> Result<(), String> {
    if h.part_size != ENTRY_SIZE {
        return Err(format!(
            "partition entries of {} bytes are not supported (only {ENTRY_SIZE})",
            h.part_size
        ));
    }
    let array_len = u64::from(h.num_parts) * u64::from(h.part_size);
    if array_len > MAX_ENTRY_ARRAY {
        return Err(format!("implausible partition entry count {}", h.num_parts));
    }
    let fits = h
        .part_start
        .checked_mul(lb)
        .and_then(|start| start.checked_add(array_len))
        .is_some_and(|end| end <= image_len);
    if !fits {
        return Err(format!(
            "partition entry array at LBA {} ({} entries) lies beyond the end of the image",
            h.part_start, h.num_parts
        ));
    }
    Ok(())
}

/// The byte region of LBAs `first..=last`, or `None` if it is empty or overflows.
fn lba_region(first: u64, last: u64, lb: u64) -> Option<Region> {
    let sectors = last.checked_sub(first)?.checked_add(1)?;
    Some(Region {
        offset: first.checked_mul(lb)?,
        len: sectors.checked_mul(lb)?,
    })
}

/// Whether an MBR sector protects a GPT: boot signature and a partition of type 0xEE.
fn is_protective_mbr(sector: &[u8; 512]) -> bool {
    sector[510] == 0x55 && sector[511] == 0xAA && (0..4).any(|i| sector[446 + 16 * i + 4] == 0xEE)
}

/// Errors of the `gpt` crate that stand for bad table contents, not the host.
fn is_format_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Other | io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData
    )
}

/// Fills `buf` from byte `offset`; `Ok(false)` if the image ends first.
fn read_at(file: &mut File, offset: u64, buf: &mut [u8]) -> io::Result<bool> {
    file.seek(SeekFrom::Start(offset))?;
    match file.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

fn le32(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

fn le64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_reference() {
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn type_names_round_trip() {
        for &(name, guid) in TYPES {
            assert_eq!(type_name(guid), Some(name));
            assert_eq!(type_name(&guid.to_uppercase()), Some(name));
            assert_eq!(type_guid(name), Some(guid));
        }
        assert_eq!(
            type_name("{C12A7328-F81F-11D2-BA4B-00A0C93EC93B}"),
            Some("esp")
        );
        assert_eq!(type_name("00000000-0000-0000-0000-000000000000"), None);
        assert_eq!(type_guid("no-such-type"), None);
    }

    #[test]
    fn lba_region_rejects_inverted_and_overflowing_spans() {
        assert_eq!(lba_region(5, 4, 512), None);
        assert_eq!(lba_region(u64::MAX, u64::MAX, 512), None);
        assert_eq!(
            lba_region(2048, 2048 + 8191, 512),
            Some(Region {
                offset: 1 << 20,
                len: 4 << 20
            })
        );
    }
}
