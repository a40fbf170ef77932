//! Qwen2-VL's image processor: resize to a grid of 28-pixel cells, normalise, and cut into
//! flattened patches in the order the vision tower's 2×2 patch merger expects.
//!
//! Mirrors `Qwen2VLImageProcessor` (the PIL one) in HF transformers: `smart_resize`, PIL-style
//! bicubic resampling (a = −0.5, support scaled when shrinking, as `fast_image_resize`'s
//! Catmull-Rom convolution does), rescale by 1/255, CLIP mean/std, the single frame duplicated
//! to fill the temporal patch, and `pixel_values [num_patches, C·T·P·P]` with `image_grid_thw`.

use std::path::Path;

use easel_imaging::{DecodeLimits, DecodedImage};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images::Image};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ModelError, Result};

/// CLIP's channel means and standard deviations, which Qwen2-VL uses.
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// `preprocessor_config.json`, reduced to what Qwen2-VL's processor uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessorConfig {
    pub min_pixels: usize,
    pub max_pixels: usize,
    pub patch_size: usize,
    pub temporal_patch_size: usize,
    pub merge_size: usize,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    pub rescale_factor: f32,
}

impl Default for ProcessorConfig {
    /// The values of `Qwen/Qwen2-VL-7B-Instruct`'s `preprocessor_config.json`.
    fn default() -> Self {
        Self {
            min_pixels: 56 * 56,
            max_pixels: 28 * 28 * 16_384,
            patch_size: 14,
            temporal_patch_size: 2,
            merge_size: 2,
            image_mean: CLIP_MEAN,
            image_std: CLIP_STD,
            rescale_factor: 1.0 / 255.0,
        }
    }
}

impl ProcessorConfig {
    /// Reads `preprocessor_config.json`; `min_pixels`/`max_pixels` may also be given as
    /// `size: {shortest_edge, longest_edge}` (newer processors write both).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| ModelError::invalid(path, "preprocessor_config.json", e))?;
        Self::from_value(&value).map_err(|m| ModelError::invalid(path, "preprocessor_config.json", m))
    }

    pub fn from_value(value: &Value) -> std::result::Result<Self, String> {
        let defaults = Self::default();
        let get_usize = |key: &str| value.get(key).and_then(Value::as_u64).map(|v| v as usize);
        let size = value.get("size");
        let size_field =
            |key: &str| size.and_then(|s| s.get(key)).and_then(Value::as_u64).map(|v| v as usize);
        let triple = |key: &str, default: [f32; 3]| -> std::result::Result<[f32; 3], String> {
            match value.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => serde_json::from_value::<[f32; 3]>(v.clone()).map_err(|e| format!("{key}: {e}")),
            }
        };
        let config = Self {
            min_pixels: get_usize("min_pixels").or(size_field("shortest_edge")).unwrap_or(defaults.min_pixels),
            max_pixels: get_usize("max_pixels").or(size_field("longest_edge")).unwrap_or(defaults.max_pixels),
            patch_size: get_usize("patch_size").unwrap_or(defaults.patch_size),
            temporal_patch_size: get_usize("temporal_patch_size").unwrap_or(defaults.temporal_patch_size),
            merge_size: get_usize("merge_size").unwrap_or(defaults.merge_size),
            image_mean: triple("image_mean", defaults.image_mean)?,
            image_std: triple("image_std", defaults.image_std)?,
            rescale_factor: value
                .get("rescale_factor")
                .and_then(Value::as_f64)
                .map(|v| v as f32)
                .unwrap_or(defaults.rescale_factor),
        };
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.patch_size == 0 || self.merge_size == 0 || self.temporal_patch_size == 0 {
            return Err("patch_size, merge_size and temporal_patch_size must be positive".into());
        }
        if self.min_pixels > self.max_pixels {
            return Err(format!("min_pixels {} exceeds max_pixels {}", self.min_pixels, self.max_pixels));
        }
        let cell = self.factor() * self.factor();
        if self.max_pixels < cell {
            return Err(format!("max_pixels {} is smaller than one {cell}-pixel cell", self.max_pixels));
        }
        if self.image_std.iter().any(|s| *s <= 0.0) {
            return Err("image_std must be positive".into());
        }
        Ok(())
    }

    /// The side of one merged cell in pixels (28 for Qwen2-VL).
    pub fn factor(&self) -> usize {
        self.patch_size * self.merge_size
    }

    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "image_processor_type": "Qwen2VLImageProcessor",
            "processor_class": "Qwen2VLProcessor",
            "do_resize": true,
            "do_rescale": true,
            "do_normalize": true,
            "do_convert_rgb": true,
            "resample": 3,
            "rescale_factor": self.rescale_factor,
            "image_mean": self.image_mean,
            "image_std": self.image_std,
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
            "size": {"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels},
            "patch_size": self.patch_size,
            "temporal_patch_size": self.temporal_patch_size,
            "merge_size": self.merge_size,
        })
    }
}

/// The patch grid of one image: `t` frames × `h` × `w` patches (before merging).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Grid {
    pub t: usize,
    pub h: usize,
    pub w: usize,
}

impl Grid {
    pub fn num_patches(&self) -> usize {
        self.t * self.h * self.w
    }
    /// Visual tokens the language model sees after the `merge × merge` merger.
    pub fn num_tokens(&self, merge: usize) -> usize {
        self.num_patches() / (merge * merge)
    }
}

/// Qwen2-VL's `smart_resize`: the size closest to `(height, width)` whose sides are multiples
/// of `factor` and whose area lies in `[min_pixels, max_pixels]`, keeping the aspect ratio.
pub fn smart_resize(
    height: usize,
    width: usize,
    factor: usize,
    min_pixels: usize,
    max_pixels: usize,
) -> Result<(usize, usize)> {
    if height == 0 || width == 0 {
        return Err(ModelError::Preprocess(format!("the image is {width}×{height} pixels")));
    }
    let (h, w, f) = (height as f64, width as f64, factor as f64);
    if h.max(w) / h.min(w) > 200.0 {
        return Err(ModelError::Preprocess(format!(
            "the aspect ratio of a {width}×{height} image exceeds 200"
        )));
    }
    // Python's round() rounds half to even.
    let mut h_bar = (h / f).round_ties_even() * f;
    let mut w_bar = (w / f).round_ties_even() * f;
    if h_bar * w_bar > max_pixels as f64 {
        let beta = (h * w / max_pixels as f64).sqrt();
        h_bar = f.max((h / beta / f).floor() * f);
        w_bar = f.max((w / beta / f).floor() * f);
    } else if h_bar * w_bar < min_pixels as f64 {
        let beta = (min_pixels as f64 / (h * w)).sqrt();
        h_bar = (h * beta / f).ceil() * f;
        w_bar = (w * beta / f).ceil() * f;
    }
    Ok((h_bar as usize, w_bar as usize))
}

/// One image ready for the vision tower.
#[derive(Debug, Clone)]
pub struct PreparedImage {
    /// `grid.num_patches() × patch_len` values, row-major.
    pub pixel_values: Vec<f32>,
    pub grid: Grid,
    /// Size of the decoded image before resizing, `(width, height)`.
    pub source_size: (u32, u32),
}

/// Turns decoded images into `pixel_values`; cheap to clone and `Send + Sync`.
#[derive(Debug, Clone)]
pub struct ImageProcessor {
    config: ProcessorConfig,
}

impl ImageProcessor {
    pub fn new(config: ProcessorConfig) -> Self {
        Self { config }
    }

    pub fn config(&self) -> &ProcessorConfig {
        &self.config
    }

    /// Length of one flattened patch (3·2·14·14 = 1176).
    pub fn patch_len(&self) -> usize {
        3 * self.config.temporal_patch_size * self.config.patch_size * self.config.patch_size
    }

    /// Decodes untrusted bytes under `limits`, then [`Self::prepare`]s them.
    pub fn prepare_bytes(&self, bytes: &[u8], limits: &DecodeLimits) -> Result<PreparedImage> {
        let decoded = easel_imaging::decode(bytes, limits)?;
        self.prepare(&decoded)
    }

    /// Reads and prepares a file (any format the imaging crate decodes).
    pub fn prepare_file(&self, path: &Path, limits: &DecodeLimits) -> Result<PreparedImage> {
        let size = std::fs::metadata(path).map_err(|e| ModelError::io(path, e))?.len();
        if size > limits.max_bytes as u64 {
            return Err(easel_imaging::DecodeError::TooManyBytes {
                size: size as usize,
                max: limits.max_bytes,
            }
            .into());
        }
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        self.prepare_bytes(&bytes, limits)
    }

    pub fn prepare(&self, image: &DecodedImage) -> Result<PreparedImage> {
        let resized = self.resize(&image.rgb)?;
        let (pixel_values, grid) = self.patchify(&resized);
        Ok(PreparedImage { pixel_values, grid, source_size: (image.width(), image.height()) })
    }

    /// The size [`Self::resize`] produces for a `width × height` image, as `(height, width)`.
    pub fn target_size(&self, width: u32, height: u32) -> Result<(usize, usize)> {
        let c = &self.config;
        smart_resize(height as usize, width as usize, c.factor(), c.min_pixels, c.max_pixels)
    }

    /// Bicubic resize to the `smart_resize` size.
    ///
    /// Like Pillow's `ImagingResampleInner`: a horizontal pass, clipped to 8 bits, then a
    /// vertical pass. One combined `fast_image_resize` call runs the passes the other way round,
    /// which on hard edges (where bicubic overshoots and the clip bites) differs from PIL by up
    /// to ~20 levels; two passes agree with PIL to ±1 level in the common case.
    pub fn resize(&self, rgb: &RgbImage) -> Result<RgbImage> {
        let (height, width) = self.target_size(rgb.width(), rgb.height())?;
        let (width, height) = (width as u32, height as u32);
        let horizontal = resize_pass(rgb, width, rgb.height())?;
        resize_pass(&horizontal, width, height)
    }

    /// Normalises and cuts an already-resized image into patches in 2×2-merge order.
    ///
    /// Row `r` of the result is patch `(bh, bw, mh, mw)` of the `(h/m, w/m, m, m)` block grid,
    /// holding `[channel][frame][y][x]`, the one frame repeated `temporal_patch_size` times.
    pub fn patchify(&self, rgb: &RgbImage) -> (Vec<f32>, Grid) {
        let c = &self.config;
        let (p, m, tp) = (c.patch_size, c.merge_size, c.temporal_patch_size);
        let grid = Grid { t: 1, h: rgb.height() as usize / p, w: rgb.width() as usize / p };
        let patch_len = 3 * tp * p * p;
        let mut out = vec![0f32; grid.num_patches() * patch_len];
        // Per channel: value · rescale → (· − mean) / std, as one multiply-add.
        let scale: [f32; 3] = std::array::from_fn(|ch| c.rescale_factor / c.image_std[ch]);
        let shift: [f32; 3] = std::array::from_fn(|ch| c.image_mean[ch] / c.image_std[ch]);
        let raw = rgb.as_raw();
        let stride = rgb.width() as usize * 3;
        let mut row = 0;
        for bh in 0..grid.h / m {
            for bw in 0..grid.w / m {
                for mh in 0..m {
                    for mw in 0..m {
                        let (py0, px0) = ((bh * m + mh) * p, (bw * m + mw) * p);
                        let patch = &mut out[row * patch_len..(row + 1) * patch_len];
                        let frame_len = p * p;
                        for ch in 0..3 {
                            let base = ch * tp * frame_len;
                            let (first, rest) = patch[base..base + tp * frame_len].split_at_mut(frame_len);
                            for y in 0..p {
                                let src = &raw[(py0 + y) * stride + px0 * 3..(py0 + y) * stride + (px0 + p) * 3];
                                let dst = &mut first[y * p..(y + 1) * p];
                                for (d, px) in dst.iter_mut().zip(src.chunks_exact(3)) {
                                    *d = f32::from(px[ch]) * scale[ch] - shift[ch];
                                }
                            }
                            // The single frame fills every temporal slot.
                            for copy in rest.chunks_exact_mut(frame_len) {
                                copy.copy_from_slice(first);
                            }
                        }
                        row += 1;
                    }
                }
            }
        }
        (out, grid)
    }
}

/// One bicubic (Catmull-Rom, a = −0.5, support scaled when shrinking, as PIL) resampling.
fn resize_pass(rgb: &RgbImage, width: u32, height: u32) -> Result<RgbImage> {
    if (width, height) == rgb.dimensions() {
        return Ok(rgb.clone());
    }
    let src = Image::from_vec_u8(rgb.width(), rgb.height(), rgb.as_raw().clone(), PixelType::U8x3)
        .map_err(|e| ModelError::Preprocess(e.to_string()))?;
    let mut dst = Image::new(width, height, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom));
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| ModelError::Preprocess(e.to_string()))?;
    RgbImage::from_raw(width, height, dst.into_vec())
        .ok_or_else(|| ModelError::Preprocess("resized buffer has the wrong size".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smart_resize_matches_qwen() {
        // Values computed with transformers' smart_resize.
        assert_eq!(smart_resize(75, 100, 28, 3136, 1_003_520).unwrap(), (84, 112));
        assert_eq!(smart_resize(60, 150, 28, 3136, 1_003_520).unwrap(), (56, 140));
        // Halves round to even, as Python's round() does: 42/28 = 1.5 → 2, 70/28 = 2.5 → 2.
        assert_eq!(smart_resize(42, 70, 28, 0, 1 << 30).unwrap(), (56, 56));
        // Too many pixels: scaled down, floor to multiples of 28.
        assert_eq!(smart_resize(480, 640, 28, 3136, 28 * 28 * 80).unwrap(), (196, 280));
        // Too few: scaled up with ceil.
        assert_eq!(smart_resize(10, 10, 28, 56 * 56, 1 << 30).unwrap(), (56, 56));
        assert!(smart_resize(1, 300, 28, 3136, 1 << 30).is_err());
        assert!(smart_resize(0, 3, 28, 3136, 1 << 30).is_err());
    }

    #[test]
    fn patches_come_in_merge_order() {
        let processor = ImageProcessor::new(ProcessorConfig::default());
        // A 56×28 image: 2 rows × 4 columns of 14-px patches; encode (row, col) in the pixels.
        let img = RgbImage::from_fn(56, 28, |x, y| {
            image::Rgb([(y / 14) as u8 * 10, (x / 14) as u8 * 10, 0])
        });
        let (values, grid) = processor.patchify(&img);
        assert_eq!(grid, Grid { t: 1, h: 2, w: 4 });
        let patch_len = processor.patch_len();
        let decode = |v: f32, ch: usize| ((v + CLIP_MEAN[ch] / CLIP_STD[ch]) * CLIP_STD[ch] * 255.0).round();
        let order: Vec<(f32, f32)> = (0..grid.num_patches())
            .map(|i| {
                let patch = &values[i * patch_len..(i + 1) * patch_len];
                (decode(patch[0], 0) / 10.0, decode(patch[2 * 196], 1) / 10.0)
            })
            .collect();
        // Block (0,0) holds patches (0,0) (0,1) (1,0) (1,1); block (0,1) the next two columns.
        let expected = [(0., 0.), (0., 1.), (1., 0.), (1., 1.), (0., 2.), (0., 3.), (1., 2.), (1., 3.)];
        assert_eq!(order, expected);
        // The frame is duplicated along the temporal axis.
        assert_eq!(values[0], values[196]);
    }
}
