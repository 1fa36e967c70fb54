//! What a person sees of a file attached to a message (the shell prints it).

/// `📎 chart.png (118 KiB, PNG 1200×600)`: what a person sees of an attached file.
pub fn describe(name: &str, bytes: &[u8]) -> String {
    let size = if bytes.len() < 1024 {
        format!("{} B", bytes.len())
    } else if bytes.len() < 1024 * 1024 {
        format!("{} KiB", bytes.len().div_ceil(1024))
    } else {
        format!("{:.1} MiB", bytes.len() as f64 / (1024.0 * 1024.0))
    };
    match png_dimensions(bytes) {
        Some((width, height)) => format!("📎 {name} ({size}, PNG {width}×{height})"),
        None => format!("📎 {name} ({size})"),
    }
}

/// A PNG's width and height from its header (the first chunk is always IHDR).
fn png_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || &bytes[..8] != b"\x89PNG\r\n\x1a\n" || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let number =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    Some((number(16), number(20)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn files_are_described_by_size_and_png_dimensions() {
        let mut png = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut png, 3, 2);
            encoder.set_color(png::ColorType::Rgb);
            let mut writer = encoder.write_header().expect("header");
            writer.write_image_data(&[0; 18]).expect("pixels");
        }
        let line = super::describe("chart.png", &png);
        assert!(line.starts_with("📎 chart.png ("), "{line}");
        assert!(line.ends_with(" B, PNG 3×2)"), "{line}");
        assert_eq!(super::describe("a.bin", &[1; 2048]), "📎 a.bin (2 KiB)");
        assert_eq!(
            super::describe("b.bin", &vec![0; 3 * 1024 * 1024 / 2]),
            "📎 b.bin (1.5 MiB)"
        );
        // A PNG signature without its header chunk has no dimensions.
        assert_eq!(
            super::describe("c.png", b"\x89PNG\r\n\x1a\n\0\0\0\0XXXX0000000000"),
            "📎 c.png (26 B)"
        );
    }
}
