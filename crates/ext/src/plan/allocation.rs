//! Allocation: one cursor hands out blocks in ascending order, inode by
//! inode, skipping the metadata; so used blocks are everything below the
//! cursor plus the metadata above it, and the bitmaps and free counts of
//! every group follow from the cursor and the last inode number.

use std::ops::Range;

use super::Plan;
use crate::alloc::Cursor;
use crate::features;
use crate::PlanError;

impl Plan<'_> {
    /// Hands out blocks: resize inode, then every inode in number order.
    pub(super) fn allocate(&mut self) -> Result<(), PlanError> {
        // The cursor reads a copy of the geometry, so the starts can be
        // kept as it goes.
        let geo = self.geometry.clone();
        let mut cursor = Cursor::new(&geo);
        if self.features().has(features::RESIZE_INODE) {
            self.resize_dind = cursor.next();
        }
        for ino in 1..=self.last_ino() {
            let start = cursor.position();
            self.place(ino, &mut cursor);
            self.inodes[(ino - 1) as usize].set_start(start);
        }
        if cursor.overflow {
            return Err(PlanError::TooSmall {
                needed: None,
                have: self.image_size,
                inodes: None,
            });
        }
        self.cursor = cursor.position();
        Ok(())
    }

    /// Blocks used in group `g` (metadata plus the allocated prefix).
    pub(crate) fn used_blocks(&self, g: u32) -> u32 {
        self.used_ranges(g).map(|r| r.end - r.start).sum()
    }

    /// The used blocks of group `g`, relative to its start: everything below
    /// the cursor (allocated or metadata), then the metadata above it.
    pub(crate) fn used_ranges(&self, g: u32) -> impl Iterator<Item = Range<u32>> + '_ {
        let geo = &self.geometry;
        let (start, end) = (geo.group_start(g), geo.group_end(g));
        let below = self.cursor.clamp(start, end);
        let prefix = (below > start).then_some(0..(below - start) as u32);
        let above = geo
            .metadata_in(below..end)
            .map(move |r| (r.start - start) as u32..(r.end - start) as u32);
        prefix.into_iter().chain(above)
    }

    /// Inodes used in group `g` (a prefix of the group's inodes).
    pub(crate) fn used_inodes(&self, g: u32) -> u32 {
        let ipg = self.geometry.inodes_per_group;
        self.last_ino().saturating_sub(g * ipg).min(ipg)
    }

    /// Free blocks and free inodes of the finished image (what its
    /// superblock says).
    pub fn free_counts(&self) -> (u64, u64) {
        let geo = &self.geometry;
        let blocks = (0..geo.groups)
            .map(|g| geo.group_blocks(g) - self.used_blocks(g))
            .map(u64::from)
            .sum();
        let inodes = u64::from(geo.inodes_count()) - u64::from(self.last_ino());
        (blocks, inodes)
    }

    /// A warning when the finished image has almost no room left: under
    /// 1 % of its blocks or of its inodes free (`--size auto` without
    /// `--free` is the smallest image that holds the tree, full by design).
    pub fn low_room(&self) -> Option<String> {
        let geo = &self.geometry;
        let (free_blocks, free_inodes) = self.free_counts();
        let (blocks, inodes) = (geo.blocks_count, u64::from(geo.inodes_count()));
        let low = |free: u64, all: u64| free * 100 < all;
        (low(free_blocks, blocks) || low(free_inodes, inodes)).then(|| {
            format!(
                "the filesystem is almost full: {free_blocks} of {blocks} blocks and \
                 {free_inodes} of {inodes} inodes free; give room with --free \
                 (and --free-inodes) or a larger --size"
            )
        })
    }
}
