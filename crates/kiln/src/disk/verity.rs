//! dm-verity pairs on a disk: the hash partition's size, the tree's
//! parameters, the partition UUIDs taken from the root hash and what the
//! report says.
//!
//! The data partition's filesystem is emitted through a `VeritySink`, so
//! its tree is ready when the disk's writing reaches the hash partition,
//! which always comes later (checked when the layout is parsed). As the
//! Discoverable Partitions Specification and systemd-repart do, a data
//! partition without a `uuid` takes the first 128 bits of the root hash
//! and its hash partition the last 128 bits; the GPT that holds them can
//! then only be encoded once the data is written, so those disks go to
//! outputs that take positional writes (a file, a block device), where
//! the primary GPT is written last.

use anyhow::{bail, Result};
use kiln_disk::layout::{DiskLayout, ALIGNMENT};
use kiln_verity::tree::TreeLayout;
use kiln_verity::{HashArea, VerityParams, DEFAULT_BLOCK_SIZE};
use serde::Serialize;

use crate::layout::{Layout, Partition, Size, VerityRole};
use crate::verity::{derive_params, hex};

/// One data partition and its hash partition, by index in the layout.
#[derive(Clone, Copy)]
pub(crate) struct Pair {
    pub(crate) data: usize,
    pub(crate) hash: usize,
}

/// The pairs of `layout` (checked when it was parsed: one data and one
/// later hash partition per key).
pub(crate) fn pairs(layout: &Layout) -> Vec<Pair> {
    let parts = &layout.partitions;
    let find = |role: VerityRole, key: &str| {
        parts.iter().position(|p| {
            p.verity
                .as_ref()
                .is_some_and(|v| v.role == role && v.match_key == key)
        })
    };
    parts
        .iter()
        .filter_map(|p| p.verity.as_ref().filter(|v| v.role == VerityRole::Data))
        .filter_map(|v| {
            Some(Pair {
                data: find(VerityRole::Data, &v.match_key)?,
                hash: find(VerityRole::Hash, &v.match_key)?,
            })
        })
        .collect()
}

/// Whether a pair's partition UUIDs come from its root hash (one is not
/// given), so the GPT can only be encoded after the data is written.
pub(crate) fn derives_uuids(layout: &Layout, pairs: &[Pair]) -> bool {
    let parts = &layout.partitions;
    pairs
        .iter()
        .any(|p| parts[p.data].uuid.is_none() || parts[p.hash].uuid.is_none())
}

/// Refuses a disk whose GPT waits for root hashes when its output is a
/// stream (`-o -`, zstd), which cannot go back to the disk's start.
pub(crate) fn check_output(layout: &Layout, pairs: &[Pair], positional: bool) -> Result<()> {
    if positional || !derives_uuids(layout, pairs) {
        return Ok(());
    }
    let keys: Vec<String> = pairs
        .iter()
        .flat_map(|p| [p.data, p.hash])
        .map(|i| &layout.partitions[i])
        .filter(|p| p.uuid.is_none())
        .map(|p| p.key.clone())
        .collect();
    bail!(
        "{}: no uuid, so the partition UUID is taken from the dm-verity root hash, which is \
         known only once the data partition is written; a streamed output (standard output, \
         zstd) cannot go back to write the GPT at the disk's start: give each verity partition \
         a uuid, or write to a file or block device",
        keys.join(", ")
    )
}

/// The bytes of the tree of a data partition of `data_size` bytes.
fn tree_size(data_size: u64) -> u64 {
    let blocks = data_size.div_ceil(u64::from(DEFAULT_BLOCK_SIZE));
    // The salt and UUID do not change the tree's shape.
    TreeLayout::new(&VerityParams::new(blocks, Vec::new(), [0; 16])).area_size()
}

/// Sets each hash partition's size: with `auto`, what its data partition's
/// tree needs (plus `free`, within `min`..`max`); a fixed size is checked
/// against it.
pub(crate) fn size_hash_partitions(
    layout: &Layout,
    pairs: &[Pair],
    sizes: &mut [Option<u64>],
) -> Result<()> {
    for pair in pairs {
        let (data, hash) = (&layout.partitions[pair.data], &layout.partitions[pair.hash]);
        let Some(data_size) = sizes[pair.data] else {
            bail!("{}: a verity data partition cannot grow", data.key);
        };
        let need = tree_size(data_size.next_multiple_of(ALIGNMENT));
        sizes[pair.hash] = Some(hash_size(hash, data, need)?);
    }
    Ok(())
}

/// The size of hash partition `hash` whose tree needs `need` bytes.
fn hash_size(hash: &Partition, data: &Partition, need: u64) -> Result<u64> {
    match hash.size {
        Size::Fixed(n) if n < need => bail!(
            "{}.size: {n} bytes, but the hash tree of {} needs {need}",
            hash.key,
            data.key
        ),
        Size::Fixed(n) => Ok(n),
        Size::Auto { min, max, free } => {
            let want = (need + free)
                .max(min.unwrap_or(0))
                .next_multiple_of(ALIGNMENT);
            match max {
                Some(max) if want > max => bail!(
                    "{}.max: the hash tree of {} needs {want} bytes, more than {max}",
                    hash.key,
                    data.key
                ),
                _ => Ok(want),
            }
        }
        Size::Grow => bail!("{}.size: a verity hash partition does not grow", hash.key),
    }
}

/// The tree of a data partition of `len` bytes whose inputs `identity`
/// tells apart.
pub(crate) fn params(len: u64, identity: &[u8]) -> Result<VerityParams> {
    derive_params(len, identity, None, None)
}

/// Gives the partitions of each pair without a `uuid` the halves of its
/// root hash: the data partition the first 128 bits, the hash partition
/// the last.
pub(crate) fn set_uuids(
    layout: &Layout,
    placed: &mut DiskLayout,
    pairs: &[Pair],
    areas: &[HashArea],
) {
    for (pair, area) in pairs.iter().zip(areas) {
        let (first, last) = root_halves(&area.root);
        for (i, half) in [(pair.data, first), (pair.hash, last)] {
            if layout.partitions[i].uuid.is_none() {
                placed.partitions[i].uuid = uuid::Uuid::from_bytes(half);
            }
        }
    }
}

/// The first and last 128 bits of a root hash.
fn root_halves(root: &[u8; 32]) -> ([u8; 16], [u8; 16]) {
    let mut first = [0u8; 16];
    let mut last = [0u8; 16];
    first.copy_from_slice(&root[..16]);
    last.copy_from_slice(&root[16..]);
    (first, last)
}

/// A verity partition's part, as reported.
#[derive(Clone, Debug, Serialize)]
pub struct PartitionVerity {
    /// `data` or `hash`.
    pub role: &'static str,
    /// The key pairing the two partitions.
    pub verity_match: String,
    /// The root hash in hex.
    pub root_hash: String,
    /// The salt in hex.
    pub salt: String,
    /// Data blocks of 4,096 bytes covered.
    pub data_blocks: u64,
    /// Bytes of the hash area (superblock and tree) in the hash partition.
    pub hash_size: u64,
    /// The kernel command line fragment that trusts the root hash:
    /// `usrhash=HEX` for a `/usr` partition, `roothash=HEX` otherwise
    /// (systemd-veritysetup-generator's parameters).
    pub kernel_cmdline: String,
}

/// The report entries of each pair's two partitions, by partition index.
pub(crate) fn report(
    layout: &Layout,
    pairs: &[Pair],
    params: &[VerityParams],
    areas: &[HashArea],
) -> Vec<(usize, PartitionVerity)> {
    let mut out = Vec::new();
    for ((pair, p), area) in pairs.iter().zip(params).zip(areas) {
        let data = &layout.partitions[pair.data];
        let root_hash = hex(&area.root);
        let usr = kiln_disk::type_name(&data.type_guid.to_string())
            .is_some_and(|name| name.starts_with("usr-"));
        let param = if usr { "usrhash" } else { "roothash" };
        let entry = |role| PartitionVerity {
            role,
            verity_match: data
                .verity
                .as_ref()
                .map_or(String::new(), |v| v.match_key.clone()),
            root_hash: root_hash.clone(),
            salt: hex(&p.salt),
            data_blocks: p.data_blocks,
            hash_size: area.bytes.len() as u64,
            kernel_cmdline: format!("{param}={root_hash}"),
        };
        out.push((pair.data, entry("data")));
        out.push((pair.hash, entry("hash")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_hash_halves() {
        let mut root = [0u8; 32];
        for (i, b) in root.iter_mut().enumerate() {
            *b = i as u8;
        }
        let (a, b) = root_halves(&root);
        assert_eq!(a[0], 0);
        assert_eq!(b[0], 16);
        assert_eq!(
            uuid::Uuid::from_bytes(a).to_string(),
            "00010203-0405-0607-0809-0a0b0c0d0e0f"
        );
    }

    #[test]
    fn tree_sizes() {
        // 256 MiB: 65,536 blocks, 512 level-0 blocks, 4 level-1, 1 level-2,
        // and the superblock.
        assert_eq!(tree_size(256 << 20), (1 + 512 + 4 + 1) * 4096);
    }
}
