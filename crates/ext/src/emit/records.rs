//! Inode records: each group's inode table, one record per inode, from
//! the plan and the tree (kiln's own inodes: resize, journal, lost+found).

use std::ops::Range;

use kiln_sink::Sink;
use kiln_tree::{Body, Node, Timestamp};

use super::content::dir_entries;
use super::files::Sources;
use crate::alloc::Mapping;
use crate::inode::{self, encode_device, mode, InodeRecord};
use crate::layout::{FAST_SYMLINK_MAX, GOOD_OLD_INODE_SIZE, LINK_MAX};
use crate::plan::{ibody_space, InodePlan, Plan, Slot};
use crate::xattr::{self, DiskXattr};
use crate::{checksum, htree, inline, resize, EmitError};

/// Inode records rendered at a time: a group's table can take megabytes,
/// and every worker renders one.
const RECORDS_PER_CHUNK: u32 = 1024;

/// Writes the used part of group `g`'s inode table (the rest stays zero)
/// in chunks; returns its bytes.
pub(super) fn write_inode_table(
    plan: &Plan<'_>,
    sources: &Sources,
    sink: &dyn Sink,
    g: u32,
) -> Result<u64, EmitError> {
    let geo = &plan.geometry;
    let isz = u64::from(geo.inode_size);
    let first = g * geo.inodes_per_group + 1;
    let end = first + plan.used_inodes(g);
    let at = geo.offset(geo.inode_table(g));
    for start in (first..end).step_by(RECORDS_PER_CHUNK as usize) {
        let inos = start..end.min(start + RECORDS_PER_CHUNK);
        let chunk = inode_records(plan, sources, inos)?;
        sink.write_at(at + u64::from(start - first) * isz, &chunk)?;
    }
    Ok(u64::from(end - first) * isz)
}

/// The inode records of `inos`, in the table's layout.
fn inode_records(
    plan: &Plan<'_>,
    sources: &Sources,
    inos: Range<u32>,
) -> Result<Vec<u8>, EmitError> {
    let geo = &plan.geometry;
    let isz = usize::from(geo.inode_size);
    let mut records = vec![0u8; inos.len() * isz];
    let seed = plan.csum_seed();
    for (ino, slot) in inos.zip(records.chunks_exact_mut(isz)) {
        if let Some(rec) = inode_record(plan, sources, ino)? {
            rec.encode(slot, geo.block_size);
            if let Some(seed) = seed {
                inode::set_checksum(slot, checksum::inode_seed(seed, ino, 0));
            }
        }
    }
    Ok(records)
}

/// The inode record of `ino`, `None` for reserved inodes left zero.
fn inode_record(
    plan: &Plan<'_>,
    sources: &Sources,
    ino: u32,
) -> Result<Option<InodeRecord>, EmitError> {
    let p = plan.inode(ino);
    let bs = plan.geometry.block_size;
    let fs_blocks = p.mapping.total_blocks() + u64::from(p.xattr_block() != 0);
    let now = Timestamp {
        secs: plan.opts.timestamp,
        nanos: 0,
    };
    let kiln_made = |mode: u16, links: u16, size: u64, i_block: [u8; 60]| InodeRecord {
        mode,
        size,
        atime: now,
        ctime: now,
        mtime: now,
        crtime: (plan.geometry.inode_size > GOOD_OLD_INODE_SIZE).then_some(now),
        links,
        fs_blocks,
        flags: p.mapping.flags(),
        i_block,
        ..InodeRecord::default()
    };
    Ok(match p.slot {
        Slot::Empty => None,
        Slot::Resize if plan.resize_dind == 0 => None,
        Slot::Resize => Some(InodeRecord {
            fs_blocks: resize::blocks(&plan.geometry),
            ..kiln_made(
                mode::S_IFREG | 0o600,
                1,
                resize::size(&plan.geometry),
                resize::i_block(plan.resize_dind),
            )
        }),
        Slot::Journal if plan.journal_blocks == 0 => None,
        Slot::Journal => Some(kiln_made(
            mode::S_IFREG | 0o600,
            1,
            u64::from(plan.journal_blocks) * u64::from(bs),
            p.mapping.i_block(bs),
        )),
        Slot::OrphanFile => Some(kiln_made(
            mode::S_IFREG | 0o600,
            1,
            block_bytes(&p.mapping, bs),
            p.mapping.i_block(bs),
        )),
        Slot::LostFound => Some(kiln_made(
            mode::S_IFDIR | 0o700,
            2,
            block_bytes(&p.mapping, bs),
            p.mapping.i_block(bs),
        )),
        Slot::Node(id) => Some(node_record(
            plan,
            sources,
            (ino, &p),
            plan.tree.node(id),
            fs_blocks,
        )?),
    })
}

fn block_bytes(mapping: &Mapping, bs: u32) -> u64 {
    mapping.data_blocks() * u64::from(bs)
}

fn node_record(
    plan: &Plan<'_>,
    sources: &Sources,
    (ino, p): (u32, &InodePlan),
    node: &Node,
    fs_blocks: u64,
) -> Result<InodeRecord, EmitError> {
    let bs = plan.geometry.block_size;
    let (type_bits, mut size, mut i_block) = match &node.body {
        Body::Dir(_) => (
            mode::S_IFDIR,
            block_bytes(&p.mapping, bs),
            p.mapping.i_block(bs),
        ),
        Body::File(f) => (mode::S_IFREG, f.size, p.mapping.i_block(bs)),
        Body::Symlink(t) if t.len() <= FAST_SYMLINK_MAX => {
            let mut b = [0u8; 60];
            b[..t.len()].copy_from_slice(t);
            (mode::S_IFLNK, t.len() as u64, b)
        }
        Body::Symlink(t) => (mode::S_IFLNK, t.len() as u64, p.mapping.i_block(bs)),
        Body::CharDevice(ma, mi) => (mode::S_IFCHR, 0, encode_device(*ma, *mi)),
        Body::BlockDevice(ma, mi) => (mode::S_IFBLK, 0, encode_device(*ma, *mi)),
        Body::Fifo => (mode::S_IFIFO, 0, [0; 60]),
        Body::Socket => (mode::S_IFSOCK, 0, [0; 60]),
    };
    let meta = &node.meta;
    let large = plan.geometry.inode_size > GOOD_OLD_INODE_SIZE;
    let mut flags = p.mapping.flags() | if p.indexed { htree::INDEX_FL } else { 0 };
    let mut ibody = p.ibody_xattrs().to_vec();
    if p.inline.is_some() {
        let (head, spill, inline_size) = inline_content(plan, sources, (ino, p), node)?;
        i_block = head;
        size = inline_size;
        flags |= inline::INLINE_DATA_FL;
        // system.data goes first: the plan reserved its room in the inode.
        ibody.insert(0, DiskXattr::system_data(spill));
    }
    let times = meta.times();
    Ok(InodeRecord {
        mode: type_bits | (meta.perm & 0o7777),
        uid: meta.uid,
        gid: meta.gid,
        size,
        atime: times.atime,
        ctime: times.ctime,
        mtime: times.mtime,
        crtime: if large { times.crtime } else { None },
        // Past the limit (dir_nlink) a directory records 1: "too many to count".
        links: if p.links > LINK_MAX {
            1
        } else {
            p.links as u16
        },
        fs_blocks,
        flags,
        i_block,
        file_acl: p.xattr_block(),
        ibody_xattrs: xattr::encode_ibody(&ibody, ibody_space(plan.geometry.inode_size)),
    })
}

/// The inline form of a small file or directory: `i_block`, the
/// `system.data` value and the inode size.
fn inline_content(
    plan: &Plan<'_>,
    sources: &Sources,
    (ino, p): (u32, &InodePlan),
    node: &Node,
) -> Result<([u8; 60], Vec<u8>, u64), EmitError> {
    match &node.body {
        Body::File(f) => {
            let data = sources.read_whole(f)?;
            let (head, spill) = inline::split_file(&data);
            Ok((head, spill, f.size))
        }
        _ => {
            let (head, spill) = inline::encode_dir(p.parent, &dir_entries(plan, ino));
            let size = inline::dir_size(spill.len());
            Ok((head, spill, size))
        }
    }
}
