//! Evaluation on a held-out manifest: the model's scores against the truth (overall and each
//! rubric dimension), against each human rater and raters against each other, critique
//! similarity to the expert critiques, and whether critiques cover the whole rubric.

use easel_model::{ArtworkInput, Assessor, CRITERIA, OUTPUTS};
use serde::{Deserialize, Serialize};

use crate::batch::prepare_images;
use crate::data::{Example, ImageSource};
use crate::embed::SentenceEmbedder;
use crate::error::Result;
use crate::metrics::{Agreement, Estimate, agreement, bootstrap};

/// The model's output for one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Overall then the rubric, 1–100.
    pub scores: [f32; 6],
    pub critique: String,
}

/// Runs `assessor` over `rows` in batches of `batch_size`, in order.
pub fn predict(
    assessor: &Assessor,
    rows: &[&Example],
    source: &dyn ImageSource,
    batch_size: usize,
    mut on_batch: impl FnMut(usize),
) -> Result<Vec<Prediction>> {
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(batch_size.max(1)) {
        let images = prepare_images(chunk, source, assessor.processor())?;
        let inputs: Vec<ArtworkInput> = images
            .into_iter()
            .zip(chunk)
            .map(|(image, row)| ArtworkInput {
                image,
                description: Some(row.description.clone()).filter(|d| !d.trim().is_empty()),
            })
            .collect();
        for a in assessor.assess(&inputs)? {
            out.push(Prediction { scores: a.scores.to_array(), critique: a.critique });
        }
        on_batch(chunk.len());
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalOptions {
    /// Bootstrap resamples for the 95% intervals.
    pub resamples: usize,
    pub seed: u64,
    /// Score bands for the quadratic weighted kappa.
    pub bands: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self { resamples: 1000, seed: 0, bands: crate::split::DEFAULT_BANDS }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DimensionReport {
    pub name: String,
    pub agreement: Agreement,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairAgreement {
    /// `"model"` or a rater's name.
    pub a: String,
    pub b: String,
    pub agreement: Agreement,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaterReport {
    pub model_vs_rater: Vec<PairAgreement>,
    pub rater_vs_rater: Vec<PairAgreement>,
    /// Means of the Pearson r above, so a study can say whether the model agrees with experts
    /// as well as experts agree with each other.
    pub mean_model_rater_pearson: Option<f64>,
    pub mean_inter_rater_pearson: Option<f64>,
}

/// Share of critiques that mention each rubric dimension, and all five.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    pub critiques: usize,
    pub per_dimension: Vec<(String, f64)>,
    pub all_five: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CritiqueReport {
    /// Rows with both an expert and a generated critique.
    pub pairs: usize,
    /// Mean cosine similarity of the sentence embeddings, with its 95% interval.
    pub similarity: Option<Estimate>,
    pub embedder: Option<String>,
    pub generated_coverage: Coverage,
    pub reference_coverage: Option<Coverage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowResult {
    pub line: usize,
    pub id: String,
    pub truth: [Option<f32>; 6],
    pub predicted: [f32; 6],
    pub critique_similarity: Option<f32>,
    pub mentions_all_dimensions: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub model_version: String,
    pub data: String,
    pub rows: usize,
    pub options: EvalOptions,
    /// `overall` first, then each rubric dimension that has ground truth.
    pub dimensions: Vec<DimensionReport>,
    pub raters: RaterReport,
    pub critique: CritiqueReport,
    pub per_row: Vec<RowResult>,
}

/// Which rubric dimensions a critique names (`colour` counts for color, `composed` for
/// composition, `original` for originality, `subject` for content).
pub fn mentions(text: &str) -> [bool; 5] {
    let text = text.to_lowercase();
    let words: [&[&str]; 5] = [
        &["original"],
        &["color", "colour"],
        &["texture"],
        &["composition", "composed"],
        &["content", "subject"],
    ];
    std::array::from_fn(|i| words[i].iter().any(|w| text.contains(w)))
}

fn coverage(texts: &[&str]) -> Coverage {
    let n = texts.len();
    let hits: Vec<[bool; 5]> = texts.iter().map(|t| mentions(t)).collect();
    let share = |count: usize| if n == 0 { f64::NAN } else { count as f64 / n as f64 };
    Coverage {
        critiques: n,
        per_dimension: CRITERIA
            .iter()
            .enumerate()
            .map(|(d, name)| (name.to_string(), share(hits.iter().filter(|h| h[d]).count())))
            .collect(),
        all_five: share(hits.iter().filter(|h| h.iter().all(|&b| b)).count()),
    }
}

fn mean_of(values: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Compares `predictions` (in the order of `rows`) with the manifest's truth.
pub fn evaluate(
    model_version: &str,
    data: &str,
    rows: &[&Example],
    predictions: &[Prediction],
    embedder: Option<(&SentenceEmbedder, &str)>,
    options: EvalOptions,
) -> Result<EvalReport> {
    assert_eq!(rows.len(), predictions.len(), "one prediction per row");
    let EvalOptions { resamples, seed, bands } = options;
    let mut dimensions = Vec::new();
    for (d, name) in OUTPUTS.iter().enumerate() {
        let (p, t): (Vec<f32>, Vec<f32>) =
            rows.iter().zip(predictions).filter_map(|(r, p)| r.targets()[d].map(|t| (p.scores[d], t))).unzip();
        if !t.is_empty() {
            dimensions.push(DimensionReport {
                name: name.to_string(),
                agreement: agreement(&p, &t, resamples, seed.wrapping_add(d as u64 * 100), bands),
            });
        }
    }

    let mut raters: Vec<String> = rows.iter().flat_map(|r| r.raters.keys().cloned()).collect();
    raters.sort();
    raters.dedup();
    let pair = |a: &str, b: &str, get_a: &dyn Fn(usize) -> Option<f32>, get_b: &dyn Fn(usize) -> Option<f32>, salt: u64| {
        let (x, y): (Vec<f32>, Vec<f32>) = (0..rows.len()).filter_map(|i| Some((get_a(i)?, get_b(i)?))).unzip();
        (x.len() >= 2).then(|| PairAgreement {
            a: a.to_string(),
            b: b.to_string(),
            agreement: agreement(&x, &y, resamples, seed.wrapping_add(salt), bands),
        })
    };
    let model_overall = |i: usize| Some(predictions[i].scores[0]);
    let mut model_vs_rater = Vec::new();
    let mut rater_vs_rater = Vec::new();
    for (k, name) in raters.iter().enumerate() {
        let rater = |i: usize| rows[i].raters.get(name).copied();
        model_vs_rater.extend(pair("model", name, &model_overall, &rater, 10_000 + k as u64));
        for (l, other) in raters.iter().enumerate().skip(k + 1) {
            let second = |i: usize| rows[i].raters.get(other).copied();
            rater_vs_rater.extend(pair(name, other, &rater, &second, 20_000 + (k * raters.len() + l) as u64));
        }
    }
    let rater_report = RaterReport {
        mean_model_rater_pearson: mean_of(model_vs_rater.iter().map(|p| p.agreement.pearson.value)),
        mean_inter_rater_pearson: mean_of(rater_vs_rater.iter().map(|p| p.agreement.pearson.value)),
        model_vs_rater,
        rater_vs_rater,
    };

    // Critique similarity on rows with an expert critique and a non-empty generated one.
    let paired: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].critique.is_some() && !predictions[i].critique.trim().is_empty())
        .collect();
    let mut similarities: Vec<Option<f32>> = vec![None; rows.len()];
    let mut similarity = None;
    if let (Some((embedder, _)), false) = (embedder, paired.is_empty()) {
        let generated: Vec<&str> = paired.iter().map(|&i| predictions[i].critique.as_str()).collect();
        let reference: Vec<&str> = paired.iter().map(|&i| rows[i].critique.as_deref().unwrap_or_default()).collect();
        let sims = embedder.similarities(&generated, &reference)?;
        for (&i, &s) in paired.iter().zip(&sims) {
            similarities[i] = Some(s);
        }
        let mean = |x: &[f32], _: &[f32]| x.iter().map(|&v| f64::from(v)).sum::<f64>() / x.len() as f64;
        similarity = Some(bootstrap(&sims, &sims, resamples, seed.wrapping_add(30_000), mean));
    }
    let generated: Vec<&str> =
        predictions.iter().map(|p| p.critique.as_str()).filter(|c| !c.trim().is_empty()).collect();
    let references: Vec<&str> = rows.iter().filter_map(|r| r.critique.as_deref()).collect();
    let critique = CritiqueReport {
        pairs: paired.len(),
        similarity,
        embedder: embedder.map(|(_, name)| name.to_string()),
        generated_coverage: coverage(&generated),
        reference_coverage: (!references.is_empty()).then(|| coverage(&references)),
    };

    let per_row = rows
        .iter()
        .zip(predictions)
        .zip(&similarities)
        .map(|((r, p), s)| RowResult {
            line: r.line,
            id: r.id.clone(),
            truth: r.targets(),
            predicted: p.scores,
            critique_similarity: *s,
            mentions_all_dimensions: mentions(&p.critique).iter().all(|&b| b),
        })
        .collect();
    Ok(EvalReport {
        model_version: model_version.to_string(),
        data: data.to_string(),
        rows: rows.len(),
        options,
        dimensions,
        raters: rater_report,
        critique,
        per_row,
    })
}
