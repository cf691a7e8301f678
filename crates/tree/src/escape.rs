//! Names, link targets and labels shown to a person: bytes from an image or
//! an archive may hold control characters that a terminal would obey (move
//! the cursor, change colours, retitle the window), so human output escapes
//! them as `ls -b` does. JSON output needs none of this: it is exact.

use std::fmt;

/// Bytes displayed with every control character, backslash and invalid
/// UTF-8 byte escaped: `\n`, `\t`, `\\`, and `\ooo` (octal) for the rest.
/// Printable UTF-8, spaces included, is shown as it is.
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                write_char(f, c)?;
            }
            for &byte in chunk.invalid() {
                write!(f, "\\{byte:03o}")?;
            }
        }
        Ok(())
    }
}

/// Writes one character, escaped if it is a control character (C0, DEL or
/// C1) or a backslash.
fn write_char(f: &mut fmt::Formatter<'_>, c: char) -> fmt::Result {
    match c {
        '\\' => f.write_str("\\\\"),
        '\x07' => f.write_str("\\a"),
        '\x08' => f.write_str("\\b"),
        '\t' => f.write_str("\\t"),
        '\n' => f.write_str("\\n"),
        '\x0b' => f.write_str("\\v"),
        '\x0c' => f.write_str("\\f"),
        '\r' => f.write_str("\\r"),
        c if c.is_control() => {
            let mut utf8 = [0u8; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                write!(f, "\\{byte:03o}")?;
            }
            Ok(())
        }
        c => write!(f, "{c}"),
    }
}

/// `bytes` escaped as a `String` (see [`Escaped`]).
pub fn escape(bytes: &[u8]) -> String {
    Escaped(bytes).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_backslashes_and_bad_utf8_are_escaped() {
        assert_eq!(escape(b"plain name.txt"), "plain name.txt");
        assert_eq!(escape("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(escape(b"\x1b[31mred\n"), "\\033[31mred\\n");
        assert_eq!(escape(b"a\\b\tc\0"), "a\\\\b\\tc\\000");
        assert_eq!(escape(b"\x7f\xff"), "\\177\\377");
        // C1 controls (U+009B is a one-character CSI on some terminals).
        assert_eq!(escape("\u{9b}2J".as_bytes()), "\\302\\2332J");
    }
}
