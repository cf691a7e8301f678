//! A FAT image as a build source ([`FatSource`]): the tree read back from
//! an image kiln wrote holds what was written (names, bytes, the mode and
//! times FAT keeps, DOS attributes), survives another round unchanged,
//! and its files are refused once the image changes; a broken chain is an
//! error of the read, never a panic.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use common::*;
use kiln_fat::{FatOptions, FatReader, FatSource, FatVariant};
use kiln_tree::{Body, DataError, DosAttributes, Timestamp, Tree};

/// What a test compares of one entry: its bytes (`None` for a
/// directory), mode, owner, times and DOS attributes.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    bytes: Option<Vec<u8>>,
    perm: u16,
    owner: (u32, u32),
    mtime: Timestamp,
    atime: Timestamp,
    crtime: Option<Timestamp>,
    dos: Option<DosAttributes>,
}

/// Every entry of `tree` below the root by path, files read through their
/// sources.
fn listing(tree: &Tree) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(Tree::ROOT, String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for (name, id) in tree.node(dir).entries() {
            let path = format!("{prefix}/{}", String::from_utf8(name.to_vec()).unwrap());
            let node = tree.node(id);
            let bytes = match &node.body {
                Body::Dir(_) => {
                    stack.push((id, path.clone()));
                    None
                }
                Body::File(f) => {
                    let mut buf = vec![0u8; f.size as usize];
                    let reader = f.source.open().unwrap();
                    reader.read_exact_at(&mut buf, 0).unwrap();
                    Some(buf)
                }
                other => panic!("{path}: a {other:?} in a FAT tree"),
            };
            let meta = &node.meta;
            let entry = Entry {
                bytes,
                perm: meta.perm,
                owner: (meta.uid, meta.gid),
                mtime: meta.mtime(),
                atime: meta.atime(),
                crtime: meta.crtime(),
                dos: tree.dos_attributes(id),
            };
            out.insert(path, entry);
        }
    }
    out
}

/// Writes `tree` as a FAT16 image at `image`.
fn write(tree: &Tree, image: &Path) {
    let opts = FatOptions {
        variant: Some(FatVariant::Fat16),
        size: Some(16 << 20),
        ..FatOptions::default()
    };
    let plan = kiln_fat::plan(tree, &opts).unwrap_or_else(|e| panic!("plan: {e}"));
    let sink = kiln_sink::SparseFile::create(image, plan.size(), true).unwrap();
    kiln_fat::emit(&plan, &sink).unwrap_or_else(|e| panic!("emit: {e}"));
    sink.commit(kiln_sink::Durability::Writeback).unwrap();
}

/// The tree of the FAT image at `image`, read as a source.
fn read(image: &Path) -> Tree {
    let source = FatSource::new(FatReader::open(image).unwrap(), image.into()).unwrap();
    source.read_tree(None).unwrap()
}

/// A source tree: long and short names, nested directories, a file of
/// many clusters, an empty file, an empty directory, a read-only file.
fn source(dir: &Path) {
    for name in [
        "README.TXT",
        "lower.txt",
        "Mixed Case Name.md",
        "ünïcødé.txt",
    ] {
        put(&dir.join(name), name.as_bytes());
    }
    put(&dir.join("EFI/BOOT/BOOTX64.EFI"), &bytes(300_000, 7));
    put(&dir.join("EFI/BOOT/empty"), b"");
    put(&dir.join("a/b/c/deep file.txt"), b"deep");
    put(&dir.join("locked.cfg"), b"do not touch");
    let mut perms = fs::metadata(dir.join("locked.cfg")).unwrap().permissions();
    perms.set_readonly(true);
    fs::set_permissions(dir.join("locked.cfg"), perms).unwrap();
    fs::create_dir_all(dir.join("empty dir")).unwrap();
    settle(dir);
}

#[test]
fn the_tree_read_back_is_the_tree_written() {
    let src = tempfile::tempdir().unwrap();
    source(src.path());
    let written = tree_of(src.path());
    let work = tempfile::tempdir().unwrap();
    let image = work.path().join("fat.img");
    write(&written, &image);
    let read_back = listing(&read(&image));

    // Every name and byte, the mode FAT implies, the modification time as
    // FAT stores it, owner 0:0.
    let want = listing(&written);
    assert_eq!(
        read_back.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (path, w) in &want {
        let got = &read_back[path];
        assert_eq!(got.bytes, w.bytes, "{path}");
        let perm = match (&w.bytes, w.perm & 0o200 == 0) {
            (None, _) => 0o755,
            (Some(_), true) => 0o444,
            (Some(_), false) => 0o644,
        };
        assert_eq!(got.perm, perm, "{path}");
        assert_eq!(got.owner, (0, 0), "{path}");
        assert_eq!(got.mtime, kiln_fat::stored_mtime(w.mtime), "{path}");
        assert!(
            got.crtime.is_some(),
            "{path}: the writer records a creation time"
        );
        assert_eq!(got.dos, None, "{path}");
    }
    assert_eq!(read_back["/locked.cfg"].perm, 0o444);

    // What FAT holds survives another round whole: times, modes and all.
    let again = work.path().join("again.img");
    write(&read(&image), &again);
    assert_eq!(listing(&read(&again)), read_back);
}

#[test]
fn dos_attributes_are_kept_and_read_only_is_a_mode() {
    let src = tempfile::tempdir().unwrap();
    source(src.path());
    let mut tree = tree_of(src.path());
    let at = |tree: &Tree, name: &[u8]| tree.lookup(Tree::ROOT, name).unwrap();
    let hidden = DosAttributes {
        hidden: true,
        system: true,
        ..DosAttributes::default()
    };
    let read_only = DosAttributes {
        read_only: true,
        ..DosAttributes::default()
    };
    tree.set_dos_attributes(at(&tree, b"README.TXT"), hidden);
    tree.set_dos_attributes(at(&tree, b"lower.txt"), read_only);
    tree.set_dos_attributes(at(&tree, b"EFI"), read_only);
    let work = tempfile::tempdir().unwrap();
    let image = work.path().join("fat.img");
    write(&tree, &image);

    let back = read(&image);
    let entry = |name: &[u8]| {
        let id = at(&back, name);
        (back.node(id).meta.perm, back.dos_attributes(id))
    };
    assert_eq!(entry(b"README.TXT"), (0o644, Some(hidden)));
    // A read-only file is one nobody may write; a directory has no such
    // mode, so its bit stays an attribute.
    assert_eq!(entry(b"lower.txt"), (0o444, None));
    assert_eq!(entry(b"locked.cfg"), (0o444, None));
    assert_eq!(entry(b"EFI"), (0o755, Some(read_only)));
}

#[test]
fn files_of_a_changed_image_are_refused() {
    let src = tempfile::tempdir().unwrap();
    source(src.path());
    let work = tempfile::tempdir().unwrap();
    let image = work.path().join("fat.img");
    write(&tree_of(src.path()), &image);
    let tree = read(&image);
    let id = tree.lookup(Tree::ROOT, b"lower.txt").unwrap();
    let Body::File(f) = &tree.node(id).body else {
        panic!("not a file");
    };
    assert!(f.source.open().is_ok());
    assert_eq!(f.source.origin(), image);

    // Rewritten in place, with a later mtime: the tree may no longer be
    // the image's.
    let later =
        fs::metadata(&image).unwrap().modified().unwrap() + std::time::Duration::from_secs(5);
    fs::File::options()
        .write(true)
        .open(&image)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let e = f.source.open().unwrap_err();
    assert!(matches!(e, DataError::Changed(_)), "{e}");
    assert!(
        e.to_string()
            .contains("the source image was modified after it was read"),
        "{e}"
    );
}

#[test]
fn a_broken_chain_is_an_error_naming_the_file() {
    let src = tempfile::tempdir().unwrap();
    source(src.path());
    let work = tempfile::tempdir().unwrap();
    let image = work.path().join("fat.img");
    write(&tree_of(src.path()), &image);
    let r = FatReader::open(&image).unwrap();
    let big = r.lookup(b"/EFI/BOOT/BOOTX64.EFI").unwrap();
    // Its second cluster links back to its first: a loop.
    let second = big.cluster + 1;
    set_fat(&image, &r, second, big.cluster as u16);
    let source = FatSource::new(FatReader::open(&image).unwrap(), image.clone()).unwrap();
    let e = source.read_tree(None).unwrap_err().to_string();
    assert!(e.contains("file /EFI/BOOT/BOOTX64.EFI"), "{e}");
    assert!(e.contains("loops"), "{e}");
}

/// A volume whose dirty bit is set (Linux sets it while mounted) is
/// refused as a source, naming the cause; fsck.fat clears it.
#[test]
fn a_dirty_volume_is_refused() {
    let src = tempfile::tempdir().unwrap();
    source(src.path());
    let work = tempfile::tempdir().unwrap();
    let image = work.path().join("fat.img");
    write(&tree_of(src.path()), &image);
    let reader = FatReader::open(&image).unwrap();
    // BS_Reserved1: byte 1 of the extended BPB (at 36, or 64 on FAT32).
    let at = if reader.volume().variant == FatVariant::Fat32 {
        65
    } else {
        37
    };
    patch(&image, at, &[1]);
    let reader = FatReader::open(&image).unwrap();
    assert!(reader.volume().dirty);
    let e = FatSource::new(reader, image.clone()).unwrap_err();
    assert!(matches!(e, kiln_fat::ReadError::Dirty), "{e}");
    assert!(e.to_string().contains("fsck.fat"), "{e}");
}
