//! `easel.json`: what turns a Hugging Face Qwen2-VL folder into an Easel checkpoint.
//!
//! ```json
//! {
//!   "format": "easel-checkpoint", "format_version": 1,
//!   "model_version": "easel-qwen2vl7b-2026-11-28",
//!   "base_model": "Qwen/Qwen2-VL-7B-Instruct",
//!   "head": {"file": "head.safetensors", "input_dim": 3584, "hidden_dim": 1024,
//!            "outputs": ["overall", "originality", "color", "texture", "composition", "content"],
//!            "score_range": [1.0, 100.0], "pooling": "mean"},
//!   "processor": {"min_pixels": 3136, "max_pixels": 200704},
//!   "prompt": {"system": "...", "user": "Critique this painting.", "include_scores": true},
//!   "generation": {"max_new_tokens": 256, "temperature": 0.0, ...},
//!   "lora": {"path": "adapter"}
//! }
//! ```
//!
//! `scoring` chooses how the six scores are made: `"head"` (the regression head above) or
//! `"zero-shot"` (the language model's level words, [`crate::zero_shot`], asked with the
//! `zero_shot` prompts and mapped through `calibration` when a jury's scores were fitted).
//! Without `scoring`, a manifest with a `head` section scores with the head (its file must be
//! there) and one without scores zero-shot; a folder without `easel.json` (a plain Hugging Face
//! download) scores zero-shot.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use easel_rubric::ScoringMode;

use crate::calibration::CalibrationSet;
use crate::error::{ModelError, Result};
use crate::generate::GenerationConfig;
use crate::head::HeadConfig;
use crate::prompt::PromptSpec;
use crate::zero_shot::ZeroShotPrompts;

pub const MANIFEST_FILE: &str = "easel.json";
pub const FORMAT: &str = "easel-checkpoint";
pub const FORMAT_VERSION: u32 = 1;

/// Easel's default cap on pixels per painting: 448 × 448 = 200 704, i.e. at most 256 visual
/// tokens. Qwen2-VL's own default (12.8 M pixels, 16 384 tokens) costs ~60× more per painting;
/// 256 tokens keep a batch of 64 critiques on one GPU while the 2×2-merged 28-pixel cells still
/// resolve brushwork on a typical entry photo. Raise it in `easel.json` for detail-heavy work.
pub const DEFAULT_MAX_PIXELS: usize = 448 * 448;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadEntry {
    #[serde(default = "default_head_file")]
    pub file: String,
    #[serde(flatten)]
    pub config: HeadConfig,
}

fn default_head_file() -> String {
    "head.safetensors".into()
}

/// Overrides of `preprocessor_config.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessorOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_pixels: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pixels: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraEntry {
    /// Folder (relative to the checkpoint) holding `adapter_config.json` and
    /// `adapter_model.safetensors` in PEFT's layout.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub model_version: String,
    #[serde(default)]
    pub base_model: String,
    /// `"head"` or `"zero-shot"`; absent: the head when its file is there, else zero-shot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scoring: Option<ScoringMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<HeadEntry>,
    /// The zero-shot prompts (defaults: [`ZeroShotPrompts::default`]).
    #[serde(default)]
    pub zero_shot: ZeroShotPrompts,
    /// Per-output maps from zero-shot scores onto a jury's scale (`easel calibrate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<CalibrationSet>,
    #[serde(default)]
    pub processor: ProcessorOverrides,
    #[serde(default)]
    pub prompt: PromptSpec,
    #[serde(default)]
    pub generation: GenerationConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraEntry>,
}

impl Manifest {
    /// A checkpoint that scores with a trained head (`head.safetensors`).
    pub fn new(model_version: impl Into<String>, base_model: impl Into<String>, head: HeadConfig) -> Self {
        Self {
            scoring: None,
            head: Some(HeadEntry { file: default_head_file(), config: head }),
            ..Self::zero_shot(model_version, base_model)
        }
    }

    /// A checkpoint without a head: it scores zero-shot with the default prompts.
    pub fn zero_shot(model_version: impl Into<String>, base_model: impl Into<String>) -> Self {
        Self {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            model_version: model_version.into(),
            base_model: base_model.into(),
            scoring: Some(ScoringMode::ZeroShot),
            head: None,
            zero_shot: ZeroShotPrompts::default(),
            calibration: None,
            processor: ProcessorOverrides { min_pixels: None, max_pixels: Some(DEFAULT_MAX_PIXELS) },
            prompt: PromptSpec::default(),
            generation: GenerationConfig::default(),
            lora: None,
        }
    }

    /// Reads `dir/easel.json`; a folder without one but with a `config.json` (a plain Hugging
    /// Face download) gets [`Manifest::zero_shot`], named after the folder.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        if !path.is_file() {
            if dir.join("config.json").is_file() {
                let name = dir
                    .canonicalize()
                    .ok()
                    .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "qwen2-vl".to_string());
                return Ok(Self::zero_shot(name.clone(), name));
            }
            return Err(ModelError::MissingFile {
                dir: dir.to_path_buf(),
                what: format!("{MANIFEST_FILE} or config.json (an HF Qwen2-VL folder, optionally with easel.json)"),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| ModelError::invalid(&path, "easel.json", e))?;
        if manifest.format != FORMAT || manifest.format_version != FORMAT_VERSION {
            return Err(ModelError::invalid(
                &path,
                "easel.json",
                format!(
                    "format {:?} v{} is not {FORMAT:?} v{FORMAT_VERSION}",
                    manifest.format, manifest.format_version
                ),
            ));
        }
        if manifest.model_version.trim().is_empty() {
            return Err(ModelError::invalid(&path, "easel.json", "model_version is empty"));
        }
        if manifest.scoring == Some(ScoringMode::Head) && manifest.head.is_none() {
            return Err(ModelError::invalid(&path, "easel.json", "scoring is \"head\" but there is no head section"));
        }
        manifest.zero_shot.validate().map_err(|e| ModelError::invalid(&path, "easel.json", e))?;
        if let Some(calibration) = &manifest.calibration {
            calibration.validate().map_err(|e| ModelError::invalid(&path, "easel.json calibration", e))?;
        }
        Ok(manifest)
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST_FILE);
        let text = serde_json::to_string_pretty(self).expect("a manifest serialises");
        std::fs::write(&path, text + "\n").map_err(|e| ModelError::io(&path, e))
    }

    /// The head's file, when the manifest names a head.
    pub fn head_path(&self, dir: &Path) -> Result<Option<PathBuf>> {
        self.head.as_ref().map(|h| safe_join(dir, &h.file)).transpose()
    }

    /// How this checkpoint scores: `scoring` when set, else the head when the manifest names
    /// one (its file must then be there: a trained checkpoint that lost its head is an error,
    /// never a silent switch to zero-shot), else zero-shot.
    pub fn scoring(&self) -> ScoringMode {
        self.scoring.unwrap_or(if self.head.is_some() { ScoringMode::Head } else { ScoringMode::ZeroShot })
    }

    /// The version results are recorded under. Zero-shot scores depend on the prompts and the
    /// calibration as much as on the weights, so their digest is part of the name:
    /// `{model_version}+zs-{8 hex}`.
    pub fn served_version(&self, mode: ScoringMode) -> String {
        match mode {
            ScoringMode::Head => self.model_version.clone(),
            ScoringMode::ZeroShot => {
                let extra = serde_json::json!({ "calibration": self.calibration });
                format!("{}+zs-{}", self.model_version, self.zero_shot.fingerprint(&extra))
            }
        }
    }

    pub fn lora_dir(&self, dir: &Path) -> Result<Option<PathBuf>> {
        self.lora.as_ref().map(|l| safe_join(dir, &l.path)).transpose()
    }
}

/// Joins a relative path from a manifest, refusing absolute paths and `..`.
fn safe_join(dir: &Path, relative: &str) -> Result<PathBuf> {
    let rel = Path::new(relative);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(ModelError::invalid(dir.join(MANIFEST_FILE), "easel.json", format!("path {relative:?} leaves the checkpoint")));
    }
    Ok(dir.join(rel))
}
