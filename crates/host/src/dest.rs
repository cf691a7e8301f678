//! [`DestDir`]: a directory that `kiln extract` creates entries in, confined
//! to it by construction.
//!
//! Names from an image are untrusted. Every entry is created relative to an
//! open directory, one single-component name at a time, and nothing follows
//! a symbolic link: a subdirectory is opened with `openat2`'s
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` on Linux (or `O_NOFOLLOW` one
//! component at a time where `openat2` is missing), new files with
//! `O_CREAT | O_EXCL | O_NOFOLLOW`, and metadata is set with the `*at` calls'
//! no-follow flags. A name that is not one component is refused before any
//! call, whatever the caller checked.

use std::fs::File;
use std::io;
use std::path::Path;

use crate::{HostTime, NodeKind};

/// An open directory whose entries are created and changed by name, never
/// leaving it (see the module documentation).
#[derive(Debug)]
pub struct DestDir(imp::Dir);

impl DestDir {
    /// Opens the existing directory `path` (a symlink to one is refused).
    pub fn open(path: &Path) -> io::Result<DestDir> {
        imp::Dir::open(path).map(DestDir)
    }

    /// Opens the subdirectory at `components` below this one, following no
    /// symlink and never leaving this directory.
    pub fn open_beneath(&self, components: &[&[u8]]) -> io::Result<DestDir> {
        for name in components {
            check_name(name)?;
        }
        self.0.open_beneath(components).map(DestDir)
    }

    /// Creates the directory `name`, private (0700) until [`set_perm`](Self::set_perm).
    pub fn create_dir(&self, name: &[u8]) -> io::Result<()> {
        self.0.create_dir(check_name(name)?)
    }

    /// Creates the new, empty regular file `name` for writing (an existing
    /// entry of that name is an error).
    pub fn create_file(&self, name: &[u8]) -> io::Result<File> {
        self.0.create_file(check_name(name)?)
    }

    /// Creates the symbolic link `name` whose target is the raw bytes
    /// `target` (stored, never followed).
    pub fn make_symlink(&self, name: &[u8], target: &[u8]) -> io::Result<()> {
        self.0.make_symlink(check_name(name)?, target)
    }

    /// Creates the named pipe, socket or device node `name` with permission
    /// bits `perm` (less the umask).
    pub fn make_node(&self, name: &[u8], kind: NodeKind, perm: u16) -> io::Result<()> {
        self.0.make_node(check_name(name)?, kind, perm)
    }

    /// Creates `name` as a hard link to the entry `from_name` of `from`
    /// (never to what a symlink there points at).
    pub fn hard_link(&self, name: &[u8], from: &DestDir, from_name: &[u8]) -> io::Result<()> {
        self.0
            .hard_link(check_name(name)?, &from.0, check_name(from_name)?)
    }

    /// The owner (uid, gid) of the entry `name`, not following a symlink.
    pub fn owner(&self, name: &[u8]) -> io::Result<(u32, u32)> {
        self.0.owner(check_name(name)?)
    }

    /// Sets the owner of the entry `name`, not following a symlink. Refused
    /// (`EPERM`) unless the caller is root or has `CAP_CHOWN`.
    pub fn set_owner(&self, name: &[u8], uid: u32, gid: u32) -> io::Result<()> {
        self.0.set_owner(check_name(name)?, uid, gid)
    }

    /// Sets the 12 permission bits of the entry `name`, which must not be a
    /// symlink (Linux has no modes for symlinks).
    pub fn set_perm(&self, name: &[u8], perm: u16) -> io::Result<()> {
        self.0.set_perm(check_name(name)?, perm)
    }

    /// Sets the access and modification times of the entry `name` with
    /// nanoseconds, not following a symlink.
    pub fn set_times(&self, name: &[u8], atime: HostTime, mtime: HostTime) -> io::Result<()> {
        self.0.set_times(check_name(name)?, atime, mtime)
    }

    /// Sets the extended attribute `xattr` (full name, `user.x`) of the
    /// entry `name`, not following a symlink.
    pub fn set_xattr(&self, name: &[u8], xattr: &[u8], value: &[u8]) -> io::Result<()> {
        self.0.set_xattr(check_name(name)?, xattr, value)
    }
}

/// `name` if it is a single path component: not empty, `.` or `..`, without
/// `/` or NUL (and on Windows without `\` or `:`, its separators and stream
/// marker).
fn check_name(name: &[u8]) -> io::Result<&[u8]> {
    let separator =
        |c: &u8| *c == b'/' || *c == 0 || (cfg!(windows) && (*c == b'\\' || *c == b':'));
    if name.is_empty() || name == b"." || name == b".." || name.iter().any(separator) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "\"{}\" is not a single path component",
                String::from_utf8_lossy(name).escape_debug()
            ),
        ));
    }
    Ok(name)
}

#[cfg(unix)]
mod imp {
    use std::ffi::OsStr;
    use std::fs::File;
    use std::io;
    use std::os::fd::{AsFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    use rustix::fs::{AtFlags, Mode, OFlags, CWD};

    use crate::{HostTime, NodeKind};

    /// An open directory.
    #[derive(Debug)]
    pub(super) struct Dir(OwnedFd);

    /// Flags of every directory opened: never a symlink, never inherited.
    fn dir_flags() -> OFlags {
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
    }

    fn os(name: &[u8]) -> &OsStr {
        OsStr::from_bytes(name)
    }

    impl Dir {
        pub(super) fn open(path: &Path) -> io::Result<Dir> {
            Ok(Dir(rustix::fs::openat(
                CWD,
                path,
                dir_flags(),
                Mode::empty(),
            )?))
        }

        pub(super) fn open_beneath(&self, components: &[&[u8]]) -> io::Result<Dir> {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            {
                use rustix::fs::ResolveFlags;
                let path = components.join(&b'/');
                let path = if path.is_empty() { b".".to_vec() } else { path };
                let how =
                    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
                match rustix::fs::openat2(&self.0, os(&path), dir_flags(), Mode::empty(), how) {
                    // Kernels before 5.6 (ENOSYS), or a seccomp filter that refuses it.
                    Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {}
                    result => return Ok(Dir(result?)),
                }
            }
            let mut dir = Dir(self.0.try_clone()?);
            for name in components {
                dir = Dir(rustix::fs::openat(
                    &dir.0,
                    os(name),
                    dir_flags(),
                    Mode::empty(),
                )?);
            }
            Ok(dir)
        }

        pub(super) fn create_dir(&self, name: &[u8]) -> io::Result<()> {
            Ok(rustix::fs::mkdirat(
                &self.0,
                os(name),
                Mode::from_raw_mode(0o700),
            )?)
        }

        pub(super) fn create_file(&self, name: &[u8]) -> io::Result<File> {
            let flags =
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = rustix::fs::openat(&self.0, os(name), flags, Mode::from_raw_mode(0o600))?;
            Ok(File::from(fd))
        }

        pub(super) fn make_symlink(&self, name: &[u8], target: &[u8]) -> io::Result<()> {
            Ok(rustix::fs::symlinkat(os(target), &self.0, os(name))?)
        }

        #[cfg(not(target_vendor = "apple"))]
        pub(super) fn make_node(&self, name: &[u8], kind: NodeKind, perm: u16) -> io::Result<()> {
            use rustix::fs::{makedev, mknodat, FileType};
            let (file_type, dev) = match kind {
                NodeKind::Fifo => (FileType::Fifo, 0),
                NodeKind::Socket => (FileType::Socket, 0),
                NodeKind::CharDevice(major, minor) => {
                    (FileType::CharacterDevice, makedev(major, minor))
                }
                NodeKind::BlockDevice(major, minor) => {
                    (FileType::BlockDevice, makedev(major, minor))
                }
            };
            let mode = Mode::from_raw_mode(perm.into());
            Ok(mknodat(&self.0, os(name), file_type, mode, dev)?)
        }

        /// macOS: rustix has no `mknodat` there.
        #[cfg(target_vendor = "apple")]
        pub(super) fn make_node(
            &self,
            _name: &[u8],
            _kind: NodeKind,
            _perm: u16,
        ) -> io::Result<()> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this host cannot make fifos, sockets or device nodes",
            ))
        }

        pub(super) fn hard_link(
            &self,
            name: &[u8],
            from: &Dir,
            from_name: &[u8],
        ) -> io::Result<()> {
            Ok(rustix::fs::linkat(
                &from.0,
                os(from_name),
                &self.0,
                os(name),
                AtFlags::empty(),
            )?)
        }

        pub(super) fn owner(&self, name: &[u8]) -> io::Result<(u32, u32)> {
            let st = rustix::fs::statat(&self.0, os(name), AtFlags::SYMLINK_NOFOLLOW)?;
            Ok((st.st_uid, st.st_gid))
        }

        pub(super) fn set_owner(&self, name: &[u8], uid: u32, gid: u32) -> io::Result<()> {
            use rustix::fs::{Gid, Uid};
            let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
            Ok(rustix::fs::chownat(
                &self.0,
                os(name),
                Some(uid),
                Some(gid),
                AtFlags::SYMLINK_NOFOLLOW,
            )?)
        }

        pub(super) fn set_perm(&self, name: &[u8], perm: u16) -> io::Result<()> {
            let mode = Mode::from_raw_mode(perm.into());
            Ok(rustix::fs::chmodat(
                &self.0,
                os(name),
                mode,
                AtFlags::empty(),
            )?)
        }

        pub(super) fn set_times(
            &self,
            name: &[u8],
            atime: HostTime,
            mtime: HostTime,
        ) -> io::Result<()> {
            use rustix::fs::{Timespec, Timestamps};
            let spec = |t: HostTime| Timespec {
                tv_sec: t.secs,
                tv_nsec: t.nanos.into(),
            };
            let times = Timestamps {
                last_access: spec(atime),
                last_modification: spec(mtime),
            };
            Ok(rustix::fs::utimensat(
                &self.0,
                os(name),
                &times,
                AtFlags::SYMLINK_NOFOLLOW,
            )?)
        }

        /// Linux: through `/proc/self/fd/N/NAME`, where the directory's magic
        /// link is the only thing followed and `lsetxattr` does not follow
        /// NAME (symlinks keep `trusted.` and `security.` attributes too).
        #[cfg(any(target_os = "linux", target_os = "android"))]
        pub(super) fn set_xattr(&self, name: &[u8], xattr: &[u8], value: &[u8]) -> io::Result<()> {
            use std::os::fd::AsRawFd;
            let mut path = format!("/proc/self/fd/{}/", self.0.as_fd().as_raw_fd()).into_bytes();
            path.extend_from_slice(name);
            let flags = rustix::fs::XattrFlags::empty();
            Ok(rustix::fs::lsetxattr(os(&path), os(xattr), value, flags)?)
        }

        /// Elsewhere: on the entry opened without following it (a symlink's
        /// attributes are then refused).
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        pub(super) fn set_xattr(&self, name: &[u8], xattr: &[u8], value: &[u8]) -> io::Result<()> {
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
            let fd = rustix::fs::openat(&self.0, os(name), flags, Mode::empty())?;
            let flags = rustix::fs::XattrFlags::empty();
            Ok(rustix::fs::fsetxattr(fd.as_fd(), os(xattr), value, flags)?)
        }
    }
}

/// Hosts without `openat` (Windows): paths joined one checked component at
/// a time, each existing component checked to be a directory and not a
/// link. Owners, modes, times, xattrs and special files are not supported
/// there (extract reports them as not restored).
#[cfg(not(unix))]
mod imp {
    use std::fs::File;
    use std::io;
    use std::path::{Path, PathBuf};

    use crate::{HostTime, NodeKind};

    #[derive(Debug)]
    pub(super) struct Dir(PathBuf);

    fn unsupported<T>() -> io::Result<T> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// `path` if it is a directory and not a link.
    fn real_dir(path: PathBuf) -> io::Result<PathBuf> {
        let meta = path.symlink_metadata()?;
        if meta.is_symlink() || !meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: not a directory", path.display()),
            ));
        }
        Ok(path)
    }

    impl Dir {
        fn join(&self, name: &[u8]) -> PathBuf {
            self.0.join(crate::name_from_bytes(name))
        }

        pub(super) fn open(path: &Path) -> io::Result<Dir> {
            real_dir(path.to_path_buf()).map(Dir)
        }

        pub(super) fn open_beneath(&self, components: &[&[u8]]) -> io::Result<Dir> {
            let mut path = self.0.clone();
            for name in components {
                path = real_dir(path.join(crate::name_from_bytes(name)))?;
            }
            Ok(Dir(path))
        }

        pub(super) fn create_dir(&self, name: &[u8]) -> io::Result<()> {
            std::fs::create_dir(self.join(name))
        }

        pub(super) fn create_file(&self, name: &[u8]) -> io::Result<File> {
            File::create_new(self.join(name))
        }

        pub(super) fn make_symlink(&self, _name: &[u8], _target: &[u8]) -> io::Result<()> {
            unsupported()
        }

        pub(super) fn make_node(
            &self,
            _name: &[u8],
            _kind: NodeKind,
            _perm: u16,
        ) -> io::Result<()> {
            unsupported()
        }

        pub(super) fn hard_link(
            &self,
            name: &[u8],
            from: &Dir,
            from_name: &[u8],
        ) -> io::Result<()> {
            std::fs::hard_link(from.join(from_name), self.join(name))
        }

        pub(super) fn owner(&self, _name: &[u8]) -> io::Result<(u32, u32)> {
            unsupported()
        }

        pub(super) fn set_owner(&self, _name: &[u8], _uid: u32, _gid: u32) -> io::Result<()> {
            unsupported()
        }

        pub(super) fn set_perm(&self, _name: &[u8], _perm: u16) -> io::Result<()> {
            unsupported()
        }

        pub(super) fn set_times(
            &self,
            _name: &[u8],
            _atime: HostTime,
            _mtime: HostTime,
        ) -> io::Result<()> {
            unsupported()
        }

        pub(super) fn set_xattr(
            &self,
            _name: &[u8],
            _xattr: &[u8],
            _value: &[u8],
        ) -> io::Result<()> {
            unsupported()
        }
    }
}
