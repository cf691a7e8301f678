//! Shared extents (reflinks): a range of one file made part of another
//! without copying its bytes, where the filesystem can (XFS with
//! `reflink=1`, btrfs, bcachefs, OCFS2). Linux only: elsewhere no directory
//! shares extents and nothing is cloned.

use std::fs::File;
use std::io;
use std::path::Path;

/// The block size at which files in directory `dir` share extents, if its
/// filesystem can: probed by cloning (`FICLONE`) a block between two
/// unnamed (`O_TMPFILE`) temporary files there, so that the probe never
/// leaves a name behind and a filesystem that could but has it turned off
/// (XFS made with `reflink=0`) says no. `None` on other hosts, filesystems
/// without it or without `O_TMPFILE`, and when the probe cannot be made.
pub fn reflink_block(dir: &Path) -> Option<u64> {
    imp::reflink_block(dir)
}

/// The filesystem an open file is on (its device number): extents are
/// shared only within one. `None` where the host cannot tell.
pub fn filesystem_of(file: &File) -> Option<u64> {
    imp::filesystem_of(file)
}

/// Makes bytes `dst_offset..dst_offset + len` of `dst` those of `src` from
/// `src_offset`, with `copy_file_range`: on a filesystem that shares
/// extents ([`reflink_block`]), with both offsets and `len` multiples of
/// its block size and both files on it, the kernel clones the range rather
/// than copying it. Returns the bytes done: fewer than `len` only when
/// `src` ends first. `Unsupported` on hosts without the call.
pub fn clone_range(
    src: &File,
    src_offset: u64,
    dst: &File,
    dst_offset: u64,
    len: u64,
) -> io::Result<u64> {
    imp::clone_range(src, src_offset, dst, dst_offset, len)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod imp {
    use std::fs::File;
    use std::io;
    use std::os::unix::fs::{FileExt, MetadataExt};
    use std::path::Path;

    /// The bytes the probe clones: one block of the largest common size.
    const PROBE_BYTES: usize = 4096;

    pub(super) fn reflink_block(dir: &Path) -> Option<u64> {
        // Unnamed files only: a named one would be left in the output's
        // directory by a build killed during the probe. A filesystem
        // without O_TMPFILE is taken not to clone.
        let unnamed = || crate::unix::open_unnamed(dir).ok().flatten();
        let src = unnamed()?;
        src.write_all_at(&[1; PROBE_BYTES], 0).ok()?;
        let dst = unnamed()?;
        rustix::fs::ioctl_ficlone(&dst, &src).ok()?;
        let block = dst.metadata().ok()?.blksize();
        Some(block.max(PROBE_BYTES as u64))
    }

    pub(super) fn filesystem_of(file: &File) -> Option<u64> {
        file.metadata().ok().map(|meta| meta.dev())
    }

    pub(super) fn clone_range(
        src: &File,
        src_offset: u64,
        dst: &File,
        dst_offset: u64,
        len: u64,
    ) -> io::Result<u64> {
        let mut done = 0;
        while done < len {
            let (mut from, mut to) = (src_offset + done, dst_offset + done);
            // At most 1 GiB a call: the kernel's own limit is just under 2 GiB,
            // and a whole number of blocks keeps the next call aligned.
            let want = (len - done).min(1 << 30) as usize;
            match rustix::fs::copy_file_range(src, Some(&mut from), dst, Some(&mut to), want) {
                Ok(0) => break,
                Ok(n) => done += n as u64,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(done)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod imp {
    use std::fs::File;
    use std::io;
    use std::path::Path;

    pub(super) fn reflink_block(_dir: &Path) -> Option<u64> {
        None
    }

    pub(super) fn filesystem_of(_file: &File) -> Option<u64> {
        None
    }

    pub(super) fn clone_range(
        _src: &File,
        _src_offset: u64,
        _dst: &File,
        _dst_offset: u64,
        _len: u64,
    ) -> io::Result<u64> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn a_range_is_copied_whether_or_not_it_is_shared() {
        let dir = tempfile::tempdir().unwrap();
        let src = tempfile::tempfile_in(dir.path()).unwrap();
        let bytes: Vec<u8> = (0..3 * 4096 + 100).map(|i| (i % 251) as u8).collect();
        src.write_all_at(&bytes, 0).unwrap();
        let dst = tempfile::tempfile_in(dir.path()).unwrap();
        assert!(filesystem_of(&src).is_some());
        assert_eq!(filesystem_of(&src), filesystem_of(&dst));
        // Past the source's end: short.
        assert_eq!(
            clone_range(&src, 4096, &dst, 8192, 3 * 4096).unwrap(),
            2 * 4096 + 100
        );
        let mut back = vec![0; 2 * 4096 + 100];
        dst.read_exact_at(&mut back, 8192).unwrap();
        assert_eq!(back, bytes[4096..]);
    }
}
