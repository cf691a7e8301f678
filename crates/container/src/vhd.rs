//! VHD, fixed and dynamic (Microsoft's Virtual Hard Disk Image Format
//! Specification).

use std::fs::File;
use std::io::{self, Write};

use crate::{ContainerOptions, Encoder};

/// The fixed-VHD encoder into `out`.
pub(crate) fn fixed(
    options: &ContainerOptions,
    out: Box<dyn Write + Send>,
) -> io::Result<Box<dyn Encoder>> {
    let _ = (options, out);
    Err(io::Error::other("vhd: not built yet"))
}

/// The dynamic-VHD encoder into `out`.
pub(crate) fn dynamic(options: &ContainerOptions, out: File) -> io::Result<Box<dyn Encoder>> {
    let _ = (options, out);
    Err(io::Error::other("vhd-dynamic: not built yet"))
}
