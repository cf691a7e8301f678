//! UUID and directory hash seed derived from the inputs, so that identical
//! inputs give identical images and different trees do not share a UUID.

use kiln_tree::{Body, Tree};
use sha2::{Digest, Sha256};

use crate::BuildOptions;

/// Derives `(uuid, hash_seed)` from the tree and the options.
///
/// The digest covers, for every reachable node in breadth-first order, its
/// entry names, type, size, permissions, owner, mtime, symlink target, device
/// number and xattrs, plus the options. Access and change times are left out:
/// they move when a tree is merely read or copied.
pub fn derive_ids(tree: &Tree, opts: &BuildOptions) -> ([u8; 16], [u8; 16]) {
    let mut h = Sha256::new();
    h.update(b"kiln ids v1\0");
    h.update(
        format!(
            "{:?}/{}/{}/{:?}",
            opts.fs_type, opts.block_size, opts.inode_size, opts.size
        )
        .as_bytes(),
    );
    h.update(&opts.label);
    for id in tree.reachable() {
        let node = tree.node(id);
        let m = &node.meta;
        h.update(
            format!(
                "\0{}:{}:{}:{}.{}",
                m.perm,
                m.uid,
                m.gid,
                { m.mtime().secs },
                { m.mtime().nanos }
            )
            .as_bytes(),
        );
        for x in m.xattrs() {
            h.update((x.name.len() as u64).to_le_bytes());
            h.update(&x.name);
            h.update((x.value.len() as u64).to_le_bytes());
            h.update(&x.value);
        }
        match &node.body {
            Body::Dir(entries) => {
                for (name, _) in entries.iter() {
                    h.update((name.len() as u64).to_le_bytes());
                    h.update(name);
                }
            }
            Body::File(f) => h.update(format!("f{}", f.size).as_bytes()),
            Body::Symlink(t) => {
                h.update(b"l");
                h.update(t);
            }
            Body::CharDevice(a, b) => h.update(format!("c{a},{b}").as_bytes()),
            Body::BlockDevice(a, b) => h.update(format!("b{a},{b}").as_bytes()),
            Body::Fifo => h.update(b"p"),
            Body::Socket => h.update(b"s"),
        }
    }
    let digest = h.finalize();
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&digest[..16]);
    // A well-formed RFC 4122 UUID: version 4 (random-looking), variant 10.
    uuid[6] = (uuid[6] & 0x0F) | 0x40;
    uuid[8] = (uuid[8] & 0x3F) | 0x80;
    let mut seed = [0u8; 16];
    seed.copy_from_slice(&digest[16..]);
    (uuid, seed)
}
