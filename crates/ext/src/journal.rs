//! The jbd2 journal superblock (big-endian), block 0 of the journal inode.
//!
//! kiln writes an empty, clean journal: `s_start = 0` means nothing to
//! replay, and every other journal block is zero (left as holes in the image).
//! With metadata_csum the journal gets checksums too (jbd2 checksum v3), and
//! its superblock carries its own CRC32C.

use crate::checksum::crc32c;
use crate::le::put_be32;

/// `h_magic` of every jbd2 block.
const JBD2_MAGIC: u32 = 0xC03B_3998;
/// `h_blocktype`: superblock version 2.
const JBD2_SUPERBLOCK_V2: u32 = 4;
/// The first log block (block 0 is this superblock).
const JOURNAL_FIRST_LOG_BLOCK: u32 = 1;
/// The sequence number the first transaction will carry.
const JOURNAL_FIRST_SEQUENCE: u32 = 1;

/// `s_feature_incompat`: checksum v3 on journal blocks and the superblock.
const JBD2_FEATURE_INCOMPAT_CSUM_V3: u32 = 0x10;
/// `s_checksum_type`: CRC32C.
const JBD2_CRC32C_CHKSUM: u8 = 4;
/// Bytes of `journal_superblock_t`, which its checksum covers.
const JOURNAL_SUPERBLOCK_SIZE: usize = 1024;
/// Offset of `s_checksum`.
const S_CHECKSUM: usize = 0xFC;

/// Encodes the journal superblock for a journal of `blocks` blocks, with
/// checksums when `csum` (the filesystem has metadata_csum).
pub(crate) fn encode_superblock(
    block_size: u32,
    blocks: u32,
    fs_uuid: &[u8; 16],
    csum: bool,
) -> Vec<u8> {
    let mut b = vec![0u8; block_size as usize];
    put_be32(&mut b, 0x0, JBD2_MAGIC); // h_magic
    put_be32(&mut b, 0x4, JBD2_SUPERBLOCK_V2); // h_blocktype
    put_be32(&mut b, 0xC, block_size); // s_blocksize
    put_be32(&mut b, 0x10, blocks); // s_maxlen
    put_be32(&mut b, 0x14, JOURNAL_FIRST_LOG_BLOCK); // s_first
    put_be32(&mut b, 0x18, JOURNAL_FIRST_SEQUENCE); // s_sequence
    b[0x30..0x40].copy_from_slice(fs_uuid); // s_uuid
    put_be32(&mut b, 0x40, 1); // s_nr_users
    if csum {
        put_be32(&mut b, 0x28, JBD2_FEATURE_INCOMPAT_CSUM_V3); // s_feature_incompat
        b[0x50] = JBD2_CRC32C_CHKSUM; // s_checksum_type
        let crc = crc32c(!0, &b[..JOURNAL_SUPERBLOCK_SIZE]);
        put_be32(&mut b, S_CHECKSUM, crc); // s_checksum
    }
    b
}
