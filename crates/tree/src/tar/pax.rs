//! PAX extended headers (POSIX.1-2001): `LEN KEY=VALUE\n` records that
//! override the ustar fields of the next member (`x`) or of all that follow
//! (`g`), carry nanosecond times, extended attributes and GNU sparse maps.

use std::collections::BTreeMap;

use super::acl::{apply_to_mode, Acl};
use crate::Timestamp;

/// The PAX keys kiln reads, accumulated over the global and the member's own
/// records (later records win).
#[derive(Debug, Default)]
pub(super) struct Extended {
    /// `path`: the member's name.
    pub path: Option<Vec<u8>>,
    /// `linkpath`: the target of a link.
    pub linkpath: Option<Vec<u8>>,
    /// `uid`, beyond the header field's range.
    pub uid: Option<u32>,
    /// `gid`, beyond the header field's range.
    pub gid: Option<u32>,
    /// `size`: the bytes of data after the header (above 8 GiB).
    pub size: Option<u64>,
    /// `mtime` with its fraction.
    pub mtime: Option<Timestamp>,
    /// `atime`, which ustar does not store.
    pub atime: Option<Timestamp>,
    /// `ctime`, which ustar does not store.
    pub ctime: Option<Timestamp>,
    /// `SCHILY.devmajor` (star, for numbers too large for the header).
    pub devmajor: Option<u32>,
    /// `SCHILY.devminor`.
    pub devminor: Option<u32>,
    /// `SCHILY.xattr.NAME` (raw value) and `LIBARCHIVE.xattr.NAME` (name
    /// percent-encoded, value in base64).
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// `SCHILY.acl.access` and `SCHILY.acl.default`: ACLs as text.
    pub acls: [Option<Vec<u8>>; 2],
    /// The `GNU.sparse.*` keys.
    pub sparse: SparseKeys,
}

/// GNU tar's PAX sparse keys: formats 0.0 (`offset`/`numbytes` pairs), 0.1
/// (`map`) and 1.0 (`major`, `minor`; the map opens the member's data).
#[derive(Debug, Default)]
pub(super) struct SparseKeys {
    /// `GNU.sparse.major` (1 for format 1.0).
    pub major: Option<u64>,
    /// `GNU.sparse.minor`.
    pub minor: Option<u64>,
    /// `GNU.sparse.name`: the real name (the header's is made up).
    pub name: Option<Vec<u8>>,
    /// `GNU.sparse.realsize` (1.0) or `GNU.sparse.size` (0.x): the apparent size.
    pub real_size: Option<u64>,
    /// `GNU.sparse.numblocks`: how many segments the 0.x map has.
    pub numblocks: Option<u64>,
    /// Offsets and lengths, alternating, of the 0.x map.
    pub map: Vec<u64>,
}

impl SparseKeys {
    /// True when the keys describe a sparse member.
    pub(super) fn present(&self) -> bool {
        self.major.is_some() || self.numblocks.is_some() || !self.map.is_empty()
    }
}

/// A record as read: key and value, both raw bytes.
pub(super) type Record = (Vec<u8>, Vec<u8>);

/// Splits the data of an extended header into its records.
pub(super) fn records(mut data: &[u8]) -> Result<Vec<Record>, String> {
    let mut out = Vec::new();
    // Some writers pad the data with NULs.
    while data.iter().any(|&b| b != 0) {
        let space = data
            .iter()
            .take(20)
            .position(|&b| b == b' ')
            .ok_or("a PAX record without a length")?;
        let len: usize = decimal(&data[..space])
            .ok()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n > space + 1 && n <= data.len())
            .ok_or("a PAX record with a bad length")?;
        let (record, rest) = data.split_at(len);
        let body = record[space + 1..]
            .strip_suffix(b"\n")
            .ok_or("a PAX record not ending in a newline")?;
        let eq = body
            .iter()
            .position(|&b| b == b'=')
            .ok_or("a PAX record without '='")?;
        out.push((body[..eq].to_vec(), body[eq + 1..].to_vec()));
        data = rest;
    }
    Ok(out)
}

impl Extended {
    /// Applies one record. An empty value unsets a key (so a member's own
    /// header field applies again), except for xattrs, where it is a value.
    pub(super) fn apply(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        let bad = |e: String| format!("PAX record {}: {e}", String::from_utf8_lossy(key));
        if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
            return self.xattr(name.to_vec(), value.to_vec()).map_err(bad);
        }
        if let Some(name) = key.strip_prefix(b"LIBARCHIVE.xattr.") {
            let name = percent_decode(name).map_err(bad)?;
            let value = crate::base64::decode(value).map_err(bad)?;
            return self.xattr(name, value).map_err(bad);
        }
        let value = (!value.is_empty()).then_some(value);
        let number = |v: Option<&[u8]>| v.map(decimal).transpose();
        let id = |v: Option<&[u8]>| -> Result<Option<u32>, String> {
            number(v)?
                .map(|n| u32::try_from(n).map_err(|_| format!("{n} is out of range")))
                .transpose()
        };
        let time = |v: Option<&[u8]>| v.map(pax_time).transpose();
        match key {
            b"path" => self.path = value.map(<[u8]>::to_vec),
            b"linkpath" => self.linkpath = value.map(<[u8]>::to_vec),
            b"uid" => self.uid = id(value).map_err(bad)?,
            b"gid" => self.gid = id(value).map_err(bad)?,
            b"size" => self.size = number(value).map_err(bad)?,
            b"mtime" => self.mtime = time(value).map_err(bad)?,
            b"atime" => self.atime = time(value).map_err(bad)?,
            b"ctime" => self.ctime = time(value).map_err(bad)?,
            b"SCHILY.acl.access" => self.acls[0] = value.map(<[u8]>::to_vec),
            b"SCHILY.acl.default" => self.acls[1] = value.map(<[u8]>::to_vec),
            b"SCHILY.devmajor" => self.devmajor = id(value).map_err(bad)?,
            b"SCHILY.devminor" => self.devminor = id(value).map_err(bad)?,
            b"GNU.sparse.major" => self.sparse.major = number(value).map_err(bad)?,
            b"GNU.sparse.minor" => self.sparse.minor = number(value).map_err(bad)?,
            b"GNU.sparse.name" => self.sparse.name = value.map(<[u8]>::to_vec),
            b"GNU.sparse.realsize" | b"GNU.sparse.size" => {
                self.sparse.real_size = number(value).map_err(bad)?
            }
            b"GNU.sparse.numblocks" => self.sparse.numblocks = number(value).map_err(bad)?,
            b"GNU.sparse.offset" | b"GNU.sparse.numbytes" => {
                let n = number(value)
                    .map_err(bad)?
                    .ok_or_else(|| bad("empty".into()))?;
                self.sparse.map.push(n);
            }
            b"GNU.sparse.map" => {
                self.sparse.map = value
                    .unwrap_or_default()
                    .split(|&b| b == b',')
                    .map(decimal)
                    .collect::<Result<_, _>>()
                    .map_err(bad)?
            }
            // uname, gname, comment, charset, hdrcharset and keys of other
            // tars: kiln takes ids only and has no use for the rest.
            _ => {}
        }
        Ok(())
    }

    /// Settles the member's ACLs and returns `perm` with them applied. An
    /// ACL comes as an xattr (`SCHILY.xattr.` or `LIBARCHIVE.xattr.`), or else
    /// as text (`SCHILY.acl.*`, which GNU tar's `--xattrs` also writes beside
    /// the xattr); either way it is checked and stored sorted. The access ACL
    /// sets the permission bits, as extracting it does (see
    /// [`Acl::mode_bits`]), and is dropped when it only mirrors them: the
    /// kernel keeps no xattr for it.
    pub(super) fn settle_acls(&mut self, mut perm: u16) -> Result<u16, String> {
        let kinds = [
            ("access", &b"system.posix_acl_access"[..]),
            ("default", b"system.posix_acl_default"),
        ];
        for (i, (kind, name)) in kinds.into_iter().enumerate() {
            let text = self.acls[i].take();
            let acl = match (self.xattrs.remove(name), text) {
                (Some(value), _) => Acl::from_xattr(&value),
                (None, Some(text)) => Acl::from_text(&text),
                (None, None) => continue,
            };
            let acl = acl.map_err(|e| format!("the {kind} ACL: {e}"))?;
            let Some(acl) = acl else {
                continue;
            };
            let access = i == 0;
            if access {
                perm = apply_to_mode(perm, &acl);
            }
            if !(access && acl.is_minimal()) {
                self.xattrs.insert(name.to_vec(), acl.to_xattr());
            }
        }
        Ok(perm)
    }

    /// Sets an xattr; its name must be a usable one.
    fn xattr(&mut self, name: Vec<u8>, value: Vec<u8>) -> Result<(), String> {
        if name.is_empty() || name.contains(&0) {
            return Err("an empty xattr name, or one with a NUL byte".into());
        }
        self.xattrs.insert(name, value);
        Ok(())
    }
}

/// A non-negative decimal number.
pub(super) fn decimal(text: &[u8]) -> Result<u64, String> {
    let bad = || {
        format!(
            "{:?} is not a decimal number",
            String::from_utf8_lossy(text)
        )
    };
    if text.is_empty() {
        return Err(bad());
    }
    text.iter().try_fold(0u64, |acc, &b| match b {
        b'0'..=b'9' => acc
            .checked_mul(10)
            .and_then(|a| a.checked_add(u64::from(b - b'0')))
            .ok_or_else(bad),
        _ => Err(bad()),
    })
}

/// A PAX time: decimal seconds since the epoch, possibly negative, with an
/// optional fraction (digits past nanoseconds are dropped). `-1.25` is a
/// quarter second after `-2`.
fn pax_time(text: &[u8]) -> Result<Timestamp, String> {
    let bad = || format!("{:?} is not a time", String::from_utf8_lossy(text));
    let (negative, magnitude) = match text.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = match magnitude.iter().position(|&b| b == b'.') {
        Some(dot) => (&magnitude[..dot], &magnitude[dot + 1..]),
        None => (magnitude, &b""[..]),
    };
    let secs = i64::try_from(decimal(whole)?).map_err(|_| bad())?;
    if !fraction.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let nanos = fraction
        .iter()
        .chain(std::iter::repeat(&b'0'))
        .take(9)
        .fold(0u32, |acc, &b| acc * 10 + u32::from(b - b'0'));
    Ok(match (negative, nanos) {
        (false, _) => Timestamp { secs, nanos },
        (true, 0) => Timestamp { secs: -secs, nanos },
        (true, _) => Timestamp {
            secs: -secs - 1,
            nanos: 1_000_000_000 - nanos,
        },
    })
}

/// Decodes `%XX` escapes (libarchive encodes xattr names so).
fn percent_decode(text: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = tail.get(..2).ok_or("a truncated %-escape")?;
            let value = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a bad %-escape")?;
            out.push(value);
            rest = &tail[2..];
        } else {
            out.push(b);
            rest = tail;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_split_and_checked() {
        let data = b"30 mtime=1795669842.371960378\n16 path=a/b c=d\n\0\0\0";
        let r = records(data).unwrap();
        assert_eq!(r[0], (b"mtime".to_vec(), b"1795669842.371960378".to_vec()));
        assert_eq!(r[1], (b"path".to_vec(), b"a/b c=d".to_vec()));
        assert!(records(b"99 path=x\n").is_err());
        assert!(records(b"10 path=xy").is_err());
        assert!(records(b"9 pathxx\n").is_err());
        assert!(records(b"x path=y\n").is_err());
        assert!(records(b"5 a=\n").is_ok());
        assert!(records(b"3 \n").is_err());
    }

    #[test]
    fn times_with_fractions_and_signs() {
        let t = |s: &str| pax_time(s.as_bytes());
        assert_eq!(
            t("12.5"),
            Ok(Timestamp {
                secs: 12,
                nanos: 500_000_000
            })
        );
        assert_eq!(t("7"), Ok(Timestamp { secs: 7, nanos: 0 }));
        assert_eq!(
            t("-1.25"),
            Ok(Timestamp {
                secs: -2,
                nanos: 750_000_000
            })
        );
        assert_eq!(t("-3"), Ok(Timestamp { secs: -3, nanos: 0 }));
        assert_eq!(
            t("1.1234567899"),
            Ok(Timestamp {
                secs: 1,
                nanos: 123_456_789
            })
        );
        assert!(t("1.2.3").is_err());
        assert!(t("").is_err());
        assert!(t("99999999999999999999").is_err());
    }

    #[test]
    fn xattrs_of_star_and_libarchive() {
        let mut e = Extended::default();
        e.apply(b"SCHILY.xattr.user.a", b"raw\0value").unwrap();
        e.apply(b"LIBARCHIVE.xattr.user.b%3Dc", b"aGVsbG8").unwrap();
        e.apply(b"SCHILY.xattr.user.empty", b"").unwrap();
        assert_eq!(e.xattrs[&b"user.a"[..]], b"raw\0value");
        assert_eq!(e.xattrs[&b"user.b=c"[..]], b"hello");
        assert_eq!(e.xattrs[&b"user.empty"[..]], b"");
        assert!(e.apply(b"LIBARCHIVE.xattr.user.x", b"a$b=").is_err());
        assert!(e.apply(b"LIBARCHIVE.xattr.user.%4", b"").is_err());
        assert!(e.apply(b"SCHILY.xattr.", b"v").is_err());
    }

    #[test]
    fn numbers_ids_and_unsetting() {
        let mut e = Extended::default();
        e.apply(b"uid", b"4000000000").unwrap();
        assert_eq!(e.uid, Some(4_000_000_000));
        assert!(e.apply(b"uid", b"5000000000").is_err());
        assert!(e.apply(b"size", b"-1").is_err());
        e.apply(b"uid", b"").unwrap();
        assert_eq!(e.uid, None);
        e.apply(b"GNU.sparse.map", b"0,10,4096,5").unwrap();
        assert_eq!(e.sparse.map, vec![0, 10, 4096, 5]);
        assert!(e.sparse.present());
        e.apply(b"uname", b"whoever").unwrap();
    }
}
