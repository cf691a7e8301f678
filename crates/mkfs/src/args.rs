//! mke2fs 1.47's command line, parsed as its getopt does: short options,
//! clustered (`-Fq`), arguments attached (`-b4096`) or separate (`-b
//! 4096`), options and operands in any order (GNU getopt's permutation),
//! `--` ending the options; then `device [fs-size]`.

use std::path::PathBuf;

use crate::error::MkfsError;

/// One option as given: its letter and its argument, if it takes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Given {
    /// The option letter (`b` for `-b`).
    pub letter: char,
    /// Its argument.
    pub value: Option<String>,
}

/// The parsed command line: every option in order, then the operands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Args {
    /// The options, in command-line order.
    pub options: Vec<Given>,
    /// The device (or image file).
    pub device: PathBuf,
    /// The fs-size operand as written.
    pub fs_size: Option<String>,
}

/// The letters of options that take an argument.
pub const WITH_ARGUMENT: &str = "bCdeEgGiIJlLmMNoOrRsTtUz";
/// The letters of options that take none.
pub const WITHOUT_ARGUMENT: &str = "cDFjKnqSvV";

impl Args {
    /// Parses the arguments after the program name.
    pub fn parse<I, S>(argv: I) -> Result<Args, MkfsError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut words = argv.into_iter().map(Into::into);
        let mut args = Args::default();
        let mut operands = Vec::new();
        while let Some(word) = words.next() {
            if word == "--" {
                operands.extend(words.by_ref());
                break;
            }
            match word.strip_prefix('-') {
                Some(cluster) if !cluster.is_empty() => {
                    args.cluster(cluster, &mut words)?;
                }
                _ => operands.push(word),
            }
        }
        args.operands(operands)?;
        Ok(args)
    }

    /// One `-xyz` word: flags, then at most one option with an argument
    /// (the rest of the word, or the next word).
    fn cluster(
        &mut self,
        cluster: &str,
        words: &mut impl Iterator<Item = String>,
    ) -> Result<(), MkfsError> {
        for (i, letter) in cluster.char_indices() {
            if WITHOUT_ARGUMENT.contains(letter) {
                self.options.push(Given {
                    letter,
                    value: None,
                });
                continue;
            }
            if !WITH_ARGUMENT.contains(letter) {
                return Err(MkfsError::usage(
                    format!("-{letter}"),
                    "not a mke2fs option",
                ));
            }
            let rest = &cluster[i + letter.len_utf8()..];
            let value = if rest.is_empty() {
                words
                    .next()
                    .ok_or_else(|| MkfsError::usage(format!("-{letter}"), "needs an argument"))?
            } else {
                rest.to_string()
            };
            self.options.push(Given {
                letter,
                value: Some(value),
            });
            return Ok(());
        }
        Ok(())
    }

    fn operands(&mut self, operands: Vec<String>) -> Result<(), MkfsError> {
        let mut it = operands.into_iter();
        // `mke2fs -V` alone prints the version: scripts probe it so.
        let device = match it.next() {
            Some(device) => device,
            None if self.count('V') > 0 => return Ok(()),
            None => {
                return Err(MkfsError::usage(
                    "device",
                    "missing (mke2fs [options] device [fs-size])",
                ))
            }
        };
        self.device = PathBuf::from(device);
        self.fs_size = it.next();
        if let Some(extra) = it.next() {
            return Err(MkfsError::usage(
                format!("{extra:?}"),
                "an operand past device and fs-size",
            ));
        }
        Ok(())
    }

    /// How many times `-letter` was given.
    pub fn count(&self, letter: char) -> usize {
        self.options.iter().filter(|g| g.letter == letter).count()
    }

    /// The argument of the last `-letter`.
    pub fn last(&self, letter: char) -> Option<&str> {
        self.all(letter).last()
    }

    /// The arguments of every `-letter`, in order.
    pub fn all(&self, letter: char) -> impl DoubleEndedIterator<Item = &str> {
        self.options
            .iter()
            .filter(move |g| g.letter == letter)
            .filter_map(|g| g.value.as_deref())
    }
}

/// A fs-size operand in bytes: a number with a `k`, `m`, `g` or `t`
/// suffix (powers of 1024) or `s` (512-byte sectors); a plain number is
/// in blocks of `block_size` when `-b` gave one, else in KiB.
pub fn parse_fs_size(s: &str, block_size: Option<u32>) -> Result<u64, MkfsError> {
    let bad = || MkfsError::usage("fs-size", format!("{s:?} is not a size"));
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, suffix) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let unit: u64 = match suffix.to_ascii_lowercase().as_str() {
        "" => block_size.map_or(1024, u64::from),
        "s" => 512,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(bad()),
    };
    n.checked_mul(unit).ok_or_else(bad)
}

/// One `-E` (or `-R`) extended option: its name and value, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extended {
    /// The name (`root_owner`).
    pub name: String,
    /// The value after `=`.
    pub value: Option<String>,
}

/// Splits an `-E` list at commas (empty items are skipped, as mke2fs
/// does).
pub fn parse_extended(list: &str) -> Vec<Extended> {
    list.split(',')
        .filter(|item| !item.is_empty())
        .map(|item| match item.split_once('=') {
            Some((name, value)) => Extended {
                name: name.to_string(),
                value: Some(value.to_string()),
            },
            None => Extended {
                name: item.to_string(),
                value: None,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(letter: char, value: Option<&str>) -> Given {
        Given {
            letter,
            value: value.map(str::to_string),
        }
    }

    #[test]
    fn version_alone_needs_no_device() {
        assert_eq!(Args::parse(["-V"]).unwrap().count('V'), 1);
        let e = Args::parse(["-q"]).unwrap_err().to_string();
        assert!(e.starts_with("device: missing"), "{e}");
    }

    #[test]
    fn clusters_and_attached_or_separate_arguments() {
        let a = Args::parse(["-Fq", "-b4096", "-t", "ext4", "-jLroot", "img", "8M"]).unwrap();
        assert_eq!(
            a.options,
            [
                given('F', None),
                given('q', None),
                given('b', Some("4096")),
                given('t', Some("ext4")),
                given('j', None),
                given('L', Some("root")),
            ]
        );
        assert_eq!(a.device, PathBuf::from("img"));
        assert_eq!(a.fs_size.as_deref(), Some("8M"));
    }

    #[test]
    fn operands_and_options_mix_and_double_dash_ends_options() {
        let a = Args::parse(["img", "-F", "-d", "-", "--", "-odd"]).unwrap();
        assert_eq!(a.options, [given('F', None), given('d', Some("-"))]);
        assert_eq!(a.device, PathBuf::from("img"));
        assert_eq!(a.fs_size.as_deref(), Some("-odd"));
        // An option argument may start with '-' (`-b -2048`, minimum size).
        let b = Args::parse(["-b", "-2048", "img"]).unwrap();
        assert_eq!(b.last('b'), Some("-2048"));
        // A lone '-' is an operand.
        assert_eq!(Args::parse(["-"]).unwrap().device, PathBuf::from("-"));
    }

    #[test]
    fn errors_name_the_option() {
        let cases: [(&[&str], &str); 4] = [
            (&["-x", "img"], "-x: not a mke2fs option"),
            (&["img", "-b"], "-b: needs an argument"),
            (&["-F"], "device: missing"),
            (
                &["a", "1M", "c"],
                "\"c\": an operand past device and fs-size",
            ),
        ];
        for (argv, want) in cases {
            let err = Args::parse(argv.iter().copied()).unwrap_err().to_string();
            assert!(err.contains(want), "{argv:?}: {err:?} should say {want:?}");
        }
    }

    #[test]
    fn fs_sizes_follow_mke2fs_units() {
        assert_eq!(parse_fs_size("8192", None).unwrap(), 8 << 20);
        assert_eq!(parse_fs_size("100", Some(2048)).unwrap(), 204_800);
        assert_eq!(parse_fs_size("2M", Some(4096)).unwrap(), 2 << 20);
        assert_eq!(parse_fs_size("3g", None).unwrap(), 3 << 30);
        assert_eq!(parse_fs_size("1T", None).unwrap(), 1 << 40);
        assert_eq!(parse_fs_size("10s", None).unwrap(), 5120);
        for bad in ["", "M", "1Q", "1.5G", "-1", "99999999999999999999"] {
            assert!(parse_fs_size(bad, None).is_err(), "{bad}");
        }
        assert!(parse_fs_size("99999999999T", None).is_err());
    }

    #[test]
    fn extended_lists_split_at_commas() {
        let e = parse_extended("root_owner=0:0,,nodiscard,offset=4096");
        let names: Vec<_> = e
            .iter()
            .map(|x| (x.name.as_str(), x.value.as_deref()))
            .collect();
        assert_eq!(
            names,
            [
                ("root_owner", Some("0:0")),
                ("nodiscard", None),
                ("offset", Some("4096"))
            ]
        );
    }
}
