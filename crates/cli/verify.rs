//! `kiln verify IMAGE --against SOURCE...`: the flags as a
//! [`kiln_lib::VerifyRequest`]; differences go to stdout, and the exit
//! status says whether there were any.

use anyhow::Result;
use kiln_lib::VerifyRequest;

use crate::flags::{Layer, VerifyArgs};
use crate::{source_date_epoch, Stderr};

/// The image differs from its sources or is inconsistent: exit status 1,
/// as `cmp` and `diff` say "different"; any other error of `verify` (an
/// image or a source that cannot be read) is status 2.
#[derive(Debug)]
pub(crate) struct Differences(kiln_lib::VerifyReport);

impl std::fmt::Display for Differences {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} differences from the sources, {} inconsistencies",
            self.0.image, self.0.differences, self.0.inconsistencies
        )
    }
}

impl std::error::Error for Differences {}

/// `kiln verify`.
pub(crate) fn verify(args: &VerifyArgs, layers: Vec<Layer>) -> Result<()> {
    let req = VerifyRequest {
        image: args.image.clone(),
        tree: args.tree.request(layers, false, source_date_epoch()?),
        no_atime: args.no_atime,
        max_reports: args.max_reports,
    };
    let report = kiln_lib::verify(&req, &mut std::io::stdout().lock(), &Stderr)?;
    if !report.matches() {
        return Err(Differences(report).into());
    }
    eprintln!(
        "kiln: {} matches its sources: {} entries, {} bytes of content compared; structures consistent",
        report.image, report.entries, report.bytes
    );
    Ok(())
}
