//! The evaluation's honest figures: the critique control (each generated critique against
//! another painting's expert critique) and its gap, pairwise ordering accuracy, and the raw
//! and cross-validated calibrated figures of zero-shot scores. The MiniLM tests need
//! `.cache/minilm` (scripts/fetch-minilm.sh).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use easel_model::{Assessor, GenerationConfig, LoadOptions, Rubric, ScoringMode};
use easel_train::data::{Dataset, Example, ImageRef, LocalFiles};
use easel_train::split::SplitSpec;
use easel_train::trainable::LoraSpec;
use easel_train::trainer::Silent;
use easel_train::embed::{MODEL_FILES, SentenceEmbedder};
use easel_train::eval::{EvalOptions, EvalReport, Prediction, Served, critique_controls, evaluate, predict};
use easel_train::metrics::derangements;
use easel_train::report::markdown;

fn row(i: usize, overall: f32, color: Option<f32>, critique: Option<&str>) -> Example {
    Example {
        line: i + 1,
        id: format!("p{i}"),
        image: ImageRef::Local(format!("p{i}.png").into()),
        description: String::new(),
        overall,
        rubric: Rubric { color, ..Rubric::from_array([None; 5]) },
        raters: BTreeMap::new(),
        critique: critique.map(str::to_string),
    }
}

fn zero_shot(calibration: bool) -> Served {
    Served {
        scoring: ScoringMode::ZeroShot,
        calibration: calibration.then(|| easel_train::eval::ServedCalibration { entries: 50, note: "jury.jsonl".into() }),
    }
}

fn options() -> EvalOptions {
    EvalOptions { resamples: 200, ..EvalOptions::default() }
}

fn run(rows: &[Example], predictions: &[Prediction], embedder: Option<&SentenceEmbedder>) -> EvalReport {
    let rows: Vec<&Example> = rows.iter().collect();
    evaluate("test", zero_shot(false), "test.jsonl", &rows, predictions, embedder.map(|e| (e, "all-MiniLM-L6-v2")), options())
        .unwrap()
}

#[test]
fn derangements_move_every_index_and_repeat_with_the_seed() {
    for n in 2..40 {
        let all = derangements(n, 10, n as u64);
        assert_eq!(all.len(), 10);
        for d in &all {
            let mut sorted = d.clone();
            sorted.sort();
            assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "a permutation");
            assert!(d.iter().enumerate().all(|(i, &j)| i != j), "a fixed point in {d:?}");
        }
        assert_eq!(all, derangements(n, 10, n as u64), "the same seed, the same derangements");
    }
    assert_ne!(derangements(20, 1, 1), derangements(20, 1, 2));
    assert!(derangements(1, 10, 0).is_empty() && derangements(0, 10, 0).is_empty(), "none exists");
}

#[test]
fn controls_on_embedding_vectors() {
    let one_hot = |i: usize| -> Vec<f32> { (0..6).map(|k| if k == i { 1.0 } else { 0.0 }).collect() };
    let reference: Vec<Vec<f32>> = (0..6).map(one_hot).collect();
    // Each critique is its own reference and orthogonal to the others: 1 against 0.
    let own = critique_controls(&reference, &reference, 10, 0);
    assert_eq!(own.correct, vec![1.0; 6]);
    assert_eq!(own.deranged, Some(vec![0.0; 6]));
    // One critique for every painting: the deranged pairing meets the same references, so the
    // means agree exactly.
    let same: Vec<Vec<f32>> = vec![vec![0.3, 0.1, 0.5, 0.2, 0.9, 0.4]; 6];
    let controls = critique_controls(&same, &reference, 10, 0);
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    assert!((mean(&controls.correct) - mean(controls.deranged.as_ref().unwrap())).abs() < 1e-6);
    // A single row has no other painting to pair with.
    assert_eq!(critique_controls(&same[..1], &reference[..1], 10, 0).deranged, None);
}

fn minilm() -> SentenceEmbedder {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/minilm");
    let missing: Vec<&str> = MODEL_FILES.iter().copied().filter(|f| !dir.join(f).is_file()).collect();
    assert!(missing.is_empty(), "all-MiniLM-L6-v2 is not in {} (missing {missing:?}): run scripts/fetch-minilm.sh", dir.display());
    SentenceEmbedder::load(&dir, &Device::Cpu).unwrap()
}

/// Expert critiques of eight different paintings, and a paraphrase of each.
const REFERENCES: [(&str, &str); 8] = [
    (
        "A stormy seascape in deep blues; heavy impasto waves feel violent and the horizon tilts.",
        "Rough sea under a storm: dark blue waves in thick paint, a slanted horizon, a violent mood.",
    ),
    (
        "A quiet still life of lemons on a white cloth, soft yellow light and thin glazes.",
        "Lemons resting on white linen, gently lit in pale yellow, painted in delicate transparent layers.",
    ),
    (
        "A crowded market street at night in neon reds and greens, loose brushwork, many figures.",
        "Night market full of people, glowing red and green signs, quick loose strokes.",
    ),
    (
        "A portrait of an old man in charcoal greys; the wrinkles are drawn with careful hatching.",
        "Grey charcoal portrait of an elderly man whose lined face is built from patient cross-hatching.",
    ),
    (
        "An abstract grid of orange and teal squares, flat acrylic, rigid symmetry.",
        "Geometric abstraction: symmetrical squares of orange and teal in flat acrylic paint.",
    ),
    (
        "A snowy mountain village at dawn, pale pink on the peaks, tiny houses in the valley.",
        "Sunrise over snow-covered mountains tinted pink, a small village of houses below.",
    ),
    (
        "A close-up of a sunflower in thick yellow paint, petals curling out of the frame.",
        "One huge sunflower, heavy yellow impasto, its petals cropped by the edges of the canvas.",
    ),
    (
        "A forest path in autumn, warm browns and golds, dappled light through the trees.",
        "Autumn woods with a trail, golden and brown leaves, sunlight filtering through branches.",
    ),
];

#[test]
fn the_gap_is_zero_for_one_critique_for_all_and_clear_for_matching_ones() {
    let embedder = minilm();
    let rows: Vec<Example> =
        REFERENCES.iter().enumerate().map(|(i, (reference, _))| row(i, 10.0 + 10.0 * i as f32, None, Some(reference))).collect();
    let predict = |critique: &dyn Fn(usize) -> String| -> Vec<Prediction> {
        (0..rows.len()).map(|i| Prediction { scores: [50.0; 6], raw: Some([50.0; 6]), critique: critique(i) }).collect()
    };

    // House style, no painting: the same well-formed critique for every painting.
    let boilerplate = "Originality: a fresh idea. Color: harmonious. Texture: rich. Composition: balanced. Content: engaging.";
    let same = run(&rows, &predict(&|_| boilerplate.to_string()), Some(&embedder)).critique;
    let (gap, similarity) = (same.gap.unwrap(), same.similarity.unwrap());
    eprintln!("one critique for all: similarity {similarity:?}, gap {gap:?}");
    assert_eq!((same.pairs, same.derangements), (8, 10));
    assert!(gap.value.abs() < 1e-6, "{gap:?}");
    assert!(gap.ci_low <= 0.0 && 0.0 <= gap.ci_high, "{gap:?}");

    // Critiques about their own paintings.
    let own = run(&rows, &predict(&|i| REFERENCES[i].1.to_string()), Some(&embedder));
    let (gap, similarity, deranged) =
        (own.critique.gap.unwrap(), own.critique.similarity.unwrap(), own.critique.deranged_similarity.unwrap());
    eprintln!("own critiques: similarity {similarity:?}, deranged {deranged:?}, gap {gap:?}");
    assert!(gap.value > 0.3 && gap.ci_low > 0.2, "{gap:?}");
    assert!((similarity.value - deranged.value - gap.value).abs() < 1e-9);
    let per_row = &own.per_row[0];
    assert!(per_row.critique_similarity.unwrap() > per_row.deranged_similarity.unwrap());

    let md = markdown(&own);
    assert!(md.contains("with another painting's (mean of 10 derangements)") && md.contains("**gap**"), "{md}");
}

#[test]
fn ordering_and_cross_validated_calibration_in_the_report() {
    // 60 rows; raw zero-shot scores bunched in the middle (a monotone S-curve of the truth).
    let n = 60;
    let truth: Vec<f32> = (0..n).map(|i| 5.0 + 90.0 * i as f32 / (n - 1) as f32).collect();
    let raw_of = |t: f32, i: usize| 50.0 + 15.0 * ((t - 50.0) / 25.0).tanh() + ((i * 7) % 5) as f32 * 0.02;
    let rows: Vec<Example> = truth
        .iter()
        .enumerate()
        .map(|(i, &t)| row(i, t, (i % 2 == 0).then_some(t), None))
        .collect();
    let predictions: Vec<Prediction> = truth
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let raw = raw_of(t, i);
            Prediction { scores: [raw; 6], raw: Some([raw; 6]), critique: String::new() }
        })
        .collect();
    let report = run(&rows, &predictions, None);
    let names: Vec<&str> = report.dimensions.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["overall", "color"]);
    let overall = &report.dimensions[0];
    let ordering = overall.ordering.as_ref().unwrap();
    // Pairs of rows at least 10 points apart: the truth steps by 90/59 ≈ 1.53, so 7 steps.
    let expected_pairs = (0..n).map(|i| (i + 7..n).count()).sum::<usize>();
    assert_eq!(ordering.pairs, expected_pairs);
    assert!(ordering.accuracy.value > 0.97, "{ordering:?}");
    let raw = overall.raw.as_ref().unwrap();
    let cv = overall.calibrated_cv.as_ref().unwrap();
    eprintln!("raw MAE {:?}; calibrated (CV, {}) MAE {:?}", raw.mae, cv.method, cv.agreement.mae);
    assert_eq!((cv.folds, cv.method.as_str()), (5, "isotonic"));
    assert!(cv.agreement.mae.value < 0.5 * raw.mae.value, "{:?} vs {:?}", cv.agreement.mae, raw.mae);
    // The served scores are the raw ones here.
    assert_eq!(overall.agreement.mae.value, raw.mae.value);
    // Color on every other row: 30 entries, so 24 per fold's fit: lines.
    let color = &report.dimensions[1];
    assert_eq!(color.calibrated_cv.as_ref().unwrap().method, "linear");
    assert_eq!(color.ordering.as_ref().unwrap().pairs, (0..30).map(|i| (i + 4..30).count()).sum::<usize>());

    let md = markdown(&report);
    assert!(md.contains("## Zero-shot: raw, as served, calibrated"), "{md}");
    assert!(md.contains("| overall | calibrated (CV, 5 folds, isotonic) |"), "{md}");
    assert!(md.contains("raw zero-shot (the checkpoint has no calibration)"), "{md}");

    // A head checkpoint's predictions carry no raw scores: no zero-shot figures.
    let head: Vec<Prediction> = predictions.iter().map(|p| Prediction { raw: None, ..p.clone() }).collect();
    let rows_ref: Vec<&Example> = rows.iter().collect();
    let report = evaluate(
        "test",
        Served { scoring: ScoringMode::Head, calibration: None },
        "test.jsonl",
        &rows_ref,
        &head,
        None,
        options(),
    )
    .unwrap();
    assert!(report.dimensions.iter().all(|d| d.raw.is_none() && d.calibrated_cv.is_none()));
    assert!(!markdown(&report).contains("Zero-shot"));
    // A calibrated checkpoint's report warns that "as served" may be in-sample.
    let report = evaluate("test", zero_shot(true), "test.jsonl", &rows_ref, &predictions, None, options()).unwrap();
    assert!(markdown(&report).contains("in-sample"));
}

/// Paintings of two kinds, red and blue (noisy 56×56), each kind with a critique of its own.
const ROWS: usize = 6;

fn two_kinds(dir: &Path) -> PathBuf {
    use rand::{Rng, SeedableRng};
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut lines = Vec::new();
    for i in 0..ROWS {
        let red = i % 2 == 0;
        let base: [f32; 3] = if red { [220.0, 40.0, 40.0] } else { [40.0, 40.0, 220.0] };
        let img = image::RgbImage::from_fn(56, 56, |_, _| {
            image::Rgb(std::array::from_fn(|c| (base[c] + rng.random_range(-12.0..12.0)).clamp(0.0, 255.0) as u8))
        });
        let name = format!("images/p{i}.png");
        img.save(dir.join(&name)).unwrap();
        let critique = if red { "Red: hot, loud, fiery." } else { "Blue: cold, quiet, calm." };
        let overall = if red { 70.0 } else { 30.0 };
        lines.push(serde_json::json!({"image": name, "overall": overall, "critique": critique}).to_string());
    }
    let path = dir.join("data.jsonl");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

/// The control on real models: LoRA + head trained on paintings whose critique depends on the
/// painting writes critiques with a clear gap; the untrained (random) checkpoint, whose
/// critiques are noise, has none: its interval reaches 0.
#[test]
fn a_trained_model_shows_a_gap_and_a_random_one_none() {
    let start = std::time::Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let base = common::tiny_checkpoint(&tmp.path().join("base"), 4);
    common::scale_lm_head(&base, 30.0);
    common::short_prompt(&base);
    let data = two_kinds(&tmp.path().join("data"));
    let out = tmp.path().join("out");
    let mut config = common::config(&base, &data, &out);
    config.split = SplitSpec::Holdout { val_fraction: 0.0 };
    config.epochs = 40;
    config.batch_size = ROWS;
    config.lr = 1e-2;
    config.warmup_steps = 3;
    config.lora = Some(LoraSpec {
        rank: 8,
        alpha: 16.0,
        targets: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"].map(String::from).to_vec(),
        include_vision: false,
    });
    easel_train::train(&config, &Device::Cpu, DType::F32, &LocalFiles, false, &mut Silent).unwrap();

    let embedder = minilm();
    let dataset = Dataset::load(&data, &LocalFiles).unwrap();
    let rows: Vec<&Example> = dataset.examples.iter().collect();
    let controls = |dir: &Path| {
        let assessor = Assessor::load(dir, LoadOptions::cpu().with_generation(GenerationConfig::greedy(30))).unwrap();
        let predictions = predict(&assessor, &rows, &LocalFiles, ROWS, |_| {}).unwrap();
        let report = evaluate("t", Served::of(&assessor), "d", &rows, &predictions, Some((&embedder, "m")), options()).unwrap();
        (predictions[0].critique.clone(), report.critique.gap.unwrap())
    };
    let ((trained_text, trained), (random_text, random)) = (controls(&out), controls(&base));
    eprintln!(
        "gap: trained {trained:?} (\"{trained_text}\"), random {random:?} ({random_text:?}); {:.1}s",
        start.elapsed().as_secs_f64()
    );
    assert!(trained.ci_low > 0.1, "trained: {trained:?}");
    assert!(random.ci_low <= 0.0 && 0.0 <= random.ci_high && random.value.abs() < 0.05, "random: {random:?}");
}
