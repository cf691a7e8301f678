//! Archives built block by block: every member type, the extension headers,
//! and hostile input (which must give errors, never panics).

use std::io::{Cursor, Write};

use proptest::prelude::*;

use super::*;
use crate::{DataSource, NodeId};

/// A ustar header with the given fields, checksum filled in.
fn header(name: &[u8], typeflag: u8, size: u64, link: &[u8]) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    b[..name.len()].copy_from_slice(name);
    b[100..108].copy_from_slice(b"0000640\0");
    b[108..116].copy_from_slice(b"0001750\0");
    b[116..124].copy_from_slice(b"0000144\0");
    b[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    b[136..148].copy_from_slice(b"07346545000\0");
    b[156] = typeflag;
    b[157..157 + link.len()].copy_from_slice(link);
    b[257..265].copy_from_slice(b"ustar\x0000");
    b[329..337].copy_from_slice(b"0000010\0");
    b[337..345].copy_from_slice(b"0000003\0");
    seal(b)
}

/// Recomputes the checksum of a header.
fn seal(mut b: [u8; BLOCK]) -> [u8; BLOCK] {
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    b
}

/// An archive being built.
#[derive(Default)]
struct Tarball(Vec<u8>);

impl Tarball {
    /// Appends a header and its data, padded to a block.
    fn raw(&mut self, block: [u8; BLOCK], data: &[u8]) -> &mut Tarball {
        self.0.extend_from_slice(&block);
        self.0.extend_from_slice(data);
        let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
        self.0.extend(std::iter::repeat_n(0, pad));
        self
    }

    /// Appends a member with data.
    fn add(&mut self, name: &str, typeflag: u8, data: &[u8]) -> &mut Tarball {
        let h = header(name.as_bytes(), typeflag, data.len() as u64, b"");
        self.raw(h, data)
    }

    /// Appends a link member.
    fn link(&mut self, name: &str, typeflag: u8, target: &str) -> &mut Tarball {
        self.raw(header(name.as_bytes(), typeflag, 0, target.as_bytes()), b"")
    }

    /// Appends a PAX `x` header with these records.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Tarball {
        let mut data = Vec::new();
        for (key, value) in records {
            let body_len = key.len() + value.len() + 3;
            // The length counts its own digits.
            let mut len = body_len + 1;
            while len != body_len + len.to_string().len() {
                len = body_len + len.to_string().len();
            }
            data.extend(format!("{len} {key}=").as_bytes());
            data.extend(*value);
            data.push(b'\n');
        }
        let h = header(b"./PaxHeaders/x", b'x', data.len() as u64, b"");
        self.raw(h, &data)
    }

    /// Appends the end-of-archive marker and hands the bytes over.
    fn end(&mut self) -> Vec<u8> {
        self.0.extend([0u8; 2 * BLOCK]);
        std::mem::take(&mut self.0)
    }
}

/// Reads an archive from memory.
fn read(bytes: &[u8]) -> Result<Tree, TreeError> {
    read_with(bytes, &TarOptions::new())
}

/// Reads an archive from memory with `options`, as a stream (its data
/// spooled); checks that reading it from a file (a plain archive's data in
/// place) gives the same tree or the same error.
fn read_with(bytes: &[u8], options: &TarOptions) -> Result<Tree, TreeError> {
    let input = Input::new(Box::new(Cursor::new(bytes.to_vec()))).unwrap();
    let streamed = read_stream(PathBuf::from("t.tar"), input, options);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    let input = Input::open(file.path()).unwrap();
    let from_file = read_stream(PathBuf::from("t.tar"), input, options);
    match (&streamed, &from_file) {
        (Ok(a), Ok(b)) => assert_same_nodes(a, Tree::ROOT, b, Tree::ROOT, "."),
        (Err(a), Err(b)) => assert_eq!(error_place(a), error_place(b)),
        _ => panic!("streamed: {streamed:?}, from a file: {from_file:?}"),
    }
    streamed
}

/// What an error of [`read_with`] must agree on, read either way: the whole
/// message, or for a damaged member only where it is (a member too large
/// for the spool is, in place, one that the archive ends in).
fn error_place(e: &TreeError) -> String {
    match e {
        TreeError::Archive {
            archive,
            entry,
            offset,
            ..
        } => format!("{archive:?} {entry:?} {offset}"),
        other => other.to_string(),
    }
}

/// Asserts that node `x` of `a` and node `y` of `b` (at `path`) are the
/// same, below them too: metadata, kinds, entries and file contents (their
/// data sources differ).
fn assert_same_nodes(a: &Tree, x: NodeId, b: &Tree, y: NodeId, path: &str) {
    let (n, m) = (a.node(x), b.node(y));
    assert_eq!(n.meta, m.meta, "{path}");
    match (&n.body, &m.body) {
        (Body::File(f), Body::File(g)) => {
            assert_eq!((f.size, f.data()), (g.size, g.data()), "{path}");
            assert_eq!(f.read_all().unwrap(), g.read_all().unwrap(), "{path}");
        }
        (Body::Dir(_), Body::Dir(_)) => {
            let es: Vec<_> = n.entries().collect();
            let fs: Vec<_> = m.entries().collect();
            assert_eq!(es.len(), fs.len(), "{path}");
            for ((name, i), (other, j)) in es.into_iter().zip(fs) {
                assert_eq!(name, other, "{path}");
                let below = format!("{path}/{}", lossy(name));
                assert_same_nodes(a, i, b, j, &below);
            }
        }
        (p, q) => assert_eq!(p, q, "{path}"),
    }
}

/// Reads an archive from memory past zero blocks.
fn read_ignoring_zeros(bytes: &[u8]) -> Result<Tree, TreeError> {
    read_with(bytes, &TarOptions::new().ignore_zeros(true))
}

/// The node at `path`.
fn at(tree: &Tree, path: &str) -> NodeId {
    path.split('/').fold(Tree::ROOT, |dir, name| {
        tree.lookup(dir, name.as_bytes())
            .unwrap_or_else(|| panic!("{path}: no {name}"))
    })
}

/// A file's bytes, read back through its data source.
fn contents(tree: &Tree, path: &str) -> Vec<u8> {
    let Body::File(f) = &tree.node(at(tree, path)).body else {
        panic!("{path} is not a file");
    };
    assert!(matches!(f.source, DataSource::Archive(..)));
    f.read_all().unwrap()
}

/// The message of the error that reading `bytes` must give.
fn error(bytes: &[u8]) -> String {
    read(bytes).unwrap_err().to_string()
}

#[test]
fn every_member_type() {
    let bytes = Tarball::default()
        .add("./", b'5', b"")
        .add("dir/", b'5', b"")
        .add("dir/file", b'0', b"hello")
        .add("empty", b'0', b"")
        .link("dir/hard", b'1', "dir/file")
        .link("sym", b'2', "/abs/target")
        .add("fifo", b'6', b"")
        .add("chr", b'3', b"")
        .add("blk", b'4', b"")
        .end();
    let t = read(&bytes).unwrap();
    let file = at(&t, "dir/file");
    assert_eq!(at(&t, "dir/hard"), file);
    assert_eq!(contents(&t, "dir/file"), b"hello");
    assert_eq!(contents(&t, "empty"), b"");
    let meta = &t.node(file).meta;
    assert_eq!((meta.perm, meta.uid, meta.gid), (0o640, 1000, 100));
    assert_eq!(
        meta.mtime(),
        Timestamp {
            secs: 1_000_000_000,
            nanos: 0
        }
    );
    assert_eq!(
        (meta.atime(), meta.ctime(), meta.crtime()),
        (meta.mtime(), meta.mtime(), None)
    );
    let Body::File(f) = &t.node(file).body else {
        unreachable!()
    };
    assert_eq!(*f.data(), [0..5]);
    assert_eq!(f.origin(), PathBuf::from("t.tar"));
    assert_eq!(
        t.node(at(&t, "sym")).body,
        Body::Symlink(b"/abs/target".to_vec())
    );
    assert_eq!(t.node(at(&t, "fifo")).body, Body::Fifo);
    assert_eq!(t.node(at(&t, "chr")).body, Body::CharDevice(8, 3));
    assert_eq!(t.node(at(&t, "blk")).body, Body::BlockDevice(8, 3));
    assert_eq!(t.node(Tree::ROOT).meta.perm, 0o640);
}

#[test]
fn pax_and_gnu_extensions() {
    let long = format!("{}/{}", "d".repeat(150), "f".repeat(120));
    let mut gnu_name = header(b"././@LongLink", b'L', long.len() as u64 + 1, b"");
    gnu_name[257..265].copy_from_slice(b"ustar  \0");
    let bytes = Tarball::default()
        .pax(&[
            ("path", long.as_bytes()),
            ("mtime", b"-1.25"),
            ("atime", b"5.000000001"),
            ("uid", b"4000000000"),
            ("SCHILY.xattr.user.a", b"1\0\n2"),
            ("LIBARCHIVE.xattr.user.%41", b"aGk"),
            ("uname", b"ignored"),
        ])
        .add("short-name", b'0', b"data")
        .raw(seal(gnu_name), format!("{long}2\0").as_bytes())
        .link("ignored", b'2', "x")
        .end();
    let t = read(&bytes).unwrap();
    let meta = &t.node(at(&t, &long)).meta;
    assert_eq!(
        meta.mtime(),
        Timestamp {
            secs: -2,
            nanos: 750_000_000
        }
    );
    assert_eq!(meta.atime(), Timestamp { secs: 5, nanos: 1 });
    assert_eq!(meta.ctime(), meta.mtime());
    assert_eq!(meta.uid, 4_000_000_000);
    let names: Vec<_> = meta
        .xattrs()
        .iter()
        .map(|x| (&x.name[..], &x.value[..]))
        .collect();
    assert_eq!(
        names,
        vec![(&b"user.A"[..], &b"hi"[..]), (b"user.a", b"1\0\n2")]
    );
    assert_eq!(contents(&t, &long), b"data");
    assert!(matches!(
        t.node(at(&t, &format!("{long}2"))).body,
        Body::Symlink(_)
    ));
}

#[test]
fn global_headers_apply_to_later_members() {
    let mut bytes = Tarball::default();
    let data = b"12 uid=4242\n";
    bytes.raw(header(b"g", b'g', data.len() as u64, b""), data);
    let bytes = bytes
        .add("a", b'0', b"")
        .pax(&[("uid", b"7")])
        .add("b", b'0', b"")
        .end();
    let t = read(&bytes).unwrap();
    assert_eq!(t.node(at(&t, "a")).meta.uid, 4242);
    assert_eq!(t.node(at(&t, "b")).meta.uid, 7);
}

#[test]
fn later_members_replace_and_directories_merge() {
    let bytes = Tarball::default()
        .add("a/b/c", b'0', b"1")
        .add("a", b'5', b"")
        .add("a/b/c", b'0', b"22")
        .add("x", b'0', b"file")
        .add("x", b'5', b"")
        .end();
    let t = read(&bytes).unwrap();
    assert_eq!(contents(&t, "a/b/c"), b"22");
    assert_eq!(t.node(at(&t, "a")).meta.perm, 0o640);
    let implied = &t.node(at(&t, "a/b")).meta;
    assert_eq!(
        (implied.perm, implied.uid, implied.mtime()),
        (0o755, 0, Timestamp::default())
    );
    assert!(t.node(at(&t, "x")).is_dir());
}

#[test]
fn sparse_gnu_header() {
    let mut h = header(b"sp", b'S', 6, b"");
    h[257..265].copy_from_slice(b"ustar  \0");
    h[345..500].fill(0);
    h[386..410].copy_from_slice(b"00000010000\x0000000000002\0");
    h[410..434].copy_from_slice(b"00000020000\x0000000000004\0");
    h[483..495].copy_from_slice(b"00000040000\0");
    let bytes = Tarball::default().raw(seal(h), b"abcdef").end();
    let t = read(&bytes).unwrap();
    let Body::File(f) = &t.node(at(&t, "sp")).body else {
        panic!()
    };
    assert_eq!(
        (f.size, f.data().to_vec()),
        (0o40000, vec![0o10000..0o10002, 0o20000..0o20004])
    );
    let bytes_back = contents(&t, "sp");
    assert_eq!(&bytes_back[0o10000..0o10002], b"ab");
    assert_eq!(&bytes_back[0o20000..0o20004], b"cdef");
    assert!(bytes_back[..0o10000].iter().all(|&b| b == 0));
}

#[test]
fn sparse_pax_1_0() {
    let mut data = b"2\n4096\n3\n8192\n2\n".to_vec();
    data.resize(BLOCK, 0);
    data.extend(b"xyzuv");
    let bytes = Tarball::default()
        .pax(&[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", b"real/name"),
            ("GNU.sparse.realsize", b"10000"),
        ])
        .add("GNUSparseFile.1/name", b'0', &data)
        .end();
    let t = read(&bytes).unwrap();
    let Body::File(f) = &t.node(at(&t, "real/name")).body else {
        panic!()
    };
    assert_eq!(
        (f.size, f.data().to_vec()),
        (10000, vec![4096..4099, 8192..8194])
    );
    assert_eq!(&contents(&t, "real/name")[8192..8194], b"uv");
}

#[test]
fn gzip_is_detected() {
    let plain = Tarball::default().add("f", b'0', b"zipped").end();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let t = read(&gz.finish().unwrap()).unwrap();
    assert_eq!(contents(&t, "f"), b"zipped");
}

#[test]
fn hostile_paths_and_links() {
    let e = error(
        &Tarball::default()
            .add("a/../../etc/passwd", b'0', b"")
            .end(),
    );
    assert!(e.contains("a/../../etc/passwd") && e.contains(".."), "{e}");
    let e = error(&Tarball::default().link("h", b'1', "missing/target").end());
    assert!(e.contains("h (") && e.contains("missing/target"), "{e}");
    let e = error(
        &Tarball::default()
            .add("f", b'0', b"")
            .add("f/g", b'0', b"")
            .end(),
    );
    assert!(e.contains("f/g") && e.contains("parent f is not"), "{e}");
    let e = error(&Tarball::default().add(".", b'0', b"").end());
    assert!(e.contains("root"), "{e}");
    let e = error(&Tarball::default().link("s", b'2', "").end());
    assert!(e.contains("symlink"), "{e}");
    let e = error(&Tarball::default().link("h", b'1', "../up").end());
    assert!(e.contains("link target ../up"), "{e}");
    let e = error(&Tarball::default().add("weird", b'Z', b"").end());
    assert!(e.contains("'Z'"), "{e}");
}

#[test]
fn damaged_archives() {
    let good = Tarball::default()
        .add("a", b'0', b"x")
        .add("b", b'0', &[7; 700])
        .end();
    let e = error(&good[..BLOCK * 3 + 100]);
    assert!(
        e.contains("ends early") && e.contains("b (header at byte 1024)"),
        "{e}"
    );
    let mut bad = good.clone();
    bad[1024 + 10] ^= 1;
    let e = error(&bad);
    assert!(e.contains("at byte 1024") && e.contains("checksum"), "{e}");
    let mut bad_first = good.clone();
    bad_first[10] ^= 1;
    let e = error(&bad_first);
    assert!(e.contains("at byte 0") && e.contains("checksum"), "{e}");
    let e = error(&Tarball::default().pax(&[("path", b"p")]).end());
    assert!(e.contains("extension header"), "{e}");
    let e = error(
        &Tarball::default()
            .pax(&[("mtime", b"soon")])
            .add("m", b'0', b"")
            .end(),
    );
    assert!(
        e.contains("m (header at byte 0)") && e.contains("mtime"),
        "{e}"
    );
    let e = error(
        &Tarball::default()
            .pax(&[("LIBARCHIVE.xattr.user.x", b"*")])
            .add("m", b'0', b"")
            .end(),
    );
    assert!(e.contains("base64"), "{e}");
    // A size of 2^62 bytes: an error at the end of the input, nothing allocated.
    let mut huge = header(b"big", b'0', 0, b"");
    huge[124..136].copy_from_slice(&[0x80, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0]);
    assert!(error(&Tarball::default().raw(seal(huge), b"").end()).contains("ends early"));
    let mut big_pax = header(b"x", b'x', 0, b"");
    big_pax[124..136].copy_from_slice(b"77777777777\0");
    assert!(error(&Tarball::default().raw(seal(big_pax), b"").end()).contains("bytes"));
    // A lone end marker is an empty archive.
    assert!(read(&[0; BLOCK]).is_ok());
}

#[test]
fn bad_sparse_maps() {
    let pax = |map: &[u8], size: &[u8], data: &[u8]| {
        Tarball::default()
            .pax(&[("GNU.sparse.size", size), ("GNU.sparse.map", map)])
            .add("s", b'0', data)
            .end()
    };
    assert!(read(&pax(b"0,2,10,1", b"20", b"abc")).is_ok());
    assert!(error(&pax(b"0,2,1,1", b"20", b"abc")).contains("overlaps"));
    assert!(error(&pax(b"0,2,19,2", b"20", b"abcd")).contains("size"));
    assert!(error(&pax(b"0,2", b"20", b"abc")).contains("holds 2 bytes"));
    assert!(error(&pax(b"0,2,5", b"20", b"ab")).contains("no length"));
    let mut map = b"999999\n".to_vec();
    map.resize(BLOCK, 0);
    let e = error(
        &Tarball::default()
            .pax(&[("GNU.sparse.major", b"1"), ("GNU.sparse.realsize", b"9")])
            .add("s", b'0', &map)
            .end(),
    );
    assert!(e.contains("sparse map"), "{e}");
    // Data as large as there is: no room for it in the spool, not there in
    // the archive, no overflow either way.
    let max = u64::MAX.to_string();
    let huge = Tarball::default()
        .pax(&[
            ("size", max.as_bytes()),
            ("GNU.sparse.size", max.as_bytes()),
            ("GNU.sparse.map", format!("0,{max}").as_bytes()),
        ])
        .add("s", b'0', b"data")
        .end();
    assert!(error(&huge).contains("a file of 18446744073709551615 bytes"));
}

/// A small valid archive for mutation.
fn sample() -> Vec<u8> {
    Tarball::default()
        .pax(&[("mtime", b"1.5"), ("SCHILY.xattr.user.k", b"v")])
        .add("d/f", b'0', b"contents")
        .link("d/h", b'1', "d/f")
        .link("s", b'2', "d")
        .pax(&[("GNU.sparse.size", b"9000"), ("GNU.sparse.map", b"4096,2")])
        .add("sp", b'0', b"ab")
        .end()
}

/// `TarOptions::count_entries` counts members, not headers: the PAX
/// headers before two of sample()'s four members add nothing (read_with
/// reads the archive twice, as a stream and in place: 8).
#[test]
fn members_are_counted() {
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    read_with(&sample(), &TarOptions::new().count_entries(counter.clone())).unwrap();
    assert_eq!(counter.load(std::sync::atomic::Ordering::Relaxed), 8);
}

// 256 cases each by default; PROPTEST_CASES asks for more.
proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = read(&bytes);
        let _ = read_ignoring_zeros(&bytes);
    }

    #[test]
    fn mutated_archives_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        reseal in any::<bool>(),
    ) {
        let mut bytes = sample();
        for (i, v) in edits {
            let i = i.index(bytes.len());
            bytes[i] = v;
            // Mend the checksum so the damage reaches the fields behind it.
            if reseal {
                let start = i - i % BLOCK;
                let block: [u8; BLOCK] = bytes[start..start + BLOCK].try_into().unwrap();
                bytes[start..start + BLOCK].copy_from_slice(&seal(block));
            }
        }
        let cut = cut.index(bytes.len() + 1);
        let _ = read(&bytes[..cut]);
        let _ = read_ignoring_zeros(&[&bytes[..cut], &bytes[..]].concat());
    }

    #[test]
    fn compressed_garbage_never_panics(
        magic in prop::sample::select(vec![
            &[0x1f, 0x8b][..],
            &[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00],
            &[0x28, 0xb5, 0x2f, 0xfd],
            b"BZh9",
        ]),
        tail in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let _ = read(&[magic, &tail].concat());
    }
}

/// The first 4 KiB of a filesystem image of type `ext` (2, 3 or 4): zeros,
/// then a superblock at byte 1024 with its magic and the features that tell
/// the types apart.
fn ext_image(ext: u8) -> Vec<u8> {
    let mut image = vec![0u8; 4096];
    let sb = 1024;
    image[sb + 56..sb + 58].copy_from_slice(&0xEF53u16.to_le_bytes());
    let (compat, incompat): (u32, u32) = match ext {
        2 => (0, 0x2),
        3 => (0x4, 0x2),
        _ => (0x4, 0x2 | 0x40 | 0x80 | 0x200),
    };
    image[sb + 92..sb + 96].copy_from_slice(&compat.to_le_bytes());
    image[sb + 96..sb + 100].copy_from_slice(&incompat.to_le_bytes());
    image
}

/// Issue 16, point 5: an ext image starts with 1024 zero bytes, which read
/// as the end of an empty archive; it must be named for what it is.
#[test]
fn filesystem_images_are_not_archives() {
    for ext in [2, 3, 4] {
        let e = error(&ext_image(ext));
        assert!(
            e.contains("t.tar: not a tar archive")
                && e.contains(&format!("it looks like an ext{ext} filesystem image")),
            "{e}"
        );
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&ext_image(4)).unwrap();
    let e = error(&gz.finish().unwrap());
    assert!(e.contains("ext4 filesystem image (gzip-compressed)"), "{e}");
}

/// Issue 17: garbage, short or long, is "not a tar archive", not an archive
/// that "ends early"; an empty file is not an empty archive.
#[test]
fn garbage_and_empty_files_are_not_archives() {
    for garbage in [&b"hello!"[..], &[b'x'; 4096], &[0x5a; 511]] {
        let e = error(garbage);
        assert!(
            e.contains("t.tar: not a tar archive: unknown data") && !e.contains("early"),
            "{e}"
        );
    }
    let mut zeros_then_garbage = vec![0u8; 2048];
    zeros_then_garbage.extend([b'x'; 2048]);
    let e = error(&zeros_then_garbage);
    assert!(e.contains("unknown data after 2048 zero bytes"), "{e}");
    let e = error(b"");
    assert!(e.contains("t.tar: not a tar archive: it is empty"), "{e}");
}

/// An archive of zero blocks only (what `tar -cf e.tar -T /dev/null`
/// writes) is empty, and zeros of any length may pad an archive.
#[test]
fn zero_blocks_are_an_empty_archive_or_padding() {
    for len in [BLOCK, 2 * BLOCK, 10240, 10240 + 100] {
        let t = read(&vec![0; len]).unwrap_or_else(|e| panic!("{len}: {e}"));
        assert_eq!(t.entries_and_name_bytes().0, 0, "{len} zeros: no entries");
    }
    let mut padded = Tarball::default().add("f", b'0', b"data").end();
    padded.extend(vec![0; 20000]);
    assert_eq!(contents(&read(&padded).unwrap(), "f"), b"data");
}

/// Issue 16, point 5: data after the end-of-archive marker (`cat a.tar
/// b.tar`, or one zero block between members) is an error naming where it
/// starts.
#[test]
fn data_after_the_end_marker_is_an_error() {
    let first = Tarball::default().add("a", b'0', b"1").end();
    let second = Tarball::default().add("b", b'0', b"2").end();
    let e = error(&[first.clone(), second.clone()].concat());
    assert!(
        e.contains("t.tar: at byte 2048: data after the end-of-archive marker at byte 1024")
            && e.contains("--ignore-zeros"),
        "{e}"
    );
    let mut lone = Tarball::default().add("a", b'0', b"1").0.clone();
    lone.extend([0; BLOCK]);
    lone.extend(&second);
    let e = error(&lone);
    assert!(e.contains("at byte 1536: data after"), "{e}");
    // The offset is the block's, where a header would start.
    let mut stray = first;
    stray.extend([0; 3000]);
    stray.push(1);
    let e = error(&stray);
    assert!(e.contains("at byte 4608: data after"), "{e}");
}

/// Zeros, then an archive: the zeros are an end marker (a tar follows, so
/// --ignore-zeros is the suggestion), not a file of unknown data.
#[test]
fn zeros_before_an_archive() {
    let archive = [
        vec![0; 10240],
        Tarball::default().add("a", b'0', b"1").end(),
    ]
    .concat();
    let e = error(&archive);
    assert!(
        e.contains("at byte 10240: data after the end-of-archive marker at byte 0"),
        "{e}"
    );
    assert_eq!(contents(&read_ignoring_zeros(&archive).unwrap(), "a"), b"1");
}

/// With `ignore_zeros`, archives joined with `cat` (and zero blocks
/// anywhere between members) give every member, later ones replacing
/// earlier ones of the same path as in one archive.
#[test]
fn ignore_zeros_reads_joined_archives() {
    let first = Tarball::default()
        .add("a", b'0', b"1")
        .add("same", b'0', b"first")
        .end();
    let second = Tarball::default()
        .add("b", b'0', b"2")
        .add("same", b'0', b"second")
        .end();
    let mut joined = [first, vec![0; 10240], second].concat();
    joined.extend([0; BLOCK]);
    joined.extend(Tarball::default().add("c", b'0', b"3").0.clone());
    let t = read_ignoring_zeros(&joined).unwrap();
    assert_eq!(contents(&t, "a"), b"1");
    assert_eq!(contents(&t, "b"), b"2");
    assert_eq!(contents(&t, "c"), b"3");
    assert_eq!(contents(&t, "same"), b"second");
    // What is not tar after the zeros is still an error, at its offset.
    let mut junk = Tarball::default().add("a", b'0', b"1").end();
    junk.extend([b'?'; BLOCK]);
    let e = read_ignoring_zeros(&junk).unwrap_err().to_string();
    assert!(e.contains("at byte 2048") && e.contains("checksum"), "{e}");
    // So is an ext image: its superblock is not a header.
    let e = read_ignoring_zeros(&ext_image(4)).unwrap_err().to_string();
    assert!(e.contains("ext4 filesystem image"), "{e}");
    // Zero blocks only are still an empty archive.
    assert!(read_ignoring_zeros(&[0; 10240]).is_ok());
}

/// A reader that gives at most 7 bytes a read, as a pipe or a decompressor
/// may give any number: blocks must still be found where they start.
struct Trickle(Cursor<Vec<u8>>);

impl std::io::Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(7);
        self.0.read(&mut buf[..n])
    }
}

#[test]
fn zeros_read_in_odd_pieces() {
    let trickled = |bytes: Vec<u8>, ignore_zeros| {
        let input = Input::new(Box::new(Trickle(Cursor::new(bytes)))).unwrap();
        let options = TarOptions::new().ignore_zeros(ignore_zeros);
        read_stream(PathBuf::from("t.tar"), input, &options)
    };
    let first = Tarball::default().add("a", b'0', b"1").end();
    // A header that starts with zeros (an empty name: the path is in the
    // PAX records) must not be taken for more zeros.
    let mut second = Tarball::default()
        .pax(&[("path", b"b")])
        .add("ignored", b'0', &[2; 700])
        .end();
    let mut unnamed: [u8; BLOCK] = second[..BLOCK].try_into().unwrap();
    unnamed[..100].fill(0);
    second[..BLOCK].copy_from_slice(&seal(unnamed));
    let joined = [first.clone(), vec![0; 10240 + BLOCK], second].concat();
    let t = trickled(joined.clone(), true).unwrap();
    assert_eq!(contents(&t, "a"), b"1");
    assert_eq!(contents(&t, "b"), [2; 700]);
    let e = trickled(joined, false).unwrap_err().to_string();
    assert!(e.contains("at byte 12800: data after"), "{e}");
    let e = trickled(ext_image(3), false).unwrap_err().to_string();
    assert!(e.contains("ext3 filesystem image"), "{e}");
    let padded = [first, vec![0; 777]].concat();
    assert_eq!(contents(&trickled(padded, false).unwrap(), "a"), b"1");
}
