//! Helpers shared by the parity tests: reading a fixture script's reference tensors and
//! comparing ours with them.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use easel_model::Grid;

/// One reference file of a fixture script: tensors and string metadata.
pub struct Reference {
    pub tensors: HashMap<String, Tensor>,
    pub metadata: HashMap<String, String>,
}

impl Reference {
    pub fn load(path: &Path) -> Self {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("safetensors header");
        let metadata = meta.metadata().clone().unwrap_or_default();
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).expect("tensors");
        Self { tensors, metadata }
    }

    pub fn get(&self, name: &str) -> &Tensor {
        self.tensors.get(name).unwrap_or_else(|| panic!("reference lacks {name}"))
    }

    pub fn i64s(&self, name: &str) -> Vec<i64> {
        self.get(name).to_dtype(DType::I64).unwrap().flatten_all().unwrap().to_vec1().unwrap()
    }

    /// `image_grid_thw`, none for a text-only case.
    pub fn grids(&self) -> Vec<Grid> {
        match self.tensors.get("image_grid_thw") {
            None => Vec::new(),
            Some(t) => t
                .to_dtype(DType::I64)
                .unwrap()
                .to_vec2::<i64>()
                .unwrap()
                .iter()
                .map(|r| Grid { t: r[0] as usize, h: r[1] as usize, w: r[2] as usize })
                .collect(),
        }
    }
}

/// Largest absolute difference, and the reference's largest magnitude.
pub fn max_diff(ours: &Tensor, theirs: &Tensor) -> (f32, f32) {
    let ours = ours.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
    let theirs = theirs.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
    assert_eq!(ours.dims(), theirs.dims(), "shapes differ");
    let diff = (ours - &theirs).unwrap().abs().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    let scale = theirs.abs().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    (diff, scale)
}

/// Asserts `|ours − theirs| ≤ rel · max|theirs|` and prints what was reached.
pub fn assert_close(what: &str, ours: &Tensor, theirs: &Tensor, rel: f32) {
    let (diff, scale) = max_diff(ours, theirs);
    println!("{what}: max |diff| {diff:.3e}, scale {scale:.3e}, relative {:.3e}", diff / scale.max(1e-12));
    assert!(diff <= rel * scale.max(1e-6), "{what}: max |diff| {diff:e} exceeds {rel:e} × {scale:e}");
}
