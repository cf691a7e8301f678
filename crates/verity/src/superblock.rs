//! The verity superblock as `veritysetup format` writes it (format 1): 512
//! bytes at the start of the hash area, in a hash block of its own, all
//! fields little-endian.

use crate::{VerityError, VerityParams};

/// The superblock's own size; the rest of its hash block stays zero.
pub const SUPERBLOCK_SIZE: usize = 512;

/// `signature`: "verity" and two NULs.
pub const SIGNATURE: &[u8; 8] = b"verity\0\0";

/// `version` of the superblock layout.
pub const VERSION: u32 = 1;

/// The longest salt the superblock holds.
pub const MAX_SALT: usize = 256;

/// Field offsets (cryptsetup's `struct verity_sb`).
pub mod off {
    /// `signature[8]`.
    pub const SIGNATURE: usize = 0x00;
    /// `version`, u32.
    pub const VERSION: usize = 0x08;
    /// `hash_type`, u32: 0 Chrome OS, 1 normal.
    pub const HASH_TYPE: usize = 0x0c;
    /// `uuid[16]`, the hash device's UUID.
    pub const UUID: usize = 0x10;
    /// `algorithm[32]`, the hash's name, NUL-padded.
    pub const ALGORITHM: usize = 0x20;
    /// `data_block_size`, u32.
    pub const DATA_BLOCK_SIZE: usize = 0x40;
    /// `hash_block_size`, u32.
    pub const HASH_BLOCK_SIZE: usize = 0x44;
    /// `data_blocks`, u64.
    pub const DATA_BLOCKS: usize = 0x48;
    /// `salt_size`, u16 (then 6 bytes of padding).
    pub const SALT_SIZE: usize = 0x50;
    /// `salt[256]` (then 168 bytes of padding).
    pub const SALT: usize = 0x58;
    /// Bytes of the algorithm's name field.
    pub const ALGORITHM_LEN: usize = 32;
}

/// Encodes the superblock of `params`.
pub fn encode(params: &VerityParams) -> [u8; SUPERBLOCK_SIZE] {
    let mut sb = [0u8; SUPERBLOCK_SIZE];
    sb[off::SIGNATURE..off::SIGNATURE + 8].copy_from_slice(SIGNATURE);
    put_u32(&mut sb, off::VERSION, VERSION);
    put_u32(&mut sb, off::HASH_TYPE, crate::HASH_TYPE);
    sb[off::UUID..off::UUID + 16].copy_from_slice(&params.uuid);
    let name = crate::ALGORITHM.as_bytes();
    sb[off::ALGORITHM..off::ALGORITHM + name.len()].copy_from_slice(name);
    put_u32(&mut sb, off::DATA_BLOCK_SIZE, params.data_block_size);
    put_u32(&mut sb, off::HASH_BLOCK_SIZE, params.hash_block_size);
    sb[off::DATA_BLOCKS..off::DATA_BLOCKS + 8].copy_from_slice(&params.data_blocks.to_le_bytes());
    // OK: `VerityParams::check` bounds the salt by MAX_SALT.
    let salt_len = u16::try_from(params.salt.len()).expect("salt checked");
    sb[off::SALT_SIZE..off::SALT_SIZE + 2].copy_from_slice(&salt_len.to_le_bytes());
    sb[off::SALT..off::SALT + params.salt.len()].copy_from_slice(&params.salt);
    sb
}

/// Decodes a superblock back into its parameters (a hash area's first
/// bytes); refuses a wrong signature, version, type or algorithm.
pub fn decode(sb: &[u8]) -> Result<VerityParams, VerityError> {
    let bad = |detail: &str| VerityError::Superblock(detail.to_string());
    if sb.len() < SUPERBLOCK_SIZE || &sb[..8] != SIGNATURE {
        return Err(bad("no verity signature"));
    }
    if get_u32(sb, off::VERSION) != VERSION || get_u32(sb, off::HASH_TYPE) != crate::HASH_TYPE {
        return Err(bad("not version 1, hash type 1"));
    }
    let name = &sb[off::ALGORITHM..off::ALGORITHM + off::ALGORITHM_LEN];
    if name.split(|&b| b == 0).next() != Some(crate::ALGORITHM.as_bytes()) {
        return Err(bad("not sha256"));
    }
    let salt_len = usize::from(u16::from_le_bytes([
        sb[off::SALT_SIZE],
        sb[off::SALT_SIZE + 1],
    ]));
    if salt_len > MAX_SALT {
        return Err(bad("salt longer than 256 bytes"));
    }
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&sb[off::UUID..off::UUID + 16]);
    let mut blocks = [0u8; 8];
    blocks.copy_from_slice(&sb[off::DATA_BLOCKS..off::DATA_BLOCKS + 8]);
    let params = VerityParams {
        data_block_size: get_u32(sb, off::DATA_BLOCK_SIZE),
        hash_block_size: get_u32(sb, off::HASH_BLOCK_SIZE),
        data_blocks: u64::from_le_bytes(blocks),
        salt: sb[off::SALT..off::SALT + salt_len].to_vec(),
        uuid,
        superblock: true,
    };
    params.check()?;
    Ok(params)
}

/// Writes `v` little-endian at `at`.
fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Reads a little-endian u32 at `at`.
fn get_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let params = VerityParams {
            salt: vec![0x11; 32],
            uuid: [7; 16],
            ..VerityParams::new(300, vec![0x11; 32], [7; 16])
        };
        let sb = encode(&params);
        assert_eq!(&sb[..8], b"verity\0\0");
        assert_eq!(&sb[0x20..0x26], b"sha256");
        assert_eq!(decode(&sb).unwrap(), params);
    }

    #[test]
    fn layout_is_veritysetups() {
        // Bytes `veritysetup format` 2.6.1 wrote for 300 blocks, salt 32 x
        // 0x11: sizes at 0x40, the block count at 0x48, salt size at 0x50.
        let sb = encode(&VerityParams::new(300, vec![0x11; 32], [0; 16]));
        assert_eq!(
            &sb[0x40..0x58],
            &[0, 0x10, 0, 0, 0, 0x10, 0, 0, 0x2c, 1, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(&sb[0x58..0x78], &[0x11; 32]);
        assert!(sb[0x78..].iter().all(|&b| b == 0));
    }
}
