//! Little-endian fields at fixed offsets of on-disk structures.

/// Writes `v` at `buf[off..off + 2]`.
///
/// # Panics
/// If the field does not fit in `buf`.
#[track_caller]
pub(crate) fn put_u16(buf: &mut [u8], off: usize, v: u16) {
    buf[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

/// Writes `v` at `buf[off..off + 4]`.
///
/// # Panics
/// If the field does not fit in `buf`.
#[track_caller]
pub(crate) fn put_u32(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Reads the `u16` at `buf[off..off + 2]`.
///
/// # Panics
/// If the field is not within `buf`.
#[track_caller]
pub(crate) fn get_u16(buf: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([buf[off], buf[off + 1]])
}

/// Reads the `u32` at `buf[off..off + 4]`.
///
/// # Panics
/// If the field is not within `buf`.
#[track_caller]
pub(crate) fn get_u32(buf: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]])
}
