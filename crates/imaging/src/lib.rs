//! Decoding untrusted image bytes into RGB pixels, safely.
//!
//! Every painting that enters Easel — an HTTP upload, a file given to `easel score`, an object
//! fetched by a worker — goes through [`decode`]. It trusts nothing the client says: the format is
//! sniffed from the bytes, the header's dimensions are checked *before* any pixel buffer is
//! allocated (so a 30000×30000 PNG of a few kilobytes is refused without allocating 2.7 GB), the
//! decoder runs under an allocation limit, and EXIF orientation is applied the way PIL's
//! `ImageOps.exif_transpose` does, so a photo of a canvas comes out upright.

pub mod phash;
pub mod reencode;

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, RgbImage};
use serde::{Deserialize, Serialize};

/// The image formats Easel accepts by default.
pub const DEFAULT_FORMATS: &[ImageFormat] = &[ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP];

/// What an image may cost before it is decoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DecodeLimits {
    /// Largest encoded size in bytes.
    pub max_bytes: usize,
    /// Largest width or height in pixels.
    pub max_side: u32,
    /// Largest width × height.
    pub max_pixels: u64,
    /// Largest amount of memory the decoder may allocate, in bytes.
    pub max_alloc: u64,
    /// Largest ratio of the longer side to the shorter (Qwen2-VL's processor refuses over 200).
    pub max_aspect_ratio: u32,
    /// Accepted formats, by their usual extension (`jpeg`, `png`, `webp`, `tiff`, `gif`, `bmp`).
    pub formats: Vec<String>,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_bytes: 40 * 1024 * 1024,
            max_side: 16_384,
            // 80 megapixels: a 10000×8000 scan of a canvas decodes; a bomb does not.
            max_pixels: 80_000_000,
            max_alloc: 1024 * 1024 * 1024,
            max_aspect_ratio: 200,
            formats: vec!["jpeg".into(), "png".into(), "webp".into()],
        }
    }
}

/// Bytes per pixel at the peak of a worst-case decode: the decoder's 16-bit RGBA buffer (8)
/// while its 8-bit RGB copy (3) is made. EXIF rotation then works on the 8-bit copy (3 + 3).
pub const PEAK_BYTES_PER_PIXEL: u64 = 8 + 3;

impl DecodeLimits {
    /// The most memory one decode under these limits can hold at once: the encoded bytes and
    /// the worst-case pixel buffers of [`PEAK_BYTES_PER_PIXEL`]. Services size their decode
    /// concurrency and pod memory from this.
    pub fn peak_bytes(&self) -> u64 {
        self.max_bytes as u64 + self.max_pixels.saturating_mul(PEAK_BYTES_PER_PIXEL)
    }

    /// The decoder's own allocation cap for these limits: a 16-bit RGBA image of `max_pixels`
    /// and a margin for its working buffers.
    pub fn decoder_alloc(max_pixels: u64) -> u64 {
        max_pixels.saturating_mul(8) + 64 * 1024 * 1024
    }

    /// The same limits, accepting every format this crate can decode (for local files).
    pub fn any_format(mut self) -> Self {
        self.formats = SUPPORTED.iter().map(|(name, _)| (*name).to_string()).collect();
        self
    }

    fn allows(&self, format: ImageFormat) -> bool {
        self.formats.iter().any(|name| format_from_name(name) == Some(format))
    }
}

const SUPPORTED: &[(&str, ImageFormat)] = &[
    ("jpeg", ImageFormat::Jpeg),
    ("png", ImageFormat::Png),
    ("webp", ImageFormat::WebP),
    ("tiff", ImageFormat::Tiff),
    ("gif", ImageFormat::Gif),
    ("bmp", ImageFormat::Bmp),
];

fn format_from_name(name: &str) -> Option<ImageFormat> {
    let name = name.to_ascii_lowercase();
    let name = if name == "jpg" { "jpeg" } else { name.as_str() };
    SUPPORTED.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// The canonical lower-case name of a format (`jpeg`, `png`, …).
pub fn format_name(format: ImageFormat) -> &'static str {
    SUPPORTED.iter().find(|(_, f)| *f == format).map(|(n, _)| *n).unwrap_or("unknown")
}

/// The MIME type Easel stores for a sniffed format.
pub fn mime_type(format: ImageFormat) -> &'static str {
    format.to_mime_type()
}

/// Why an image was refused. Every variant is the client's fault and safe to show them.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is {size} bytes, over the limit of {max} bytes")]
    TooManyBytes { size: usize, max: usize },
    #[error("the content is not a recognised image (JPEG, PNG or WebP expected)")]
    NotAnImage,
    #[error("{0} images are not accepted here")]
    UnsupportedFormat(String),
    #[error("the image is {width}×{height} pixels, over the limit ({reason})")]
    TooLarge { width: u32, height: u32, reason: String },
    #[error("the image is {width}×{height} pixels: its sides differ by more than {max}:1, which the model cannot take")]
    AspectRatio { width: u32, height: u32, max: u32 },
    #[error("the image data is truncated")]
    Truncated,
    #[error("the image data is corrupt: {0}")]
    Corrupt(String),
}

impl DecodeError {
    /// A short stable code for APIs and metrics (`empty`, `too_large`, …).
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty",
            DecodeError::TooManyBytes { .. } => "too_many_bytes",
            DecodeError::NotAnImage => "not_an_image",
            DecodeError::UnsupportedFormat(_) => "unsupported_format",
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::AspectRatio { .. } => "aspect_ratio",
            DecodeError::Truncated => "truncated",
            DecodeError::Corrupt(_) => "corrupt",
        }
    }
}

/// A decoded, upright RGB image.
#[derive(Debug, Clone)]
pub struct DecodedImage {
    pub rgb: RgbImage,
    pub format: ImageFormat,
}

impl DecodedImage {
    pub fn width(&self) -> u32 {
        self.rgb.width()
    }
    pub fn height(&self) -> u32 {
        self.rgb.height()
    }
    /// The picture's perceptual hash, for finding near-duplicate submissions ([`phash`]).
    pub fn perceptual_hash(&self) -> phash::PerceptualHash {
        phash::perceptual_hash_rgb(&self.rgb)
    }
}

/// Sniffs the format from the leading bytes, ignoring any client-supplied name or MIME type.
pub fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
    image::guess_format(bytes).ok()
}

/// Decodes `bytes` under `limits` into upright RGB.
///
/// RGB conversion follows PIL's `Image.convert("RGB")`, which is what HF's `load_image` does:
/// alpha is dropped, grey is replicated, 16-bit samples are reduced to 8 bits, CMYK JPEGs are
/// converted by the decoder.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<DecodedImage, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(DecodeError::TooManyBytes { size: bytes.len(), max: limits.max_bytes });
    }
    let format = sniff(bytes).ok_or(DecodeError::NotAnImage)?;
    if !SUPPORTED.iter().any(|(_, f)| *f == format) {
        return Err(DecodeError::NotAnImage);
    }
    if !limits.allows(format) {
        return Err(DecodeError::UnsupportedFormat(format_name(format).to_string()));
    }
    if format == ImageFormat::Jpeg && !jpeg_has_end_marker(bytes) {
        // Some JPEG decoders pad a cut-off scan with grey and report success; a truncated
        // upload must be refused, not scored.
        return Err(DecodeError::Truncated);
    }

    // Read only the header first (no limits yet, so the decoder reports the size it claims),
    // check the dimensions ourselves, and only then allow the decoder to allocate, under limits.
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.no_limits();
    let mut decoder = reader.into_decoder().map_err(|e| classify(e, None))?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    decoder_limits.max_alloc = Some(limits.max_alloc);
    decoder.set_limits(decoder_limits).map_err(|e| classify(e, Some((width, height))))?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(|e| classify(e, Some((width, height))))?;
    // To 8-bit RGB first, then upright: the rotation copies 3 bytes a pixel, not up to 8
    // (both are per-pixel maps, so the order does not change the result).
    let rgb = match image {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => to_rgb8_like_pil(other),
    };
    let mut upright = DynamicImage::ImageRgb8(rgb);
    upright.apply_orientation(orientation);
    let DynamicImage::ImageRgb8(rgb) = upright else {
        unreachable!("rotating an RGB8 image keeps it RGB8")
    };
    Ok(DecodedImage { rgb, format })
}

fn check_dimensions(width: u32, height: u32, limits: &DecodeLimits) -> Result<(), DecodeError> {
    if width == 0 || height == 0 {
        return Err(DecodeError::Corrupt(format!("the header says {width}×{height} pixels")));
    }
    if width > limits.max_side || height > limits.max_side {
        return Err(DecodeError::TooLarge {
            width,
            height,
            reason: format!("at most {} pixels a side", limits.max_side),
        });
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(DecodeError::TooLarge {
            width,
            height,
            reason: format!("at most {} pixels in all", limits.max_pixels),
        });
    }
    if width.max(height) > width.min(height).saturating_mul(limits.max_aspect_ratio) {
        return Err(DecodeError::AspectRatio { width, height, max: limits.max_aspect_ratio });
    }
    Ok(())
}

/// PIL reduces 16-bit samples by keeping the high byte; `image` rounds. Follow PIL so the
/// model sees what HF's processor would.
fn to_rgb8_like_pil(image: DynamicImage) -> RgbImage {
    match image {
        DynamicImage::ImageRgb16(img) => {
            let (w, h) = img.dimensions();
            RgbImage::from_fn(w, h, |x, y| {
                let p = img.get_pixel(x, y).0;
                image::Rgb([(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8])
            })
        }
        DynamicImage::ImageRgba16(img) => {
            let (w, h) = img.dimensions();
            RgbImage::from_fn(w, h, |x, y| {
                let p = img.get_pixel(x, y).0;
                image::Rgb([(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8])
            })
        }
        other => other.to_rgb8(),
    }
}

/// A JPEG must end with its EOI marker (FF D9), possibly followed by padding.
fn jpeg_has_end_marker(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

fn classify(error: ImageError, dims: Option<(u32, u32)>) -> DecodeError {
    match error {
        ImageError::Limits(limit) => {
            let (width, height) = dims.unwrap_or((0, 0));
            DecodeError::TooLarge { width, height, reason: limit.to_string() }
        }
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            DecodeError::Truncated
        }
        ImageError::Unsupported(e) => DecodeError::UnsupportedFormat(e.to_string()),
        other => {
            let message = other.to_string();
            if message.to_ascii_lowercase().contains("eof")
                || message.to_ascii_lowercase().contains("end of file")
                || message.to_ascii_lowercase().contains("truncated")
            {
                DecodeError::Truncated
            } else {
                DecodeError::Corrupt(message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, Rgb};

    fn encode(format: ImageFormat, width: u32, height: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(width, height, |x, y| Rgb([(x * 7) as u8, (y * 5) as u8, 90]));
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(img).write_to(&mut out, format).expect("encode");
        out.into_inner()
    }

    #[test]
    fn decodes_png_and_jpeg() {
        for format in [ImageFormat::Png, ImageFormat::Jpeg] {
            let img = decode(&encode(format, 40, 30), &DecodeLimits::default()).expect("decodes");
            assert_eq!((img.width(), img.height()), (40, 30));
            assert_eq!(img.format, format);
        }
    }

    #[test]
    fn refuses_empty_text_and_truncated() {
        let limits = DecodeLimits::default();
        assert_eq!(decode(b"", &limits).unwrap_err(), DecodeError::Empty);
        assert_eq!(decode(b"hello, I am a painting", &limits).unwrap_err(), DecodeError::NotAnImage);
        for format in [ImageFormat::Png, ImageFormat::Jpeg] {
            let bytes = encode(format, 64, 64);
            let err = decode(&bytes[..bytes.len() / 2], &limits).unwrap_err();
            assert!(
                matches!(err, DecodeError::Truncated | DecodeError::Corrupt(_)),
                "{format:?}: {err:?}"
            );
        }
    }

    #[test]
    fn refuses_oversize_bytes_and_unlisted_formats() {
        let bytes = encode(ImageFormat::Png, 64, 64);
        let limits = DecodeLimits { max_bytes: 100, ..DecodeLimits::default() };
        assert!(matches!(decode(&bytes, &limits), Err(DecodeError::TooManyBytes { .. })));
        let bmp = encode(ImageFormat::Bmp, 8, 8);
        assert!(matches!(
            decode(&bmp, &DecodeLimits::default()),
            Err(DecodeError::UnsupportedFormat(name)) if name == "bmp"
        ));
        assert!(decode(&bmp, &DecodeLimits::default().any_format()).is_ok());
    }

    /// A PNG whose header claims 30000×30000 pixels is refused from the header alone.
    #[test]
    fn refuses_decompression_bomb_before_allocating() {
        let mut png = Vec::new();
        let encoder = image::codecs::png::PngEncoder::new(&mut png);
        // Encode a real 1×1 image, then patch the IHDR dimensions and CRC.
        encoder.write_image(&[1, 2, 3], 1, 1, image::ExtendedColorType::Rgb8).expect("encode");
        let ihdr = 8 + 4 + 4; // signature, length, "IHDR"
        png[ihdr..ihdr + 4].copy_from_slice(&30_000u32.to_be_bytes());
        png[ihdr + 4..ihdr + 8].copy_from_slice(&30_000u32.to_be_bytes());
        let crc = crc32(&png[12..ihdr + 13]);
        png[ihdr + 13..ihdr + 17].copy_from_slice(&crc.to_be_bytes());
        let err = decode(&png, &DecodeLimits::default()).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { width: 30_000, height: 30_000, .. }), "{err:?}");
    }

    #[test]
    fn refuses_aspect_ratios_the_model_cannot_take() {
        let limits = DecodeLimits::default();
        let thin = encode(ImageFormat::Png, 402, 2);
        assert_eq!(decode(&thin, &limits).unwrap_err(), DecodeError::AspectRatio { width: 402, height: 2, max: 200 });
        assert!(decode(&encode(ImageFormat::Png, 400, 2), &limits).is_ok(), "200:1 is allowed");
        assert!(matches!(decode(&encode(ImageFormat::Png, 2, 500), &limits), Err(DecodeError::AspectRatio { .. })));
    }

    #[test]
    fn peak_memory_is_stated_for_the_worst_case() {
        let limits = DecodeLimits { max_bytes: 1000, max_pixels: 100, ..DecodeLimits::default() };
        assert_eq!(limits.peak_bytes(), 1000 + 100 * PEAK_BYTES_PER_PIXEL);
        assert!(DecodeLimits::decoder_alloc(100) >= 100 * 8, "room for a 16-bit RGBA buffer");
    }

    #[test]
    fn applies_limits_on_pixels() {
        let bytes = encode(ImageFormat::Png, 100, 100);
        let limits = DecodeLimits { max_pixels: 5_000, ..DecodeLimits::default() };
        assert!(matches!(decode(&bytes, &limits), Err(DecodeError::TooLarge { .. })));
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
}
