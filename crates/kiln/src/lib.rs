//! kiln as a library: filesystem images (ext2/ext3/ext4, FAT) and whole GPT
//! disk images built from directories, tar archives and spec files, without
//! root; and the way back (verify an image against its sources, extract
//! its tree).
//!
//! Each operation takes a typed request and returns a report:
//!
//! - [`build`]: a [`BuildRequest`] (a [`TreeRequest`], an [`FsRequest`], an
//!   [`OutputRequest`], optionally a [`VerityRequest`]) → a filesystem
//!   image (and its dm-verity hash tree) and its [`BuildReport`];
//! - [`build_disk`]: a [`DiskRequest`] (a [`Layout`] made in code or loaded
//!   from a layout file) → a disk image;
//! - [`verify`]: a [`VerifyRequest`] → a [`VerifyReport`];
//! - [`extract`]: an [`ExtractRequest`] → the tree in a new directory.
//!
//! Every option is checked before any source is read. The library prints
//! nothing: notes, warnings and the phase of a build go to an
//! [`Observer`]. Errors are [`anyhow::Error`]s whose messages name the
//! path and the cause; the typed errors of the crates below
//! ([`kiln_ext::PlanError`], [`kiln_tree::TreeError`], ...) can be
//! downcast from them.
//!
//! ```no_run
//! use kiln_lib::{build, BuildRequest, FsRequest, Layer, OutputRequest, Quiet, TreeRequest};
//! use kiln_lib::kiln_ext::FsType;
//!
//! let request = BuildRequest {
//!     tree: TreeRequest {
//!         layers: vec![Layer::Source("rootfs".into())],
//!         all_root: true,
//!         ..TreeRequest::default()
//!     },
//!     fs: FsRequest::new(FsType::Ext4),
//!     output: OutputRequest::file("root.img"),
//!     verity: None,
//! };
//! let report = build(&request, &Quiet)?;
//! println!("{} bytes", report.disk.size);
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! Place in the crate graph: the facade over kiln-tree (sources → tree),
//! kiln-ext (plan, emit, read), kiln-fat (plan, emit), kiln-sink (outputs) and kiln-extract;
//! `kiln` (the CLI) maps flags to these requests and prints the reports.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod build;
mod disk;
mod extract;
mod fs;
mod image;
pub mod layout;
mod observer;
mod output;
mod progress;
mod report;
mod request;
mod threads;
mod tree;
mod utc;
pub mod values;
mod verify;
mod verity;

pub use build::build;
pub use disk::{build_disk, DiskRequest};
pub use extract::{extract, ExtractRequest};
pub use image::{FsKind, Image};
pub use kiln_container::ImageFormat;
pub use layout::Layout;
pub use observer::{Observer, Quiet};
pub use progress::{Phase, Progress};
pub use report::{BuildReport, DiskReport, FsReport, PartitionReport, PartitionVerity};
pub use request::{
    BuildRequest, Compress, ExtRequest, FatRequest, Format, FsOptions, FsRequest, HashPlace, Layer,
    OutputRequest, SizeRequest, TreeRequest, VerityRequest,
};
pub use threads::size_thread_pool;
pub use utc::utc;
pub use verify::{verify, VerifyReport, VerifyRequest};
pub use verity::VerityReport;

/// The crates below, for their types (`FsType`, `IdMap`, `Durability`, ...).
pub use {kiln_ext, kiln_fat, kiln_sink, kiln_tree, kiln_verity};
