//! The evaluation report: `report.json` (everything), `report.md` (tables for a paper or a
//! jury), and SVG plots: predicted vs true overall score, residuals, and per-dimension bars.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::error::{Result, TrainError};
use crate::eval::{EvalReport, OrderingReport};
use crate::metrics::{Agreement, Estimate};

pub const SCATTER_SVG: &str = "scatter_overall.svg";
pub const RESIDUALS_SVG: &str = "residuals_overall.svg";
pub const DIMENSIONS_SVG: &str = "dimensions.svg";

fn plot_err(e: impl std::fmt::Display) -> TrainError {
    TrainError::Report(e.to_string())
}

/// Writes `report.json`, `report.md` and the plots into `dir`.
pub fn write_report(report: &EvalReport, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let json = serde_json::to_string_pretty(report).expect("serialises");
    std::fs::write(dir.join("report.json"), json + "\n").map_err(|e| TrainError::io(dir.join("report.json"), e))?;
    let pairs: Vec<(f32, f32)> = report.per_row.iter().filter_map(|r| Some((r.truth[0]?, r.predicted[0]))).collect();
    scatter(&pairs, &dir.join(SCATTER_SVG))?;
    residuals(&pairs, &dir.join(RESIDUALS_SVG))?;
    dimension_bars(report, &dir.join(DIMENSIONS_SVG))?;
    std::fs::write(dir.join("report.md"), markdown(report)).map_err(|e| TrainError::io(dir.join("report.md"), e))
}

fn fmt_est(e: &Estimate, digits: usize) -> String {
    if e.value.is_nan() {
        return "n/a".into();
    }
    if e.ci_low.is_nan() {
        return format!("{:.*}", digits, e.value);
    }
    format!("{:.*} [{:.*}, {:.*}]", digits, e.value, digits, e.ci_low, digits, e.ci_high)
}

fn fmt_opt(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite()).map(|x| format!("{x:.3}")).unwrap_or_else(|| "n/a".into())
}

/// `n | Pearson r | Spearman ρ | MAE | RMSE | QWK |` of a table row.
fn agreement_cells(a: &Agreement) -> String {
    format!(
        "{} | {} | {} | {} | {} | {} |",
        a.n,
        fmt_est(&a.pearson, 3),
        fmt_est(&a.spearman, 3),
        fmt_est(&a.mae, 2),
        fmt_est(&a.rmse, 2),
        fmt_est(&a.qwk, 3)
    )
}

fn fmt_ordering(o: Option<&OrderingReport>) -> String {
    o.map(|o| format!("{} ({} pairs)", fmt_est(&o.accuracy, 3), o.pairs)).unwrap_or_else(|| "n/a".into())
}

pub fn markdown(r: &EvalReport) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Evaluation of `{}`\n", r.model_version);
    let _ = writeln!(
        md,
        "Data: `{}`, {} rows. Intervals: 95% percentile bootstrap ({} resamples, seed {}). \
         Kappa: quadratic weights over {} equal score bands. Ordering: the share of pairs whose \
         true scores differ by at least {} that the model orders the same way (ties count half). \
         See docs/TRAINING.md, \"Reading the report\".\n",
        r.data, r.rows, r.options.resamples, r.options.seed, r.options.bands, r.options.ordering_gap
    );
    let served = match (&r.served.scoring, &r.served.calibration) {
        (easel_model::ScoringMode::Head, _) => "the regression head's".to_string(),
        (_, None) => "raw zero-shot (the checkpoint has no calibration)".to_string(),
        (_, Some(c)) => format!("zero-shot, calibrated by the checkpoint on {} entries (\"{}\")", c.entries, c.note),
    };
    let _ = writeln!(md, "## Scores\n\nThe scores are {served}.\n");
    let _ = writeln!(md, "| dimension | n | Pearson r | Spearman ρ | MAE | RMSE | QWK | ordering |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    for d in &r.dimensions {
        let _ = writeln!(md, "| {} | {} {} |", d.name, agreement_cells(&d.agreement), fmt_ordering(d.ordering.as_ref()));
    }
    if r.dimensions.iter().any(|d| d.raw.is_some()) {
        let _ = writeln!(md, "\n## Zero-shot: raw, as served, calibrated\n");
        let _ = writeln!(
            md,
            "*raw*: the zero-shot scores before any calibration. *as served*: what the checkpoint \
             reports (the table above). *calibrated (CV)*: each row's raw score through a calibration \
             fitted on the other folds' rows, never its own."
        );
        if r.served.calibration.is_some() {
            let _ = writeln!(
                md,
                "If the checkpoint was calibrated on these rows, *as served* is in-sample and flatters it; \
                 *calibrated (CV)* is the fair figure."
            );
        }
        let _ = writeln!(md, "\n| dimension | scores | n | Pearson r | Spearman ρ | MAE | RMSE | QWK |");
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
        for d in &r.dimensions {
            if let Some(raw) = &d.raw {
                let _ = writeln!(md, "| {} | raw | {}", d.name, agreement_cells(raw));
            }
            let _ = writeln!(md, "| {} | as served | {}", d.name, agreement_cells(&d.agreement));
            if let Some(cv) = &d.calibrated_cv {
                let _ = writeln!(md, "| {} | calibrated (CV, {} folds, {}) | {}", d.name, cv.folds, cv.method, agreement_cells(&cv.agreement));
            }
        }
    }
    let _ = writeln!(md, "\n![predicted vs true]({SCATTER_SVG})\n\n![residuals]({RESIDUALS_SVG})\n\n![per dimension]({DIMENSIONS_SVG})\n");
    if !r.raters.model_vs_rater.is_empty() {
        let _ = writeln!(md, "## Agreement with human raters (overall score)\n");
        let _ = writeln!(md, "| pair | n | Pearson r | MAE | QWK |");
        let _ = writeln!(md, "|---|---|---|---|---|");
        for p in r.raters.model_vs_rater.iter().chain(&r.raters.rater_vs_rater) {
            let a = &p.agreement;
            let _ = writeln!(md, "| {} vs {} | {} | {} | {} | {} |", p.a, p.b, a.n, fmt_est(&a.pearson, 3), fmt_est(&a.mae, 2), fmt_est(&a.qwk, 3));
        }
        let _ = writeln!(
            md,
            "\nMean Pearson r, model vs raters: {}; raters vs raters: {}.\n",
            fmt_opt(r.raters.mean_model_rater_pearson),
            fmt_opt(r.raters.mean_inter_rater_pearson)
        );
    }
    let c = &r.critique;
    let _ = writeln!(md, "## Critiques\n");
    match (&c.similarity, &c.embedder) {
        (Some(s), Some(name)) => {
            let _ = writeln!(md, "Cosine similarity to the expert critiques ({name}, {} pairs):\n", c.pairs);
            let _ = writeln!(md, "| pairing | mean cosine |");
            let _ = writeln!(md, "|---|---|");
            let _ = writeln!(md, "| each critique with its own painting's expert critique | {} |", fmt_est(s, 3));
            if let (Some(deranged), Some(gap)) = (&c.deranged_similarity, &c.gap) {
                let _ = writeln!(
                    md,
                    "| with another painting's (mean of {} derangements) | {} |\n| **gap** (own − another's) | **{}** |",
                    c.derangements,
                    fmt_est(deranged, 3),
                    fmt_est(gap, 3)
                );
            }
            let _ = writeln!(
                md,
                "\nSimilarity alone rewards house style: a critique of the wrong painting scores nearly as \
                 well. The gap is the part that is about the painting; an interval that reaches 0 means the \
                 critiques are not shown to be about their paintings.\n"
            );
        }
        _ => {
            let _ = writeln!(md, "Critique similarity: not computed ({} pairs; needs expert critiques, generated critiques and the sentence-embedding model).\n", c.pairs);
        }
    }
    let _ = writeln!(md, "| rubric dimension | generated critiques mentioning it | expert critiques |");
    let _ = writeln!(md, "|---|---|---|");
    for (i, (name, share)) in c.generated_coverage.per_dimension.iter().enumerate() {
        let reference = c.reference_coverage.as_ref().map(|rc| rc.per_dimension[i].1);
        let _ = writeln!(md, "| {name} | {} | {} |", fmt_opt(Some(*share)), fmt_opt(reference));
    }
    let _ = writeln!(
        md,
        "| all five | {} | {} |",
        fmt_opt(Some(c.generated_coverage.all_five)),
        fmt_opt(c.reference_coverage.as_ref().map(|rc| rc.all_five))
    );
    md
}

fn scatter(pairs: &[(f32, f32)], path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, (640, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Overall score: predicted vs true", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(48)
        .build_cartesian_2d(0f32..100f32, 0f32..100f32)
        .map_err(plot_err)?;
    chart.configure_mesh().x_desc("true").y_desc("predicted").draw().map_err(plot_err)?;
    chart.draw_series(LineSeries::new([(0f32, 0f32), (100.0, 100.0)], BLACK.mix(0.4))).map_err(plot_err)?;
    chart
        .draw_series(pairs.iter().map(|&(t, p)| Circle::new((t, p), 3, BLUE.mix(0.7).filled())))
        .map_err(plot_err)?;
    root.present().map_err(plot_err)
}

fn residuals(pairs: &[(f32, f32)], path: &Path) -> Result<()> {
    let span = pairs.iter().map(|(t, p)| (p - t).abs()).fold(10f32, f32::max).ceil();
    let root = SVGBackend::new(path, (640, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Residuals (predicted − true) by true overall score", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(48)
        .build_cartesian_2d(0f32..100f32, -span..span)
        .map_err(plot_err)?;
    chart.configure_mesh().x_desc("true").y_desc("residual").draw().map_err(plot_err)?;
    chart.draw_series(LineSeries::new([(0f32, 0f32), (100.0, 0.0)], BLACK.mix(0.4))).map_err(plot_err)?;
    chart
        .draw_series(pairs.iter().map(|&(t, p)| Circle::new((t, p - t), 3, RED.mix(0.7).filled())))
        .map_err(plot_err)?;
    root.present().map_err(plot_err)
}

/// Pearson r per dimension with its interval as a whisker.
fn dimension_bars(report: &EvalReport, path: &Path) -> Result<()> {
    let dims = &report.dimensions;
    let root = SVGBackend::new(path, (640, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let n = dims.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption("Pearson r per dimension (95% CI)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(48)
        .build_cartesian_2d((0..n - 1).into_segmented(), -1f32..1f32)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => dims.get(*i).map(|d| d.name.clone()).unwrap_or_default(),
            _ => String::new(),
        })
        .y_desc("Pearson r")
        .draw()
        .map_err(plot_err)?;
    let finite = |v: f64| if v.is_finite() { v as f32 } else { 0.0 };
    chart
        .draw_series(dims.iter().enumerate().map(|(i, d)| {
            let r = finite(d.agreement.pearson.value);
            let mut bar = Rectangle::new([(SegmentValue::Exact(i), 0.0), (SegmentValue::Exact(i + 1), r)], BLUE.mix(0.6).filled());
            bar.set_margin(0, 0, 12, 12);
            bar
        }))
        .map_err(plot_err)?;
    chart
        .draw_series(dims.iter().enumerate().filter(|(_, d)| d.agreement.pearson.ci_low.is_finite()).map(|(i, d)| {
            let p = &d.agreement.pearson;
            PathElement::new(
                vec![(SegmentValue::CenterOf(i), finite(p.ci_low)), (SegmentValue::CenterOf(i), finite(p.ci_high))],
                BLACK.stroke_width(2),
            )
        }))
        .map_err(plot_err)?;
    root.present().map_err(plot_err)
}
