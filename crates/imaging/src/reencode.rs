//! Pixels out again: a decoded image written as a fresh JPEG, optionally scaled down. Only the
//! pixels are carried over, so nothing of the original file — EXIF (camera, GPS, the artist's
//! name), XMP, IPTC, ICC comments — reaches whoever is shown the copy.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};

use crate::{DecodeError, DecodedImage};

/// Encodes `image` as a baseline JPEG of at most `max_side` pixels on its longer side (never
/// enlarged), at `quality` (1–100).
pub fn to_jpeg(image: &DecodedImage, max_side: u32, quality: u8) -> Result<Vec<u8>, DecodeError> {
    let (width, height) = (image.width(), image.height());
    let longer = width.max(height);
    let mut out = Cursor::new(Vec::new());
    let mut encoder = JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100));
    let encoded = if longer > max_side && max_side > 0 {
        let scale = f64::from(max_side) / f64::from(longer);
        let w = ((f64::from(width) * scale).round() as u32).max(1);
        let h = ((f64::from(height) * scale).round() as u32).max(1);
        let scaled = imageops::resize(&image.rgb, w, h, FilterType::Triangle);
        encoder.encode_image(&scaled)
    } else {
        encoder.encode_image(&image.rgb)
    };
    encoded.map_err(|e| DecodeError::Corrupt(format!("cannot encode the copy: {e}")))?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use image::{ImageFormat, RgbImage};

    use super::*;
    use crate::{DecodeLimits, decode};

    fn painting(w: u32, h: u32) -> DecodedImage {
        DecodedImage { rgb: RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 128])), format: ImageFormat::Png }
    }

    #[test]
    fn copies_decode_and_keep_their_shape() {
        let copy = to_jpeg(&painting(300, 120), 100, 85).unwrap();
        let back = decode(&copy, &DecodeLimits::default()).unwrap();
        assert_eq!((back.width(), back.height()), (100, 40));
        let same = to_jpeg(&painting(30, 12), 100, 85).unwrap();
        let back = decode(&same, &DecodeLimits::default()).unwrap();
        assert_eq!((back.width(), back.height()), (30, 12), "never enlarged");
    }

    #[test]
    fn copies_hold_no_metadata_segments() {
        let copy = to_jpeg(&painting(64, 64), 2048, 90).unwrap();
        // APP1 (EXIF/XMP), APP13 (IPTC) and COM segments.
        for marker in [[0xFF, 0xE1], [0xFF, 0xED], [0xFF, 0xFE]] {
            assert!(!copy.windows(2).any(|w| w == marker), "{marker:02X?}");
        }
    }
}
