//! Globs over image paths, matched on raw bytes: `*`, `?`, `[...]` within a
//! name, `**` across names.

use std::fmt;

use super::show;

/// A parsed glob: one part per path component.
#[derive(Clone, Debug)]
pub(crate) struct Glob {
    /// As written, for messages.
    text: Vec<u8>,
    parts: Vec<Part>,
}

/// One component of a glob.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    /// `**`: any number of components, none included.
    AnyDepth,
    /// A pattern for exactly one name.
    Name(Vec<Atom>),
}

/// One element of a name pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Atom {
    /// A byte as it is.
    Byte(u8),
    /// `?`: any one byte.
    AnyByte,
    /// `*`: any run of bytes, the empty run included.
    AnyRun,
    /// `[...]`: one byte in (or, negated, not in) the inclusive ranges.
    Class {
        negated: bool,
        ranges: Vec<(u8, u8)>,
    },
}

impl Atom {
    /// Whether this single-byte atom matches `b`.
    fn matches(&self, b: u8) -> bool {
        match self {
            Atom::Byte(x) => *x == b,
            Atom::AnyByte => true,
            Atom::AnyRun => false,
            Atom::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&b)) != *negated
            }
        }
    }
}

impl Glob {
    /// Parses an absolute glob such as `/usr/lib/**/*.so.[0-9]`.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Glob, String> {
        if bytes.first() != Some(&b'/') {
            return Err(format!("`{}`: image paths start with `/`", show(bytes)));
        }
        let mut parts = Vec::new();
        for part in bytes.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
            let part = match part {
                b"." | b".." => {
                    return Err(format!(
                        "`{}`: `.` and `..` are not allowed in image paths",
                        show(bytes)
                    ))
                }
                b"**" => Part::AnyDepth,
                _ if part.windows(2).any(|w| w == b"**") => {
                    return Err(format!(
                        "`{}`: `**` must be a whole path component",
                        show(bytes)
                    ))
                }
                _ => Part::Name(atoms(part).map_err(|e| format!("`{}`: {e}", show(bytes)))?),
            };
            // `**/**` matches what `**` does; one keeps matching linear.
            if !(part == Part::AnyDepth && parts.last() == Some(&Part::AnyDepth)) {
                parts.push(part);
            }
        }
        Ok(Glob {
            text: bytes.to_vec(),
            parts,
        })
    }

    /// The leading components without wildcards: where matches can be.
    pub(super) fn literal_prefix(&self) -> Vec<Vec<u8>> {
        self.parts
            .iter()
            .map_while(|part| match part {
                Part::Name(atoms) => atoms
                    .iter()
                    .map(|a| match a {
                        Atom::Byte(b) => Some(*b),
                        _ => None,
                    })
                    .collect(),
                Part::AnyDepth => None,
            })
            .collect()
    }

    /// How many components a matching path has at most (`None` with `**`).
    pub(super) fn max_depth(&self) -> Option<usize> {
        (!self.parts.contains(&Part::AnyDepth)).then_some(self.parts.len())
    }

    /// Whether the path with these components matches.
    pub(crate) fn matches<C: AsRef<[u8]>>(&self, components: &[C]) -> bool {
        wildcard(
            &self.parts,
            components,
            |p| *p == Part::AnyDepth,
            |p, name| match p {
                Part::Name(atoms) => name_matches(atoms, name.as_ref()),
                Part::AnyDepth => false,
            },
        )
    }
}

impl Glob {
    /// Whether the path with these components, or a path below it, may
    /// match: what a walk that leaves a subtree unread must ask first, so
    /// that the glob still finds what it would find in the whole tree.
    /// Runs the pattern as an automaton over the components: a position
    /// still live after them means a longer path can go on to match.
    pub(crate) fn may_match_within<C: AsRef<[u8]>>(&self, components: &[C]) -> bool {
        let mut live = vec![false; self.parts.len() + 1];
        live[0] = true;
        self.enter_any_depth(&mut live);
        for name in components {
            let mut next = vec![false; live.len()];
            for (p, part) in self.parts.iter().enumerate().filter(|&(p, _)| live[p]) {
                match part {
                    Part::AnyDepth => next[p] = true,
                    Part::Name(atoms) if name_matches(atoms, name.as_ref()) => next[p + 1] = true,
                    Part::Name(_) => {}
                }
            }
            self.enter_any_depth(&mut next);
            if !next.contains(&true) {
                return false;
            }
            live = next;
        }
        true
    }

    /// Makes live the position after each live `**` (it may match no
    /// component); one pass in order suffices, as `**/**` is parsed as one.
    fn enter_any_depth(&self, live: &mut [bool]) {
        for (p, part) in self.parts.iter().enumerate() {
            if live[p] && *part == Part::AnyDepth {
                live[p + 1] = true;
            }
        }
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&show(&self.text))
    }
}

fn name_matches(atoms: &[Atom], name: &[u8]) -> bool {
    wildcard(atoms, name, |a| *a == Atom::AnyRun, |a, &b| a.matches(b))
}

/// Matches `items` against `pattern`, whose elements either match one item
/// or (`is_run`) any run of items. Greedy with a return to the last run:
/// linear in practice, and never exponential.
fn wildcard<P, T>(
    pattern: &[P],
    items: &[T],
    is_run: impl Fn(&P) -> bool,
    one: impl Fn(&P, &T) -> bool,
) -> bool {
    let (mut p, mut i) = (0, 0);
    // The last run seen and the item it would swallow next.
    let mut retry: Option<(usize, usize)> = None;
    while i < items.len() {
        match pattern.get(p) {
            Some(x) if is_run(x) => {
                retry = Some((p, i));
                p += 1;
                continue;
            }
            Some(x) if one(x, &items[i]) => {
                p += 1;
                i += 1;
                continue;
            }
            _ => {}
        }
        match retry {
            Some((rp, ri)) => {
                retry = Some((rp, ri + 1));
                p = rp + 1;
                i = ri + 1;
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(is_run)
}

/// Parses the pattern of one name.
fn atoms(part: &[u8]) -> Result<Vec<Atom>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < part.len() {
        let atom = match part[i] {
            b'*' => Atom::AnyRun,
            b'?' => Atom::AnyByte,
            b'[' => {
                let (class, end) = class(part, i)?;
                i = end;
                class
            }
            b => Atom::Byte(b),
        };
        out.push(atom);
        i += 1;
    }
    Ok(out)
}

/// Parses the class that opens at `part[start]`; returns it and the index of
/// its closing `]`. A `]` first in the class, and a `-` first or last, are
/// taken as they are.
fn class(part: &[u8], start: usize) -> Result<(Atom, usize), String> {
    let mut i = start + 1;
    let negated = matches!(part.get(i), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let first = i;
    let mut ranges = Vec::new();
    loop {
        let lo = *part.get(i).ok_or("`[` is not closed by `]`")?;
        if lo == b']' && i > first {
            return Ok((Atom::Class { negated, ranges }, i));
        }
        match (part.get(i + 1), part.get(i + 2)) {
            (Some(b'-'), Some(&hi)) if hi != b']' => {
                if hi < lo {
                    return Err(format!(
                        "the range `{}-{}` is backwards",
                        show(&[lo]),
                        show(&[hi])
                    ));
                }
                ranges.push((lo, hi));
                i += 3;
            }
            _ => {
                ranges.push((lo, lo));
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(glob: &str, path: &str) -> bool {
        let parts: Vec<&[u8]> = path
            .split('/')
            .filter(|p| !p.is_empty())
            .map(str::as_bytes)
            .collect();
        Glob::parse(glob.as_bytes()).unwrap().matches(&parts)
    }

    #[test]
    fn stars_and_questions_stay_within_a_name() {
        assert!(m("/etc/*.conf", "/etc/a.conf"));
        assert!(m("/etc/*.conf", "/etc/.conf"));
        assert!(!m("/etc/*.conf", "/etc/sub/a.conf"));
        assert!(!m("/etc/*", "/etc"));
        assert!(m("/a?c", "/abc"));
        assert!(!m("/a?c", "/ac"));
        assert!(m("/*a*b*", "/xxaxxbxx"));
        assert!(!m("/*a*b", "/xxaxxbxxc"));
        assert!(m("/", "/"));
        assert!(!m("/", "/a"));
    }

    #[test]
    fn double_stars_cross_names() {
        assert!(m("/srv/**", "/srv"));
        assert!(m("/srv/**", "/srv/a/b/c"));
        assert!(!m("/srv/**", "/srvx"));
        assert!(m("/**", "/"));
        assert!(m("/**/*.so", "/usr/lib/x.so"));
        assert!(m("/**/*.so", "/x.so"));
        assert!(m("/usr/**/bin/*", "/usr/bin/ls"));
        assert!(m("/usr/**/bin/*", "/usr/local/sub/bin/ls"));
        assert!(!m("/usr/**/bin/*", "/usr/local/bin"));
        assert!(m("/a/**/**/b", "/a/b"));
    }

    #[test]
    fn classes() {
        assert!(m("/tty[0-9]", "/tty7"));
        assert!(!m("/tty[0-9]", "/ttyS"));
        assert!(m("/tty[!0-9]", "/ttyS"));
        assert!(m("/tty[^0-9]", "/ttyS"));
        assert!(m("/x[]]", "/x]"));
        assert!(m("/x[a-]", "/x-"));
        assert!(m("/x[*]", "/x*"));
        assert!(!m("/x[*]", "/xy"));
        assert!(m("/x[ab-dZ]", "/xc"));
    }

    #[test]
    fn matches_raw_bytes() {
        let glob = Glob::parse(b"/d/\xff*").unwrap();
        assert!(glob.matches(&[&b"d"[..], b"\xff\xfe"]));
        assert!(!glob.matches(&[&b"d"[..], b"\xfe"]));
        let class = Glob::parse(b"/[\x80-\xff]").unwrap();
        assert!(class.matches(&[b"\x90"]));
    }

    #[test]
    fn prefix_and_depth_bound_the_walk() {
        let g = Glob::parse(b"/usr//lib/*/x").unwrap();
        assert_eq!(g.literal_prefix(), [b"usr".to_vec(), b"lib".to_vec()]);
        assert_eq!(g.max_depth(), Some(4));
        let g = Glob::parse(b"/usr/**").unwrap();
        assert_eq!(g.literal_prefix(), [b"usr".to_vec()]);
        assert_eq!(g.max_depth(), None);
    }

    fn within(glob: &str, path: &str) -> bool {
        let parts: Vec<&[u8]> = path
            .split('/')
            .filter(|p| !p.is_empty())
            .map(str::as_bytes)
            .collect();
        Glob::parse(glob.as_bytes())
            .unwrap()
            .may_match_within(&parts)
    }

    #[test]
    fn may_match_within_a_subtree() {
        assert!(within("/usr/lib/*.so", "/usr"));
        assert!(within("/usr/lib/*.so", "/usr/lib"));
        assert!(within("/usr/lib/*.so", "/usr/lib/a.so"));
        assert!(!within("/usr/lib/*.so", "/usr/lib/a.so/x"));
        assert!(!within("/usr/lib/*.so", "/usr/bin"));
        assert!(!within("/usr/lib/*.so", "/tmp"));
        assert!(within("/**", "/tmp/a/b"));
        assert!(within("/**/x", "/tmp/a/b"));
        assert!(within("/*/x", "/tmp"));
        assert!(!within("/*/x", "/tmp/y"));
        assert!(within("/home/**/.ssh", "/home/a/b"));
        assert!(!within("/home/**/.ssh", "/tmp"));
        assert!(within("/", "/"));
        assert!(!within("/", "/a"));
    }

    #[test]
    fn refuses_bad_globs() {
        for bad in [
            "usr/*", "/a/../b", "/./a", "/a**", "/[a", "/[]", "/[z-a]", "/[!",
        ] {
            assert!(Glob::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
