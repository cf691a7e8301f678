//! GPT disk images: the one concern of this crate is the GUID Partition
//! Table around kiln's filesystems, written and read.
//!
//! [`layout`](layout::layout) places the partitions of a [`DiskSpec`] on a
//! disk (1 MiB alignment, the last partition growing, GUIDs derived from a
//! seed) and gives a [`DiskLayout`]; [`gpt_writes`] encodes its protective
//! MBR, primary and backup GPT as positioned writes, which the caller sends
//! to its sink around the partitions' filesystems. [`read_gpt`] and
//! [`find_partition`] read the table of a disk image back, to find the byte
//! [`Region`] of one partition (`IMAGE:PART` on the command line, split by
//! [`split_image_arg`]).
//!
//! Pure computation and reading: nothing here writes a file, and nothing
//! here knows ext or where bytes go (kiln-sink does). Tables are encoded and
//! parsed by the [`gpt`] crate; a table read from an image is checked first,
//! as hostile input.
//!
//! Place in the data flow: plan → emit → **disk** (a whole disk: GPT, then
//! each partition's filesystem through an offset sink) → sink.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod layout;
pub mod partition;

pub use layout::{
    gpt_writes, resolve_type, DiskError, DiskLayout, DiskSpec, PartitionSpec, PlacedPartition,
};
pub use partition::{
    find_partition, read_gpt, read_table, split_image_arg, type_guid, type_name, GptTable,
    PartitionError, PartitionInfo,
};

/// A byte range of a disk image that holds one partition (and the
/// filesystem in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Region {
    /// The byte offset of the first byte in the image.
    pub offset: u64,
    /// The length in bytes.
    pub len: u64,
}

impl Region {
    /// The byte offset just past the region (saturating).
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.len)
    }
}
