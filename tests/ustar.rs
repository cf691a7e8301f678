//! POSIX ustar headers for the archives tests make (tests/bad_input.rs,
//! and tests/memory.rs, a test binary of its own that includes this file).

/// One POSIX ustar header block (numbers in octal, checksum filled in).
pub fn ustar_header(name: &str, typeflag: u8, size: u64, linkname: &str) -> [u8; 512] {
    fn octal(field: &mut [u8], value: u64) {
        let text = format!("{value:0width$o}\0", width = field.len() - 1);
        field.copy_from_slice(text.as_bytes());
    }
    let mut h = [0u8; 512];
    assert!(name.len() <= 100 && linkname.len() <= 100, "ustar field");
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], 0o755);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_700_000_000);
    h[156] = typeflag;
    h[157..157 + linkname.len()].copy_from_slice(linkname.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // The checksum is taken with its own field as spaces.
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    let text = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(text.as_bytes());
    h
}
