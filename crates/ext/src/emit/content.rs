//! Inode blocks: everything an inode holds outside the inode table
//! (directory blocks, a slow symlink's target, the journal superblock,
//! index blocks, the xattr block), written through its block map; regular
//! files are copied by [`files`](super::files).

use kiln_sink::Sink;
use kiln_tree::{Body, Node};

use super::files::{self, Sources};
use crate::alloc::Mapping;
use crate::dir::{ftype, DirEntry};
use crate::layout::{LOST_FOUND_INO, ROOT_INO};
use crate::plan::{adds_lost_found, InodePlan, Plan, Slot, LOST_FOUND};
use crate::{checksum, journal, orphan, xattr, EmitError};

/// Writes every block of inode `ino`: content, index blocks, xattr block.
pub(super) fn write_inode_blocks(
    plan: &Plan<'_>,
    sources: &Sources,
    sink: &dyn Sink,
    ino: u32,
) -> Result<(), EmitError> {
    let p = plan.inode(ino);
    let geo = &plan.geometry;
    let bs = geo.block_size;
    let inode_seed = plan.csum_seed().map(|s| checksum::inode_seed(s, ino, 0));
    let index = p.mapping.index_blocks(bs, inode_seed);
    if p.xattr_block() != 0 {
        let block = xattr::encode_block(
            p.block_xattrs(),
            bs as usize,
            p.xattr_block(),
            plan.csum_seed(),
        );
        sink.write_at(geo.offset(p.xattr_block()), &block)?;
    }
    let content = match p.slot {
        Slot::Node(id) => match &plan.tree.node(id).body {
            Body::File(f) => return files::write_file(plan, sources, sink, &p.mapping, &index, f),
            Body::Symlink(t) => t.clone(),
            Body::Dir(_) => dir_content(plan, ino, &p),
            _ => Vec::new(),
        },
        Slot::LostFound => dir_content(plan, ino, &p),
        Slot::OrphanFile => {
            write_index_blocks(plan, sink, &index)?;
            return write_orphan_blocks(plan, sink, ino, &p.mapping);
        }
        Slot::Journal => journal::encode_superblock(
            bs,
            plan.journal_blocks,
            &plan.opts.uuid,
            plan.csum_seed().is_some(),
        ),
        Slot::Empty | Slot::Resize => Vec::new(),
    };
    write_index_blocks(plan, sink, &index)?;
    write_logical(plan, sink, &p.mapping, &content)
}

/// Writes the orphan file's blocks: each empty, its checksum over its own
/// physical block number.
fn write_orphan_blocks(
    plan: &Plan<'_>,
    sink: &dyn Sink,
    ino: u32,
    mapping: &Mapping,
) -> Result<(), EmitError> {
    let geo = &plan.geometry;
    for run in mapping.data_runs() {
        for pblk in run.pblk..run.pblk + u64::from(run.len) {
            let block = orphan::encode_block(geo.block_size, plan.csum_seed(), ino, pblk);
            sink.write_at(geo.offset(pblk), &block)?;
        }
    }
    Ok(())
}

/// Writes index blocks (indirect blocks, extent tree nodes) where they go.
pub(super) fn write_index_blocks(
    plan: &Plan<'_>,
    sink: &dyn Sink,
    index: &[(u64, Vec<u8>)],
) -> Result<(), EmitError> {
    for (block, content) in index {
        sink.write_at(plan.geometry.offset(*block), content)?;
    }
    Ok(())
}

/// Writes `content` (logical block 0 onwards) through the block map.
pub(super) fn write_logical(
    plan: &Plan<'_>,
    sink: &dyn Sink,
    mapping: &Mapping,
    content: &[u8],
) -> Result<(), EmitError> {
    let geo = &plan.geometry;
    let bs = geo.block_size as usize;
    for run in mapping.data_runs() {
        let start = (run.lblk as usize * bs).min(content.len());
        let end = (run.lblk as usize * bs + run.len as usize * bs).min(content.len());
        let at = geo.offset(run.pblk);
        sink.write_at(at, &content[start..end])?;
        zero_run_tail(sink, at, run.len, bs as u64, (end - start) as u64)?;
    }
    Ok(())
}

/// Declares zero what a run of `len` blocks at byte `at` holds past its
/// first `written` bytes (the journal past its superblock, a symlink's or a
/// file's last block): a fresh sparse file has zeros there already, a block
/// device or an existing file may not.
pub(super) fn zero_run_tail(
    sink: &dyn Sink,
    at: u64,
    len: u32,
    bs: u64,
    written: u64,
) -> Result<(), EmitError> {
    let run_bytes = u64::from(len) * bs;
    Ok(sink.zero(at + written..at + run_bytes)?)
}

/// The directory blocks of directory inode `ino`, planned as `p`.
fn dir_content(plan: &Plan<'_>, ino: u32, p: &InodePlan) -> Vec<u8> {
    let blocks = p.mapping.data_blocks() as u32;
    plan.dir_format.encode(
        ino,
        0,
        p.parent,
        &dir_entries(plan, ino),
        blocks,
        ino != LOST_FOUND_INO,
    )
}

/// The entries of directory inode `ino` besides "." and "..".
pub(super) fn dir_entries<'t>(plan: &Plan<'t>, ino: u32) -> Vec<DirEntry<'t>> {
    let mut entries = Vec::new();
    if let Slot::Node(id) = plan.slot(ino) {
        let tree = plan.tree;
        if ino == ROOT_INO && adds_lost_found(tree) {
            entries.push(DirEntry {
                ino: LOST_FOUND_INO,
                file_type: ftype::DIR,
                name: LOST_FOUND,
            });
        }
        for (name, child) in tree.node(id).entries() {
            entries.push(DirEntry {
                ino: plan.ino_of[child],
                file_type: file_type(tree.node(child)),
                name,
            });
        }
    }
    if !plan.dir_format.filetype {
        // Without the filetype feature the byte is the high half of name_len.
        entries.iter_mut().for_each(|e| e.file_type = 0);
    }
    entries
}

fn file_type(node: &Node) -> u8 {
    match node.body {
        Body::Dir(_) => ftype::DIR,
        Body::File(_) => ftype::REG,
        Body::Symlink(_) => ftype::SYMLINK,
        Body::CharDevice(..) => ftype::CHR,
        Body::BlockDevice(..) => ftype::BLK,
        Body::Fifo => ftype::FIFO,
        Body::Socket => ftype::SOCK,
    }
}
