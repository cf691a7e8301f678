//! Structural checks of an image for `kiln verify`, beyond what `ext4-view`
//! reads: block and inode bitmaps against what the metadata and the inodes
//! actually use, the free and directory counts of the group descriptors and
//! the superblock, link counts, `i_blocks`, blocks claimed twice, and the
//! metadata_csum checksums of descriptors, bitmaps, inodes, xattr blocks,
//! directory blocks and extent tree blocks.
//!
//! Nothing holds a bitmap of the whole filesystem: used blocks are collected
//! as ranges, sorted and merged, then compared group by group.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;

use crate::alloc::EXTENTS_FL;
use crate::bitmap::set_bits;
use crate::checksum::{crc32c, inode_seed};
use crate::error::ReadError;
use crate::features;
use crate::geometry::{merge, Geometry};
use crate::group_desc::{self, GroupDesc, BG_BLOCK_UNINIT, BG_INODE_UNINIT};
use crate::htree::INDEX_FL;
use crate::inode::{self, mode, InodeView};
use crate::layout::{IND_SLOT, LINK_MAX, RESIZE_INO};
use crate::le::get_u32;
use crate::reader::{FileMap, ImageReader, WalkEntry};
use crate::superblock::SuperblockView;
use crate::{dir, extent, htree, xattr};

/// `s_feature_incompat`: meta_bg descriptor layout (not checked).
const INCOMPAT_META_BG: u32 = 0x10;
/// `s_feature_ro_compat`: uninit_bg (gdt_csum), CRC16 descriptor checksums.
const RO_COMPAT_GDT_CSUM: u32 = 0x10;
/// `s_feature_ro_compat`: bigalloc (bitmaps count clusters; not checked).
const RO_COMPAT_BIGALLOC: u32 = 0x200;

/// One inconsistency found by [`check_image`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// What is wrong, naming the group, inode or blocks.
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

/// What [`check_image`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckReport {
    /// The first problems found, at most the limit asked for.
    pub problems: Vec<Problem>,
    /// How many problems were found in all (`problems` may hold fewer).
    pub total: usize,
    /// Checks that were not done, and why (features the checker does not
    /// know how to check).
    pub skipped: Vec<String>,
}

impl CheckReport {
    /// Whether no problem was found.
    pub fn is_clean(&self) -> bool {
        self.total == 0
    }

    /// Problems found beyond those in `problems` ("and N more").
    pub fn more(&self) -> usize {
        self.total - self.problems.len()
    }
}

/// Checks the structures of the filesystem read by `reader`, given the full
/// walk from the root (`reader.walk(2)`), and returns at most `limit`
/// problems (plus the total count found).
///
/// Open `reader` with checksums off ([`ImageReader::set_checksums`]): the
/// check reports every mismatch itself, where the reader would stop at the
/// first.
///
/// Corrupt structures are problems; an error is returned only when the image
/// cannot be read at all (an IO error, or a group descriptor table that does
/// not fit in memory).
pub fn check_image(
    reader: &ImageReader,
    walk: &[WalkEntry],
    limit: usize,
) -> Result<CheckReport, ReadError> {
    let mut c = Checker::new(reader, limit)?;
    let sb = reader.superblock();
    c.check_superblock();
    if sb.features.incompat & INCOMPAT_META_BG != 0
        || sb.features.ro_compat & RO_COMPAT_BIGALLOC != 0
    {
        c.report.skipped.push(
            "meta_bg and bigalloc layouts are not checked: no bitmap, count or checksum check was done"
                .into(),
        );
        return Ok(c.report);
    }
    if sb.features.ro_compat & RO_COMPAT_GDT_CSUM != 0 && c.csum_seed.is_none() {
        c.report
            .skipped
            .push("the CRC16 group descriptor checksums of uninit_bg are not checked".into());
    }
    c.check_descriptors()?;
    let inodes = c.check_inodes(walk)?;
    c.check_links(walk, &inodes);
    let used = c.merge_used();
    let free_blocks = c.check_block_bitmaps(&used)?;
    let free_inodes = c.check_inode_bitmaps(&inodes)?;
    if sb.free_blocks != free_blocks {
        c.problem(format!(
            "superblock: {} free blocks recorded, {free_blocks} counted",
            sb.free_blocks
        ));
    }
    if u64::from(sb.free_inodes) != free_inodes {
        c.problem(format!(
            "superblock: {} free inodes recorded, {free_inodes} counted",
            sb.free_inodes
        ));
    }
    Ok(c.report)
}

/// What the checker learned of one in-use inode.
#[derive(Clone, Copy, Debug)]
struct InodeInfo {
    is_dir: bool,
    links: u16,
}

/// The state of one check.
struct Checker<'r> {
    r: &'r ImageReader,
    sb: &'r SuperblockView,
    limit: usize,
    report: CheckReport,
    /// The metadata_csum seed, if metadata_csum is on.
    csum_seed: Option<u32>,
    /// Whether the descriptors' flags and `bg_itable_unused` are valid
    /// (they are only with group checksums).
    group_csums: bool,
    /// The superblock's counts and group arithmetic.
    geo: Geometry,
    descs: Vec<GroupDesc>,
    /// Groups whose descriptor points outside the filesystem.
    bad_groups: HashSet<u32>,
    /// Used block ranges and their owner (0: filesystem metadata).
    used: Vec<(Range<u64>, u32)>,
    /// Metadata ranges alone, for groups with uninitialised block bitmaps.
    metadata: Vec<Range<u64>>,
}

impl<'r> Checker<'r> {
    fn new(r: &'r ImageReader, limit: usize) -> Result<Checker<'r>, ReadError> {
        let sb = r.superblock();
        let geo = r.geometry().clone();
        let csum_seed = sb
            .features
            .has(features::METADATA_CSUM)
            .then_some(sb.csum_seed);
        Ok(Checker {
            r,
            sb,
            limit,
            report: CheckReport::default(),
            csum_seed,
            group_csums: csum_seed.is_some() || sb.features.ro_compat & RO_COMPAT_GDT_CSUM != 0,
            geo,
            descs: Vec::new(),
            bad_groups: HashSet::new(),
            used: Vec::new(),
            metadata: Vec::new(),
        })
    }

    /// Reports what makes the image unsafe to read or mount as it is:
    /// features nobody named, incompat features kiln's reader refuses, a
    /// journal that needs recovery, a filesystem larger than its partition.
    fn check_superblock(&mut self) {
        let features = self.sb.features;
        let unknown = features.unknown();
        if !unknown.is_empty() {
            self.problem(format!(
                "superblock: unknown features {}",
                unknown.join(" ")
            ));
        }
        let unreadable: Vec<String> = features
            .unreadable()
            .into_iter()
            .filter(|name| !unknown.contains(name))
            .collect();
        if !unreadable.is_empty() {
            self.problem(format!(
                "superblock: incompatible features kiln cannot read: {}",
                unreadable.join(" ")
            ));
        }
        if features.needs_recovery() {
            self.problem(
                "superblock: the journal needs recovery (needs_recovery): the metadata read may be stale"
                    .into(),
            );
        }
        if let Some(e) = self.r.larger_than_partition() {
            self.problem(e.to_string());
        }
    }

    /// Records a problem.
    fn problem(&mut self, what: String) {
        self.report.total += 1;
        if self.report.problems.len() < self.limit {
            self.report.problems.push(Problem { what });
        }
    }

    /// Records a read failure that corrupt metadata explains as a problem;
    /// returns an I/O failure (the image cannot be read).
    fn soft(&mut self, context: &str, e: ReadError) -> Result<(), ReadError> {
        match e {
            ReadError::Io(_) => Err(e),
            e => {
                self.problem(format!("{context}{e}"));
                Ok(())
            }
        }
    }

    fn block_size(&self) -> u64 {
        u64::from(self.geo.block_size)
    }

    /// Decodes the descriptors, checks their checksums and that their
    /// bitmaps and inode tables lie inside the filesystem, and collects
    /// every group's metadata blocks.
    fn check_descriptors(&mut self) -> Result<(), ReadError> {
        let raw = self.r.raw_gdt(self.geo.groups)?;
        let size = self.geo.desc_size as usize;
        let itb = u64::from(self.geo.inode_table_blocks);
        let fs = self.geo.first_data_block..self.geo.blocks_count;
        for g in 0..self.geo.groups {
            let d = &raw[g as usize * size..(g as usize + 1) * size];
            let desc = group_desc::decode(d);
            if let Some(seed) = self.csum_seed {
                let want = group_desc::checksum(seed, g, d);
                if desc.checksum != want {
                    self.problem(format!(
                        "group {g}: descriptor checksum {:#06x}, expected {want:#06x}",
                        desc.checksum
                    ));
                }
            }
            if self.geo.has_super(g) {
                let start = self.geo.group_start(g);
                let super_len = u64::from(self.geo.super_blocks(g));
                self.add_metadata(start..(start + super_len).min(self.geo.group_end(g)));
            }
            let places = [
                ("block bitmap", desc.block_bitmap, 1),
                ("inode bitmap", desc.inode_bitmap, 1),
                ("inode table", desc.inode_table, itb),
            ];
            for (what, at, len) in places {
                if at < fs.start || at.saturating_add(len) > fs.end {
                    self.problem(format!(
                        "group {g}: {what} at block {at} lies outside the filesystem"
                    ));
                    self.bad_groups.insert(g);
                } else {
                    self.add_metadata(at..at + len);
                }
            }
            self.descs.push(desc);
        }
        Ok(())
    }

    fn add_metadata(&mut self, r: Range<u64>) {
        self.metadata.push(r.clone());
        self.used.push((r, 0));
    }

    /// Checks every inode in use (the reserved ones that are not zero and
    /// every inode of the walk): its checksum, blocks, xattr block and
    /// `i_blocks`. Returns what the bitmaps and link counts need.
    fn check_inodes(&mut self, walk: &[WalkEntry]) -> Result<HashMap<u32, InodeInfo>, ReadError> {
        let first_ino = self.sb.first_ino;
        // The orphan file is in use, though no directory names it.
        let mut inos: Vec<u32> = (1..first_ino)
            .chain(self.sb.orphan_file_ino)
            .chain(walk.iter().map(|e| e.ino))
            .collect();
        inos.sort_unstable();
        inos.dedup();
        let mut out = HashMap::with_capacity(inos.len());
        // xattr block → (inodes naming it, first of them).
        let mut xattr_blocks: HashMap<u64, (u32, u32)> = HashMap::new();
        for ino in inos {
            let slot = match self.r.inode_slot(ino) {
                Ok(slot) => slot,
                Err(e) => {
                    self.soft(&format!("inode {ino}: "), e)?;
                    continue;
                }
            };
            let reserved = ino < first_ino;
            if reserved && slot.iter().all(|&b| b == 0) {
                continue;
            }
            let view = inode::decode(&slot, self.sb.features.has(features::BIT64));
            out.insert(
                ino,
                InodeInfo {
                    is_dir: view.mode & 0o170000 == mode::S_IFDIR,
                    links: view.links,
                },
            );
            let seed = self
                .csum_seed
                .map(|s| inode_seed(s, ino, inode::generation(&slot)));
            if let Some(seed) = seed {
                self.check_inode_checksum(ino, &slot, seed);
            }
            if view.file_acl != 0 {
                let entry = xattr_blocks.entry(view.file_acl).or_insert((0, ino));
                entry.0 += 1;
            }
            if ino == RESIZE_INO {
                // Its map is the reserved GDT blocks, metadata already; only
                // the double indirect block is its own.
                let dind = u64::from(get_u32(&view.i_block, (IND_SLOT + 1) * 4));
                if dind != 0 {
                    self.add_inode_blocks(ino, dind..dind + 1);
                }
                continue;
            }
            let map = match self.r.allocated_map(ino, &view) {
                Ok(map) => map,
                Err(e) => {
                    self.soft("", e)?;
                    continue;
                }
            };
            let mut held = u64::from(view.file_acl != 0);
            if let FileMap::Blocks { runs, index_blocks } = &map {
                for run in runs {
                    self.add_inode_blocks(ino, run.pblk..run.pblk + run.len);
                    held += run.len;
                }
                for &b in index_blocks {
                    self.add_inode_blocks(ino, b..b + 1);
                }
                held += index_blocks.len() as u64;
                if let Some(seed) = seed {
                    if view.flags & EXTENTS_FL != 0 {
                        for &b in index_blocks {
                            let block = self.r.read_block(b, "extent tree block")?;
                            if !extent::tail_matches(&block, seed) {
                                self.problem(format!(
                                    "inode {ino}: extent tree block {b} has a bad checksum"
                                ));
                            }
                        }
                    }
                    if view.mode & 0o170000 == mode::S_IFDIR {
                        self.check_dir_blocks(ino, &view, &map, seed)?;
                    }
                }
                if view.mode & 0o170000 == mode::S_IFDIR && view.flags & INDEX_FL != 0 {
                    self.check_htree(ino, &view, &map);
                }
            }
            self.check_i_blocks(ino, &slot, &view, held);
        }
        for (block, (refs, owner)) in xattr_blocks {
            self.check_xattr_block(block, refs, owner)?;
        }
        Ok(out)
    }

    fn add_inode_blocks(&mut self, ino: u32, r: Range<u64>) {
        self.used.push((r, ino));
    }

    /// The metadata_csum inode checksum: CRC32C of the slot with the
    /// checksum fields zeroed, from the inode's seed; the high half exists
    /// only when `i_extra_isize` covers it.
    fn check_inode_checksum(&mut self, ino: u32, slot: &[u8], seed: u32) {
        let (stored, want) = inode::checksums(slot, seed);
        if stored != want {
            self.problem(format!(
                "inode {ino}: checksum {stored:#010x}, expected {want:#010x}"
            ));
        }
    }

    /// Compares `i_blocks` with the blocks the inode holds.
    fn check_i_blocks(&mut self, ino: u32, slot: &[u8], view: &InodeView, held: u64) {
        let raw = inode::i_blocks(slot, self.sb.features.has(features::HUGE_FILE));
        let units = if view.flags & inode::HUGE_FILE_FL != 0 {
            held
        } else {
            held * (self.block_size() / 512)
        };
        if raw != units {
            self.problem(format!(
                "inode {ino}: i_blocks is {raw}, its blocks make {units}"
            ));
        }
    }

    /// Checks the index of a hash-indexed directory (see
    /// [`htree::check_index`]).
    fn check_htree(&mut self, ino: u32, view: &InodeView, map: &FileMap) {
        let bs = self.block_size();
        let mut read = |lblk: u64| {
            let mut block = vec![0u8; bs as usize];
            self.r
                .read_file(map, lblk * bs, &mut block)
                .map(|()| block)
                .map_err(|e| e.to_string())
        };
        let csum = self.csum_seed.is_some();
        let large_dir = self.sb.features.has(features::LARGE_DIR);
        if let Err(what) = htree::check_index(&mut read, view.size / bs, csum, large_dir) {
            self.problem(format!("inode {ino}: corrupt htree index: {what}"));
        }
    }

    /// Checks the checksums of a directory's blocks: the tail of each leaf,
    /// the dx_tail of each index block of a hash-indexed directory.
    fn check_dir_blocks(
        &mut self,
        ino: u32,
        view: &InodeView,
        map: &FileMap,
        seed: u32,
    ) -> Result<(), ReadError> {
        let FileMap::Blocks { runs, .. } = map else {
            return Ok(());
        };
        let bs = self.block_size();
        let indexed = view.flags & INDEX_FL != 0;
        let mut block = vec![0u8; bs as usize];
        for run in runs.iter().filter(|r| !r.uninit) {
            for k in 0..run.len {
                let (lblk, pblk) = (run.lblk + k, run.pblk + k);
                if lblk * bs >= view.size {
                    break;
                }
                self.r.read_file(map, lblk * bs, &mut block)?;
                let ok = dir::block_checksum_matches(&block, lblk, indexed, seed);
                if !ok {
                    self.problem(format!(
                        "inode {ino}: directory block {pblk} (logical {lblk}) has a bad checksum"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks an xattr block named by `refs` inodes (the first `owner`):
    /// magic, reference count and checksum; records it as used.
    fn check_xattr_block(&mut self, block: u64, refs: u32, owner: u32) -> Result<(), ReadError> {
        let fs = u64::from(self.sb.first_data_block)..self.sb.blocks_count;
        if !fs.contains(&block) {
            self.problem(format!(
                "inode {owner}: xattr block {block} lies outside the filesystem"
            ));
            return Ok(());
        }
        self.add_inode_blocks(owner, block..block + 1);
        let b = self.r.read_block(block, "xattr block")?;
        let header = match xattr::block_header(&b, block, self.csum_seed) {
            Ok(header) => header,
            Err(magic) => {
                self.problem(format!(
                    "inode {owner}: xattr block {block} has magic {magic:#010x}"
                ));
                return Ok(());
            }
        };
        let count = header.refcount;
        if count != refs {
            self.problem(format!(
                "xattr block {block}: reference count {count}, but {refs} inodes name it"
            ));
        }
        if let Some((stored, want)) = header.checksums {
            if stored != want {
                self.problem(format!(
                    "xattr block {block}: checksum {stored:#010x}, expected {want:#010x}"
                ));
            }
        }
        Ok(())
    }

    /// Compares each walked inode's link count with the entries naming it:
    /// one per walk entry, plus a directory's own `.` and its children's `..`
    /// (the root's `..` names itself).
    fn check_links(&mut self, walk: &[WalkEntry], inodes: &HashMap<u32, InodeInfo>) {
        let Some(root) = walk.first() else { return };
        let is_dir = |ino: u32| inodes.get(&ino).is_some_and(|i| i.is_dir);
        let mut dirs: HashMap<&[u8], u32> = HashMap::from([(&root.path[..], root.ino)]);
        let mut names: HashMap<u32, u64> = HashMap::new();
        *names.entry(root.ino).or_default() += 2;
        for e in &walk[1..] {
            *names.entry(e.ino).or_default() += 1;
            if is_dir(e.ino) {
                dirs.insert(&e.path, e.ino);
                *names.entry(e.ino).or_default() += 1;
                let parent = e
                    .path
                    .iter()
                    .rposition(|&c| c == b'/')
                    .map_or(&[][..], |at| &e.path[..at]);
                if let Some(&p) = dirs.get(parent) {
                    *names.entry(p).or_default() += 1;
                }
            }
        }
        let dir_nlink = self.sb.features.has(features::DIR_NLINK);
        let mut names: Vec<(u32, u64)> = names.into_iter().collect();
        names.sort_unstable();
        for (ino, count) in names {
            let Some(info) = inodes.get(&ino) else {
                continue;
            };
            let links = u64::from(info.links);
            let many = dir_nlink && info.is_dir && links == 1 && count > u64::from(LINK_MAX);
            if links != count && !many {
                self.problem(format!(
                    "inode {ino}: link count {links}, but {count} directory entries name it"
                ));
            }
        }
    }

    /// Sorts the used ranges, reports blocks claimed twice and returns the
    /// merged ranges.
    fn merge_used(&mut self) -> Vec<Range<u64>> {
        let mut used = std::mem::take(&mut self.used);
        used.sort_unstable_by_key(|(r, owner)| (r.start, r.end, *owner));
        let mut out: Vec<Range<u64>> = Vec::with_capacity(used.len());
        // The owner of the range that reaches furthest so far.
        let mut reach: Option<(u64, u32)> = None;
        for (r, owner) in used {
            if r.is_empty() {
                continue;
            }
            if let Some((end, other)) = reach {
                if r.start < end {
                    let both = r.start..r.end.min(end);
                    self.problem(format!(
                        "{} claimed by both {} and {}",
                        blocks(&both),
                        owner_name(other),
                        owner_name(owner)
                    ));
                }
            }
            if reach.is_none_or(|(end, _)| r.end > end) {
                reach = Some((r.end, owner));
            }
            match out.last_mut() {
                Some(last) if last.end >= r.start => last.end = last.end.max(r.end),
                _ => out.push(r),
            }
        }
        out
    }

    /// Compares each group's block bitmap with `used` (merged ranges),
    /// checks its padding, checksum and free count; returns the free blocks
    /// counted in all groups.
    fn check_block_bitmaps(&mut self, used: &[Range<u64>]) -> Result<u64, ReadError> {
        let bits = 8 * self.sb.block_size;
        let metadata = merge(std::mem::take(&mut self.metadata));
        let mut total_free = 0;
        for g in 0..self.geo.groups {
            let (start, end) = (self.geo.group_start(g), self.geo.group_end(g));
            let n = (end - start) as u32;
            let expected = group_bits(used, start..end, n, bits);
            let in_use = count_ones(&expected) - (bits - n);
            let free = n - in_use;
            total_free += u64::from(free);
            let desc = self.descs[g as usize];
            if desc.free_blocks != free {
                self.problem(format!(
                    "group {g}: {} free blocks recorded, {free} counted",
                    desc.free_blocks
                ));
            }
            if self.bad_groups.contains(&g) {
                continue;
            }
            let actual = if self.group_csums && desc.flags & BG_BLOCK_UNINIT != 0 {
                group_bits(&metadata, start..end, n, bits)
            } else {
                let on_disk = self.r.read_block(desc.block_bitmap, "block bitmap")?;
                self.check_bitmap_csum(
                    g,
                    "block",
                    &on_disk,
                    self.geo.blocks_per_group,
                    desc.block_bitmap_csum,
                );
                on_disk
            };
            for (run, want) in diff_runs(&expected, &actual, n) {
                if run.start >= n {
                    if want {
                        self.problem(format!(
                            "group {g}: block bitmap padding bits {}..{} are not set",
                            run.start, run.end
                        ));
                    }
                    continue;
                }
                let abs = start + u64::from(run.start)..start + u64::from(run.end);
                self.problem(format!(
                    "group {g}: {} {}",
                    blocks(&abs),
                    if want {
                        "in use but free in the bitmap"
                    } else {
                        "marked used in the bitmap but unused"
                    }
                ));
            }
        }
        Ok(total_free)
    }

    /// Compares each group's inode bitmap with the inodes in use, checks
    /// its padding, checksum, free and directory counts and
    /// `bg_itable_unused`; returns the free inodes counted in all groups.
    fn check_inode_bitmaps(&mut self, inodes: &HashMap<u32, InodeInfo>) -> Result<u64, ReadError> {
        let bits = 8 * self.sb.block_size;
        let ipg = self.geo.inodes_per_group;
        let first_ino = self.sb.first_ino;
        // The reserved inodes are always in use, zero or not.
        let mut used: Vec<u32> = (1..first_ino).chain(inodes.keys().copied()).collect();
        used.sort_unstable();
        used.dedup();
        let mut total_free = 0;
        let mut next = 0;
        for g in 0..self.geo.groups {
            let first = u64::from(g) * u64::from(ipg) + 1;
            let mut expected = vec![0u8; self.sb.block_size as usize];
            let (mut count, mut dirs, mut highest) = (0u32, 0u32, None);
            while next < used.len() && u64::from(used[next]) < first + u64::from(ipg) {
                let ino = used[next];
                let bit = (u64::from(ino) - first) as u32;
                set_bits(&mut expected, bit..bit + 1);
                count += 1;
                dirs += u32::from(inodes.get(&ino).is_some_and(|i| i.is_dir));
                highest = Some(bit);
                next += 1;
            }
            set_bits(&mut expected, ipg.min(bits)..bits);
            let free = ipg - count;
            total_free += u64::from(free);
            let desc = self.descs[g as usize];
            if desc.free_inodes != free {
                self.problem(format!(
                    "group {g}: {} free inodes recorded, {free} counted",
                    desc.free_inodes
                ));
            }
            if desc.used_dirs != dirs {
                self.problem(format!(
                    "group {g}: {} directories recorded, {dirs} counted",
                    desc.used_dirs
                ));
            }
            if self.group_csums {
                if let Some(h) = highest.filter(|&h| h >= ipg.saturating_sub(desc.itable_unused)) {
                    self.problem(format!(
                        "group {g}: {} inode table slots recorded unused, but inode {} is in use",
                        desc.itable_unused,
                        first + u64::from(h)
                    ));
                }
            }
            if self.bad_groups.contains(&g) {
                continue;
            }
            let actual = if self.group_csums && desc.flags & BG_INODE_UNINIT != 0 {
                let mut b = vec![0u8; self.sb.block_size as usize];
                set_bits(&mut b, ipg.min(bits)..bits);
                b
            } else {
                let on_disk = self.r.read_block(desc.inode_bitmap, "inode bitmap")?;
                self.check_bitmap_csum(g, "inode", &on_disk, ipg, desc.inode_bitmap_csum);
                on_disk
            };
            for (run, want) in diff_runs(&expected, &actual, ipg) {
                if run.start >= ipg {
                    if want {
                        self.problem(format!(
                            "group {g}: inode bitmap padding bits {}..{} are not set",
                            run.start, run.end
                        ));
                    }
                    continue;
                }
                let (a, b) = (first + u64::from(run.start), first + u64::from(run.end) - 1);
                let which = if a == b {
                    format!("inode {a}")
                } else {
                    format!("inodes {a}-{b}")
                };
                self.problem(format!(
                    "group {g}: {which} {}",
                    if want {
                        "in use but free in the bitmap"
                    } else {
                        "marked used in the bitmap but unused"
                    }
                ));
            }
        }
        Ok(total_free)
    }

    /// Checks a bitmap's metadata_csum checksum: CRC32C of the bytes that
    /// hold the group's `bits` bits (only the low half in 32-byte descriptors).
    fn check_bitmap_csum(&mut self, g: u32, what: &str, bitmap: &[u8], bits: u32, stored: u32) {
        let Some(seed) = self.csum_seed else { return };
        let len = (bits as usize / 8).min(bitmap.len());
        let mut want = crc32c(seed, &bitmap[..len]);
        if self.sb.desc_size < 64 {
            want &= 0xFFFF;
        }
        if stored != want {
            self.problem(format!(
                "group {g}: {what} bitmap checksum {stored:#010x}, expected {want:#010x}"
            ));
        }
    }
}

/// The expected bitmap of a group spanning `group` (`n` blocks) from sorted
/// disjoint `ranges`, its `n..bits` padding set.
fn group_bits(ranges: &[Range<u64>], group: Range<u64>, n: u32, bits: u32) -> Vec<u8> {
    let mut out = vec![0u8; bits as usize / 8];
    let first = ranges.partition_point(|r| r.end <= group.start);
    for r in ranges[first..].iter().take_while(|r| r.start < group.end) {
        let (a, b) = (r.start.max(group.start), r.end.min(group.end));
        set_bits(&mut out, (a - group.start) as u32..(b - group.start) as u32);
    }
    set_bits(&mut out, n..bits);
    out
}

fn count_ones(bitmap: &[u8]) -> u32 {
    bitmap.iter().map(|b| b.count_ones()).sum()
}

/// The runs of bits where `expected` and `actual` differ, each with the
/// expected value; no run crosses bit `split` (where the padding starts).
fn diff_runs(expected: &[u8], actual: &[u8], split: u32) -> Vec<(Range<u32>, bool)> {
    let mut out: Vec<(Range<u32>, bool)> = Vec::new();
    for (i, (&e, &a)) in expected.iter().zip(actual).enumerate() {
        let mut x = e ^ a;
        while x != 0 {
            let k = x.trailing_zeros();
            x &= x - 1;
            let bit = i as u32 * 8 + k;
            let want = e & (1 << k) != 0;
            match out.last_mut() {
                Some((r, w)) if r.end == bit && *w == want && bit != split => r.end += 1,
                _ => out.push((bit..bit + 1, want)),
            }
        }
    }
    out
}

/// "block N" or "blocks A-B" (inclusive) for a non-empty range.
fn blocks(r: &Range<u64>) -> String {
    if r.end - r.start == 1 {
        format!("block {}", r.start)
    } else {
        format!("blocks {}-{}", r.start, r.end - 1)
    }
}

/// Who holds a used range: 0 is the filesystem's own metadata.
fn owner_name(owner: u32) -> String {
    if owner == 0 {
        "filesystem metadata".into()
    } else {
        format!("inode {owner}")
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::FileExt;
    use std::path::{Path, PathBuf};

    use kiln_tree::{Tree, Xattr};

    use super::*;
    use crate::{BuildOptions, FsType};

    /// A source tree: files with data, a sparse file, a hash-indexed
    /// directory, symlinks, a hard link and nested directories.
    fn source(root: &Path) {
        fs::create_dir_all(root.join("a/b/c")).unwrap();
        fs::create_dir(root.join("many")).unwrap();
        for i in 0..300 {
            fs::write(root.join(format!("many/entry-{i:04}")), b"x").unwrap();
        }
        fs::write(root.join("small"), b"ten bytes!").unwrap();
        fs::write(root.join("big"), vec![5u8; 300 * 1024]).unwrap();
        fs::write(root.join("a/b/c/deep"), vec![6u8; 5000]).unwrap();
        let f = fs::File::create(root.join("sparse")).unwrap();
        f.write_all_at(b"data", 5 << 20).unwrap();
        f.set_len(12 << 20).unwrap();
        std::os::unix::fs::symlink("small", root.join("fast")).unwrap();
        std::os::unix::fs::symlink("t".repeat(200), root.join("slow")).unwrap();
        fs::hard_link(root.join("big"), root.join("a/big-link")).unwrap();
    }

    /// Builds the tree of `src` (with an xattr that needs a block on the
    /// root) into `dir/name.img`.
    fn build(src: &Path, dir: &Path, name: &str, opts: &BuildOptions) -> PathBuf {
        let mut tree = kiln_tree::read_dir_tree(src).unwrap();
        tree.node_mut(Tree::ROOT).meta.edit_xattrs(|xattrs| {
            xattrs.push(Xattr {
                name: b"user.big".to_vec(),
                value: vec![7u8; 800],
            })
        });
        let plan = crate::plan(&tree, opts).unwrap();
        let path = dir.join(format!("{name}.img"));
        let sink = kiln_sink::SparseFile::create(&path, plan.image_size, false).unwrap();
        crate::emit(&plan, &sink).unwrap();
        sink.commit(kiln_sink::Durability::Writeback).unwrap();
        path
    }

    fn options(ty: FsType, bs: u32, size: Option<u64>, edit: &str) -> BuildOptions {
        let mut o = BuildOptions::new(ty);
        o.block_size = bs;
        o.size = size;
        o.features.edit(edit).unwrap();
        o
    }

    /// Every configuration the checker must find clean.
    fn configs() -> Vec<(&'static str, BuildOptions)> {
        vec![
            ("ext2-1k", options(FsType::Ext2, 1024, None, "")),
            ("ext3-4k", options(FsType::Ext3, 4096, None, "")),
            ("ext4-4k", options(FsType::Ext4, 4096, None, "")),
            (
                "ext4-inline",
                options(FsType::Ext4, 4096, None, "inline_data"),
            ),
            (
                "ext4-1k-groups",
                options(FsType::Ext4, 1024, Some(64 << 20), ""),
            ),
            (
                "ext4-4k-groups",
                options(FsType::Ext4, 4096, Some(600 << 20), ""),
            ),
        ]
    }

    fn check(path: &Path) -> CheckReport {
        let mut r = ImageReader::open(path).unwrap();
        // The check reports checksums itself, as `kiln verify` runs it.
        r.set_checksums(false);
        let walk = r.walk(2).unwrap();
        check_image(&r, &walk, 100).unwrap()
    }

    fn ino_of(path: &Path, name: &str) -> u32 {
        let r = ImageReader::open(path).unwrap();
        r.lookup(name.as_bytes()).unwrap()
    }

    /// Whether some problem contains all of `parts`.
    fn found(report: &CheckReport, parts: &[&str]) -> bool {
        report
            .problems
            .iter()
            .any(|p| parts.iter().all(|part| p.what.contains(part)))
    }

    fn patch(path: &Path, at: u64, f: impl FnOnce(&mut [u8]), len: usize) {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, at).unwrap();
        f(&mut buf);
        file.write_all_at(&buf, at).unwrap();
    }

    /// The descriptor of group `g` and its byte offset.
    fn desc(path: &Path, g: u32) -> (GroupDesc, u64) {
        let r = ImageReader::open(path).unwrap();
        let sb = r.superblock();
        let raw = r.raw_gdt(g + 1).unwrap();
        let size = usize::from(sb.desc_size);
        let bs = u64::from(sb.block_size);
        let table = (1024 / bs + 1) * bs;
        (
            group_desc::decode(&raw[g as usize * size..(g as usize + 1) * size]),
            table + u64::from(g) * size as u64,
        )
    }

    #[test]
    fn clean_images_have_no_problems() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        source(&src);
        for (name, opts) in configs() {
            let img = build(&src, dir.path(), name, &opts);
            let r = ImageReader::open(&img).unwrap();
            if name.ends_with("groups") {
                assert!(r.superblock().groups() > 4, "{name}: several groups");
            }
            let report = check(&img);
            assert!(report.is_clean(), "{name}: {:#?}", report.problems);
            assert!(report.skipped.is_empty(), "{name}: {:?}", report.skipped);
        }
    }

    #[test]
    fn corruptions_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        source(&src);
        for (name, opts) in [
            ("ext3", options(FsType::Ext3, 4096, None, "")),
            ("ext4", options(FsType::Ext4, 4096, None, "")),
            ("ext4-1k", options(FsType::Ext4, 1024, Some(64 << 20), "")),
        ] {
            let clean = build(&src, dir.path(), name, &opts);
            let r = ImageReader::open(&clean).unwrap();
            let sb = r.superblock().clone();
            let bs = u64::from(sb.block_size);
            let csum = sb.features.has(features::METADATA_CSUM);
            let fresh = |what: &str| {
                let p = dir.path().join(format!("{name}-{what}.img"));
                fs::copy(&clean, &p).unwrap();
                p
            };

            // A data block of "big" freed in its block bitmap.
            let big = ino_of(&clean, "big");
            let map = r.file_map(big, &r.inode(big).unwrap()).unwrap();
            let FileMap::Blocks { runs, .. } = map else {
                panic!("{name}: big has blocks")
            };
            let block = runs[0].pblk + 1;
            let g =
                ((block - u64::from(sb.first_data_block)) / u64::from(sb.blocks_per_group)) as u32;
            let bit = (block - u64::from(sb.first_data_block)) % u64::from(sb.blocks_per_group);
            let img = fresh("block-bitmap");
            let (d, _) = desc(&img, g);
            patch(
                &img,
                d.block_bitmap * bs + bit / 8,
                |b| b[0] ^= 1 << (bit % 8),
                1,
            );
            let report = check(&img);
            assert!(
                found(
                    &report,
                    &[&format!("group {g}: block {block} in use but free")]
                ),
                "{name}: {:#?}",
                report.problems
            );
            assert_eq!(found(&report, &["block bitmap checksum"]), csum, "{name}");

            // The inode bitmap bit of "big" cleared.
            let img = fresh("inode-bitmap");
            let ipg = sb.inodes_per_group;
            let (g, bit) = ((big - 1) / ipg, (big - 1) % ipg);
            let (d, _) = desc(&img, g);
            patch(
                &img,
                d.inode_bitmap * bs + u64::from(bit / 8),
                |b| b[0] &= !(1 << (bit % 8)),
                1,
            );
            let report = check(&img);
            assert!(
                found(&report, &[&format!("inode {big} in use but free")]),
                "{name}: {:#?}",
                report.problems
            );

            // Group 0's free block count off by one.
            let img = fresh("free-count");
            let (d, at) = desc(&img, 0);
            patch(&img, at + 0xC, |b| b[0] = b[0].wrapping_add(1), 1);
            let report = check(&img);
            let recorded = (d.free_blocks & !0xFF) | ((d.free_blocks + 1) & 0xFF);
            assert!(
                found(
                    &report,
                    &[&format!(
                        "group 0: {recorded} free blocks recorded, {} counted",
                        d.free_blocks
                    )]
                ),
                "{name}: {:#?}",
                report.problems
            );
            assert_eq!(
                found(&report, &["group 0: descriptor checksum"]),
                csum,
                "{name}"
            );

            // "small"'s link count 5, its inode checksum fixed.
            let img = fresh("links");
            let small = ino_of(&img, "small");
            let (g, index) = ((small - 1) / ipg, (small - 1) % ipg);
            let (d, _) = desc(&img, g);
            let isz = usize::from(sb.inode_size);
            let slot_at = d.inode_table * bs + u64::from(index) * isz as u64;
            patch(
                &img,
                slot_at,
                |s| {
                    s[0x1A] = 5;
                    s[0x1B] = 0;
                    if csum {
                        let seed = inode_seed(sb.csum_seed, small, inode::generation(s));
                        inode::set_checksum(s, seed);
                    }
                },
                isz,
            );
            let report = check(&img);
            assert_eq!(report.total, 1, "{name}: {:#?}", report.problems);
            assert!(
                found(
                    &report,
                    &[&format!("inode {small}: link count 5, but 1 directory")]
                ),
                "{name}: {:#?}",
                report.problems
            );

            // One byte of the root's xattr block.
            if csum {
                let img = fresh("xattr");
                let block = r.inode(2).unwrap().file_acl;
                assert_ne!(block, 0);
                patch(&img, block * bs + bs - 1, |b| b[0] ^= 0x10, 1);
                let report = check(&img);
                assert_eq!(report.total, 1, "{name}: {:#?}", report.problems);
                assert!(
                    found(&report, &[&format!("xattr block {block}: checksum")]),
                    "{name}: {:#?}",
                    report.problems
                );
            }
        }
    }

    #[test]
    fn the_limit_keeps_the_first_problems_and_counts_all() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("f"), b"x").unwrap();
        let img = build(
            &src,
            dir.path(),
            "limit",
            &options(FsType::Ext2, 1024, Some(32 << 20), ""),
        );
        // Every group's free inode count wrong.
        let r = ImageReader::open(&img).unwrap();
        let groups = r.superblock().groups() as u32;
        for g in 0..groups {
            let (_, at) = desc(&img, g);
            patch(&img, at + 0xE, |b| b[0] ^= 1, 1);
        }
        let walk = r.walk(2).unwrap();
        let report = check_image(&r, &walk, 1).unwrap();
        assert_eq!(report.problems.len(), 1);
        assert!(groups > 1);
        assert_eq!(report.total, groups as usize, "{report:?}");
        assert_eq!(report.more(), report.total - 1);
        assert!(report.problems[0].to_string().contains("group 0"));
    }
}
