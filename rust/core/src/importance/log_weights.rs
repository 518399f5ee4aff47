//! The log-weights level of importance sampling: per row of caller-computed log weights, the log
//! evidence `log p̂ = logsumexp_k log_w[b,k] − log K` in float64 and the effective sample size
//! `ESS = (Σw)² / Σw²`, computed stably through the shared log-sum-exp state [`Row`].

use super::Row;
use crate::{Error, Result};
use ndarray::{Array1, ArrayView2, Zip};

/// Per-row log-mean-exp and effective sample size of log importance weights.
///
/// `log_w` has shape (B, K) with K ≥ 1. Entries may be −∞ (zero weight) but not NaN or +∞.
/// A row whose weights are all −∞ gets `log_p = −∞` and `ess = 0`. B = 0 is an error.
pub fn log_mean_exp_ess(log_w: ArrayView2<'_, f64>) -> Result<(Array1<f64>, Array1<f64>)> {
    let (b, k) = log_w.dim();
    if b == 0 {
        return Err(Error::Shape {
            arg: "log_w",
            msg: "empty batch (B = 0)".into(),
        });
    }
    if k == 0 {
        return Err(Error::Shape {
            arg: "log_w",
            msg: "needs at least one sample per row (K ≥ 1)".into(),
        });
    }
    if log_w.iter().any(|v| v.is_nan() || *v == f64::INFINITY) {
        return Err(Error::Value {
            arg: "log_w",
            msg: "contains NaN or +inf".into(),
        });
    }
    let log_w = log_w.as_standard_layout(); // rows as contiguous slices (a view if already so)
    let mut log_p = Array1::<f64>::zeros(b);
    let mut ess = Array1::<f64>::zeros(b);
    let log_k = (k as f64).ln();
    Zip::from(log_w.rows())
        .and(&mut log_p)
        .and(&mut ess)
        .par_for_each(|row, lp, e| {
            let mut st = Row::new(0);
            match row.as_slice() {
                Some(s) => st.weigh(s),
                None => st.weigh(&row.to_vec()),
            };
            *lp = st.log_sum() - log_k;
            *e = st.ess();
        });
    Ok((log_p, ess))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn uniform_weights_give_full_ess() {
        let w = array![[0.5, 0.5, 0.5, 0.5]];
        let (lp, ess) = log_mean_exp_ess(w.view()).unwrap();
        assert!((lp[0] - 0.5).abs() < 1e-15);
        assert!((ess[0] - 4.0).abs() < 1e-12);
    }

    #[test]
    fn extreme_values_are_stable() {
        let w = array![[-1e30, 700.0, 700.0], [-1e30, -1e30, -1e30]];
        let (lp, ess) = log_mean_exp_ess(w.view()).unwrap();
        let expect = 700.0 + 2f64.ln() - 3f64.ln();
        assert!((lp[0] - expect).abs() < 1e-12);
        assert!((ess[0] - 2.0).abs() < 1e-12);
        assert!((lp[1] - (-1e30 - 3f64.ln() + 3f64.ln())).abs() / 1e30 < 1e-12);
        assert!((ess[1] - 3.0).abs() < 1e-12);
    }

    #[test]
    fn single_sample_is_identity() {
        let w = array![[3.25], [-7.0]];
        let (lp, ess) = log_mean_exp_ess(w.view()).unwrap();
        assert_eq!(lp.to_vec(), vec![3.25, -7.0]);
        assert_eq!(ess.to_vec(), vec![1.0, 1.0]);
    }

    #[test]
    fn rejects_nan_and_empty() {
        let w = array![[0.0, f64::NAN]];
        assert!(log_mean_exp_ess(w.view()).is_err());
        let e = ndarray::Array2::<f64>::zeros((2, 0));
        assert!(matches!(
            log_mean_exp_ess(e.view()),
            Err(Error::Shape { .. })
        ));
    }

    #[test]
    fn all_neg_inf_row_has_zero_ess() {
        let w = array![[f64::NEG_INFINITY, f64::NEG_INFINITY]];
        let (lp, ess) = log_mean_exp_ess(w.view()).unwrap();
        assert_eq!(lp[0], f64::NEG_INFINITY);
        assert_eq!(ess[0], 0.0);
    }
}
