//! The image stream cut into fixed-size units (clusters, grains, blocks),
//! all-zero units told apart from the others.
//!
//! Every container maps the image in units of one size and leaves the
//! all-zero ones out; [`Units`] does the cutting once for all of them. A gap
//! ([`Encoder::zeros`](crate::Encoder::zeros)) becomes zero units without
//! its bytes ever being made; written data is checked for zeros a unit at a
//! time, and a unit wholly inside one write is passed on without a copy.

use std::io;

use kiln_sink::is_zero;

/// One step of the cut image: a run of all-zero units, or one unit that
/// holds data.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unit<'a> {
    /// Units `first..first + count` are all zeros.
    Zeros {
        /// The index of the first.
        first: u64,
        /// How many.
        count: u64,
    },
    /// Unit `index` holds `bytes` (exactly one unit; the last unit of an
    /// image that is not a whole number of units is padded with zeros).
    Data {
        /// Its index.
        index: u64,
        /// Its bytes.
        bytes: &'a [u8],
    },
}

/// The cutter: feed it the image in order, it calls back with [`Unit`]s in
/// order, runs of zero units merged.
pub(crate) struct Units {
    size: usize,
    /// The unit being filled (`buf.len()` bytes so far), copied from
    /// writes that do not cover it whole.
    buf: Vec<u8>,
    /// The index of the next unit to be passed on.
    next: u64,
    /// All-zero units seen and not yet passed on, from `next` on.
    zero_run: u64,
}

impl Units {
    /// A cutter into units of `size` bytes.
    pub(crate) fn new(size: usize) -> Units {
        assert!(size > 0);
        Units {
            size,
            buf: Vec::with_capacity(size),
            next: 0,
            zero_run: 0,
        }
    }

    /// The next bytes of the image.
    pub(crate) fn data(
        &mut self,
        mut bytes: &[u8],
        f: &mut impl FnMut(Unit<'_>) -> io::Result<()>,
    ) -> io::Result<()> {
        let take = self.room().min(bytes.len());
        self.buf.extend_from_slice(&bytes[..take]);
        bytes = &bytes[take..];
        if !self.pass_full(f)? {
            return Ok(());
        }
        let mut whole = bytes.chunks_exact(self.size);
        for unit in &mut whole {
            self.unit(unit, f)?;
        }
        self.buf.extend_from_slice(whole.remainder());
        Ok(())
    }

    /// The next `len` bytes of the image are zeros.
    pub(crate) fn zeros(
        &mut self,
        mut len: u64,
        f: &mut impl FnMut(Unit<'_>) -> io::Result<()>,
    ) -> io::Result<()> {
        let take = (self.room() as u64).min(len);
        self.buf.resize(self.buf.len() + take as usize, 0);
        len -= take;
        if !self.pass_full(f)? {
            return Ok(());
        }
        self.zero_run += len / self.size as u64;
        self.buf.resize((len % self.size as u64) as usize, 0);
        Ok(())
    }

    /// What the unit being filled still takes: none when no unit is begun
    /// (whole units then go on without a copy).
    fn room(&self) -> usize {
        if self.buf.is_empty() {
            0
        } else {
            self.size - self.buf.len()
        }
    }

    /// Passes on the unit being filled once it is full; false while it is
    /// begun and not full (the input ran out before its end).
    fn pass_full(&mut self, f: &mut impl FnMut(Unit<'_>) -> io::Result<()>) -> io::Result<bool> {
        if self.buf.is_empty() {
            return Ok(true);
        }
        if self.buf.len() < self.size {
            return Ok(false);
        }
        let unit = std::mem::take(&mut self.buf);
        self.unit(&unit, f)?;
        self.buf = unit;
        self.buf.clear();
        Ok(true)
    }

    /// The image is complete: passes on the last unit (padded with zeros)
    /// and the zero run before it. Returns the number of units.
    pub(crate) fn finish(
        &mut self,
        f: &mut impl FnMut(Unit<'_>) -> io::Result<()>,
    ) -> io::Result<u64> {
        if !self.buf.is_empty() {
            let mut unit = std::mem::take(&mut self.buf);
            unit.resize(self.size, 0);
            self.unit(&unit, f)?;
        }
        self.flush_zeros(f)?;
        Ok(self.next)
    }

    /// One whole unit.
    fn unit(
        &mut self,
        bytes: &[u8],
        f: &mut impl FnMut(Unit<'_>) -> io::Result<()>,
    ) -> io::Result<()> {
        if is_zero(bytes) {
            self.zero_run += 1;
            return Ok(());
        }
        self.flush_zeros(f)?;
        f(Unit::Data {
            index: self.next,
            bytes,
        })?;
        self.next += 1;
        Ok(())
    }

    fn flush_zeros(&mut self, f: &mut impl FnMut(Unit<'_>) -> io::Result<()>) -> io::Result<()> {
        if self.zero_run > 0 {
            let count = std::mem::take(&mut self.zero_run);
            f(Unit::Zeros {
                first: self.next,
                count,
            })?;
            self.next += count;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What a cutter passes on, as (index, Some(bytes)) for data and
    /// (first, None) repeated per zero unit.
    /// Each unit passed on: its index, and its bytes if it holds data.
    type Cut = Vec<(u64, Option<Vec<u8>>)>;

    fn cut(size: usize, steps: &[(bool, Vec<u8>)]) -> (Cut, u64) {
        let mut got = Vec::new();
        let mut f = |u: Unit<'_>| {
            match u {
                Unit::Zeros { first, count } => {
                    assert!(count > 0);
                    for i in first..first + count {
                        got.push((i, None));
                    }
                }
                Unit::Data { index, bytes } => {
                    assert_eq!(bytes.len(), size);
                    got.push((index, Some(bytes.to_vec())))
                }
            }
            Ok(())
        };
        let mut units = Units::new(size);
        for (gap, bytes) in steps {
            if *gap {
                units.zeros(bytes.len() as u64, &mut f).unwrap();
            } else {
                units.data(bytes, &mut f).unwrap();
            }
        }
        let n = units.finish(&mut f).unwrap();
        (got, n)
    }

    proptest! {
        #[test]
        fn units_reassemble_the_image(
            size in 1usize..40,
            steps in proptest::collection::vec((any::<bool>(), proptest::collection::vec(0u8..3, 0..100)), 0..20),
        ) {
            let steps: Vec<(bool, Vec<u8>)> = steps;
            let image: Vec<u8> = steps
                .iter()
                .flat_map(|(gap, b)| if *gap { vec![0; b.len()] } else { b.clone() })
                .collect();
            let (got, n) = cut(size, &steps);
            prop_assert_eq!(n, image.len().div_ceil(size) as u64);
            prop_assert_eq!(got.len() as u64, n);
            for (i, (index, bytes)) in got.iter().enumerate() {
                prop_assert_eq!(*index, i as u64);
                let start = i * size;
                let mut want = image[start..(start + size).min(image.len())].to_vec();
                want.resize(size, 0);
                match bytes {
                    Some(b) => {
                        prop_assert_eq!(b, &want);
                        prop_assert!(!is_zero(b));
                    }
                    None => prop_assert!(is_zero(&want)),
                }
            }
        }
    }

    #[test]
    fn zero_runs_are_merged() {
        let mut calls = Vec::new();
        let mut f = |u: Unit<'_>| {
            calls.push(match u {
                Unit::Zeros { first, count } => (first, count, false),
                Unit::Data { index, .. } => (index, 1, true),
            });
            Ok(())
        };
        let mut units = Units::new(4);
        units.zeros(10, &mut f).unwrap();
        units.data(&[0, 0, 1, 0, 0, 0], &mut f).unwrap();
        units.zeros(8, &mut f).unwrap();
        assert_eq!(units.finish(&mut f).unwrap(), 6);
        assert_eq!(calls, vec![(0, 3, false), (3, 1, true), (4, 2, false)]);
    }
}
