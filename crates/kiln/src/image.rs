//! Opening an image to look inside: a plain filesystem image, or a
//! partition of a GPT disk image (`IMAGE:PART`, by number or label), as
//! ext2/3/4 or FAT, told by its bytes ([`Image::kind`]); and telling a
//! source that is an image from a directory or an archive
//! ([`Image::source`]).

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kiln_disk::{partition, Region};
use kiln_ext::ImageReader;
use kiln_fat::FatReader;
use kiln_tree::{Looks, SNIFF_LEN};

use crate::Observer;

/// Bytes of a filesystem that tell its type: the ext superblock's magic
/// number ends at 1082.
const HEAD: u64 = 2048;
/// Where the ext superblock's `s_magic` is, and its value.
const EXT_MAGIC_AT: usize = 1080;
const EXT_MAGIC: [u8; 2] = [0x53, 0xEF];
/// Where a tar header's `magic` field is (`ustar`, POSIX and GNU alike).
const TAR_MAGIC_AT: usize = 257;

/// The filesystem types kiln reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsKind {
    /// ext2, ext3 or ext4 (also what anything else is taken for, so that
    /// its errors name what an ext superblock should hold).
    Ext,
    /// FAT12, FAT16 or FAT32.
    Fat,
}

impl FsKind {
    /// The type of the filesystem whose first bytes are `head`: ext if the
    /// ext magic number is in place, else FAT if a FAT boot sector is,
    /// else ext.
    pub fn of(head: &[u8]) -> FsKind {
        let ext = head.get(EXT_MAGIC_AT..EXT_MAGIC_AT + 2) == Some(&EXT_MAGIC[..]);
        if !ext && kiln_fat::probe(head) {
            FsKind::Fat
        } else {
            FsKind::Ext
        }
    }
}

/// A filesystem image, or one partition of a disk image.
#[derive(Debug)]
pub struct Image {
    /// The image file.
    pub path: PathBuf,
    /// The partition's bytes, if a partition was picked.
    pub region: Option<Region>,
    /// `IMAGE` or `IMAGE:PART`, for messages.
    pub name: String,
}

impl Image {
    /// Resolves an `IMAGE[:PART]` argument (a file whose whole name exists
    /// is an image even if it holds a colon).
    pub fn resolve(arg: &OsStr) -> Result<Image> {
        let (path, part) = partition::split_image_arg(arg);
        let name = arg.to_string_lossy().into_owned();
        let region = match &part {
            Some(which) => Some(partition::find_partition(&path, which)?.region),
            None => None,
        };
        Ok(Image { path, region, name })
    }

    /// The image a build source names, if it names one: `IMAGE:PART`, or a
    /// file that holds an ext2/3/4 or FAT filesystem (and no tar header).
    /// A whole GPT disk is refused: its partition must be named. `None`
    /// for directories, archives and anything else (read as an archive).
    pub fn source(arg: &Path) -> Result<Option<Image>> {
        let (path, part) = partition::split_image_arg(arg.as_os_str());
        if part.is_some() {
            return Image::resolve(arg.as_os_str()).map(Some);
        }
        if !path.is_file() {
            return Ok(None);
        }
        let image = Image {
            path,
            region: None,
            name: arg.display().to_string(),
        };
        let head = image.head(SNIFF_LEN as u64)?;
        if head.get(TAR_MAGIC_AT..TAR_MAGIC_AT + 5) == Some(b"ustar") {
            return Ok(None);
        }
        match Looks::sniff(&head) {
            Looks::Ext(_) | Looks::Fat => Ok(Some(image)),
            Looks::Gpt => bail!(
                "{}: a partitioned disk image: name the partition to read \
                 ({}:NUMBER or {}:LABEL)",
                image.name,
                image.name,
                image.name
            ),
            _ => Ok(None),
        }
    }

    /// The filesystem type of the image a build source names, which a
    /// build not told a type makes (`ext2`, `ext3`, `ext4` as its features
    /// make it, or `vfat`); `None` if the source is no image or cannot be
    /// read (reading the source says why).
    pub fn source_fs_type(arg: &Path) -> Option<&'static str> {
        let image = Image::source(arg).ok()??;
        match image.kind().ok()? {
            FsKind::Ext => Some(image.reader().ok()?.superblock().fs_type().name()),
            FsKind::Fat => Some("vfat"),
        }
    }

    /// Where the filesystem starts in the file.
    pub fn offset(&self) -> u64 {
        self.region.as_ref().map_or(0, |r| r.offset)
    }

    /// The type of the filesystem, told by its first bytes.
    pub fn kind(&self) -> Result<FsKind> {
        Ok(FsKind::of(&self.head(HEAD)?))
    }

    /// Kiln's reader of a FAT filesystem.
    pub fn fat_reader(&self) -> Result<FatReader> {
        let len = self.region.as_ref().map(|r| r.len);
        FatReader::open_at(&self.path, self.offset(), len).with_context(|| self.name.clone())
    }

    /// Kiln's own reader of the filesystem.
    pub fn reader(&self) -> Result<ImageReader> {
        let len = self.region.as_ref().map(|r| r.len);
        ImageReader::open_at(&self.path, self.offset(), len).with_context(|| self.name.clone())
    }

    /// Kiln's reader of the filesystem for `ls`, `cat` and `extract`:
    /// refused if it would misread the image (unknown incompat features,
    /// a filesystem larger than its partition), checksums verified unless
    /// `ignore_checksums`, which is warned about.
    pub fn reader_checked(
        &self,
        ignore_checksums: bool,
        observer: &dyn Observer,
    ) -> Result<ImageReader> {
        let mut reader = self.reader()?;
        reader
            .refuse_unreadable()
            .with_context(|| self.name.clone())?;
        if ignore_checksums {
            reader.set_checksums(false);
            observer.warning(&format!(
                "{}: metadata checksums are not verified (--ignore-checksums)",
                self.name
            ));
        }
        Ok(reader)
    }

    /// The first `len` bytes of the filesystem (its superblock).
    pub fn head(&self, len: u64) -> Result<Vec<u8>> {
        let file = File::open(&self.path).with_context(|| self.path.display().to_string())?;
        let mut head = vec![0u8; len as usize];
        let n = kiln_host::read_at(&file, &mut head, self.offset())
            .with_context(|| self.name.clone())?;
        head.truncate(n);
        Ok(head)
    }
}
