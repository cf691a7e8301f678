//! Base64 (RFC 4648, standard alphabet) decoding, with or without padding:
//! for LIBARCHIVE.xattr values in tar archives and `0s` values in spec files.

/// Decodes standard base64, with or without `=` padding.
pub(crate) fn decode(text: &[u8]) -> Result<Vec<u8>, String> {
    let digits = text
        .strip_suffix(b"==")
        .or(text.strip_suffix(b"="))
        .unwrap_or(text);
    if digits.len() % 4 == 1 {
        return Err("bad base64 length".into());
    }
    let value = |b: u8| -> Result<u32, String> {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(format!("{:?} is not a base64 digit", char::from(b))),
        };
        Ok(u32::from(v))
    };
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for group in digits.chunks(4) {
        let bits = group
            .iter()
            .try_fold(0u32, |acc, &b| Ok::<_, String>(acc << 6 | value(b)?))?;
        // A group of n digits holds n - 1 whole bytes, left-aligned.
        let bits = bits << (6 * (4 - group.len()));
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..group.len()]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_with_and_without_padding() {
        assert_eq!(decode(b"").unwrap(), b"");
        assert_eq!(decode(b"YQ==").unwrap(), b"a");
        assert_eq!(decode(b"YQ").unwrap(), b"a");
        assert_eq!(decode(b"YWI=").unwrap(), b"ab");
        assert_eq!(decode(b"YWJj").unwrap(), b"abc");
        assert_eq!(decode(b"AP8/+w").unwrap(), [0, 0xff, 0x3f, 0xfb]);
        assert!(decode(b"Y").is_err());
        assert!(decode(b"Y===").is_err());
    }
}
