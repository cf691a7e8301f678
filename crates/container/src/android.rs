//! Android sparse images (AOSP libsparse's sparse_format.h).

use std::fs::File;
use std::io;

use crate::{ContainerOptions, Encoder};

/// The Android sparse encoder into `out`.
pub(crate) fn encoder(options: &ContainerOptions, out: File) -> io::Result<Box<dyn Encoder>> {
    let _ = (options, out);
    Err(io::Error::other("android-sparse: not built yet"))
}
