//! The CRC32C checksums of metadata_csum.
//!
//! ext4 uses CRC32C (Castagnoli) without the final inversion, chained: the
//! filesystem seed is the CRC of the UUID starting from `!0`, per-inode seeds
//! extend it with the inode number and generation, and each structure's
//! checksum extends a seed with the structure's bytes (see the kernel's
//! `Documentation/filesystems/ext4/checksums.rst`).

/// Continues a raw (kernel-style, uninverted) CRC32C over `data`.
pub(crate) fn crc32c(crc: u32, data: &[u8]) -> u32 {
    // The crate computes the standard CRC-32C, inverted before and after.
    !crc32c::crc32c_append(!crc, data)
}

/// The filesystem's checksum seed: the CRC of its UUID.
pub(crate) fn fs_seed(uuid: &[u8; 16]) -> u32 {
    crc32c(!0, uuid)
}

/// The seed of inode `ino` with generation `generation`, for the inode's own
/// checksum and those of the blocks it owns (extent, directory blocks).
pub(crate) fn inode_seed(fs_seed: u32, ino: u32, generation: u32) -> u32 {
    crc32c(
        crc32c(fs_seed, &ino.to_le_bytes()),
        &generation.to_le_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_check_value() {
        // CRC-32C of "123456789" is 0xE3069283 (with the usual inversions).
        assert_eq!(!crc32c(!0, b"123456789"), 0xE306_9283);
    }

    #[test]
    fn chains() {
        let whole = crc32c(!0, b"hello world");
        assert_eq!(crc32c(crc32c(!0, b"hello "), b"world"), whole);
    }
}
