//! Extended attributes: in the inode's extra space and in an xattr block.
//!
//! Both places hold a list of `struct ext4_xattr_entry` (16 bytes plus the
//! name suffix, padded to 4) ended by four zero bytes, with the values packed
//! from the end of the space downwards. The in-inode area starts with the
//! magic and value offsets count from its first entry; the block starts with
//! a 32-byte header and value offsets count from the block start. Entries are
//! sorted by (name index, name length, name), which the kernel's block lookup
//! relies on.
//!
//! [`decode_ibody`] and [`decode_block`] read both places back into full
//! names and VFS values, the inverse of [`prepare`] and the encoders.

use kiln_tree::Xattr;

use crate::le::{get_u16, get_u32, put_u16, put_u32};

/// Magic number of the in-inode xattr area and of xattr blocks.
const XATTR_MAGIC: u32 = 0xEA02_0000;
/// Size of the xattr block header.
const BLOCK_HEADER: usize = 32;
/// Size of an entry before its name.
const ENTRY_HEADER: usize = 16;
/// The four zero bytes that end an entry list.
const END_MARKER: usize = 4;

/// Name prefixes and their on-disk name index (`e_name_index`). Full names
/// come before the `system.` catch-all so they match first.
const PREFIXES: [(&[u8], u8); 6] = [
    (b"user.", 1),
    (b"system.posix_acl_access", 2),
    (b"system.posix_acl_default", 3),
    (b"trusted.", 4),
    (b"security.", 6),
    (b"system.", 7),
];

/// Name index and name of `system.data`, which holds inline data past `i_block`.
const SYSTEM_DATA_INDEX: u8 = 7;
pub(crate) const SYSTEM_DATA_NAME: &[u8] = b"data";

/// `posix_acl_xattr` (VFS) and ext4 on-disk ACL versions.
const ACL_VFS_VERSION: u32 = 2;
const ACL_DISK_VERSION: u32 = 1;
/// ACL tags that carry an id (ACL_USER, ACL_GROUP); the others are short.
const ACL_USER: u16 = 0x02;
const ACL_GROUP: u16 = 0x08;
/// The id a VFS ACL entry without one holds (`ACL_UNDEFINED_ID`).
const ACL_UNDEFINED_ID: u32 = u32::MAX;

/// An attribute ready for the disk: name index, name suffix, on-disk value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DiskXattr {
    index: u8,
    name: Vec<u8>,
    value: Vec<u8>,
}

impl DiskXattr {
    /// Converts a tree xattr; ACLs are re-encoded from the VFS format.
    pub(crate) fn from_tree(x: &Xattr) -> Result<DiskXattr, String> {
        let (prefix, index) = PREFIXES
            .iter()
            .find(|(p, _)| x.name.starts_with(p))
            .ok_or_else(|| {
                format!(
                    "xattr {}: unknown namespace",
                    String::from_utf8_lossy(&x.name)
                )
            })?;
        let name = x.name[prefix.len()..].to_vec();
        if name.len() > 255 {
            return Err(format!(
                "xattr name longer than 255 bytes: {}",
                String::from_utf8_lossy(&x.name)
            ));
        }
        let value = match index {
            2 | 3 => acl_to_disk(&x.value)
                .map_err(|e| format!("xattr {}: {e}", String::from_utf8_lossy(&x.name)))?,
            _ => x.value.clone(),
        };
        Ok(DiskXattr {
            index: *index,
            name,
            value,
        })
    }

    /// The `system.data` attribute of an inline inode.
    pub(crate) fn system_data(value: Vec<u8>) -> DiskXattr {
        DiskXattr {
            index: SYSTEM_DATA_INDEX,
            name: SYSTEM_DATA_NAME.to_vec(),
            value,
        }
    }

    fn entry_size(&self) -> usize {
        (ENTRY_HEADER + self.name.len()).next_multiple_of(4)
    }

    fn value_size(&self) -> usize {
        self.value.len().next_multiple_of(4)
    }

    fn sort_key(&self) -> (u8, usize, &[u8]) {
        (self.index, self.name.len(), &self.name)
    }
}

/// Converts a `posix_acl_xattr` value to the ext4 on-disk ACL format.
fn acl_to_disk(vfs: &[u8]) -> Result<Vec<u8>, String> {
    let bad = || "malformed POSIX ACL value".to_string();
    if vfs.len() < 4 || (vfs.len() - 4) % 8 != 0 {
        return Err(bad());
    }
    if u32::from_le_bytes(vfs[0..4].try_into().map_err(|_| bad())?) != ACL_VFS_VERSION {
        return Err(bad());
    }
    let mut out = ACL_DISK_VERSION.to_le_bytes().to_vec();
    for e in vfs[4..].chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        out.extend_from_slice(&e[0..4]);
        if tag == ACL_USER || tag == ACL_GROUP {
            out.extend_from_slice(&e[4..8]);
        }
    }
    Ok(out)
}

/// Converts an ext4 on-disk ACL value to `posix_acl_xattr`, the inverse of
/// [`acl_to_disk`]: short entries get [`ACL_UNDEFINED_ID`] back.
fn acl_to_vfs(disk: &[u8]) -> Result<Vec<u8>, String> {
    let bad = || "malformed on-disk POSIX ACL value".to_string();
    if disk.len() < 4 || get_u32(disk, 0) != ACL_DISK_VERSION {
        return Err(bad());
    }
    let mut out = ACL_VFS_VERSION.to_le_bytes().to_vec();
    let mut pos = 4;
    while pos < disk.len() {
        let head = disk.get(pos..pos + 4).ok_or_else(bad)?;
        let tag = get_u16(head, 0);
        out.extend_from_slice(head);
        pos += 4;
        if tag == ACL_USER || tag == ACL_GROUP {
            out.extend_from_slice(disk.get(pos..pos + 4).ok_or_else(bad)?);
            pos += 4;
        } else {
            out.extend_from_slice(&ACL_UNDEFINED_ID.to_le_bytes());
        }
    }
    Ok(out)
}

/// Converts and sorts a node's xattrs.
pub(crate) fn prepare(xattrs: &[Xattr]) -> Result<Vec<DiskXattr>, String> {
    let mut out = xattrs
        .iter()
        .map(DiskXattr::from_tree)
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    Ok(out)
}

/// Bytes an attribute named `name_len` bytes with a value of `value_len`
/// bytes takes in an entry list (entry, name and value, padded).
pub(crate) fn entry_cost(name_len: usize, value_len: usize) -> usize {
    (ENTRY_HEADER + name_len).next_multiple_of(4) + value_len.next_multiple_of(4)
}

/// The largest value an attribute named `name_len` bytes can have when it is
/// the only one in an in-inode area of `ibody_space` bytes.
pub(crate) fn ibody_value_room(ibody_space: usize, name_len: usize) -> usize {
    let fixed = 4 + END_MARKER + (ENTRY_HEADER + name_len).next_multiple_of(4);
    ibody_space.saturating_sub(fixed) / 4 * 4
}

/// Splits attributes between the inode (`ibody_space` bytes after the fixed
/// inode, 0 for 128-byte inodes) and the xattr block, filling the inode first,
/// after `reserved` bytes kept for an entry placed there by the caller
/// (`system.data`). Returns `None` if the block would overflow `block_size`.
pub(crate) fn split(
    xattrs: Vec<DiskXattr>,
    ibody_space: usize,
    reserved: usize,
    block_size: usize,
) -> Option<(Vec<DiskXattr>, Vec<DiskXattr>)> {
    let mut ibody = Vec::new();
    let mut block = Vec::new();
    // The magic and the end marker are the in-inode area's fixed cost.
    let mut ibody_used = 4 + END_MARKER + reserved;
    let mut block_used = BLOCK_HEADER + END_MARKER;
    for x in xattrs {
        let need = x.entry_size() + x.value_size();
        if ibody_used + need <= ibody_space {
            ibody_used += need;
            ibody.push(x);
        } else {
            block_used += need;
            block.push(x);
        }
    }
    (block_used <= block_size).then_some((ibody, block))
}

/// Encodes the in-inode area (`space` bytes); empty if there are no entries.
pub(crate) fn encode_ibody(entries: &[DiskXattr], space: usize) -> Vec<u8> {
    if entries.is_empty() {
        return Vec::new();
    }
    let mut out = vec![0u8; space];
    put_u32(&mut out, 0, XATTR_MAGIC);
    // Offsets in the inode count from the first entry, 4 bytes in.
    encode_entries(&mut out[4..], entries, 0);
    out
}

/// Encodes an xattr block with reference count 1, to be written at block
/// `block`; with metadata_csum (`csum_seed`) `h_checksum` is the CRC32C of the
/// block number and the block.
pub(crate) fn encode_block(
    entries: &[DiskXattr],
    block_size: usize,
    block: u64,
    csum_seed: Option<u32>,
) -> Vec<u8> {
    let mut out = vec![0u8; block_size];
    put_u32(&mut out, 0x0, XATTR_MAGIC);
    put_u32(&mut out, H_REFCOUNT, 1);
    put_u32(&mut out, 0x8, 1); // h_blocks
    let hashes = encode_entries(&mut out, entries, BLOCK_HEADER);
    put_u32(&mut out, 0xC, block_hash(&hashes));
    if let Some(seed) = csum_seed {
        let crc = block_checksum(&out, block, seed);
        put_u32(&mut out, H_CHECKSUM, crc);
    }
    out
}

/// Offsets of `h_refcount` and `h_checksum` in the block header.
const H_REFCOUNT: usize = 0x4;
const H_CHECKSUM: usize = 0x10;

/// The checksum of xattr block number `block`: CRC32C of the block number
/// and of the block with `h_checksum` zero.
fn block_checksum(bytes: &[u8], block: u64, seed: u32) -> u32 {
    let crc = crate::checksum::crc32c(seed, &block.to_le_bytes());
    let crc = crate::checksum::crc32c(crc, &bytes[..H_CHECKSUM]);
    let crc = crate::checksum::crc32c(crc, &[0; 4]);
    crate::checksum::crc32c(crc, &bytes[H_CHECKSUM + 4..])
}

/// What the checker reads of an xattr block header.
pub(crate) struct BlockHeader {
    /// `h_refcount`: how many inodes share the block.
    pub(crate) refcount: u32,
    /// With metadata_csum, (stored, computed) `h_checksum`.
    pub(crate) checksums: Option<(u32, u32)>,
}

/// Reads an xattr block's header; `Err` with the magic found if it is not
/// an xattr block.
pub(crate) fn block_header(
    bytes: &[u8],
    block: u64,
    seed: Option<u32>,
) -> Result<BlockHeader, u32> {
    let magic = bytes.get(0..4).map_or(0, |m| get_u32(m, 0));
    if magic != XATTR_MAGIC || bytes.len() < BLOCK_HEADER {
        return Err(magic);
    }
    Ok(BlockHeader {
        refcount: get_u32(bytes, H_REFCOUNT),
        checksums: seed.map(|s| (get_u32(bytes, H_CHECKSUM), block_checksum(bytes, block, s))),
    })
}

/// Writes entries from `first` and values from the end of `area`; value
/// offsets are relative to the start of `area`. Returns the entry hashes.
fn encode_entries(area: &mut [u8], entries: &[DiskXattr], first: usize) -> Vec<u32> {
    let mut pos = first;
    let mut value_end = area.len();
    let mut hashes = Vec::with_capacity(entries.len());
    for x in entries {
        let offs = if x.value.is_empty() {
            0
        } else {
            value_end -= x.value_size();
            area[value_end..value_end + x.value.len()].copy_from_slice(&x.value);
            value_end
        };
        let hash = entry_hash(&x.name, &x.value);
        area[pos] = x.name.len() as u8;
        area[pos + 1] = x.index;
        put_u16(area, pos + 2, offs as u16);
        put_u32(area, pos + 4, 0); // e_value_inum
        put_u32(area, pos + 8, x.value.len() as u32);
        put_u32(area, pos + 12, hash);
        area[pos + ENTRY_HEADER..pos + ENTRY_HEADER + x.name.len()].copy_from_slice(&x.name);
        hashes.push(hash);
        pos += x.entry_size();
    }
    hashes
}

/// Why a list of attributes could not be decoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// An xattr block does not start with the magic number (the value found).
    BadMagic(u32),
    /// An entry runs past its space, names an unknown index, or holds a
    /// malformed ACL or a value in another inode (ea_inode, not supported).
    Corrupt(String),
}

/// One attribute read back from an image: full name (`user.a`) and value,
/// ACLs in the host's VFS format (`posix_acl_xattr`).
pub type XattrPair = (Vec<u8>, Vec<u8>);

/// Decodes the in-inode area (what follows the inode's extra fields); an
/// area without the magic holds no attributes, as the kernel reads it.
pub(crate) fn decode_ibody(area: &[u8]) -> Result<Vec<XattrPair>, DecodeError> {
    if area.len() < 4 || get_u32(area, 0) != XATTR_MAGIC {
        return Ok(Vec::new());
    }
    decode_entries(&area[4..], 0)
}

/// Decodes an xattr block; refuses one without the magic number.
pub(crate) fn decode_block(block: &[u8]) -> Result<Vec<XattrPair>, DecodeError> {
    let magic = block.get(0..4).map_or(0, |m| get_u32(m, 0));
    if magic != XATTR_MAGIC || block.len() < BLOCK_HEADER {
        return Err(DecodeError::BadMagic(magic));
    }
    decode_entries(block, BLOCK_HEADER)
}

/// Reads entries from `first` up to the end marker; value offsets are
/// relative to the start of `area` (the inverse of [`encode_entries`]).
fn decode_entries(area: &[u8], first: usize) -> Result<Vec<XattrPair>, DecodeError> {
    let corrupt = |what: &str| DecodeError::Corrupt(format!("{what} at byte {first}"));
    let mut out = Vec::new();
    let mut pos = first;
    loop {
        let marker = area
            .get(pos..pos + END_MARKER)
            .ok_or_else(|| corrupt("entry list without end marker"))?;
        if get_u32(marker, 0) == 0 {
            return Ok(out);
        }
        let head = area
            .get(pos..pos + ENTRY_HEADER)
            .ok_or_else(|| corrupt("truncated entry"))?;
        let name_len = usize::from(head[0]);
        let name = area
            .get(pos + ENTRY_HEADER..pos + ENTRY_HEADER + name_len)
            .ok_or_else(|| corrupt("truncated entry name"))?;
        if get_u32(head, 4) != 0 {
            return Err(corrupt("value in an inode (ea_inode)"));
        }
        let offs = usize::from(get_u16(head, 2));
        let len = get_u32(head, 8) as usize;
        let value = area
            .get(offs..offs.saturating_add(len))
            .ok_or_else(|| corrupt("value out of bounds"))?;
        out.push(full_name_value(head[1], name, value).map_err(DecodeError::Corrupt)?);
        pos += (ENTRY_HEADER + name_len).next_multiple_of(4);
    }
}

/// The full name and VFS value of an entry: the inverse of
/// [`DiskXattr::from_tree`].
fn full_name_value(index: u8, suffix: &[u8], value: &[u8]) -> Result<XattrPair, String> {
    let (prefix, _) = PREFIXES
        .iter()
        .find(|(_, i)| *i == index)
        .ok_or_else(|| format!("unknown xattr name index {index}"))?;
    let name = [*prefix, suffix].concat();
    let value = match index {
        2 | 3 => acl_to_vfs(value)?,
        _ => value.to_vec(),
    };
    Ok((name, value))
}

/// The entry hash (`ext4_xattr_hash_entry`): name bytes, then the value as
/// zero-padded little-endian words.
fn entry_hash(name: &[u8], value: &[u8]) -> u32 {
    const NAME_SHIFT: u32 = 5;
    const VALUE_SHIFT: u32 = 16;
    let mut hash: u32 = 0;
    for &c in name {
        hash = (hash << NAME_SHIFT) ^ (hash >> (32 - NAME_SHIFT)) ^ u32::from(c);
    }
    for word in value.chunks(4) {
        let mut w = [0u8; 4];
        w[..word.len()].copy_from_slice(word);
        hash = (hash << VALUE_SHIFT) ^ (hash >> (32 - VALUE_SHIFT)) ^ u32::from_le_bytes(w);
    }
    hash
}

/// The block hash (`ext4_xattr_rehash`) over the entry hashes.
fn block_hash(entry_hashes: &[u32]) -> u32 {
    const BLOCK_SHIFT: u32 = 16;
    let mut hash: u32 = 0;
    for &h in entry_hashes {
        if h == 0 {
            return 0;
        }
        hash = (hash << BLOCK_SHIFT) ^ (hash >> (32 - BLOCK_SHIFT)) ^ h;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x(name: &str, value: &[u8]) -> Xattr {
        Xattr {
            name: name.as_bytes().to_vec(),
            value: value.to_vec(),
        }
    }

    #[test]
    fn acl_is_reencoded() {
        let vfs = vfs_acl();
        let d = DiskXattr::from_tree(&x("system.posix_acl_access", &vfs)).unwrap();
        assert_eq!(d.index, 2);
        assert!(d.name.is_empty());
        assert_eq!(d.value.len(), 4 + 4 + 8 + 4 + 4 + 4);
        assert_eq!(&d.value[0..4], &1u32.to_le_bytes());
    }

    #[test]
    fn small_attrs_stay_in_the_inode_large_go_to_the_block() {
        let xs = prepare(&[
            x("user.big", &[7u8; 3000]),
            x("user.a", b"1"),
            x("security.selinux", b"system_u:object_r:etc_t:s0\0"),
        ])
        .unwrap();
        let (ibody, block) = split(xs, 96, 0, 4096).unwrap();
        assert_eq!(ibody.len(), 2);
        assert_eq!(block.len(), 1);
        let enc = encode_block(&block, 4096, 100, None);
        assert_eq!(crate::le::get_u32(&enc, 0), XATTR_MAGIC);
        assert!(split(
            prepare(&[x("user.huge", &[1u8; 5000])]).unwrap(),
            96,
            0,
            4096
        )
        .is_none());
    }

    /// A VFS ACL: user::rw- user:1000:r-- group::r-- mask::r-- other::---.
    fn vfs_acl() -> Vec<u8> {
        let mut vfs = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (1u16, 6u16, u32::MAX),
            (2, 4, 1000),
            (4, 4, u32::MAX),
            (0x10, 4, u32::MAX),
            (0x20, 0, u32::MAX),
        ] {
            vfs.extend_from_slice(&tag.to_le_bytes());
            vfs.extend_from_slice(&perm.to_le_bytes());
            vfs.extend_from_slice(&id.to_le_bytes());
        }
        vfs
    }

    /// Attributes in every namespace, one large enough for the block.
    fn attrs() -> Vec<Xattr> {
        vec![
            x("user.big", &[7u8; 3000]),
            x("user.a", b"1"),
            x("user.empty", b""),
            x("security.selinux", b"system_u:object_r:etc_t:s0\0"),
            x("trusted.t", b"odd"),
            x("system.posix_acl_access", &vfs_acl()),
            x("system.posix_acl_default", &vfs_acl()),
        ]
    }

    /// Name-value pairs sorted, for comparing as sets.
    fn sorted(mut v: Vec<XattrPair>) -> Vec<XattrPair> {
        v.sort();
        v
    }

    #[test]
    fn decode_reads_what_encode_wrote() {
        let (ibody, block) = split(prepare(&attrs()).unwrap(), 200, 0, 4096).unwrap();
        assert!(!ibody.is_empty() && !block.is_empty());
        let mut got = decode_ibody(&encode_ibody(&ibody, 200)).unwrap();
        got.extend(decode_block(&encode_block(&block, 4096, 9, Some(1))).unwrap());
        let want = attrs().into_iter().map(|a| (a.name, a.value)).collect();
        assert_eq!(sorted(got), sorted(want));
    }

    #[test]
    fn decode_refuses_bad_blocks_and_skips_empty_areas() {
        assert_eq!(decode_ibody(&[0u8; 96]), Ok(Vec::new()));
        assert_eq!(decode_ibody(&[]), Ok(Vec::new()));
        assert_eq!(decode_block(&[0u8; 1024]), Err(DecodeError::BadMagic(0)));
        let xs = prepare(&[x("user.a", b"value")]).unwrap();
        let mut block = encode_block(&xs, 1024, 9, None);
        put_u16(&mut block, BLOCK_HEADER + 2, 1022); // e_value_offs past the end
        assert!(matches!(decode_block(&block), Err(DecodeError::Corrupt(_))));
        let mut block = encode_block(&xs, 1024, 9, None);
        block[BLOCK_HEADER + 1] = 5; // e_name_index unknown
        assert!(matches!(decode_block(&block), Err(DecodeError::Corrupt(_))));
    }

    #[test]
    fn unknown_namespace_is_refused() {
        assert!(DiskXattr::from_tree(&x("bogus.name", b"")).is_err());
    }
}
