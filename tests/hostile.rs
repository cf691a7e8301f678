//! Issue 16, point 6: the catalogue of hostile images. Each case builds a
//! valid image with kiln, edits bytes of it as an attacker would, and runs
//! the reading commands on it (`info`, `info --json`, `ls -lR`, `cat`,
//! `extract`, `verify`) and a build with the image as its source (`build
//! IMAGE -o DEST`, issue 24). Every command must end by itself within a
//! time and a memory bound, with status 0, 1 or 2 and a `kiln: error:`
//! message on failure, never a panic or a signal; print no raw control
//! bytes; and write nothing outside DEST (canary directories beside it,
//! reachable by absolute and relative symlinks), leaving no DEST after a
//! failed extract or build (a build's output that is left must be clean
//! for `e2fsck -fn`). On top of that each class has its expected result:
//! a build from an image with damaged structures (names, links, maps,
//! trees, superblock counts, an unsettled or unknown filesystem) must
//! fail; one whose damage leaves the tree readable (htree indexes, which
//! a linear read of the directory does without; an unknown RO_COMPAT
//! feature) may succeed, and a build with `--ignore-checksums` past a
//! wrong checksum must.
//!
//! Where the image has metadata_csum, a class comes in two variants: the
//! checksums recomputed after the edit (only a semantic check can stop
//! it; `e2fsck -fn` confirms they are right) and left stale (an error
//! naming a checksum is then also a right answer). Some run as user
//! nobody as well.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;

use crate::fixture;
use crate::helpers::*;

// Where a case lives: sources, image, DEST and the canaries beside it.
mod arena;
// Running a command within a time and a memory bound.
pub(crate) mod bounded;
// The commands run on each image and what they must do.
mod checks;
// Finding structures in an image and rewriting them, checksums and all.
mod edit;

use arena::Hostile;
use checks::{fails, prints, variant, warns, Expect, Kind, Variant};
use edit::{inode, put_u16, put_u32, sb, BlockSum, Editor, Sums};

/// One test per variant of a class: `mod NAME { fn VARIANT() }`, each
/// calling the function `NAME` with the variant of that name.
macro_rules! hostile {
    ($name:ident: $($variant:ident),+) => {
        mod $name {
            $(
                #[test]
                fn $variant() {
                    super::$name(super::variant::$variant())
                }
            )+
        }
    };
}

/// The root directory's inode.
const ROOT: u32 = 2;

/// Writes a file of the source tree (parents created).
fn put(h: &Hostile, rel: &str, data: &[u8]) {
    let path = h.src.join(rel);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    write_file(&path, data);
}

/// A symlink of the source tree.
fn link(h: &Hostile, rel: &str, target: impl AsRef<std::path::Path>) {
    symlink(target, h.src.join(rel)).expect("symlink");
}

/// An ext4 image (4 KiB blocks, metadata_csum) of a file `keep` and
/// whatever `extra` adds to the source tree, edited by `edit`.
fn ext4_edited(v: Variant, extra: impl FnOnce(&Hostile), edit: impl FnOnce(&Editor)) -> Hostile {
    let h = Hostile::new("ext4", 4096);
    put(&h, "keep", b"keep\n");
    extra(&h);
    h.build(&[]);
    edit(&h.editor(v.sums));
    h
}

// Class 1: names that lead out of DEST. Each is made from an ordinary
// entry (a placeholder of the same length) by rewriting its name in the
// directory block.

/// An image whose root has the entry `placeholder` renamed to `name`
/// (`extra` adds to the source first); extract must refuse it naming the
/// inode and the name (`shown`, how the message may show it), leaving no
/// DEST and nothing outside; verify must fail too.
fn escaping_name(
    v: Variant,
    placeholder: &str,
    name: &[u8],
    shown: &str,
    extra: impl FnOnce(&Hostile),
) {
    let h = ext4_edited(
        v,
        |h| {
            extra(h);
            if !h.src.join(placeholder).exists() {
                put(h, placeholder, b"escaped\n");
            }
        },
        |ed| ed.rename(ROOT, placeholder.as_bytes(), name),
    );
    h.check(v)
        .extract(fails(&["inode", shown]))
        .verify(fails(&[]))
        .build(fails(&[]))
        .run();
}

/// `../../x`: two levels up from DEST.
fn dotdot_in_name(v: Variant) {
    escaping_name(v, "zzzzzzz", b"../../x", "../../x", |_| {});
}

/// `a/x`, after `a`, a symlink to an absolute directory outside DEST.
fn name_through_absolute_symlink(v: Variant) {
    escaping_name(v, "zzz", b"a/x", "a/x", |h| link(h, "a", h.canary()));
}

/// `a/x`, after `a`, a symlink `../outside` (relative, beside DEST).
fn name_through_relative_symlink(v: Variant) {
    escaping_name(v, "zzz", b"a/x", "a/x", |h| link(h, "a", "../outside"));
}

/// A second name of a file (a hard link) renamed `../y`.
fn hard_link_renamed_out(v: Variant) {
    escaping_name(v, "hhhh", b"../y", "../y", |h| {
        std::fs::hard_link(h.src.join("keep"), h.src.join("hhhh")).expect("link");
    });
}

/// A second entry `.`, beside the real one (every message holds a dot:
/// only the inode is looked for).
fn extra_dot_entry(v: Variant) {
    escaping_name(v, "z", b".", "inode", |_| {});
}

/// A second entry `..`, beside the real one.
fn extra_dotdot_entry(v: Variant) {
    escaping_name(v, "zz", b"..", "..", |_| {});
}

/// An entry whose name is empty (`name_len` 0).
fn empty_name(v: Variant) {
    escaping_name(v, "zzz", b"", "inode", |_| {});
}

/// A name with a NUL byte, which must be shown escaped.
fn nul_in_name(v: Variant) {
    escaping_name(v, "zzz", b"z\0z", "\\0|\\x00", |_| {});
}

hostile!(dotdot_in_name: checksums_recomputed, checksums_stale, as_nobody);
hostile!(name_through_absolute_symlink: checksums_recomputed, checksums_stale, as_nobody);
hostile!(name_through_relative_symlink: checksums_recomputed, checksums_stale, as_nobody);
hostile!(hard_link_renamed_out: checksums_recomputed, checksums_stale, as_nobody);
hostile!(extra_dot_entry: checksums_recomputed, checksums_stale, as_nobody);
hostile!(extra_dotdot_entry: checksums_recomputed, checksums_stale, as_nobody);
hostile!(empty_name: checksums_recomputed, checksums_stale, as_nobody);
hostile!(nul_in_name: checksums_recomputed, checksums_stale, as_nobody);

// Class 2.

/// Two entries of one directory with the same name.
fn duplicate_names(v: Variant) {
    let h = ext4_edited(
        v,
        |h| {
            put(h, "dup1", b"one\n");
            put(h, "dup2", b"two\n");
        },
        |ed| ed.rename(ROOT, b"dup2", b"dup1"),
    );
    h.check(v)
        .extract(fails(&["dup1"]))
        .verify(fails(&[]))
        .build(fails(&["dup1"]))
        .run();
}

hostile!(duplicate_names: checksums_recomputed, checksums_stale, as_nobody);

// Class 3.

/// Bytes of the size the symlinks claim.
const TIB: u64 = 1 << 40;
/// A target longer than `i_block` (a symlink with a data block).
const SLOW_TARGET: &str = "a_directory_with_a_long_name/and_a_file_whose_name_is_long_too";

/// A fast and a slow symlink whose inodes claim 1 TiB: reading them must
/// stay within the memory bound; `cat` follows them to their target or
/// fails.
fn symlink_claims_a_tebibyte(v: Variant) {
    let h = ext4_edited(
        v,
        |h| {
            put(h, SLOW_TARGET, b"the target\n");
            link(h, "slow", SLOW_TARGET);
            link(h, "fast", "keep");
        },
        |ed| {
            for path in ["/slow", "/fast"] {
                ed.set_size(ed.ino(path), TIB);
            }
        },
    );
    h.check(v)
        .ls(fails(&[]))
        .cat("/slow", Expect::OutputsOrFails(b"the target\n".to_vec()))
        .cat("/fast", Expect::OutputsOrFails(b"keep\n".to_vec()))
        .extract(fails(&[]))
        .verify(fails(&[]))
        .build(fails(&[]))
        .run();
}

hostile!(symlink_claims_a_tebibyte: checksums_recomputed, checksums_stale, as_nobody);

// Class 4: extent trees whose index nodes share children. The file
// `frag` has 600 extents, which at 1 KiB blocks (84 entries a node) need
// two levels below the inode: the root → one index node → 8 leaves.

/// Extents of `frag`.
const FRAG_EXTENTS: u64 = 600;

/// Adds `frag`: 4 KiB of data every 8 KiB (the host's holes are 4 KiB).
fn fragmented(h: &Hostile) {
    let pieces: Vec<(u64, u64)> = (0..FRAG_EXTENTS).map(|i| (i * 8192, 4096)).collect();
    fixture::sparse(&h.src.join("frag"), FRAG_EXTENTS * 8192, &pieces);
}

/// The extent tree of `frag`: its inode, the index node below the root
/// and the leaves (as the builder lays them out: checked).
struct FragTree {
    ino: u32,
    node: u64,
    leaves: Vec<u64>,
}

impl FragTree {
    fn find(ed: &Editor) -> FragTree {
        let ino = ed.ino("/frag");
        let slot = ed.inode_slot(ino);
        let root = &slot[inode::I_BLOCK..inode::I_BLOCK + inode::I_BLOCK_LEN];
        assert_eq!(edit::extent_depth(root), 2, "frag's tree has two levels");
        let (_, blocks) = ed.map(ino);
        assert!(blocks.len() >= 4, "an index node and leaves: {blocks:?}");
        FragTree {
            ino,
            node: blocks[0],
            leaves: blocks[1..].to_vec(),
        }
    }

    /// Rewrites tree block `pblk` as an index node of `depth` whose
    /// entries all point at `child`, as many as it holds.
    fn all_to(&self, ed: &Editor, pblk: u64, depth: u16, child: u64) {
        ed.edit_block(pblk, BlockSum::ExtentNode { owner: self.ino }, |b| {
            let max = (b.len() - edit::extent::HEADER) / edit::extent::ENTRY;
            let children: Vec<(u32, u64)> = (0..max as u32).map(|k| (k, child)).collect();
            edit::put_index_node(b, depth, &children);
        });
    }

    /// Rewrites the root (in the inode) as an index node of `depth`.
    fn root(&self, ed: &Editor, depth: u16, children: &[(u32, u64)]) {
        ed.edit_inode(self.ino, |s| {
            let root = &mut s[inode::I_BLOCK..inode::I_BLOCK + inode::I_BLOCK_LEN];
            edit::put_index_node(root, depth, children);
        });
    }
}

/// An image of `frag` (1 KiB blocks) with its tree edited by `edit`;
/// reading `frag` must fail, quickly and within the memory bound.
fn extent_tree_edited(v: Variant, edit: impl FnOnce(&Editor, &FragTree)) {
    let h = Hostile::new("ext4", 1024);
    fragmented(&h);
    h.build(&[]);
    let ed = h.editor(v.sums);
    edit(&ed, &FragTree::find(&ed));
    h.check(v)
        .cat("/frag", fails(&[]))
        .extract(fails(&[]))
        .verify(fails(&[]))
        .build(fails(&[]))
        .run();
}

/// Every entry of the index node points at the first leaf.
fn extent_leaf_shared(v: Variant) {
    extent_tree_edited(v, |ed, t| {
        let lblks = edit::index_entries(&ed.block(t.node));
        ed.edit_block(t.node, BlockSum::ExtentNode { owner: t.ino }, |b| {
            let shared: Vec<(u32, u64)> = lblks.iter().map(|&(l, _)| (l, t.leaves[0])).collect();
            edit::put_index_node(b, 1, &shared);
        });
    });
}

/// The root's two entries share the index node below them.
fn extent_index_node_shared(v: Variant) {
    extent_tree_edited(v, |ed, t| {
        let second = edit::index_entries(&ed.block(t.node))[1].0;
        t.root(ed, 2, &[(0, t.node), (second, t.node)]);
    });
}

/// The index node's entries point at itself.
fn extent_node_points_at_itself(v: Variant) {
    extent_tree_edited(v, |ed, t| t.all_to(ed, t.node, 1, t.node));
}

/// Four levels below the root, each node's entries all pointing at the
/// one node below: 4 × 84³ paths to the leaf, each with its 84 extents
/// (200 million).
fn extent_tree_shares_every_level(v: Variant) {
    extent_tree_edited(v, |ed, t| {
        let (n3, n2, n1) = (t.node, t.leaves[1], t.leaves[2]);
        t.all_to(ed, n1, 1, t.leaves[0]);
        t.all_to(ed, n2, 2, n1);
        t.all_to(ed, n3, 3, n2);
        t.root(ed, 4, &[(0, n3), (1, n3), (2, n3), (3, n3)]);
    });
}

hostile!(extent_leaf_shared: checksums_recomputed, checksums_stale);
hostile!(extent_index_node_shared: checksums_recomputed, checksums_stale);
hostile!(extent_node_points_at_itself: checksums_recomputed, checksums_stale);
hostile!(extent_tree_shares_every_level: checksums_recomputed, checksums_stale, as_nobody);

// Class 5: ext3 block maps (no checksums) that reach a block twice.

/// Slots of `i_block` for the single and double indirect blocks.
const IND_SLOT: usize = 12;
const DIND_SLOT: usize = 13;
/// The size `big` claims once edited.
const FOUR_GIB: u64 = 4 << 30;

/// An ext3 image of `big` (`len` bytes of data) with `edit` applied to
/// its block map; reading `big` must fail, and extract may not fill the
/// disk (`dest_problems` holds DEST to the image's size).
fn block_map_edited(v: Variant, block_size: u32, len: usize, edit: impl FnOnce(&Editor, u32)) {
    let h = Hostile::new("ext3", block_size);
    put(&h, "big", &fixture::bytes(5, len));
    h.build(&[]);
    let ed = h.editor(v.sums);
    edit(&ed, ed.ino("/big"));
    h.check(v)
        .cat("/big", fails(&[]))
        .extract(fails(&[]))
        .verify(fails(&[]))
        .build(fails(&[]))
        .run();
}

/// Block pointer `slot` of `i_block`.
fn i_block_slot(ed: &Editor, ino: u32, slot: usize) -> u32 {
    edit::get_u32(&ed.inode_slot(ino), inode::I_BLOCK + slot * 4)
}

/// The indirect block's first pointer is the indirect block itself.
fn indirect_block_points_at_itself(v: Variant) {
    block_map_edited(v, 4096, 20 * 4096, |ed, ino| {
        let ind = i_block_slot(ed, ino, IND_SLOT);
        ed.edit_block(ind.into(), BlockSum::None, |b| put_u32(b, 0, ind));
    });
}

/// The file claims 4 GiB, and every pointer of its indirect block is the
/// same data block.
fn indirect_pointers_share_a_block(v: Variant) {
    block_map_edited(v, 4096, 20 * 4096, |ed, ino| {
        let (data, ind) = (i_block_slot(ed, ino, 0), i_block_slot(ed, ino, IND_SLOT));
        ed.edit_block(ind.into(), BlockSum::None, |b| {
            (0..b.len()).step_by(4).for_each(|at| put_u32(b, at, data));
        });
        ed.set_size(ino, FOUR_GIB);
    });
}

/// The file claims 4 GiB, and every pointer of its double indirect block
/// is the double indirect block: 65,536 mapped blocks from one.
fn double_indirect_points_at_itself(v: Variant) {
    block_map_edited(v, 1024, 300 << 10, |ed, ino| {
        let dind = i_block_slot(ed, ino, DIND_SLOT);
        ed.edit_block(dind.into(), BlockSum::None, |b| {
            (0..b.len()).step_by(4).for_each(|at| put_u32(b, at, dind));
        });
        ed.set_size(ino, FOUR_GIB);
    });
}

hostile!(indirect_block_points_at_itself: no_checksums);
hostile!(indirect_pointers_share_a_block: no_checksums);
hostile!(double_indirect_points_at_itself: no_checksums, as_nobody);

// Class 6: absurd superblock counts.

/// An ext4 image with superblock fields (offset, value) set: verify must
/// fail (1 or 2) without a panic, in time, and a build refuse the
/// superblock.
fn superblock_fields(v: Variant, fields: &[(usize, u32)]) {
    let h = ext4_edited(
        v,
        |_| {},
        |ed| {
            for &(off, value) in fields {
                ed.set_super_u32(off, value);
            }
        },
    );
    h.check(v)
        .verify(fails(&[]))
        .build(fails(&["superblock"]))
        .run();
}

fn absurd_inodes_count(v: Variant) {
    superblock_fields(v, &[(sb::S_INODES_COUNT, u32::MAX)]);
}

fn absurd_first_ino(v: Variant) {
    superblock_fields(v, &[(sb::S_FIRST_INO, 0xFFFF_FFF0)]);
}

fn zero_first_ino(v: Variant) {
    superblock_fields(v, &[(sb::S_FIRST_INO, 0)]);
}

/// Both absurd: every inode number up to 2^32 counts as reserved.
fn absurd_first_ino_and_inodes_count(v: Variant) {
    let absurd = 0xFFFF_FFF0;
    superblock_fields(
        v,
        &[(sb::S_INODES_COUNT, absurd), (sb::S_FIRST_INO, absurd)],
    );
}

hostile!(absurd_inodes_count: checksums_recomputed, checksums_stale);
hostile!(absurd_first_ino: checksums_recomputed, checksums_stale);
hostile!(zero_first_ino: checksums_recomputed, checksums_stale);
hostile!(absurd_first_ino_and_inodes_count: checksums_recomputed, checksums_stale);

/// The root inode made a regular file (the extract fuzz target's first
/// input): extract must refuse it, not restore the root as a file.
fn root_is_not_a_directory(v: Variant) {
    let h = ext4_edited(
        v,
        |_| {},
        |ed| ed.edit_inode(2, |s| put_u16(s, inode::I_MODE, 0o100_644)),
    );
    h.check(v)
        .extract(fails(&[]))
        .verify(fails(&[]))
        .build(fails(&[]))
        .run();
}

hostile!(root_is_not_a_directory: checksums_recomputed, checksums_stale);

// Class 7.

/// Levels of the shared directory graph: 2^40 paths to the deepest.
const DAG_LEVELS: usize = 40;

/// 40 nested directories, each with two entries `a` and `b` pointing at
/// the next (no cycle, but 2^40 paths): listing, extracting and verifying
/// must stop at the first directory reached twice.
fn directories_shared_not_cyclic(v: Variant) {
    let h = Hostile::new("ext4", 4096);
    let mut dir = h.src.clone();
    for _ in 0..DAG_LEVELS {
        std::fs::create_dir(dir.join("b")).expect("mkdir b");
        dir = dir.join("a");
        std::fs::create_dir(&dir).expect("mkdir a");
    }
    h.build(&[]);
    let ed = h.editor(v.sums);
    // Every lookup before the first edit: with stale checksums a reader
    // may refuse the edited blocks.
    let levels: Vec<(u32, u32)> = (0..DAG_LEVELS)
        .map(|k| {
            let parent = format!("/{}", "a/".repeat(k));
            (ed.ino(&parent), ed.ino(&format!("{parent}a")))
        })
        .collect();
    for (parent, a) in levels {
        ed.relink(parent, b"b", a);
    }
    h.check(v)
        .ls(fails(&["twice|again"]))
        .extract(fails(&[]))
        .verify(fails(&[]))
        .build(fails(&["twice|again"]))
        .run();
}

hostile!(directories_shared_not_cyclic: checksums_recomputed, checksums_stale, as_nobody);

// Class 8: control characters, shown escaped (as `ls -b` does) in human
// output and exact in JSON.

/// A name that would turn a terminal red, and one with a line break.
const RED_NAME: &[u8] = b"red\x1b[31mname";
const NEWLINE_NAME: &[u8] = b"new\nline";
/// A symlink target with both.
const CONTROL_TARGET: &[u8] = b"tar\x1b[2Jget\nx";
/// A label with both (16 bytes at most).
const CONTROL_LABEL: &[u8] = b"\x1b[31mred\nlabel";

/// The ways escaped output may show `raw`, as `|` alternatives: ESC as
/// `\033`, `\e` or `\x1b`, a line break as `\n`.
fn escaped(raw: &[u8]) -> String {
    ["\\033", "\\e", "\\x1b"]
        .iter()
        .map(|esc| {
            raw.iter()
                .map(|&c| match c {
                    0x1b => esc.to_string(),
                    b'\n' => "\\n".to_string(),
                    c => char::from(c).to_string(),
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("|")
}

fn control_chars_in_names(v: Variant) {
    let h = Hostile::new("ext4", 4096);
    for name in [RED_NAME, NEWLINE_NAME] {
        write_file(&h.src.join(OsStr::from_bytes(name)), b"x\n");
    }
    h.build(&[]);
    let names = [escaped(RED_NAME), escaped(NEWLINE_NAME)];
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    h.check(v)
        .expect(Kind::Ls, &[], prints(&names))
        .expect(Kind::Ls, &["-l"], prints(&names))
        .ls(prints(&names))
        .build(prints(&[]))
        .run();
}

fn control_chars_in_symlink_target(v: Variant) {
    let h = Hostile::new("ext4", 4096);
    link(&h, "link", OsStr::from_bytes(CONTROL_TARGET));
    h.build(&[]);
    let target = escaped(CONTROL_TARGET);
    h.check(v)
        .expect(Kind::Ls, &["-l"], prints(&[&target]))
        .ls(prints(&[&target]))
        .build(prints(&[]))
        .run();
}

/// `info --json` holds the label exactly.
fn json_label_exact(out: &bounded::Finished) -> Result<(), String> {
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("not JSON: {e}"))?;
    let want = std::str::from_utf8(CONTROL_LABEL).expect("UTF-8");
    match report["label"].as_str() {
        Some(label) if label == want => Ok(()),
        other => Err(format!("label {other:?}, not {want:?}")),
    }
}

fn control_chars_in_label(v: Variant) {
    let h = ext4_edited(
        v,
        |_| {},
        |ed| {
            ed.edit_super(|b| {
                let label = &mut b[sb::S_VOLUME_NAME..sb::S_VOLUME_NAME + 16];
                label.fill(0);
                label[..CONTROL_LABEL.len()].copy_from_slice(CONTROL_LABEL);
            })
        },
    );
    h.check(v)
        .info(prints(&[&escaped(CONTROL_LABEL)]))
        .info_json(Expect::Custom(json_label_exact))
        .build(prints(&[]))
        .run();
}

hostile!(control_chars_in_names: no_checksums);
hostile!(control_chars_in_symlink_target: no_checksums);
hostile!(control_chars_in_label: checksums_recomputed);

// Class 9: a checksum wrong and nothing else. Only the checksum's own bit
// is flipped, so the data read is what it should be.

/// `cat`, `extract` and `build` must refuse, naming the structure (`what`)
/// and the checksum; with `--ignore-checksums` they go on and warn.
fn checksum_flipped(h: &Hostile, path: &str, what: &str) {
    let v = variant::checksum_wrong();
    let named = [what, "checksum"];
    h.check(v)
        .cat(path, fails(&named))
        .extract(fails(&named))
        .build(fails(&named))
        .expect(
            Kind::Cat(path.into()),
            &["--ignore-checksums"],
            warns(&["checksum"]),
        )
        .expect(Kind::Extract, &["--ignore-checksums"], warns(&["checksum"]))
        .expect(Kind::Build, &["--ignore-checksums"], warns(&["checksum"]))
        .run();
}

/// `/d/f`, whose inode's checksum is off by one bit.
#[test]
fn inode_checksum_wrong() {
    let h = ext4_edited(
        variant::checksum_wrong(),
        |h| put(h, "d/f", b"content\n"),
        |ed| ed.edit_inode(ed.ino("/d/f"), |s| s[inode::L_I_CHECKSUM_LO] ^= 1),
    );
    checksum_flipped(&h, "/d/f", "inode");
}

/// `/d/f`, in a directory block whose checksum is off by one bit.
#[test]
fn dir_block_checksum_wrong() {
    let h = ext4_edited(
        variant::checksum_wrong(),
        |h| put(h, "d/f", b"content\n"),
        |ed| {
            let (runs, _) = ed.map(ed.ino("/d"));
            ed.edit_block(runs[0].pblk, BlockSum::None, |b| {
                let last = b.len() - 1;
                b[last] ^= 1;
            });
        },
    );
    checksum_flipped(&h, "/d/f", "director");
}

/// `frag`, one of whose extent leaves has its checksum off by one bit.
#[test]
fn extent_block_checksum_wrong() {
    let h = Hostile::new("ext4", 1024);
    fragmented(&h);
    h.build(&[]);
    let ed = h.editor(Sums::Stale);
    let leaf = FragTree::find(&ed).leaves[0];
    ed.edit_block(leaf, BlockSum::None, |b| {
        let entries = (b.len() - edit::extent::HEADER) / edit::extent::ENTRY;
        b[edit::extent::HEADER + entries * edit::extent::ENTRY] ^= 1;
    });
    checksum_flipped(&h, "/frag", "extent");
}

// Class 10: what verify must report, and what the readers must refuse.

/// A feature bit no ext4 version defines.
const UNKNOWN_FEATURE: u32 = 0x8000_0000;

/// Sets `bits` in the superblock's feature word at `off`.
fn set_feature(ed: &Editor, off: usize, bits: u32) {
    let features = ed.super_u32(off);
    ed.set_super_u32(off, features | bits);
}

/// An unknown INCOMPAT feature: the kernel refuses to mount; kiln's
/// readers must refuse too, and verify report it.
fn unknown_incompat_feature(v: Variant) {
    let h = ext4_edited(
        v,
        |_| {},
        |ed| set_feature(ed, sb::S_FEATURE_INCOMPAT, UNKNOWN_FEATURE),
    );
    h.check(v)
        .ls(fails(&["feature"]))
        .cat("/keep", fails(&["feature"]))
        .extract(fails(&["feature"]))
        .verify(fails(&["feature"]))
        .build(fails(&["feature"]))
        .run();
}

/// An unknown RO_COMPAT feature: reading is allowed, verify reports it.
fn unknown_ro_compat_feature(v: Variant) {
    let h = ext4_edited(
        v,
        |_| {},
        |ed| set_feature(ed, sb::S_FEATURE_RO_COMPAT, UNKNOWN_FEATURE),
    );
    h.check(v).verify(fails(&["feature"])).run();
}

/// The journal needs recovery: info names it, verify reports it.
fn needs_recovery(v: Variant) {
    let h = ext4_edited(
        v,
        |_| {},
        |ed| set_feature(ed, sb::S_FEATURE_INCOMPAT, sb::INCOMPAT_RECOVER),
    );
    h.check(v)
        .info(prints(&["needs_recovery"]))
        .verify(fails(&["recovery"]))
        .build(fails(&["recovery"]))
        .run();
}

/// Entries of the indexed directory `big`.
const BIG_DIR_ENTRIES: usize = 600;

/// An image whose indexed directory `big` has its dx_root edited by
/// `edit` (given the offset of `limit`/`count`, and their values);
/// verify must report the index.
fn htree_root_edited(v: Variant, edit: impl FnOnce(&mut [u8], usize, u16, u16)) {
    let h = ext4_edited(
        v,
        |h| {
            for i in 0..BIG_DIR_ENTRIES {
                put(h, &format!("big/entry_{i:04}_with_a_name_long_enough"), b"");
            }
        },
        |ed| {
            let dir = ed.ino("/big");
            let root = ed.dx_root_block(dir);
            ed.edit_block(root, BlockSum::DxRoot { dir }, |b| {
                let (at, limit, count) = edit::dx_count_limit(b);
                assert!(count >= 3, "big/ has at least 3 leaves: {count}");
                edit(b, at, limit, count);
            });
        },
    );
    h.check(v).verify(fails(&["htree|index"])).run();
}

/// The hashes of the second and third index entries swapped: no longer ascending.
fn htree_hashes_out_of_order(v: Variant) {
    htree_root_edited(v, |b, at, _, _| {
        let (one, two) = (at + edit::dx::ENTRY, at + 2 * edit::dx::ENTRY);
        let (h1, h2) = (edit::get_u32(b, one), edit::get_u32(b, two));
        put_u32(b, one, h2);
        put_u32(b, two, h1);
    });
}

/// `count` 0: not even the entry for the lowest hashes.
fn htree_count_zero(v: Variant) {
    htree_root_edited(v, |b, at, _, _| put_u16(b, at + 2, 0));
}

/// `limit` shrunk to `count` (the tail moved after the entries in use),
/// which the block size does not give.
fn htree_limit_wrong(v: Variant) {
    htree_root_edited(v, |b, at, _, count| {
        put_u16(b, at, count);
        let tail = at + usize::from(count) * edit::dx::ENTRY;
        b[tail..tail + edit::dx::TAIL].fill(0);
    });
}

hostile!(unknown_incompat_feature: checksums_recomputed, checksums_stale);
hostile!(unknown_ro_compat_feature: checksums_recomputed, checksums_stale);
hostile!(needs_recovery: checksums_recomputed, checksums_stale);
hostile!(htree_hashes_out_of_order: checksums_recomputed, checksums_stale);
hostile!(htree_count_zero: checksums_recomputed, checksums_stale);
hostile!(htree_limit_wrong: checksums_recomputed, checksums_stale);

// Class 11.

/// A GPT disk whose second partition's filesystem claims twice its blocks.
fn filesystem_larger_than_partition(v: Variant) {
    let mut h = Hostile::new("ext4", 4096);
    put(&h, "keep", b"keep\n");
    h.build_disk();
    let ed = h.editor(v.sums);
    let blocks = ed.super_u32(sb::S_BLOCKS_COUNT_LO);
    ed.set_super_u32(sb::S_BLOCKS_COUNT_LO, blocks * 2);
    h.check(v)
        .ls(fails(&["partition"]))
        .cat("/keep", fails(&["partition"]))
        .extract(fails(&["partition"]))
        .verify(fails(&["partition"]))
        .build(fails(&["partition"]))
        .run();
}

hostile!(filesystem_larger_than_partition: checksums_recomputed, checksums_stale);

// Class 12.

/// Bytes of non-zero data to extract: long enough to be interrupted.
const INTERRUPTED_BYTES: usize = 256 << 20;

/// SIGTERM while `extract` writes a large file: it stops, says so, and
/// removes what it created (DEST), writing nothing else.
#[test]
fn interrupted_extract_removes_dest() {
    let h = Hostile::new("ext4", 4096);
    put(&h, "big", &vec![0x5a; INTERRUPTED_BYTES]);
    h.build(&[]);
    let dest = h.dest();
    let before = arena::snapshot(h.dir(), &dest);
    let mut cmd = kiln_command();
    cmd.arg("extract").arg(&h.image).arg(&dest);
    // extract fills a temporary directory beside DEST: interrupt it once
    // the big file is being written there.
    let parent = dest.parent().unwrap().to_path_buf();
    let writing = || {
        std::fs::read_dir(&parent)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.file_name().to_string_lossy().starts_with(".kiln-")
                    && e.path().join("tree/big").exists()
            })
    };
    let out = bounded::interrupt_when(&mut cmd, writing);
    let mut problems = arena::changes(&before, &arena::snapshot(h.dir(), &dest));
    if out.code() != Some(130) {
        problems.push("should exit with status 130 (interrupted)".into());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    if !said.contains("interrupted") {
        problems.push("should say it was interrupted".into());
    }
    if dest.symlink_metadata().is_ok() {
        problems.push(if said.contains("removed") {
            "says the partial output was removed, but DEST is still there".into()
        } else {
            "left DEST behind".into()
        });
    }
    assert!(problems.is_empty(), "{problems:#?}\n{}", out.describe());
}

// The control: a valid image passes every check, so the bounds and the
// snapshot cannot be what fails the cases above.

fn pristine_image(v: Variant) {
    let h = Hostile::new("ext4", 4096);
    fixture::small(&h.src);
    h.build(&[]);
    h.check(v)
        .info(prints(&["ext4"]))
        .info_json(prints(&["ext4"]))
        .ls(prints(&["usr/big", "etc/passwd"]))
        .cat("/usr/fstab_link", prints(&["# base fstab"]))
        .cat("/usr/big", prints(&[]))
        .extract(prints(&[]))
        .verify(prints(&[]))
        .build(prints(&[]))
        .run();
}

hostile!(pristine_image: no_checksums, as_nobody);
