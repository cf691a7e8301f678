//! Names: what VFAT can hold, the case fold that decides collisions, the
//! 8.3 short names (with their alias generation, as Windows makes them: the
//! basis name of the FAT specification and a numeric tail `~1`, `~2`, …)
//! and the long-name (LFN) slots that carry the name in UTF-16.

use std::collections::HashSet;

use crate::dirent::{ATTR_LONG_NAME, DIR_ENTRY_SIZE};
use crate::le::{get_u16, put_u16};

/// The most UTF-16 units of a long name.
pub(crate) const MAX_NAME_UNITS: usize = 255;
/// UTF-16 units held by one long-name slot.
pub(crate) const UNITS_PER_SLOT: usize = 13;
/// The byte offsets in a long-name slot of its 13 UTF-16 units
/// (`LDIR_Name1` at 1, `LDIR_Name2` at 14, `LDIR_Name3` at 28).
const LFN_UNIT_OFFSETS: [usize; UNITS_PER_SLOT] = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];
/// `LDIR_Ord`'s flag on the last (first written) slot of a long name.
pub(crate) const LAST_LONG_ENTRY: u8 = 0x40;
/// `DIR_NTRes` flag: the short name's base is shown in lower case.
pub(crate) const NTRES_LOWER_BASE: u8 = 0x08;
/// `DIR_NTRes` flag: the short name's extension is shown in lower case.
pub(crate) const NTRES_LOWER_EXT: u8 = 0x10;
/// The highest numeric tail tried before giving up on a short alias.
const MAX_TAIL: u32 = 999_999;

/// The characters VFAT refuses in a long name (besides control characters).
const FORBIDDEN: &[char] = &['"', '*', '/', ':', '<', '>', '?', '\\', '|'];

/// Checks that a tree name (raw bytes) can be a VFAT long name; the name
/// as text, or why not.
pub(crate) fn check(name: &[u8]) -> Result<&str, &'static str> {
    let text = std::str::from_utf8(name).map_err(|_| "it is not UTF-8")?;
    if text.chars().any(|c| c < ' ') {
        return Err("it holds a control character");
    }
    if text.contains(FORBIDDEN) {
        return Err("it holds one of \" * / : < > ? \\ |");
    }
    if text.ends_with(['.', ' ']) {
        return Err("it ends with a dot or a space, which Windows drops");
    }
    if text.encode_utf16().count() > MAX_NAME_UNITS {
        return Err("it is longer than 255 UTF-16 units");
    }
    Ok(text)
}

/// The name as FAT compares names: each character upper-cased where it
/// has a one-character upper case (Windows' up-case table is such a
/// one-to-one map; `ß` stays `ß`).
pub(crate) fn fold(name: &str) -> String {
    name.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

/// Whether `c` (ASCII, upper case) may stand in a short name as it is.
fn short_char(c: char) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || "!#$%&'()-@^_`{}~".contains(c)
}

/// Eleven bytes of a short name: base and extension padded with spaces.
pub(crate) type ShortName = [u8; 11];

/// How a long name gets its short entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Short {
    /// The name is an 8.3 name itself (in upper case, or with a base and an
    /// extension each wholly in lower case, told by the `DIR_NTRes` flags):
    /// no long-name slots.
    Exact(ShortName, u8),
    /// The name needs long-name slots and an alias made from this basis
    /// name; `tail` when the alias must carry a numeric tail (the basis
    /// lost characters, or is not the name in upper case).
    Basis {
        primary: String,
        ext: String,
        tail: bool,
    },
}

/// Pads `primary` and `ext` into a short name.
fn pack(primary: &str, ext: &str) -> ShortName {
    let mut out = [b' '; 11];
    out[..primary.len()].copy_from_slice(primary.as_bytes());
    out[8..8 + ext.len()].copy_from_slice(ext.as_bytes());
    out
}

/// Whether every letter of `part` is upper case (`Some(false)`), every one
/// lower case (`Some(true)`), or they mix (`None`).
fn lower(part: &str) -> Option<bool> {
    let up = part.chars().any(|c| c.is_ascii_uppercase());
    let low = part.chars().any(|c| c.is_ascii_lowercase());
    match (up, low) {
        (true, true) => None,
        (_, low) => Some(low),
    }
}

/// Classifies a valid long name (see [`check`]).
pub(crate) fn classify(name: &str) -> Short {
    if let Some(exact) = exact(name) {
        return exact;
    }
    // The basis name: upper case, characters a short name cannot hold
    // replaced by `_` (lossy), spaces dropped, leading periods dropped.
    let mut lossy = false;
    let mut text = String::new();
    for c in fold(name).chars() {
        match c {
            ' ' => {}
            '.' => text.push('.'),
            c if c.is_ascii() && short_char(c) => text.push(c),
            _ => {
                lossy = true;
                text.push('_');
            }
        }
    }
    let text = text.trim_start_matches('.');
    let primary: String = text.chars().take_while(|&c| c != '.').take(8).collect();
    let ext: String = match text.rfind('.') {
        Some(dot) => text[dot + 1..].chars().take(3).collect(),
        None => String::new(),
    };
    let primary = if primary.is_empty() {
        "_".into()
    } else {
        primary
    };
    let whole = if ext.is_empty() {
        primary.clone()
    } else {
        format!("{primary}.{ext}")
    };
    let tail = lossy || whole != fold(name);
    Short::Basis { primary, ext, tail }
}

/// The short entry of a name that is an 8.3 name itself, if it is one.
fn exact(name: &str) -> Option<Short> {
    let (base, ext) = match name.split_once('.') {
        Some((b, e)) if !e.contains('.') && !e.is_empty() => (b, e),
        Some(_) => return None,
        None => (name, ""),
    };
    if base.is_empty() || base.len() > 8 || ext.len() > 3 {
        return None;
    }
    let ok = |s: &str| s.chars().all(|c| short_char(c.to_ascii_uppercase()));
    if !ok(base) || !ok(ext) {
        return None;
    }
    let (b, e) = (lower(base)?, lower(ext)?);
    let flags = (if b { NTRES_LOWER_BASE } else { 0 }) | (if e { NTRES_LOWER_EXT } else { 0 });
    let up = |s: &str| s.to_ascii_uppercase();
    Some(Short::Exact(pack(&up(base), &up(ext)), flags))
}

/// The alias `PRIMARY~N.EXT`, the primary cut so that the whole fits 8.
fn with_tail(primary: &str, ext: &str, n: u32) -> ShortName {
    let tail = format!("~{n}");
    let keep = primary.len().min(8 - tail.len());
    pack(&format!("{}{tail}", &primary[..keep]), ext)
}

/// The short names of one directory's entries, given each entry's
/// classification in the directory's order: exact 8.3 names keep theirs,
/// the others take their basis name if it is free and needs no tail, else
/// the first free `~N` alias. `None` if a directory runs out of aliases.
pub(crate) fn assign(shorts: &[Short]) -> Option<Vec<ShortName>> {
    let mut taken: HashSet<ShortName> = shorts
        .iter()
        .filter_map(|s| match s {
            Short::Exact(n, _) => Some(*n),
            Short::Basis { .. } => None,
        })
        .collect();
    let mut out = Vec::with_capacity(shorts.len());
    for s in shorts {
        let name = match s {
            Short::Exact(n, _) => *n,
            Short::Basis { primary, ext, tail } => {
                let plain = pack(primary, ext);
                if !tail && taken.insert(plain) {
                    plain
                } else {
                    let free = (1..=MAX_TAIL)
                        .map(|n| with_tail(primary, ext, n))
                        .find(|alias| !taken.contains(alias))?;
                    taken.insert(free);
                    free
                }
            }
        };
        out.push(name);
    }
    Some(out)
}

/// The checksum of a short name that each of its long-name slots carries
/// (`LDIR_Chksum`): a rotate-right-and-add over the 11 bytes.
pub(crate) fn checksum(short: &ShortName) -> u8 {
    short
        .iter()
        .fold(0u8, |sum, &b| sum.rotate_right(1).wrapping_add(b))
}

/// The number of long-name slots a name of `units` UTF-16 units takes.
pub(crate) fn slots(units: usize) -> usize {
    units.div_ceil(UNITS_PER_SLOT)
}

/// Appends the long-name slots of `name` (UTF-16) for the short name whose
/// checksum is `sum`, in the order they are stored: the last part first.
pub(crate) fn encode_lfn(name: &[u16], sum: u8, out: &mut Vec<u8>) {
    let n = slots(name.len());
    for ord in (1..=n).rev() {
        let mut slot = [0u8; DIR_ENTRY_SIZE];
        slot[0] = ord as u8 | if ord == n { LAST_LONG_ENTRY } else { 0 };
        slot[11] = ATTR_LONG_NAME;
        slot[13] = sum;
        for (i, &off) in LFN_UNIT_OFFSETS.iter().enumerate() {
            let at = (ord - 1) * UNITS_PER_SLOT + i;
            let unit = match at.cmp(&name.len()) {
                std::cmp::Ordering::Less => name[at],
                std::cmp::Ordering::Equal => 0x0000,
                std::cmp::Ordering::Greater => 0xFFFF,
            };
            put_u16(&mut slot, off, unit);
        }
        out.extend_from_slice(&slot);
    }
}

/// One long-name slot as stored: `LDIR_Ord` (with the last-slot flag),
/// `LDIR_Chksum` and its 13 UTF-16 units (terminator and padding included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LfnSlot {
    pub(crate) ord: u8,
    pub(crate) checksum: u8,
    pub(crate) units: [u16; UNITS_PER_SLOT],
}

/// Decodes a long-name slot (an entry whose attributes are
/// `ATTR_LONG_NAME`) from the offsets [`encode_lfn`] writes.
pub(crate) fn decode_lfn(slot: &[u8; DIR_ENTRY_SIZE]) -> LfnSlot {
    let mut units = [0u16; UNITS_PER_SLOT];
    for (u, &off) in units.iter_mut().zip(LFN_UNIT_OFFSETS.iter()) {
        *u = get_u16(slot, off);
    }
    LfnSlot {
        ord: slot[0],
        checksum: slot[13],
        units,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short(s: &[u8; 11]) -> String {
        String::from_utf8_lossy(s).into_owned()
    }

    fn aliases(names: &[&str]) -> Vec<String> {
        let c: Vec<Short> = names.iter().map(|n| classify(n)).collect();
        assign(&c).unwrap().iter().map(short).collect()
    }

    #[test]
    fn names_fat_refuses() {
        assert!(check(b"ok name.txt").is_ok());
        assert!(check("ünïcødé ✓".as_bytes()).is_ok());
        for bad in [
            "a:b", "a*", "q?", "\"", "<", ">", "|", "a\\b", "tab\t", "dot.", "sp ",
        ] {
            assert!(check(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(check(&[0xff, 0x41]).is_err());
        assert!(check("x".repeat(255).as_bytes()).is_ok());
        assert!(check("x".repeat(256).as_bytes()).is_err());
        // 128 astral characters: 256 UTF-16 units.
        assert!(check("😀".repeat(128).as_bytes()).is_err());
    }

    #[test]
    fn exact_names_need_no_long_name() {
        assert_eq!(classify("README.TXT"), Short::Exact(*b"README  TXT", 0));
        assert_eq!(classify("KERNEL"), Short::Exact(*b"KERNEL     ", 0));
        assert_eq!(
            classify("readme.txt"),
            Short::Exact(*b"README  TXT", NTRES_LOWER_BASE | NTRES_LOWER_EXT)
        );
        assert_eq!(
            classify("README.txt"),
            Short::Exact(*b"README  TXT", NTRES_LOWER_EXT)
        );
        assert_eq!(classify("a1.b2"), Short::Exact(*b"A1      B2 ", 0x18));
        assert!(matches!(
            classify("ReadMe.txt"),
            Short::Basis { tail: false, .. }
        ));
        assert!(matches!(
            classify(".profile"),
            Short::Basis { tail: true, .. }
        ));
        assert!(matches!(classify("a.b.c"), Short::Basis { tail: true, .. }));
    }

    #[test]
    fn aliases_as_windows_makes_them() {
        assert_eq!(aliases(&["ReadMe.txt"]), ["README  TXT"]);
        assert_eq!(aliases(&["Makefile"]), ["MAKEFILE   "]);
        assert_eq!(aliases(&["My File.txt"]), ["MYFILE~1TXT"]);
        assert_eq!(aliases(&["long file name.html"]), ["LONGFI~1HTM"]);
        assert_eq!(aliases(&[".bashrc"]), ["BASHRC~1   "]);
        assert_eq!(aliases(&["a.b.c.tar.gz"]), ["A~1     GZ "]);
        assert_eq!(aliases(&["ünï.txt"]), ["_N_~1   TXT"]);
        assert_eq!(aliases(&["a+b=c"]), ["A_B_C~1    "]);
    }

    #[test]
    fn collisions_count_up_through_the_tails() {
        let names: Vec<String> = (0..12).map(|i| format!("longname{i:02}.text")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let got = aliases(&refs);
        assert_eq!(got[0], "LONGNA~1TEX");
        assert_eq!(got[8], "LONGNA~9TEX");
        assert_eq!(got[9], "LONGN~10TEX");
        assert_eq!(got[11], "LONGN~12TEX");
        // An exact name keeps its short name; the alias steps past it.
        assert_eq!(
            aliases(&["Data~1.bin", "DATA~1.BIN"]),
            ["DATA~1~1BIN", "DATA~1  BIN"]
        );
        // A free basis with no tail needed is taken as it is, once.
        assert_eq!(
            aliases(&["Makefile", "MakeFile"]),
            ["MAKEFILE   ", "MAKEFI~1   "]
        );
    }

    #[test]
    fn checksum_of_known_names() {
        // Each step: rotate the sum right by one bit, add the byte.
        let mut sum = 0u8;
        for &b in b"README  TXT" {
            sum = (((sum & 1) << 7) | (sum >> 1)).wrapping_add(b);
        }
        assert_eq!(checksum(b"README  TXT"), sum);
    }

    #[test]
    fn long_name_slots_are_terminated_and_padded() {
        let name: Vec<u16> = "abcdefghijklmn".encode_utf16().collect(); // 14 units
        let mut out = Vec::new();
        encode_lfn(&name, 0xAB, &mut out);
        assert_eq!(out.len(), 64);
        let (second, first) = out.split_at(32);
        assert_eq!(second[0], 0x42);
        assert_eq!(first[0], 0x01);
        assert_eq!((second[11], second[12], second[13]), (0x0F, 0, 0xAB));
        assert_eq!(&second[1..5], &[b'n', 0, 0, 0]);
        assert_eq!(&second[5..7], &[0xFF, 0xFF]);
        assert_eq!(&first[30..32], &[b'm', 0]);
        assert_eq!(&first[26..28], &[0, 0]);
        // Exactly 13 units: no terminator, no padding.
        let mut out = Vec::new();
        encode_lfn(&name[..13], 0, &mut out);
        assert_eq!(out.len(), 32);
        assert_eq!(out[0], 0x41);
        assert_eq!(&out[30..32], &[b'm', 0]);
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    /// Names from an alphabet rich in what aliasing must handle.
    fn names() -> impl Strategy<Value = Vec<String>> {
        let name = proptest::collection::vec(
            prop_oneof![
                Just('a'),
                Just('B'),
                Just('z'),
                Just('.'),
                Just(' '),
                Just('~'),
                Just('1'),
                Just('+'),
                Just('é'),
                Just('日'),
            ],
            1..20,
        )
        .prop_map(|c| c.into_iter().collect::<String>())
        .prop_filter("valid", |n| check(n.as_bytes()).is_ok());
        proptest::collection::vec(name, 1..40)
    }

    proptest! {
        #[test]
        fn aliases_are_valid_and_unique(names in names()) {
            let mut seen = HashSet::new();
            let names: Vec<String> = names.into_iter().filter(|n| seen.insert(fold(n))).collect();
            let classes: Vec<Short> = names.iter().map(|n| classify(n)).collect();
            let aliases = assign(&classes).unwrap();
            let unique: HashSet<_> = aliases.iter().collect();
            prop_assert_eq!(unique.len(), aliases.len());
            for a in &aliases {
                prop_assert!(a[0] != b' ');
                for part in [&a[..8], &a[8..]] {
                    let text = std::str::from_utf8(part).unwrap().trim_end_matches(' ');
                    prop_assert!(!text.contains(' '), "{:?}", a);
                    prop_assert!(text.chars().all(short_char), "{:?}", a);
                }
            }
        }

        #[test]
        fn long_name_slots_carry_the_name(name in names().prop_map(|mut v| v.remove(0))) {
            let units: Vec<u16> = name.encode_utf16().collect();
            let mut out = Vec::new();
            encode_lfn(&units, 7, &mut out);
            prop_assert_eq!(out.len(), slots(units.len()) * 32);
            // Read back: slots in reverse, 13 units each, up to the terminator.
            let mut back = Vec::new();
            for slot in out.chunks(32).rev() {
                for &off in &LFN_UNIT_OFFSETS {
                    back.push(u16::from_le_bytes([slot[off], slot[off + 1]]));
                }
            }
            let end = back.iter().position(|&u| u == 0).unwrap_or(back.len());
            prop_assert_eq!(&back[..end], &units[..]);
        }
    }
}
