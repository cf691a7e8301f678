//! The consistency check of a FAT volume (what `fsck.fat -n` would
//! complain of): every chain of the walk whole and owned by one entry,
//! each file's chain as long as its size needs, no cluster allocated that
//! no entry reaches (lost), FSInfo's free count right, every FAT copy
//! equal to the one read.

use kiln_tree::escape;

use crate::error::ReadError;
use crate::read::{chain, FatReader, WalkEntry};
use crate::table::{get, Link};
use crate::FatVariant;

/// FSInfo's "unknown" count.
const UNKNOWN: u32 = u32::MAX;

/// What the check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// The first problems found (up to the limit asked for), each a
    /// sentence naming the path or structure.
    pub problems: Vec<String>,
    /// How many problems there are in all.
    pub total: usize,
}

impl CheckReport {
    /// Records a problem, kept if under `max`.
    fn add(&mut self, max: usize, what: String) {
        self.total += 1;
        if self.problems.len() < max {
            self.problems.push(what);
        }
    }
}

/// Clusters marked as reached, one bit each.
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: u64) -> Bits {
        // OK to cast: n / 64 words, the FAT holds at least n entries.
        Bits(vec![0; n.div_ceil(64) as usize])
    }

    /// Sets bit `n`; whether it was set already.
    fn set(&mut self, n: u32) -> bool {
        let (w, b) = (n as usize / 64, n % 64);
        let was = self.0[w] >> b & 1 == 1;
        self.0[w] |= 1 << b;
        was
    }

    fn get(&self, n: u32) -> bool {
        self.0[n as usize / 64] >> (n % 64) & 1 == 1
    }
}

impl FatReader {
    /// Checks the volume's structures against `walk` (a walk from the
    /// root), keeping the first `max` problems. Errors are I/O only: what
    /// is corrupt is a problem of the report.
    pub fn check(&self, walk: &[WalkEntry], max: usize) -> Result<CheckReport, ReadError> {
        let mut report = CheckReport::default();
        let vol = self.volume();
        let end = u64::from(vol.clusters) + 2;
        let mut reached = Bits::new(end);
        for w in walk {
            self.check_chain(w, &mut reached, &mut report, max);
        }
        let lost = (2..end as u32)
            .filter(|&n| {
                matches!(
                    get(vol.variant, self.fat(), n),
                    Some(Link::Next(_) | Link::End)
                )
            })
            .filter(|&n| !reached.get(n))
            .count();
        if lost > 0 {
            report.add(
                max,
                format!(
                    "{lost} clusters are allocated in the FAT but in no file or directory (lost)"
                ),
            );
        }
        let usage = self.usage();
        if let Some(fsi) = self.fsinfo().filter(|f| f.free_count != UNKNOWN) {
            if fsi.free_count != usage.free {
                report.add(
                    max,
                    format!(
                        "FSInfo counts {} free clusters, the FAT has {}",
                        fsi.free_count, usage.free
                    ),
                );
            }
        }
        if self.fat().first() != Some(&vol.media) {
            report.add(max, "FAT entry 0 does not hold the media byte".into());
        }
        self.check_copies(&mut report, max)?;
        Ok(report)
    }

    /// Checks the chain of one entry of the walk: whole, owned by it
    /// alone, as long as a file's size needs.
    fn check_chain(&self, w: &WalkEntry, reached: &mut Bits, report: &mut CheckReport, max: usize) {
        let vol = self.volume();
        let e = &w.entry;
        let shown = format!("/{}", escape(&w.path));
        let fixed_root = w.path.is_empty() && vol.variant != FatVariant::Fat32;
        if fixed_root || (!e.is_dir() && e.size == 0 && e.cluster == 0) {
            return;
        }
        let chain = match chain::walk(vol, self.fat(), e.cluster, u64::from(vol.clusters)) {
            Ok(c) => c,
            Err(b) => return report.add(max, format!("{shown}: its chain: {b}")),
        };
        if let Some(c) = chain.clusters().find(|&c| reached.set(c)) {
            report.add(
                max,
                format!("{shown}: cluster {c} is also in another chain (cross-linked)"),
            );
        }
        let cb = u64::from(vol.cluster_bytes());
        let need = u64::from(e.size).div_ceil(cb);
        if !e.is_dir() && chain.len != need {
            report.add(
                max,
                format!(
                    "{shown}: its chain has {} clusters, its size of {} bytes needs {need}",
                    chain.len, e.size
                ),
            );
        }
    }

    /// Compares every mirrored FAT copy with the one read.
    fn check_copies(&self, report: &mut CheckReport, max: usize) -> Result<(), ReadError> {
        let vol = self.volume();
        if vol.active_fat != 0 {
            // Mirroring is off: only the active FAT counts.
            return Ok(());
        }
        let mut copy = vec![0u8; self.fat().len()];
        for i in 1..vol.fat_count {
            let (at, _) = vol.fat_range(i);
            self.read_exact(at, &mut copy, "FAT copy")?;
            if copy != self.fat() {
                report.add(max, format!("FAT copy {i} differs from FAT copy 0"));
            }
        }
        Ok(())
    }
}
