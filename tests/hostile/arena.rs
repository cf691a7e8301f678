//! The case's directory: the source tree, the image built from it, and
//! the arena where `extract` writes, with canaries beside DEST and a
//! snapshot of everything outside DEST.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::edit::{Editor, Sums};
use crate::helpers::*;
use crate::sys::{Kind as FileKind, Ts};

/// A case: a temporary directory with the source tree, the image built
/// from it, and the arena where `extract` writes.
///
/// The arena holds canaries beside DEST: `arena/box/dest` is DEST,
/// `arena/box/outside` is where a relative symlink `../outside` in DEST
/// leads, `arena/canary` where an absolute one can. Names such as
/// `../../x` or `../y` land in the arena too. Everything the user nobody
/// runs may write is in the arena, which it owns.
pub struct Hostile {
    pub(super) case: Case,
    pub src: PathBuf,
    pub image: PathBuf,
    /// The GPT partition number, for `IMAGE:PART` arguments.
    pub(super) part: Option<(u32, u64)>,
}

impl Hostile {
    /// An empty source tree for an image of `fs_type` with `block_size`.
    pub fn new(fs_type: &'static str, block_size: u32) -> Hostile {
        let case = Case::new(fs_type, block_size);
        let src = case.mkdir("src");
        for dir in ["arena/box/outside", "arena/canary"] {
            let canary = case.mkdir(dir);
            write_file(&canary.join("keep"), b"a canary\n");
        }
        let image = case.path("image.img");
        Hostile {
            case,
            src,
            image,
            part: None,
        }
    }

    /// The absolute canary directory (a target for absolute symlinks).
    pub fn canary(&self) -> PathBuf {
        self.case.path("arena/canary")
    }

    /// The case's directory.
    pub fn dir(&self) -> &Path {
        self.case.dir()
    }

    /// Where `extract` restores the image.
    pub fn dest(&self) -> PathBuf {
        self.case.path("arena/box/dest")
    }

    /// Builds the image from the source tree (kiln verify must find it
    /// equal and consistent before any edit).
    pub fn build(&self, extra: &[&str]) {
        self.case.build(&[&self.src], &self.image, extra);
    }

    /// Builds a GPT disk whose partition 2 is an ext4 filesystem of the
    /// source tree; the image arguments become `IMAGE:2`.
    pub fn build_disk(&mut self) {
        let config = self.case.path("disk.toml");
        let text = format!(
            "[[partition]]\nlabel = \"esp\"\ntype = \"esp\"\nsize = \"1M\"\n\n\
             [[partition]]\nlabel = \"root\"\ntype = \"linux-generic\"\n\
             [partition.filesystem]\ntype = \"{}\"\nsources = [{:?}]\n",
            self.case.fs_type,
            self.src.to_str().expect("a UTF-8 temporary path")
        );
        write_file(&config, text.as_bytes());
        let out = kiln([
            OsString::from("build"),
            "--config".into(),
            config.into(),
            "-o".into(),
            self.image.clone().into(),
        ]);
        assert_success(&out, "kiln build --config");
        self.part = Some((2, partition_offset(&self.image, 2)));
    }

    /// The `IMAGE[:PART]` argument.
    pub(super) fn image_arg(&self) -> OsString {
        let mut arg = self.image.clone().into_os_string();
        if let Some((number, _)) = self.part {
            arg.push(format!(":{number}"));
        }
        arg
    }

    /// Opens the image (its filesystem) for editing.
    pub fn editor(&self, sums: Sums) -> Editor {
        Editor::open_at(&self.image, self.part.map_or(0, |(_, at)| at), sums)
    }
}

/// The byte offset of partition `number` of a disk image, from `kiln info --json`.
fn partition_offset(image: &Path, number: u32) -> u64 {
    let out = kiln([OsString::from("info"), "--json".into(), image.into()]);
    assert_success(&out, "kiln info --json of a disk");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    report["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .find(|p| p["number"] == number)
        .and_then(|p| p["offset"].as_u64())
        .expect("the partition's offset")
}

/// Bytes of disk allocated under `path` (0 if it does not exist).
pub(super) fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = path.symlink_metadata() else {
        return 0;
    };
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        if let Ok(entries) = std::fs::read_dir(path) {
            total += entries
                .map(|e| disk_usage(&e.expect("dir entry").path()))
                .sum::<u64>();
        }
    }
    total
}

/// Removes DEST (whoever made it) before the next extract.
pub(super) fn remove_dest(dest: &Path) {
    if dest.symlink_metadata().is_ok() {
        make_writable(dest);
        std::fs::remove_dir_all(dest)
            .or_else(|_| std::fs::remove_file(dest))
            .unwrap_or_else(|e| panic!("remove {}: {e}", dest.display()));
    }
}

/// Gives the owner write and search permission on every directory under
/// `path` (an extract may restore read-only directories; as nobody even
/// root's removal is fine, but a restored 0000 directory is not listable
/// for the walk of `snapshot`).
fn make_writable(path: &Path) {
    let Ok(meta) = path.symlink_metadata() else {
        return;
    };
    if meta.is_dir() {
        crate::sys::chmod(path, 0o700);
        if let Ok(entries) = std::fs::read_dir(path) {
            for e in entries.flatten() {
                make_writable(&e.path());
            }
        }
    }
}

/// Makes the case usable by user nobody: its directory searchable, the
/// image and sources readable, the arena its own. `false` after a skip
/// when nobody cannot run kiln here.
pub(super) fn prepare_for_nobody(h: &Hostile) -> bool {
    if !require_root() || kiln_for_nobody().is_none() {
        return false;
    }
    crate::sys::chmod(h.case.dir(), 0o755);
    crate::sys::chmod(&h.image, 0o644);
    for dir in ["arena", "arena/box", "arena/box/outside", "arena/canary"] {
        crate::sys::lchown(&h.case.path(dir), 65534, 65534);
    }
    true
}

/// What a snapshot keeps of an entry: its type, size and mtime.
type Stamp = (FileKind, u64, Option<Ts>);

/// Every entry under `root` but `dest` (and the mtime of `dest`'s parent,
/// which creating and removing DEST moves), by path. Directories are read
/// with `O_NOATIME`: the snapshot must not move the source's access times,
/// which verify compares.
pub(super) fn snapshot(root: &Path, dest: &Path) -> BTreeMap<PathBuf, Stamp> {
    let mut out = BTreeMap::new();
    walk(root, dest, &mut out);
    out
}

fn walk(dir: &Path, dest: &Path, out: &mut BTreeMap<PathBuf, Stamp>) {
    let Ok(fd) = crate::sys::open_dir(dir) else {
        return;
    };
    for name in crate::sys::read_dir_names(fd.as_fd()).unwrap_or_default() {
        let path = dir.join(OsStr::from_bytes(&name));
        let Ok(m) = crate::sys::stat_at(fd.as_fd(), &name) else {
            continue;
        };
        if path == dest {
            continue;
        }
        let mtime = (Some(path.as_path()) != dest.parent()).then_some(m.mtime);
        out.insert(path.clone(), (m.kind, m.size, mtime));
        if m.kind == FileKind::Dir {
            walk(&path, dest, out);
        }
    }
}

/// The differences between two snapshots, one line each.
pub(super) fn changes(
    before: &BTreeMap<PathBuf, Stamp>,
    after: &BTreeMap<PathBuf, Stamp>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (path, stamp) in after {
        match before.get(path) {
            None => out.push(format!("wrote outside DEST: created {}", path.display())),
            Some(old) if old != stamp => {
                out.push(format!("wrote outside DEST: changed {}", path.display()))
            }
            Some(_) => {}
        }
    }
    for path in before.keys().filter(|p| !after.contains_key(*p)) {
        out.push(format!("wrote outside DEST: removed {}", path.display()));
    }
    out
}
