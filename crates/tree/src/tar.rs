//! Reads a tar archive into a [`Tree`], as extracting it would make it.
//!
//! Headers are parsed here rather than with the `tar` crate, which expands
//! the holes of sparse members into zeros (kiln keeps them as holes) and
//! does not read GNU's PAX sparse formats. What is read:
//!
//! - **Layouts:** v7, POSIX ustar (with its name prefix), GNU (long names
//!   and link targets in `L`/`K` members, base-256 numbers, access and change
//!   times) and PAX (`x` and `g` headers: `path`, `linkpath`, `uid`, `gid`,
//!   `size`, `mtime`/`atime`/`ctime` with nanoseconds, `SCHILY.devmajor`/
//!   `devminor`, `SCHILY.xattr.*`, `LIBARCHIVE.xattr.*`, `SCHILY.acl.*`).
//!   User and group names are ignored: ownership is the numeric ids.
//! - **Members:** regular files, hard links (to a member earlier in the
//!   archive), symlinks (targets verbatim, absolute ones too), character and
//!   block devices, FIFOs, directories (`D` dump directories too), and sparse
//!   files (GNU's old `S` members, PAX sparse formats 0.0, 0.1 and 1.0),
//!   whose holes stay holes.
//! - **Compression:** gzip, xz, zstd and bzip2, recognised by magic number
//!   (see [`input`]).
//!
//! The data of a plain archive file are read in place when the image is
//! written: the tree holds where each member's data is in the archive, and
//! the archive must not change meanwhile. Standard input and compressed
//! archives are read once, as a stream: their file data are copied to a
//! spool file in the temporary directory as they stream past (see
//! [`spool`]).
//!
//! Times, owners and modes all come from the archive, never the host: a
//! member without `atime` or `ctime` gets its `mtime` for both, and no member
//! has a creation time. Directories that the archive implies without a member
//! of their own (`a` for a member `a/b`, and the root when there is no `./`)
//! get mode 0755, owner 0:0 and all times 0.
//!
//! POSIX ACLs come as `SCHILY.xattr.system.posix_acl_*` xattrs (GNU tar's
//! `--xattrs --xattrs-include='*'`), or as the text of `SCHILY.acl.*` (GNU
//! tar's and bsdtar's `--acls`; see [`acl`]: users and groups there must be
//! numeric). An access ACL sets the mode's permission bits as extracting it
//! does: the group bits are its mask (bsdtar's header holds the `group::`
//! entry there instead).
//!
//! The archive ends at its first zero block (GNU tar writes two, then pads
//! the last record with zeros). Anything but zeros after it is an error
//! unless [`TarOptions::ignore_zeros`] reads past zero blocks, as GNU tar's
//! `--ignore-zeros` does for archives joined with `cat`. A file that is not
//! a tar archive at all is an error that says what it looks like (see
//! [`Looks`](crate::Looks)): an ext image, whose first 1024 bytes are zeros,
//! is not an empty archive. An archive of zero blocks only (what `tar -cf
//! e.tar -T /dev/null` writes) is empty; a file of no bytes is not an
//! archive.
//!
//! Limits: no multi-volume (`M`) or old GNU long-name (`N`) members.

mod acl;
mod build;
mod header;
mod input;
mod pax;
mod sparse;
mod spool;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::model::{Body, FileData, Metadata, Node, Times, Tree, Xattr};
use crate::{Looks, Timestamp, TreeError};
use build::{components, Builder, Components};
use header::{Header, BLOCK};
use input::{Block, Input};
use pax::{Extended, Record};
use sparse::SparseMap;
use spool::{in_place_source, CopyError, Spool, Store};

/// The largest `x`, `g`, `L` or `K` member read (they are held in memory).
const MAX_EXTENSION: u64 = 64 << 20;

/// How tar archives are read: [`TarOptions::read`] a file (or stdin),
/// [`TarOptions::read_from`] any reader.
#[derive(Clone, Debug, Default)]
pub struct TarOptions {
    /// See [`TarOptions::ignore_zeros`].
    ignore_zeros: bool,
    /// See [`TarOptions::count_entries`].
    entries: Option<Arc<AtomicU64>>,
}

impl TarOptions {
    /// The defaults: an archive ends at its first zero block.
    pub fn new() -> TarOptions {
        TarOptions::default()
    }

    /// Reads past zero blocks, as GNU tar's `--ignore-zeros` does: the
    /// members of archives joined with `cat` are all read. Without it,
    /// anything but zeros after the end-of-archive marker is an error.
    pub fn ignore_zeros(mut self, ignore: bool) -> TarOptions {
        self.ignore_zeros = ignore;
        self
    }

    /// Adds one to `counter` for each member read (a relaxed atomic add),
    /// for a progress display to poll while the archive is read.
    pub fn count_entries(mut self, counter: Arc<AtomicU64>) -> TarOptions {
        self.entries = Some(counter);
        self
    }

    /// Reads a tar archive (plain or gzip/xz/zstd/bzip2-compressed, detected
    /// by magic bytes) from `path`, or from stdin when `path` is "-", into a
    /// Tree. A plain archive file is read in place; the data of other
    /// archives are copied to a spool file in the temporary directory.
    ///
    /// Member paths lose leading `/` and `./`, doubled slashes and `.`
    /// components; a `..` component is an error. Later members replace
    /// earlier ones of the same path, as extraction would, except that a
    /// directory over a directory only takes the new metadata. Errors name
    /// the archive, the member and the byte offset of its header in the
    /// uncompressed archive; a file that is not an archive is
    /// [`TreeError::NotAnArchive`], saying what it looks like.
    pub fn read(&self, path: &Path) -> Result<Tree, TreeError> {
        let archive = if path == Path::new("-") {
            PathBuf::from("<stdin>")
        } else {
            path.to_path_buf()
        };
        let input = Input::open(path).map_err(|e| TreeError::io(&archive, e))?;
        read_stream(archive, input, self)
    }

    /// Reads a tar archive (compressed or not) from `reader`, named `name`
    /// in messages: archives that come from somewhere other than a path,
    /// their data copied to a spool file in the temporary directory.
    pub fn read_from(
        &self,
        reader: impl io::Read + 'static,
        name: &Path,
    ) -> Result<Tree, TreeError> {
        let input = Input::new(Box::new(reader)).map_err(|e| TreeError::io(name, e))?;
        read_stream(name.to_path_buf(), input, self)
    }
}

/// Reads a tar archive from `path` (`-`: stdin) with the default
/// [`TarOptions`]; see [`TarOptions::read`].
pub fn read_tar(path: &Path) -> Result<Tree, TreeError> {
    TarOptions::new().read(path)
}

/// Reads a tar archive from `reader`, named `name` in messages, with the
/// default [`TarOptions`]; see [`TarOptions::read_from`].
pub fn read_tar_from(reader: impl io::Read + 'static, name: &Path) -> Result<Tree, TreeError> {
    TarOptions::new().read_from(reader, name)
}

/// Reads the archive `input`, named `archive` in messages.
fn read_stream(
    archive: PathBuf,
    mut input: Input,
    options: &TarOptions,
) -> Result<Tree, TreeError> {
    let store = match input.take_plain_file() {
        Some(file) => {
            Store::in_place(file, archive.clone()).map_err(|e| TreeError::io(&archive, e))
        }
        None => Spool::new(archive.clone())
            .map(Store::Spool)
            .map_err(|e| TreeError::io(std::env::temp_dir(), e)),
    }?;
    Reader {
        archive,
        input,
        options: options.clone(),
        seen_header: false,
        store,
        builder: Builder::new(),
        globals: BTreeMap::new(),
    }
    .run()
}

/// Where a member is, for messages: the offset of its first header (an
/// extension header's, if it has one) and its name once known.
struct At {
    /// Byte offset in the uncompressed archive.
    offset: u64,
    /// The member's path as the archive spells it.
    entry: Option<String>,
}

/// What the `x`, `L` and `K` members before a member said about it.
#[derive(Default)]
struct Pending {
    /// Where the first of them began.
    start: Option<u64>,
    /// The name from an `L` member.
    long_name: Option<Vec<u8>>,
    /// The link target from a `K` member.
    long_link: Option<Vec<u8>>,
    /// The records of `x` members.
    records: Vec<Record>,
}

/// One member's header with its extensions applied.
struct Member {
    /// The member's own header.
    header: Header,
    /// Its PAX keys, global and its own.
    ext: Extended,
    /// The path as the archive spells it.
    raw_path: Vec<u8>,
    /// The path split and checked.
    path: Components,
    /// The link target as the archive spells it.
    link: Vec<u8>,
    /// True when a PAX `x` header came before it.
    has_pax: bool,
    /// Where it is, for messages.
    at: At,
}

/// The state of one read.
struct Reader {
    /// The archive's name in messages.
    archive: PathBuf,
    /// The uncompressed stream.
    input: Input,
    /// How to read it.
    options: TarOptions,
    /// True once a valid header was read: before, a stream that is not
    /// tar is "not a tar archive", after, a damaged one.
    seen_header: bool,
    /// Where file data goes.
    store: Store,
    /// The tree so far.
    builder: Builder,
    /// Records of `g` headers, in force for every later member (the last
    /// value of each key).
    globals: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Reader {
    /// Reads member after member up to the end-of-archive marker (or the
    /// end of the stream at a member boundary).
    fn run(mut self) -> Result<Tree, TreeError> {
        let mut pending = Pending::default();
        while let Some((offset, header)) = self.next_header(&pending)? {
            let at = At {
                offset: pending.start.unwrap_or(offset),
                entry: None,
            };
            pending.start.get_or_insert(offset);
            match header.typeflag() {
                b'x' => pending.records.extend(self.records(&header, &at)?),
                b'g' => {
                    let records = self.records(&header, &at)?;
                    self.globals.extend(records);
                }
                b'L' => pending.long_name = Some(self.long_text(&header, &at)?),
                b'K' => pending.long_link = Some(self.long_text(&header, &at)?),
                // A tape volume label: no member.
                b'V' => {
                    let size = header.size().map_err(|w| self.fail(&at, w))?;
                    self.skip_data(size, &at)?;
                    pending = Pending::default();
                }
                _ => {
                    let member = self.member(header, std::mem::take(&mut pending))?;
                    self.add(member)?;
                    if let Some(counter) = &self.options.entries {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        let end = At {
            offset: self.input.offset(),
            entry: None,
        };
        if let Store::Spool(spool) = &self.store {
            spool.finish().map_err(|e| self.spool_error(&end, e))?;
        }
        Ok(self.builder.finish())
    }

    /// The next header and its offset, or `None` at the end of the archive:
    /// the end of the stream, or zeros up to it (the stream is read to its
    /// end, so that a decompressor checks all of it). Zero blocks followed
    /// by more data are an error, unless `ignore_zeros` reads past them.
    fn next_header(&mut self, pending: &Pending) -> Result<Option<(u64, Header)>, TreeError> {
        let end = self.input.offset();
        let at = At {
            offset: pending.start.unwrap_or(end),
            entry: None,
        };
        let nonzero = self.input.skip_zeros().map_err(|e| self.io_error(&at, e))?;
        let zero_block = nonzero.is_none_or(|n| n >= end + BLOCK as u64);
        if zero_block && pending.start.is_some() {
            return Err(self.fail(&at, "the archive ends after an extension header"));
        }
        let Some(nonzero) = nonzero else {
            // Less than a block, even of zeros, is not an archive (GNU tar
            // agrees); an empty stdin is a command that failed.
            if !self.seen_header && self.input.offset() < BLOCK as u64 {
                return Err(self.not_an_archive(self.input.offset()));
            }
            return Ok(None);
        };
        if zero_block && !self.options.ignore_zeros {
            return Err(self.data_after_end(end, nonzero));
        }
        let offset = self.input.offset();
        match self.input.next_block().map_err(|e| self.io_error(&at, e))? {
            Block::Full(block) => self.header(offset, block, nonzero).map(Some),
            Block::Short(_) if !self.seen_header => Err(self.not_an_archive(nonzero)),
            Block::Short(n) => Err(self.io_error(&at, self.input.truncated(n))),
        }
    }

    /// The header in `block`, at `offset`; `nonzero` is where the data
    /// after any zeros before it starts.
    fn header(
        &mut self,
        offset: u64,
        block: [u8; BLOCK],
        nonzero: u64,
    ) -> Result<(u64, Header), TreeError> {
        match Header::parse(block) {
            Ok(header) => {
                self.seen_header = true;
                Ok((offset, header))
            }
            // A first header with tar's magic is a damaged archive, not
            // something else.
            Err(what) if self.seen_header || header::has_magic(&block) => {
                let here = At {
                    offset,
                    entry: None,
                };
                Err(self.fail(&here, what))
            }
            Err(_) => Err(self.not_an_archive(nonzero)),
        }
    }

    /// The error for data (its first byte at `nonzero`, in the block the
    /// input is at) after the end-of-archive marker at `end`. Before any
    /// header, the zeros were the start of something else (an ext image),
    /// unless a tar header follows them.
    fn data_after_end(&mut self, end: u64, nonzero: u64) -> TreeError {
        let offset = self.input.offset();
        if !self.seen_header {
            let then_tar = matches!(
                self.input.next_block(),
                Ok(Block::Full(block)) if Header::parse(block).is_ok()
            );
            if !then_tar {
                return self.not_an_archive(nonzero);
            }
        }
        TreeError::DataAfterEnd {
            archive: self.archive.clone(),
            end,
            offset,
        }
    }

    /// The error for a stream that is not a tar archive, saying what it
    /// looks like; it starts with `leading_zeros` zero bytes.
    fn not_an_archive(&mut self, leading_zeros: u64) -> TreeError {
        TreeError::NotAnArchive {
            archive: self.archive.clone(),
            looks: Looks::sniff(self.input.head()),
            compression: self.input.compression(),
            leading_zeros,
        }
    }

    /// The data of an extension member, whole.
    fn extension_data(&mut self, header: &Header, at: &At) -> Result<Vec<u8>, TreeError> {
        let size = header.size().map_err(|w| self.fail(at, w))?;
        if size > MAX_EXTENSION {
            return Err(self.fail(at, format!("an extension header of {size} bytes")));
        }
        let mut data = vec![0u8; size as usize];
        self.input
            .exact(&mut data)
            .map_err(|e| self.io_error(at, e))?;
        self.skip_data(0, at)?;
        Ok(data)
    }

    /// The records of a PAX `x` or `g` member.
    fn records(&mut self, header: &Header, at: &At) -> Result<Vec<Record>, TreeError> {
        let data = self.extension_data(header, at)?;
        pax::records(&data).map_err(|w| self.fail(at, w))
    }

    /// A GNU long name or link target: the data up to its first NUL.
    fn long_text(&mut self, header: &Header, at: &At) -> Result<Vec<u8>, TreeError> {
        let mut data = self.extension_data(header, at)?;
        let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
        data.truncate(end);
        Ok(data)
    }

    /// Applies the extensions to `header`: the member's path, link and
    /// extended keys.
    fn member(&mut self, header: Header, pending: Pending) -> Result<Member, TreeError> {
        let long_name = pending.long_name.unwrap_or_else(|| header.name());
        let mut at = At {
            offset: pending.start.unwrap_or(0),
            entry: Some(lossy(&long_name)),
        };
        let mut ext = Extended::default();
        let locals = pending.records.iter().map(|(k, v)| (k, v));
        for (key, value) in self.globals.iter().chain(locals) {
            ext.apply(key, value).map_err(|w| self.fail(&at, w))?;
        }
        let raw_path = ext
            .sparse
            .name
            .take()
            .or(ext.path.take())
            .unwrap_or(long_name);
        at.entry = Some(lossy(&raw_path));
        let path = components(&raw_path).map_err(|w| self.fail(&at, w))?;
        let link = ext
            .linkpath
            .take()
            .or(pending.long_link)
            .unwrap_or_else(|| header.linkname());
        Ok(Member {
            header,
            ext,
            raw_path,
            path,
            link,
            has_pax: !pending.records.is_empty(),
            at,
        })
    }

    /// Reads the member's data and puts it in the tree.
    fn add(&mut self, mut m: Member) -> Result<(), TreeError> {
        let meta = metadata(&m.header, &mut m.ext).map_err(|w| self.fail(&m.at, w))?;
        let size = match m.ext.size {
            Some(size) => size,
            None => m.header.size().map_err(|w| self.fail(&m.at, w))?,
        };
        let body = match m.header.typeflag() {
            b'0' | 0 | b'7' if m.raw_path.ends_with(b"/") => self.dir(size, &m.at)?,
            b'0' | 0 | b'7' | b'S' => self.file(&m, size)?,
            b'1' => {
                // Tar writers put sizes in link headers with no data after
                // them; only PAX lets a hard link carry (a copy of) its data.
                self.skip_data(if m.has_pax { size } else { 0 }, &m.at)?;
                let target = components(&m.link).map_err(|w| {
                    self.fail(&m.at, format!("its link target {}: {w}", lossy(&m.link)))
                })?;
                return self
                    .builder
                    .hard_link(&m.path, &target)
                    .map_err(|w| self.fail(&m.at, w));
            }
            b'2' if m.link.is_empty() || m.link.contains(&0) => {
                return Err(self.fail(&m.at, "a symlink target that is empty or has a NUL"))
            }
            b'2' => Body::Symlink(std::mem::take(&mut m.link)),
            b'3' | b'4' => {
                let (major, minor) = self.device(&m)?;
                match m.header.typeflag() {
                    b'3' => Body::CharDevice(major, minor),
                    _ => Body::BlockDevice(major, minor),
                }
            }
            b'5' | b'D' => self.dir(size, &m.at)?,
            b'6' => Body::Fifo,
            t => {
                return Err(self.fail(
                    &m.at,
                    format!("unsupported member type {:?}", char::from(t)),
                ))
            }
        };
        self.builder
            .put(&m.path, Node { meta, body })
            .map_err(|w| self.fail(&m.at, w))
    }

    /// A directory, its data (if any) skipped.
    fn dir(&mut self, size: u64, at: &At) -> Result<Body, TreeError> {
        // A GNU dump directory lists its entries as data: not needed.
        self.skip_data(size, at)?;
        Ok(Body::Dir(Box::default()))
    }

    /// A device's numbers: from `SCHILY.devmajor`/`devminor`, else the header.
    fn device(&self, m: &Member) -> Result<(u32, u32), TreeError> {
        let (major, minor) = match (m.ext.devmajor, m.ext.devminor) {
            (Some(major), Some(minor)) => (major, minor),
            (major, minor) => {
                let (hmajor, hminor) = m.header.device().map_err(|w| self.fail(&m.at, w))?;
                (major.unwrap_or(hmajor), minor.unwrap_or(hminor))
            }
        };
        Ok((major, minor))
    }

    /// A regular file: its data (the whole `size` bytes, or the segments of
    /// a sparse member) left in place or copied to the spool.
    fn file(&mut self, m: &Member, size: u64) -> Result<Body, TreeError> {
        let (map, stored) = self.sparse_map(m, size)?;
        map.check(stored).map_err(|w| self.fail(&m.at, w))?;
        let ranges = map.ranges();
        let source = match &mut self.store {
            Store::InPlace(data) => {
                let (data, base) = (Arc::clone(data), self.input.offset());
                // Skipped first: the data are there, so `base + stored` is
                // within the archive.
                self.skip_data(stored, &m.at)?;
                in_place_source(data, base, map.real_size, &ranges)
            }
            Store::Spool(spool) => {
                let copied = spool.copy_file(&mut self.input, &map);
                copied.map_err(|e| self.copy_error(&m.at, e))?
            }
        };
        self.skip_data(0, &m.at)?;
        Ok(Body::File(FileData::new(source, map.real_size, ranges)))
    }

    /// The member's sparse map (a one-segment map for a plain file) and the
    /// bytes of data still to come.
    fn sparse_map(&mut self, m: &Member, size: u64) -> Result<(SparseMap, u64), TreeError> {
        if m.header.typeflag() == b'S' {
            let map = self.gnu_sparse_map(&m.header, &m.at)?;
            return Ok((map, size));
        }
        if !m.ext.sparse.present() {
            return Ok((SparseMap::dense(size), size));
        }
        if m.ext.sparse.major != Some(1) {
            let map = SparseMap::from_keys(&m.ext.sparse).map_err(|w| self.fail(&m.at, w))?;
            return Ok((map, size));
        }
        let real_size = m
            .ext
            .sparse
            .real_size
            .ok_or_else(|| self.fail(&m.at, "a sparse member without GNU.sparse.realsize"))?;
        let mut taken = 0u64;
        let input = &mut self.input;
        let (segments, blocks) = sparse::read_map_1_0(|| {
            taken += BLOCK as u64;
            if taken > size {
                return Err("the sparse map runs past the member's data".into());
            }
            let mut block = vec![0u8; BLOCK];
            input.exact(&mut block).map_err(|e| input.describe(&e))?;
            Ok(block)
        })
        .map_err(|w| self.fail(&m.at, w))?;
        let map = SparseMap {
            segments,
            real_size,
        };
        Ok((map, size - blocks * BLOCK as u64))
    }

    /// The map of an old GNU sparse member: in its header, continued in
    /// extension blocks right after it.
    fn gnu_sparse_map(&mut self, header: &Header, at: &At) -> Result<SparseMap, TreeError> {
        let mut part = header.gnu_sparse().map_err(|w| self.fail(at, w))?;
        let mut segments = std::mem::take(&mut part.entries);
        while part.extended {
            let block = self.input.block().map_err(|e| self.io_error(at, e))?;
            let block = block.ok_or_else(|| self.fail(at, "the archive ends in a sparse map"))?;
            part = header::sparse_extension(&block).map_err(|w| self.fail(at, w))?;
            segments.append(&mut part.entries);
        }
        let real_size = header.gnu_real_size().map_err(|w| self.fail(at, w))?;
        Ok(SparseMap {
            segments,
            real_size,
        })
    }

    /// Skips `size` bytes of member data, then the padding to the next block.
    fn skip_data(&mut self, size: u64, at: &At) -> Result<(), TreeError> {
        let block = BLOCK as u64;
        let pad = (block - (self.input.offset() % block + size % block) % block) % block;
        let total = size
            .checked_add(pad)
            .ok_or_else(|| self.fail(at, "an absurd size"))?;
        self.input.skip(total).map_err(|e| self.io_error(at, e))
    }

    /// The error for a problem with the archive at `at`.
    fn fail(&self, at: &At, what: impl Into<String>) -> TreeError {
        TreeError::Archive {
            archive: self.archive.clone(),
            entry: at.entry.clone(),
            offset: at.offset,
            what: what.into(),
        }
    }

    /// The error for a failed or short read of the archive.
    fn io_error(&self, at: &At, e: io::Error) -> TreeError {
        self.fail(at, self.input.describe(&e))
    }

    /// The error for a failed write to the spool (a full temporary directory).
    fn spool_error(&self, at: &At, e: io::Error) -> TreeError {
        self.fail(at, format!("writing the temporary spool file: {e}"))
    }

    /// The error for a member's data that could not be copied to the spool.
    fn copy_error(&self, at: &At, e: CopyError) -> TreeError {
        match e {
            CopyError::TooLarge(size) => self.fail(at, format!("a file of {size} bytes")),
            CopyError::Read(e) => self.io_error(at, e),
            CopyError::Write(e) => self.spool_error(at, e),
        }
    }
}

/// Owner, mode, times and xattrs of a member, taking the xattrs out of `ext`.
fn metadata(header: &Header, ext: &mut Extended) -> Result<Metadata, String> {
    let secs = |secs| Timestamp { secs, nanos: 0 };
    let mtime = match ext.mtime {
        Some(t) => t,
        None => secs(header.mtime()?),
    };
    let (gnu_atime, gnu_ctime) = header.gnu_times()?;
    let perm = ext.settle_acls(header.perm()?)?;
    let uid = match ext.uid {
        Some(uid) => uid,
        None => header.uid()?,
    };
    let gid = match ext.gid {
        Some(gid) => gid,
        None => header.gid()?,
    };
    let times = Times {
        atime: ext.atime.or(gnu_atime.map(secs)).unwrap_or(mtime),
        mtime,
        ctime: ext.ctime.or(gnu_ctime.map(secs)).unwrap_or(mtime),
        crtime: None,
    };
    let mut meta = Metadata::new(perm, uid, gid, times);
    meta.set_xattrs(
        std::mem::take(&mut ext.xattrs)
            .into_iter()
            .map(Xattr::from)
            .collect(),
    );
    Ok(meta)
}

/// Raw bytes for a message.
fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
