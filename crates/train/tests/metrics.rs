//! Statistics against hand-computed values (and scikit-learn / SciPy for the kappa and ρ).

use easel_train::metrics::{banded_qwk, bootstrap, mae, pearson, quadratic_weighted_kappa, ranks, rmse, spearman};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn correlations_match_hand_computed_values() {
    // x = 1..5, y = (2, 1, 4, 3, 5): cov = 8, var = 10 each → r = 0.8; ranks equal the values.
    let (x, y) = ([1f32, 2., 3., 4., 5.], [2f32, 1., 4., 3., 5.]);
    assert!(close(pearson(&x, &y), 0.8, 1e-12));
    assert!(close(spearman(&x, &y), 0.8, 1e-12));
    // With ties (scipy.stats: r = 0.9035656779836154, ρ = 0.8676470588235294).
    let (x, y) = ([10f32, 20., 20., 30., 45., 50.], [12f32, 25., 18., 18., 40., 60.]);
    assert!(close(pearson(&x, &y), 0.903_565_677_983_615_4, 1e-9));
    assert!(close(spearman(&x, &y), 0.867_647_058_823_529_4, 1e-12));
    assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    assert!(pearson(&[1., 1., 1.], &[1., 2., 3.]).is_nan());
}

#[test]
fn errors_match_hand_computed_values() {
    let (x, y) = ([1f32, 2., 3.], [2f32, 2., 5.]);
    assert!(close(mae(&x, &y), 1.0, 1e-12));
    assert!(close(rmse(&x, &y), (5f64 / 3.0).sqrt(), 1e-12));
}

#[test]
fn quadratic_weighted_kappa_matches_sklearn() {
    // sklearn.metrics.cohen_kappa_score(a, b, weights="quadratic") = 0.8648648648648649
    let a = [0usize, 1, 2, 3, 4, 4, 2, 1, 0, 3];
    let b = [0usize, 2, 2, 3, 3, 4, 1, 1, 1, 4];
    assert!(close(quadratic_weighted_kappa(&a, &b, 5), 0.864_864_864_864_864_9, 1e-12));
    assert!(close(quadratic_weighted_kappa(&a, &a, 5), 1.0, 1e-12));
    // Hand case, 2 categories: a = (0,0,1,1), b = (0,1,1,1): observed disagreement 1/4 at weight
    // 1; expected = (2·1 + 2·3)/16 weighted off-diagonal = (2·1)/4 = 0.5 → κ = 1 − 0.25/0.5.
    assert!(close(quadratic_weighted_kappa(&[0, 0, 1, 1], &[0, 1, 1, 1], 2), 0.5, 1e-12));
    // Scores land in bands 1–20, 21–40, …: identical bands give 1.
    assert!(close(banded_qwk(&[5., 25., 45., 65., 85.], &[15., 35., 55., 75., 95.], 5), 1.0, 1e-12));
}

#[test]
fn bootstrap_interval_brackets_the_estimate_and_is_seeded() {
    let x: Vec<f32> = (0..60).map(|i| i as f32).collect();
    let y: Vec<f32> = x.iter().enumerate().map(|(i, v)| v + ((i * 7919) % 13) as f32 - 6.0).collect();
    let a = bootstrap(&x, &y, 500, 3, pearson);
    let b = bootstrap(&x, &y, 500, 3, pearson);
    assert_eq!(a, b);
    assert!(a.ci_low <= a.value && a.value <= a.ci_high, "{a:?}");
    assert!(a.ci_high - a.ci_low < 0.1 && a.ci_low > 0.8, "{a:?}");
}
