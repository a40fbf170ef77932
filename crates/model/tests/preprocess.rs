//! Image preprocessing against HF's PIL-based `Qwen2VLImageProcessor`, and hostile files.
//!
//! The reference holds, per image, the RGB that `transformers.image_utils.load_image` decoded,
//! the PIL-bicubic-resized RGB, and the final `pixel_values`, so decoding, resizing and
//! normalisation differences are measured separately.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use easel_model::processor::{ImageProcessor, ProcessorConfig};
use easel_model::{DecodeError, DecodeLimits, ModelError};
use image::RgbImage;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn processor() -> ImageProcessor {
    let config = ProcessorConfig::from_file(&fixtures().join("tiny-hub/preprocessor_config.json")).unwrap();
    ImageProcessor::new(config)
}

fn as_rgb(t: &Tensor) -> RgbImage {
    let (h, w, _) = t.dims3().unwrap();
    let values: Vec<u8> = t
        .to_dtype(DType::I64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| v as u8)
        .collect();
    RgbImage::from_raw(w as u32, h as u32, values).unwrap()
}

/// (max, mean) absolute difference in 8-bit levels.
fn level_diff(a: &RgbImage, b: &RgbImage) -> (u8, f64) {
    assert_eq!(a.dimensions(), b.dimensions());
    let diffs: Vec<u8> = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| x.abs_diff(*y)).collect();
    let max = diffs.iter().copied().max().unwrap_or(0);
    let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len().max(1) as f64;
    (max, mean)
}

#[test]
fn matches_hf_image_processor() {
    let reference = candle_core::safetensors::load(fixtures().join("reference/preprocess.safetensors"), &Device::Cpu).unwrap();
    let processor = processor();
    let limits = DecodeLimits::default().any_format();
    // (name, file, largest decode difference allowed, largest resize difference allowed).
    // PNG decoding is exact. JPEG decoders differ in their IDCT and chroma upsampling
    // (zune-jpeg here, libjpeg-turbo in PIL): a few levels on some pixels, well under one level
    // on average. The resampler agrees with PIL to one level where PIL runs its horizontal
    // pass first; for some size pairs Pillow runs the vertical pass first, and on hard edges
    // that moves a handful of pixels by up to ~12 levels (gray.png).
    let cases = [
        ("a", "a.png", 0, 1),
        ("b", "b.jpg", 12, 1),
        ("big", "big.jpg", 12, 1),
        ("gray", "gray.png", 0, 12),
        ("rgba", "rgba.png", 0, 1),
        ("rgb16", "rgb16.png", 0, 1),
        ("cmyk", "cmyk.jpg", 12, 1),
        ("exif_rot", "exif_rot.jpg", 12, 1),
    ];
    for (name, file, decode_tol, resize_tol) in cases {
        let bytes = std::fs::read(fixtures().join("images").join(file)).unwrap();
        let decoded = easel_imaging::decode(&bytes, &limits).unwrap_or_else(|e| panic!("{file}: {e}"));
        let pil_rgb = as_rgb(&reference[&format!("{name}.rgb")]);
        let pil_resized = as_rgb(&reference[&format!("{name}.resized")]);
        assert_eq!(decoded.rgb.dimensions(), pil_rgb.dimensions(), "{file}: decoded size (EXIF orientation)");
        let (decode_max, decode_mean) = level_diff(&decoded.rgb, &pil_rgb);
        // Resize PIL's own decode, so only the resampler differs.
        let resized = processor.resize(&pil_rgb).unwrap();
        let (resize_max, resize_mean) = level_diff(&resized, &pil_resized);
        // End to end: our decode + resize + normalise against HF's pixel_values.
        let prepared = processor.prepare(&decoded).unwrap();
        let grid = reference[&format!("{name}.image_grid_thw")].to_dtype(DType::I64).unwrap().flatten_all().unwrap().to_vec1::<i64>().unwrap();
        assert_eq!([prepared.grid.t as i64, prepared.grid.h as i64, prepared.grid.w as i64], grid[..], "{file}: grid");
        let ours = Tensor::from_vec(prepared.pixel_values.clone(), (prepared.grid.num_patches(), processor.patch_len()), &Device::Cpu).unwrap();
        let theirs = &reference[&format!("{name}.pixel_values")];
        let pv_diff = (ours - theirs).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        // Normalisation alone, on PIL's resized pixels: float rounding only.
        let (norm_only, _) = processor.patchify(&pil_resized);
        let norm_only = Tensor::from_vec(norm_only, theirs.dims(), &Device::Cpu).unwrap();
        let norm_diff = (norm_only - theirs).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        println!(
            "{file}: decode max {decode_max} mean {decode_mean:.4} levels; resize max {resize_max} mean {resize_mean:.4} levels; \
             normalise-only max {norm_diff:.2e}; pixel_values max {pv_diff:.4}"
        );
        assert!(decode_max <= decode_tol, "{file}: decoding differs from PIL by {decode_max} levels");
        assert!(decode_mean < 1.0 && resize_mean < 0.25, "{file}: mean differences {decode_mean}, {resize_mean}");
        assert!(resize_max <= resize_tol, "{file}: resizing differs from PIL by {resize_max} levels");
        assert!(norm_diff < 1e-5, "{file}: normalisation differs by {norm_diff}");
    }
}

#[test]
fn hostile_files_are_clear_errors() {
    let processor = processor();
    let limits = DecodeLimits::default().any_format();
    let expect = |file: &str, check: fn(&DecodeError) -> bool| {
        match processor.prepare_file(&fixtures().join("images").join(file), &limits) {
            Err(ModelError::Image(e)) => assert!(check(&e), "{file}: unexpected error {e:?}"),
            other => panic!("{file}: expected an image error, got {other:?}"),
        }
    };
    expect("empty.bin", |e| matches!(e, DecodeError::Empty));
    expect("not_image.txt", |e| matches!(e, DecodeError::NotAnImage));
    expect("truncated.jpg", |e| matches!(e, DecodeError::Truncated | DecodeError::Corrupt(_)));
    expect("bomb.png", |e| matches!(e, DecodeError::TooLarge { width: 30_000, height: 30_000, .. }));
    // A missing file is an I/O error naming the path.
    match processor.prepare_file(&fixtures().join("images/missing.png"), &limits) {
        Err(e @ ModelError::Io { .. }) => assert!(e.to_string().contains("missing.png")),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}
