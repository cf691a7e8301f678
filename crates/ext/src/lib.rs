//! The ext2/ext3 image writer of kiln.
//!
//! [`BuildOptions::validate`] checks the options alone (before any source is
//! read, if the caller wants). [`plan`] (which validates first) turns a
//! [`kiln_tree::Tree`] and [`BuildOptions`] into a [`Plan`]:
//! the [`Geometry`] and every inode number and block address, computed
//! deterministically and without IO. [`emit`] then renders the plan into a
//! [`kiln_sink::Sink`] in one pass, copying file data in parallel.
//! [`derive_ids`] derives the UUID and hash seed from the inputs.
//! [`read_superblock`] decodes an image's superblock into a
//! [`SuperblockView`] (for `kiln info`), with the writer's offsets;
//! [`ImageReader`] reads inodes ([`InodeView`]) and xattrs with them too,
//! with the writer's group arithmetic ([`Geometry::from_superblock`]); a
//! corrupt image is a [`ReadError::Corrupt`] naming the structure.
//!
//! One module per on-disk structure: the superblock,
//! group descriptors, inodes, directory entries, extended attributes, block
//! maps, the journal superblock and the resize inode; `le` encodes fields.
//!
//! Place in the data flow: sources → tree → **plan → emit** → sink.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Vectors of one byte or block range are data here (a file that is one extent),
// not a mistaken `(0..n).collect()`.
#![allow(clippy::single_range_in_vec_init)]

mod alloc;
mod bitmap;
mod blockmap;
mod check;
mod checksum;
mod dir;
mod emit;
mod error;
mod extent;
mod features;
mod geometry;
mod group_desc;
mod htree;
mod ids;
mod inline;
mod inode;
mod journal;
mod layout;
mod le;
mod options;
mod orphan;
mod plan;
mod reader;
mod resize;
mod sizing;
mod source;
mod superblock;
mod usage;
mod xattr;

pub use check::{check_image, CheckReport, Problem};
pub use dir::DirEntryView;
pub use emit::emit;
pub use error::{
    EmitError, EmitReport, InodeAsk, IssueKind, PlanError, ReadError, SourceIssue, SourceIssues,
};
pub use features::{Features, FsType};
pub use geometry::Geometry;
pub use ids::derive_ids;
pub use inode::{mode, stored_time, InodeView};
pub use layout::{LINK_MAX, ROOT_INO};
pub use options::{AutoSize, BuildOptions, FreeSpace, HashAlg, RaidHints};
pub use plan::{plan, Plan, LOST_FOUND};
pub use reader::{FileMap, ImageReader, MappedRun, WalkEntry};
pub use source::{ImageSource, SourceError, Unkept};
pub use superblock::{read_superblock, SuperblockView};
pub use xattr::XattrPair;
