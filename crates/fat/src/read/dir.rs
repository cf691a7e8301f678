//! Directory entries read back: short entries with the long names (VFAT)
//! that precede them.
//!
//! A long name is used only when it is whole: its slots in descending
//! order from the one flagged last, each with the checksum of the short
//! entry that follows. Otherwise the short name stands, shown in lower
//! case where `DIR_NTRes` says so (as Linux does). Every name is then one
//! path component: empty names, `.` and `..` (other than a subdirectory's
//! own dot entries), names holding `/`, `\` or NUL, and a name twice in a
//! directory (FAT compares names without case) are corrupt, so no caller
//! can be led out of a destination or list one entry twice.

use std::collections::HashSet;

use kiln_tree::Timestamp;

use crate::dirent::{ShortEntry, ATTR_DIRECTORY, ATTR_LONG_NAME, ATTR_VOLUME_ID, DIR_ENTRY_SIZE};
use crate::name::{
    checksum, decode_lfn, fold, LfnSlot, LAST_LONG_ENTRY, MAX_NAME_UNITS, NTRES_LOWER_BASE,
    NTRES_LOWER_EXT, UNITS_PER_SLOT,
};
use crate::read::bpb::trim_spaces;
use crate::time::{FatTime, FAT_EPOCH};

/// `DIR_Name[0]` of a deleted entry.
const DELETED: u8 = 0xE5;
/// `DIR_Name[0]` standing for a first byte of 0xE5 (a KANJI lead byte).
const KANJI_E5: u8 = 0x05;
/// `DIR_Name[0]` of the entry that ends the directory.
const END: u8 = 0x00;
/// `LDIR_Ord`'s sequence number bits.
const ORD_MASK: u8 = 0x3F;
/// The most slots of one long name (255 units, 13 a slot).
const MAX_SLOTS: u8 = MAX_NAME_UNITS.div_ceil(UNITS_PER_SLOT) as u8;
/// The attribute bits an entry may carry (the two top bits are reserved).
const ATTR_MASK: u8 = 0x3F;
/// The short names of the dot entries.
const DOT: &[u8; 11] = b".          ";
const DOTDOT: &[u8; 11] = b"..         ";

/// One entry of a directory, as the reader gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The name (UTF-8): the long name, or the short one.
    pub name: Vec<u8>,
    /// The 8.3 name as stored (`README.TXT`), for display.
    pub short_name: String,
    /// `DIR_Attr`.
    pub attributes: u8,
    /// `DIR_FileSize` (0 for directories).
    pub size: u32,
    /// The first cluster, 0 for none (FAT12/16 ignore `DIR_FstClusHI`).
    pub cluster: u32,
    /// The modification time; 1980-01-01 where the entry holds none valid.
    pub mtime: Timestamp,
    /// The creation time, if the entry holds one.
    pub crtime: Option<Timestamp>,
    /// The access date, if the entry holds one.
    pub atime: Option<Timestamp>,
}

impl DirEntry {
    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.attributes & ATTR_DIRECTORY != 0
    }

    /// Whether it is read-only (`ATTR_READ_ONLY`).
    pub fn read_only(&self) -> bool {
        self.attributes & crate::dirent::ATTR_READ_ONLY != 0
    }

    /// The attributes as `ls` letters: `d` directory, `r` read-only, `h`
    /// hidden, `s` system, `a` archive (`-` where unset).
    pub fn attribute_letters(&self) -> String {
        [
            (ATTR_DIRECTORY, 'd'),
            (crate::dirent::ATTR_READ_ONLY, 'r'),
            (crate::dirent::ATTR_HIDDEN, 'h'),
            (crate::dirent::ATTR_SYSTEM, 's'),
            (crate::dirent::ATTR_ARCHIVE, 'a'),
        ]
        .iter()
        .map(|&(bit, c)| if self.attributes & bit != 0 { c } else { '-' })
        .collect()
    }
}

/// What a directory's bytes hold besides its entries.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    pub(crate) entries: Vec<DirEntry>,
    /// The volume label entry's name (a root directory's), trimmed.
    pub(crate) label: Option<Vec<u8>>,
}

/// A long name being gathered, slot by slot (stored last part first).
struct Pending {
    checksum: u8,
    /// The ordinal expected next (counting down to 1).
    next: u8,
    /// The units gathered, by slot: slot `i` holds units `13i..13i+13`.
    units: Vec<u16>,
}

impl Pending {
    /// Takes `slot` into the name being gathered; a slot flagged last
    /// starts a new one, a slot out of sequence drops it.
    fn feed(pending: Option<Pending>, slot: &LfnSlot) -> Option<Pending> {
        let ord = slot.ord & ORD_MASK;
        if slot.ord & LAST_LONG_ENTRY != 0 {
            if ord == 0 || ord > MAX_SLOTS {
                return None;
            }
            let mut units = vec![0u16; usize::from(ord) * UNITS_PER_SLOT];
            place(&mut units, ord, slot);
            return Some(Pending {
                checksum: slot.checksum,
                next: ord - 1,
                units,
            });
        }
        let mut p = pending?;
        if ord == 0 || ord != p.next || slot.checksum != p.checksum {
            return None;
        }
        place(&mut p.units, ord, slot);
        p.next -= 1;
        Some(p)
    }

    /// The long name, if complete and made for `short`: the units up to
    /// the first NUL, valid UTF-16 (unpaired surrogates replaced).
    fn finish(self, short: &[u8; 11]) -> Option<Vec<u8>> {
        if self.next != 0 || self.checksum != checksum(short) {
            return None;
        }
        let end = self
            .units
            .iter()
            .position(|&u| u == 0)
            .unwrap_or(self.units.len());
        let name: String = char::decode_utf16(self.units[..end].iter().copied())
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect();
        (!name.is_empty()).then(|| name.into_bytes())
    }
}

/// Copies the units of the slot with ordinal `ord` to their place.
fn place(units: &mut [u16], ord: u8, slot: &LfnSlot) {
    let at = (usize::from(ord) - 1) * UNITS_PER_SLOT;
    units[at..at + UNITS_PER_SLOT].copy_from_slice(&slot.units);
}

/// The short name as text: base and extension trimmed, a leading 0x05
/// back to 0xE5, each part in lower case where `nt_res` says so. Bytes
/// above ASCII are taken as Latin-1 (kiln writes ASCII short names; the
/// code page of others is not recorded).
fn short_text(e: &ShortEntry) -> (String, String) {
    let mut raw = e.name;
    if raw[0] == KANJI_E5 {
        raw[0] = DELETED;
    }
    let text = |bytes: &[u8], lower: bool| -> String {
        trim_spaces(bytes)
            .iter()
            .map(|&b| {
                let c = char::from(b);
                if lower {
                    c.to_ascii_lowercase()
                } else {
                    c
                }
            })
            .collect()
    };
    let base = text(&raw[..8], e.nt_res & NTRES_LOWER_BASE != 0);
    let ext = text(&raw[8..], e.nt_res & NTRES_LOWER_EXT != 0);
    let shown = |b: &str, x: &str| {
        if x.is_empty() {
            b.to_string()
        } else {
            format!("{b}.{x}")
        }
    };
    (
        shown(&base, &ext),
        shown(&text(&raw[..8], false), &text(&raw[8..], false)),
    )
}

/// Why `name` is not a single path component, if it is not one.
fn bad_name(name: &[u8]) -> Option<&'static str> {
    if name.is_empty() {
        Some("an empty name")
    } else if name == b"." || name == b".." {
        Some("an entry named . or .. that is not a dot entry")
    } else if name.iter().any(|&c| matches!(c, b'/' | b'\\' | 0)) {
        Some("a name holding /, \\ or NUL")
    } else if name.iter().any(|&c| c < b' ') {
        Some("a name holding a control character")
    } else {
        None
    }
}

/// The entry a short entry (with its long name, if any) stands for.
fn entry(e: &ShortEntry, long: Option<Vec<u8>>, fat32: bool) -> DirEntry {
    let (shown, stored) = short_text(e);
    let cluster = if fat32 { e.cluster } else { e.cluster & 0xFFFF };
    DirEntry {
        name: long.unwrap_or_else(|| shown.into_bytes()),
        short_name: stored,
        attributes: e.attr & ATTR_MASK,
        size: e.size,
        cluster,
        mtime: e.written.to_timestamp().unwrap_or(Timestamp {
            secs: FAT_EPOCH,
            nanos: 0,
        }),
        crtime: e.created.to_timestamp(),
        atime: FatTime {
            time: 0,
            tenths: 0,
            ..e.accessed
        }
        .to_timestamp(),
    }
}

/// Decodes the entries in `bytes` (a directory's clusters, or the fixed
/// root), up to the end marker. `root` says whether dot entries are
/// allowed (not in the root); `fat32` whether `DIR_FstClusHI` counts. An
/// error says what is corrupt.
pub(crate) fn decode(bytes: &[u8], root: bool, fat32: bool) -> Result<Decoded, String> {
    let mut out = Decoded::default();
    let mut folded: HashSet<String> = HashSet::new();
    let mut pending: Option<Pending> = None;
    for raw in bytes.chunks_exact(DIR_ENTRY_SIZE) {
        // OK to unwrap: chunks_exact gives DIR_ENTRY_SIZE bytes.
        let raw: &[u8; DIR_ENTRY_SIZE] = raw.try_into().expect("a 32-byte entry");
        match raw[0] {
            END => break,
            DELETED => {
                pending = None;
                continue;
            }
            _ => {}
        }
        if raw[11] & ATTR_MASK == ATTR_LONG_NAME {
            pending = Pending::feed(pending.take(), &decode_lfn(raw));
            continue;
        }
        let short = ShortEntry::decode(raw);
        let long = pending.take().and_then(|p| p.finish(&short.name));
        if short.attr & ATTR_VOLUME_ID != 0 && short.attr & ATTR_DIRECTORY == 0 {
            if root && out.label.is_none() {
                out.label = Some(trim_spaces(&short.name).to_vec());
            }
            continue;
        }
        let dot = &short.name == DOT || &short.name == DOTDOT;
        if dot && long.is_none() && !root && short.attr & ATTR_DIRECTORY != 0 {
            continue;
        }
        let e = entry(&short, long, fat32);
        if let Some(why) = bad_name(&e.name) {
            return Err(format!("{why} ({})", kiln_tree::escape(&e.name)));
        }
        // OK to unwrap: names are built from `String`s.
        let text = std::str::from_utf8(&e.name).expect("names are UTF-8");
        if !folded.insert(fold(text)) {
            return Err(format!(
                "two entries named {} (FAT names ignore case)",
                kiln_tree::escape(&e.name)
            ));
        }
        out.entries.push(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dirent::ATTR_ARCHIVE;
    use crate::name::encode_lfn;

    fn short(name: &[u8; 11], attr: u8, nt_res: u8) -> Vec<u8> {
        let t = FatTime::from(Timestamp {
            secs: 1_700_000_000,
            nanos: 0,
        });
        let mut out = Vec::new();
        ShortEntry {
            name: *name,
            attr,
            nt_res,
            created: t,
            accessed: t,
            written: t,
            cluster: 0x0001_0005,
            size: 3,
        }
        .encode(&mut out);
        out
    }

    fn long(name: &str, alias: &[u8; 11]) -> Vec<u8> {
        let units: Vec<u16> = name.encode_utf16().collect();
        let mut out = Vec::new();
        encode_lfn(&units, checksum(alias), &mut out);
        out.extend(short(alias, ATTR_ARCHIVE, 0));
        out
    }

    fn names(bytes: &[u8]) -> Vec<String> {
        decode(bytes, false, false)
            .unwrap()
            .entries
            .iter()
            .map(|e| String::from_utf8(e.name.clone()).unwrap())
            .collect()
    }

    #[test]
    fn long_names_and_lower_case_short_names() {
        let mut d = short(DOT, ATTR_DIRECTORY, 0);
        d.extend(short(DOTDOT, ATTR_DIRECTORY, 0));
        d.extend(long("A rather long name, with ünïcødé.txt", b"ARATHE~1TXT"));
        d.extend(short(b"README  TXT", ATTR_ARCHIVE, NTRES_LOWER_BASE));
        d.extend(short(b"\x05BC     TXT", ATTR_ARCHIVE, 0));
        d.extend([0u8; 32]);
        d.extend(short(b"AFTEREND   ", ATTR_ARCHIVE, 0));
        assert_eq!(
            names(&d),
            [
                "A rather long name, with ünïcødé.txt",
                "readme.TXT",
                "\u{e5}BC.TXT"
            ]
        );
        let e = &decode(&d, false, false).unwrap().entries[1];
        assert_eq!(
            (e.short_name.as_str(), e.cluster, e.size),
            ("README.TXT", 5, 3)
        );
        assert_eq!({ e.mtime.secs }, 1_700_000_000);
        assert_eq!(
            decode(&d, false, true).unwrap().entries[1].cluster,
            0x0001_0005
        );
    }

    #[test]
    fn broken_long_names_fall_back_to_the_short_name() {
        // A bad checksum.
        let mut d = long("Long Name.txt", b"LONGNA~1TXT");
        d[13] ^= 1;
        assert_eq!(names(&d), ["LONGNA~1.TXT"]);
        // A slot missing from the middle (a 30-unit name has 3).
        let full = long("abcdefghijklmnopqrstuvwxyz0123", b"ABCDEF~1   ");
        let d = [&full[..32], &full[64..]].concat();
        assert_eq!(names(&d), ["ABCDEF~1"]);
        // A deleted entry between the slots and their short entry.
        let mut d = long("Long Name.txt", b"LONGNA~1TXT");
        let tail = d.split_off(32);
        d.extend(short(b"\xE5ELETED    ", ATTR_ARCHIVE, 0));
        d.extend(tail);
        assert_eq!(names(&d), ["LONGNA~1.TXT"]);
    }

    #[test]
    fn hostile_names_are_refused() {
        for name in ["..", ".", "a/b", "a\\b"] {
            let d = long(name, b"X          ");
            let e = decode(&d, false, false).unwrap_err();
            assert!(e.contains("name"), "{name:?}: {e}");
        }
        assert!(decode(&short(b"A\0B        ", ATTR_ARCHIVE, 0), false, false).is_err());
        // Dot entries in the root, or as files.
        assert!(decode(&short(DOTDOT, ATTR_DIRECTORY, 0), true, false).is_err());
        assert!(decode(&short(DOT, ATTR_ARCHIVE, 0), false, false).is_err());
        // The same name twice, in different case.
        let mut d = long("Same.txt", b"SAME    TXT");
        d.extend(short(b"SAME    TXT", ATTR_ARCHIVE, 0));
        assert!(decode(&d, false, false)
            .unwrap_err()
            .contains("two entries"));
    }

    #[test]
    fn the_label_entry_is_not_an_entry() {
        let mut d = short(b"MY DISK    ", ATTR_VOLUME_ID, 0);
        d.extend(short(b"FILE       ", ATTR_ARCHIVE, 0));
        let got = decode(&d, true, false).unwrap();
        assert_eq!(got.label.as_deref(), Some(&b"MY DISK"[..]));
        assert_eq!(got.entries.len(), 1);
        assert_eq!(got.entries[0].attribute_letters(), "----a");
    }
}
