//! Calibration of zero-shot scores onto a jury's scale: a monotone non-decreasing map per rubric
//! dimension, fitted on rated entries and kept in `easel.json`.
//!
//! Zero-shot scores (the expected Q-Align level, 1–100) rank paintings sensibly but sit on the
//! language model's own scale: bunched in the middle, bent at the ends. A jury's scale is
//! another. A calibration moves the scores onto the jury's scale without changing their order;
//! that is why every map here is non-decreasing, and why a fitted line with a negative slope is
//! clamped to a flat one instead of reversing the model.
//!
//! Two maps, chosen by how much data there is ([`Calibration::fit`]):
//! - **isotonic** (pool-adjacent-violators) from [`ISOTONIC_MIN_ENTRIES`] entries up: a step
//!   curve that follows any monotone bend, but needs several entries per step or it fits noise;
//! - **linear** (least squares, slope ≥ 0) below that: two parameters are what a handful of
//!   entries can support.
//!
//! [`cross_validate`] says what a calibration is worth on entries it was not fitted on: the
//! in-sample error of an isotonic fit flatters it.
//!
//! ```json
//! "calibration": {"entries": 120, "note": "...", "maps": {
//!   "overall": {"method": "isotonic", "knots": [[12.5, 3.0], [40.0, 4.5], [71.0, 8.0]]},
//!   "originality": {"method": "linear", "slope": 0.08, "intercept": 1.2},
//!   "color": null, ...}}
//! ```

use easel_rubric::RubricScores;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::stats;

/// From this many entries on, [`Calibration::fit`] fits an isotonic map; below, a line.
pub const ISOTONIC_MIN_ENTRIES: usize = 30;

/// The range every calibrated score is clamped to (the rubric's 1–100).
pub const SCORE_RANGE: [f32; 2] = [1.0, 100.0];

/// What can go wrong fitting or reading a calibration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalibrationError {
    #[error("a calibration needs at least {needed} (raw, target) pairs, got {got}")]
    TooFew { needed: usize, got: usize },
    #[error("{raw} raw scores but {target} target scores")]
    LengthMismatch { raw: usize, target: usize },
    #[error("{which} score {index} is not finite ({value})")]
    NonFinite { which: &'static str, index: usize, value: f32 },
    #[error("cross-validation needs at least 2 folds, got {0}")]
    Folds(usize),
    #[error("invalid calibration: {0}")]
    Invalid(String),
}

/// A monotone non-decreasing map from zero-shot scores (1–100) onto a jury's scale.
///
/// Serialised with its method as a tag: `{"method": "linear", "slope": 0.6, "intercept": 20}`,
/// `{"method": "isotonic", "knots": [[x, y], ...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Calibration {
    /// `slope · raw + intercept`, `slope ≥ 0`.
    Linear { slope: f32, intercept: f32 },
    /// Linear interpolation between knots `(raw, calibrated)`, flat outside them; `raw`
    /// strictly increasing, `calibrated` non-decreasing.
    Isotonic {
        #[cfg_attr(feature = "utoipa", schema(value_type = Vec<Vec<f32>>))]
        knots: Vec<[f32; 2]>,
    },
}

/// A fitted map and, in words, which method was chosen and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub map: Calibration,
    pub method_reason: String,
}

impl Calibration {
    /// Fits the map from `raw` zero-shot scores to `target` scores: isotonic from
    /// [`ISOTONIC_MIN_ENTRIES`] pairs on, linear below.
    pub fn fit(raw: &[f32], target: &[f32]) -> Result<Fitted, CalibrationError> {
        check_pairs(raw, target, 2)?;
        let n = raw.len();
        if n >= ISOTONIC_MIN_ENTRIES {
            let map = Self::fit_isotonic(raw, target)?;
            let steps = map.knots().len();
            let method_reason = format!(
                "isotonic: {n} entries (at least {ISOTONIC_MIN_ENTRIES}) are enough for a monotone step \
                 curve ({steps} knots) to follow how the raw scores bend onto the jury's scale"
            );
            return Ok(Fitted { map, method_reason });
        }
        let map = Self::fit_linear(raw, target)?;
        let mut method_reason = format!(
            "linear: {n} entries (fewer than {ISOTONIC_MIN_ENTRIES}); isotonic regression needs several \
             entries per step or it fits the noise, so a two-parameter line is what this much data supports"
        );
        if matches!(map, Self::Linear { slope, .. } if slope == 0.0) {
            method_reason.push_str(
                "; the fitted slope was not positive (constant raw scores, or scores that run against the \
                 jury's), and a map must not reverse the model's order, so it is flat at the mean target",
            );
        }
        Ok(Fitted { map, method_reason })
    }

    /// Least squares `target ≈ slope · raw + intercept` with the slope clamped at 0: a negative
    /// slope would reverse the model's order. Constant `raw` gives slope 0, intercept = mean.
    pub fn fit_linear(raw: &[f32], target: &[f32]) -> Result<Self, CalibrationError> {
        check_pairs(raw, target, 2)?;
        let n = raw.len() as f64;
        let mx = raw.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let my = target.iter().map(|&y| f64::from(y)).sum::<f64>() / n;
        let (mut sxx, mut sxy) = (0.0, 0.0);
        for (&x, &y) in raw.iter().zip(target) {
            let dx = f64::from(x) - mx;
            sxx += dx * dx;
            sxy += dx * (f64::from(y) - my);
        }
        // With the slope held at 0 the best intercept is the mean; that is also the constrained
        // least-squares optimum whenever the free slope would be negative.
        let slope = if sxx > 0.0 { (sxy / sxx).max(0.0) } else { 0.0 };
        Ok(Self::Linear { slope: slope as f32, intercept: (my - slope * mx) as f32 })
    }

    /// Isotonic regression by pool-adjacent-violators on the pairs sorted by `raw`. Entries
    /// with equal raw scores are pooled first (one raw score, one calibrated value). Each
    /// final block becomes a knot at its lowest and highest raw score.
    pub fn fit_isotonic(raw: &[f32], target: &[f32]) -> Result<Self, CalibrationError> {
        check_pairs(raw, target, 2)?;
        struct Block {
            x_lo: f64,
            x_hi: f64,
            weight: f64,
            sum: f64,
        }
        impl Block {
            fn mean(&self) -> f64 {
                self.sum / self.weight
            }
        }
        let mut order: Vec<usize> = (0..raw.len()).collect();
        order.sort_by(|&a, &b| raw[a].total_cmp(&raw[b]));
        // Ties first, as one weighted point each: pooling a tie's entries one by one could
        // merge its first entry into a lower block before its other entries arrive.
        let mut points: Vec<Block> = Vec::new();
        for i in order {
            let (x, y) = (f64::from(raw[i]), f64::from(target[i]));
            match points.last_mut() {
                Some(last) if last.x_hi == x => {
                    last.weight += 1.0;
                    last.sum += y;
                }
                _ => points.push(Block { x_lo: x, x_hi: x, weight: 1.0, sum: y }),
            }
        }
        let mut blocks: Vec<Block> = Vec::with_capacity(points.len());
        for point in points {
            blocks.push(point);
            while blocks.len() >= 2 && blocks[blocks.len() - 2].mean() > blocks[blocks.len() - 1].mean() {
                let top = blocks.pop().expect("two blocks");
                let below = blocks.last_mut().expect("two blocks");
                below.x_hi = top.x_hi;
                below.weight += top.weight;
                below.sum += top.sum;
            }
        }
        let mut knots = Vec::with_capacity(2 * blocks.len());
        for block in &blocks {
            let y = block.mean() as f32;
            knots.push([block.x_lo as f32, y]);
            if block.x_hi > block.x_lo {
                knots.push([block.x_hi as f32, y]);
            }
        }
        Ok(Self::Isotonic { knots })
    }

    /// `"linear"` or `"isotonic"`, as in the JSON.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Linear { .. } => "linear",
            Self::Isotonic { .. } => "isotonic",
        }
    }

    /// The isotonic knots (empty for a line).
    pub fn knots(&self) -> &[[f32; 2]] {
        match self {
            Self::Linear { .. } => &[],
            Self::Isotonic { knots } => knots,
        }
    }

    /// The calibrated score, clamped to [`SCORE_RANGE`]. NaN stays NaN.
    pub fn apply(&self, raw: f32) -> f32 {
        let value = match self {
            Self::Linear { slope, intercept } => slope * raw + intercept,
            Self::Isotonic { knots } => interpolate(knots, raw),
        };
        value.clamp(SCORE_RANGE[0], SCORE_RANGE[1])
    }

    /// An uncertainty carried through the map: `(apply(raw + sd) − apply(raw − sd)) / 2`.
    ///
    /// A zero-shot score comes with a spread (the standard deviation of the level
    /// distribution). Pushing `raw ± sd` through the map and halving the distance is the
    /// map's local slope times `sd` without assuming the map is smooth: a line scales it by its
    /// slope, a flat stretch of an isotonic map (where the jury's scale does not tell those raw
    /// scores apart) shrinks it towards 0, and the clamp at 1 and 100 cuts it at the ends.
    pub fn spread(&self, raw: f32, sd: f32) -> f32 {
        let sd = sd.abs();
        (self.apply(raw + sd) - self.apply(raw - sd)) / 2.0
    }

    /// Checks a map read from a file: finite numbers, a non-negative slope, knots with
    /// strictly increasing raw scores and non-decreasing calibrated ones.
    pub fn validate(&self) -> Result<(), CalibrationError> {
        match self {
            Self::Linear { slope, intercept } => {
                if !(slope.is_finite() && intercept.is_finite()) {
                    return Err(CalibrationError::Invalid(format!("linear map {slope}·x + {intercept} is not finite")));
                }
                if *slope < 0.0 {
                    return Err(CalibrationError::Invalid(format!("linear slope {slope} is negative: the map would reverse the order")));
                }
            }
            Self::Isotonic { knots } => {
                if knots.is_empty() {
                    return Err(CalibrationError::Invalid("isotonic map has no knots".into()));
                }
                if let Some(k) = knots.iter().find(|k| !(k[0].is_finite() && k[1].is_finite())) {
                    return Err(CalibrationError::Invalid(format!("isotonic knot {k:?} is not finite")));
                }
                if let Some(w) = knots.windows(2).find(|w| !(w[0][0] < w[1][0] && w[0][1] <= w[1][1])) {
                    return Err(CalibrationError::Invalid(format!(
                        "isotonic knots {:?} then {:?}: raw scores must increase and calibrated ones must not decrease",
                        w[0], w[1]
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Linear interpolation between knots, flat outside them.
fn interpolate(knots: &[[f32; 2]], x: f32) -> f32 {
    let (Some(first), Some(last)) = (knots.first(), knots.last()) else {
        return f32::NAN;
    };
    if x.is_nan() {
        return f32::NAN;
    }
    if x <= first[0] {
        return first[1];
    }
    if x >= last[0] {
        return last[1];
    }
    // first[0] < x < last[0]: the knot after x exists and is not the first.
    let j = knots.partition_point(|k| k[0] <= x);
    let ([x0, y0], [x1, y1]) = (knots[j - 1], knots[j]);
    y0 + (y1 - y0) * (x - x0) / (x1 - x0)
}

fn check_pairs(raw: &[f32], target: &[f32], needed: usize) -> Result<(), CalibrationError> {
    if raw.len() != target.len() {
        return Err(CalibrationError::LengthMismatch { raw: raw.len(), target: target.len() });
    }
    if raw.len() < needed {
        return Err(CalibrationError::TooFew { needed, got: raw.len() });
    }
    for (which, values) in [("raw", raw), ("target", target)] {
        if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(CalibrationError::NonFinite { which, index, value });
        }
    }
    Ok(())
}

/// One map per rubric output, as `easel.json`'s `calibration` holds them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationSet {
    /// Rated entries the maps were fitted on.
    pub entries: usize,
    /// Where the maps came from (data, tool, folds), for whoever reads `easel.json`.
    #[serde(default)]
    pub note: String,
    /// `None` for a dimension the raters never scored: it is served uncalibrated.
    pub maps: RubricScores<Option<Calibration>>,
}

impl CalibrationSet {
    /// Each raw score through its dimension's map; uncalibrated dimensions pass unchanged.
    pub fn apply(&self, raw: &RubricScores<f32>) -> RubricScores<f32> {
        self.maps.as_ref().zip(*raw).map(|(map, raw)| map.as_ref().map_or(raw, |m| m.apply(raw)))
    }

    /// Each dimension's uncertainty through its map ([`Calibration::spread`]); uncalibrated
    /// dimensions pass `sd` unchanged.
    pub fn spread(&self, raw: &RubricScores<f32>, sd: &RubricScores<f32>) -> RubricScores<f32> {
        self.maps
            .as_ref()
            .zip(raw.zip(*sd))
            .map(|(map, (raw, sd))| map.as_ref().map_or(sd, |m| m.spread(raw, sd)))
    }

    /// Checks every map ([`Calibration::validate`]), naming the dimension that fails.
    pub fn validate(&self) -> Result<(), CalibrationError> {
        for (name, map) in RubricScores::names().zip(self.maps.as_ref()).into_array() {
            if let Some(map) = map {
                map.validate().map_err(|e| CalibrationError::Invalid(format!("{name}: {e}")))?;
            }
        }
        Ok(())
    }
}

/// What calibration does on entries it was not fitted on ([`cross_validate`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct CvFigures {
    /// Entries and folds (leave-one-out when there were fewer entries than folds asked for).
    pub n: usize,
    pub folds: usize,
    /// The methods the folds' fits chose, e.g. `"isotonic"` or `"linear ×2, isotonic ×3"`.
    pub method: String,
    pub mae_raw: f64,
    pub mae_calibrated: f64,
    pub rmse_raw: f64,
    pub rmse_calibrated: f64,
    /// `None` where a side is constant.
    pub pearson_raw: Option<f64>,
    pub pearson_calibrated: Option<f64>,
}

/// Each entry's calibrated score from a map fitted without its fold, and the methods used.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossValidated {
    /// In the order of the input.
    pub calibrated: Vec<f32>,
    pub folds: usize,
    /// Method of each fold's fit.
    pub methods: Vec<&'static str>,
}

impl CrossValidated {
    /// `"isotonic"` when every fold agrees, else each method with its count.
    pub fn method_summary(&self) -> String {
        let count = |m: &str| self.methods.iter().filter(|&&x| x == m).count();
        let used: Vec<(&str, usize)> =
            ["linear", "isotonic"].into_iter().map(|m| (m, count(m))).filter(|&(_, c)| c > 0).collect();
        match used.as_slice() {
            [(only, _)] => only.to_string(),
            _ => used.iter().map(|(m, c)| format!("{m} ×{c}")).collect::<Vec<_>>().join(", "),
        }
    }
}

/// k-fold cross-validated calibration: the entries are shuffled (deterministically, from
/// `seed`) into `folds` folds (leave-one-out when there are fewer entries than folds); each
/// fold is calibrated by [`Calibration::fit`] on all the others. A fold's fit sees fewer
/// entries than a fit on all of them, so it may choose a line where the full fit would be
/// isotonic: that is the honest estimate of the procedure, slightly pessimistic for the map.
pub fn cross_validated(raw: &[f32], target: &[f32], folds: usize, seed: u64) -> Result<CrossValidated, CalibrationError> {
    if folds < 2 {
        return Err(CalibrationError::Folds(folds));
    }
    // Every training part must keep at least two entries.
    check_pairs(raw, target, 3)?;
    let n = raw.len();
    let k = folds.min(n);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let mut fold_of = vec![0; n];
    for (position, &i) in order.iter().enumerate() {
        fold_of[i] = position % k;
    }
    let mut calibrated = vec![f32::NAN; n];
    let mut methods = Vec::with_capacity(k);
    for fold in 0..k {
        let (train_raw, train_target): (Vec<f32>, Vec<f32>) =
            (0..n).filter(|&i| fold_of[i] != fold).map(|i| (raw[i], target[i])).unzip();
        let fitted = Calibration::fit(&train_raw, &train_target)?;
        methods.push(fitted.map.method());
        for i in (0..n).filter(|&i| fold_of[i] == fold) {
            calibrated[i] = fitted.map.apply(raw[i]);
        }
    }
    Ok(CrossValidated { calibrated, folds: k, methods })
}

/// [`cross_validated`], summarised: error and correlation of the raw scores and of the
/// cross-validated calibrated scores against `target`.
pub fn cross_validate(raw: &[f32], target: &[f32], folds: usize, seed: u64) -> Result<CvFigures, CalibrationError> {
    let cv = cross_validated(raw, target, folds, seed)?;
    Ok(CvFigures {
        n: raw.len(),
        folds: cv.folds,
        method: cv.method_summary(),
        mae_raw: mae(raw, target),
        mae_calibrated: mae(&cv.calibrated, target),
        rmse_raw: rmse(raw, target),
        rmse_calibrated: rmse(&cv.calibrated, target),
        pearson_raw: pearson(raw, target),
        pearson_calibrated: pearson(&cv.calibrated, target),
    })
}

fn widen(values: &[f32]) -> Vec<f64> {
    values.iter().map(|&v| f64::from(v)).collect()
}

fn mae(x: &[f32], y: &[f32]) -> f64 {
    // Both sides are checked finite and non-empty before any figure is computed.
    stats::mae(&widen(x), &widen(y)).unwrap_or(f64::NAN)
}

fn rmse(x: &[f32], y: &[f32]) -> f64 {
    (x.iter().zip(y).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

fn pearson(x: &[f32], y: &[f32]) -> Option<f64> {
    stats::pearson(&widen(x), &widen(y)).ok()
}

/// One output's calibration from paired scores: how many entries had both, the map (none
/// below 2 entries), why that method or why none, and the cross-validated figures (none below
/// 3 entries, where a fold's fit would keep fewer than 2).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct OutputFit {
    /// `overall` or a criterion.
    pub name: &'static str,
    pub n: usize,
    pub map: Option<Calibration>,
    pub reason: String,
    pub cross_validation: Option<CvFigures>,
}

/// Fits each output on its `(raw, target)` pairs, in [`easel_rubric::OUTPUTS`] order: the same
/// procedure for `easel calibrate` (a rated manifest) and the API (a jury round).
pub fn fit_outputs(pairs: &RubricScores<Vec<[f32; 2]>>, folds: usize, seed: u64) -> Result<Vec<OutputFit>, CalibrationError> {
    if folds < 2 {
        return Err(CalibrationError::Folds(folds));
    }
    RubricScores::names()
        .zip(pairs.as_ref())
        .into_array()
        .into_iter()
        .map(|(name, pairs)| {
            let (raw, target): (Vec<f32>, Vec<f32>) = pairs.iter().map(|&[r, t]| (r, t)).unzip();
            if raw.len() < 2 {
                return Ok(OutputFit {
                    name,
                    n: raw.len(),
                    map: None,
                    reason: format!("not calibrated: {} entries have a {name} score, and a map needs 2", raw.len()),
                    cross_validation: None,
                });
            }
            let fitted = Calibration::fit(&raw, &target)?;
            Ok(OutputFit {
                name,
                n: raw.len(),
                map: Some(fitted.map),
                reason: fitted.method_reason,
                cross_validation: cross_validate(&raw, &target, folds, seed).ok(),
            })
        })
        .collect()
}

impl CalibrationSet {
    /// The set `easel.json` keeps for fitted outputs ([`fit_outputs`]); outputs without a map
    /// are served uncalibrated.
    pub fn from_fits(fits: &[OutputFit], entries: usize, note: String) -> Self {
        let map = |name: &str| fits.iter().find(|f| f.name == name).and_then(|f| f.map.clone());
        Self { entries, note, maps: RubricScores::names().map(map) }
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    /// `n` raw scores uniform in 1–100 and targets `curve(raw) + N(0, noise_sd)`.
    fn synthetic(n: usize, seed: u64, noise_sd: f32, curve: impl Fn(f32) -> f32) -> (Vec<f32>, Vec<f32>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let raw: Vec<f32> = (0..n).map(|_| rng.random_range(1.0..100.0)).collect();
        let target = raw
            .iter()
            .map(|&x| {
                // Box–Muller.
                let (u, v): (f32, f32) = (rng.random_range(f32::EPSILON..1.0), rng.random_range(0.0..1.0));
                curve(x) + noise_sd * (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
            })
            .collect();
        (raw, target)
    }

    /// Mean absolute value of N(0, sd): what a perfect map leaves.
    fn noise_mae(sd: f32) -> f64 {
        f64::from(sd) * (2.0 / std::f64::consts::PI).sqrt()
    }

    #[test]
    fn a_line_is_recovered_from_few_entries() {
        let (raw, target) = synthetic(25, 1, 3.0, |x| 20.0 + 0.6 * x);
        let fitted = Calibration::fit(&raw, &target).unwrap();
        assert!(fitted.method_reason.starts_with("linear: 25 entries"), "{}", fitted.method_reason);
        let Calibration::Linear { slope, intercept } = fitted.map else { panic!("{:?}", fitted.map) };
        assert!((slope - 0.6).abs() < 0.08 && (intercept - 20.0).abs() < 4.0, "{slope} {intercept}");

        let cv = cross_validate(&raw, &target, 5, 7).unwrap();
        eprintln!("linear: {cv:?}");
        assert_eq!((cv.n, cv.folds, cv.method.as_str()), (25, 5, "linear"));
        assert!(cv.mae_raw > 5.0, "{cv:?}");
        assert!(cv.mae_calibrated < 1.5 * noise_mae(3.0), "{cv:?}");
        assert!(cv.rmse_calibrated < cv.rmse_raw, "{cv:?}");
    }

    #[test]
    fn isotonic_recovers_a_logistic_and_a_step_curve_held_out() {
        let logistic = |x: f32| 10.0 + 80.0 / (1.0 + (-(x - 50.0) / 8.0).exp());
        let step = |x: f32| if x < 40.0 { 20.0 } else if x < 70.0 { 50.0 } else { 85.0 };
        for (name, curve) in [("logistic", &logistic as &dyn Fn(f32) -> f32), ("step", &step)] {
            let (raw, target) = synthetic(200, 2, 3.0, curve);
            let fitted = Calibration::fit(&raw, &target).unwrap();
            assert_eq!(fitted.map.method(), "isotonic");
            assert!(fitted.method_reason.contains("200 entries"), "{}", fitted.method_reason);
            let cv = cross_validate(&raw, &target, 5, 3).unwrap();
            eprintln!("{name}: {cv:?} (noise MAE {:.2})", noise_mae(3.0));
            assert_eq!(cv.method, "isotonic");
            assert!(cv.mae_calibrated < 1.5 * noise_mae(3.0), "{name}: {cv:?}");
            assert!(cv.mae_raw > 3.0 * cv.mae_calibrated, "{name}: {cv:?}");
            // A line cannot follow either curve as well.
            let line = Calibration::fit_linear(&raw, &target).unwrap();
            let line_mae = mae(&raw.iter().map(|&x| line.apply(x)).collect::<Vec<_>>(), &target);
            assert!(line_mae > cv.mae_calibrated, "{name}: line {line_mae} vs isotonic {}", cv.mae_calibrated);
        }
    }

    /// The weighted isotonic regression by brute force: every split of the distinct raw scores
    /// into runs, each run at its weighted mean; the non-decreasing one with the least error.
    fn brute_force(raw: &[f32], target: &[f32]) -> Vec<(f32, f64)> {
        let mut points: Vec<(f32, f64, f64)> = Vec::new(); // (x, weight, sum)
        let mut order: Vec<usize> = (0..raw.len()).collect();
        order.sort_by(|&a, &b| raw[a].total_cmp(&raw[b]));
        for i in order {
            match points.last_mut() {
                Some(p) if p.0 == raw[i] => {
                    p.1 += 1.0;
                    p.2 += f64::from(target[i]);
                }
                _ => points.push((raw[i], 1.0, f64::from(target[i]))),
            }
        }
        let m = points.len();
        let mut best: Option<(f64, Vec<f64>)> = None;
        for cuts in 0u32..(1 << (m - 1)) {
            let mut values = vec![0.0; m];
            let mut start = 0;
            for end in 1..=m {
                if end == m || cuts & (1 << (end - 1)) != 0 {
                    let (w, s) = points[start..end].iter().fold((0.0, 0.0), |(w, s), p| (w + p.1, s + p.2));
                    values[start..end].fill(s / w);
                    start = end;
                }
            }
            if values.windows(2).any(|w| w[0] > w[1]) {
                continue;
            }
            // Weighted error of the distinct points (the within-tie error is the same for all).
            let error: f64 = points.iter().zip(&values).map(|(p, v)| p.1 * (p.2 / p.1 - v).powi(2)).sum();
            if best.as_ref().is_none_or(|(e, _)| error < *e - 1e-12) {
                best = Some((error, values));
            }
        }
        let values = best.expect("a single run is always monotone").1;
        points.iter().map(|p| p.0).zip(values).collect()
    }

    #[test]
    fn pool_adjacent_violators_matches_brute_force() {
        // A hand example: 3 > 2 pool to 2.5; the tie at 4 pools 1 and 5 to 3.
        let raw = [1.0, 2.0, 3.0, 4.0, 4.0, 5.0];
        let target = [1.0, 3.0, 2.0, 1.0, 5.0, 6.0];
        let map = Calibration::fit_isotonic(&raw, &target).unwrap();
        assert_eq!(map.knots(), [[1.0, 1.0], [2.0, 2.5], [3.0, 2.5], [4.0, 3.0], [5.0, 6.0]]);
        let mut rng = StdRng::seed_from_u64(5);
        for case in 0..300 {
            let n = rng.random_range(2..9);
            // Few distinct raw scores, so ties are common.
            let raw: Vec<f32> = (0..n).map(|_| rng.random_range(0..6) as f32 * 10.0).collect();
            let target: Vec<f32> = (0..n).map(|_| rng.random_range(1..100) as f32).collect();
            let map = Calibration::fit_isotonic(&raw, &target).unwrap();
            map.validate().unwrap();
            assert!(map.knots().windows(2).all(|w| w[0][1] <= w[1][1]), "case {case}: {map:?}");
            for (x, expected) in brute_force(&raw, &target) {
                let got = map.apply(x);
                assert!((f64::from(got) - expected).abs() < 1e-3, "case {case} at {x}: {got} vs {expected}\n{raw:?}\n{target:?}");
            }
        }
    }

    #[test]
    fn equal_raw_scores_share_one_value() {
        let map = Calibration::fit_isotonic(&[50.0, 50.0, 50.0, 60.0], &[10.0, 20.0, 30.0, 70.0]).unwrap();
        assert_eq!(map.knots(), [[50.0, 20.0], [60.0, 70.0]]);
        assert_eq!(map.apply(50.0), 20.0);
        assert_eq!(map.apply(55.0), 45.0);
        // All raw scores equal: one knot, every score maps to the mean.
        let flat = Calibration::fit_isotonic(&[40.0; 4], &[10.0, 20.0, 30.0, 40.0]).unwrap();
        assert_eq!(flat.knots(), [[40.0, 25.0]]);
        assert_eq!((flat.apply(1.0), flat.apply(99.0)), (25.0, 25.0));
        // The same for a line.
        assert_eq!(Calibration::fit_linear(&[40.0; 3], &[10.0, 20.0, 60.0]).unwrap(), Calibration::Linear { slope: 0.0, intercept: 30.0 });
    }

    #[test]
    fn a_line_never_reverses_the_order() {
        let raw = [10.0, 20.0, 30.0, 40.0];
        let fitted = Calibration::fit(&raw, &[80.0, 60.0, 40.0, 20.0]).unwrap();
        assert_eq!(fitted.map, Calibration::Linear { slope: 0.0, intercept: 50.0 });
        assert!(fitted.method_reason.contains("must not reverse"), "{}", fitted.method_reason);
    }

    #[test]
    fn scores_are_clamped_and_flat_outside_the_knots() {
        let line = Calibration::Linear { slope: 2.0, intercept: -50.0 };
        assert_eq!((line.apply(10.0), line.apply(50.0), line.apply(80.0)), (1.0, 50.0, 100.0));
        let steps = Calibration::Isotonic { knots: vec![[20.0, -5.0], [60.0, 150.0]] };
        assert_eq!((steps.apply(1.0), steps.apply(20.0), steps.apply(100.0)), (1.0, 1.0, 100.0));
        let inside = Calibration::Isotonic { knots: vec![[20.0, 10.0], [60.0, 90.0]] };
        assert_eq!((inside.apply(5.0), inside.apply(40.0), inside.apply(95.0)), (10.0, 50.0, 90.0));
        assert!(inside.apply(f32::NAN).is_nan());
    }

    #[test]
    fn spread_is_the_local_slope_times_the_sd() {
        let line = Calibration::Linear { slope: 0.5, intercept: 10.0 };
        assert_eq!(line.spread(50.0, 4.0), 2.0);
        assert_eq!(line.spread(50.0, -4.0), 2.0);
        let steps = Calibration::Isotonic { knots: vec![[20.0, 10.0], [30.0, 10.0], [40.0, 50.0]] };
        assert_eq!(steps.spread(25.0, 2.0), 0.0, "flat stretch");
        assert_eq!(steps.spread(35.0, 2.0), 8.0, "slope 4");
        // Cut by the clamp: 2·49 = 98, 2·51 → 100.
        let steep = Calibration::Linear { slope: 2.0, intercept: 0.0 };
        assert_eq!(steep.spread(50.0, 1.0), 1.0);

        let set = CalibrationSet {
            entries: 10,
            note: String::new(),
            maps: RubricScores::from_array([Some(line.clone()), None, None, None, None, Some(steps)]),
        };
        let raw = RubricScores::from_array([50.0, 50.0, 1.0, 2.0, 3.0, 35.0]);
        let sd = RubricScores::from_array([4.0, 3.0, 3.0, 3.0, 3.0, 2.0]);
        assert_eq!(set.apply(&raw).into_array(), [35.0, 50.0, 1.0, 2.0, 3.0, 30.0]);
        assert_eq!(set.spread(&raw, &sd).into_array(), [2.0, 3.0, 3.0, 3.0, 3.0, 8.0]);
    }

    #[test]
    fn json_shape_round_trips() {
        let isotonic = Calibration::Isotonic { knots: vec![[10.0, 20.0], [60.0, 70.5]] };
        let json = serde_json::to_string(&isotonic).unwrap();
        assert_eq!(json, r#"{"method":"isotonic","knots":[[10.0,20.0],[60.0,70.5]]}"#);
        assert_eq!(serde_json::from_str::<Calibration>(&json).unwrap(), isotonic);
        let line = Calibration::Linear { slope: 0.5, intercept: 10.0 };
        let json = serde_json::to_string(&line).unwrap();
        assert_eq!(json, r#"{"method":"linear","slope":0.5,"intercept":10.0}"#);
        assert_eq!(serde_json::from_str::<Calibration>(&json).unwrap(), line);
        assert!(serde_json::from_str::<Calibration>(r#"{"method":"spline","knots":[]}"#).is_err());

        let set = CalibrationSet {
            entries: 40,
            note: "fitted on jury.jsonl".into(),
            maps: RubricScores::from_array([Some(isotonic), Some(line), None, None, None, None]),
        };
        let value = serde_json::to_value(&set).unwrap();
        assert_eq!(value["maps"]["overall"]["method"], "isotonic");
        assert_eq!(value["maps"]["originality"]["slope"], 0.5);
        assert!(value["maps"]["color"].is_null());
        assert_eq!(serde_json::from_value::<CalibrationSet>(value).unwrap(), set);
        // Dimensions left out of the file are uncalibrated; the note is optional.
        let read: CalibrationSet = serde_json::from_str(
            r#"{"entries": 5, "maps": {"overall": {"method": "linear", "slope": 1, "intercept": 0}}}"#,
        )
        .unwrap();
        assert_eq!(read.maps.overall, Some(Calibration::Linear { slope: 1.0, intercept: 0.0 }));
        assert_eq!((read.maps.rubric.content, read.note.as_str()), (None, ""));
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(Calibration::fit(&[1.0], &[2.0]), Err(CalibrationError::TooFew { needed: 2, got: 1 }));
        assert_eq!(Calibration::fit(&[1.0, 2.0], &[2.0]), Err(CalibrationError::LengthMismatch { raw: 2, target: 1 }));
        assert!(matches!(
            Calibration::fit(&[1.0, f32::NAN], &[2.0, 3.0]),
            Err(CalibrationError::NonFinite { which: "raw", index: 1, .. })
        ));
        assert!(matches!(
            Calibration::fit_isotonic(&[1.0, 2.0], &[f32::INFINITY, 3.0]),
            Err(CalibrationError::NonFinite { which: "target", index: 0, .. })
        ));
        assert_eq!(cross_validate(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0], 1, 0), Err(CalibrationError::Folds(1)));
        assert_eq!(cross_validate(&[1.0, 2.0], &[1.0, 2.0], 5, 0), Err(CalibrationError::TooFew { needed: 3, got: 2 }));
        // Maps read from a file.
        assert!(Calibration::Linear { slope: -1.0, intercept: 0.0 }.validate().is_err());
        assert!(Calibration::Isotonic { knots: vec![] }.validate().is_err());
        assert!(Calibration::Isotonic { knots: vec![[10.0, 5.0], [10.0, 6.0]] }.validate().is_err());
        assert!(Calibration::Isotonic { knots: vec![[10.0, 5.0], [20.0, 4.0]] }.validate().is_err());
        let set = CalibrationSet {
            entries: 2,
            note: String::new(),
            maps: RubricScores::from_array([None, None, Some(Calibration::Linear { slope: f32::NAN, intercept: 0.0 }), None, None, None]),
        };
        assert!(set.validate().unwrap_err().to_string().contains("color"), "{:?}", set.validate());
    }

    #[test]
    fn cross_validation_is_seeded_and_leaves_one_out_on_few_entries() {
        let (raw, target) = synthetic(60, 4, 5.0, |x| 0.1 * x + 1.0);
        assert_eq!(cross_validate(&raw, &target, 5, 9).unwrap(), cross_validate(&raw, &target, 5, 9).unwrap());
        let few = cross_validated(&raw[..4], &target[..4], 10, 0).unwrap();
        assert_eq!((few.folds, few.methods.len(), few.method_summary().as_str()), (4, 4, "linear"));
        assert!(few.calibrated.iter().all(|v| v.is_finite()));
        // 2 folds of 70 entries: 35 per fit, enough for isotonic.
        let (raw, target) = synthetic(70, 4, 5.0, |x| x);
        assert_eq!(cross_validated(&raw, &target, 2, 0).unwrap().method_summary(), "isotonic");
        let mixed = CrossValidated { calibrated: vec![], folds: 3, methods: vec!["linear", "isotonic", "isotonic"] };
        assert_eq!(mixed.method_summary(), "linear ×1, isotonic ×2");
    }
}
