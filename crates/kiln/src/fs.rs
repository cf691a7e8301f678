//! One filesystem of either format, from its read tree to its bytes: the
//! part of a build that differs between ext (kiln-ext) and FAT (kiln-fat),
//! behind one face for the plain image and the disk alike.

use anyhow::Result;
use kiln_ext::{FreeSpace, Plan};
use kiln_fat::{FatOptions, FatPlan};
use kiln_sink::Sink;
use kiln_tree::{OutputPlace, Tree};

use crate::build::warn_stored_anyway;
use crate::report::FsReport;
use crate::tree::{fs_timestamp, read_tree};
use crate::{FsKind, FsOptions, FsRequest, Image, Layer, Observer, TreeRequest};

/// Steps of a FAT volume's size under `--size auto`, as kiln-fat's
/// default sizes are.
const FAT_SIZE_STEP: u64 = 1 << 20;

/// A filesystem's tree and settled options, ready to plan.
pub(crate) struct FsInput {
    pub(crate) tree: Tree,
    pub(crate) opts: FsOptions,
    /// The filesystem timestamp (seconds since the epoch): ext's, and a
    /// container's (a VHD's footer).
    pub(crate) timestamp: i64,
}

/// A planned filesystem of either format.
pub(crate) enum FsPlan<'t> {
    // Boxed: an ext plan is four times a FAT plan's size.
    Ext(Box<Plan<'t>>),
    Fat(FatPlan<'t>),
}

/// What a tailored image keeps of the image it tailors, the first layer,
/// when that is an image of the format being built and `fs` does not say
/// otherwise: its label (set in `opts` here) and its UUID (returned, for
/// ext) or volume id (set, for FAT). The tree inside may name them (an
/// fstab's `LABEL=` or `UUID=`, a boot loader's `root=`), so a tailored or
/// converted image stays a drop-in replacement, as a copy would be.
fn kept_identity(tree: &TreeRequest, fs: &FsRequest, opts: &mut FsOptions) -> Option<[u8; 16]> {
    let Some(Layer::Source(first)) = tree.layers.first() else {
        return None;
    };
    let image = Image::source(first).ok()??;
    let keep_label = fs.label.is_empty();
    match (opts, image.kind().ok()?) {
        (FsOptions::Ext(opts), FsKind::Ext) => {
            let reader = image.reader().ok()?;
            let sb = reader.superblock();
            if keep_label {
                opts.label = sb.label_bytes().to_vec();
            }
            Some(sb.uuid)
        }
        (FsOptions::Fat(opts, _), FsKind::Fat) => {
            let reader = image.fat_reader().ok()?;
            let volume = reader.volume();
            opts.volume_id = opts.volume_id.or(volume.volume_id);
            let label = volume.label.as_deref().filter(|l| *l != b"NO NAME");
            if keep_label && opts.label.is_none() {
                opts.label = label.map(|l| String::from_utf8_lossy(l).into_owned());
            }
            None
        }
        _ => None,
    }
}

impl FsInput {
    /// Reads the tree of `tree` and settles what depends on it: for ext
    /// the filesystem timestamp, and the UUID and hash seed derived from
    /// the inputs unless `fs` fixes them; the label and UUID (FAT: volume
    /// id) of an image of the same format that is the first layer, unless
    /// `fs` sets them ([`kept_identity`]). `output` is where a file output
    /// goes, which no directory source may hold.
    pub(crate) fn read(
        tree: &TreeRequest,
        fs: &FsRequest,
        mut opts: FsOptions,
        output: Option<&OutputPlace>,
        observer: &dyn Observer,
    ) -> Result<FsInput> {
        let tree_read = read_tree(tree, output, observer)?;
        let kept = kept_identity(tree, fs, &mut opts);
        let fixed = tree.timestamp.or(tree.fs_time).or(tree.source_date_epoch);
        let timestamp = fs_timestamp(&tree_read, fixed);
        // FAT's own times are the entries', and its volume id is derived
        // when planned.
        if let (FsOptions::Ext(opts), crate::Format::Ext(ext)) = (&mut opts, &fs.format) {
            {
                opts.timestamp = timestamp;
                let (uuid, seed) = kiln_ext::derive_ids(&tree_read, opts);
                opts.uuid = ext.uuid.or(kept).unwrap_or(uuid);
                opts.hash_seed = ext.seed.unwrap_or(seed);
                if tree_read.has_dos_attributes() {
                    observer.note(
                        "DOS attributes are FAT's (attr lines, a FAT source's hidden and \
                         system bits); an ext image has no place for them, ignored",
                    );
                }
            }
        }
        Ok(FsInput {
            tree: tree_read,
            opts,
            timestamp,
        })
    }

    /// Plans the filesystem with `size` bytes (None: sized as the options
    /// say); `first_sector` is where it starts on its disk, which FAT
    /// records.
    pub(crate) fn plan(&self, size: Option<u64>, first_sector: u64) -> Result<FsPlan<'_>> {
        Ok(match &self.opts {
            FsOptions::Ext(opts) => {
                let mut opts = opts.clone();
                opts.size = size.or(opts.size);
                FsPlan::Ext(Box::new(kiln_ext::plan(&self.tree, &opts)?))
            }
            FsOptions::Fat(opts, free) => {
                let mut opts = opts.clone();
                opts.hidden_sectors = u32::try_from(first_sector).unwrap_or(u32::MAX);
                opts.size = match size.or(opts.size) {
                    Some(size) => Some(size),
                    None => self.fat_auto_size(&opts, *free)?,
                };
                FsPlan::Fat(kiln_fat::plan(&self.tree, &opts)?)
            }
        })
    }

    /// The smallest size that holds the tree with `free` bytes to spare
    /// (a disk's `size = "auto"` partition).
    pub(crate) fn smallest(&self, free: u64) -> Result<u64> {
        Ok(match &self.opts {
            FsOptions::Ext(opts) => {
                let mut opts = opts.clone();
                opts.auto = kiln_ext::AutoSize::Exact {
                    free: FreeSpace::Bytes(free),
                    free_inodes: None,
                };
                kiln_ext::plan(&self.tree, &opts)?.image_size
            }
            FsOptions::Fat(opts, _) => {
                let opts = FatOptions {
                    size: None,
                    ..opts.clone()
                };
                self.fat_auto_size(&opts, Some(FreeSpace::Bytes(free)))?
                    .map_or(0, |n| n)
            }
        })
    }

    /// FAT's size under `--size auto`: kiln-fat's default (the tree and a
    /// tenth to spare, in whole MiB) plus `free`; None without `free`
    /// (kiln-fat's default as it is).
    fn fat_auto_size(&self, opts: &FatOptions, free: Option<FreeSpace>) -> Result<Option<u64>> {
        let Some(free) = free else {
            return Ok(None);
        };
        let base = kiln_fat::plan(&self.tree, opts)?.size();
        let extra = match free {
            FreeSpace::Bytes(n) => n,
            FreeSpace::Percent(p) => (base as f64 * p / 100.0) as u64,
        };
        Ok(Some((base + extra).next_multiple_of(FAT_SIZE_STEP)))
    }

    /// Bytes that tell this filesystem's tree apart, for the GUIDs a disk
    /// derives: the ext UUID (itself a digest of the tree), or the FAT
    /// volume id planned at the default size.
    pub(crate) fn identity(&self) -> Result<Vec<u8>> {
        Ok(match &self.opts {
            FsOptions::Ext(opts) => opts.uuid.to_vec(),
            FsOptions::Fat(opts, _) => {
                let opts = FatOptions {
                    size: None,
                    ..opts.clone()
                };
                kiln_fat::plan(&self.tree, &opts)?
                    .volume_id()
                    .to_le_bytes()
                    .to_vec()
            }
        })
    }
}

impl FsPlan<'_> {
    /// The filesystem's size in bytes.
    pub(crate) fn size(&self) -> u64 {
        match self {
            FsPlan::Ext(plan) => plan.image_size,
            FsPlan::Fat(plan) => plan.size(),
        }
    }

    /// What the planner chose that the user should know.
    pub(crate) fn notes(&self) -> &[String] {
        match self {
            FsPlan::Ext(plan) => &plan.notes,
            FsPlan::Fat(_) => &[],
        }
    }

    /// What a progress display counts the writing against: the bytes the
    /// filesystem uses, not its size, which for a sparse image is mostly
    /// holes that are never written (an upper bound: zero blocks of files,
    /// an ext journal's body and the unused tail of its inode tables count
    /// but are not written).
    pub(crate) fn bytes_to_write(&self) -> u64 {
        let report = self.report();
        report.blocks_used * u64::from(report.block_size)
    }

    /// Writes the filesystem into `sink`, passing on to `observer` what a
    /// live build stored as it could, and what FAT dropped.
    pub(crate) fn emit(&self, sink: &dyn Sink, observer: &dyn Observer) -> Result<()> {
        match self {
            FsPlan::Ext(plan) => warn_stored_anyway(&kiln_ext::emit(plan, sink)?, observer),
            FsPlan::Fat(plan) => {
                for note in kiln_fat::emit(plan, sink)?.notes() {
                    observer.note(&note);
                }
            }
        }
        Ok(())
    }

    /// Its numbers, for the build's report.
    pub(crate) fn report(&self) -> FsReport {
        match self {
            FsPlan::Ext(plan) => FsReport::of(plan),
            FsPlan::Fat(plan) => FsReport::of_fat(plan),
        }
    }
}
