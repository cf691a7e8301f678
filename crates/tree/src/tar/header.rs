//! The 512-byte tar header block in its three layouts: v7 (no magic), POSIX
//! ustar (magic `ustar\0`, a name prefix) and GNU (magic `ustar  \0`, with
//! access and change times and the old sparse map where ustar has its prefix).

use std::ops::Range;

/// The size of a tar block; headers and member data are counted in blocks.
pub(super) const BLOCK: usize = 512;

/// The member's name (up to its first NUL).
const NAME: Range<usize> = 0..100;
/// Permission bits in octal.
const MODE: Range<usize> = 100..108;
/// Owner user id.
const UID: Range<usize> = 108..116;
/// Owner group id.
const GID: Range<usize> = 116..124;
/// Bytes of data after the header.
const SIZE: Range<usize> = 124..136;
/// Modification time, seconds since the epoch.
const MTIME: Range<usize> = 136..148;
/// Sum of the header's bytes, this field counted as spaces.
const CHKSUM: Range<usize> = 148..156;
/// The member type.
const TYPEFLAG: usize = 156;
/// The target of a hard or symbolic link.
const LINKNAME: Range<usize> = 157..257;
/// `magic` and `version` together: they tell the layouts apart.
const MAGIC: Range<usize> = 257..265;
/// Device numbers.
const DEVMAJOR: Range<usize> = 329..337;
/// See [`DEVMAJOR`].
const DEVMINOR: Range<usize> = 337..345;
/// ustar only: the directory part of a name too long for `NAME`.
const PREFIX: Range<usize> = 345..500;
/// GNU only: access and change times (written by `--incremental`).
const GNU_ATIME: Range<usize> = 345..357;
/// See [`GNU_ATIME`].
const GNU_CTIME: Range<usize> = 357..369;
/// GNU only: four sparse map entries (offset, length), 12 bytes each.
const GNU_SPARSE: Range<usize> = 386..482;
/// GNU only: non-zero when sparse extension blocks follow the header.
const GNU_IS_EXTENDED: usize = 482;
/// GNU only: the apparent size of a sparse file.
const GNU_REALSIZE: Range<usize> = 483..495;
/// A sparse extension block: 21 entries, then its own "extended" flag.
const EXT_SPARSE: Range<usize> = 0..504;
/// See [`EXT_SPARSE`].
const EXT_IS_EXTENDED: usize = 504;
/// One sparse map entry: offset and length, 12 octal bytes each.
const SPARSE_ENTRY: usize = 24;

/// `magic` and `version` of a POSIX ustar header.
const USTAR_MAGIC: &[u8] = b"ustar\x0000";
/// `magic` and `version` of a GNU header.
const GNU_MAGIC: &[u8] = b"ustar  \x00";

/// One header block whose checksum was verified.
pub(super) struct Header {
    block: [u8; BLOCK],
}

/// Segments of a sparse file as a GNU header lists them, and whether an
/// extension block follows with more.
pub(super) struct SparseEntries {
    /// `(offset, length)` pairs in archive order.
    pub entries: Vec<(u64, u64)>,
    /// True when another extension block follows.
    pub extended: bool,
}

impl Header {
    /// Checks the checksum of `block`: the sum of its bytes with the checksum
    /// field read as spaces, unsigned or (for old Sun tars) signed.
    pub(super) fn parse(block: [u8; BLOCK]) -> Result<Header, String> {
        let stored = octal(&block[CHKSUM]).ok();
        let sum = |byte: fn(u8) -> i128| -> i128 {
            block
                .iter()
                .enumerate()
                .map(|(i, &b)| byte(if CHKSUM.contains(&i) { b' ' } else { b }))
                .sum()
        };
        let unsigned = sum(i128::from);
        if stored != Some(unsigned) && stored != Some(sum(|b| i128::from(b as i8))) {
            let found = match stored {
                Some(stored) => format!("stored {stored:o}, computed {unsigned:o}"),
                None => "the checksum field is not a number".into(),
            };
            return Err(format!(
                "bad header checksum ({found}): not a tar archive, damaged, or \
                 compressed in a format other than gzip, xz, zstd or bzip2"
            ));
        }
        Ok(Header { block })
    }

    /// The type flag (`0` file, `5` directory, `x` PAX header, ...).
    pub(super) fn typeflag(&self) -> u8 {
        self.block[TYPEFLAG]
    }

    /// True for a POSIX ustar header (which may have a name prefix).
    fn is_ustar(&self) -> bool {
        &self.block[MAGIC] == USTAR_MAGIC
    }

    /// True for a GNU header (with times and a sparse map for a prefix).
    fn is_gnu(&self) -> bool {
        &self.block[MAGIC] == GNU_MAGIC
    }

    /// The member's name, with the ustar prefix joined on.
    pub(super) fn name(&self) -> Vec<u8> {
        let name = text(&self.block[NAME]);
        let prefix = if self.is_ustar() {
            text(&self.block[PREFIX])
        } else {
            &[]
        };
        if prefix.is_empty() {
            return name.to_vec();
        }
        [prefix, b"/", name].concat()
    }

    /// The link target of a hard or symbolic link.
    pub(super) fn linkname(&self) -> Vec<u8> {
        text(&self.block[LINKNAME]).to_vec()
    }

    /// The 12 permission bits (writers may add file type bits above them).
    pub(super) fn perm(&self) -> Result<u16, String> {
        let mode: u64 = field(&self.block[MODE], "mode")?;
        Ok((mode & 0o7777) as u16)
    }

    /// The owner's user id.
    pub(super) fn uid(&self) -> Result<u32, String> {
        field(&self.block[UID], "uid")
    }

    /// The owner's group id.
    pub(super) fn gid(&self) -> Result<u32, String> {
        field(&self.block[GID], "gid")
    }

    /// The size field: bytes of data after the header (for a GNU sparse
    /// file, the bytes stored, holes left out).
    pub(super) fn size(&self) -> Result<u64, String> {
        field(&self.block[SIZE], "size")
    }

    /// Modification time in seconds (negative before 1970 in base-256).
    pub(super) fn mtime(&self) -> Result<i64, String> {
        field(&self.block[MTIME], "mtime")
    }

    /// Access and change times of a GNU header, where it has them.
    pub(super) fn gnu_times(&self) -> Result<(Option<i64>, Option<i64>), String> {
        if !self.is_gnu() {
            return Ok((None, None));
        }
        let time = |range: Range<usize>, what| match is_empty(&self.block[range.clone()]) {
            true => Ok(None),
            false => field(&self.block[range], what).map(Some),
        };
        Ok((time(GNU_ATIME, "atime")?, time(GNU_CTIME, "ctime")?))
    }

    /// Major and minor number of a device.
    pub(super) fn device(&self) -> Result<(u32, u32), String> {
        Ok((
            field(&self.block[DEVMAJOR], "devmajor")?,
            field(&self.block[DEVMINOR], "devminor")?,
        ))
    }

    /// The apparent size of an old GNU sparse file.
    pub(super) fn gnu_real_size(&self) -> Result<u64, String> {
        field(&self.block[GNU_REALSIZE], "realsize")
    }

    /// The sparse map entries in an old GNU sparse header.
    pub(super) fn gnu_sparse(&self) -> Result<SparseEntries, String> {
        Ok(SparseEntries {
            entries: sparse_entries(&self.block[GNU_SPARSE])?,
            extended: self.block[GNU_IS_EXTENDED] != 0,
        })
    }
}

/// The sparse map entries of a GNU sparse extension block.
pub(super) fn sparse_extension(block: &[u8; BLOCK]) -> Result<SparseEntries, String> {
    Ok(SparseEntries {
        entries: sparse_entries(&block[EXT_SPARSE])?,
        extended: block[EXT_IS_EXTENDED] != 0,
    })
}

/// Reads `(offset, length)` entries until the first empty one.
fn sparse_entries(area: &[u8]) -> Result<Vec<(u64, u64)>, String> {
    let mut out = Vec::new();
    for entry in area.chunks_exact(SPARSE_ENTRY) {
        let (offset, length) = entry.split_at(SPARSE_ENTRY / 2);
        if is_empty(offset) && is_empty(length) {
            break;
        }
        out.push((
            field(offset, "sparse offset")?,
            field(length, "sparse length")?,
        ));
    }
    Ok(out)
}

/// True when `block` has the magic of a ustar or GNU header, whatever its
/// checksum: a tar header, if perhaps a damaged one.
pub(super) fn has_magic(block: &[u8; BLOCK]) -> bool {
    let magic = &block[MAGIC];
    magic == USTAR_MAGIC || magic == GNU_MAGIC
}

/// A string field up to its first NUL (a full field has none).
fn text(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// True for a numeric field that holds no number (NULs or spaces only).
fn is_empty(field: &[u8]) -> bool {
    field.iter().all(|&b| b == 0 || b == b' ')
}

/// A numeric field converted to the type it must fit.
fn field<T: TryFrom<i128>>(raw: &[u8], what: &str) -> Result<T, String> {
    let value = number(raw).map_err(|e| format!("bad {what} field: {e}"))?;
    T::try_from(value).map_err(|_| format!("{what} {value} is out of range"))
}

/// Decodes a numeric field: octal text, or GNU base-256 when the first byte
/// has its high bit set (a big-endian two's complement number whose sign is
/// bit 6 of the first byte, so `0x80...` is positive and `0xff...` negative).
fn number(raw: &[u8]) -> Result<i128, String> {
    match raw.split_first() {
        Some((&first, rest)) if first & 0x80 != 0 => {
            let top = i128::from(first & 0x7f);
            let signed = if top & 0x40 != 0 { top - 0x80 } else { top };
            // Fields are at most 12 bytes: 95 bits, far inside i128.
            Ok(rest
                .iter()
                .fold(signed, |acc, &b| acc * 256 + i128::from(b)))
        }
        _ => octal(raw),
    }
}

/// Octal digits, after optional leading spaces and before a space or NUL;
/// an empty field is 0.
fn octal(raw: &[u8]) -> Result<i128, String> {
    let start = raw.iter().position(|&b| b != b' ').unwrap_or(raw.len());
    let digits = &raw[start..];
    let end = digits
        .iter()
        .position(|&b| b == b' ' || b == 0)
        .unwrap_or(digits.len());
    if !is_empty(&digits[end..]) {
        return Err(format!("{:?} is not an octal number", lossy(raw)));
    }
    digits[..end].iter().try_fold(0i128, |acc, &b| match b {
        // At most 12 digits: 36 bits.
        b'0'..=b'7' => Ok(acc * 8 + i128::from(b - b'0')),
        _ => Err(format!("{:?} is not an octal number", lossy(raw))),
    })
}

/// A field's bytes for a message.
fn lossy(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_octal_and_base_256() {
        assert_eq!(number(b"0000644\0"), Ok(0o644));
        assert_eq!(number(b"   644 \0"), Ok(0o644));
        assert_eq!(number(b"\0\0\0\0\0\0\0\0"), Ok(0));
        assert_eq!(number(b"77777777777\0"), Ok(0o77777777777));
        assert!(number(b"0000648\0").is_err());
        assert!(number(b"12 34\0\0\0").is_err());
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[11] = 0x01;
        big[7] = 0x02;
        assert_eq!(number(&big), Ok((2 << 32) + 1));
        assert_eq!(number(&[0xff; 12]), Ok(-1));
        let mut minus_two = [0xff; 12];
        minus_two[11] = 0xfe;
        assert_eq!(number(&minus_two), Ok(-2));
    }

    #[test]
    fn fields_must_fit_their_type() {
        assert!(field::<u32>(&[0xff; 8], "uid").is_err());
        assert_eq!(field::<i64>(&[0xff; 12], "mtime"), Ok(-1));
        let mut huge = [0u8; 12];
        huge[0] = 0x80;
        huge[1] = 0xff;
        assert!(field::<u64>(&huge, "size").is_err());
    }

    #[test]
    fn checksum_is_verified() {
        let mut block = [0u8; BLOCK];
        block[..4].copy_from_slice(b"file");
        block[CHKSUM].copy_from_slice(b"0000000\0");
        let sum: u32 = block
            .iter()
            .enumerate()
            .map(|(i, &b)| u32::from(if CHKSUM.contains(&i) { b' ' } else { b }))
            .sum();
        block[CHKSUM].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        assert!(Header::parse(block).is_ok());
        block[0] = b'F';
        assert!(Header::parse(block).is_err_and(|e| e.contains("checksum")));
    }
}
