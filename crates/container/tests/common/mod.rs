//! Shared helpers of the container judges: test images, driving an
//! encoder, and the skip-or-fail rule for missing tools (as the root
//! package's tests/helpers.rs: a missing tool skips outside CI, fails under
//! `CI=true`).

#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kiln_container::{file_encoder, stream_encoder, ContainerOptions, Encoder};

/// Whether we run under CI (`CI=true`), where skipping is not allowed.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The full path of a tool, looked up in `PATH` and the sbin directories.
pub fn tool_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// `true` if every tool of `names` is installed; otherwise prints why and
/// returns `false` outside CI, panics under `CI=true`.
pub fn require_tools(names: &[&str]) -> bool {
    for name in names {
        if tool_path(name).is_none() {
            let why = format!(
                "the tool `{name}` is not installed (apt-get install qemu-utils android-sdk-libsparse-utils bmap-tools)"
            );
            assert!(
                !in_ci(),
                "{why} (CI=true: a missing tool is a failure, not a skip)"
            );
            eprintln!("SKIPPED: {why}");
            return false;
        }
    }
    true
}

/// Runs `tool` with `args`, in the C locale; panics if it cannot start.
pub fn run(tool: &str, args: &[&str]) -> Output {
    let path = tool_path(tool).unwrap_or_else(|| panic!("`{tool}` is not installed"));
    Command::new(path)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"))
}

/// Runs `tool` with `args` and asserts that it succeeds; returns stdout.
pub fn run_ok(tool: &str, args: &[&str]) -> String {
    let out = run(tool, args);
    assert!(
        out.status.success(),
        "{tool} {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One step of an image as an emitter hands it to a stream: bytes it
/// wrote, or a gap of zeros it did not write.
#[derive(Clone, Debug)]
pub enum Step {
    /// Written bytes (which may hold zeros too).
    Data(Vec<u8>),
    /// A gap of this many zero bytes.
    Gap(u64),
}

/// A small xorshift generator, so images are the same on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A test image of `size` bytes as steps: random data (some of it
/// compressible text, some incompressible), gaps, written zeros, runs of a
/// repeated 32-bit word, pieces that do not line up with any cluster or
/// block, and both ends of the image written.
pub fn test_image(seed: u64, size: u64) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    let mut steps = Vec::new();
    let mut at = 0u64;
    while at < size {
        let left = size - at;
        let len = (1 + rng.below(300_000)).min(left);
        let step = match rng.below(6) {
            0 | 1 => Step::Gap(len),
            2 => Step::Data(rng.bytes(len as usize)),
            3 => Step::Data(
                b"kiln writes containers in one pass. "
                    .iter()
                    .cycle()
                    .take(len as usize)
                    .copied()
                    .collect(),
            ),
            4 => Step::Data(vec![0; len as usize]),
            _ => {
                let word = (rng.next() as u32 | 1).to_le_bytes();
                Step::Data(word.iter().cycle().take(len as usize).copied().collect())
            }
        };
        at += len;
        steps.push(step);
    }
    // The first and last bytes hold data, whatever the steps were.
    if let Some(Step::Gap(_)) = steps.first() {
        steps.insert(0, Step::Data(vec![0xAA]));
        if let Some(Step::Gap(n)) = steps.get_mut(1) {
            *n -= 1;
        }
    }
    if let Some(Step::Gap(n)) = steps.last_mut() {
        *n -= 1;
        steps.push(Step::Data(vec![0x55]));
    }
    steps.retain(|s| !matches!(s, Step::Gap(0)));
    steps
}

/// A large image that is mostly gaps: pieces of [`test_image`] data at the
/// start, at 3 MiB + 777, past 64 MiB, and the last byte.
pub fn sparse_image(seed: u64, size: u64) -> Vec<Step> {
    const MIB: u64 = 1 << 20;
    let mut steps = Vec::new();
    let mut at = 0;
    for (i, start) in [0, 3 * MIB + 777, 66 * MIB + 4096].into_iter().enumerate() {
        if start > at {
            steps.push(Step::Gap(start - at));
        }
        let piece = test_image(seed + i as u64, 400_000);
        at = start + 400_000;
        steps.extend(piece);
    }
    steps.push(Step::Gap(size - 1 - at));
    steps.push(Step::Data(vec![0x55]));
    steps
}

/// The value of `"key": value` in `qemu-img info --output=json`.
pub fn json_field(json: &str, key: &str) -> String {
    let pat = format!("\"{key}\": ");
    let at = json
        .find(&pat)
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + pat.len();
    json[at..]
        .split([',', '\n'])
        .next()
        .unwrap()
        .trim()
        .trim_matches('"')
        .to_string()
}

/// `qemu-img compare` of the raw image `raw` with `image` in QEMU's driver
/// `driver`: asserts that it finds them identical (`what` names the case).
pub fn assert_qemu_finds_raw(raw: &Path, image: &Path, driver: &str, what: &str) {
    let said = run_ok(
        "qemu-img",
        &[
            "compare",
            "-f",
            "raw",
            "-F",
            driver,
            path_str(raw),
            path_str(image),
        ],
    );
    assert!(said.contains("Images are identical"), "{what}: {said}");
}

/// A path as the `&str` an argument list takes.
pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The raw bytes of an image given as steps.
pub fn raw_bytes(steps: &[Step]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in steps {
        match s {
            Step::Data(b) => out.extend_from_slice(b),
            Step::Gap(n) => out.resize(out.len() + *n as usize, 0),
        }
    }
    out
}

/// Writes the raw image to `path` (for `qemu-img compare` and the like).
pub fn write_raw(steps: &[Step], path: &Path) {
    std::fs::write(path, raw_bytes(steps)).unwrap();
}

/// Feeds `steps` to `encoder` and finishes it; returns what finish says.
pub fn feed(mut encoder: Box<dyn Encoder>, steps: &[Step]) -> Option<u64> {
    for s in steps {
        match s {
            Step::Data(b) => encoder.data(b).unwrap(),
            Step::Gap(n) => encoder.zeros(*n).unwrap(),
        }
    }
    encoder.finish().unwrap()
}

/// Encodes `steps` into a new file at `path` with [`file_encoder`].
pub fn encode_file(options: &ContainerOptions, steps: &[Step], path: &Path) -> Option<u64> {
    let file = File::create(path).unwrap();
    feed(file_encoder(options, file).unwrap(), steps)
}

/// Encodes `steps` with [`stream_encoder`] into memory (a forward-only
/// writer), for formats that stream.
pub fn encode_stream(options: &ContainerOptions, steps: &[Step]) -> Vec<u8> {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let out = Shared::default();
    feed(
        stream_encoder(options, Box::new(out.clone())).unwrap(),
        steps,
    );
    let bytes = out.0.lock().unwrap().clone();
    bytes
}
