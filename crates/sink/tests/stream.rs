//! StreamSink: positioned writes from several threads become one exact stream.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use kiln_sink::stream::{Compression, StreamSink};
use kiln_sink::Sink;
use sha2::{Digest, Sha256};

/// A writer whose bytes the test can read after the sink is gone.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

const SIZE: u64 = 5 << 20;
const BAND: u64 = 256 << 10;

/// Disjoint writes of varied lengths and gaps, grouped in bands of BAND bytes
/// (a write belongs to the band it starts in and may run past its end).
fn writes() -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0u64;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    while at < SIZE {
        let gap = next() % 3 * (next() % 70_000);
        let len = 1 + next() % 90_000;
        let start = at + gap;
        if start >= SIZE {
            break;
        }
        let len = len.min(SIZE - start);
        let fill = (next() % 255 + 1) as u8;
        let data: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
        out.push((start, data));
        at = start + len;
    }
    out
}

fn expected(writes: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut img = vec![0u8; SIZE as usize];
    for (at, data) in writes {
        img[*at as usize..*at as usize + data.len()].copy_from_slice(data);
    }
    img
}

/// Writes band by band: the writes of one band from 4 threads in a scrambled
/// order, then `advance` to the band's end (past the writes started in it).
fn drive(sink: &(impl Sink + ?Sized), writes: &[(u64, Vec<u8>)]) {
    let mut band_start = 0;
    while band_start < SIZE {
        let band_end = band_start + BAND;
        let mut band: Vec<&(u64, Vec<u8>)> = writes
            .iter()
            .filter(|(at, _)| (band_start..band_end).contains(at))
            .collect();
        band.reverse();
        std::thread::scope(|s| {
            for t in 0..4 {
                let mine: Vec<_> = band.iter().skip(t).step_by(4).copied().collect();
                s.spawn(move || {
                    for (at, data) in mine {
                        sink.write_at(*at, data).unwrap();
                    }
                });
            }
        });
        // Everything below the band's end is written (a write of the band
        // may run further; advance emits it whole).
        sink.advance(band_end).unwrap();
        band_start = band_end;
    }
}

#[test]
fn raw_stream_is_the_written_image() {
    let writes = writes();
    let want = expected(&writes);
    let out = Shared::default();
    let sink = StreamSink::raw(out.clone(), SIZE);
    drive(&sink, &writes);
    assert_eq!(sink.pending_bytes(), 0);
    let summary = sink.finish().unwrap();
    let got = out.bytes();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the stream differs from the image");
    assert_eq!(summary.size, SIZE);
    assert_eq!(summary.compressed_bytes, None);
    assert_eq!(
        summary.sha256,
        Some(<[u8; 32]>::from(Sha256::digest(&want)))
    );
}

#[test]
fn trailing_gap_and_empty_image_are_zeros() {
    let out = Shared::default();
    let sink = StreamSink::raw(out.clone(), 3 << 20);
    sink.write_at(10, b"abc").unwrap();
    assert_eq!(sink.pending_bytes(), 3);
    sink.write_at(0, b"0123456789").unwrap();
    assert_eq!(sink.pending_bytes(), 0);
    assert_eq!(sink.cursor(), 13);
    let summary = sink.finish().unwrap();
    let mut want = vec![0u8; 3 << 20];
    want[..13].copy_from_slice(b"0123456789abc");
    assert!(out.bytes() == want);
    assert_eq!(
        summary.sha256,
        Some(<[u8; 32]>::from(Sha256::digest(&want)))
    );

    let out = Shared::default();
    let summary = StreamSink::raw(out.clone(), 0).finish().unwrap();
    assert!(out.bytes().is_empty());
    assert_eq!(summary.sha256, Some(<[u8; 32]>::from(Sha256::digest(b""))));
}

#[test]
fn writes_below_the_cursor_or_past_the_end_are_errors() {
    let sink = StreamSink::raw(io::sink(), 100).named("stdout");
    sink.write_at(50, b"x").unwrap();
    sink.advance(60).unwrap();
    let err = sink.write_at(40, b"y").unwrap_err().to_string();
    assert!(err.contains("already been emitted up to byte 60"), "{err}");
    assert!(err.starts_with("stdout:"), "{err}");
    let err = sink.write_at(99, b"yz").unwrap_err().to_string();
    assert!(err.contains("past the end"), "{err}");
    sink.write_at(99, b"y").unwrap();
    sink.finish().unwrap();
}

#[test]
fn a_failing_writer_breaks_the_stream() {
    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    // Past the 1 MiB buffer, the writer is reached.
    let sink = StreamSink::raw(Full, 4 << 20);
    let err = sink.advance(4 << 20).unwrap_err().to_string();
    assert!(err.contains("disk full"), "{err}");
    assert!(sink.write_at(4 << 20 >> 1, b"x").is_err());
    sink.wait_below(0);
    assert!(sink.finish().is_err());
}

#[test]
fn wait_below_returns_once_drained() {
    let sink = StreamSink::raw(io::sink(), 1 << 20);
    sink.write_at(1000, &[1; 5000]).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| sink.wait_below(0));
        std::thread::sleep(std::time::Duration::from_millis(50));
        sink.write_at(0, &[2; 1000]).unwrap();
    });
    assert_eq!(sink.pending_bytes(), 0);
}

#[cfg(feature = "zstd")]
fn zstd_roundtrip(threads: u32) {
    let writes = writes();
    let want = expected(&writes);
    let out = Shared::default();
    let sink = StreamSink::zstd(out.clone(), SIZE, 3, threads).unwrap();
    drive(&sink, &writes);
    let summary = sink.finish().unwrap();
    let frame = out.bytes();
    assert_eq!(summary.compressed_bytes, Some(frame.len() as u64));
    assert!(frame.len() < want.len());
    assert_eq!(
        zstd::zstd_safe::get_frame_content_size(&frame).ok(),
        Some(Some(SIZE))
    );
    let got = zstd::stream::decode_all(&frame[..]).unwrap();
    assert!(
        got == want,
        "the decompressed stream differs from the image"
    );
    assert_eq!(
        summary.sha256,
        Some(<[u8; 32]>::from(Sha256::digest(&want)))
    );
}

#[cfg(feature = "zstd")]
#[test]
fn zstd_stream_decompresses_to_the_image() {
    zstd_roundtrip(0);
}

#[cfg(feature = "zstd")]
#[test]
fn zstd_multithreaded_stream_decompresses_to_the_image() {
    zstd_roundtrip(3);
}

#[cfg(feature = "zstd")]
#[test]
fn zstd_file_is_atomic_and_the_cli_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.img.zst");
    let compression = Compression::Zstd {
        level: 5,
        threads: 2,
    };
    let sink = StreamSink::to_file(&target, SIZE, false, compression).unwrap();
    let writes = writes();
    drive(&*sink, &writes);
    assert!(!target.exists());
    let summary = sink.commit(kiln_sink::Durability::Writeback).unwrap();
    let frame = std::fs::read(&target).unwrap();
    assert_eq!(summary.compressed_bytes, Some(frame.len() as u64));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    let err = StreamSink::to_file(&target, 1, false, Compression::None).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");

    // The reference tool, where installed: the frame records its size and
    // checksum, and decompresses to the image.
    let want = expected(&writes);
    let list = std::process::Command::new("zstd")
        .args(["-lv"])
        .arg(&target)
        .output();
    let Ok(list) = list else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "zstd CLI missing"
        );
        eprintln!("skipping the zstd CLI checks: zstd not installed");
        return;
    };
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{text}");
    assert!(text.contains(&format!("({SIZE} B)")), "{text}");
    assert!(text.contains("Check: XXH64"), "{text}");
    let plain = dir.path().join("out.img");
    let status = std::process::Command::new("zstd")
        .args(["-q", "-d"])
        .arg(&target)
        .arg("-o")
        .arg(&plain)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(std::fs::read(&plain).unwrap() == want);
}

#[test]
fn dropped_stream_file_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.img");
    let sink = StreamSink::to_file(&target, 1 << 20, false, Compression::None).unwrap();
    sink.write_at(0, b"kiln").unwrap();
    drop(sink);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn raw_file_commit_holds_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out.img");
    let sink = StreamSink::to_file(&target, SIZE, false, Compression::None).unwrap();
    let writes = writes();
    drive(&*sink, &writes);
    let summary = sink.commit(kiln_sink::Durability::Writeback).unwrap();
    let got = std::fs::read(&target).unwrap();
    assert!(got == expected(&writes));
    assert_eq!(summary.sha256, Some(<[u8; 32]>::from(Sha256::digest(&got))));
}
