//! Fields written at their offsets with an explicit byte order: qcow2 and
//! VHD are big-endian, VMDK little-endian. (Test builds also get the
//! readers, and a writer whose bytes a test keeps.)

/// Writes `v` big-endian at `buf[off..off + 2]`.
///
/// # Panics
/// If the field does not lie inside `buf`.
#[track_caller]
pub(crate) fn put_be16(buf: &mut [u8], off: usize, v: u16) {
    buf[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

/// Writes `v` big-endian at `buf[off..off + 4]`.
///
/// # Panics
/// If the field does not lie inside `buf`.
#[track_caller]
pub(crate) fn put_be32(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

/// Writes `v` big-endian at `buf[off..off + 8]`.
///
/// # Panics
/// If the field does not lie inside `buf`.
#[track_caller]
pub(crate) fn put_be64(buf: &mut [u8], off: usize, v: u64) {
    buf[off..off + 8].copy_from_slice(&v.to_be_bytes());
}

/// Writes `v` little-endian at `buf[off..off + 4]`.
///
/// # Panics
/// If the field does not lie inside `buf`.
#[track_caller]
pub(crate) fn put_le32(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Writes `v` little-endian at `buf[off..off + 8]`.
///
/// # Panics
/// If the field does not lie inside `buf`.
#[track_caller]
pub(crate) fn put_le64(buf: &mut [u8], off: usize, v: u64) {
    buf[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
pub(crate) use readers::*;

#[cfg(test)]
mod readers {
    use std::io::{self, Write};
    use std::sync::{Arc, Mutex};

    /// The big-endian u32 at `off`.
    pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
        u32::from_be_bytes(b[off..off + 4].try_into().unwrap())
    }

    /// The big-endian u64 at `off`.
    pub(crate) fn be64(b: &[u8], off: usize) -> u64 {
        u64::from_be_bytes(b[off..off + 8].try_into().unwrap())
    }

    /// The little-endian u32 at `off`.
    pub(crate) fn le32(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
    }

    /// The little-endian u64 at `off`.
    pub(crate) fn le64(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
    }

    /// A writer whose bytes the test keeps (clones share them).
    #[derive(Clone, Default)]
    pub(crate) struct Shared(pub(crate) Arc<Mutex<Vec<u8>>>);

    impl Shared {
        /// Everything written so far.
        pub(crate) fn bytes(&self) -> Vec<u8> {
            self.0.lock().unwrap().clone()
        }
    }

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}
