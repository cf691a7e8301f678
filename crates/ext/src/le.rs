//! Explicit little-endian field access at byte offsets.
//!
//! Every on-disk structure is encoded by writing each field at its kernel
//! offset with these helpers (and decoded, by `ImageReader`, by reading them);
//! no struct is ever cast to bytes.
//!
//! All functions panic if the field does not fit in `buf`: the offsets are
//! constants of the format, so that is a bug in kiln, never bad input.

/// Writes `v` at `off` as a little-endian u16.
#[track_caller]
pub(crate) fn put_u16(buf: &mut [u8], off: usize, v: u16) {
    buf[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

/// Writes `v` at `off` as a little-endian u32.
#[track_caller]
pub(crate) fn put_u32(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Writes `v` at `off` as a big-endian u32 (the journal is big-endian).
#[track_caller]
pub(crate) fn put_be32(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

/// Reads a little-endian u16 at `off`.
#[track_caller]
pub(crate) fn get_u16(buf: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([buf[off], buf[off + 1]])
}

/// Reads a little-endian u32 at `off`.
#[track_caller]
pub(crate) fn get_u32(buf: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut b = [0u8; 8];
        put_u16(&mut b, 0, 0xEF53);
        put_u32(&mut b, 2, 0x1234_5678);
        assert_eq!(b[..2], [0x53, 0xEF]);
        assert_eq!(get_u16(&b, 0), 0xEF53);
        assert_eq!(get_u32(&b, 2), 0x1234_5678);
        put_be32(&mut b, 4, 0xC03B_3998);
        assert_eq!(b[4..8], [0xC0, 0x3B, 0x39, 0x98]);
    }
}
