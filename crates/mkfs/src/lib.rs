//! mke2fs 1.47's interface on kiln: a `mke2fs` (or `mkfs.ext2/3/4`)
//! command line and mke2fs.conf resolved into a [`kiln_lib::BuildRequest`],
//! so that kiln can stand in for `mke2fs -d`.
//!
//! The data flow: [`Args::parse`] (getopt, as mke2fs's) → [`plan()`] (with a
//! [`Context`]: the program name, the [`conf::Profile`] from
//! [`conf::load`], the environment, the device's size) → a [`MkfsPlan`]
//! holding the build request and [`Note`]s; an option that would change
//! the image in a way kiln cannot is a [`MkfsError::Refused`]. The table
//! [`table::OPTIONS`] (and [`table::EXTENDED`]) lists every option with
//! its [`table::Status`].
//!
//! Place in the crate graph: above kiln-lib (whose request types and value
//! parsers it uses); the CLI runs the plan with `kiln_lib::build`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod args;
pub mod conf;
mod error;
mod features;
pub mod plan;
pub mod table;

#[cfg(test)]
mod compare;
#[cfg(test)]
mod test_tools;

pub use args::Args;
pub use error::MkfsError;
pub use plan::{plan, Context, Device, MkfsPlan, Note};
