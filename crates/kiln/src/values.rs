//! The values that flags and layout keys share, parsed one way: `kiln
//! build -b 4096` and `block_size = 4096`, `--uid-map 0:1000:1` and
//! `uid_map = ["0:1000:1"]` mean the same. Each error says what was
//! expected; callers name the flag or key.

use kiln_ext::{FreeSpace, FsType, HashAlg};

pub use kiln_sink::size::parse_size;

/// `ext2`, `ext3` or `ext4`.
pub fn parse_fs_type(s: &str) -> Result<FsType, String> {
    match s {
        "ext2" => Ok(FsType::Ext2),
        "ext3" => Ok(FsType::Ext3),
        "ext4" => Ok(FsType::Ext4),
        _ => Err(format!(
            "{s:?} is not a filesystem type (ext2, ext3 or ext4)"
        )),
    }
}

/// `legacy`, `half_md4` or `tea`.
pub fn parse_hash_alg(s: &str) -> Result<HashAlg, String> {
    match s {
        "legacy" => Ok(HashAlg::Legacy),
        "half_md4" => Ok(HashAlg::HalfMd4),
        "tea" => Ok(HashAlg::Tea),
        _ => Err(format!(
            "{s:?} is not a directory hash (legacy, half_md4 or tea)"
        )),
    }
}

/// A block size: 1024, 2048 or 4096.
pub fn parse_block_size(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n @ (1024 | 2048 | 4096)) => Ok(n),
        _ => Err(format!("{s:?} is not a block size (1024, 2048 or 4096)")),
    }
}

/// An inode size: 128 or 256.
pub fn parse_inode_size(s: &str) -> Result<u16, String> {
    match s.parse::<u16>() {
        Ok(n @ (128 | 256)) => Ok(n),
        _ => Err(format!("{s:?} is not an inode size (128 or 256)")),
    }
}

/// A journal size: a size with a unit, or a plain number of MiB (as
/// mke2fs `-J size=`).
pub fn parse_journal_size(s: &str) -> Result<u64, String> {
    kiln_sink::size::parse_with_unit(s, 1 << 20)
}

/// Free space: a size (`64M`) or a percentage of the tree's (`10%`).
pub fn parse_free(s: &str) -> Result<FreeSpace, String> {
    match s.trim().strip_suffix('%') {
        Some(p) => p
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|p| p.is_finite() && *p >= 0.0)
            .map(FreeSpace::Percent)
            .ok_or_else(|| format!("{s:?} is not a percentage")),
        None => parse_size(s).map(FreeSpace::Bytes),
    }
}

/// `UID:GID`.
pub fn parse_owner(s: &str) -> Result<(u32, u32), String> {
    let (uid, gid) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected UID:GID"))?;
    let id = |t: &str| {
        t.parse::<u32>()
            .map_err(|_| format!("{s:?}: {t:?} is not a 32-bit id"))
    };
    Ok((id(uid)?, id(gid)?))
}

/// Octal permission bits, at most 07777.
pub fn parse_mode(s: &str) -> Result<u16, String> {
    let mode = u16::from_str_radix(s, 8).map_err(|_| format!("{s:?} is not an octal mode"))?;
    if mode > 0o7777 {
        return Err(format!("{s:?}: a mode has at most 12 bits (07777)"));
    }
    Ok(mode)
}

/// A UUID.
pub fn parse_uuid(s: &str) -> Result<[u8; 16], String> {
    uuid::Uuid::parse_str(s)
        .map(|u| *u.as_bytes())
        .map_err(|_| format!("{s:?} is not a UUID"))
}

/// A volume label: at most 16 bytes.
pub fn parse_label(s: &str) -> Result<String, String> {
    if s.len() > 16 {
        return Err(format!("{s:?} is {} bytes, at most 16 fit", s.len()));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("64k").unwrap(), 64 << 10);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_journal_size("32").unwrap(), 32 << 20);
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("G").is_err());
    }

    #[test]
    fn values_refused_say_what_was_expected() {
        assert!(parse_block_size("512")
            .unwrap_err()
            .contains("1024, 2048 or 4096"));
        assert!(parse_inode_size("512").unwrap_err().contains("128 or 256"));
        assert!(parse_mode("8").is_err());
        assert!(parse_mode("17777").unwrap_err().contains("07777"));
        assert_eq!(parse_owner("0:5"), Ok((0, 5)));
        assert!(parse_owner("0").is_err());
        assert!(parse_label("seventeen bytes!!").is_err());
        assert_eq!(parse_free("10%"), Ok(FreeSpace::Percent(10.0)));
        assert!(parse_free("-1%").is_err());
    }
}
