//! Sizing: the geometry that holds a tree, for a fixed image size (or the
//! error that says how large it must be) or the smallest one with headroom.

use crate::alloc::Mapping;
use crate::error::InodeAsk;
use crate::features;
use crate::geometry::{Geometry, GeometryInput};
use crate::layout::{
    default_journal_blocks, DEFAULT_BYTES_PER_INODE, MIN_BLOCKS_FOR_JOURNAL, MIN_JOURNAL_BLOCKS,
};
use crate::options::{AutoSize, FreeSpace};
use crate::{BuildOptions, PlanError};

/// Works out the geometry from the tree's needs and the options.
pub(crate) struct Sizing<'o> {
    pub(crate) opts: &'o BuildOptions,
    /// Blocks of every inode of the tree (not the journal or resize inode).
    pub(crate) data_blocks: u64,
    pub(crate) used_inodes: u64,
}

/// How many inodes a size gets, unless `-N` or `-i` say.
#[derive(Clone, Copy)]
enum InodeRule {
    /// One per 16 KiB, never fewer than the tree's plus a quarter (mke2fs's
    /// ratio, with room).
    Default,
    /// Exactly this many (the tree's plus the free inodes asked for).
    Exactly(u64),
}

impl Sizing<'_> {
    /// The inode count asked for (or picked) for `blocks` blocks, and the
    /// count the filesystem must hold at least: the tree's, or all of an
    /// exact count.
    fn inodes_for(&self, blocks: u64, rule: InodeRule) -> (u64, u64) {
        let bytes = blocks * u64::from(self.opts.block_size);
        match (self.opts.inodes, self.opts.bytes_per_inode, rule) {
            (Some(n), _, _) => (n, self.used_inodes),
            (None, Some(ratio), _) => (bytes / ratio, self.used_inodes),
            (None, None, InodeRule::Exactly(n)) => (n, n),
            (None, None, InodeRule::Default) => (
                (bytes / DEFAULT_BYTES_PER_INODE).max(self.used_inodes + self.used_inodes / 4 + 16),
                self.used_inodes,
            ),
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
                inodes: None,
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
    fn try_blocks(&self, blocks: u64, rule: InodeRule) -> Result<(Geometry, u32), PlanError> {
        let f = &self.opts.features;
        let (inodes, min_inodes) = self.inodes_for(blocks, rule);
        let geo = Geometry::new(GeometryInput {
            block_size: self.opts.block_size,
            blocks,
            inodes,
            min_inodes,
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
                inodes: None,
            });
        }
        Ok((geo, journal))
    }

    /// A fixed size: it fits, or the error says how large it must be.
    pub(crate) fn fixed(&self, blocks: u64) -> Result<(Geometry, u32), PlanError> {
        match self.try_blocks(blocks, InodeRule::Default) {
            Err(PlanError::TooSmall { .. }) | Err(PlanError::TooManyInodes { .. }) => {
                let needed = self
                    .smallest(InodeRule::Default, 0)
                    .ok()
                    .map(|(g, _)| g.blocks_count * u64::from(g.block_size));
                let inodes = match (self.opts.inodes, self.opts.bytes_per_inode) {
                    (Some(n), _) => Some(InodeAsk::Count(n)),
                    (None, Some(i)) => Some(InodeAsk::BytesPerInode(i)),
                    (None, None) => None,
                };
                Err(PlanError::TooSmall {
                    needed,
                    have: blocks * u64::from(self.opts.block_size),
                    inodes,
                })
            }
            other => other,
        }
    }

    /// The smallest filesystem that holds the tree: steps up until one
    /// fits, then bisects between the last that did not and the first that
    /// did. (Whether a size fits is computed from the geometry alone: no
    /// trial builds.)
    fn smallest(&self, rule: InodeRule, floor: u64) -> Result<(Geometry, u32), PlanError> {
        let max = if self.opts.features.has(features::BIT64) {
            1 << 48
        } else {
            u64::from(u32::MAX)
        };
        let fits = |blocks| match self.try_blocks(blocks, rule) {
            Ok(fit) => Ok(Some(fit)),
            Err(PlanError::TooSmall { .. })
            | Err(PlanError::TooManyInodes { .. })
            | Err(PlanError::NotEnoughInodes { .. })
                if blocks < max =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        };
        // Nothing smaller than the data itself fits (the metadata needs room).
        let mut low = self.data_blocks.max(floor.saturating_sub(1));
        let mut high = (self.data_blocks + 64)
            .max(MIN_BLOCKS_FOR_JOURNAL)
            .max(low + 1);
        // Each failed step grows by at least 1/16: few rounds even for huge trees.
        let mut fit = loop {
            match fits(high)? {
                Some(fit) => break fit,
                None => {
                    low = high;
                    high = (high + high / 16 + 16).min(max);
                }
            }
        };
        // `low` did not fit (or is below anything that could); `high` fits.
        while high - low > 1 {
            let mid = low + (high - low) / 2;
            match fits(mid)? {
                Some(f) => {
                    high = mid;
                    fit = f;
                }
                None => low = mid,
            }
        }
        Ok(fit)
    }

    /// The inodes that `blocks` more blocks would hold if they were filled
    /// as the tree fills its own (rounded up).
    fn inodes_at_tree_ratio(&self, blocks: u64) -> u64 {
        let per = u128::from(self.used_inodes) * u128::from(blocks);
        per.div_ceil(u128::from(self.data_blocks.max(1))) as u64
    }

    /// The size of an image without a fixed size, as `opts.auto` asks.
    pub(crate) fn auto(&self) -> Result<(Geometry, u32), PlanError> {
        let bs = u64::from(self.opts.block_size);
        // The roomy default never goes below 2048 blocks (what kiln always
        // made); the exact size is the smallest there is.
        let (extra_blocks, rule, floor) = match self.opts.auto {
            AutoSize::Roomy => (
                self.data_blocks / 10 + (1 << 20) / bs,
                InodeRule::Default,
                MIN_BLOCKS_FOR_JOURNAL,
            ),
            AutoSize::Exact { free, free_inodes } => {
                let free_bytes = match free {
                    FreeSpace::Bytes(n) => n,
                    FreeSpace::Percent(p) => {
                        (self.data_blocks as f64 * bs as f64 * p / 100.0) as u64
                    }
                };
                let free_blocks = free_bytes.div_ceil(bs);
                let free_inodes =
                    free_inodes.unwrap_or_else(|| self.inodes_at_tree_ratio(free_blocks));
                let inodes = self.used_inodes + free_inodes;
                (free_blocks, InodeRule::Exactly(inodes), 0)
            }
        };
        let sized = Sizing {
            opts: self.opts,
            data_blocks: self.data_blocks + extra_blocks,
            used_inodes: self.used_inodes,
        };
        sized.smallest(rule, floor)
    }
}
