//! Evaluation on a held-out manifest: the model's scores against the truth (overall and each
//! rubric dimension) and how often it orders two paintings as the truth does, against each
//! human rater and raters against each other, critique similarity to the expert critiques with
//! a control that pairs each critique with another painting's, and whether critiques cover the
//! whole rubric. For a zero-shot checkpoint, also its raw scores and what a calibration fitted
//! on other rows (k-fold) would make of them.
//!
//! Why the controls: embedding similarity between a generated and an expert critique rewards
//! house style (the rubric's vocabulary, the usual length and tone) as much as the painting: a
//! critique of the wrong painting scores nearly as well (arXiv 2606.29689). Only the gap between
//! the correct and a deranged pairing says the critiques are about their paintings.

use easel_model::calibration::cross_validated;
use easel_model::{ArtworkInput, Assessor, CRITERIA, OUTPUTS, ScoringMode};
use serde::{Deserialize, Serialize};

use crate::batch::prepare_images;
use crate::data::{Example, ImageSource};
use crate::embed::{SentenceEmbedder, cosine};
use crate::error::Result;
use crate::metrics::{Agreement, Estimate, agreement, bootstrap, derangements, pair_order};

/// The model's output for one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Overall then the rubric, 1–100: what the checkpoint serves.
    pub scores: [f32; 6],
    /// Zero-shot checkpoints: the raw zero-shot scores, before the checkpoint's calibration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<[f32; 6]>,
    pub critique: String,
}

/// The model inputs of `rows`: prepared images and non-empty descriptions, in order.
pub fn artwork_inputs(rows: &[&Example], source: &dyn ImageSource, assessor: &Assessor) -> Result<Vec<ArtworkInput>> {
    let images = prepare_images(rows, source, assessor.processor())?;
    Ok(images
        .into_iter()
        .zip(rows)
        .map(|(image, row)| ArtworkInput {
            image,
            description: Some(row.description.clone()).filter(|d| !d.trim().is_empty()),
        })
        .collect())
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
        for a in assessor.assess(&artwork_inputs(chunk, source, assessor)?)? {
            out.push(Prediction {
                scores: a.scores.to_array(),
                raw: a.zero_shot.map(|z| z.raw.to_array()),
                critique: a.critique,
            });
        }
        on_batch(chunk.len());
    }
    Ok(out)
}

/// What the evaluated checkpoint serves as its scores, so a report says which figures are which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Served {
    pub scoring: ScoringMode,
    /// A zero-shot checkpoint's own calibration (`easel calibrate`): its scores are calibrated.
    pub calibration: Option<ServedCalibration>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServedCalibration {
    /// Rated entries it was fitted on.
    pub entries: usize,
    pub note: String,
}

impl Served {
    pub fn of(assessor: &Assessor) -> Self {
        let calibration = match assessor.scoring() {
            ScoringMode::Head => None,
            ScoringMode::ZeroShot => assessor
                .manifest()
                .calibration
                .as_ref()
                .map(|c| ServedCalibration { entries: c.entries, note: c.note.clone() }),
        };
        Self { scoring: assessor.scoring(), calibration }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EvalOptions {
    /// Bootstrap resamples for the 95% intervals.
    pub resamples: usize,
    pub seed: u64,
    /// Score bands for the quadratic weighted kappa.
    pub bands: usize,
    /// Pairwise ordering counts pairs whose true scores differ by at least this much.
    pub ordering_gap: f32,
    /// Derangements the critique control averages over.
    pub derangements: usize,
    /// Folds of the cross-validated calibration of zero-shot scores.
    pub folds: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            resamples: 1000,
            seed: 0,
            bands: crate::split::DEFAULT_BANDS,
            ordering_gap: DEFAULT_ORDERING_GAP,
            derangements: DEFAULT_DERANGEMENTS,
            folds: DEFAULT_FOLDS,
        }
    }
}

/// Ten points on the 1–100 scale: raters of the same painting often differ by that much, so
/// closer pairs have no agreed order to get right.
pub const DEFAULT_ORDERING_GAP: f32 = 10.0;
pub const DEFAULT_DERANGEMENTS: usize = 10;
pub const DEFAULT_FOLDS: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DimensionReport {
    pub name: String,
    /// The served scores against the truth.
    pub agreement: Agreement,
    /// Pairwise ordering of the served scores; `None` when no pair is far enough apart.
    pub ordering: Option<OrderingReport>,
    /// Zero-shot: the raw scores against the truth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<Agreement>,
    /// Zero-shot: the raw scores calibrated on the other folds of these rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibrated_cv: Option<CrossValidatedReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderingReport {
    /// Pairs whose true scores differ by at least `min_gap`.
    pub pairs: usize,
    pub min_gap: f32,
    /// Share ordered as the truth orders them (predicted ties count half), with its interval.
    pub accuracy: Estimate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossValidatedReport {
    pub folds: usize,
    /// The methods the folds' fits chose (`"linear"`, `"isotonic"`, or both with counts).
    pub method: String,
    /// The cross-validated scores against the truth. The intervals resample these scores,
    /// not the fits.
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
    /// Mean cosine similarity of the sentence embeddings, each generated critique against its
    /// own painting's expert critique, with its 95% interval.
    pub similarity: Option<Estimate>,
    /// The control: each generated critique against another painting's expert critique (a
    /// seeded derangement: no critique keeps its own), averaged over `derangements` of them.
    pub deranged_similarity: Option<Estimate>,
    /// `similarity − deranged_similarity`: how much of the similarity is about the painting
    /// rather than the house style. The interval resamples rows, pairing each row's two values.
    pub gap: Option<Estimate>,
    pub derangements: usize,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<[f32; 6]>,
    pub critique_similarity: Option<f32>,
    /// The row's mean similarity to the expert critiques the derangements gave it.
    pub deranged_similarity: Option<f32>,
    pub mentions_all_dimensions: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub model_version: String,
    pub served: Served,
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

fn mean32(x: &[f32]) -> f64 {
    x.iter().map(|&v| f64::from(v)).sum::<f64>() / x.len() as f64
}

/// Per row, a generated critique's similarity to its own painting's expert critique and to
/// the expert critiques of other paintings.
#[derive(Debug, Clone, PartialEq)]
pub struct CritiqueControls {
    pub correct: Vec<f32>,
    /// Mean over the derangements; `None` with fewer than two rows or no derangements.
    pub deranged: Option<Vec<f32>>,
}

/// The critique controls on sentence embeddings: `generated[i]` against `reference[i]`, and
/// against `reference[π(i)]` for `derangements` seeded derangements π.
pub fn critique_controls(generated: &[Vec<f32>], reference: &[Vec<f32>], derangements_wanted: usize, seed: u64) -> CritiqueControls {
    assert_eq!(generated.len(), reference.len(), "one reference per generated critique");
    let correct = generated.iter().zip(reference).map(|(g, r)| cosine(g, r)).collect();
    let perms = derangements(generated.len(), derangements_wanted, seed);
    let deranged = (!perms.is_empty()).then(|| {
        (0..generated.len())
            .map(|i| perms.iter().map(|p| cosine(&generated[i], &reference[p[i]])).sum::<f32>() / perms.len() as f32)
            .collect()
    });
    CritiqueControls { correct, deranged }
}

fn ordering(predicted: &[f32], truth: &[f32], min_gap: f32, resamples: usize, seed: u64) -> Option<OrderingReport> {
    let pairs = pair_order(predicted, truth, min_gap)?.pairs;
    // A resample repeats rows; a row paired with itself differs by 0 and never counts.
    let accuracy = bootstrap(predicted, truth, resamples, seed, |p, t| {
        pair_order(p, t, min_gap).map_or(f64::NAN, |o| o.accuracy)
    });
    Some(OrderingReport { pairs, min_gap, accuracy })
}

/// The served scores (and, for zero-shot predictions, the raw and cross-validated calibrated
/// ones) against the truth, for overall and each dimension that has truth.
fn dimension_reports(rows: &[&Example], predictions: &[Prediction], options: EvalOptions) -> Vec<DimensionReport> {
    let EvalOptions { resamples, seed, bands, ordering_gap, folds, .. } = options;
    let has_raw = !predictions.is_empty() && predictions.iter().all(|p| p.raw.is_some());
    let mut dimensions = Vec::new();
    for (d, name) in OUTPUTS.iter().enumerate() {
        let with_truth: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].targets()[d].is_some()).collect();
        if with_truth.is_empty() {
            continue;
        }
        let t: Vec<f32> = with_truth.iter().filter_map(|&i| rows[i].targets()[d]).collect();
        let p: Vec<f32> = with_truth.iter().map(|&i| predictions[i].scores[d]).collect();
        let salt = seed.wrapping_add(d as u64 * 100);
        let raw: Option<Vec<f32>> =
            has_raw.then(|| with_truth.iter().filter_map(|&i| predictions[i].raw.map(|r| r[d])).collect());
        dimensions.push(DimensionReport {
            name: name.to_string(),
            agreement: agreement(&p, &t, resamples, salt, bands),
            ordering: ordering(&p, &t, ordering_gap, resamples, salt.wrapping_add(50)),
            raw: raw.as_ref().map(|raw| agreement(raw, &t, resamples, salt.wrapping_add(60), bands)),
            // Fewer than three rows leave a fold's fit without two entries: no figure.
            calibrated_cv: raw.as_ref().and_then(|raw| cross_validated(raw, &t, folds, salt).ok()).map(|cv| {
                CrossValidatedReport {
                    folds: cv.folds,
                    method: cv.method_summary(),
                    agreement: agreement(&cv.calibrated, &t, resamples, salt.wrapping_add(70), bands),
                }
            }),
        });
    }
    dimensions
}

/// The critique report, and each row's similarity to its own painting's expert critique and
/// to other paintings' (`None` where the row has no pair).
struct CritiqueFigures {
    report: CritiqueReport,
    own: Vec<Option<f32>>,
    deranged: Vec<Option<f32>>,
}

/// Critique similarity with its deranged control, and rubric coverage.
fn critique_figures(
    rows: &[&Example],
    predictions: &[Prediction],
    embedder: Option<(&SentenceEmbedder, &str)>,
    options: EvalOptions,
) -> Result<CritiqueFigures> {
    let EvalOptions { resamples, seed, derangements: derangements_wanted, .. } = options;
    // Rows with an expert critique and a non-empty generated one.
    let paired: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].critique.is_some() && !predictions[i].critique.trim().is_empty())
        .collect();
    let mut similarities: Vec<Option<f32>> = vec![None; rows.len()];
    let mut deranged_similarities: Vec<Option<f32>> = vec![None; rows.len()];
    let (mut similarity, mut deranged_similarity, mut gap) = (None, None, None);
    if let (Some((embedder, _)), false) = (embedder, paired.is_empty()) {
        let generated: Vec<&str> = paired.iter().map(|&i| predictions[i].critique.as_str()).collect();
        let reference: Vec<&str> = paired.iter().map(|&i| rows[i].critique.as_deref().unwrap_or_default()).collect();
        let controls = critique_controls(
            &embedder.embed(&generated)?,
            &embedder.embed(&reference)?,
            derangements_wanted,
            seed.wrapping_add(31_000),
        );
        for (k, &i) in paired.iter().enumerate() {
            similarities[i] = Some(controls.correct[k]);
            deranged_similarities[i] = controls.deranged.as_ref().map(|d| d[k]);
        }
        let correct = &controls.correct;
        similarity = Some(bootstrap(correct, correct, resamples, seed.wrapping_add(30_000), |x, _| mean32(x)));
        if let Some(deranged) = &controls.deranged {
            deranged_similarity =
                Some(bootstrap(deranged, deranged, resamples, seed.wrapping_add(32_000), |x, _| mean32(x)));
            // Each row keeps its two values together, so the interval is of the paired difference.
            gap = Some(bootstrap(correct, deranged, resamples, seed.wrapping_add(33_000), |c, d| mean32(c) - mean32(d)));
        }
    }
    let generated: Vec<&str> =
        predictions.iter().map(|p| p.critique.as_str()).filter(|c| !c.trim().is_empty()).collect();
    let references: Vec<&str> = rows.iter().filter_map(|r| r.critique.as_deref()).collect();
    let report = CritiqueReport {
        pairs: paired.len(),
        similarity,
        deranged_similarity,
        gap,
        derangements: derangements_wanted,
        embedder: embedder.map(|(_, name)| name.to_string()),
        generated_coverage: coverage(&generated),
        reference_coverage: (!references.is_empty()).then(|| coverage(&references)),
    };
    Ok(CritiqueFigures { report, own: similarities, deranged: deranged_similarities })
}

/// Compares `predictions` (in the order of `rows`) with the manifest's truth.
pub fn evaluate(
    model_version: &str,
    served: Served,
    data: &str,
    rows: &[&Example],
    predictions: &[Prediction],
    embedder: Option<(&SentenceEmbedder, &str)>,
    options: EvalOptions,
) -> Result<EvalReport> {
    assert_eq!(rows.len(), predictions.len(), "one prediction per row");
    let EvalOptions { resamples, seed, bands, .. } = options;
    let dimensions = dimension_reports(rows, predictions, options);

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

    let CritiqueFigures { report: critique, own, deranged } = critique_figures(rows, predictions, embedder, options)?;

    let per_row = rows
        .iter()
        .zip(predictions)
        .zip(own.iter().zip(&deranged))
        .map(|((r, p), (s, ds))| RowResult {
            line: r.line,
            id: r.id.clone(),
            truth: r.targets(),
            predicted: p.scores,
            raw: p.raw,
            critique_similarity: *s,
            deranged_similarity: *ds,
            mentions_all_dimensions: mentions(&p.critique).iter().all(|&b| b),
        })
        .collect();
    Ok(EvalReport {
        model_version: model_version.to_string(),
        served,
        data: data.to_string(),
        rows: rows.len(),
        options,
        dimensions,
        raters: rater_report,
        critique,
        per_row,
    })
}
