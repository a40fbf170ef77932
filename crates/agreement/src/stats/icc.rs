//! Intraclass correlation for a jury: two-way random effects, absolute agreement.

use serde::{Deserialize, Serialize};

use super::MIN_PAIRED;
use super::checks::{all_equal, finite, finite_result};
use crate::Undefined;

/// Shrout & Fleiss's ICC(2,1) and ICC(2,k): the reliability of one juror's score, and of the mean
/// of k jurors' scores, when jurors are a random sample and their leniency counts as error
/// (pingouin's `ICC2` / `ICC2k`, called `ICC(A,1)` / `ICC(A,k)` since pingouin 0.7).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct Icc {
    pub icc2_1: f64,
    pub icc2_k: f64,
}

/// ICC(2,1) and ICC(2,k) of a complete matrix: one row per target (entry), one column per rater
/// (juror).
///
/// From the two-way ANOVA mean squares for rows (MSR), columns (MSC) and error (MSE):
/// ICC(2,1) = (MSR − MSE) / (MSR + (k − 1)·MSE + k·(MSC − MSE)/n) and
/// ICC(2,k) = (MSR − MSE) / (MSR + (MSC − MSE)/n).
pub fn icc2(matrix: &[Vec<f64>]) -> Result<Icc, Undefined> {
    let n = matrix.len();
    if n < MIN_PAIRED {
        return Err(Undefined::new(format!("fewer than {MIN_PAIRED} targets")));
    }
    let k = matrix[0].len();
    if matrix.iter().any(|row| row.len() != k) {
        return Err(Undefined::new("the rows differ in length"));
    }
    if k < 2 {
        return Err(Undefined::new("fewer than 2 raters"));
    }
    let values: Vec<f64> = matrix.iter().flatten().copied().collect();
    finite(&values)?;
    if all_equal(&values) {
        return Err(Undefined::new("every score is the same"));
    }

    let (nf, kf) = (n as f64, k as f64);
    let grand = values.iter().sum::<f64>() / (nf * kf);
    let row_means: Vec<f64> = matrix.iter().map(|row| row.iter().sum::<f64>() / kf).collect();
    let column_means: Vec<f64> = (0..k).map(|j| matrix.iter().map(|row| row[j]).sum::<f64>() / nf).collect();
    let squared = |v: f64| v * v;
    let ss_rows = kf * row_means.iter().map(|m| squared(m - grand)).sum::<f64>();
    let ss_columns = nf * column_means.iter().map(|m| squared(m - grand)).sum::<f64>();
    // The residual after removing row and column effects, summed directly rather than as
    // SS_total − SS_rows − SS_columns, which can go slightly negative through cancellation.
    let ss_error: f64 = matrix
        .iter()
        .zip(&row_means)
        .flat_map(|(row, rm)| row.iter().zip(&column_means).map(move |(v, cm)| squared(v - rm - cm + grand)))
        .sum();
    let ms_rows = ss_rows / (nf - 1.0);
    let ms_columns = ss_columns / (kf - 1.0);
    let ms_error = ss_error / ((nf - 1.0) * (kf - 1.0));

    let single = (ms_rows - ms_error) / (ms_rows + (kf - 1.0) * ms_error + kf * (ms_columns - ms_error) / nf);
    let average = (ms_rows - ms_error) / (ms_rows + (ms_columns - ms_error) / nf);
    Ok(Icc { icc2_1: finite_result(single)?, icc2_k: finite_result(average)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrout_and_fleiss_example() {
        // Shrout & Fleiss (1979), table 2: ICC(2,1) = 0.29, ICC(2,4) = 0.62 (values from pingouin).
        let m = vec![
            vec![9.0, 2.0, 5.0, 8.0],
            vec![6.0, 1.0, 3.0, 2.0],
            vec![8.0, 4.0, 6.0, 8.0],
            vec![7.0, 1.0, 2.0, 6.0],
            vec![10.0, 5.0, 6.0, 9.0],
            vec![6.0, 2.0, 4.0, 7.0],
        ];
        let icc = icc2(&m).unwrap();
        assert!((icc.icc2_1 - 0.289_764).abs() < 1e-6, "{icc:?}");
        assert!((icc.icc2_k - 0.620_051).abs() < 1e-6, "{icc:?}");
    }

    #[test]
    fn degenerate_matrices_are_undefined() {
        assert!(icc2(&[vec![1.0, 2.0], vec![2.0, 3.0]]).is_err());
        assert!(icc2(&[vec![1.0], vec![2.0], vec![3.0]]).is_err());
        assert!(icc2(&[vec![4.0, 4.0], vec![4.0, 4.0], vec![4.0, 4.0]]).is_err());
        assert!(icc2(&[vec![1.0, 2.0], vec![2.0], vec![3.0, 1.0]]).is_err());
        assert!(icc2(&[]).is_err());
    }

    #[test]
    fn perfect_agreement_is_one() {
        let icc = icc2(&[vec![1.0, 1.0], vec![5.0, 5.0], vec![3.0, 3.0]]).unwrap();
        assert!((icc.icc2_1 - 1.0).abs() < 1e-12 && (icc.icc2_k - 1.0).abs() < 1e-12);
    }
}
