//! Splitting a spec line into words: blanks separate them, `#` at the start
//! of a word begins a comment, quotes and backslash escapes keep blanks and
//! write any byte.

use std::iter::{Enumerate, Peekable};
use std::str::Chars;

use super::LineError;

/// One word of a line, its quotes and escapes resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Token {
    /// The word's bytes (escapes may make them non-UTF-8).
    pub(super) bytes: Vec<u8>,
    /// Column of the word's first character, from 1.
    pub(super) column: usize,
    /// Offsets in `bytes` where a quoted part starts: an xattr value that
    /// starts quoted is text, even if it looks like `0x..`.
    pub(super) quoted: Vec<usize>,
}

impl Token {
    /// The word as UTF-8, or an error naming `what` it should be.
    pub(super) fn text(&self, what: &str) -> Result<&str, LineError> {
        std::str::from_utf8(&self.bytes)
            .map_err(|_| LineError::new(self.column, format!("{what} must be UTF-8")))
    }
}

type Cursor<'a> = Peekable<Enumerate<Chars<'a>>>;

/// Splits `line` into words.
pub(super) fn tokens(line: &str) -> Result<Vec<Token>, LineError> {
    let mut chars = line.chars().enumerate().peekable();
    let mut out = Vec::new();
    loop {
        while chars.next_if(|&(_, c)| is_blank(c)).is_some() {}
        match chars.peek() {
            None | Some((_, '#')) => return Ok(out),
            Some(&(i, _)) => out.push(word(&mut chars, i + 1)?),
        }
    }
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Reads one word starting at `column`.
fn word(chars: &mut Cursor<'_>, column: usize) -> Result<Token, LineError> {
    let mut token = Token {
        bytes: Vec::new(),
        column,
        quoted: Vec::new(),
    };
    while let Some(&(i, c)) = chars.peek() {
        if is_blank(c) {
            break;
        }
        chars.next();
        match c {
            '"' | '\'' => {
                token.quoted.push(token.bytes.len());
                quoted(chars, c, i + 1, &mut token.bytes)?;
            }
            '\\' => escape(chars, i + 1, &mut token.bytes)?,
            _ => push_char(&mut token.bytes, c),
        }
    }
    Ok(token)
}

/// Reads a quoted part up to its closing `quote`; escapes work in double
/// quotes only, so single quotes can hold backslashes as they are.
fn quoted(
    chars: &mut Cursor<'_>,
    quote: char,
    column: usize,
    out: &mut Vec<u8>,
) -> Result<(), LineError> {
    while let Some((i, c)) = chars.next() {
        match c {
            _ if c == quote => return Ok(()),
            '\\' if quote == '"' => escape(chars, i + 1, out)?,
            _ => push_char(out, c),
        }
    }
    Err(LineError::new(
        column,
        format!("unterminated {quote} quote"),
    ))
}

/// Reads what follows a backslash at `column`.
fn escape(chars: &mut Cursor<'_>, column: usize, out: &mut Vec<u8>) -> Result<(), LineError> {
    let byte = match chars.next().map(|(_, c)| c) {
        Some(c @ ('\\' | '"' | '\'' | ' ' | '#')) => c as u8,
        Some('n') => b'\n',
        Some('t') => b'\t',
        Some('r') => b'\r',
        Some('0') => 0,
        Some('x') => hex_byte(chars)
            .ok_or_else(|| LineError::new(column, "`\\x` needs two hex digits, as in `\\xff`"))?,
        Some(c) => {
            return Err(LineError::new(
                column,
                format!(
                "unknown escape `\\{c}` (known: \\\\ \\\" \\' \\<space> \\# \\n \\t \\r \\0 \\xHH)"
            ),
            ))
        }
        None => return Err(LineError::new(column, "a backslash ends the line")),
    };
    out.push(byte);
    Ok(())
}

/// Reads two hex digits.
fn hex_byte(chars: &mut Cursor<'_>) -> Option<u8> {
    let mut value = 0u8;
    for _ in 0..2 {
        let digit = chars.next_if(|(_, c)| c.is_ascii_hexdigit())?.1;
        value = value * 16 + digit.to_digit(16)? as u8;
    }
    Some(value)
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut buf = [0; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<Vec<u8>> {
        tokens(line).unwrap().into_iter().map(|t| t.bytes).collect()
    }

    #[test]
    fn splits_on_blanks_and_stops_at_comments() {
        assert_eq!(
            words("  dir\t/a  0755 # the rest"),
            [b"dir".to_vec(), b"/a".to_vec(), b"0755".to_vec()]
        );
        assert_eq!(words("a#b"), [b"a#b".to_vec()]);
        assert!(words("# only a comment").is_empty());
        let t = tokens("ab  cd").unwrap();
        assert_eq!((t[0].column, t[1].column), (1, 5));
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(words(r#""/my dir/x""#), [b"/my dir/x".to_vec()]);
        assert_eq!(words(r"'a\nb'"), [br"a\nb".to_vec()]);
        assert_eq!(words(r#"a\ b\#c"#), [b"a b#c".to_vec()]);
        assert_eq!(words(r#""\xff\x00\n\t\\\"""#), [b"\xff\0\n\t\\\"".to_vec()]);
        assert_eq!(
            words(r#"xattr=user.a="0x12""#),
            [b"xattr=user.a=0x12".to_vec()]
        );
        assert_eq!(tokens(r#"k="v""#).unwrap()[0].quoted, [2]);
        assert_eq!(words("é"), ["é".as_bytes().to_vec()]);
    }

    #[test]
    fn errors_name_the_column() {
        let err = |line: &str| tokens(line).unwrap_err();
        assert_eq!(err(r#"dir "/a"#).column, 5);
        assert!(err(r#"dir "/a"#).what.contains("unterminated"));
        assert_eq!(err(r"ab \q").column, 4);
        assert_eq!(err(r"é \xZ1").column, 3);
        assert_eq!(err("a \\").column, 3);
        assert_eq!(err(r"'x' 'y").column, 5);
    }
}
