//! `kiln info`, `kiln ls` and `kiln cat`: looking inside an image, or a
//! partition of a disk image, without mounting it; ext here, FAT in
//! [`fat`] (the type told by the image's bytes, [`FsKind::of`]).
//!
//! Everything is read with kiln's own reader ([`kiln_ext::read_superblock`]
//! and [`ImageReader`], sharing the writer's offsets), which treats the image
//! as hostile. Every error names the image and, where there is one, the path
//! inside it; names, link targets and labels are escaped in text output.

use std::collections::HashSet;
use std::io::{self, BufWriter, Write};

use anyhow::{bail, Context, Result};
use kiln_ext::mode::{S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK};
use kiln_ext::{ImageReader, InodeView, SuperblockView};
use kiln_tree::escape;
use serde::Serialize;

use kiln_disk::PartitionInfo;
use kiln_lib::{utc, FsKind, Image};

use crate::flags::{CatArgs, InfoArgs, LsArgs};
use crate::Stderr;

mod fat;

use fat::FatInfo;

/// Bytes of the image that hold the primary superblock.
const SUPERBLOCK_END: u64 = 2048;
/// `ls -R` refuses to go deeper: a corrupt image can link a directory into
/// its own subtree, and this bounds the walk (real trees are far shallower).
pub(crate) const MAX_DEPTH: usize = 4096;
/// Bytes `cat` reads at a time.
pub(crate) const CAT_CHUNK: usize = 1 << 20;

/// What `kiln info` reports, in text or as JSON.
#[derive(Debug, Serialize)]
struct Info {
    fs_type: &'static str,
    features: Vec<String>,
    block_size: u32,
    inode_size: u16,
    blocks_count: u64,
    blocks_used: u64,
    free_blocks: u64,
    reserved_blocks: u64,
    inodes_count: u32,
    inodes_used: u32,
    free_inodes: u32,
    uuid: String,
    label: String,
    hash_seed: String,
    default_hash: &'static str,
    created: i64,
    last_write: i64,
    journal_size: Option<u64>,
    groups: u64,
    blocks_per_group: u32,
    inodes_per_group: u32,
}

impl Info {
    /// The report of a decoded superblock.
    fn new(sb: &SuperblockView) -> Info {
        Info {
            fs_type: sb.fs_type().name(),
            features: sb.features.list(),
            block_size: sb.block_size,
            inode_size: sb.inode_size,
            blocks_count: sb.blocks_count,
            // Saturating: a corrupt image may claim more free than total.
            blocks_used: sb.blocks_count.saturating_sub(sb.free_blocks),
            free_blocks: sb.free_blocks,
            reserved_blocks: sb.reserved_blocks,
            inodes_count: sb.inodes_count,
            inodes_used: sb.inodes_count.saturating_sub(sb.free_inodes),
            free_inodes: sb.free_inodes,
            uuid: uuid::Uuid::from_bytes(sb.uuid).to_string(),
            label: String::from_utf8_lossy(sb.label_bytes()).into_owned(),
            hash_seed: uuid::Uuid::from_bytes(sb.hash_seed).to_string(),
            default_hash: sb.hash_name(),
            created: sb.mkfs_time,
            last_write: sb.write_time,
            journal_size: sb.journal_size,
            groups: sb.groups(),
            blocks_per_group: sb.blocks_per_group,
            inodes_per_group: sb.inodes_per_group,
        }
    }

    /// The text report: one `Name: value` line per field.
    fn text(&self) -> String {
        let journal = self
            .journal_size
            .map_or_else(|| "none".to_string(), |n| n.to_string());
        let lines = [
            ("Filesystem type", self.fs_type.to_string()),
            ("Features", self.features.join(" ")),
            ("Block size", self.block_size.to_string()),
            ("Inode size", self.inode_size.to_string()),
            ("Block count", self.blocks_count.to_string()),
            ("Used blocks", self.blocks_used.to_string()),
            ("Free blocks", self.free_blocks.to_string()),
            ("Reserved blocks", self.reserved_blocks.to_string()),
            ("Inode count", self.inodes_count.to_string()),
            ("Used inodes", self.inodes_used.to_string()),
            ("Free inodes", self.free_inodes.to_string()),
            ("UUID", self.uuid.clone()),
            ("Label", escape(self.label.as_bytes())),
            ("Hash seed", self.hash_seed.clone()),
            ("Default hash", self.default_hash.to_string()),
            ("Created", utc(self.created)),
            ("Last write", utc(self.last_write)),
            ("Journal size", journal),
            ("Groups", self.groups.to_string()),
            ("Blocks per group", self.blocks_per_group.to_string()),
            ("Inodes per group", self.inodes_per_group.to_string()),
        ];
        lines
            .iter()
            .map(|(name, value)| format!("{name}: {value}\n"))
            .collect()
    }
}

/// One partition of a disk image in `kiln info`'s report.
#[derive(Debug, Serialize)]
struct PartitionReport {
    number: u32,
    label: String,
    type_guid: String,
    type_name: Option<&'static str>,
    uuid: String,
    offset: u64,
    size: u64,
    /// The filesystem in it, if it holds an ext2/3/4 or FAT one.
    filesystem: Option<Filesystem>,
}

/// A filesystem's report: ext's or FAT's (each names its `fs_type`).
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Filesystem {
    Ext(Info),
    Fat(FatInfo),
}

impl Filesystem {
    /// The report of the filesystem of `image`, whose first bytes are
    /// `head`; `None` if it holds none kiln reads.
    fn read(image: &Image, head: &[u8]) -> Option<Filesystem> {
        match FsKind::of(head) {
            FsKind::Fat => {
                let reader = image.fat_reader().ok()?;
                FatInfo::new(&reader).ok().map(Filesystem::Fat)
            }
            FsKind::Ext => kiln_ext::read_superblock(head)
                .ok()
                .map(|sb| Filesystem::Ext(Info::new(&sb))),
        }
    }

    /// The text report.
    fn text(&self) -> String {
        match self {
            Filesystem::Ext(info) => info.text(),
            Filesystem::Fat(info) => info.text(),
        }
    }
}

/// `kiln info` of a partitioned disk image.
#[derive(Debug, Serialize)]
struct DiskReport {
    partition_table: &'static str,
    partitions: Vec<PartitionReport>,
}

/// `kiln info IMAGE[:PART] [--json]`: a filesystem's superblock, or a
/// disk's partition table and the filesystem in each partition.
pub(crate) fn info(args: &InfoArgs) -> Result<()> {
    let image = Image::resolve(&args.image)?;
    let table = match image.region {
        None => kiln_disk::read_table(&image.path)?,
        Some(_) => None,
    };
    let text = match table {
        Some(parts) => disk_info(&image, parts, args.json)?,
        None => {
            let head = image.head(SUPERBLOCK_END)?;
            let info = match FsKind::of(&head) {
                FsKind::Fat => {
                    let reader = image.fat_reader()?;
                    Filesystem::Fat(FatInfo::new(&reader).with_context(|| image.name.clone())?)
                }
                FsKind::Ext => {
                    let sb =
                        kiln_ext::read_superblock(&head).with_context(|| image.name.clone())?;
                    Filesystem::Ext(Info::new(&sb))
                }
            };
            if args.json {
                serde_json::to_string_pretty(&info)? + "\n"
            } else {
                info.text()
            }
        }
    };
    io::stdout()
        .write_all(text.as_bytes())
        .context("writing to standard output")
}

/// The report of a disk image: each partition, with its filesystem's
/// superblock where it holds one.
fn disk_info(image: &Image, parts: Vec<PartitionInfo>, json: bool) -> Result<String> {
    let mut partitions = Vec::new();
    for p in parts {
        let part = Image {
            path: image.path.clone(),
            name: format!("{}:{}", image.name, p.number),
            region: Some(p.region),
        };
        let head = part.head(SUPERBLOCK_END)?;
        partitions.push(PartitionReport {
            number: p.number,
            label: p.label,
            type_guid: p.type_guid,
            type_name: p.type_name,
            uuid: p.uuid,
            offset: p.region.offset,
            size: p.region.len,
            filesystem: Filesystem::read(&part, &head),
        });
    }
    let disk = DiskReport {
        partition_table: "gpt",
        partitions,
    };
    if json {
        return Ok(serde_json::to_string_pretty(&disk)? + "\n");
    }
    let mut text = "Partition table: gpt\n".to_string();
    for p in &disk.partitions {
        text += &format!(
            "\nPartition {}: {:?}, type {} ({}), uuid {}, offset {}, size {}\n",
            p.number,
            p.label,
            p.type_name.unwrap_or("unknown"),
            p.type_guid,
            p.uuid,
            p.offset,
            p.size
        );
        match &p.filesystem {
            Some(info) => text += &info.text(),
            None => text += "No ext2/3/4 or FAT filesystem\n",
        }
    }
    Ok(text)
}

/// `kiln ls IMAGE [PATH] [-l] [-R]`: names (and with `-l` link targets)
/// escaped as `ls -b` does, so an image cannot send control characters to
/// the terminal.
pub(crate) fn ls(args: &LsArgs) -> Result<()> {
    let image = Image::resolve(&args.image)?;
    if image.kind()? == FsKind::Fat {
        return fat::ls(&image, args);
    }
    let reader = image.reader_checked(false, &Stderr)?;
    let path = image_path(&image.name, &args.path)?;
    let at = |p: &[u8]| format!("{}: {}", image.name, escape(p));
    let ino = reader.resolve(&path, false).with_context(|| at(&path))?;
    let inode = reader.inode(ino).with_context(|| at(&path))?;
    let mut out = BufWriter::new(io::stdout().lock());
    let lister = Lister {
        reader: &reader,
        long: args.long,
    };
    if inode.kind() != S_IFDIR {
        lister
            .print(&mut out, &path, ino, &inode)
            .with_context(|| at(&path))?;
        return out.flush().context("writing to standard output");
    }
    // An explicit stack, not recursion; each directory is listed once, so
    // a directory graph that shares subdirectories cannot multiply the work.
    let mut seen = HashSet::from([ino]);
    let mut stack = vec![(ino, Vec::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let shown_dir = || at(&[path.as_slice(), b"/", &prefix].concat());
        let mut children = reader.read_dir(dir).with_context(shown_dir)?;
        children.sort_by(|a, b| a.name.cmp(&b.name));
        let mut subdirs = Vec::new();
        for child in children {
            let shown = [prefix.as_slice(), &child.name].concat();
            let inode = reader.inode(child.ino).with_context(|| at(&shown))?;
            lister
                .print(&mut out, &shown, child.ino, &inode)
                .with_context(|| at(&shown))?;
            if args.recursive && inode.kind() == S_IFDIR {
                if !seen.insert(child.ino) {
                    bail!(
                        "{}: directory inode {} is reached twice (a corrupt image)",
                        at(&shown),
                        child.ino
                    );
                }
                subdirs.push((child.ino, [shown, b"/".to_vec()].concat()));
            }
        }
        if !subdirs.is_empty() && prefix_depth(&prefix) >= MAX_DEPTH {
            bail!(
                "{}: directories nest deeper than {MAX_DEPTH} levels (a loop in a corrupt image?)",
                shown_dir()
            );
        }
        // Reversed so that the stack pops them in name order.
        stack.extend(subdirs.into_iter().rev());
    }
    out.flush().context("writing to standard output")
}

/// Levels below the listed directory that `prefix` (`a/b/`) stands for.
fn prefix_depth(prefix: &[u8]) -> usize {
    prefix.iter().filter(|&&c| c == b'/').count()
}

/// How `ls` prints its entries.
struct Lister<'r> {
    reader: &'r ImageReader,
    long: bool,
}

impl Lister<'_> {
    /// Prints one entry: its name escaped, with `-l` its details first and
    /// its link target after.
    fn print(&self, out: &mut impl Write, shown: &[u8], ino: u32, inode: &InodeView) -> Result<()> {
        let mut line = String::new();
        if self.long {
            let size = match inode.device() {
                Some((major, minor)) => format!("{major}, {minor}"),
                None => inode.size.to_string(),
            };
            line += &format!(
                "{} {:>5} {:>5} {:>10} {} ",
                mode_string(inode.mode),
                inode.uid,
                inode.gid,
                size,
                utc(inode.mtime.secs)
            );
        }
        line += &escape(shown);
        if self.long && inode.kind() == S_IFLNK {
            let target = self
                .reader
                .read_link(ino, inode)
                .context("reading the link target")?;
            line += " -> ";
            line += &escape(&target);
        }
        line.push('\n');
        out.write_all(line.as_bytes())
            .context("writing to standard output")
    }
}

/// `kiln cat IMAGE PATH`: symlinks are followed inside the image.
pub(crate) fn cat(args: &CatArgs) -> Result<()> {
    let image = Image::resolve(&args.image)?;
    if image.kind()? == FsKind::Fat {
        return fat::cat(&image, args);
    }
    let reader = image.reader_checked(args.ignore_checksums, &Stderr)?;
    let path = image_path(&image.name, &args.path)?;
    let at = || format!("{}: {}", image.name, escape(&path));
    let ino = reader.resolve(&path, true).with_context(at)?;
    let inode = reader.inode(ino).with_context(at)?;
    if inode.kind() != S_IFREG {
        bail!("{}: not a regular file", at());
    }
    let map = reader.file_map(ino, &inode).with_context(at)?;
    write_out(inode.size, |pos, buf| {
        reader.read_file(&map, pos, buf).with_context(at)
    })
}

/// Writes `size` bytes read by `read` (at an offset, into a buffer) to
/// standard output, a chunk at a time: read by hand so that a read error
/// (the image's) and a write error (stdout's) are told apart in the
/// message.
fn write_out(size: u64, mut read: impl FnMut(u64, &mut [u8]) -> Result<()>) -> Result<()> {
    let mut out = io::stdout().lock();
    let mut buf = vec![0u8; CAT_CHUNK];
    let mut pos = 0;
    while pos < size {
        // OK to cast: at most CAT_CHUNK.
        let n = (size - pos).min(CAT_CHUNK as u64) as usize;
        read(pos, &mut buf[..n])?;
        out.write_all(&buf[..n])
            .context("writing to standard output")?;
        pos += n as u64;
    }
    out.flush().context("writing to standard output")
}

/// The path inside the image as bytes, which must be absolute.
pub(crate) fn image_path(image: &str, path: &std::ffi::OsStr) -> Result<Vec<u8>> {
    let bytes = kiln_host::name_bytes(path).into_owned();
    if !bytes.starts_with(b"/") {
        bail!(
            "{image}: {}: paths inside an image start with /",
            escape(&bytes)
        );
    }
    Ok(bytes)
}

/// The `ls -l` mode column: type letter and permission bits (`drwxr-xr-x`).
fn mode_string(mode: u16) -> String {
    let letter = match mode & kiln_ext::mode::S_IFMT {
        S_IFDIR => 'd',
        S_IFLNK => 'l',
        S_IFCHR => 'c',
        S_IFBLK => 'b',
        S_IFIFO => 'p',
        S_IFSOCK => 's',
        _ => '-',
    };
    let mut s = String::from(letter);
    // (bit of r, w, x; the special bit sharing x; its letter)
    let triads = [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')];
    for (shift, special, special_letter) in triads {
        let bits = (mode >> shift) & 0o7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (bits & 1 != 0, mode & special != 0) {
            (true, true) => special_letter,
            (false, true) => special_letter.to_ascii_uppercase(),
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}
