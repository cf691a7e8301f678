//! VMDK streamOptimized (VMware's Virtual Disk Format 5.0).

use std::io::{self, Write};

use crate::{ContainerOptions, Encoder};

/// The VMDK streamOptimized encoder into `out`.
pub(crate) fn encoder(
    options: &ContainerOptions,
    out: Box<dyn Write + Send>,
) -> io::Result<Box<dyn Encoder>> {
    let _ = (options, out);
    Err(io::Error::other("vmdk: not built yet"))
}
