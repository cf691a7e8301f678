//! FAT dates and times: local-less (kiln writes UTC), 2-second resolution
//! for the write time, 10 ms for the creation time, days for the access
//! date, from 1980-01-01 to 2107-12-31.

use kiln_tree::Timestamp;

/// 1980-01-01T00:00:00Z, the earliest FAT time, in Unix seconds.
pub(crate) const FAT_EPOCH: i64 = 315_532_800;
/// 2107-12-31T23:59:59Z, the last second a FAT date can hold.
pub(crate) const FAT_END: i64 = 4_354_819_199;

/// A time in FAT's fields: `date` (day 0–4, month 5–8, year − 1980
/// 9–15), `time` (seconds / 2 0–4, minutes 5–10, hours 11–15) and
/// `tenths` (the creation time's extra 10 ms units, 0–199).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FatTime {
    pub(crate) date: u16,
    pub(crate) time: u16,
    pub(crate) tenths: u8,
}

impl FatTime {
    /// All fields zero: no time (the label entry's creation and access).
    pub(crate) const ZERO: FatTime = FatTime {
        date: 0,
        time: 0,
        tenths: 0,
    };

    /// `t` clamped to FAT's range and floored to its resolution: two
    /// seconds in `time`, the odd second and the hundredths in `tenths`.
    pub(crate) fn from(t: Timestamp) -> FatTime {
        let (secs, centis) = if t.secs < FAT_EPOCH {
            (FAT_EPOCH, 0)
        } else if t.secs > FAT_END {
            (FAT_END, 99)
        } else {
            (t.secs, t.nanos / 10_000_000)
        };
        let (y, m, d) = kiln_tree::civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400) as u32;
        let (h, min, s) = (sod / 3600, sod / 60 % 60, sod % 60);
        FatTime {
            date: (((y - 1980) as u16) << 9) | ((m as u16) << 5) | d as u16,
            time: ((h as u16) << 11) | ((min as u16) << 5) | (s / 2) as u16,
            tenths: ((s % 2) * 100 + centis) as u8,
        }
    }

    /// The UTC time the fields hold; `None` where they hold no valid time
    /// (a date of 0 is "none"; a month 13, hour 25 or `tenths` past 199 are
    /// corrupt).
    pub(crate) fn to_timestamp(self) -> Option<Timestamp> {
        let field = |v: u16, shift: u16, mask: u16| i64::from(v >> shift & mask);
        let year = 1980 + field(self.date, 9, 0x7F);
        let days =
            kiln_tree::days_from_civil(year, field(self.date, 5, 0x0F), field(self.date, 0, 0x1F))?;
        let (h, min, s2) = (
            field(self.time, 11, 0x1F),
            field(self.time, 5, 0x3F),
            field(self.time, 0, 0x1F),
        );
        if h > 23 || min > 59 || s2 > 29 || self.tenths > 199 {
            return None;
        }
        let tenths = i64::from(self.tenths);
        Some(Timestamp {
            secs: days * 86_400 + h * 3600 + min * 60 + s2 * 2 + tenths / 100,
            nanos: (tenths % 100) as u32 * 10_000_000,
        })
    }
}

/// What a modification time becomes in a FAT image kiln writes (clamped
/// to FAT's range, floored to 2 seconds), as a reader gives it back.
pub fn stored_mtime(t: Timestamp) -> Timestamp {
    let fat = FatTime::from(t);
    FatTime { tenths: 0, ..fat }
        .to_timestamp()
        // OK to unwrap: `from` makes only valid fields.
        .expect("a FAT time kiln made is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64, nanos: u32) -> FatTime {
        FatTime::from(Timestamp { secs, nanos })
    }

    #[test]
    fn known_dates() {
        // 2023-11-14T22:13:21.56Z
        let t = at(1_700_000_001, 560_000_000);
        assert_eq!(t.date, (43 << 9) | (11 << 5) | 14);
        assert_eq!(t.time, (22 << 11) | (13 << 5) | 10);
        assert_eq!(t.tenths, 156);
        // 2000-02-29T00:00:00Z (a leap day)
        assert_eq!(at(951_782_400, 0).date, (20 << 9) | (2 << 5) | 29);
    }

    #[test]
    fn clamped_to_the_fat_range() {
        let first = at(FAT_EPOCH, 0);
        assert_eq!((first.date, first.time, first.tenths), ((1 << 5) | 1, 0, 0));
        assert_eq!(at(0, 0), first);
        assert_eq!(at(-5, 0), first);
        let last = at(FAT_END, 0);
        assert_eq!(last.date, (127 << 9) | (12 << 5) | 31);
        assert_eq!(last.time, (23 << 11) | (59 << 5) | 29);
        assert_eq!(at(i64::MAX / 2, 0), at(FAT_END, 990_000_000));
    }

    #[test]
    fn read_back() {
        let t = Timestamp {
            secs: 1_700_000_001,
            nanos: 560_000_000,
        };
        assert_eq!(FatTime::from(t).to_timestamp(), Some(t));
        let floored = Timestamp {
            secs: 1_700_000_000,
            nanos: 0,
        };
        assert_eq!(stored_mtime(t), floored);
        let first = stored_mtime(Timestamp { secs: 0, nanos: 0 });
        assert_eq!({ first.secs }, FAT_EPOCH);
        assert_eq!(FatTime::ZERO.to_timestamp(), None);
        let bad_hour = FatTime {
            time: 25 << 11,
            ..FatTime::from(t)
        };
        assert_eq!(bad_hour.to_timestamp(), None);
    }
}
