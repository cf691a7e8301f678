//! The image reader on corrupted images: a small valid image (ext4 with
//! 4 KiB blocks, or ext2 with 1 KiB blocks) with bytes overwritten gives
//! entries, maps, file bytes, xattrs and a check report, or errors; never a
//! panic, a hang or an absurd allocation. `ext4-view` reads the same bytes.
//!
//! Input: see `images::decode_input`; each run patches the image's file in
//! place and restores it.
#![no_main]

use std::path::Path;

use ext4_view::{Ext4, Ext4Read};
use kiln_ext::{FileMap, ImageReader};
use libfuzzer_sys::fuzz_target;

#[path = "images.rs"]
mod images;

/// Bytes of each file read back at most.
const READ_LIMIT: u64 = 64 << 10;

/// `ext4-view`'s view of an image with patches applied.
struct Patched {
    base: &'static [u8],
    patches: Vec<(usize, u8)>,
}

impl Ext4Read for Patched {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        let start = usize::try_from(start_byte)?;
        let end = start
            .checked_add(dst.len())
            .filter(|&end| end <= self.base.len())
            .ok_or("read past the end of the image")?;
        dst.copy_from_slice(&self.base[start..end]);
        for &(at, byte) in &self.patches {
            if (start..end).contains(&at) {
                dst[at - start] = byte;
            }
        }
        Ok(())
    }
}

/// Everything the reader does with an image; errors are fine.
fn read_all(path: &Path) {
    let Ok(reader) = ImageReader::open(path) else {
        return;
    };
    let Ok(walk) = reader.walk(2) else {
        return;
    };
    let block_size = reader.superblock().block_size;
    for entry in &walk {
        let Ok(inode) = reader.inode(entry.ino) else {
            continue;
        };
        let _ = reader.xattrs(entry.ino);
        if inode.kind() == kiln_ext::mode::S_IFDIR {
            let _ = reader.read_dir(entry.ino);
        }
        let Ok(map) = reader.file_map(entry.ino, &inode) else {
            continue;
        };
        let _ = map.data_ranges(inode.size, block_size);
        let mut buf = vec![0u8; inode.size.min(READ_LIMIT) as usize];
        let _ = reader.read_file(&map, 0, &mut buf);
        if let FileMap::Blocks { runs, .. } = &map {
            // The last bytes of a large file too.
            if inode.size > READ_LIMIT && !runs.is_empty() {
                let _ = reader.read_file(&map, inode.size - READ_LIMIT, &mut buf);
            }
        }
    }
    let _ = kiln_ext::check_image(&reader, &walk, 10);
}

fuzz_target!(|data: &[u8]| {
    let Some((image, patches)) = images::decode_input(data) else {
        return;
    };
    images::with_patched(image, &patches, read_all);
    if let Ok(fs) = Ext4::load(Box::new(Patched {
        base: &image.bytes,
        patches,
    })) {
        if let Ok(entries) = fs.read_dir("/") {
            for entry in entries.flatten() {
                let _ = entry.file_type();
            }
        }
    }
});
