//! Gaussian mixtures q(z) = Σ_c π_c N(z; m_c, S_c) in L ≤ 2 dimensions: validated construction
//! from (weights, means, covariances), log density and score ∇_z log q, and quadrature nodes
//! adapted to each component (used for E_q[·] of the toy models).

use crate::{ensure_finite, Error, Result};
use ndarray::{ArrayView2, ArrayView3, ArrayView4, Axis};

const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// One Gaussian component with precomputed Cholesky factor, precision and log weight.
#[derive(Clone, Debug)]
pub struct Component {
    /// ln π_c (normalised) + the Gaussian's log normaliser.
    log_c: f64,
    /// ln π_c (normalised).
    log_w: f64,
    mean: [f64; 2],
    /// Lower Cholesky factor of the covariance.
    chol: [[f64; 2]; 2],
    /// Inverse covariance.
    prec: [[f64; 2]; 2],
}

/// A Gaussian mixture in `dim` ≤ 2 dimensions.
#[derive(Clone, Debug)]
pub struct Mixture {
    dim: usize,
    comps: Vec<Component>,
}

impl Mixture {
    /// Build one mixture from weights (C,), means (C, L), covariances (C, L, L).
    pub fn new(
        weights: &[f64],
        means: ArrayView2<'_, f64>,
        covs: ArrayView3<'_, f64>,
    ) -> Result<Mixture> {
        let c = weights.len();
        let l = means.ncols();
        if c == 0 {
            return Err(Error::Shape {
                arg: "q_weights",
                msg: "needs at least one component".into(),
            });
        }
        if l == 0 || l > 2 {
            return Err(Error::Shape {
                arg: "q_mean",
                msg: format!("latent dimension {l} is not 1 or 2"),
            });
        }
        if means.nrows() != c || covs.dim() != (c, l, l) {
            return Err(Error::Shape {
                arg: "q_cov",
                msg: format!(
                    "expected means ({c}, {l}) and covariances ({c}, {l}, {l}), got {:?} and {:?}",
                    means.dim(),
                    covs.dim()
                ),
            });
        }
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(Error::Value {
                arg: "q_weights",
                msg: "must be finite and ≥ 0".into(),
            });
        }
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            return Err(Error::Value {
                arg: "q_weights",
                msg: "must have a positive sum".into(),
            });
        }
        ensure_finite("q_mean", means.iter())?;
        ensure_finite("q_cov", covs.iter())?;
        let mut comps = Vec::with_capacity(c);
        for (k, &w) in weights.iter().enumerate() {
            if w == 0.0 {
                continue;
            }
            let s = covs.index_axis(Axis(0), k);
            let mut mean = [0.0; 2];
            for a in 0..l {
                mean[a] = means[[k, a]];
            }
            let (chol, prec, logdet) = if l == 1 {
                let v = s[[0, 0]];
                if v <= 0.0 {
                    return Err(not_pd(k));
                }
                (
                    [[v.sqrt(), 0.0], [0.0, 0.0]],
                    [[1.0 / v, 0.0], [0.0, 0.0]],
                    v.ln(),
                )
            } else {
                let (s11, s12, s21, s22) = (s[[0, 0]], s[[0, 1]], s[[1, 0]], s[[1, 1]]);
                if (s12 - s21).abs() > 1e-10 * (s11.abs() + s22.abs()) {
                    return Err(Error::Value {
                        arg: "q_cov",
                        msg: format!("component {k} is not symmetric"),
                    });
                }
                if s11 <= 0.0 {
                    return Err(not_pd(k));
                }
                let l11 = s11.sqrt();
                let l21 = s12 / l11;
                let r = s22 - l21 * l21;
                if r <= 0.0 {
                    return Err(not_pd(k));
                }
                let l22 = r.sqrt();
                let det = (l11 * l22) * (l11 * l22);
                (
                    [[l11, 0.0], [l21, l22]],
                    [[s22 / det, -s12 / det], [-s12 / det, s11 / det]],
                    2.0 * (l11.ln() + l22.ln()),
                )
            };
            let log_w = (w / total).ln();
            let log_c = log_w - 0.5 * (l as f64) * LN_2PI - 0.5 * logdet;
            comps.push(Component {
                log_c,
                log_w,
                mean,
                chol,
                prec,
            });
        }
        Ok(Mixture { dim: l, comps })
    }

    /// One mixture per batch row from weights (B, C), means (B, C, L), covariances (B, C, L, L).
    pub fn batch(
        weights: ArrayView2<'_, f64>,
        means: ArrayView3<'_, f64>,
        covs: ArrayView4<'_, f64>,
        b: usize,
        l: usize,
    ) -> Result<Vec<Mixture>> {
        let c = weights.ncols();
        if weights.nrows() != b {
            return Err(Error::Shape {
                arg: "q_weights",
                msg: format!("expected {b} batch rows, got shape {:?}", weights.dim()),
            });
        }
        if means.dim() != (b, c, l) {
            return Err(Error::Shape {
                arg: "q_mean",
                msg: format!("expected shape ({b}, {c}, {l}), got {:?}", means.dim()),
            });
        }
        if covs.dim() != (b, c, l, l) {
            return Err(Error::Shape {
                arg: "q_cov",
                msg: format!("expected shape ({b}, {c}, {l}, {l}), got {:?}", covs.dim()),
            });
        }
        (0..b)
            .map(|r| {
                let w = weights.index_axis(Axis(0), r).to_vec();
                Mixture::new(
                    &w,
                    means.index_axis(Axis(0), r),
                    covs.index_axis(Axis(0), r),
                )
            })
            .collect()
    }

    /// Latent dimension L.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of components with positive weight.
    pub fn n_components(&self) -> usize {
        self.comps.len()
    }

    /// log q(z), writing ∇_z log q(z) into `score[..L]`.
    pub fn log_pdf_and_score(&self, z: &[f64], score: &mut [f64]) -> f64 {
        let l = self.dim;
        let mut best = f64::NEG_INFINITY;
        let mut lcs = [0.0f64; 8];
        let mut heap: Vec<f64>;
        let lc: &mut [f64] = if self.comps.len() <= 8 {
            &mut lcs[..self.comps.len()]
        } else {
            heap = vec![0.0; self.comps.len()];
            &mut heap[..]
        };
        for (k, comp) in self.comps.iter().enumerate() {
            let q = comp.quad(z, l);
            lc[k] = comp.log_c - 0.5 * q;
            best = best.max(lc[k]);
        }
        for s in score.iter_mut() {
            *s = 0.0;
        }
        if best == f64::NEG_INFINITY {
            return best;
        }
        let mut tot = 0.0;
        for (k, comp) in self.comps.iter().enumerate() {
            let r = (lc[k] - best).exp();
            tot += r;
            // −S⁻¹(z − m), weighted by the (unnormalised) responsibility.
            let mut d = [0.0; 2];
            for a in 0..l {
                d[a] = z[a] - comp.mean[a];
            }
            for a in 0..l {
                let mut y = 0.0;
                for bb in 0..l {
                    y += comp.prec[a][bb] * d[bb];
                }
                score[a] -= r * y;
            }
        }
        for s in score.iter_mut() {
            *s /= tot;
        }
        best + tot.ln()
    }

    /// Quadrature nodes for E_q[h]: for each component, the trapezoid rule on the whitened grid
    /// u ∈ [−R, R]^L with `n` points per axis, mapped through z = m + C u. Returns (nodes (P·L),
    /// log weights (P,)), the weights summing to one (up to rounding): π_c φ(u) Δu^L normalised
    /// within each component. For smooth h this converges faster than any power of Δu; with
    /// R = 8.5, Δu = 0.25 the truncation error is ~1e-16 relative.
    pub fn nodes(&self, n: usize, r: f64) -> (Vec<f64>, Vec<f64>) {
        let l = self.dim;
        let us: Vec<f64> = (0..n)
            .map(|i| -r + 2.0 * r * (i as f64) / ((n - 1) as f64))
            .collect();
        let lphi: Vec<f64> = us.iter().map(|u| -0.5 * u * u).collect();
        let per = if l == 1 { n } else { n * n };
        let mut z = Vec::with_capacity(self.comps.len() * per * l);
        let mut lw = Vec::with_capacity(self.comps.len() * per);
        // log Σ_u φ(u) per axis (normaliser of the 1-D rule).
        let m = 0.0f64;
        let lse1 = m + lphi.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        for comp in &self.comps {
            if l == 1 {
                for (i, u) in us.iter().enumerate() {
                    z.push(comp.mean[0] + comp.chol[0][0] * u);
                    lw.push(comp.log_w + lphi[i] - lse1);
                }
            } else {
                for (i, u1) in us.iter().enumerate() {
                    for (j, u2) in us.iter().enumerate() {
                        z.push(comp.mean[0] + comp.chol[0][0] * u1);
                        z.push(comp.mean[1] + comp.chol[1][0] * u1 + comp.chol[1][1] * u2);
                        lw.push(comp.log_w + lphi[i] + lphi[j] - 2.0 * lse1);
                    }
                }
            }
        }
        (z, lw)
    }
}

impl Component {
    #[inline]
    fn quad(&self, z: &[f64], l: usize) -> f64 {
        let mut q = 0.0;
        for a in 0..l {
            for bb in 0..l {
                q += (z[a] - self.mean[a]) * self.prec[a][bb] * (z[bb] - self.mean[bb]);
            }
        }
        q
    }
}

fn not_pd(k: usize) -> Error {
    Error::Value {
        arg: "q_cov",
        msg: format!("component {k} is not positive definite"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn single_gaussian_density_and_score() {
        let m = Mixture::new(
            &[2.0],
            array![[1.0, -1.0]].view(),
            array![[[2.0, 0.5], [0.5, 1.0]]].view(),
        )
        .unwrap();
        let mut s = [0.0; 2];
        let lq = m.log_pdf_and_score(&[1.5, 0.0], &mut s);
        let det: f64 = 2.0 - 0.25;
        let (d1, d2) = (0.5, 1.0);
        let q = (1.0 * d1 * d1 - 2.0 * 0.5 * d1 * d2 + 2.0 * d2 * d2) / det;
        assert!((lq - (-LN_2PI - 0.5 * det.ln() - 0.5 * q)).abs() < 1e-12);
        assert!((s[0] + (1.0 * d1 - 0.5 * d2) / det).abs() < 1e-12);
        assert!((s[1] + (-0.5 * d1 + 2.0 * d2) / det).abs() < 1e-12);
    }

    #[test]
    fn nodes_integrate_moments() {
        let m = Mixture::new(
            &[0.25, 0.75],
            array![[1.0, -1.0], [-2.0, 0.5]].view(),
            array![[[2.0, 0.5], [0.5, 1.0]], [[0.3, 0.0], [0.0, 0.4]]].view(),
        )
        .unwrap();
        let (z, lw) = m.nodes(69, 8.5);
        let (mut s0, mut s1, mut s11) = (0.0, 0.0, 0.0);
        for (i, w) in lw.iter().enumerate() {
            let w = w.exp();
            s0 += w;
            s1 += w * z[2 * i];
            s11 += w * z[2 * i] * z[2 * i];
        }
        assert!((s0 - 1.0).abs() < 1e-13);
        assert!((s1 - (0.25 - 1.5)).abs() < 1e-12);
        assert!((s11 - (0.25 * 3.0 + 0.75 * 4.3)).abs() < 1e-12);
    }

    #[test]
    fn rejects_bad_covariances() {
        let mean = array![[0.0, 0.0]];
        assert!(
            Mixture::new(&[1.0], mean.view(), array![[[1.0, 2.0], [2.0, 1.0]]].view()).is_err()
        );
        assert!(
            Mixture::new(&[1.0], mean.view(), array![[[1.0, 0.1], [0.0, 1.0]]].view()).is_err()
        );
        assert!(Mixture::new(
            &[-1.0],
            mean.view(),
            array![[[1.0, 0.0], [0.0, 1.0]]].view()
        )
        .is_err());
        assert!(Mixture::new(
            &[],
            ndarray::Array2::zeros((0, 2)).view(),
            ndarray::Array3::zeros((0, 2, 2)).view()
        )
        .is_err());
    }
}
