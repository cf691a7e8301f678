//! Reading a [`TreeRequest`] into the tree an image holds: the layers in
//! order, then excludes, SELinux labels and the image-wide policies. The
//! build writes that tree; verify compares an image with it.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use std::sync::atomic::AtomicU64;

use anyhow::{Context, Result};
use kiln_ext::{ImageSource, Unkept};
use kiln_fat::FatSource;
use kiln_tree::{
    parse_device_table, parse_file_contexts, Excludes, Metadata, OutputPlace, Policy, Spec,
    TarOptions, Tree, WalkOptions,
};

use crate::{FsKind, Image, Layer, Observer, TreeRequest};

/// Reads the tree of `req`. `output` is where a file output goes, which no
/// directory source may hold.
pub(crate) fn read_tree(
    req: &TreeRequest,
    output: Option<&OutputPlace>,
    observer: &dyn Observer,
) -> Result<Tree> {
    let policy = req.policy();
    let excludes = Excludes::parse(&req.exclude)?;
    let mut tree = read_layers(req, &policy, &excludes, output, observer)?;
    // Directory sources left most excluded entries unread; tar sources,
    // specs and the entries later specs needed are removed here.
    excludes.apply(&mut tree);
    if let Some(path) = &req.file_contexts {
        parse_file_contexts(&read_text(path)?, path)?.apply(&mut tree);
    }
    policy.apply_to_image(&mut tree)?;
    tree.finish();
    Ok(tree)
}

/// Reads the layers in order: each source (with the ownership policies
/// applied) is laid over the tree so far, each spec edits it. A directory
/// source's walk leaves unread what `excludes` removes anyway, except what
/// the specs after it may need.
fn read_layers(
    req: &TreeRequest,
    policy: &Policy,
    excludes: &Excludes,
    output: Option<&OutputPlace>,
    observer: &dyn Observer,
) -> Result<Tree> {
    let progress = observer.progress();
    let mut tar = req.tar_options();
    if let Some(progress) = progress {
        tar = tar.count_entries(progress.entries_counter().clone());
    }
    let specs = parse_specs(&req.layers)?;
    // The specs not applied yet: those after the layer at hand.
    let mut later_specs = specs.as_slice();
    let mut tree: Option<Tree> = None;
    for layer in &req.layers {
        let Layer::Source(path) = layer else {
            // OK: parse_specs gave one spec per layer that is not a source.
            let (spec, rest) = later_specs.split_first().expect("a spec per spec layer");
            spec.apply(tree.get_or_insert_with(empty_tree))?;
            later_specs = rest;
            continue;
        };
        let walk = WalkOptions {
            pruning: excludes.pruning(later_specs, req.whiteouts),
            output,
            live: req.live,
            entries: progress.map(|p| &**p.entries_counter()),
        };
        let mut upper = read_source(path, req, &tar, &walk, observer)?;
        policy.apply_to_source(&mut upper);
        match &mut tree {
            Some(lower) => lower.overlay(&upper, req.whiteouts),
            None => tree = Some(upper),
        }
    }
    tree.context("no source given")
}

/// The spec layers (spec files, spec lines, device tables), parsed in
/// order before any source is read: a directory walk needs to know what
/// the specs after it reach.
fn parse_specs(layers: &[Layer]) -> Result<Vec<Spec>> {
    layers
        .iter()
        .filter_map(|layer| match layer {
            Layer::Source(_) => None,
            Layer::Spec(path) => Some(read_text(path).and_then(|t| Ok(Spec::parse(&t, path)?))),
            Layer::SpecLine(line) => Some(Spec::parse(line, Path::new("-p")).map_err(Into::into)),
            Layer::DeviceTable(path) => {
                Some(read_text(path).and_then(|t| Ok(parse_device_table(&t, path)?)))
            }
        })
        .collect()
}

/// A tree of only a root directory (0755, owned by root, epoch times), for
/// images described by spec files alone.
fn empty_tree() -> Tree {
    Tree::new(Metadata::made(0o755, 0, 0))
}

/// A directory (walked as `walk` says), a filesystem image (or a disk
/// image's partition), or else a tar archive (`-` is stdin), read with
/// `tar`.
fn read_source(
    path: &Path,
    req: &TreeRequest,
    tar: &TarOptions,
    walk: &WalkOptions<'_>,
    observer: &dyn Observer,
) -> Result<Tree> {
    if path.as_os_str() == "-" {
        return Ok(tar.read(path)?);
    }
    if let Some(image) = Image::source(path)? {
        return read_image(&image, req.ignore_checksums, walk.entries, observer);
    }
    if path.is_dir() {
        if let Some(missing) = kiln_host::missing_metadata() {
            observer.warning(&format!(
                "{}: this host does not keep {missing}; set what matters \
                 with a spec (--spec, -p) or --all-root, or build from a tar archive",
                path.display()
            ));
        }
        let (tree, vanished) = kiln_tree::read_dir_tree_with(path, walk)?;
        warn_vanished(&vanished, observer);
        Ok(tree)
    } else {
        Ok(tar.read(path)?)
    }
}

/// The tree of a filesystem image: everything but the root's lost+found,
/// its files' bytes read from the image when the new image is written.
fn read_image(
    image: &Image,
    ignore_checksums: bool,
    entries: Option<&AtomicU64>,
    observer: &dyn Observer,
) -> Result<Tree> {
    let name = || image.name.clone();
    let origin = PathBuf::from(&image.name);
    match image.kind()? {
        FsKind::Ext => {
            let reader = image.reader_checked(ignore_checksums, observer)?;
            let source = ImageSource::new(reader, origin).with_context(name)?;
            let (tree, unkept) = source.read_tree(entries).with_context(name)?;
            warn_unkept(&image.name, &unkept, observer);
            Ok(tree)
        }
        // FAT has no checksums: `ignore_checksums` has nothing to relax.
        FsKind::Fat => {
            let source = FatSource::new(image.fat_reader()?, origin).with_context(name)?;
            Ok(source.read_tree(entries).with_context(name)?)
        }
    }
}

/// Warns of what an image source held that the new image does not keep.
fn warn_unkept(image: &str, unkept: &Unkept, observer: &dyn Observer) {
    if unkept.entries == 0 {
        return;
    }
    let flags: Vec<&str> = unkept.flags.iter().copied().collect();
    let more = if unkept.entries > unkept.paths.len() as u64 {
        ", ..."
    } else {
        ""
    };
    observer.warning(&format!(
        "{image}: {} entries have inode flags the new image does not keep ({}): {}{more}",
        unkept.entries,
        flags.join(", "),
        unkept.paths.join(", ")
    ));
}

/// Warns of the entries that vanished while the tree was read (`live`):
/// the first few, then how many more.
fn warn_vanished(vanished: &[PathBuf], observer: &dyn Observer) {
    let shown = kiln_ext::SourceIssues::SHOWN;
    for path in vanished.iter().take(shown) {
        observer.warning(&format!(
            "{}: vanished while the tree was read; left out",
            path.display()
        ));
    }
    if vanished.len() > shown {
        let more = vanished.len() - shown;
        observer.warning(&format!(
            "and {more} more entries vanished and were left out"
        ));
    }
}

/// Reads a spec, device table or file_contexts file.
fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| path.display().to_string())
}

/// The filesystem's own timestamps: `fixed` (the request's timestamp, fs
/// time or `SOURCE_DATE_EPOCH`) if given, else the newest mtime in the tree, never
/// later than now (e2fsck reports times in the future).
pub(crate) fn fs_timestamp(tree: &Tree, fixed: Option<i64>) -> i64 {
    if let Some(secs) = fixed {
        return secs;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let newest = tree
        .reachable()
        .into_iter()
        .map(|id| tree.node(id).meta.mtime().secs)
        .max()
        .unwrap_or(0);
    newest.clamp(0, now)
}
