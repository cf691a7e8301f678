//! The values that flags and layout keys share, parsed one way: `kiln
//! build -b 4096` and `block_size = 4096`, `--uid-map 0:1000:1` and
//! `uid_map = ["0:1000:1"]` mean the same. Each error says what was
//! expected; callers name the flag or key.

use kiln_ext::{FreeSpace, FsType, HashAlg};
use kiln_fat::FatVariant;

use crate::FsRequest;

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

/// A filesystem type name (`ext2`, `ext3`, `ext4`; `vfat` for FAT of the
/// variant the size calls for, `fat12`, `fat16`, `fat32`) as a request
/// with that format's defaults.
pub fn parse_format(s: &str) -> Result<FsRequest, String> {
    let fat = |variant| Ok(FsRequest::fat(variant));
    match s {
        "vfat" | "fat" => fat(None),
        "fat12" => fat(Some(FatVariant::Fat12)),
        "fat16" => fat(Some(FatVariant::Fat16)),
        "fat32" => fat(Some(FatVariant::Fat32)),
        _ => parse_fs_type(s)
            .map(FsRequest::new)
            .map_err(|_| format!("{s:?} is not a filesystem type ({FORMATS})")),
    }
}

/// The filesystem type names [`parse_format`] takes.
pub const FORMATS: &str = "ext2, ext3, ext4, vfat, fat12, fat16 or fat32";

/// A FAT volume id as blkid shows it (`1234-ABCD`) or as mkfs.fat -i takes
/// it (`1234ABCD`): 32 bits in hex.
pub fn parse_volume_id(s: &str) -> Result<u32, String> {
    let hex: String = match s.split_once('-') {
        Some((hi, lo)) if hi.len() == 4 && lo.len() == 4 => format!("{hi}{lo}"),
        Some(_) => String::new(),
        None => s.to_string(),
    };
    // from_str_radix takes a sign too: only 8 hex digits are an id.
    let digits = hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    match u32::from_str_radix(&hex, 16) {
        Ok(id) if digits => Ok(id),
        _ => Err(format!(
            "{s:?} is not a FAT volume id (8 hex digits, as 1234-ABCD)"
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

/// A salt in hex (`--verity-salt`, veritysetup's `--salt`): an even
/// number of hex digits, at most 256 bytes; `-` is no salt, as
/// veritysetup takes it.
pub fn parse_salt(s: &str) -> Result<Vec<u8>, String> {
    if s == "-" {
        return Ok(Vec::new());
    }
    let bad = || format!("{s:?} is not a salt (hex digits in pairs, at most 256 bytes, or -)");
    if s.len() % 2 != 0 || s.len() > 512 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| bad()))
        .collect()
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
        assert!(parse_format("ntfs").unwrap_err().contains(FORMATS));
        assert_eq!(parse_volume_id("1234-abCD"), Ok(0x1234_abcd));
        assert_eq!(parse_volume_id("0000BEEF"), Ok(0xbeef));
        for bad in ["1234", "12345-678", "1234-ABCG", "+234-ABCD", "123456789"] {
            assert!(
                parse_volume_id(bad).unwrap_err().contains("1234-ABCD"),
                "{bad}"
            );
        }
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
