//! Test-defining and assertion macros.

/// Defines a module `$name` holding one test per flavour kiln must build:
/// `ext2_1k`, `ext2_4k`, `ext3_1k`, `ext3_4k`. Each runs the body with its own
/// [`Case`](crate::helpers::Case) (filesystem type, block size, temporary
/// directory). The body may `return` early after a [`skip`](crate::helpers::skip).
macro_rules! kiln_test {
    ($(#[$meta:meta])* $name:ident, |$case:ident| $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body($case: crate::helpers::Case) $body

            #[test]
            fn ext2_1k() {
                body(crate::helpers::Case::new("ext2", 1024))
            }

            #[test]
            fn ext2_4k() {
                body(crate::helpers::Case::new("ext2", 4096))
            }

            #[test]
            fn ext3_1k() {
                body(crate::helpers::Case::new("ext3", 1024))
            }

            #[test]
            fn ext3_4k() {
                body(crate::helpers::Case::new("ext3", 4096))
            }
        }
    };
}

/// `assert_eq!` for text, printing both sides in full one after the other
/// (easier to read than `Debug` output on one line when they are long).
macro_rules! eqnice {
    ($expected:expr, $got:expr) => {
        eqnice!($expected, $got, "values differ")
    };
    ($expected:expr, $got:expr, $($context:tt)+) => {
        // A match keeps temporaries in the operands alive (as in assert_eq!).
        match (&$expected, &$got) {
            (expected, got) => {
                let (expected, got): (&str, &str) = (expected.as_ref(), got.as_ref());
                if expected != got {
                    panic!(
                        "{}\n==== expected ====\n{}\n==== got ====\n{}\n==================\n",
                        format_args!($($context)+),
                        expected,
                        got
                    );
                }
            }
        }
    };
}
