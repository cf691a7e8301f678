//! Hosts without Unix metadata (Windows): documented defaults.
//!
//! Files get mode 0644 (0755 when they start with `#!` or an ELF header,
//! 0444 when read-only), directories 0755, owner 0:0, no device numbers, no
//! xattrs, and every file is one data range. On Windows the link count and
//! file index of each file find its hard links.

use std::fs::{File, Metadata};
use std::io;
use std::ops::Range;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::{HostFileType, HostMeta, HostTime};

pub(crate) const MISSING_METADATA: Option<&str> = Some(
    "owners (0:0 here), modes (files 0644, or 0755 when they start with #! or an ELF \
     header, 0444 when read-only; directories 0755), device nodes, fifos, sockets and \
     extended attributes",
);

pub(crate) fn lstat(path: &Path) -> io::Result<HostMeta> {
    let mut meta = host_meta(&std::fs::symlink_metadata(path)?);
    if meta.file_type == HostFileType::File {
        let file = File::open(path)?;
        identify(&file, &mut meta)?;
        if meta.perm == 0o644 && is_executable(&file)? {
            meta.perm = 0o755;
        }
    }
    Ok(meta)
}

/// Fills in the link count, volume and file index of a file (which find its
/// hard links); std has them only in unstable APIs.
#[cfg(windows)]
fn identify(file: &File, meta: &mut HostMeta) -> io::Result<()> {
    let info = winapi_util::file::information(file)?;
    meta.nlink = info.number_of_links();
    meta.dev = info.volume_serial_number();
    meta.ino = info.file_index();
    Ok(())
}

#[cfg(not(windows))]
fn identify(_file: &File, _meta: &mut HostMeta) -> io::Result<()> {
    Ok(())
}

/// Whether `file` starts like a Unix executable: a script's `#!` or an ELF
/// header.
fn is_executable(mut file: &File) -> io::Result<bool> {
    use std::io::Read;

    let mut head = [0u8; 4];
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    let head = &head[..filled];
    Ok(head.starts_with(b"#!") || head == b"\x7fELF")
}

fn host_meta(meta: &Metadata) -> HostMeta {
    let ft = meta.file_type();
    let file_type = if ft.is_dir() {
        HostFileType::Dir
    } else if ft.is_symlink() {
        HostFileType::Symlink
    } else {
        HostFileType::File
    };
    let perm = match (file_type, meta.permissions().readonly()) {
        (HostFileType::Dir, _) => 0o755,
        (_, true) => 0o444,
        (_, false) => 0o644,
    };
    let time = |t: io::Result<SystemTime>| {
        t.ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| HostTime {
                secs: d.as_secs() as i64,
                nanos: d.subsec_nanos(),
            })
            .unwrap_or_default()
    };
    let mtime = time(meta.modified());
    HostMeta {
        file_type,
        perm,
        uid: 0,
        gid: 0,
        size: meta.len(),
        allocated: meta.len(),
        io_block: 4096,
        nlink: 1,
        dev: 0,
        ino: 0,
        rdev: (0, 0),
        atime: time(meta.accessed()),
        mtime,
        ctime: mtime,
        crtime: meta.created().ok().map(|t| time(Ok(t))),
    }
}

pub(crate) fn read_xattrs(_path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    Ok(Vec::new())
}

pub(crate) fn read_dir_meta(
    path: &Path,
    keep: &dyn Fn(&std::ffi::OsStr) -> bool,
) -> io::Result<Vec<crate::DirEntryMeta>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let name = entry?.file_name();
        if keep(&name) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names
        .into_iter()
        .map(|name| {
            let meta = lstat(&path.join(&name));
            (name, meta)
        })
        .collect())
}

pub(crate) fn file_stamp(file: &File) -> io::Result<crate::FileStamp> {
    Ok(host_meta(&file.metadata()?).stamp())
}

/// No `access` here: only a missing path is told; the write tells the rest.
pub(crate) fn check_writable(path: &Path) -> io::Result<()> {
    std::fs::metadata(path).map(|_| ())
}

pub(crate) fn open_source(path: &Path) -> io::Result<File> {
    File::open(path)
}

pub(crate) fn set_default_permissions(_file: &File) -> io::Result<()> {
    Ok(())
}

pub(crate) fn data_ranges(_file: &File, size: u64) -> io::Result<Vec<Range<u64>>> {
    Ok(vec![0..size])
}

#[cfg(windows)]
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(windows)]
pub(crate) fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(file, buf, offset)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(not(windows))]
pub(crate) fn read_at(_file: &File, _buf: &mut [u8], _offset: u64) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(not(windows))]
pub(crate) fn write_all_at(_file: &File, _buf: &[u8], _offset: u64) -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

pub(crate) fn preallocate(_file: &File, _range: Range<u64>) {}

/// No unnamed files here: always the named fallback.
pub(crate) fn open_unnamed(_dir: &Path) -> io::Result<Option<File>> {
    Ok(None)
}

/// No unnamed files here ([`open_unnamed`] makes none).
pub(crate) fn link_unnamed(_file: &File, _path: &Path) -> io::Result<()> {
    unsupported()
}

/// Nothing to take: on Windows the writer's open handle is its lock (see
/// [`remove_if_abandoned`]).
pub(crate) fn lock_writer(_file: &File) -> io::Result<()> {
    Ok(())
}

/// A file open here cannot lose its name to a cleanup (see
/// [`remove_if_abandoned`]).
pub(crate) fn is_linked(_file: &File) -> io::Result<bool> {
    Ok(true)
}

/// Removes the temporary output `path` if no process has it open: its
/// writer is gone. An exclusive open (no sharing) is refused with a
/// sharing violation while any other handle is open.
#[cfg(windows)]
pub(crate) fn remove_if_abandoned(path: &Path) -> io::Result<()> {
    use std::os::windows::fs::OpenOptionsExt;
    let probe = std::fs::OpenOptions::new()
        .read(true)
        .share_mode(0)
        .open(path)?;
    // Closed first: Windows removes no file that is open.
    drop(probe);
    std::fs::remove_file(path)
}

/// Hosts without a way to tell a live writer: nothing is removed.
#[cfg(not(windows))]
pub(crate) fn remove_if_abandoned(_path: &Path) -> io::Result<()> {
    Ok(())
}

pub(crate) fn link_target_bytes(target: &Path) -> Vec<u8> {
    target.to_string_lossy().replace('\\', "/").into_bytes()
}

pub(crate) fn name_bytes(name: &std::ffi::OsStr) -> std::borrow::Cow<'_, [u8]> {
    match name.to_string_lossy() {
        std::borrow::Cow::Borrowed(text) => std::borrow::Cow::Borrowed(text.as_bytes()),
        std::borrow::Cow::Owned(text) => std::borrow::Cow::Owned(text.into_bytes()),
    }
}

/// The calls below need Unix metadata this host does not have.
fn unsupported() -> io::Result<()> {
    Err(io::ErrorKind::Unsupported.into())
}

pub(crate) fn set_xattr(_path: &Path, _name: &[u8], _value: &[u8]) -> io::Result<()> {
    unsupported()
}

pub(crate) fn name_from_bytes(name: &[u8]) -> std::ffi::OsString {
    String::from_utf8_lossy(name).into_owned().into()
}

/// Windows has no uid/gid: root's, as `missing_metadata` documents.
pub(crate) fn process_ids() -> (u32, u32) {
    (0, 0)
}

pub(crate) fn open_device(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
}

pub(crate) fn device_mounts(
    _path: &Path,
) -> io::Result<Vec<(std::path::PathBuf, std::path::PathBuf)>> {
    Ok(Vec::new())
}
