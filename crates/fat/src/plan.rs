//! Planning: names, directory contents, geometry and cluster chains, all
//! decided before a byte is written. Plan reads no file.

use std::collections::HashMap;

use kiln_tree::{Body, DosAttributes, Metadata, NodeId, Tree};
use sha2::{Digest, Sha256};

use crate::boot::{Identity, NO_NAME};
use crate::dirent::{
    ShortEntry, ATTR_ARCHIVE, ATTR_DIRECTORY, ATTR_HIDDEN, ATTR_READ_ONLY, ATTR_SYSTEM,
    ATTR_VOLUME_ID, DIR_ENTRY_SIZE,
};
use crate::geometry::{choose, Geometry, Request, MAX_ROOT_ENTRIES, SECTOR};
use crate::name::{self, Short};
use crate::time::FatTime;
use crate::{FatError, FatOptions, FatVariant};

/// The most entries (32-byte slots, long-name slots and `.`/`..`
/// included) of one directory: FAT numbers them with 16 bits.
pub(crate) const MAX_DIR_ENTRIES: u64 = 65_536;
/// The largest file: its size is a 32-bit field.
const MAX_FILE_SIZE: u64 = u32::MAX as u64;
/// The owner's write permission bit: without it a file is read-only.
const OWNER_WRITE: u16 = 0o200;
/// Default sizes are whole MiB, with this share of clusters to spare
/// (one in ten).
const SIZE_STEP: u64 = 1 << 20;
const HEADROOM_DIVISOR: u64 = 10;

/// What is written, cluster by cluster, in ascending order.
#[derive(Debug)]
pub(crate) enum Content {
    /// A directory's entries, padded with zeros to its clusters.
    Dir(Vec<u8>),
    /// A regular file's data: its node and image path.
    File(NodeId, String),
}

/// One cluster chain: first cluster, length, what goes there.
#[derive(Debug)]
pub(crate) struct Piece {
    pub(crate) first: u32,
    pub(crate) clusters: u32,
    pub(crate) content: Content,
}

/// A FAT image with everything decided: see [`plan`].
#[derive(Debug)]
pub struct FatPlan<'t> {
    pub(crate) tree: &'t Tree,
    pub(crate) geometry: Geometry,
    pub(crate) identity: Identity,
    /// FAT12/16: the fixed root directory, all of it.
    pub(crate) root_dir: Vec<u8>,
    /// Chains in ascending order, adjacent from cluster 2.
    pub(crate) pieces: Vec<Piece>,
    /// The first cluster no chain holds.
    pub(crate) next_free: u32,
    /// Whether some entry had owners or modes that FAT drops.
    pub(crate) dropped_modes: bool,
}

impl FatPlan<'_> {
    /// The geometry: variant, cluster size, FAT size.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The image's size in bytes.
    pub fn size(&self) -> u64 {
        self.geometry.size()
    }

    /// The volume serial number written.
    pub fn volume_id(&self) -> u32 {
        self.identity.volume_id
    }

    /// Data clusters allocated (directories and files).
    pub fn used_clusters(&self) -> u32 {
        self.next_free - 2
    }
}

/// One entry of a directory being planned.
struct Entry {
    utf16: Vec<u16>,
    short: Short,
    child: NodeId,
    /// Index of the child in the allocation order.
    item: usize,
}

/// A directory being planned.
struct DirInfo {
    node: NodeId,
    path: String,
    /// Its index in the allocation order.
    item: usize,
    /// The item of its parent (`None` for the root).
    parent: Option<usize>,
    entries: Vec<Entry>,
}

impl DirInfo {
    /// Its 32-byte slots: `.` and `..` (or the label in the root), each
    /// entry's long-name slots and short entry.
    fn slots(&self, label: bool) -> u64 {
        let own = if self.parent.is_some() {
            2
        } else {
            u64::from(label)
        };
        own + self
            .entries
            .iter()
            .map(|e| match e.short {
                Short::Exact(..) => 1,
                Short::Basis { .. } => 1 + name::slots(e.utf16.len()) as u64,
            })
            .sum::<u64>()
    }
}

/// What gets clusters, in allocation (breadth-first) order.
enum Item {
    Dir(usize),
    File(NodeId, String, u64),
}

/// The image path of `name` in the directory at `dir`.
fn child_path(dir: &str, name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Walks the tree breadth-first in name order: every directory with its
/// checked entries, and the allocation order.
fn walk(tree: &Tree) -> Result<(Vec<DirInfo>, Vec<Item>), FatError> {
    let mut dirs = vec![DirInfo {
        node: Tree::ROOT,
        path: "/".into(),
        item: 0,
        parent: None,
        entries: Vec::new(),
    }];
    let mut items = vec![Item::Dir(0)];
    let mut seen: HashMap<NodeId, String> = HashMap::from([(Tree::ROOT, "/".into())]);
    let mut next = 0;
    while next < dirs.len() {
        let (dir_node, dir_path, dir_item) =
            (dirs[next].node, dirs[next].path.clone(), dirs[next].item);
        let mut folded: HashMap<String, String> = HashMap::new();
        let mut entries = Vec::new();
        for (raw, child) in tree.node(dir_node).entries() {
            let path = child_path(&dir_path, raw);
            let text = name::check(raw).map_err(|why| FatError::BadName {
                path: path.clone(),
                why,
            })?;
            if let Some(other) = folded.insert(name::fold(text), path.clone()) {
                return Err(FatError::CaseCollision { path, other });
            }
            if let Some(other) = seen.insert(child, path.clone()) {
                return Err(FatError::HardLink { path, other });
            }
            let unsupported = |kind| FatError::Unsupported {
                path: path.clone(),
                kind,
            };
            let item = items.len();
            match &tree.node(child).body {
                Body::Dir(_) => {
                    items.push(Item::Dir(dirs.len()));
                    dirs.push(DirInfo {
                        node: child,
                        path: path.clone(),
                        item,
                        parent: Some(dir_item),
                        entries: Vec::new(),
                    });
                }
                Body::File(f) if f.size > MAX_FILE_SIZE => {
                    return Err(FatError::FileTooLarge { path, size: f.size })
                }
                Body::File(f) => items.push(Item::File(child, path.clone(), f.size)),
                Body::Symlink(_) => return Err(unsupported("symbolic link")),
                Body::CharDevice(..) => return Err(unsupported("character device")),
                Body::BlockDevice(..) => return Err(unsupported("block device")),
                Body::Fifo => return Err(unsupported("named pipe")),
                Body::Socket => return Err(unsupported("socket")),
            }
            entries.push(Entry {
                utf16: text.encode_utf16().collect(),
                short: name::classify(text),
                child,
                item,
            });
        }
        dirs[next].entries = entries;
        next += 1;
    }
    Ok((dirs, items))
}

/// The label's 11 bytes, checked and upper-cased.
/// The options' label as written and sectors per cluster, once checked
/// against what FAT can hold (see [`FatOptions::validate`]).
pub(crate) fn checked(opts: &FatOptions) -> Result<(Option<[u8; 11]>, Option<u32>), FatError> {
    let label = label_bytes(opts.label.as_deref())?;
    let spc = match opts.cluster_size {
        None => None,
        Some(cs) if cs.is_power_of_two() && (512..=65_536).contains(&cs) => Some(cs / 512),
        Some(cs) => {
            return Err(FatError::Options(format!(
                "cluster size {cs}: a power of two from 512 to 65536"
            )))
        }
    };
    if let Some(size) = opts.size.filter(|s| s % SECTOR != 0) {
        return Err(FatError::Options(format!(
            "size {size}: not a multiple of {SECTOR} bytes"
        )));
    }
    Ok((label, spc))
}

fn label_bytes(label: Option<&str>) -> Result<Option<[u8; 11]>, FatError> {
    let Some(label) = label.filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    let up = label.to_ascii_uppercase();
    let ok = up.len() <= 11
        && !up.starts_with(' ')
        && up
            .chars()
            .all(|c| c == ' ' || c.is_ascii_alphanumeric() || "!#$%&'()-@^_`{}~".contains(c));
    if !ok {
        return Err(FatError::Options(format!(
            "label {label:?}: at most 11 letters, digits, spaces (not first) or ! # $ % & ' ( ) - @ ^ _ ` {{ }} ~"
        )));
    }
    let mut out = [b' '; 11];
    out[..up.len()].copy_from_slice(up.as_bytes());
    Ok(Some(out))
}

/// The clusters the tree needs with clusters of `cb` bytes, the fixed
/// root of FAT12/16 excluded.
fn clusters_needed(items: &[Item], slots: &[u64], cb: u64, fat32: bool) -> u64 {
    items
        .iter()
        .map(|item| chain_len(item, slots, cb, fat32))
        .sum()
}

/// The clusters of one item's chain.
fn chain_len(item: &Item, slots: &[u64], cb: u64, fat32: bool) -> u64 {
    match item {
        Item::Dir(0) if !fat32 => 0,
        Item::Dir(d) => (slots[*d] * DIR_ENTRY_SIZE as u64).div_ceil(cb).max(1),
        Item::File(_, _, size) => size.div_ceil(cb),
    }
}

/// Plans the image of `tree` (finished: see [`Tree::finish`]).
pub fn plan<'t>(tree: &'t Tree, opts: &FatOptions) -> Result<FatPlan<'t>, FatError> {
    let (label, spc) = checked(opts)?;
    let (dirs, items) = walk(tree)?;
    let slots: Vec<u64> = dirs.iter().map(|d| d.slots(label.is_some())).collect();
    for (d, &n) in dirs.iter().zip(&slots) {
        if n > MAX_DIR_ENTRIES {
            return Err(FatError::DirectoryTooLarge {
                path: d.path.clone(),
                slots: n,
                max: MAX_DIR_ENTRIES,
            });
        }
    }
    let root_needed = slots[0] as u32;
    // A root too large for FAT12/16's fixed root directory needs FAT32.
    let fat32_root;
    let opts = if opts.variant.is_none() && root_needed > MAX_ROOT_ENTRIES {
        fat32_root = FatOptions {
            variant: Some(FatVariant::Fat32),
            ..opts.clone()
        };
        &fat32_root
    } else {
        opts
    };
    let geometry = geometry(opts, spc, root_needed, |g| {
        let fat32 = g.variant == FatVariant::Fat32;
        clusters_needed(&items, &slots, u64::from(g.cluster_bytes()), fat32)
    })?;
    if geometry.variant != FatVariant::Fat32 && slots[0] > u64::from(geometry.root_entries) {
        return Err(FatError::DirectoryTooLarge {
            path: "/".into(),
            slots: slots[0],
            max: u64::from(geometry.root_entries),
        });
    }

    // Allocation: one ascending cursor, in breadth-first order.
    let cb = u64::from(geometry.cluster_bytes());
    let fat32 = geometry.variant == FatVariant::Fat32;
    let mut first = vec![0u32; items.len()];
    let mut lens = vec![0u32; items.len()];
    let mut cursor = 2u32;
    for (i, item) in items.iter().enumerate() {
        let n = chain_len(item, &slots, cb, fat32) as u32;
        if n > 0 {
            first[i] = cursor;
            lens[i] = n;
            cursor += n;
        }
    }

    // Directory contents.
    let dropped_modes = items.len() > 1;
    let mut dir_bytes: Vec<Vec<u8>> = Vec::with_capacity(dirs.len());
    for (d, dir) in dirs.iter().enumerate() {
        let size = if d == 0 && !fat32 {
            geometry.root_entries as usize * DIR_ENTRY_SIZE
        } else {
            lens[dir.item] as usize * cb as usize
        };
        dir_bytes.push(render_dir(tree, dir, &first, label, size)?);
    }

    let volume_id = opts
        .volume_id
        .unwrap_or_else(|| derived_id(&geometry, &dir_bytes, &items));
    let mut dir_bytes: Vec<Option<Vec<u8>>> = dir_bytes.into_iter().map(Some).collect();
    let root_dir = if fat32 {
        Vec::new()
    } else {
        dir_bytes[0].take().unwrap_or_default()
    };
    let mut pieces = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        if lens[i] == 0 {
            continue;
        }
        let content = match item {
            Item::Dir(d) => Content::Dir(dir_bytes[d].take().unwrap_or_default()),
            Item::File(node, path, _) => Content::File(node, path),
        };
        pieces.push(Piece {
            first: first[i],
            clusters: lens[i],
            content,
        });
    }
    let root_cluster = if fat32 { first[0] } else { 0 };
    Ok(FatPlan {
        tree,
        geometry,
        identity: Identity {
            volume_id,
            label: label.unwrap_or(*NO_NAME),
            hidden_sectors: opts.hidden_sectors,
            root_cluster,
        },
        root_dir,
        pieces,
        next_free: cursor,
        dropped_modes,
    })
}

/// The bytes of directory `dir`, `size` of them (its clusters, or the
/// fixed root): `.` and `..` (or the root's label entry), then each
/// entry's long-name slots and short entry, in name order; `first` holds
/// each item's first cluster.
fn render_dir(
    tree: &Tree,
    dir: &DirInfo,
    first: &[u32],
    label: Option<[u8; 11]>,
    size: usize,
) -> Result<Vec<u8>, FatError> {
    let meta = &tree.node(dir.node).meta;
    let mut out = Vec::with_capacity(size);
    match dir.parent {
        None => {
            if let Some(label) = label {
                // The label's entry keeps only a write time.
                let mut e = entry(label, ATTR_VOLUME_ID, 0, meta, 0, 0);
                e.created = FatTime::ZERO;
                e.accessed = FatTime::ZERO;
                e.encode(&mut out);
            }
        }
        Some(parent) => {
            entry(*b".          ", ATTR_DIRECTORY, 0, meta, first[dir.item], 0).encode(&mut out);
            // `..` names cluster 0 when the parent is the root, on FAT32 too.
            let up = if parent == 0 { 0 } else { first[parent] };
            entry(*b"..         ", ATTR_DIRECTORY, 0, meta, up, 0).encode(&mut out);
        }
    }
    let shorts: Vec<Short> = dir.entries.iter().map(|e| e.short.clone()).collect();
    let aliases = name::assign(&shorts)
        .ok_or_else(|| FatError::Options(format!("{}: no free 8.3 alias left", dir.path)))?;
    for (e, alias) in dir.entries.iter().zip(aliases) {
        let child = tree.node(e.child);
        let nt_res = match &e.short {
            Short::Exact(_, flags) => *flags,
            Short::Basis { .. } => {
                name::encode_lfn(&e.utf16, name::checksum(&alias), &mut out);
                0
            }
        };
        let (mut attr, file_size) = match &child.body {
            Body::File(f) => (ATTR_ARCHIVE, f.size as u32),
            _ => (ATTR_DIRECTORY, 0),
        };
        if matches!(child.body, Body::File(_)) && child.meta.perm & OWNER_WRITE == 0 {
            attr |= ATTR_READ_ONLY;
        }
        if let Some(extra) = tree.dos_attributes(e.child) {
            attr |= extra_bits(extra);
        }
        entry(alias, attr, nt_res, &child.meta, first[e.item], file_size).encode(&mut out);
    }
    out.resize(size, 0);
    Ok(out)
}

/// The attribute bits of `a`.
fn extra_bits(a: DosAttributes) -> u8 {
    (if a.read_only { ATTR_READ_ONLY } else { 0 })
        | (if a.hidden { ATTR_HIDDEN } else { 0 })
        | (if a.system { ATTR_SYSTEM } else { 0 })
}

/// A short entry with the times of `meta`.
fn entry(
    name: [u8; 11],
    attr: u8,
    nt_res: u8,
    meta: &Metadata,
    cluster: u32,
    size: u32,
) -> ShortEntry {
    ShortEntry {
        name,
        attr,
        nt_res,
        created: FatTime::from(meta.crtime().unwrap_or(meta.mtime())),
        accessed: FatTime::from(meta.atime()),
        written: FatTime::from(meta.mtime()),
        cluster,
        size,
    }
}

/// A volume id from the planned metadata: geometry, every directory's
/// bytes (names, times, sizes, clusters).
fn derived_id(g: &Geometry, dirs: &[Vec<u8>], items: &[Item]) -> u32 {
    let mut h = Sha256::new();
    h.update(b"kiln-fat volume id\0");
    h.update(format!("{g:?}").as_bytes());
    h.update((items.len() as u64).to_le_bytes());
    for d in dirs {
        h.update((d.len() as u64).to_le_bytes());
        h.update(d);
    }
    let digest = h.finalize();
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// The geometry for the options: for the given size, or the smallest whole
/// MiB that fits what `needed` says the tree needs, with headroom.
fn geometry(
    opts: &FatOptions,
    spc: Option<u32>,
    root_needed: u32,
    needed: impl Fn(&Geometry) -> u64,
) -> Result<Geometry, FatError> {
    // A given size's alignment is checked with the other options; sizes
    // chosen here are whole MiB.
    let request = |size: u64| -> Result<Option<Geometry>, FatError> {
        let total = u32::try_from(size / SECTOR)
            .map_err(|_| FatError::Options(format!("size {size}: FAT holds at most 2 TiB")))?;
        Ok(choose(Request {
            total_sectors: total,
            variant: opts.variant,
            spc,
            root_needed,
        }))
    };
    let misfit = |size: u64| {
        FatError::Options(format!(
            "no {} volume of {size} bytes{}",
            opts.variant.map_or("FAT".into(), |v| v.to_string()),
            spc.map_or(String::new(), |s| format!(
                " with clusters of {} bytes",
                s * 512
            ))
        ))
    };
    if let Some(size) = opts.size {
        let g = request(size)?.ok_or_else(|| misfit(size))?;
        let need = needed(&g);
        if need > u64::from(g.clusters) {
            return Err(FatError::TooSmall {
                needed: need,
                available: u64::from(g.clusters),
                cluster_size: g.cluster_bytes(),
                variant: g.variant,
                size,
            });
        }
        return Ok(g);
    }
    let mut size = SIZE_STEP;
    loop {
        if let Some(g) = request(size)? {
            let need = needed(&g);
            let want = need + need / HEADROOM_DIVISOR;
            if want <= u64::from(g.clusters) {
                return Ok(g);
            }
            let short = (want - u64::from(g.clusters)) * u64::from(g.cluster_bytes());
            size += short.max(size / 16).next_multiple_of(SIZE_STEP);
        } else {
            size += (size / 8).next_multiple_of(SIZE_STEP);
        }
        if size / SECTOR > u64::from(u32::MAX) {
            return Err(misfit(size));
        }
    }
}
