//! Property tests of decoding untrusted bytes: whatever arrives — noise, or a real PNG, JPEG or
//! WebP cut short, bit-flipped or with its header's dimensions rewritten — `sniff` and `decode`
//! never panic, an image that decodes is within every limit, and a refusal is a `DecodeError`
//! with one of the stable codes the services show clients.

use std::io::Cursor;

use easel_imaging::{DecodeError, DecodeLimits, decode, sniff};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use proptest::prelude::*;

/// Every code `DecodeError::code` may return; APIs and metrics depend on these strings.
const CODES: &[&str] =
    &["empty", "too_many_bytes", "not_an_image", "unsupported_format", "too_large", "aspect_ratio", "truncated", "corrupt"];

/// Small limits, so a mutated header that claims a large image is refused (and one that decodes
/// stays cheap), with room for the aspect-ratio limit to bite.
fn limits() -> DecodeLimits {
    let max_pixels = 64 * 1024;
    DecodeLimits {
        max_bytes: 256 * 1024,
        max_side: 1024,
        max_pixels,
        max_alloc: DecodeLimits::decoder_alloc(max_pixels),
        max_aspect_ratio: 50,
        ..DecodeLimits::default()
    }
}

fn encode(format: ImageFormat, width: u32, height: u32, seed: u8) -> Vec<u8> {
    let image = RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x as u8).wrapping_mul(7) ^ seed, (y as u8).wrapping_mul(5), seed.wrapping_add((x + y) as u8)])
    });
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(image).write_to(&mut out, format).expect("encoding a test image");
    out.into_inner()
}

/// Decodes `bytes` and checks what every outcome must satisfy.
fn check(bytes: &[u8], limits: &DecodeLimits) -> Result<(), TestCaseError> {
    let sniffed = sniff(bytes);
    match decode(bytes, limits) {
        Ok(image) => {
            let (w, h) = (image.width(), image.height());
            prop_assert!(w >= 1 && h >= 1, "decoded an empty {w}×{h} image");
            prop_assert!(w <= limits.max_side && h <= limits.max_side, "{w}×{h} is over max_side");
            prop_assert!(u64::from(w) * u64::from(h) <= limits.max_pixels, "{w}×{h} is over max_pixels");
            prop_assert!(w.max(h) <= w.min(h) * limits.max_aspect_ratio, "{w}×{h} is over the aspect ratio");
            prop_assert_eq!(image.rgb.as_raw().len(), w as usize * h as usize * 3);
            prop_assert_eq!(sniffed, Some(image.format), "decoded as another format than sniffed");
            prop_assert!(bytes.len() <= limits.max_bytes);
        }
        Err(error) => {
            prop_assert!(CODES.contains(&error.code()), "unknown code {:?} for {error:?}", error.code());
            prop_assert!(!error.to_string().is_empty());
            // The same bytes are refused the same way (a client retrying sees one answer).
            let again = decode(bytes, limits).expect_err("decoded the second time");
            prop_assert_eq!(again.code(), error.code());
            if let DecodeError::NotAnImage = error {
                prop_assert!(sniffed.is_none() || !matches!(sniffed, Some(ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP)));
            }
        }
    }
    Ok(())
}

fn format() -> impl Strategy<Value = ImageFormat> {
    prop_oneof![Just(ImageFormat::Png), Just(ImageFormat::Jpeg), Just(ImageFormat::WebP)]
}

/// A real encoding of a small random image: (format, bytes).
fn encoded() -> impl Strategy<Value = (ImageFormat, Vec<u8>)> {
    (format(), 1u32..48, 1u32..48, any::<u8>()).prop_map(|(f, w, h, seed)| (f, encode(f, w, h, seed)))
}

/// Where each format keeps its dimensions, patched to `width`×`height` (the CRC of a PNG's IHDR
/// is fixed up when `fix_crc`, so the decoder gets past it).
fn patch_dimensions(format: ImageFormat, bytes: &mut [u8], width: u32, height: u32, fix_crc: bool) {
    match format {
        ImageFormat::Png if bytes.len() >= 33 => {
            bytes[16..20].copy_from_slice(&width.to_be_bytes());
            bytes[20..24].copy_from_slice(&height.to_be_bytes());
            if fix_crc {
                let crc = crc32(&bytes[12..29]);
                bytes[29..33].copy_from_slice(&crc.to_be_bytes());
            }
        }
        ImageFormat::Jpeg => {
            // The first start-of-frame marker (SOF0..SOF2): length, precision, height, width.
            if let Some(i) = bytes.windows(2).position(|w| w[0] == 0xFF && (0xC0..=0xC2).contains(&w[1]))
                && i + 9 <= bytes.len()
            {
                bytes[i + 5..i + 7].copy_from_slice(&(height as u16).to_be_bytes());
                bytes[i + 7..i + 9].copy_from_slice(&(width as u16).to_be_bytes());
            }
        }
        ImageFormat::WebP if bytes.len() >= 25 && &bytes[12..16] == b"VP8L" => {
            // VP8L: signature 0x2F, then 14 bits width-1 and 14 bits height-1.
            let (w, h) = ((width.clamp(1, 1 << 14) - 1) & 0x3FFF, (height.clamp(1, 1 << 14) - 1) & 0x3FFF);
            let bits = u32::from_le_bytes(bytes[21..25].try_into().expect("4 bytes"));
            let bits = (bits & !0x0FFF_FFFF) | w | (h << 14);
            bytes[21..25].copy_from_slice(&bits.to_le_bytes());
        }
        ImageFormat::WebP if bytes.len() >= 30 && &bytes[12..16] == b"VP8 " => {
            bytes[26..28].copy_from_slice(&(width as u16 & 0x3FFF).to_le_bytes());
            bytes[28..30].copy_from_slice(&(height as u16 & 0x3FFF).to_le_bytes());
        }
        _ => {}
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check(&bytes, &limits())?;
    }

    /// Noise behind a real signature reaches the format's decoder, not just the sniffer.
    #[test]
    fn noise_behind_a_signature_never_panics(
        magic in prop_oneof![
            Just(b"\x89PNG\r\n\x1a\n".to_vec()),
            Just(b"\xFF\xD8\xFF\xE0".to_vec()),
            Just(b"RIFF\x00\x10\x00\x00WEBPVP8L".to_vec()),
            Just(b"RIFF\x00\x10\x00\x00WEBPVP8 ".to_vec()),
            Just(b"GIF89a".to_vec()),
            Just(b"BM".to_vec()),
        ],
        tail in prop::collection::vec(any::<u8>(), 0..1024),
        eoi in any::<bool>(),
    ) {
        let mut bytes = magic;
        bytes.extend(tail);
        if eoi {
            bytes.extend([0xFF, 0xD9]);
        }
        check(&bytes, &limits())?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn real_images_decode_within_limits((format, bytes) in encoded()) {
        let image = decode(&bytes, &limits()).map_err(|e| TestCaseError::fail(format!("{format:?}: {e}")))?;
        prop_assert_eq!(image.format, format);
        check(&bytes, &limits())?;
    }

    #[test]
    fn truncated_images_never_panic((_, bytes) in encoded(), cut in any::<prop::sample::Index>()) {
        let cut = cut.index(bytes.len());
        check(&bytes[..cut], &limits())?;
    }

    #[test]
    fn bit_flipped_images_never_panic(
        (_, mut bytes) in encoded(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8),
    ) {
        for (at, mask) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= mask;
        }
        check(&bytes, &limits())?;
    }

    #[test]
    fn images_with_rewritten_dimensions_never_exceed_limits(
        (format, mut bytes) in encoded(),
        width in prop_oneof![0u32..64, 0u32..4096, Just(u32::MAX), Just(65_535), Just(30_000)],
        height in prop_oneof![0u32..64, 0u32..4096, Just(u32::MAX), Just(65_535), Just(30_000)],
        fix_crc in any::<bool>(),
    ) {
        patch_dimensions(format, &mut bytes, width, height, fix_crc);
        check(&bytes, &limits())?;
    }

    /// Under the services' own default limits too (the real thresholds, not just the small ones).
    #[test]
    fn mutated_images_under_default_limits((format, mut bytes) in encoded(), width in 0u32..100_000, height in 0u32..100_000) {
        patch_dimensions(format, &mut bytes, width, height, true);
        let limits = DecodeLimits { max_pixels: 1 << 20, max_alloc: DecodeLimits::decoder_alloc(1 << 20), ..DecodeLimits::default() };
        check(&bytes, &limits)?;
    }
}
