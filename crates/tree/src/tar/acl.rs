//! POSIX ACLs of tar members, in every form the reader accepts: the text of
//! star, GNU tar and bsdtar (`SCHILY.acl.access`, `SCHILY.acl.default`) and
//! the binary `posix_acl_xattr` value of `SCHILY.xattr.system.posix_acl_*`
//! (GNU tar's `--xattrs`) or `LIBARCHIVE.xattr.system.posix_acl_*`. Each ends
//! as the `posix_acl_xattr` value the tree holds, checked as the kernel checks
//! an ACL it is given, and an access ACL sets the permission bits as the
//! kernel does when a tar extracts it (see [`Acl::mode_bits`]).
//!
//! The text names users and groups by name (`user:alice:r--`), by id, or by
//! name with the id as a fourth field (star). Names are resolved only
//! through such a numeric field or a numeric qualifier: the archiving host's
//! user database is not the builder's, so a bare name is an error.

/// The version word that opens a `posix_acl_xattr` value.
const XATTR_VERSION: u32 = 2;
/// Bytes of the version word, and of each entry after it.
const XATTR_HEADER: usize = 4;
/// Bytes of one entry: tag (u16), permissions (u16), id (u32).
const XATTR_ENTRY: usize = 8;
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
/// The permission bits an entry may hold (`rwx`).
const RWX: u16 = 0o7;
/// The mode's owner, group and other permission bits.
const MODE_RWX: u16 = 0o777;

/// One entry: tag, id, permission bits (the order the kernel sorts by).
type Entry = (u16, u32, u16);

/// A POSIX ACL: its entries sorted by tag and id, as the kernel keeps them,
/// and checked as the kernel's `posix_acl_valid` checks them.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Acl {
    /// The entries, sorted.
    entries: Vec<Entry>,
}

impl Acl {
    /// Parses ACL text (entries separated by commas or newlines, `#`
    /// comments allowed, in any order: bsdtar puts named entries last);
    /// `None` for no entries.
    pub(super) fn from_text(text: &[u8]) -> Result<Option<Acl>, String> {
        let text = std::str::from_utf8(text).map_err(|_| "an ACL that is not text")?;
        let mut entries = Vec::new();
        for entry in text.split([',', '\n']) {
            let entry = entry.split('#').next().unwrap_or_default().trim();
            if !entry.is_empty() {
                entries.push(parse_entry(entry)?);
            }
        }
        Acl::checked(entries)
    }

    /// Decodes a `posix_acl_xattr` value; `None` for no entries (the kernel
    /// removes the ACL when given one).
    pub(super) fn from_xattr(value: &[u8]) -> Result<Option<Acl>, String> {
        let bad = || "an ACL xattr value that is not posix_acl_xattr".to_string();
        let (version, body) = value.split_first_chunk::<XATTR_HEADER>().ok_or_else(bad)?;
        if u32::from_le_bytes(*version) != XATTR_VERSION || body.len() % XATTR_ENTRY != 0 {
            return Err(bad());
        }
        let entries = body
            .chunks_exact(XATTR_ENTRY)
            .map(|e| {
                let tag = u16::from_le_bytes([e[0], e[1]]);
                let perm = u16::from_le_bytes([e[2], e[3]]);
                let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
                // Entries that name no one hold an undefined id (which the
                // kernel ignores): one spelling of them, whatever came in.
                let named = tag == USER || tag == GROUP;
                (tag, if named { id } else { UNDEFINED_ID }, perm)
            })
            .collect();
        Acl::checked(entries)
    }

    /// Sorts `entries` and checks them as the kernel does before it takes
    /// an ACL: known tags and permissions, one owner, owning group and other
    /// entry, at most one mask (required once a user or group is named),
    /// no one named twice. No entries at all are no ACL.
    fn checked(mut entries: Vec<Entry>) -> Result<Option<Acl>, String> {
        if entries.is_empty() {
            return Ok(None);
        }
        entries.sort_unstable();
        for pair in entries.windows(2) {
            if pair[0].0 == pair[1].0 && pair[0].1 == pair[1].1 {
                return Err(format!("an ACL with two {} entries", describe(pair[0])));
            }
        }
        for &(tag, _, perm) in &entries {
            if ![USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER].contains(&tag) || perm & !RWX != 0 {
                return Err(format!(
                    "an ACL entry with tag {tag:#x}, permissions {perm:#o}"
                ));
            }
        }
        let acl = Acl { entries };
        for (tag, name) in [
            (USER_OBJ, "user::"),
            (GROUP_OBJ, "group::"),
            (OTHER, "other::"),
        ] {
            if acl.perm_of(tag).is_none() {
                return Err(format!("an ACL without its {name} entry"));
            }
        }
        if acl.perm_of(MASK).is_none() && !acl.is_minimal() {
            return Err("an ACL that names users or groups but has no mask:: entry".into());
        }
        Ok(Some(acl))
    }

    /// True when the ACL only mirrors the mode bits (owner, group, other):
    /// the kernel keeps no xattr for such an access ACL.
    pub(super) fn is_minimal(&self) -> bool {
        self.entries.len() == 3
    }

    /// The permission bits `rwxrwxrwx` that setting this as a file's access
    /// ACL gives its mode, as the kernel's `posix_acl_equiv_mode` computes
    /// them and both GNU tar and bsdtar extract: the owner's from `user::`,
    /// the group's from `mask::` where there is one (the mask is what the
    /// group bits of the mode show), else from `group::`, other's from
    /// `other::`. bsdtar writes the `group::` entry into the header's mode,
    /// so the header alone would lose the mask.
    pub(super) fn mode_bits(&self) -> u16 {
        let perm = |tag| self.perm_of(tag).unwrap_or(0);
        let group = self.perm_of(MASK).unwrap_or_else(|| perm(GROUP_OBJ));
        perm(USER_OBJ) << 6 | group << 3 | perm(OTHER)
    }

    /// The `posix_acl_xattr` value.
    pub(super) fn to_xattr(&self) -> Vec<u8> {
        let mut out = XATTR_VERSION.to_le_bytes().to_vec();
        for &(tag, id, perm) in &self.entries {
            out.extend(tag.to_le_bytes());
            out.extend(perm.to_le_bytes());
            out.extend(id.to_le_bytes());
        }
        out
    }

    /// The permissions of the first entry tagged `tag`.
    fn perm_of(&self, tag: u16) -> Option<u16> {
        self.entries.iter().find(|e| e.0 == tag).map(|e| e.2)
    }
}

/// `perm` with its `rwxrwxrwx` bits replaced by those of the access ACL:
/// special bits (setuid, setgid, sticky) stay the header's.
pub(super) fn apply_to_mode(perm: u16, access: &Acl) -> u16 {
    perm & !MODE_RWX | access.mode_bits()
}

/// An entry as ACL text, for messages.
fn describe((tag, id, _): Entry) -> String {
    let name = match tag {
        USER_OBJ | USER => "user",
        GROUP_OBJ | GROUP => "group",
        MASK => "mask",
        _ => "other",
    };
    match id {
        UNDEFINED_ID => format!("{name}::"),
        id => format!("{name}:{id}:"),
    }
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

    /// Parses ACL text that must hold entries.
    fn text(text: &[u8]) -> Result<Acl, String> {
        Acl::from_text(text).map(Option::unwrap)
    }

    #[test]
    fn text_to_xattr() {
        let text_acl =
            b"user::rw-\nuser:1234:r--\ngroup::r-x\ngroup:staff:rw-:50\nmask::rwx\nother::---\n";
        let value = text(text_acl).unwrap().to_xattr();
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
        assert_eq!(Acl::from_xattr(&value).unwrap().unwrap().to_xattr(), want);
        let short = text(b"o::r,u::rwx #effective:r\ng::-").unwrap();
        assert_eq!(short.to_xattr().len(), 4 + 3 * 8);
        assert!(short.is_minimal());
        assert_eq!(Acl::from_text(b"# nothing\n"), Ok(None));
        assert_eq!(Acl::from_xattr(&2u32.to_le_bytes()), Ok(None));
    }

    #[test]
    fn mode_bits_follow_the_mask() {
        // bsdtar's order, named entries last; the mask gives the group bits.
        let acl = text(b"user::rwx,group::r-x,other::r-x,user:1234:rwx,mask::rwx").unwrap();
        assert_eq!(acl.mode_bits(), 0o775);
        assert_eq!(apply_to_mode(0o4755, &acl), 0o4775);
        let masked = text(b"user::rw-,group::r--,other::---,user:1234:rwx,mask::r--").unwrap();
        assert_eq!(masked.mode_bits(), 0o640);
        // No mask: the group entry; the owner and other entries count too.
        let minimal = text(b"u::rw,g::r,o::r").unwrap();
        assert_eq!(apply_to_mode(0o700, &minimal), 0o644);
        let mask_only = text(b"u::rw,g::r,o::r,m::rx").unwrap();
        assert_eq!(mask_only.mode_bits(), 0o654);
        assert!(!mask_only.is_minimal());
    }

    #[test]
    fn names_and_nonsense_are_refused() {
        assert!(text(b"user:alice:r--").unwrap_err().contains("alice"));
        assert!(text(b"user::rwxr").is_err());
        assert!(text(b"user::rr").is_err());
        assert!(text(b"user::rwq").is_err());
        assert!(text(b"mask:1:rw-").is_err());
        assert!(text(b"owner::rw-").is_err());
        assert!(text(b"user:").is_err());
        assert!(text(&[0xff]).is_err());
    }

    #[test]
    fn acls_the_kernel_refuses_are_refused() {
        let missing = text(b"u::rw,o::r").unwrap_err();
        assert!(missing.contains("group::"), "{missing}");
        let no_mask = text(b"u::rw,g::r,o::r,u:7:rwx").unwrap_err();
        assert!(no_mask.contains("mask"), "{no_mask}");
        let twice = text(b"u::rw,g::r,o::r,m::r,u:7:rwx,u:7:r").unwrap_err();
        assert!(twice.contains("user:7:"), "{twice}");
        assert!(text(b"u::rw,u::r,g::r,o::r").is_err());
        let mut value = text(b"u::rw,g::r,o::r").unwrap().to_xattr();
        assert!(Acl::from_xattr(&value[..value.len() - 1]).is_err());
        assert!(Acl::from_xattr(&value[..3]).is_err());
        value[4] = 0x40;
        assert!(Acl::from_xattr(&value).is_err());
        value[4] = 1;
        value[6] = 8;
        assert!(Acl::from_xattr(&value).is_err());
        value[6] = 6;
        value[0] = 1;
        assert!(Acl::from_xattr(&value).is_err());
    }
}
