//! The source-tree model of kiln and its readers.
//!
//! A [`Tree`] is what every source (today: host directories, read by
//! [`read_dir_tree`]) turns into, and what the image writer plans from. It is a
//! POSIX model, not an ext one: an arena of [`Node`]s (inodes) with metadata and
//! a [`Body`] (directory entries, file data source, symlink target, device
//! number); directory entries map raw-byte names to node ids, so hard links are
//! several entries naming one node. Several trees are layered with
//! [`Tree::overlay`], later sources winning.
//!
//! Place in the data flow: **sources → tree** → plan → emit → sink.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Vectors of one byte or block range are data here (a file that is one extent),
// not a mistaken `(0..n).collect()`.
#![allow(clippy::single_range_in_vec_init)]

mod base64;
mod data;
mod dir;
mod entries;
mod error;
mod escape;
mod exclude;
mod model;
mod policy;
mod sniff;
mod spec;
mod tar;

pub use data::{
    ArchiveData, DataError, DataReader, DataSource, Fingerprint, Freshness, HostPath, HostReader,
    ImageFile, ImageFiles, Inline, SourceImage, SparseData, Unchanged,
};
pub use dir::{read_dir_tree, read_dir_tree_with, OutputPlace, WalkOptions};
pub use entries::{Dir, Entries};
pub use error::TreeError;
pub use escape::{escape, Escaped};
pub use exclude::{Excludes, Pruning};
pub use kiln_host::HostTime as Timestamp;
pub use model::{
    split_parent, Body, DosAttributes, FileData, Metadata, Node, NodeId, Times, Tree, Xattr,
};
pub use policy::{IdMap, Policy};
pub use sniff::{Looks, SNIFF_LEN};
pub use spec::{
    civil_from_days, days_from_civil, parse_device_table, parse_file_contexts, FileContexts, Spec,
};
pub use tar::{read_tar, read_tar_from, TarOptions};
pub use thin_vec::ThinVec;
