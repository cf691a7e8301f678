//! The host-specific calls of kiln, behind one small interface.
//!
//! Everything that differs between Linux, macOS and Windows hosts lives here:
//! the details of `lstat` ([`HostMeta`], [`read_dir_meta`]), extended attributes ([`read_xattrs`]),
//! the data ranges of sparse files ([`data_ranges`]), opening a source without
//! touching its access time ([`open_source`]), positional reads and writes
//! ([`read_at`], [`write_at`]) and output files that take their name only
//! when complete ([`OutputFile`]: `O_TMPFILE` on Linux), ranges shared
//! between files where the filesystem can ([`clone_range`], `reflink.rs`).
//! The rest of the workspace is host-neutral.
//!
//! On Unix hosts the real calls are made through `rustix` and `std::os::unix`;
//! on other hosts the functions return the documented defaults (no xattrs, a
//! file is one data range, owner 0, mode from the read-only flag).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Vectors of one byte or block range are data here (a file that is one extent),
// not a mistaken `(0..n).collect()`.
#![allow(clippy::single_range_in_vec_init)]

use std::fs::File;
use std::io;
use std::ops::Range;
use std::path::Path;

pub use dest::DestDir;
pub use output::{parent_dir, OutputFile};
pub use partial::{partial_outputs, remove_partial_outputs, PartialOutputs};
pub use reflink::{clone_range, filesystem_of, reflink_block};

mod dest;
mod output;
mod partial;
mod reflink;
#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as imp;

#[cfg(not(unix))]
mod other;
#[cfg(not(unix))]
use other as imp;

/// The file type of a directory entry, as the host reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostFileType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A Unix domain socket.
    Socket,
}

/// A point in time with nanoseconds, seconds counted from the Unix epoch.
///
/// Packed to 12 bytes (the seconds aligned to 4): every node of a source
/// tree holds three or four of them. Fields are read and written by value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(C, packed(4))]
pub struct HostTime {
    /// Seconds since 1970-01-01T00:00:00Z (negative before it).
    pub secs: i64,
    /// Nanoseconds within the second, below 1,000,000,000.
    pub nanos: u32,
}

/// What kiln needs to know of one entry from `lstat` (never following links).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostMeta {
    /// The type of the entry.
    pub file_type: HostFileType,
    /// The 12 permission bits (setuid, setgid, sticky, rwxrwxrwx).
    pub perm: u16,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Size in bytes (regular files and symlinks).
    pub size: u64,
    /// Bytes allocated on disk (`st_blocks` × 512); equal to `size` where
    /// the host cannot tell.
    pub allocated: u64,
    /// The host filesystem's block size (`st_blksize`).
    pub io_block: u64,
    /// Number of hard links.
    pub nlink: u64,
    /// Device holding the entry (to stay on one filesystem, like `cp -x`).
    pub dev: u64,
    /// Inode number on that device (to find hard links); 0 where the host
    /// has no inode numbers.
    pub ino: u64,
    /// Device number of a character or block device: (major, minor).
    pub rdev: (u32, u32),
    /// Last access time.
    pub atime: HostTime,
    /// Last modification time.
    pub mtime: HostTime,
    /// Last status change time.
    pub ctime: HostTime,
    /// Creation (birth) time, where the host records it.
    pub crtime: Option<HostTime>,
}

/// What tells whether a file's content changed: its size and its
/// modification and status change times (any write moves both, and setting
/// the mtime back moves the ctime).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileStamp {
    /// Size in bytes.
    pub size: u64,
    /// Last modification time.
    pub mtime: HostTime,
    /// Last status change time.
    pub ctime: HostTime,
}

impl HostMeta {
    /// The entry's [`FileStamp`].
    pub fn stamp(&self) -> FileStamp {
        FileStamp {
            size: self.size,
            mtime: self.mtime,
            ctime: self.ctime,
        }
    }
}

/// The [`FileStamp`] of an open file (`fstat`): the same fields as
/// [`lstat`] reads by name, so the two can be compared.
pub fn file_stamp(file: &File) -> io::Result<FileStamp> {
    imp::file_stamp(file)
}

/// Reads the metadata of `path` without following a final symlink.
pub fn lstat(path: &Path) -> io::Result<HostMeta> {
    imp::lstat(path)
}

/// What a directory source on this host cannot give kiln, and the defaults
/// kiln takes instead (for a warning); `None` on Unix hosts, which have it all.
///
/// On other hosts (Windows): owners are 0:0; files are 0644, or 0755 when
/// they start with `#!` or an ELF header (the two kinds of Unix executables),
/// or 0444 when read-only; directories are 0755; there are no device nodes,
/// fifos, sockets or extended attributes. Symbolic and hard links are kept
/// where the host has them.
pub const fn missing_metadata() -> Option<&'static str> {
    imp::MISSING_METADATA
}

/// Reads all extended attributes of `path` (not following symlinks) as
/// `(name, value)` pairs sorted by name, values in the host's VFS encoding.
///
/// Hosts and filesystems without xattr support give an empty list.
pub fn read_xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    imp::read_xattrs(path)
}

/// An entry of a directory listing: its name and its [`lstat`] (an error
/// of its own, so that the caller can name the entry).
pub type DirEntryMeta = (std::ffi::OsString, io::Result<HostMeta>);

/// Lists the entries of directory `path` (without `.` and `..`) that `keep`
/// accepts, sorted by name, each with its metadata as [`lstat`] reads it,
/// without updating the directory's access time where the host allows
/// that. A name `keep` refuses is never looked up, so an entry that cannot
/// be stat'ed (gone, or in a directory that cannot be searched) costs
/// nothing when it is not wanted. On Linux each entry is looked up relative
/// to the open directory (`statx` at a directory fd), not by walking its
/// whole path again.
pub fn read_dir_meta(
    path: &Path,
    keep: &dyn Fn(&std::ffi::OsStr) -> bool,
) -> io::Result<Vec<DirEntryMeta>> {
    imp::read_dir_meta(path, keep)
}

/// Whether this process may write `path`: create entries in it, for a
/// directory (`access(W_OK | X_OK)`, which also tells a read-only
/// filesystem). Lets an output be refused before any source is read; hosts
/// without `access` say yes, and the write itself tells.
pub fn check_writable(path: &Path) -> io::Result<()> {
    imp::check_writable(path)
}

/// Opens a source file for reading, without updating its access time where the
/// host allows that (so a second build of the same tree sees the same atimes).
pub fn open_source(path: &Path) -> io::Result<File> {
    imp::open_source(path)
}

/// Returns the byte ranges of `file` (of length `size`) that hold data; the gaps
/// between them are holes. Hosts that cannot tell report one range covering all.
pub fn data_ranges(file: &File, size: u64) -> io::Result<Vec<Range<u64>>> {
    if size == 0 {
        return Ok(Vec::new());
    }
    imp::data_ranges(file, size)
}

/// Reads into `buf` from `offset` until `buf` is full or the file ends; returns
/// how many bytes were read.
pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let off = offset + done as u64;
        match imp::read_at(file, &mut buf[done..], off) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Writes all of `buf` at `offset` without moving a shared file position, so
/// several threads may write disjoint ranges of one file at once.
pub fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    imp::write_all_at(file, buf, offset)
}

/// Gives a file kiln created the mode a new file gets by default (0666 less
/// the umask), instead of the private 0600 of a temporary file.
pub fn set_default_permissions(file: &File) -> io::Result<()> {
    imp::set_default_permissions(file)
}

/// Makes the bytes written so far durable (fdatasync or the host's equivalent).
pub fn sync_data(file: &File) -> io::Result<()> {
    file.sync_data()
}

/// Allocates `range` of `file` on disk ahead of the writes that will fill
/// it, without changing the file's size (Linux `fallocate` with
/// `FALLOC_FL_KEEP_SIZE`): one large allocation instead of many small ones
/// taken while parallel writes wait for each other. A hint: hosts and
/// filesystems without it do nothing, and failures are ignored (the writes
/// report a real lack of space).
pub fn preallocate(file: &File, range: std::ops::Range<u64>) {
    imp::preallocate(file, range)
}

/// A symlink target as the image stores it: the raw bytes on Unix; on
/// Windows UTF-8 with each backslash turned into `/` (Windows writes targets
/// with backslashes, Linux reads only slashes).
pub fn link_target_bytes(target: &Path) -> Vec<u8> {
    imp::link_target_bytes(target)
}

/// A host name as bytes: its raw bytes on Unix (borrowed), UTF-8 elsewhere.
pub fn name_bytes(name: &std::ffi::OsStr) -> std::borrow::Cow<'_, [u8]> {
    imp::name_bytes(name)
}

/// A special file [`DestDir::make_node`] creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A named pipe.
    Fifo,
    /// A Unix domain socket (only the name: nothing listens on it).
    Socket,
    /// A character device (major, minor): needs privilege.
    CharDevice(u32, u32),
    /// A block device (major, minor): needs privilege.
    BlockDevice(u32, u32),
}

/// Sets the extended attribute `name` (full name, `user.x`) of `path`, not
/// following a symlink.
pub fn set_xattr(path: &Path, name: &[u8], value: &[u8]) -> io::Result<()> {
    imp::set_xattr(path, name, value)
}

/// The host name for raw name bytes (the inverse of [`name_bytes`]): the bytes
/// themselves on Unix, lossy UTF-8 elsewhere.
pub fn name_from_bytes(name: &[u8]) -> std::ffi::OsString {
    imp::name_from_bytes(name)
}

/// The process's effective user and group ids (0, 0 where the host has
/// none): who a `mke2fs -d` root directory belongs to.
pub fn process_ids() -> (u32, u32) {
    imp::process_ids()
}

/// Opens an existing block device (or file) for reading and writing, neither
/// creating nor truncating it. On Linux the open is exclusive (`O_EXCL`): the
/// kernel refuses (`EBUSY`) a block device that is mounted or otherwise
/// claimed, and no one can mount it while the file stays open.
pub fn open_device(path: &Path) -> io::Result<File> {
    imp::open_device(path)
}

/// Where the block device at `path` or one of its partitions is in use:
/// `(device, mount point)` pairs, from `/proc/self/mountinfo` (by device
/// number), `/proc/self/mounts` (by path) and `/proc/swaps` (mount point
/// `[swap]`). Hosts that cannot tell report none.
pub fn device_mounts(path: &Path) -> io::Result<Vec<(std::path::PathBuf, std::path::PathBuf)>> {
    imp::device_mounts(path)
}
