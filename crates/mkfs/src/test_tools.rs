//! The skip-or-fail rule of tests that need a tool: skip with a message
//! outside CI, fail under `CI=true`.

/// Reports that `what` is missing: panics under CI, else prints a skip.
pub(crate) fn missing(what: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is missing, and CI=true: install e2fsprogs");
    }
    eprintln!("skipped: {what} is missing");
}
