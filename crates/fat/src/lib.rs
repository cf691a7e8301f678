//! FAT12, FAT16 and FAT32 images (with VFAT long names) from a kiln
//! source tree, written by kiln itself.
//!
//! [`plan`] turns a finished [`kiln_tree::Tree`] and [`FatOptions`] into a
//! [`FatPlan`]: the [`Geometry`] (variant, cluster size, FAT size; chosen
//! from the volume's size as mkfs.fat chooses, or given), every
//! directory's entries (long names with their 8.3 aliases) and every
//! cluster chain. It reads no file. [`emit`] then writes the image through
//! a [`kiln_sink::Sink`] in one forward pass, in ascending offsets, never
//! going back (streaming sinks work) and leaving all-zero clusters of file
//! data unwritten (sparse).
//!
//! Place in the data flow: sources → tree → **plan → emit** → sink, beside
//! the ext writer (kiln-ext).
//!
//! The read side is [`FatReader`] ([`read`]): a FAT12/16/32 image (or a
//! partition, by offset and length) opened with its boot sector checked
//! ([`Volume`]), directories decoded with their long names ([`DirEntry`]),
//! lookups, a walk ([`WalkEntry`]), files read through their chains
//! ([`FileMap`]), and a consistency check. It decodes with the writer's own
//! offsets and treats every image as hostile: a malformed one is a
//! [`ReadError::Corrupt`]. [`probe`] tells a FAT boot sector from other
//! bytes; [`stored_mtime`] is what the writer makes of a modification time.
//! [`FatSource`] makes an image a build source: its tree read into a
//! [`kiln_tree::Tree`], its files' bytes read from the image at emit time.
//!
//! What FAT cannot hold is refused with an error naming the image path
//! ([`FatError`]): names with `" * : < > ? \ |` or control characters,
//! ending in a dot or a space, longer than 255 UTF-16 units, two names of
//! one directory equal but for case, symlinks, devices, fifos, sockets,
//! hard links (FAT has none; kiln does not silently store two copies),
//! files of 4 GiB or more, directories of more than 65,536 entries.
//!
//! What FAT does not keep is dropped: owners and permission bits (a file
//! whose owner may not write it is marked read-only), xattrs. Times are
//! written as UTC, clamped to 1980-01-01 to 2107-12-31, floored to FAT's
//! resolution (2 s for the modification time, 10 ms for the creation
//! time, the day for the access time).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod boot;
mod dirent;
mod emit;
mod error;
mod geometry;
mod le;
mod name;
mod plan;
pub mod read;
mod table;
mod time;

pub use emit::{emit, FatReport};
pub use error::{FatError, ReadError};
pub use geometry::Geometry;
pub use plan::{plan, FatPlan};
pub use read::{probe, DirEntry, FatReader, FatSource, FileMap, Volume, WalkEntry};
pub use time::stored_mtime;

/// The three FAT variants, by the width of a FAT entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FatVariant {
    /// 12-bit entries: fewer than 4,085 clusters (floppies, tiny volumes).
    Fat12,
    /// 16-bit entries: 4,085 to 65,524 clusters.
    Fat16,
    /// 28-bit entries: 65,525 clusters or more; the root directory is a
    /// cluster chain.
    Fat32,
}

impl std::fmt::Display for FatVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FatVariant::Fat12 => "FAT12",
            FatVariant::Fat16 => "FAT16",
            FatVariant::Fat32 => "FAT32",
        })
    }
}

/// What the caller decides about the volume; `None` and empty mean "as
/// kiln chooses".
#[derive(Clone, Debug, Default)]
pub struct FatOptions {
    /// The variant; by default chosen from the size as mkfs.fat does
    /// (FAT32 from 512 MiB up).
    pub variant: Option<FatVariant>,
    /// The volume's size in bytes (a multiple of 512); by default the
    /// smallest whole MiB the tree fits with about 10 % to spare.
    pub size: Option<u64>,
    /// The volume label: up to 11 ASCII characters that a short name may
    /// hold, or spaces; upper-cased as Windows does. None: `NO NAME`.
    pub label: Option<String>,
    /// The volume serial number; by default derived from a SHA-256 of the
    /// planned metadata (names, sizes, times, layout), so that the same
    /// tree gives the same id on every host.
    pub volume_id: Option<u32>,
    /// Bytes per cluster: a power of two from 512 to 65,536.
    pub cluster_size: Option<u32>,
    /// Sectors on the disk before the volume (`BPB_HiddSec`): the
    /// partition's first LBA in a disk image, 0 for a bare image.
    pub hidden_sectors: u32,
}

impl FatOptions {
    /// Checks what can be checked before a tree is read: the label's
    /// characters, the cluster size and the size's alignment (whether the
    /// tree fits, and the variant the size allows, are [`plan`]'s).
    pub fn validate(&self) -> Result<(), FatError> {
        plan::checked(self).map(|_| ())
    }
}
