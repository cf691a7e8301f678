//! Group pieces: each group's superblock and descriptor table copies,
//! its bitmaps and its inode table.

use kiln_sink::Sink;

use super::files::Sources;
use super::records::write_inode_table;
use crate::group_desc;
use crate::layout::{JOURNAL_INO, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE};
use crate::plan::Plan;
use crate::resize;
use crate::superblock::{self, SuperblockInfo};
use crate::usage::Usage;
use crate::EmitError;

/// What every group piece shares: the superblock fields, the GDT and the
/// groups' bitmaps.
pub(super) struct Shared {
    sb: SuperblockInfo,
    gdt: Vec<u8>,
    usage: Usage,
}

/// What every group piece shares, worked out once.
pub(super) fn shared(plan: &Plan<'_>) -> Shared {
    let usage = Usage::new(plan);
    let journal_backup = (plan.journal_blocks > 0).then(|| {
        let j = plan.inode(JOURNAL_INO);
        (
            j.mapping.i_block(plan.geometry.block_size),
            u64::from(plan.journal_blocks) * u64::from(plan.geometry.block_size),
        )
    });
    let mut label = [0u8; 16];
    label[..plan.opts.label.len()].copy_from_slice(&plan.opts.label);
    Shared {
        sb: SuperblockInfo {
            features: *plan.features(),
            free_blocks: usage.free_blocks(),
            free_inodes: usage.free_inodes(),
            reserved_blocks: plan.reserved_blocks(),
            uuid: plan.opts.uuid,
            hash_seed: plan.opts.hash_seed,
            hash_alg: plan.opts.hash_alg.version(),
            label,
            time: fs_time(plan),
            journal_backup,
            raid: plan.opts.raid,
        },
        gdt: group_desc::encode_table(&plan.geometry, &usage.counts(), plan.csum_seed()),
        usage,
    }
}

/// The filesystem-level time, clamped to what the 32-bit fields hold.
fn fs_time(plan: &Plan<'_>) -> u32 {
    plan.opts.timestamp.clamp(0, i64::from(u32::MAX)) as u32
}

/// Writes group `g`'s piece.
pub(super) fn write_group(
    plan: &Plan<'_>,
    shared: &Shared,
    sources: &Sources,
    sink: &dyn Sink,
    g: u32,
) -> Result<(), EmitError> {
    let geo = &plan.geometry;
    if g == 0 {
        zero_boot_area(sink, geo.block_size)?;
    }
    if geo.has_super(g) {
        sink.write_at(
            geo.superblock_offset(g),
            &superblock::encode(geo, &shared.sb, g),
        )?;
        sink.write_at(geo.offset(geo.group_start(g) + 1), &shared.gdt)?;
        if g == 0 && plan.resize_dind != 0 {
            let rsv = resize::encode_reserved_gdt(geo);
            let at = geo.group_start(0) + 1 + u64::from(geo.gdt_blocks);
            sink.write_at(geo.offset(at), &rsv)?;
        }
    }
    let usage = &shared.usage;
    sink.write_at(geo.offset(geo.block_bitmap(g)), usage.block_bitmap(g))?;
    sink.write_at(geo.offset(geo.inode_bitmap(g)), usage.inode_bitmap(g))?;
    let used = write_inode_table(plan, sources, sink, g)?;
    let at = geo.offset(geo.inode_table(g));
    // The descriptors say the tables are zeroed (BG_INODE_ZEROED).
    let table_bytes = u64::from(geo.inode_table_blocks) * u64::from(geo.block_size);
    sink.zero(at + used..at + table_bytes)?;
    Ok(())
}

/// Declares zero the rest of the blocks that hold the primary superblock:
/// the boot area before it, where an old filesystem's or partition table's
/// signature would otherwise survive on a device (mke2fs clears it too),
/// and with blocks over 2 KiB what follows it in block 0.
fn zero_boot_area(sink: &dyn Sink, block_size: u32) -> Result<(), EmitError> {
    sink.zero(0..SUPERBLOCK_OFFSET)?;
    let sb_end = SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE as u64;
    if u64::from(block_size) > sb_end {
        sink.zero(sb_end..u64::from(block_size))?;
    }
    Ok(())
}
