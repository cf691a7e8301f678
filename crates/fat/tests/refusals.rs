//! What FAT cannot hold is refused with an error naming the image path;
//! the directory size limit is met exactly; emit writes forward only.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use kiln_fat::{FatError, FatOptions, FatVariant};
use kiln_sink::{Sink, SinkError};
use kiln_tree::{Body, DataSource, FileData, Inline, Metadata, Node, NodeId, Tree};

fn meta() -> Metadata {
    let mut m = Metadata::made(0o644, 1000, 1000);
    let mut times = m.times();
    times.mtime.secs = 1_700_000_000;
    m.set_times(times);
    m
}

fn tree() -> Tree {
    Tree::new(meta())
}

fn file(t: &mut Tree, dir: NodeId, name: &str, data: &[u8]) -> NodeId {
    let bytes: Arc<[u8]> = data.into();
    let source = DataSource::Bytes(Arc::new(Inline::new(bytes, "spec".into())));
    let size = data.len() as u64;
    let data = std::iter::once(0..size).filter(|r| !r.is_empty()).collect();
    let id = t.add(Node {
        meta: meta(),
        body: Body::File(FileData::new(source, size, data)),
    });
    t.link(dir, name.as_bytes(), id);
    id
}

fn dir(t: &mut Tree, parent: NodeId, name: &str) -> NodeId {
    let id = t.add(Node {
        meta: meta(),
        body: Body::Dir(Box::default()),
    });
    t.link(parent, name.as_bytes(), id);
    id
}

fn refused(t: &Tree, opts: &FatOptions) -> String {
    let mut t = t.clone();
    t.finish();
    match kiln_fat::plan(&t, opts) {
        Ok(_) => panic!("planned"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn names_fat_cannot_hold() {
    for bad in [
        "a:b",
        "star*",
        "what?",
        "q\"uote",
        "<",
        ">",
        "pi|pe",
        "back\\slash",
        "tab\tx",
        "dot.",
        "space ",
    ] {
        let mut t = tree();
        let d = dir(&mut t, Tree::ROOT, "EFI");
        file(&mut t, d, bad, b"x");
        let e = refused(&t, &FatOptions::default());
        assert!(
            e.starts_with(&format!("/EFI/{bad}: FAT cannot hold this name")),
            "{e}"
        );
    }
    let mut t = tree();
    file(&mut t, Tree::ROOT, &"n".repeat(256), b"x");
    assert!(refused(&t, &FatOptions::default()).contains("255 UTF-16 units"));
}

#[test]
fn case_collisions_symlinks_devices_hard_links() {
    let mut t = tree();
    let d = dir(&mut t, Tree::ROOT, "boot");
    file(&mut t, d, "Vmlinuz", b"a");
    file(&mut t, d, "VMLINUZ", b"b");
    let e = refused(&t, &FatOptions::default());
    assert!(
        e.contains("/boot/Vmlinuz") && e.contains("/boot/VMLINUZ") && e.contains("case"),
        "{e}"
    );

    let mut t = tree();
    file(&mut t, Tree::ROOT, "straße", b"a");
    file(&mut t, Tree::ROOT, "STRASSE", b"b");
    // Windows folds one character to one: ß stays, so these differ.
    let mut ok = t.clone();
    ok.finish();
    kiln_fat::plan(&ok, &FatOptions::default()).unwrap();

    for (body, kind) in [
        (Body::Symlink(b"target".to_vec()), "symbolic link"),
        (Body::CharDevice(1, 3), "character device"),
        (Body::BlockDevice(8, 0), "block device"),
        (Body::Fifo, "named pipe"),
        (Body::Socket, "socket"),
    ] {
        let mut t = tree();
        let d = dir(&mut t, Tree::ROOT, "dev");
        let id = t.add(Node { meta: meta(), body });
        t.link(d, b"thing", id);
        assert_eq!(
            refused(&t, &FatOptions::default()),
            format!("/dev/thing: FAT cannot hold a {kind}")
        );
    }

    let mut t = tree();
    let f = file(&mut t, Tree::ROOT, "a", b"data");
    let d = dir(&mut t, Tree::ROOT, "sub");
    t.link(d, b"b", f);
    let e = refused(&t, &FatOptions::default());
    assert!(e.starts_with("/sub/b: a hard link to /a"), "{e}");
}

#[test]
fn sizes_and_options_that_do_not_fit() {
    let mut t = tree();
    file(&mut t, Tree::ROOT, "big", &vec![1u8; 3 << 20]);
    let small = FatOptions {
        size: Some(2 << 20),
        ..FatOptions::default()
    };
    assert!(refused(&t, &small).contains("the tree needs"));
    let fat32_small = FatOptions {
        variant: Some(FatVariant::Fat32),
        size: Some(16 << 20),
        ..FatOptions::default()
    };
    assert!(refused(&t, &fat32_small).contains("no FAT32 volume of 16777216 bytes"));
    let odd = FatOptions {
        size: Some((8 << 20) + 1),
        ..FatOptions::default()
    };
    assert!(refused(&t, &odd).contains("not a multiple of 512"));
    let cs = FatOptions {
        cluster_size: Some(3000),
        ..FatOptions::default()
    };
    assert!(refused(&t, &cs).contains("cluster size 3000"));
    let label = FatOptions {
        label: Some("far too long a label".into()),
        ..FatOptions::default()
    };
    assert!(refused(&t, &label).starts_with("label"));

    // A file of 4 GiB: only its size is looked at.
    let mut t = tree();
    let source = DataSource::Bytes(Arc::new(Inline::new(Arc::from(&b""[..]), "spec".into())));
    let id = t.add(Node {
        meta: meta(),
        body: Body::File(FileData::new(source, 1 << 32, vec![])),
    });
    t.link(Tree::ROOT, b"huge.img", id);
    assert!(matches!(
        kiln_fat::plan(&t, &FatOptions::default()),
        Err(FatError::FileTooLarge {
            size: 4_294_967_296,
            ..
        })
    ));
}

/// 65,534 short-named files and `.`/`..`: the 65,536 entries FAT allows;
/// one more is refused.
#[test]
fn a_directory_of_65536_entries() {
    let mut t = tree();
    let d = dir(&mut t, Tree::ROOT, "full");
    for i in 0..65_534 {
        file(&mut t, d, &format!("F{i:05}"), b"");
    }
    let mut one_more = t.clone();
    file(&mut one_more, d, "F65534", b"");
    let e = refused(&one_more, &FatOptions::default());
    assert_eq!(
        e,
        "/full: needs 65537 directory entries, FAT allows at most 65536"
    );
    if !require_tools(&["fsck.fat", "mdir"]) {
        return;
    }
    t.finish();
    let plan = kiln_fat::plan(&t, &FatOptions::default()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let image = out.path().join("full.img");
    let sink = kiln_sink::SparseFile::create(&image, plan.size(), false).unwrap();
    kiln_fat::emit(&plan, &sink).unwrap();
    sink.commit(kiln_sink::Durability::Writeback).unwrap();
    fsck_clean(&image);
    let out = run("mdir", &["-i", image.to_str().unwrap(), "-b", "::/full"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 65_534);
}

/// A sink that records every call and checks that the image goes forward:
/// no write below a point already passed, `advance` never backwards.
#[derive(Default)]
struct Forward {
    state: Mutex<(u64, Vec<(u64, usize)>)>,
}

impl Sink for Forward {
    fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), SinkError> {
        let mut s = self.state.lock().unwrap();
        assert!(
            offset >= s.0,
            "a write at {offset} after advancing to {}",
            s.0
        );
        s.1.push((offset, buf.len()));
        Ok(())
    }

    fn advance(&self, offset: u64) -> Result<(), SinkError> {
        let mut s = self.state.lock().unwrap();
        assert!(offset >= s.0, "advance to {offset} after {}", s.0);
        s.0 = offset;
        Ok(())
    }
}

#[test]
fn emit_goes_forward_and_skips_zero_clusters() {
    for variant in [FatVariant::Fat12, FatVariant::Fat16, FatVariant::Fat32] {
        let mut t = tree();
        let d = dir(&mut t, Tree::ROOT, "d");
        file(&mut t, d, "data", &bytes(100_000, 3));
        let mut zeros_then_data = vec![0u8; 200_000];
        zeros_then_data[150_000] = 1;
        file(&mut t, Tree::ROOT, "mostly zeros", &zeros_then_data);
        t.finish();
        let opts = FatOptions {
            variant: Some(variant),
            cluster_size: Some(4096),
            ..FatOptions::default()
        };
        let plan = kiln_fat::plan(&t, &opts).unwrap();
        let sink = Forward::default();
        kiln_fat::emit(&plan, &sink).unwrap();
        let (end, writes) = sink.state.into_inner().unwrap();
        assert_eq!(end, plan.size());
        let written: usize = writes.iter().map(|w| w.1).sum();
        // Metadata, 100,000 bytes of data and one cluster of the other file.
        assert!(
            written < 100_000 + 3 * 4096 + 256 * 1024,
            "{variant}: {written} bytes written"
        );
    }
}

/// Attributes from the tree's DOS attributes (`attr` spec lines) and from the mode, and the FAT
/// times, as mtools shows them.
#[test]
fn attributes_and_times() {
    if !require_tools(&["mattrib", "mdir", "fsck.fat"]) {
        return;
    }
    let mut t = tree();
    let efi = dir(&mut t, Tree::ROOT, "EFI");
    let boot = dir(&mut t, efi, "BOOT");
    let efi_binary = file(&mut t, boot, "BOOTX64.EFI", b"MZ");
    let ro = file(&mut t, Tree::ROOT, "read-only.txt", b"ro");
    t.node_mut(ro).meta.perm = 0o444;
    // 2023-11-14T22:13:21Z; an access time before 1980 is clamped.
    let meta = &mut t.node_mut(ro).meta;
    let mut times = meta.times();
    times.mtime.secs = 1_700_000_001;
    meta.set_times(times);
    t.finish();
    t.set_dos_attributes(
        efi_binary,
        kiln_tree::DosAttributes {
            hidden: true,
            system: true,
            ..Default::default()
        },
    );
    let plan = kiln_fat::plan(&t, &FatOptions::default()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let image = out.path().join("attr.img");
    let sink = kiln_sink::SparseFile::create(&image, plan.size(), false).unwrap();
    let report = kiln_fat::emit(&plan, &sink).unwrap();
    assert_eq!(report.notes().len(), 1);
    sink.commit(kiln_sink::Durability::Writeback).unwrap();
    fsck_clean(&image);
    let img = image.to_str().unwrap();
    let attrs = |path: &str| {
        let out = run("mattrib", &["-i", img, path]);
        assert!(out.status.success(), "{}", describe(&out));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.split("::").next().unwrap().to_string()
    };
    let efi_attrs = attrs("::/EFI/BOOT/BOOTX64.EFI");
    assert!(
        efi_attrs.contains('S') && efi_attrs.contains('H') && efi_attrs.contains('A'),
        "{efi_attrs:?}"
    );
    let ro_attrs = attrs("::/read-only.txt");
    assert!(
        ro_attrs.contains('R') && !ro_attrs.contains('H'),
        "{ro_attrs:?}"
    );
    let out = run("mdir", &["-i", img, "::/"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("2023-11-14  22:13"), "{listing}");
}

/// A source file that changed after the tree was read fails emit, naming
/// the image path and the source.
#[test]
fn a_source_changed_since_the_tree_was_read() {
    let src = tempfile::tempdir().unwrap();
    put(&src.path().join("dir/f.txt"), b"before");
    settle(src.path());
    let tree = tree_of(src.path());
    let plan = kiln_fat::plan(&tree, &FatOptions::default()).unwrap();
    std::fs::write(src.path().join("dir/f.txt"), b"after, longer").unwrap();
    let out = tempfile::tempdir().unwrap();
    let sink =
        kiln_sink::SparseFile::create(&out.path().join("x.img"), plan.size(), false).unwrap();
    let e = kiln_fat::emit(&plan, &sink).unwrap_err().to_string();
    assert!(
        e.starts_with("/dir/f.txt (from ") && e.contains("6 bytes when the tree was read, now 13"),
        "{e}"
    );
}

/// A root of more entries than FAT12/16's fixed root holds (65,520) is
/// FAT32 by default and refused on FAT16.
#[test]
fn a_root_larger_than_the_fixed_root() {
    let mut t = tree();
    for i in 0..65_530 {
        file(&mut t, Tree::ROOT, &format!("F{i:05}"), b"");
    }
    t.finish();
    let plan = kiln_fat::plan(&t, &FatOptions::default()).unwrap();
    assert_eq!(plan.geometry().variant, FatVariant::Fat32);
    let fat16 = FatOptions {
        variant: Some(FatVariant::Fat16),
        ..FatOptions::default()
    };
    let e = kiln_fat::plan(&t, &fat16).unwrap_err().to_string();
    assert_eq!(
        e,
        "/: needs 65530 directory entries, FAT allows at most 65520"
    );
}
