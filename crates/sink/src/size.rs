//! Sizes as people write them: `123`, `64K`, `512M`, `2G`, `1T` (also
//! `2GiB`, `2g`); the suffixes are powers of 1024. Shared by the command
//! line (`--size`, `-J`) and disk layout files.

/// Parses a size into bytes; a plain number is bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    parse_with_unit(s, 1)
}

/// Parses a size into bytes; a plain number counts `default_unit` bytes
/// (`-J 32` is 32 MiB, as with mke2fs).
pub fn parse_with_unit(s: &str, default_unit: u64) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size"))?;
    let unit = match suffix
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" if suffix.is_empty() => default_unit,
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => {
            return Err(format!(
                "{s:?}: unknown size suffix {suffix:?} (use K, M, G or T)"
            ))
        }
    };
    n.checked_mul(unit)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_errors() {
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size(" 4096 "), Ok(4096));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_with_unit("32", 1 << 20), Ok(32 << 20));
        assert!(parse_size("12Q")
            .unwrap_err()
            .contains("unknown size suffix"));
        assert!(parse_size("G").unwrap_err().contains("is not a size"));
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999T")
            .unwrap_err()
            .contains("too large"));
    }
}
