//! POSIX ACLs in the text form of star and GNU tar (`SCHILY.acl.access`,
//! `SCHILY.acl.default`), turned into the `posix_acl_xattr` value that the
//! tree holds as `system.posix_acl_access` / `system.posix_acl_default`.
//!
//! The text names users and groups by name (`user:alice:r--`), by id, or by
//! name with the id as a fourth field (star). Names are resolved only
//! through such a numeric field or a numeric qualifier: the archiving host's
//! user database is not the builder's, so a bare name is an error.

/// The version word that opens a `posix_acl_xattr` value.
const XATTR_VERSION: u32 = 2;
/// Entry tags of `posix_acl_xattr`, in the order the kernel keeps entries.
const USER_OBJ: u16 = 0x01;
/// A named user.
const USER: u16 = 0x02;
/// The owning group.
const GROUP_OBJ: u16 = 0x04;
/// A named group.
const GROUP: u16 = 0x08;
/// The mask of the group class.
const MASK: u16 = 0x10;
/// Everyone else.
const OTHER: u16 = 0x20;
/// The id field of entries that name no one.
const UNDEFINED_ID: u32 = u32::MAX;
/// Entries of an ACL that only mirrors the mode bits (owner, group, other):
/// Linux keeps no xattr for such an access ACL.
const MINIMAL_ENTRIES: usize = 3;

/// Converts ACL text (entries separated by commas or newlines, `#`
/// comments allowed) to a `posix_acl_xattr` value, entries sorted by tag
/// and id as the kernel keeps them; `None` for an `access` ACL that only
/// mirrors the mode bits, which Linux does not store either.
pub(super) fn acl_xattr(text: &[u8], access: bool) -> Result<Option<Vec<u8>>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "an ACL that is not text")?;
    let mut entries = Vec::new();
    for entry in text.split([',', '\n']) {
        let entry = entry.split('#').next().unwrap_or_default().trim();
        if !entry.is_empty() {
            entries.push(parse_entry(entry)?);
        }
    }
    if access && entries.len() == MINIMAL_ENTRIES {
        return Ok(None);
    }
    entries.sort_unstable();
    let mut out = XATTR_VERSION.to_le_bytes().to_vec();
    for (tag, id, perm) in entries {
        out.extend(tag.to_le_bytes());
        out.extend(perm.to_le_bytes());
        out.extend(id.to_le_bytes());
    }
    Ok(Some(out))
}

/// One `tag:qualifier:perms[:id]` entry as (tag, id, permission bits).
fn parse_entry(entry: &str) -> Result<(u16, u32, u16), String> {
    let bad = || format!("ACL entry {entry:?} is not tag:qualifier:permissions");
    let mut fields = entry.split(':');
    let (tag, qualifier, perms) = match (fields.next(), fields.next(), fields.next()) {
        (Some(t), Some(q), Some(p)) => (t, q, p),
        _ => return Err(bad()),
    };
    let numeric = fields.next();
    if fields.next().is_some() {
        return Err(bad());
    }
    let named = !qualifier.is_empty();
    let tag = match (tag, named) {
        ("user" | "u", false) => USER_OBJ,
        ("user" | "u", true) => USER,
        ("group" | "g", false) => GROUP_OBJ,
        ("group" | "g", true) => GROUP,
        ("mask" | "m", false) => MASK,
        ("other" | "o", false) => OTHER,
        _ => return Err(bad()),
    };
    let id = match named {
        false => UNDEFINED_ID,
        true => numeric.unwrap_or(qualifier).parse().map_err(|_| {
            format!(
                "ACL entry {entry:?} names {qualifier:?}, not an id (kiln does not \
                 look names up: archive with --xattrs --xattrs-include='system.*' \
                 to keep ACLs exactly)"
            )
        })?,
    };
    Ok((tag, id, permissions(perms).ok_or_else(bad)?))
}

/// Permissions as bits 4, 2, 1: `rwx` with `-` for a missing one, or the
/// short forms `setfacl` takes (`r`, `rw`).
fn permissions(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 3 {
        return None;
    }
    text.bytes().try_fold(0u16, |bits, c| {
        let bit = match c {
            b'r' => 4,
            b'w' => 2,
            b'x' => 1,
            b'-' => 0,
            _ => return None,
        };
        (bits & bit == 0).then_some(bits | bit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_to_xattr() {
        let text =
            b"user::rw-\nuser:1234:r--\ngroup::r-x\ngroup:staff:rw-:50\nmask::rwx\nother::---\n";
        let value = acl_xattr(text, true).unwrap().unwrap();
        let mut want = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (1u16, 6u16, u32::MAX),
            (2, 4, 1234),
            (4, 5, u32::MAX),
            (8, 6, 50),
            (0x10, 7, u32::MAX),
            (0x20, 0, u32::MAX),
        ] {
            want.extend(tag.to_le_bytes());
            want.extend(perm.to_le_bytes());
            want.extend(id.to_le_bytes());
        }
        assert_eq!(value, want);
        let short = acl_xattr(b"o::r,u::rwx #effective:r", false).unwrap();
        assert_eq!(short.unwrap().len(), 4 + 16);
        assert_eq!(acl_xattr(b"u::rw-,g::r--,o::r--", true), Ok(None));
        assert!(acl_xattr(b"u::rw-,g::r--,o::r--", false).unwrap().is_some());
    }

    /// Converts an access ACL.
    fn access(text: &[u8]) -> Result<Option<Vec<u8>>, String> {
        acl_xattr(text, true)
    }

    #[test]
    fn names_and_nonsense_are_refused() {
        assert!(access(b"user:alice:r--").unwrap_err().contains("alice"));
        assert!(access(b"user::rwxr").is_err());
        assert!(access(b"user::rr").is_err());
        assert!(access(b"user::rwq").is_err());
        assert!(access(b"mask:1:rw-").is_err());
        assert!(access(b"owner::rw-").is_err());
        assert!(access(b"user:").is_err());
        assert!(access(&[0xff]).is_err());
    }
}
