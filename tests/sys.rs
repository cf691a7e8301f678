//! Thin wrappers over the Linux calls the tests make through `rustix`:
//! `statx`, directory reading and opening relative to a directory fd (so
//! paths longer than `PATH_MAX` work and no access time moves), xattrs,
//! `mknod`, `lchown`, `utimensat` and `SEEK_DATA`/`SEEK_HOLE`.
//!
//! Deliberately independent of the kiln crates: the tests must not share code
//! with the writer they judge.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, StatxFlags, XattrFlags};

/// The type of a directory entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    CharDev,
    BlockDev,
    Fifo,
    Socket,
}

impl Kind {
    fn from_mode(mode: u32) -> Kind {
        match mode & 0o170000 {
            0o100000 => Kind::File,
            0o040000 => Kind::Dir,
            0o120000 => Kind::Symlink,
            0o020000 => Kind::CharDev,
            0o060000 => Kind::BlockDev,
            0o010000 => Kind::Fifo,
            0o140000 => Kind::Socket,
            other => panic!("unknown file type bits {other:o}"),
        }
    }
}

/// A timestamp with nanoseconds; `secs` is negative before 1970.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ts {
    pub secs: i64,
    pub nanos: u32,
}

impl Ts {
    pub const fn new(secs: i64, nanos: u32) -> Ts {
        Ts { secs, nanos }
    }
}

impl std::fmt::Display for Ts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:09}", self.secs, self.nanos)
    }
}

/// What `statx` (not following a final symlink) tells about one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    /// The 12 permission bits.
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub nlink: u32,
    /// (major, minor) of a device node.
    pub rdev: (u32, u32),
    /// (major, minor) of the filesystem holding the entry.
    pub dev: (u32, u32),
    pub ino: u64,
    pub atime: Ts,
    pub mtime: Ts,
    pub ctime: Ts,
}

fn errno(e: rustix::io::Errno) -> io::Error {
    io::Error::from(e)
}

fn ts(t: rfs::StatxTimestamp) -> Ts {
    Ts::new(t.tv_sec, t.tv_nsec)
}

/// `statx(dir, name, AT_SYMLINK_NOFOLLOW)`.
pub fn stat_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Meta> {
    let st = rfs::statx(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    )
    .map_err(errno)?;
    Ok(Meta {
        kind: Kind::from_mode(u32::from(st.stx_mode)),
        perm: st.stx_mode & 0o7777,
        uid: st.stx_uid,
        gid: st.stx_gid,
        size: st.stx_size,
        nlink: st.stx_nlink,
        rdev: (st.stx_rdev_major, st.stx_rdev_minor),
        dev: (st.stx_dev_major, st.stx_dev_minor),
        ino: st.stx_ino,
        atime: ts(st.stx_atime),
        mtime: ts(st.stx_mtime),
        ctime: ts(st.stx_ctime),
    })
}

/// `lstat` of a path.
pub fn lstat(path: &Path) -> io::Result<Meta> {
    stat_at(rfs::CWD, path.as_os_str().as_bytes())
}

/// Opens with `O_NOATIME` (so reading does not move the access time), falling
/// back to a plain open where the caller may not use it (not the owner).
fn open_noatime(dir: BorrowedFd<'_>, name: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
    let flags = flags | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    match rfs::openat(dir, name, flags | OFlags::NOATIME, Mode::empty()) {
        Err(rustix::io::Errno::PERM) => {}
        other => return other.map_err(errno),
    }
    rfs::openat(dir, name, flags, Mode::empty()).map_err(errno)
}

/// Opens a directory for reading, relative to `dir`, without touching its atime.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    open_noatime(dir, name, OFlags::RDONLY | OFlags::DIRECTORY)
}

/// Opens a directory by path (following symlinks in the path, not at the end).
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    open_dir_at(rfs::CWD, path.as_os_str().as_bytes())
}

/// Opens a regular file for reading, relative to `dir`, without touching its atime.
pub fn open_file_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<File> {
    Ok(File::from(open_noatime(dir, name, OFlags::RDONLY)?))
}

/// Opens `components` one by one below `root` (each step relative to the
/// previous directory, so the full path may exceed `PATH_MAX`); the last
/// component is opened as a regular file.
pub fn open_file_beneath(root: &Path, components: &[Vec<u8>]) -> io::Result<File> {
    let (last, dirs) = components
        .split_last()
        .expect("a file path has at least one component");
    let mut dir = open_dir(root)?;
    for c in dirs {
        dir = open_dir_at(dir.as_fd(), c)?;
    }
    open_file_at(dir.as_fd(), last)
}

/// The names in a directory, without `.` and `..`, sorted bytewise.
pub fn read_dir_names(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let mut d = rfs::Dir::read_from(dir).map_err(errno)?;
    let mut names = Vec::new();
    while let Some(entry) = d.read() {
        let entry = entry.map_err(errno)?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    names.sort();
    Ok(names)
}

/// `readlinkat(dir, name)`.
pub fn readlink_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Vec<u8>> {
    let target = rfs::readlinkat(dir, name, Vec::new()).map_err(errno)?;
    Ok(target.into_bytes())
}

/// A path naming `name` inside the directory open as `dir`, short whatever the
/// depth (through `/proc/self/fd`), for the calls that only take paths.
fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> PathBuf {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    PathBuf::from(OsStr::from_bytes(&p))
}

/// Asks an xattr call for the size it needs, then fills a buffer of that
/// size, again if the value grew in between. (rustix answers an empty buffer
/// with 0, so the size comes from the `*_query` variant.)
fn sized(
    query: impl Fn() -> rustix::io::Result<usize>,
    fill: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
) -> io::Result<Vec<u8>> {
    loop {
        let mut buf = vec![0u8; query().map_err(errno)?];
        if buf.is_empty() {
            return Ok(buf);
        }
        match fill(&mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) => continue,
            Err(e) => return Err(errno(e)),
        }
    }
}

/// All extended attributes of `name` in `dir` (not following symlinks), as
/// (name, value) pairs sorted by name. Values are in the kernel's VFS format
/// (ACLs included).
pub fn xattrs_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let path = proc_path(dir, name);
    let list = match sized(
        || rfs::llistxattr_query(&path),
        |buf| rfs::llistxattr(&path, buf),
    ) {
        Ok(l) => l,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error()) => {
            return Ok(Vec::new())
        }
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for n in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let value = sized(
            || rfs::lgetxattr_query(&path, n),
            |buf| rfs::lgetxattr(&path, n, buf),
        )?;
        out.push((n.to_vec(), value));
    }
    out.sort();
    Ok(out)
}

/// Sets one extended attribute (not following symlinks).
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rfs::lsetxattr(path, name, value, XattrFlags::empty())
        .unwrap_or_else(|e| panic!("lsetxattr {} {name}: {e}", path.display()));
}

/// Removes one extended attribute (not following symlinks).
pub fn remove_xattr(path: &Path, name: &str) {
    rfs::lremovexattr(path, name)
        .unwrap_or_else(|e| panic!("lremovexattr {} {name}: {e}", path.display()));
}

/// Reads one extended attribute, `None` when absent.
pub fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    match sized(
        || rfs::lgetxattr_query(path, name),
        |buf| rfs::lgetxattr(path, name, buf),
    ) {
        Ok(v) => Some(v),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NODATA.raw_os_error()) => None,
        Err(e) => panic!("lgetxattr {} {name}: {e}", path.display()),
    }
}

/// Creates a device node, FIFO or socket node with exactly `perm` (umask undone).
pub fn mknod(path: &Path, kind: Kind, perm: u16, major: u32, minor: u32) {
    let ft = match kind {
        Kind::CharDev => rfs::FileType::CharacterDevice,
        Kind::BlockDev => rfs::FileType::BlockDevice,
        Kind::Fifo => rfs::FileType::Fifo,
        other => panic!("mknod of {other:?}"),
    };
    rfs::mknodat(
        rfs::CWD,
        path,
        ft,
        Mode::from_raw_mode(perm.into()),
        rfs::makedev(major, minor),
    )
    .unwrap_or_else(|e| panic!("mknod {}: {e}", path.display()));
    chmod(path, perm);
}

/// `chmod` (not for symlinks).
pub fn chmod(path: &Path, perm: u16) {
    rfs::chmodat(
        rfs::CWD,
        path,
        Mode::from_raw_mode(perm.into()),
        AtFlags::empty(),
    )
    .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// `lchown`.
pub fn lchown(path: &Path, uid: u32, gid: u32) {
    rfs::chownat(
        rfs::CWD,
        path,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap_or_else(|e| panic!("lchown {}: {e}", path.display()));
}

/// Sets atime and mtime (not following symlinks).
pub fn set_times(path: &Path, atime: Ts, mtime: Ts) {
    let spec = |t: Ts| rustix::fs::Timespec {
        tv_sec: t.secs,
        tv_nsec: t.nanos.into(),
    };
    let times = rfs::Timestamps {
        last_access: spec(atime),
        last_modification: spec(mtime),
    };
    rfs::utimensat(rfs::CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)
        .unwrap_or_else(|e| panic!("utimensat {}: {e}", path.display()));
}

/// The byte ranges of `file` (of length `size`) holding data, by
/// `SEEK_DATA`/`SEEK_HOLE`; the gaps are holes.
pub fn data_ranges(file: &File, size: u64) -> io::Result<Vec<Range<u64>>> {
    let mut ranges = Vec::new();
    let mut pos = 0;
    while pos < size {
        let start = match rfs::seek(file, rfs::SeekFrom::Data(pos)) {
            Ok(s) => s,
            Err(rustix::io::Errno::NXIO) => break,
            Err(e) => return Err(errno(e)),
        };
        if start >= size {
            break;
        }
        let end = rfs::seek(file, rfs::SeekFrom::Hole(start))
            .map_err(errno)?
            .min(size);
        ranges.push(start..end);
        pos = end;
    }
    Ok(ranges)
}

/// Whether the effective user is root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
