//! Usage: what each group has in use, worked out once per build from the
//! plan: its free block and inode counts, its directories, its block and
//! inode bitmaps and their checksums. The group descriptors take the counts
//! and checksums, emit writes the bitmaps: neither renders them again.
//!
//! Used blocks are everything below the allocation cursor plus the metadata
//! above it, and used inodes are a prefix, so most groups share one of a
//! few bitmaps (full; free but for a superblock backup; free): a bitmap is
//! known by its used ranges, and each distinct one is rendered and
//! checksummed once, however many groups have it. A build therefore holds a
//! handful of bitmap blocks, not two per group.

use std::collections::HashMap;
use std::ops::Range;

use crate::bitmap;
use crate::group_desc::GroupCounts;
use crate::plan::Plan;

/// Every group's counts and bitmaps.
pub(crate) struct Usage {
    groups: Vec<GroupUsage>,
    /// The distinct bitmaps, each once; groups refer to them by index.
    bitmaps: Vec<Vec<u8>>,
}

/// One group's counts (bitmap checksums included) and its bitmaps.
struct GroupUsage {
    counts: GroupCounts,
    block_bitmap: usize,
    inode_bitmap: usize,
}

/// What decides a bitmap's bytes.
#[derive(PartialEq, Eq, Hash)]
enum Shape {
    /// A block bitmap: the used ranges and the group's block count.
    Blocks(Vec<Range<u32>>, u32),
    /// An inode bitmap: the used prefix and the inodes per group.
    Inodes(u32, u32),
}

impl Usage {
    /// Works out the usage of every group of `plan`.
    pub(crate) fn new(plan: &Plan<'_>) -> Usage {
        let geo = &plan.geometry;
        let seed = plan.csum_seed();
        let mut renderer = Renderer::default();
        let mut groups: Vec<GroupUsage> = (0..geo.groups)
            .map(|g| {
                let used: Vec<Range<u32>> = plan.used_ranges(g).collect();
                let used_blocks = used.iter().map(|r| r.end - r.start).sum::<u32>();
                let used_inodes = plan.used_inodes(g);
                let (block_bitmap, block_csum) = renderer.get(
                    Shape::Blocks(used, geo.group_blocks(g)),
                    geo.block_size,
                    seed.map(|s| (s, geo.blocks_per_group)),
                );
                let (inode_bitmap, inode_csum) = renderer.get(
                    Shape::Inodes(used_inodes, geo.inodes_per_group),
                    geo.block_size,
                    seed.map(|s| (s, geo.inodes_per_group)),
                );
                GroupUsage {
                    counts: GroupCounts {
                        free_blocks: geo.group_blocks(g) - used_blocks,
                        free_inodes: geo.inodes_per_group - used_inodes,
                        used_dirs: 0,
                        bitmap_csums: (block_csum, inode_csum),
                    },
                    block_bitmap,
                    inode_bitmap,
                }
            })
            .collect();
        for ino in (1..=plan.last_ino()).filter(|&ino| plan.is_dir(ino)) {
            groups[geo.group_of_inode(ino) as usize].counts.used_dirs += 1;
        }
        Usage {
            groups,
            bitmaps: renderer.bitmaps,
        }
    }

    /// The counts of each group's descriptor, in group order.
    pub(crate) fn counts(&self) -> Vec<GroupCounts> {
        self.groups.iter().map(|g| g.counts).collect()
    }

    /// Free blocks of the whole filesystem.
    pub(crate) fn free_blocks(&self) -> u64 {
        self.groups
            .iter()
            .map(|g| u64::from(g.counts.free_blocks))
            .sum()
    }

    /// Free inodes of the whole filesystem.
    pub(crate) fn free_inodes(&self) -> u32 {
        self.groups.iter().map(|g| g.counts.free_inodes).sum()
    }

    /// Group `g`'s block bitmap.
    pub(crate) fn block_bitmap(&self, g: u32) -> &[u8] {
        &self.bitmaps[self.groups[g as usize].block_bitmap]
    }

    /// Group `g`'s inode bitmap.
    pub(crate) fn inode_bitmap(&self, g: u32) -> &[u8] {
        &self.bitmaps[self.groups[g as usize].inode_bitmap]
    }
}

/// Renders each distinct bitmap once.
#[derive(Default)]
struct Renderer {
    bitmaps: Vec<Vec<u8>>,
    /// Each shape rendered so far: its index in `bitmaps` and its checksum.
    known: HashMap<Shape, (usize, u32)>,
}

impl Renderer {
    /// The index and checksum (0 without metadata_csum; with it, `csum` is
    /// the filesystem seed and the bits per group) of the bitmap of `shape`.
    fn get(&mut self, shape: Shape, block_size: u32, csum: Option<(u32, u32)>) -> (usize, u32) {
        if let Some(&known) = self.known.get(&shape) {
            return known;
        }
        let bitmap = match &shape {
            Shape::Blocks(used, blocks) => {
                bitmap::encode(block_size, used.iter().cloned(), *blocks)
            }
            Shape::Inodes(used, per_group) => bitmap::encode(block_size, [0..*used], *per_group),
        };
        let sum = csum.map_or(0, |(seed, bits)| bitmap::checksum(seed, &bitmap, bits));
        let entry = (self.bitmaps.len(), sum);
        self.bitmaps.push(bitmap);
        self.known.insert(shape, entry);
        entry
    }
}
