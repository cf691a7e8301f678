//! dm-verity for a plain image: what a build asks for
//! ([`VerityRequest`]), the tree's parameters settled from the planned
//! filesystem, the hash area written after the image or into a file of its
//! own, and what the report says ([`VerityReport`]).
//!
//! The tree is hashed from the writes themselves (kiln-verity's
//! `VeritySink` between the emitter and the output), so streams (`-o -`,
//! `.zst`) get one too: an appended hash area comes after everything else.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use kiln_sink::target::{check_output, OutputKind};
use kiln_sink::{Sink, SparseFile};
use kiln_verity::tree::TreeLayout;
use kiln_verity::{HashArea, VerityParams, DEFAULT_BLOCK_SIZE};
use serde::Serialize;

use crate::{Observer, OutputRequest};

/// A dm-verity hash tree for a build's image, in veritysetup's format 1
/// with SHA-256 and 4,096-byte data and hash blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerityRequest {
    /// Where the hash area goes.
    pub hash: HashPlace,
    /// The salt (default: 32 bytes derived from the inputs).
    pub salt: Option<Vec<u8>>,
    /// The UUID in the verity superblock (default: derived from the salt).
    pub uuid: Option<[u8; 16]>,
    /// Whether the hash area opens with a verity superblock
    /// (veritysetup's default).
    pub superblock: bool,
}

/// Where a hash area is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashPlace {
    /// A new file of its own (the hash device).
    File(PathBuf),
    /// The image's own output, after the filesystem, at the next multiple
    /// of 4,096 bytes (as tar2ext4 does).
    Append,
}

impl VerityRequest {
    /// A tree with a derived salt and UUID and a superblock, at `hash`.
    pub fn new(hash: HashPlace) -> VerityRequest {
        VerityRequest {
            hash,
            salt: None,
            uuid: None,
            superblock: true,
        }
    }

    /// Checks the salt and the hash file's path (a new file, or an
    /// existing one with `force`; not the image nor one of `inputs`),
    /// before any source is read.
    pub(crate) fn check(&self, output: &OutputRequest, inputs: &[&Path]) -> Result<()> {
        if let Some(salt) = &self.salt {
            if salt.len() > kiln_verity::superblock::MAX_SALT {
                bail!("--verity-salt: {} bytes, at most 256", salt.len());
            }
        }
        let HashPlace::File(path) = &self.hash else {
            return Ok(());
        };
        let mut inputs = inputs.to_vec();
        inputs.push(&output.path);
        let kind = check_output(&kiln_sink::target::OutputRequest {
            path,
            force: output.force,
            offset: None,
            grow: false,
            inputs: &inputs,
        })
        .with_context(|| format!("--verity {}", path.display()))?;
        if kind != OutputKind::File {
            bail!("--verity {}: the hash tree goes to a file", path.display());
        }
        Ok(())
    }
}

/// A request's tree settled for a planned filesystem.
pub(crate) struct VerityPlan {
    pub(crate) params: VerityParams,
    hash: HashPlace,
    area_size: u64,
}

impl VerityPlan {
    /// The tree of a filesystem of `fs_size` bytes, whose inputs
    /// `identity` tells apart (for the derived salt). An image that is not
    /// a whole number of data blocks is padded with zeros (noted).
    pub(crate) fn new(
        req: &VerityRequest,
        fs_size: u64,
        identity: &[u8],
        observer: &dyn Observer,
    ) -> Result<VerityPlan> {
        let data_size = fs_size.next_multiple_of(u64::from(DEFAULT_BLOCK_SIZE));
        if data_size != fs_size {
            observer.note(&format!(
                "dm-verity: the image is padded with {} zero bytes to whole {DEFAULT_BLOCK_SIZE}-byte \
                 blocks",
                data_size - fs_size
            ));
        }
        let mut params = derive_params(data_size, identity, req.salt.clone(), req.uuid)?;
        params.superblock = req.superblock;
        let area_size = TreeLayout::new(&params).area_size();
        Ok(VerityPlan {
            params,
            hash: req.hash.clone(),
            area_size,
        })
    }

    /// Where the hash area starts in its file: after the data when
    /// appended, else at 0.
    fn hash_offset(&self) -> u64 {
        match self.hash {
            HashPlace::Append => self.params.data_size(),
            HashPlace::File(_) => 0,
        }
    }

    /// The bytes the image's output holds: the data, and the hash area if
    /// appended.
    pub(crate) fn output_size(&self) -> u64 {
        match self.hash {
            HashPlace::Append => self.params.data_size() + self.area_size,
            HashPlace::File(_) => self.params.data_size(),
        }
    }

    /// Writes the finished tree: after the image into `image` (then tells
    /// it the output is complete), or into its own file, committed with
    /// `durability`.
    pub(crate) fn write(
        &self,
        area: &HashArea,
        image: &dyn Sink,
        output: &OutputRequest,
    ) -> Result<VerityReport> {
        match &self.hash {
            HashPlace::Append => {
                let at = self.hash_offset();
                image.write_at(at, &area.bytes)?;
                image.advance(at + area.bytes.len() as u64)?;
            }
            HashPlace::File(path) => {
                let file = SparseFile::create(path, area.bytes.len() as u64, output.force)?;
                file.write_at(0, &area.bytes)?;
                file.commit(output.durability)?;
            }
        }
        Ok(self.report(area, output))
    }

    /// What the report says of the tree.
    fn report(&self, area: &HashArea, output: &OutputRequest) -> VerityReport {
        let p = &self.params;
        let root_hash = hex(&area.root);
        let hash_file = match &self.hash {
            HashPlace::File(path) => Some(path.clone()),
            HashPlace::Append => None,
        };
        let open = open_command(self, &root_hash, &output.path);
        VerityReport {
            root_hash,
            salt: hex(&p.salt),
            uuid: p
                .superblock
                .then(|| uuid::Uuid::from_bytes(p.uuid).to_string()),
            hash_algorithm: kiln_verity::ALGORITHM,
            data_block_size: p.data_block_size,
            hash_block_size: p.hash_block_size,
            data_blocks: p.data_blocks,
            hash_offset: self.hash_offset(),
            hash_size: self.area_size,
            hash_file,
            superblock: p.superblock,
            veritysetup_open: open,
        }
    }
}

/// The parameters of the tree of `data_size` bytes (whole blocks) whose
/// inputs `identity` tells apart: the salt given or derived from the
/// identity and the size, the UUID given or derived from the salt, a
/// superblock.
pub(crate) fn derive_params(
    data_size: u64,
    identity: &[u8],
    salt: Option<Vec<u8>>,
    uuid: Option<[u8; 16]>,
) -> Result<VerityParams> {
    let salt = salt.unwrap_or_else(|| {
        let mut seed = identity.to_vec();
        seed.extend_from_slice(&data_size.to_le_bytes());
        kiln_verity::derive_salt(&seed).to_vec()
    });
    let uuid = uuid.unwrap_or_else(|| kiln_verity::derive_uuid(&salt));
    Ok(VerityParams::for_image(data_size, salt, uuid)?)
}

/// What a build's dm-verity tree is: enough to open the device.
#[derive(Clone, Debug, Serialize)]
pub struct VerityReport {
    /// The root hash in hex: what the boot chain must trust.
    pub root_hash: String,
    /// The salt in hex.
    pub salt: String,
    /// The superblock's UUID (none without a superblock).
    pub uuid: Option<String>,
    /// `sha256`.
    pub hash_algorithm: &'static str,
    /// Bytes per data block.
    pub data_block_size: u32,
    /// Bytes per hash block.
    pub hash_block_size: u32,
    /// Data blocks covered, from the image's start.
    pub data_blocks: u64,
    /// Where the hash area starts in its file (in the image when appended).
    pub hash_offset: u64,
    /// Bytes of the hash area.
    pub hash_size: u64,
    /// The hash file, when the tree is not appended to the image.
    pub hash_file: Option<PathBuf>,
    /// Whether the hash area opens with a verity superblock.
    pub superblock: bool,
    /// The `veritysetup open` command line for the image as written (a
    /// compressed image once decompressed to its name without `.zst`).
    pub veritysetup_open: String,
}

/// The `veritysetup open` line of `plan`'s tree for the image at `image`.
fn open_command(plan: &VerityPlan, root_hash: &str, image: &Path) -> String {
    let data = data_path(image);
    let hash = match &plan.hash {
        HashPlace::File(path) => path.display().to_string(),
        HashPlace::Append => data.clone(),
    };
    let name = Path::new(&data)
        .file_stem()
        .map_or("verity".into(), |s| s.to_string_lossy().into_owned());
    let mut cmd = ["veritysetup", "open", &data, &name, &hash, root_hash]
        .map(quote)
        .join(" ");
    if let HashPlace::Append = plan.hash {
        cmd += &format!(" --hash-offset={}", plan.hash_offset());
    }
    if !plan.params.superblock {
        let p = &plan.params;
        let salt = if p.salt.is_empty() {
            "-".into()
        } else {
            hex(&p.salt)
        };
        cmd += &format!(
            " --no-superblock --format=1 --hash={} --data-block-size={} --hash-block-size={} \
             --data-blocks={} --salt={salt}",
            kiln_verity::ALGORITHM,
            p.data_block_size,
            p.hash_block_size,
            p.data_blocks
        );
    }
    cmd
}

/// The path the image is opened from: stdout's image has none (`IMAGE`),
/// a `.zst` one is decompressed first.
fn data_path(image: &Path) -> String {
    if image == Path::new("-") {
        return "IMAGE".into();
    }
    match image.extension() {
        Some(ext) if ext == "zst" => image.with_extension("").display().to_string(),
        _ => image.display().to_string(),
    }
}

/// `s` as one shell word.
fn quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_quoted_and_decompressed() {
        assert_eq!(quote("root.img"), "root.img");
        assert_eq!(quote("a b'c"), r"'a b'\''c'");
        assert_eq!(data_path(Path::new("out/root.img.zst")), "out/root.img");
        assert_eq!(data_path(Path::new("-")), "IMAGE");
    }
}
