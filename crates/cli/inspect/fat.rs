//! `kiln info`, `ls` and `cat` of a FAT image, read with
//! [`kiln_fat::FatReader`] (which treats the image as hostile).

use std::io::{self, BufWriter, Write};

use anyhow::{bail, Context, Result};
use kiln_fat::{DirEntry, FatReader};
use kiln_lib::{utc, Image};
use kiln_tree::escape;
use serde::Serialize;

use super::{image_path, write_out};
use crate::flags::{CatArgs, LsArgs};

/// What `kiln info` reports of a FAT volume, in text or as JSON.
#[derive(Debug, Serialize)]
pub(super) struct FatInfo {
    fs_type: &'static str,
    variant: String,
    label: String,
    volume_id: Option<String>,
    bytes_per_sector: u32,
    cluster_size: u32,
    sectors: u32,
    clusters: u32,
    used_clusters: u32,
    free_clusters: u32,
    bad_clusters: u32,
    fat_count: u32,
    fat_sectors: u32,
    root_entries: u32,
    fsinfo_free_count: Option<u32>,
}

impl FatInfo {
    /// The report of an open volume.
    pub(super) fn new(r: &FatReader) -> Result<FatInfo> {
        let v = r.volume();
        let usage = r.usage();
        let label = r.label()?.unwrap_or_default();
        Ok(FatInfo {
            fs_type: "vfat",
            variant: v.variant.to_string(),
            label: String::from_utf8_lossy(&label).into_owned(),
            volume_id: v
                .volume_id
                .map(|id| format!("{:04X}-{:04X}", id >> 16, id & 0xFFFF)),
            bytes_per_sector: v.bytes_per_sector,
            cluster_size: v.cluster_bytes(),
            sectors: v.total_sectors,
            clusters: v.clusters,
            used_clusters: usage.used,
            free_clusters: usage.free,
            bad_clusters: usage.bad,
            fat_count: v.fat_count,
            fat_sectors: v.fat_sectors,
            root_entries: v.root_entries,
            fsinfo_free_count: r.fsinfo().map(|f| f.free_count),
        })
    }

    /// The text report: one `Name: value` line per field.
    pub(super) fn text(&self) -> String {
        let or_none = |v: Option<String>| v.unwrap_or_else(|| "none".into());
        let lines = [
            (
                "Filesystem type",
                format!("{} ({})", self.fs_type, self.variant),
            ),
            ("Label", escape(self.label.as_bytes())),
            ("Volume id", or_none(self.volume_id.clone())),
            ("Sector size", self.bytes_per_sector.to_string()),
            ("Cluster size", self.cluster_size.to_string()),
            ("Sector count", self.sectors.to_string()),
            ("Cluster count", self.clusters.to_string()),
            ("Used clusters", self.used_clusters.to_string()),
            ("Free clusters", self.free_clusters.to_string()),
            ("Bad clusters", self.bad_clusters.to_string()),
            ("FATs", self.fat_count.to_string()),
            ("FAT size (sectors)", self.fat_sectors.to_string()),
            ("Root entries", self.root_entries.to_string()),
            (
                "FSInfo free count",
                or_none(self.fsinfo_free_count.map(|n| n.to_string())),
            ),
        ];
        lines
            .iter()
            .map(|(name, value)| format!("{name}: {value}\n"))
            .collect()
    }
}

/// `kiln ls` of a FAT image: `-l` shows attributes (`drhsa`), size,
/// mtime (UTC) and name.
pub(super) fn ls(image: &Image, args: &LsArgs) -> Result<()> {
    let reader = image.fat_reader()?;
    let path = image_path(&image.name, &args.path)?;
    let at = |p: &[u8]| format!("{}: {}", image.name, escape(p));
    let start = reader.lookup(&path).with_context(|| at(&path))?;
    let mut out = BufWriter::new(io::stdout().lock());
    let shown: Vec<(Vec<u8>, DirEntry)> = if !start.is_dir() {
        vec![(path.clone(), start)]
    } else if args.recursive {
        let walk = reader.walk(&start).with_context(|| at(&path))?;
        walk.into_iter()
            .skip(1)
            .map(|w| (w.path, w.entry))
            .collect()
    } else {
        let mut entries = reader.read_dir(&start).with_context(|| at(&path))?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries.into_iter().map(|e| (e.name.clone(), e)).collect()
    };
    for (name, e) in shown {
        let mut line = String::new();
        if args.long {
            line += &format!(
                "{} {:>10} {} ",
                e.attribute_letters(),
                e.size,
                utc(e.mtime.secs)
            );
        }
        line += &escape(&name);
        line.push('\n');
        out.write_all(line.as_bytes())
            .context("writing to standard output")?;
    }
    out.flush().context("writing to standard output")
}

/// `kiln cat` of a FAT image.
pub(super) fn cat(image: &Image, args: &CatArgs) -> Result<()> {
    let reader = image.fat_reader()?;
    let path = image_path(&image.name, &args.path)?;
    let at = || format!("{}: {}", image.name, escape(&path));
    let e = reader.lookup(&path).with_context(at)?;
    if e.is_dir() {
        bail!("{}: not a regular file", at());
    }
    let map = reader.file_map(&e).with_context(at)?;
    write_out(map.size(), |pos, buf| {
        reader.read_file(&map, pos, buf).with_context(at)
    })
}
