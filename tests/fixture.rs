//! Deterministic source trees, generated in a temporary directory.
//!
//! [`full`] covers everything `cp -ax` keeps: regular files of boundary sizes
//! (direct, indirect, double- and triple-indirect block maps at 1 KiB and
//! 4 KiB blocks), holes in every position, a dense all-zero file, a sparse
//! file beyond 4 GiB, nested, empty and multi-block directories, fast and slow
//! symlinks, hard links, device nodes with large numbers, a FIFO and a socket,
//! all 12 mode bits, 32-bit owners, nanosecond times before 1970 and after
//! 2038, and extended attributes of every namespace (ACLs and capabilities
//! included). Real data stays small (about 1.5 MB); large files are sparse.
//!
//! Needs root (device nodes, chown, trusted.* and security.* xattrs).
//! Same content and metadata on every run, except ctime and inode numbers,
//! which cannot be set.

use std::fs::{self, File};
use std::os::unix::fs::{symlink, FileExt};
use std::os::unix::net::UnixListener;
use std::path::Path;

use crate::helpers::write_file;
use crate::sys::{self, Kind, Ts};

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

/// xorshift64*: a small deterministic generator for file contents.
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// `n` pseudo-random bytes, the same for the same `seed`.
pub fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut rng = Prng::new(seed);
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(n);
    out
}

/// A seed from a name (FNV-1a), so each file has its own content.
fn seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Creates a sparse file of `size` bytes with pseudo-random data at the given
/// `(offset, length)` pieces and holes elsewhere.
pub fn sparse(path: &Path, size: u64, pieces: &[(u64, u64)]) {
    let f = File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    let base = seed(&path.to_string_lossy());
    for (i, &(off, len)) in pieces.iter().enumerate() {
        assert!(
            off + len <= size,
            "piece beyond the end of {}",
            path.display()
        );
        let data = bytes(base + i as u64, usize::try_from(len).expect("small piece"));
        f.write_all_at(&data, off)
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
    f.set_len(size)
        .unwrap_or_else(|e| panic!("truncate {} to {size}: {e}", path.display()));
}

/// A sparse file with a 4 KiB piece of data every `stride` bytes and its last
/// byte written: every indirect block of its block map has data below it.
fn striped(path: &Path, size: u64, stride: u64) {
    let mut pieces: Vec<(u64, u64)> = (0..size.div_ceil(stride))
        .map(|i| (i * stride, (4 * KIB).min(size - i * stride)))
        .collect();
    pieces.push((size - 1, 1));
    sparse(path, size, &pieces);
}

/// A file with exactly this content.
fn file(path: &Path, data: &[u8]) {
    write_file(path, data);
}

fn mkdir(path: &Path) {
    fs::create_dir_all(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
}

fn link(original: &Path, new: &Path) {
    fs::hard_link(original, new)
        .unwrap_or_else(|e| panic!("link {} -> {}: {e}", new.display(), original.display()));
}

fn sym(target: &str, path: &Path) {
    symlink(target, path).unwrap_or_else(|e| panic!("symlink {}: {e}", path.display()));
}

/// A symlink target of exactly `len` bytes that looks like a path.
fn long_target(len: usize, c: char) -> String {
    let mut s: String = std::iter::repeat_n(format!("{c}{c}{c}/"), len / 4 + 1).collect();
    s.truncate(len);
    s
}

/// ACL entry tags of the kernel's VFS xattr format (`posix_acl_xattr.h`).
pub mod acl {
    pub const USER_OBJ: u16 = 0x01;
    pub const USER: u16 = 0x02;
    pub const GROUP_OBJ: u16 = 0x04;
    pub const GROUP: u16 = 0x08;
    pub const MASK: u16 = 0x10;
    pub const OTHER: u16 = 0x20;
    /// The id of entries that have none.
    pub const UNDEFINED_ID: u32 = u32::MAX;

    /// An ACL in the VFS format: version 2, then (tag, perm, id) entries
    /// sorted by tag and id.
    pub fn encode(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        for &(tag, perm, id) in entries {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }
}

/// A valid `security.capability` value, revision 2 (`VFS_CAP_REVISION_2`,
/// effective flag set) granting CAP_NET_BIND_SERVICE and CAP_NET_RAW.
pub fn capability_v2() -> Vec<u8> {
    capability_v2_of((1 << 10) | (1 << 13))
}

/// The `security.capability` value (revision 2, effective flag set) that
/// `setcap` writes to grant `permitted`, a mask of capabilities 0 to 31
/// (`cap_net_raw+ep` is `1 << 13`).
pub fn capability_v2_of(permitted: u32) -> Vec<u8> {
    let words: [u32; 5] = [0x0200_0001, permitted, 0, 0, 0];
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// The size of the large `user.*` xattr: must go to an xattr block, and still
/// fit in one block (ext2/ext3 have no xattr inodes).
pub fn large_xattr_len(block_size: u32) -> usize {
    if block_size >= 4096 {
        3000
    } else {
        800
    }
}

/// The length of the longest symlink target the block size allows (the
/// target and its NUL fill one block), capped at `PATH_MAX - 1`.
pub fn max_symlink_len(block_size: u32) -> usize {
    (block_size as usize - 1).min(4095)
}

/// Explicit (atime, mtime) of the entries under `times/`.
pub const TIMES: [(&str, Ts, Ts); 6] = [
    (
        "times/pre1970",
        Ts::new(-2_000_000_000, 1),
        Ts::new(-31_536_000, 123_456_789),
    ),
    (
        "times/post2038",
        Ts::new(4_102_444_800, 999_999_999),
        Ts::new(2_147_483_648, 1),
    ),
    (
        "times/nanos",
        Ts::new(1_234_567_890, 987_654_321),
        Ts::new(1_234_567_891, 123_456_789),
    ),
    ("times/epoch", Ts::new(0, 0), Ts::new(0, 0)),
    (
        "times/symlink",
        Ts::new(1_111_111_111, 111_111_111),
        Ts::new(1_222_222_222, 222_222_222),
    ),
    (
        "times/dir_pre1970",
        Ts::new(-100_000_000, 7),
        Ts::new(-100_000_000, 8),
    ),
];

/// Builds the full fixture in the existing empty directory `root`, for images
/// of `block_size` (the longest symlink and the largest xattr depend on it).
pub fn full(root: &Path, block_size: u32) {
    use acl::{encode, GROUP, GROUP_OBJ, MASK, OTHER, UNDEFINED_ID, USER, USER_OBJ};
    let p = |rel: &str| root.join(rel);

    // Regular files at the block-size boundaries and across the block-map levels.
    mkdir(&p("sizes"));
    for n in [
        0,
        1,
        1023,
        1024,
        1025,
        4095,
        4096,
        4097,
        12 * KIB + 1,         // direct -> indirect at 1 KiB blocks
        12 * 4 * KIB + 1,     // direct -> indirect at 4 KiB blocks
        (12 + 256) * KIB + 1, // indirect -> double indirect at 1 KiB blocks
    ] {
        let name = format!("sizes/size_{n}");
        file(&p(&name), &bytes(seed(&name), n as usize));
    }
    // Indirect -> double indirect at 4 KiB blocks, sparse but with data below
    // every indirect block.
    striped(
        &p("sizes/striped_4k_double"),
        (12 + 1024) * 4 * KIB + 1,
        128 * KIB,
    );
    // Past 256 double-indirect blocks at 1 KiB: reaches the triple-indirect level.
    striped(
        &p("sizes/striped_1k_triple"),
        (12 + 256 + 65536) * KIB + 1,
        256 * KIB,
    );
    // Written zeros: data, not a hole.
    file(&p("sizes/dense_zeros"), &vec![0u8; 64 * KIB as usize]);

    // Holes everywhere.
    mkdir(&p("holes"));
    sparse(&p("holes/leading_hole"), MIB + 5000, &[(MIB, 5000)]);
    sparse(
        &p("holes/middle_hole"),
        72 * KIB,
        &[(0, 8 * KIB), (64 * KIB, 8 * KIB)],
    );
    sparse(&p("holes/trailing_hole"), 2 * MIB, &[(0, 10_000)]);
    sparse(&p("holes/all_hole"), 3 * MIB, &[]);
    // The hole covers the whole range of the single-indirect block at both
    // block sizes: [12 KiB, 268 KiB) and [48 KiB, 4 MiB + 48 KiB).
    sparse(
        &p("holes/hole_spans_indirect"),
        5 * MIB + 4 * KIB,
        &[(0, 4 * KIB), (5 * MIB, 4 * KIB)],
    );
    // At 1 KiB blocks, the hole covers whole indirect blocks below the
    // double-indirect one ([524 KiB, 1036 KiB)), but not the single-indirect range.
    sparse(
        &p("holes/hole_spans_double_child"),
        1204 * KIB,
        &[(0, 4 * KIB), (264 * KIB, 8 * KIB), (1200 * KIB, 4 * KIB)],
    );
    // Beyond 4 GiB (large_file), mostly holes.
    sparse(
        &p("holes/beyond_4g"),
        4 * GIB + 8193,
        &[(0, 4 * KIB), (2 * GIB, 4 * KIB), (4 * GIB, 8193)],
    );

    // Directories: nested, empty, spanning several blocks, long names.
    mkdir(&p("dirs/nested/a/b/c/d"));
    file(&p("dirs/nested/a/b/c/d/leaf"), b"leaf\n");
    file(&p("dirs/nested/a/mid"), b"mid\n");
    mkdir(&p("dirs/empty"));
    mkdir(&p("dirs/big"));
    for i in 0..300 {
        file(
            &p(&format!("dirs/big/entry_{i:04}_with_a_longer_name")),
            b"",
        );
    }
    mkdir(&p("dirs/long_names"));
    for i in 0..3 {
        let name = format!("{i}{}", "n".repeat(254));
        file(
            &p(&format!("dirs/long_names/{name}")),
            format!("{i}\n").as_bytes(),
        );
    }

    // Symlinks: fast (< 60 bytes, in the inode), slow (in a block), dangling.
    mkdir(&p("links"));
    sym("a", &p("links/fast_1"));
    sym(&long_target(59, 'f'), &p("links/fast_59"));
    sym(&long_target(60, 's'), &p("links/slow_60"));
    sym(&long_target(500, 'm'), &p("links/slow_500"));
    sym(
        &long_target(max_symlink_len(block_size), 'x'),
        &p("links/slow_max"),
    );
    sym("does/not/exist", &p("links/dangling"));
    sym("../sizes/size_1", &p("links/to_file"));
    sym("../dirs", &p("links/to_dir"));
    sym("/etc/passwd", &p("links/absolute"));

    // Hard links: same directory, across directories, 4 links, an empty file, a symlink.
    mkdir(&p("hardlinks/sub/deeper"));
    file(&p("hardlinks/orig"), b"hard-linked content\n");
    link(&p("hardlinks/orig"), &p("hardlinks/same_dir_link"));
    link(&p("hardlinks/orig"), &p("hardlinks/sub/other_dir_link"));
    link(&p("hardlinks/orig"), &p("hardlinks/sub/deeper/third_link"));
    file(&p("hardlinks/empty_orig"), b"");
    link(&p("hardlinks/empty_orig"), &p("hardlinks/sub/empty_link"));
    sym("orig", &p("hardlinks/symlink"));
    link(&p("hardlinks/symlink"), &p("hardlinks/sub/symlink_link"));

    // Device nodes (numbers beyond 8 bits need the new encoding), FIFO, socket.
    mkdir(&p("special"));
    sys::mknod(&p("special/char_1_3"), Kind::CharDev, 0o666, 1, 3);
    sys::mknod(&p("special/char_big"), Kind::CharDev, 0o600, 300, 70000);
    sys::mknod(&p("special/block_8_0"), Kind::BlockDev, 0o660, 8, 0);
    sys::mknod(
        &p("special/block_big"),
        Kind::BlockDev,
        0o640,
        259,
        1_000_000,
    );
    sys::mknod(&p("special/fifo"), Kind::Fifo, 0o640, 0, 0);
    link(&p("special/char_big"), &p("special/char_big_link"));
    let socket = p("special/socket");
    assert!(
        socket.as_os_str().len() < 100,
        "socket path too long for sun_path: {}",
        socket.display()
    );
    drop(UnixListener::bind(&socket).expect("bind a Unix socket"));
    sys::chmod(&socket, 0o755);

    // Ownership (before the modes: chown clears setuid and setgid).
    mkdir(&p("owners"));
    for (uid, gid) in [
        (65536, 65537),
        (100_000, 100_000),
        (4_000_000_000, 4_000_000_001),
        (4_294_967_294, 4_294_967_294),
    ] {
        let path = p(&format!("owners/u{uid}_g{gid}"));
        file(&path, b"owned\n");
        sys::lchown(&path, uid, gid);
    }
    mkdir(&p("owners/dir_u70000"));
    sys::lchown(&p("owners/dir_u70000"), 70000, 70001);
    sym("target", &p("owners/symlink_u1234"));
    sys::lchown(&p("owners/symlink_u1234"), 1234, 5678);
    sys::lchown(&p("special/fifo"), 3, 5);

    // All 12 mode bits.
    mkdir(&p("modes"));
    for perm in [
        0o0000, 0o0777, 0o4755, 0o2755, 0o1644, 0o7777, 0o0640, 0o6711,
    ] {
        let path = p(&format!("modes/mode_{perm:04o}"));
        file(&path, b"#!/bin/sh\necho hi\n");
        sys::chmod(&path, perm);
    }
    for perm in [0o1777, 0o2775, 0o0700, 0o0000] {
        let path = p(&format!("modes/dir_{perm:04o}"));
        mkdir(&path);
        file(&path.join("inside"), b"inside\n");
        sys::chmod(&path, perm);
    }

    // Extended attributes of every namespace.
    mkdir(&p("xattrs"));
    let x = |name: &str| {
        let path = p(&format!("xattrs/{name}"));
        file(&path, b"x\n");
        path
    };
    sys::set_xattr(&x("user_small"), "user.comment", b"hello");
    sys::set_xattr(&x("user_empty_value"), "user.empty", b"");
    let many = x("user_many");
    for i in 0..12 {
        sys::set_xattr(&many, &format!("user.k{i:02}"), &vec![b'v'; i + 1]);
    }
    sys::set_xattr(
        &x("user_large"),
        "user.big",
        &bytes(7, large_xattr_len(block_size)),
    );
    sys::set_xattr(&x("user_binary"), "user.bin", b"\0\xff\0\x01");
    sys::set_xattr(&x("trusted"), "trusted.overlay.opaque", b"y");
    let cap = x("capability");
    sys::chmod(&cap, 0o755);
    sys::set_xattr(&cap, "security.capability", &capability_v2());
    sys::set_xattr(
        &x("selinux"),
        "security.selinux",
        b"system_u:object_r:bin_t:s0\0",
    );
    for name in ["shared_a", "shared_b"] {
        // Identical sets on distinct inodes (candidates for one shared xattr block).
        sys::set_xattr(&x(name), "user.same", &[b'S'; 600]);
    }
    let hl = x("hardlinked");
    sys::set_xattr(&hl, "user.hl", b"one value, two names");
    link(&hl, &p("xattrs/hardlinked_2"));
    sym("user_small", &p("xattrs/symlink_trusted"));
    sys::set_xattr(&p("xattrs/symlink_trusted"), "trusted.sym", b"on a symlink");
    mkdir(&p("xattrs/dir_with_xattr"));
    sys::set_xattr(&p("xattrs/dir_with_xattr"), "user.dir", b"dir value");
    sys::set_xattr(
        &x("acl_file"),
        "system.posix_acl_access",
        &encode(&[
            (USER_OBJ, 6, UNDEFINED_ID),
            (USER, 6, 1000),
            (GROUP_OBJ, 4, UNDEFINED_ID),
            (GROUP, 4, 100),
            (MASK, 6, UNDEFINED_ID),
            (OTHER, 4, UNDEFINED_ID),
        ]),
    );
    let acl_dir = p("xattrs/acl_dir");
    mkdir(&acl_dir);
    sys::set_xattr(
        &acl_dir,
        "system.posix_acl_access",
        &encode(&[
            (USER_OBJ, 7, UNDEFINED_ID),
            (USER, 7, 1000),
            (GROUP_OBJ, 5, UNDEFINED_ID),
            (MASK, 7, UNDEFINED_ID),
            (OTHER, 5, UNDEFINED_ID),
        ]),
    );
    sys::set_xattr(
        &acl_dir,
        "system.posix_acl_default",
        &encode(&[
            (USER_OBJ, 7, UNDEFINED_ID),
            (USER, 5, 2000),
            (GROUP_OBJ, 5, UNDEFINED_ID),
            (MASK, 5, UNDEFINED_ID),
            (OTHER, 0, UNDEFINED_ID),
        ]),
    );
    // Created after the default ACL: inherits an access ACL from it.
    file(&acl_dir.join("inherits"), b"inherited acl\n");

    // Timestamps last, bottom-up: every entry gets a distinct time with
    // nanoseconds, then the entries under times/ their explicit ones.
    mkdir(&p("times/dir_pre1970"));
    file(&p("times/pre1970"), b"1969\n");
    file(&p("times/post2038"), b"2100\n");
    file(&p("times/nanos"), b"ns\n");
    file(&p("times/epoch"), b"0\n");
    sym("epoch", &p("times/symlink"));
    let mut k = 0;
    set_times_bottom_up(root, &mut k);
    for (rel, atime, mtime) in TIMES {
        sys::set_times(&p(rel), atime, mtime);
    }
    // The host filesystem must hold what we set, or every comparison is moot.
    for (rel, atime, mtime) in TIMES {
        let m = sys::lstat(&p(rel)).expect("lstat");
        assert_eq!(
            (m.atime, m.mtime),
            (atime, mtime),
            "the filesystem of {} cannot store the fixture's times",
            root.display()
        );
    }
}

/// A deterministic (atime, mtime) pair for the `k`-th entry.
fn nth_times(k: u32) -> (Ts, Ts) {
    let k64 = i64::from(k);
    (
        Ts::new(
            1_500_000_000 + k64,
            k.wrapping_mul(1_000_003) % 1_000_000_000,
        ),
        Ts::new(
            1_600_000_000 + k64,
            k.wrapping_mul(7_000_001) % 1_000_000_000,
        ),
    )
}

/// Sets times on everything below `dir` (children before their directory, so
/// creating entries can no longer move a directory's mtime), then on `dir`.
/// Each directory is listed before its own times are set, never after.
fn set_times_bottom_up(dir: &Path, k: &mut u32) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    names.sort();
    for path in names {
        let is_dir = fs::symlink_metadata(&path)
            .expect("lstat")
            .file_type()
            .is_dir();
        if is_dir {
            set_times_bottom_up(&path, k);
        } else {
            *k += 1;
            let (a, m) = nth_times(*k);
            sys::set_times(&path, a, m);
        }
    }
    *k += 1;
    let (a, m) = nth_times(*k);
    sys::set_times(dir, a, m);
}

/// A small tree with only past timestamps (so the default filesystem
/// timestamp, the newest mtime, is stable), needing no privileges.
pub fn small(root: &Path) {
    mkdir(&root.join("etc"));
    mkdir(&root.join("usr/share/doc"));
    mkdir(&root.join("var/empty"));
    file(&root.join("etc/fstab"), b"# base fstab\n");
    file(&root.join("etc/passwd"), b"root:x:0:0:root:/root:/bin/sh\n");
    file(&root.join("usr/share/doc/readme"), &bytes(3, 5000));
    file(&root.join("usr/big"), &bytes(4, 300_000));
    link(&root.join("etc/passwd"), &root.join("usr/passwd_link"));
    sym("../etc/fstab", &root.join("usr/fstab_link"));
    let mut k = 1000;
    set_times_bottom_up(root, &mut k);
}
