//! Charts drawn on the server as SVG (plotters), so they show without JavaScript and print.
//! Colours from the Okabe–Ito palette; every chart is labelled for screen readers
//! (`role="img"`, `aria-label`), and its numbers are also on the page as text.

use easel_core::db::results::HISTOGRAM_BINS;
use easel_rubric::RubricScores;
use plotters::prelude::*;

const BLUE: RGBColor = RGBColor(0, 114, 178);
const ORANGE: RGBColor = RGBColor(230, 159, 0);
const VERMILION: RGBColor = RGBColor(213, 94, 0);
const GREY: RGBColor = RGBColor(85, 86, 92);

type Drawn = Result<(), Box<dyn std::error::Error>>;

/// Draws with `draw` into an SVG string of `size`, labelled `label`; an empty string if
/// plotters fails (the page still has the numbers).
fn svg(size: (u32, u32), label: &str, draw: impl FnOnce(DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Drawn) -> String {
    let mut out = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        draw(root)
    };
    if let Err(e) = drawn {
        tracing::warn!(error = %e, "cannot draw a chart");
        return String::new();
    }
    let label = maud::html! { (label) }.into_string().replace('"', "&quot;");
    out.replacen("<svg ", &format!("<svg role=\"img\" aria-label=\"{label}\" "), 1)
}

/// The six scores of an entry as horizontal bars on 1–100.
pub fn rubric_bars(scores: &RubricScores<f32>) -> String {
    let label = scores.iter().map(|(n, v)| format!("{n} {v:.1}")).collect::<Vec<_>>().join(", ");
    // Drawn bottom up: reversed, so that `overall` is the top bar.
    let rows: Vec<(&'static str, f32)> = scores.iter().collect::<Vec<_>>().into_iter().rev().collect();
    svg((520, 300), &format!("Rubric scores: {label}"), |root| {
        root.fill(&WHITE)?;
        let names: Vec<String> = rows.iter().map(|(n, _)| n.to_string()).collect();
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(96)
            .build_cartesian_2d(0f32..100f32, (0..rows.len()).into_segmented())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(rows.len())
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_desc("score (1–100)")
            .draw()?;
        chart.draw_series(rows.iter().enumerate().map(|(i, (name, value))| {
            let colour = if *name == easel_rubric::OVERALL { VERMILION } else { BLUE };
            let mut bar = Rectangle::new([(0f32, SegmentValue::Exact(i)), (*value, SegmentValue::Exact(i + 1))], colour.filled());
            bar.set_margin(6, 6, 0, 0);
            bar
        }))?;
        root.present()?;
        Ok(())
    })
}

/// A histogram of one rubric output over a competition: counts in the bins 1–10, …, 90–100.
pub fn histogram(name: &str, counts: &[i64; HISTOGRAM_BINS]) -> String {
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    let label = format!(
        "Histogram of {name}: {}",
        counts.iter().enumerate().map(|(i, c)| format!("{}–{}: {c}", i * 10, i * 10 + 10)).collect::<Vec<_>>().join(", ")
    );
    svg((420, 260), &label, |root| {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(name, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(44)
            .build_cartesian_2d(0u32..100u32, 0i64..(max + max / 10 + 1))?;
        chart.configure_mesh().disable_x_mesh().x_desc("score").y_desc("entries").draw()?;
        chart.draw_series(counts.iter().enumerate().map(|(i, &c)| {
            let x = i as u32 * 10;
            let mut bar = Rectangle::new([(x, 0), (x + 10, c)], BLUE.filled());
            bar.set_margin(0, 0, 1, 1);
            bar
        }))?;
        root.present()?;
        Ok(())
    })
}

/// One point of the model-vs-panel scatter.
pub struct Point {
    pub model: f64,
    pub panel: f64,
    /// A listed disagreement: drawn as an orange square rather than a blue circle.
    pub disagreement: bool,
}

/// The model's score (1–100) against the panel's (on the round's scale).
pub fn scatter(points: &[Point], panel_range: (f64, f64)) -> String {
    let label = format!(
        "Model score against panel score for {} entries; {} disagreements marked as squares",
        points.len(),
        points.iter().filter(|p| p.disagreement).count()
    );
    svg((560, 440), &label, |root| {
        root.fill(&WHITE)?;
        let (low, high) = panel_range;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(52)
            .build_cartesian_2d(0f64..100f64, low..high)?;
        chart.configure_mesh().x_desc("model score (1–100)").y_desc("panel score").light_line_style(GREY.mix(0.15)).draw()?;
        chart.draw_series(points.iter().filter(|p| !p.disagreement).map(|p| Circle::new((p.model, p.panel), 4, BLUE.mix(0.8).filled())))?;
        chart.draw_series(points.iter().filter(|p| p.disagreement).map(|p| {
            let d = 0.9;
            let dy = (high - low) / 100.0 * d;
            Rectangle::new([(p.model - d, p.panel - dy), (p.model + d, p.panel + dy)], ORANGE.filled())
        }))?;
        root.present()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_labelled_svg() {
        let bars = rubric_bars(&RubricScores::from_array([71.0, 60.0, 55.5, 80.0, 42.0, 90.0]));
        assert!(bars.starts_with("<svg role=\"img\" aria-label=\"Rubric scores: overall 71.0"), "{}", &bars[..200.min(bars.len())]);
        assert!(bars.contains("<rect"));
        assert!(!bars.contains("style="), "the CSP allows no inline style");
        let hist = histogram("color", &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert!(hist.contains("aria-label=\"Histogram of color: 0–10: 0"));
        let points = [Point { model: 50.0, panel: 6.0, disagreement: false }, Point { model: 90.0, panel: 2.0, disagreement: true }];
        let scatter = scatter(&points, (1.0, 10.0));
        assert!(scatter.contains("<circle") && scatter.contains("<rect"));
        assert!(!scatter.contains("style="));
    }

    #[test]
    fn a_hostile_label_cannot_leave_its_attribute() {
        let hist = histogram("\"><script>alert(1)</script>", &[0; 10]);
        assert!(!hist.contains("<script>"), "{hist}");
    }
}
