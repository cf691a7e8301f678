//! Opening an image to look inside: a plain filesystem image, or a
//! partition of a GPT disk image (`IMAGE:PART`, by number or label).

use std::ffi::OsStr;
use std::fs::File;
use std::path::PathBuf;

use anyhow::{Context, Result};
use kiln_disk::{partition, Region};
use kiln_ext::ImageReader;

use crate::Observer;

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

    /// Where the filesystem starts in the file.
    pub fn offset(&self) -> u64 {
        self.region.as_ref().map_or(0, |r| r.offset)
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
