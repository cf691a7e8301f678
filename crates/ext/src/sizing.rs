//! Sizing: the geometry that holds a tree, for a fixed image size (or the
//! error that says how large it must be) or the smallest one with headroom.

use crate::alloc::Mapping;
use crate::features;
use crate::geometry::{Geometry, GeometryInput};
use crate::layout::{
    default_journal_blocks, DEFAULT_BYTES_PER_INODE, MIN_BLOCKS_FOR_JOURNAL, MIN_JOURNAL_BLOCKS,
};
use crate::{BuildOptions, PlanError};

/// Works out the geometry from the tree's needs and the options.
pub(crate) struct Sizing<'o> {
    pub(crate) opts: &'o BuildOptions,
    /// Blocks of every inode of the tree (not the journal or resize inode).
    pub(crate) data_blocks: u64,
    pub(crate) used_inodes: u64,
}

impl Sizing<'_> {
    /// The inode count asked for (or picked) for `blocks` blocks.
    fn inodes_for(&self, blocks: u64) -> u64 {
        let bytes = blocks * u64::from(self.opts.block_size);
        match (self.opts.inodes, self.opts.bytes_per_inode) {
            (Some(n), _) => n,
            (None, Some(ratio)) => bytes / ratio,
            (None, None) => {
                (bytes / DEFAULT_BYTES_PER_INODE).max(self.used_inodes + self.used_inodes / 4 + 16)
            }
        }
    }

    fn journal_blocks(&self, blocks: u64) -> Result<u32, PlanError> {
        if !self.opts.features.has(features::HAS_JOURNAL) {
            return Ok(0);
        }
        if blocks < MIN_BLOCKS_FOR_JOURNAL {
            return Err(PlanError::TooSmall {
                needed: Some(MIN_BLOCKS_FOR_JOURNAL * u64::from(self.opts.block_size)),
                have: blocks * u64::from(self.opts.block_size),
            });
        }
        let j = match self.opts.journal_size {
            Some(bytes) => bytes / u64::from(self.opts.block_size),
            None => u64::from(default_journal_blocks(blocks)),
        };
        if j < u64::from(MIN_JOURNAL_BLOCKS) || j > blocks / 2 {
            return Err(PlanError::Options(format!(
                "journal of {j} blocks (must be {MIN_JOURNAL_BLOCKS} blocks up to half the filesystem, {} blocks)",
                blocks / 2
            )));
        }
        Ok(j as u32)
    }

    /// Checks that a filesystem of `blocks` blocks holds everything.
    fn try_blocks(&self, blocks: u64) -> Result<(Geometry, u32), PlanError> {
        let f = &self.opts.features;
        let geo = Geometry::new(GeometryInput {
            block_size: self.opts.block_size,
            blocks,
            inodes: self.inodes_for(blocks),
            inode_size: self.opts.inode_size,
            resize_inode: f.has(features::RESIZE_INODE) && blocks <= u64::from(u32::MAX),
            sparse_super: f.has(features::SPARSE_SUPER),
            flex_bg: f.has(features::FLEX_BG),
            bit64: f.has(features::BIT64),
        })?;
        let inodes = u64::from(geo.inodes_count());
        if inodes < self.used_inodes {
            return Err(PlanError::NotEnoughInodes {
                needed: self.used_inodes,
                have: inodes,
            });
        }
        let journal = self.journal_blocks(geo.blocks_count)?;
        let extents = self.opts.features.has(features::EXTENT);
        let journal_blocks = Mapping::blocks_needed(&[0..journal], geo.block_size, extents);
        let need = self.data_blocks + journal_blocks + 1;
        if need > geo.data_capacity() {
            return Err(PlanError::TooSmall {
                needed: None,
                have: blocks * u64::from(geo.block_size),
            });
        }
        Ok((geo, journal))
    }

    /// A fixed size: it fits, or the error says how large it must be.
    pub(crate) fn fixed(&self, blocks: u64) -> Result<(Geometry, u32), PlanError> {
        match self.try_blocks(blocks) {
            Err(PlanError::TooSmall { .. }) | Err(PlanError::TooManyInodes { .. }) => {
                let needed = self
                    .smallest()
                    .ok()
                    .map(|(g, _)| g.blocks_count * u64::from(g.block_size));
                Err(PlanError::TooSmall {
                    needed,
                    have: blocks * u64::from(self.opts.block_size),
                })
            }
            other => other,
        }
    }

    /// The smallest filesystem that holds the tree.
    fn smallest(&self) -> Result<(Geometry, u32), PlanError> {
        let max = if self.opts.features.has(features::BIT64) {
            1 << 48
        } else {
            u64::from(u32::MAX)
        };
        let mut blocks = (self.data_blocks + 64).max(MIN_BLOCKS_FOR_JOURNAL);
        // Each failed try grows by at least 1/16: few rounds even for huge trees.
        loop {
            match self.try_blocks(blocks) {
                Ok(fit) => return Ok(fit),
                Err(PlanError::TooSmall { .. })
                | Err(PlanError::TooManyInodes { .. })
                | Err(PlanError::NotEnoughInodes { .. })
                    if blocks < max =>
                {
                    blocks = (blocks + blocks / 16 + 16).min(max);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The smallest filesystem with 10% more room than the tree needs plus 1 MiB.
    pub(crate) fn auto(&self) -> Result<(Geometry, u32), PlanError> {
        let bs = u64::from(self.opts.block_size);
        let roomy = Sizing {
            opts: self.opts,
            data_blocks: self.data_blocks + self.data_blocks / 10 + (1 << 20) / bs,
            used_inodes: self.used_inodes,
        };
        roomy.smallest()
    }
}
