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
    match scaled_down(image, max_side) {
        Some(scaled) => encode(&scaled, quality),
        None => encode(image, quality),
    }
}

/// JPEG copies of `image` at several sizes, `(max_side, quality)` each, in the order asked: each
/// is scaled from the next larger one, so a large original is scaled down once.
pub fn to_jpegs(image: &DecodedImage, sizes: &[(u32, u8)]) -> Result<Vec<Vec<u8>>, DecodeError> {
    let mut largest_first: Vec<(usize, (u32, u8))> = sizes.iter().copied().enumerate().collect();
    largest_first.sort_by_key(|(_, (side, _))| std::cmp::Reverse(*side));
    let mut out = vec![Vec::new(); sizes.len()];
    let mut source: Option<DecodedImage> = None;
    for (i, (side, quality)) in largest_first {
        if let Some(scaled) = scaled_down(source.as_ref().unwrap_or(image), side) {
            source = Some(scaled);
        }
        out[i] = encode(source.as_ref().unwrap_or(image), quality)?;
    }
    Ok(out)
}

/// `image`'s pixels as a baseline JPEG at `quality` (1–100).
fn encode(image: &DecodedImage, quality: u8) -> Result<Vec<u8>, DecodeError> {
    let mut out = Cursor::new(Vec::new());
    JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100))
        .encode_image(&image.rgb)
        .map_err(|e| DecodeError::Corrupt(format!("cannot encode the copy: {e}")))?;
    Ok(out.into_inner())
}

/// `image` scaled so its longer side is `max_side`, or `None` when it is no larger already.
fn scaled_down(image: &DecodedImage, max_side: u32) -> Option<DecodedImage> {
    let (width, height) = (image.width(), image.height());
    let longer = width.max(height);
    if longer <= max_side || max_side == 0 {
        return None;
    }
    let scale = f64::from(max_side) / f64::from(longer);
    let w = ((f64::from(width) * scale).round() as u32).max(1);
    let h = ((f64::from(height) * scale).round() as u32).max(1);
    Some(DecodedImage { rgb: imageops::resize(&image.rgb, w, h, FilterType::Triangle), format: image.format })
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
    fn several_sizes_come_back_in_the_order_asked() {
        let copies = to_jpegs(&painting(900, 300), &[(60, 80), (450, 85), (2000, 85)]).unwrap();
        let sizes: Vec<(u32, u32)> = copies
            .iter()
            .map(|c| decode(c, &DecodeLimits::default()).map(|d| (d.width(), d.height())).unwrap())
            .collect();
        assert_eq!(sizes, [(60, 20), (450, 150), (900, 300)]);
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
