//! [`BlockDevice`]: an image written straight onto an existing block device.
//!
//! Unlike a [`SparseFile`](crate::SparseFile), a device holds old bytes, so
//! every byte of the image is written, zeros included, and the ranges the
//! emitter leaves unwritten are zeroed through [`Sink::zero`]. The device is
//! written in place: there is no temporary copy to rename, and a failed build
//! leaves a partly written device.
//!
//! Only block devices are accepted (following symlinks such as
//! `/dev/disk/by-id/…`): a regular file is better served by `SparseFile`,
//! which keeps it sparse and replaces it atomically. Hosts without block
//! device files (Windows) therefore refuse every path.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::{io_error, write_error, Sink, SinkError};

/// The largest zero write of [`BlockDevice::zero`].
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

/// An existing block device, written in place.
#[derive(Debug)]
pub struct BlockDevice {
    file: File,
    path: PathBuf,
    size: u64,
    device_size: u64,
    /// Where the image starts on the device or in the file.
    base: u64,
}

impl BlockDevice {
    /// Opens the existing file at `path` to write an image of `size` bytes
    /// in place at byte `offset` (`--offset`: a filesystem inside a disk
    /// image made by other tools). The file must already extend past the
    /// image, unless `grow`: then a missing file is created and a short one
    /// extended (as mke2fs treats its device file). Bytes outside the image
    /// are left alone. Like a device, the file may hold old bytes, so
    /// everything is written, zeros included.
    pub fn open_file_at(
        path: &Path,
        offset: u64,
        size: u64,
        grow: bool,
    ) -> Result<BlockDevice, SinkError> {
        let io_err = |what, source| io_error(path, what, source);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(grow)
            .truncate(false)
            .open(path)
            .map_err(|e| io_err("opening the file", e))?;
        let mut len = file
            .metadata()
            .map_err(|e| io_err("reading the file size", e))?
            .len();
        let end = offset.saturating_add(size);
        if len < end && grow {
            file.set_len(end)
                .map_err(|e| io_err("extending the file", e))?;
            len = end;
        }
        if len < end {
            return Err(io_err(
                "checking the file size",
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the file has {len} bytes, the image needs {size} bytes from offset {offset}"),
                ),
            ));
        }
        Ok(BlockDevice {
            file,
            path: path.into(),
            size,
            device_size: len - offset,
            base: offset,
        })
    }

    /// Opens the block device at `path` to write an image of `size` bytes.
    ///
    /// Refuses a path that is not a block device, a device smaller than
    /// `size`, and a device that is mounted (or one of its partitions is, or
    /// it is swap). On Linux the device stays claimed exclusively while open.
    pub fn open(path: &Path, size: u64) -> Result<BlockDevice, SinkError> {
        let io_err = |what, source| io_error(path, what, source);
        let refuse = |what, kind, msg: String| io_err(what, io::Error::new(kind, msg));
        let real = std::fs::canonicalize(path).map_err(|e| io_err("opening the device", e))?;
        let meta = kiln_host::lstat(&real).map_err(|e| io_err("opening the device", e))?;
        if meta.file_type != kiln_host::HostFileType::BlockDevice {
            return Err(refuse(
                "opening the device",
                io::ErrorKind::InvalidInput,
                "not a block device".into(),
            ));
        }
        let mounts = kiln_host::device_mounts(&real).map_err(|e| io_err("checking mounts", e))?;
        if let Some((dev, point)) = mounts.first() {
            return Err(refuse(
                "checking mounts",
                io::ErrorKind::ResourceBusy,
                format!("{} is mounted at {}", dev.display(), point.display()),
            ));
        }
        let mut file = kiln_host::open_device(&real).map_err(|e| {
            if e.kind() == io::ErrorKind::ResourceBusy {
                refuse(
                    "opening the device",
                    io::ErrorKind::ResourceBusy,
                    format!("{e} (mounted or in use by another program)"),
                )
            } else {
                io_err("opening the device", e)
            }
        })?;
        let device_size = file
            .seek(SeekFrom::End(0))
            .map_err(|e| io_err("reading the device size", e))?;
        if device_size < size {
            return Err(refuse(
                "checking the device size",
                io::ErrorKind::InvalidInput,
                format!("the device has {device_size} bytes, the image needs {size}"),
            ));
        }
        Ok(BlockDevice {
            file,
            path: path.into(),
            size,
            device_size,
            base: 0,
        })
    }

    /// The size of the device in bytes (at least the image size).
    pub fn device_size(&self) -> u64 {
        self.device_size
    }

    /// Flushes everything written to the device (fsync).
    pub fn finish(self) -> Result<(), SinkError> {
        self.file
            .sync_all()
            .map_err(|e| io_error(&self.path, "flushing", e))
    }

    fn check_range(&self, offset: u64, len: u64) -> Result<(), SinkError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => {
                let msg = format!(
                    "{len} bytes run past the end of the {}-byte image",
                    self.size
                );
                let source = io::Error::new(io::ErrorKind::InvalidInput, msg);
                Err(write_error(&self.path, "writing", offset, source))
            }
        }
    }

    fn write(&self, offset: u64, buf: &[u8]) -> Result<(), SinkError> {
        kiln_host::write_at(&self.file, buf, self.base + offset)
            .map_err(|e| write_error(&self.path, "writing", offset, e))
    }
}

impl Sink for BlockDevice {
    /// Writes all of `buf`, zeros included: the device may hold old data.
    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), SinkError> {
        self.check_range(offset, buf.len() as u64)?;
        self.write(offset, buf)
    }

    /// Every write is written whole: [`Sink::rewrite_at`] is `write_at`.
    fn rewrites(&self) -> bool {
        true
    }

    /// Writes zeros over `range`, a bounded buffer at a time.
    fn zero(&self, range: Range<u64>) -> Result<(), SinkError> {
        if range.is_empty() {
            return Ok(());
        }
        self.check_range(range.start, range.end - range.start)?;
        let mut at = range.start;
        while at < range.end {
            let n = (range.end - at).min(ZEROS.len() as u64) as usize;
            self.write(at, &ZEROS[..n])?;
            at += n as u64;
        }
        Ok(())
    }
}
