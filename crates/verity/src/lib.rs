//! dm-verity hash trees for kiln's images, in the format `veritysetup`
//! writes (format 1, SHA-256), computed while the image is emitted.
//!
//! [`VerityParams`]: the tree's parameters (block sizes, data block count,
//! salt, UUID, superblock or not), with [`derive_salt`] and [`derive_uuid`]
//! for the ones derived from the inputs. [`VeritySink`] wraps the image's
//! [`Sink`](kiln_sink::Sink): every write is passed on and hashed, a whole
//! data block at once in the writer's thread, a partly written one once
//! [`Sink::advance`](kiln_sink::Sink::advance) says it is final; its
//! [`finish`](VeritySink::finish) computes the upper levels and gives the
//! [`HashArea`]: the bytes of the hash device (or of the area after the
//! filesystem) and the root hash. [`superblock`] encodes and decodes the
//! verity superblock; [`tree`] the levels and where each one lies.
//!
//! Place in the data flow: plan → emit → **verity** → sink. The image's
//! bytes are never read back.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod sink;
pub mod superblock;
pub mod tree;

use sha2::{Digest, Sha256};

pub use sink::VeritySink;
pub use tree::HashArea;

/// The hash kiln writes trees with, as `veritysetup` names it.
pub const ALGORITHM: &str = "sha256";

/// Bytes of one SHA-256 digest.
pub const DIGEST_SIZE: usize = 32;

/// `hash_type` 1: the salt is prepended to each hashed block and each
/// digest is padded to a power of two (SHA-256's 32 bytes already are).
pub const HASH_TYPE: u32 = 1;

/// veritysetup's default data and hash block size, and the alignment of a
/// hash area appended to its image.
pub const DEFAULT_BLOCK_SIZE: u32 = 4096;

/// The smallest block size dm-verity takes.
const MIN_BLOCK_SIZE: u32 = 512;

/// The largest: a hash block must fit in a page of the hosts that open it.
const MAX_BLOCK_SIZE: u32 = 65536;

/// Why a hash tree could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerityError {
    /// A block size that is not a power of two from 512 to 65,536.
    #[error("verity block size {0}: must be a power of two from 512 to 65536")]
    BlockSize(u32),
    /// A salt longer than the superblock holds.
    #[error("verity salt of {0} bytes: at most 256")]
    SaltTooLong(usize),
    /// Nothing to protect.
    #[error("verity: the image has no data block")]
    NoData,
    /// An image whose size is not a whole number of data blocks.
    #[error("verity: an image of {size} bytes is not a whole number of {block}-byte blocks")]
    Unaligned {
        /// The image's size.
        size: u64,
        /// The data block size.
        block: u32,
    },
    /// A hash area whose superblock is not one kiln reads.
    #[error("verity superblock: {0}")]
    Superblock(String),
    /// The image or the hash area could not be written.
    #[error(transparent)]
    Sink(#[from] kiln_sink::SinkError),
}

/// What a hash tree is made with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerityParams {
    /// Bytes per data block (each one digest).
    pub data_block_size: u32,
    /// Bytes per hash block.
    pub hash_block_size: u32,
    /// Data blocks protected, from the image's start.
    pub data_blocks: u64,
    /// Prepended to every hashed block (at most 256 bytes).
    pub salt: Vec<u8>,
    /// The hash device's UUID, recorded in the superblock.
    pub uuid: [u8; 16],
    /// Whether the hash area opens with a verity superblock
    /// (veritysetup's default; without it, `--no-superblock` and every
    /// parameter must be given to open it).
    pub superblock: bool,
}

impl VerityParams {
    /// veritysetup's defaults (4,096-byte blocks, a superblock) for
    /// `data_blocks` blocks.
    pub fn new(data_blocks: u64, salt: Vec<u8>, uuid: [u8; 16]) -> VerityParams {
        VerityParams {
            data_block_size: DEFAULT_BLOCK_SIZE,
            hash_block_size: DEFAULT_BLOCK_SIZE,
            data_blocks,
            salt,
            uuid,
            superblock: true,
        }
    }

    /// The parameters for an image of `size` bytes at the default block
    /// size: refused unless `size` is a whole number of blocks.
    pub fn for_image(
        size: u64,
        salt: Vec<u8>,
        uuid: [u8; 16],
    ) -> Result<VerityParams, VerityError> {
        let block = DEFAULT_BLOCK_SIZE;
        if size % u64::from(block) != 0 {
            return Err(VerityError::Unaligned { size, block });
        }
        let params = VerityParams::new(size / u64::from(block), salt, uuid);
        params.check()?;
        Ok(params)
    }

    /// Checks the block sizes, the salt's length and the block count.
    pub fn check(&self) -> Result<(), VerityError> {
        for size in [self.data_block_size, self.hash_block_size] {
            if !size.is_power_of_two() || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&size) {
                return Err(VerityError::BlockSize(size));
            }
        }
        if self.salt.len() > superblock::MAX_SALT {
            return Err(VerityError::SaltTooLong(self.salt.len()));
        }
        if self.data_blocks == 0 {
            return Err(VerityError::NoData);
        }
        Ok(())
    }

    /// The bytes of the image the tree covers.
    pub fn data_size(&self) -> u64 {
        self.data_blocks * u64::from(self.data_block_size)
    }

    /// The SHA-256 state after the salt: each block's hash continues a
    /// clone of it.
    pub(crate) fn salted(&self) -> Sha256 {
        Sha256::new_with_prefix(&self.salt)
    }
}

/// A 32-byte salt derived from `identity`, bytes that tell the image
/// apart (kiln-lib passes a digest of the inputs): the same inputs give
/// the same salt, different images different ones.
pub fn derive_salt(identity: &[u8]) -> [u8; 32] {
    Sha256::new_with_prefix(b"kiln dm-verity salt\0")
        .chain_update(identity)
        .finalize()
        .into()
}

/// A UUID (version 4 and variant bits set, as veritysetup's random ones
/// have them) derived from the salt.
pub fn derive_uuid(salt: &[u8]) -> [u8; 16] {
    let digest = Sha256::new_with_prefix(b"kiln dm-verity uuid\0")
        .chain_update(salt)
        .finalize();
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&digest[..16]);
    uuid[6] = (uuid[6] & 0x0f) | 0x40;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    uuid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_checked() {
        let ok = VerityParams::new(1, vec![], [0; 16]);
        assert!(ok.check().is_ok());
        let bad = VerityParams {
            data_block_size: 3000,
            ..ok.clone()
        };
        assert!(matches!(bad.check(), Err(VerityError::BlockSize(3000))));
        let long = VerityParams {
            salt: vec![0; 257],
            ..ok.clone()
        };
        assert!(matches!(long.check(), Err(VerityError::SaltTooLong(257))));
        assert!(matches!(
            VerityParams::for_image(4097, vec![], [0; 16]),
            Err(VerityError::Unaligned { size: 4097, .. })
        ));
    }

    #[test]
    fn derived_ids_depend_on_the_identity() {
        assert_eq!(derive_salt(b"a"), derive_salt(b"a"));
        assert_ne!(derive_salt(b"a"), derive_salt(b"b"));
        let uuid = derive_uuid(&derive_salt(b"a"));
        assert_eq!(uuid[6] >> 4, 4);
        assert_eq!(uuid[8] >> 6, 2);
    }
}
