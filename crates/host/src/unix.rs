//! Unix hosts: `statx` (Linux) or `std::os::unix` for lstat details, positional IO, `rustix`
//! for xattrs, `O_NOATIME` and `SEEK_DATA`/`SEEK_HOLE`.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::{HostFileType, HostMeta, HostTime};

/// Unix hosts have every piece of metadata a directory source needs.
pub(crate) const MISSING_METADATA: Option<&str> = None;

/// Linux: statx, as for every entry of a walk ([`lstat_at`]).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn lstat(path: &Path) -> io::Result<HostMeta> {
    statx_meta_at(rustix::fs::CWD, path)
}

/// Linux: statx of the open file, the call [`lstat`] makes by name.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn file_stamp(file: &File) -> io::Result<crate::FileStamp> {
    use rustix::fs::{statx, AtFlags, StatxFlags};
    let stx = statx(file, "", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS)?;
    Ok(statx_meta(&stx).stamp())
}

/// Elsewhere through std's fstat.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn file_stamp(file: &File) -> io::Result<crate::FileStamp> {
    Ok(host_meta(&file.metadata()?).stamp())
}

/// Elsewhere through std.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn lstat(path: &Path) -> io::Result<HostMeta> {
    Ok(host_meta(&std::fs::symlink_metadata(path)?))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn host_meta(meta: &std::fs::Metadata) -> HostMeta {
    let ft = meta.file_type();
    let file_type = if ft.is_dir() {
        HostFileType::Dir
    } else if ft.is_symlink() {
        HostFileType::Symlink
    } else if ft.is_char_device() {
        HostFileType::CharDevice
    } else if ft.is_block_device() {
        HostFileType::BlockDevice
    } else if ft.is_fifo() {
        HostFileType::Fifo
    } else if ft.is_socket() {
        HostFileType::Socket
    } else {
        HostFileType::File
    };
    // dev_t is 64 bits on Linux but 32 (signed) on macOS, where std widened it.
    #[allow(clippy::unnecessary_cast)]
    let rdev = meta.rdev() as rustix::fs::Dev;
    HostMeta {
        file_type,
        perm: (meta.mode() & 0o7777) as u16,
        uid: meta.uid(),
        gid: meta.gid(),
        size: meta.size(),
        allocated: meta.blocks() * 512,
        io_block: meta.blksize(),
        nlink: meta.nlink(),
        dev: meta.dev(),
        ino: meta.ino(),
        rdev: (rustix::fs::major(rdev), rustix::fs::minor(rdev)),
        atime: time(meta.atime(), meta.atime_nsec()),
        mtime: time(meta.mtime(), meta.mtime_nsec()),
        ctime: time(meta.ctime(), meta.ctime_nsec()),
        crtime: meta.created().ok().map(HostTime::from_system),
    }
}

fn time(secs: i64, nanos: i64) -> HostTime {
    HostTime {
        secs,
        nanos: nanos.clamp(0, 999_999_999) as u32,
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl HostTime {
    fn from_system(t: std::time::SystemTime) -> HostTime {
        match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => HostTime {
                secs: d.as_secs() as i64,
                nanos: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                // Before the epoch: floor the seconds so that nanos stays positive.
                let (secs, nanos) = (d.as_secs() as i64, d.subsec_nanos());
                if nanos == 0 {
                    HostTime {
                        secs: -secs,
                        nanos: 0,
                    }
                } else {
                    HostTime {
                        secs: -secs - 1,
                        nanos: 1_000_000_000 - nanos,
                    }
                }
            }
        }
    }
}

pub(crate) fn read_xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let names = match list_names(path) {
        Ok(n) => n,
        Err(e) if unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        match get_value(path, &name) {
            Ok(v) => out.push((name, v)),
            // Removed between the listing and the read: it is simply not there.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NODATA.raw_os_error()) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

fn unsupported(e: &io::Error) -> bool {
    let code = e.raw_os_error();
    code == Some(rustix::io::Errno::NOTSUP.raw_os_error())
        || code == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error())
}

/// Calls an xattr function with a buffer that grows until the answer fits
/// (the kernel limits names lists and values to 64 KiB).
fn sized_call(mut call: impl FnMut(&mut [u8]) -> rustix::io::Result<usize>) -> io::Result<Vec<u8>> {
    const FIRST_TRY: usize = 1024;
    const LARGEST: usize = 1 << 17;
    let mut len = FIRST_TRY;
    loop {
        let mut buf = vec![0u8; len];
        match call(&mut buf) {
            Ok(n) => {
                // The value is kept in the tree: without the rest of the buffer.
                buf.truncate(n);
                buf.shrink_to_fit();
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) if len < LARGEST => len *= 4,
            Err(e) => return Err(e.into()),
        }
    }
}

fn list_names(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let raw = sized_call(|buf| rustix::fs::llistxattr(path, buf))?;
    Ok(raw
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

fn get_value(path: &Path, name: &[u8]) -> io::Result<Vec<u8>> {
    let name = std::ffi::OsStr::from_bytes(name);
    sized_call(|buf| rustix::fs::lgetxattr(path, name, buf))
}

pub(crate) fn open_source(path: &Path) -> io::Result<File> {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) if !dir.as_os_str().is_empty() => {
            Ok(File::from(open_in_dir(dir, name)?))
        }
        _ => Ok(File::from(open_noatime(path, rustix::fs::OFlags::empty())?)),
    }
}

thread_local! {
    /// The directory the last source file of this thread was opened in: the
    /// files of a directory have consecutive inodes, so the emitter opens
    /// them one after the other, each relative to the directory instead of
    /// by its whole path.
    static SOURCE_DIR: std::cell::RefCell<Option<(PathBuf, rustix::fd::OwnedFd)>> =
        const { std::cell::RefCell::new(None) };
}

/// Opens `name` in directory `dir` (read-only, O_NOATIME where allowed, not
/// following a final symlink), through this thread's [`SOURCE_DIR`].
fn open_in_dir(dir: &Path, name: &std::ffi::OsStr) -> io::Result<rustix::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    SOURCE_DIR.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.as_ref().is_none_or(|(path, _)| path != dir) {
            // Only a handle for lookups where the host has O_PATH.
            #[cfg(any(target_os = "linux", target_os = "android"))]
            let access = OFlags::PATH;
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            let access = OFlags::RDONLY;
            let fd = rustix::fs::open(
                dir,
                access | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            *cached = Some((dir.to_path_buf(), fd));
        }
        let (_, dir_fd) = cached.as_ref().expect("just filled");
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        match rustix::fs::openat(dir_fd, name, flags | OFlags::NOATIME, Mode::empty()) {
            // O_NOATIME is refused (EPERM) for files the caller does not own.
            Err(rustix::io::Errno::PERM) => {}
            other => return Ok(other?),
        }
        Ok(rustix::fs::openat(dir_fd, name, flags, Mode::empty())?)
    })
}

/// Opens `path` read-only, not following a final symlink, with O_NOATIME
/// where the host has it and allows it.
fn open_noatime(path: &Path, extra: rustix::fs::OFlags) -> io::Result<rustix::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | extra;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // O_NOATIME is refused (EPERM) for files the caller does not own.
        match rustix::fs::open(path, flags | OFlags::NOATIME, Mode::empty()) {
            Ok(fd) => return Ok(fd),
            Err(rustix::io::Errno::PERM) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(rustix::fs::open(path, flags, Mode::empty())?)
}

pub(crate) fn read_dir_meta(
    path: &Path,
    keep: &dyn Fn(&std::ffi::OsStr) -> bool,
) -> io::Result<Vec<crate::DirEntryMeta>> {
    let fd = open_noatime(path, rustix::fs::OFlags::DIRECTORY)?;
    let mut names = Vec::new();
    // On a duplicate of the fd: `Dir::read_from` opens `.` again, which
    // needs search permission, and a directory that can be read but not
    // searched can still be listed (its entries then fail alone, by name).
    for entry in rustix::fs::Dir::new(fd.try_clone()?)? {
        let name = entry?.file_name().to_bytes().to_vec();
        let name = std::ffi::OsString::from_vec(name);
        if name != "." && name != ".." && keep(&name) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names
        .into_iter()
        .map(|name| {
            let meta = lstat_at(&fd, path, &name);
            (name, meta)
        })
        .collect())
}

/// `access(2)`: with the real ids, which are the effective ones here (kiln
/// is not setuid); a directory also needs search permission to create in.
pub(crate) fn check_writable(path: &Path) -> io::Result<()> {
    use rustix::fs::Access;
    let mut access = Access::WRITE_OK;
    if std::fs::metadata(path)?.is_dir() {
        access |= Access::EXEC_OK;
    }
    Ok(rustix::fs::access(path, access)?)
}

/// `lstat` of `name` in the directory open as `dir`: statx relative to it.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn lstat_at(
    dir: &rustix::fd::OwnedFd,
    _dir_path: &Path,
    name: &std::ffi::OsStr,
) -> io::Result<HostMeta> {
    statx_meta_at(dir, name)
}

/// `statx` of `path` (relative to `dir`), not following a final symlink.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn statx_meta_at<Fd: rustix::fd::AsFd, P: rustix::path::Arg>(
    dir: Fd,
    path: P,
) -> io::Result<HostMeta> {
    use rustix::fs::{statx, AtFlags, StatxFlags};
    let stx = statx(
        dir,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS | StatxFlags::BTIME,
    )?;
    Ok(statx_meta(&stx))
}

/// Elsewhere by path, through std.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn lstat_at(
    _dir: &rustix::fd::OwnedFd,
    dir_path: &Path,
    name: &std::ffi::OsStr,
) -> io::Result<HostMeta> {
    lstat(&dir_path.join(name))
}

/// The [`HostMeta`] of a `statx` answer.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn statx_meta(stx: &rustix::fs::Statx) -> HostMeta {
    use rustix::fs::{makedev, FileType, StatxFlags};
    let file_type = match FileType::from_raw_mode(u32::from(stx.stx_mode)) {
        FileType::Directory => HostFileType::Dir,
        FileType::Symlink => HostFileType::Symlink,
        FileType::CharacterDevice => HostFileType::CharDevice,
        FileType::BlockDevice => HostFileType::BlockDevice,
        FileType::Fifo => HostFileType::Fifo,
        FileType::Socket => HostFileType::Socket,
        _ => HostFileType::File,
    };
    let stamp = |t: &rustix::fs::StatxTimestamp| time(t.tv_sec, i64::from(t.tv_nsec));
    let has_btime = StatxFlags::from_bits_retain(stx.stx_mask).contains(StatxFlags::BTIME);
    HostMeta {
        file_type,
        perm: stx.stx_mode & 0o7777,
        uid: stx.stx_uid,
        gid: stx.stx_gid,
        size: stx.stx_size,
        allocated: stx.stx_blocks * 512,
        io_block: u64::from(stx.stx_blksize),
        nlink: u64::from(stx.stx_nlink),
        dev: makedev(stx.stx_dev_major, stx.stx_dev_minor),
        ino: stx.stx_ino,
        rdev: (stx.stx_rdev_major, stx.stx_rdev_minor),
        atime: stamp(&stx.stx_atime),
        mtime: stamp(&stx.stx_mtime),
        ctime: stamp(&stx.stx_ctime),
        crtime: has_btime.then(|| stamp(&stx.stx_btime)),
    }
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
pub(crate) fn data_ranges(file: &File, size: u64) -> io::Result<Vec<Range<u64>>> {
    use rustix::fs::SeekFrom;
    let mut ranges = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let start = match rustix::fs::seek(file, SeekFrom::Data(pos)) {
            Ok(s) => s,
            // ENXIO: no data after pos, the rest is a hole.
            Err(rustix::io::Errno::NXIO) => break,
            // Filesystems without SEEK_DATA: all of the file is data.
            Err(rustix::io::Errno::INVAL) if pos == 0 => return Ok(vec![0..size]),
            Err(e) => return Err(e.into()),
        };
        if start >= size {
            break;
        }
        let end = rustix::fs::seek(file, SeekFrom::Hole(start))?.min(size);
        ranges.push(start..end);
        pos = end;
    }
    Ok(ranges)
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
pub(crate) fn data_ranges(_file: &File, size: u64) -> io::Result<Vec<Range<u64>>> {
    Ok(vec![0..size])
}

pub(crate) fn set_default_permissions(file: &File) -> io::Result<()> {
    use rustix::fs::Mode;
    // The umask can only be read by setting it; put it straight back.
    let umask = rustix::process::umask(Mode::from_raw_mode(0o022));
    rustix::process::umask(umask);
    rustix::fs::fchmod(file, Mode::from_raw_mode(0o666) & !umask)?;
    Ok(())
}

pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    file.read_at(buf, offset)
}

pub(crate) fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    file.write_all_at(buf, offset)
}

pub(crate) fn preallocate(file: &File, range: Range<u64>) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::{fallocate, FallocateFlags};
        let len = range.end.saturating_sub(range.start);
        // Only a hint: see the public function.
        let _ = fallocate(file, FallocateFlags::KEEP_SIZE, range.start, len);
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (file, range);
}

/// Linux: an `O_TMPFILE` file in `dir`, or `None` where the filesystem
/// (or kernel) has none, or `/proc` is missing to name it later.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn open_unnamed(dir: &Path) -> io::Result<Option<File>> {
    use rustix::fs::{Mode, OFlags};
    use rustix::io::Errno;
    let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
    match rustix::fs::open(dir, flags, Mode::from_raw_mode(0o600)) {
        // EOPNOTSUPP: the filesystem has no O_TMPFILE (vfat); EISDIR or
        // EINVAL: the kernel predates it.
        Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => Ok(None),
        Err(e) => Err(e.into()),
        Ok(fd) => Ok(Path::new(&fd_link(&fd)).exists().then(|| File::from(fd))),
    }
}

/// Elsewhere there is no unnamed file: always the named fallback.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn open_unnamed(_dir: &Path) -> io::Result<Option<File>> {
    Ok(None)
}

/// Names the unnamed `file` `path` (failing if `path` exists): `linkat`
/// of its `/proc/self/fd` link, which any user may do (`AT_EMPTY_PATH`
/// needs CAP_DAC_READ_SEARCH).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn link_unnamed(file: &File, path: &Path) -> io::Result<()> {
    use rustix::fs::{linkat, AtFlags, CWD};
    Ok(linkat(
        CWD,
        fd_link(file),
        CWD,
        path,
        AtFlags::SYMLINK_FOLLOW,
    )?)
}

/// No unnamed files here ([`open_unnamed`] makes none).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn link_unnamed(_file: &File, _path: &Path) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

/// `/proc/self/fd/N`, the link to an open file.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn fd_link(fd: &impl std::os::fd::AsRawFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Takes the exclusive `flock` of a temporary output, waiting while a
/// cleanup holds it; the lock lasts as long as the file is open.
pub(crate) fn lock_writer(file: &File) -> io::Result<()> {
    Ok(rustix::fs::flock(
        file,
        rustix::fs::FlockOperation::LockExclusive,
    )?)
}

/// Whether `file` still has a name (a cleanup may have removed it).
pub(crate) fn is_linked(file: &File) -> io::Result<bool> {
    Ok(rustix::fs::fstat(file)?.st_nlink > 0)
}

/// Removes the temporary output `path` if no process holds its lock: its
/// writer is gone. Never follows a symlink there.
pub(crate) fn remove_if_abandoned(path: &Path) -> io::Result<()> {
    use rustix::fs::{FlockOperation, Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let fd = rustix::fs::open(path, flags, Mode::empty())?;
    rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive)?;
    // Removed while locked: a writer that created it and has not locked it
    // yet sees it unlinked once it has the lock, and makes another.
    std::fs::remove_file(path)
}

pub(crate) fn link_target_bytes(target: &Path) -> Vec<u8> {
    target.as_os_str().as_bytes().to_vec()
}

pub(crate) fn name_bytes(name: &std::ffi::OsStr) -> std::borrow::Cow<'_, [u8]> {
    std::borrow::Cow::Borrowed(name.as_bytes())
}

pub(crate) fn name_from_bytes(name: &[u8]) -> std::ffi::OsString {
    std::ffi::OsStr::from_bytes(name).to_os_string()
}

pub(crate) fn set_xattr(path: &Path, name: &[u8], value: &[u8]) -> io::Result<()> {
    let name = std::ffi::OsStr::from_bytes(name);
    Ok(rustix::fs::lsetxattr(
        path,
        name,
        value,
        rustix::fs::XattrFlags::empty(),
    )?)
}

pub(crate) fn process_ids() -> (u32, u32) {
    (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    )
}

pub(crate) fn open_device(path: &Path) -> io::Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true).write(true);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Without O_CREAT, O_EXCL on a block device claims it exclusively.
        opts.custom_flags(rustix::fs::OFlags::EXCL.bits() as i32);
    }
    opts.open(path)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn device_mounts(path: &Path) -> io::Result<Vec<(PathBuf, PathBuf)>> {
    let path = std::fs::canonicalize(path)?;
    let meta = std::fs::metadata(&path)?;
    if !meta.file_type().is_block_device() {
        return Ok(Vec::new());
    }
    // dev_t is 64 bits on Linux but 32 (signed) on macOS, where std widened it.
    #[allow(clippy::unnecessary_cast)]
    let rdev = meta.rdev() as rustix::fs::Dev;
    let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
    // The device itself and its partitions, by device number and by path.
    let mut devices = vec![((major, minor), path.clone())];
    let sys = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    if let Ok(entries) = std::fs::read_dir(&sys) {
        for entry in entries.flatten() {
            let dir = entry.path();
            if !dir.join("partition").exists() {
                continue;
            }
            let Some(num) = std::fs::read_to_string(dir.join("dev"))
                .ok()
                .and_then(|d| parse_dev(d.trim()))
            else {
                continue;
            };
            devices.push((num, Path::new("/dev").join(entry.file_name())));
        }
    }
    let same = |source: &str| -> Option<PathBuf> {
        let source = PathBuf::from(unescape_mount(source));
        let canon = std::fs::canonicalize(&source).ok()?;
        devices
            .iter()
            .find(|(_, p)| *p == canon || *p == source)
            .map(|(_, p)| p.clone())
    };
    let mut found: Vec<(PathBuf, PathBuf)> = Vec::new();
    // mountinfo: id parent major:minor root mountpoint options... - fstype source superopts
    if let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") {
        for line in info.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let (Some(num), Some(point)) = (fields.get(2), fields.get(4)) else {
                continue;
            };
            let source = fields
                .iter()
                .position(|f| *f == "-")
                .and_then(|i| fields.get(i + 2));
            let by_num = parse_dev(num).and_then(|n| {
                devices
                    .iter()
                    .find(|(d, _)| *d == n)
                    .map(|(_, p)| p.clone())
            });
            if let Some(dev) = by_num.or_else(|| source.and_then(|s| same(s))) {
                found.push((dev, PathBuf::from(unescape_mount(point))));
            }
        }
    }
    // mounts: source mountpoint fstype options freq passno
    if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
        for line in mounts.lines() {
            let mut fields = line.split(' ');
            let (Some(source), Some(point)) = (fields.next(), fields.next()) else {
                continue;
            };
            if let Some(dev) = same(source) {
                found.push((dev, PathBuf::from(unescape_mount(point))));
            }
        }
    }
    if let Ok(swaps) = std::fs::read_to_string("/proc/swaps") {
        for line in swaps.lines().skip(1) {
            if let Some(dev) = line.split_whitespace().next().and_then(same) {
                found.push((dev, PathBuf::from("[swap]")));
            }
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn device_mounts(_path: &Path) -> io::Result<Vec<(PathBuf, PathBuf)>> {
    Ok(Vec::new())
}

/// `major:minor` as in mountinfo and sysfs.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn parse_dev(s: &str) -> Option<(u32, u32)> {
    let (major, minor) = s.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Undoes the octal escapes (`\040` for a space) of /proc mount tables.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn unescape_mount(s: &str) -> std::ffi::OsString {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| {
            b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)) && d[0] <= b'3'
        });
        if let Some(d) = octal {
            out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    std::ffi::OsString::from_vec(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_user_xattrs_of_any_size() {
        let dir = std::env::temp_dir().join(format!("kiln-host-xattr-{}", std::process::id()));
        std::fs::write(&dir, b"x").unwrap();
        let big = vec![b'v'; 3000];
        let set = rustix::fs::setxattr(&dir, "user.big", &big, rustix::fs::XattrFlags::empty())
            .and_then(|()| {
                rustix::fs::setxattr(&dir, "user.a", b"1", rustix::fs::XattrFlags::empty())
            });
        let got = read_xattrs(&dir);
        std::fs::remove_file(&dir).unwrap();
        if let Err(e) = set {
            // The temp filesystem may lack user xattrs (tmpfs before 6.6); CI's has them.
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "setxattr in the temp dir: {e}"
            );
            eprintln!("skipped: no user xattrs in the temp dir: {e}");
            return;
        }
        let got = got.unwrap();
        assert_eq!(
            got,
            vec![
                (b"user.a".to_vec(), b"1".to_vec()),
                (b"user.big".to_vec(), big)
            ]
        );
    }
}
