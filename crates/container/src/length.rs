//! The length of the image an encoder is fed, held to the size its options
//! promise: bytes past it are refused at once (they would land beyond the
//! disk the container describes), and too few when the encoder finishes.

use std::io;

/// The image bytes an encoder has been given so far.
pub(crate) struct Length {
    /// The format, for messages.
    what: &'static str,
    size: u64,
    seen: u64,
}

impl Length {
    /// An image of `size` bytes, for the encoder of `what`.
    pub(crate) fn new(what: &'static str, size: u64) -> Length {
        Length {
            what,
            size,
            seen: 0,
        }
    }

    /// Counts `len` more bytes; refuses any past the image's size.
    pub(crate) fn take(&mut self, len: u64) -> io::Result<()> {
        match self.seen.checked_add(len) {
            Some(seen) if seen <= self.size => {
                self.seen = seen;
                Ok(())
            }
            _ => Err(invalid(format!(
                "{}: {len} more bytes after {} run past the end of the {}-byte image",
                self.what, self.seen, self.size
            ))),
        }
    }

    /// Refuses an image that ended early.
    pub(crate) fn complete(&self) -> io::Result<()> {
        if self.seen == self.size {
            return Ok(());
        }
        Err(invalid(format!(
            "{}: the image ended after {} of its {} bytes",
            self.what, self.seen, self.size
        )))
    }

    /// The bytes counted so far.
    pub(crate) fn seen(&self) -> u64 {
        self.seen
    }
}

/// An `InvalidInput` error: what the options or the image asked for, which
/// the format cannot hold.
pub(crate) fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_or_fewer_bytes_are_refused() {
        let mut length = Length::new("test", 10);
        length.take(4).unwrap();
        assert!(length.complete().is_err());
        let err = length.take(7).unwrap_err();
        assert!(err.to_string().contains("run past the end"), "{err}");
        length.take(6).unwrap();
        length.complete().unwrap();
        assert_eq!(length.seen(), 10);
        assert!(length.take(u64::MAX).is_err());
    }
}
