//! Built-in toy latent-variable models with analytic log-joints and posterior scores, prior
//! p(z) = N(0, I_L):
//!
//! - `Sym`:    x ~ N(z1·z2, σ²), σ = 0.5 by default (MATH.md eq. 11, "sym");
//! - `Soft`:   x ~ N(softplus_α(z1)·z2, σ²), α = 10, σ = 1 ("soft");
//! - `Relu`:   x ~ N(relu(z1)·z2, σ²), σ = 1;
//! - `Bias`:   x ~ N((2 z1 + 1)·z2, σ²), σ = 1;
//! - `Linear`: x ~ N(W z + b, σ² I_D), W (D, L), L ∈ {1, 2}, with a closed-form posterior.
//!
//! softplus_α(u) = log(1 + e^{αu})/α, taken as u when αu ≥ 20 and 0 when αu ≤ −20.

use crate::grid::{self, Grid, Summary};
use crate::mixture::Mixture;
use crate::{ensure_finite, ensure_rows, Error, Result};
use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, ArrayView4, Axis, Zip};

const LN_2PI: f64 = 1.837_877_066_409_345_5;
/// Whitened quadrature rule for E_q[·]: points per axis and half-width.
const Q_NODES: usize = 69;
const Q_HALF_WIDTH: f64 = 8.5;

/// A toy model p(x, z) = N(x; g(z), σ² I_D) N(z; 0, I_L).
#[derive(Clone, Debug, PartialEq)]
pub enum Model {
    /// g(z) = z1 z2.
    Sym { sigma: f64 },
    /// g(z) = softplus_α(z1) z2.
    Soft { alpha: f64, sigma: f64 },
    /// g(z) = relu(z1) z2.
    Relu { sigma: f64 },
    /// g(z) = (2 z1 + 1) z2.
    Bias { sigma: f64 },
    /// g(z) = W z + b with W (D, L).
    Linear {
        w: Array2<f64>,
        b: Array1<f64>,
        sigma: f64,
    },
}

/// softplus_α(u) = log(1 + e^{αu})/α (u if αu ≥ 20, 0 if αu ≤ −20).
#[inline]
pub fn softplus(u: f64, alpha: f64) -> f64 {
    let t = alpha * u;
    if t >= 20.0 {
        u
    } else if t <= -20.0 {
        0.0
    } else {
        t.exp().ln_1p() / alpha
    }
}

/// d softplus_α(u)/du = sigmoid(αu) (1 if αu ≥ 20, 0 if αu ≤ −20, matching [`softplus`]).
#[inline]
pub fn softplus_grad(u: f64, alpha: f64) -> f64 {
    let t = alpha * u;
    if t >= 20.0 {
        1.0
    } else if t <= -20.0 {
        0.0
    } else {
        1.0 / (1.0 + (-t).exp())
    }
}

fn check_sigma(sigma: f64) -> Result<()> {
    if sigma.is_finite() && sigma > 0.0 {
        Ok(())
    } else {
        Err(Error::Value {
            arg: "sigma",
            msg: format!("must be finite and > 0, got {sigma}"),
        })
    }
}

impl Model {
    /// Build a model by name ("sym", "soft", "relu", "bias", "linear"). `sigma`/`alpha` default
    /// as in the module docs; "linear" needs `w` (D, L) with L ∈ {1, 2}; `b` defaults to zeros.
    pub fn from_name(
        name: &str,
        sigma: Option<f64>,
        alpha: Option<f64>,
        w: Option<Array2<f64>>,
        b: Option<Array1<f64>>,
    ) -> Result<Model> {
        let not_for = |p: &'static str| Error::Value {
            arg: p,
            msg: format!("is not a parameter of model {name:?}"),
        };
        if name != "soft" && alpha.is_some() {
            return Err(not_for("alpha"));
        }
        if name != "linear" && w.is_some() {
            return Err(not_for("W"));
        }
        if name != "linear" && b.is_some() {
            return Err(not_for("b"));
        }
        let model = match name {
            "sym" => Model::Sym {
                sigma: sigma.unwrap_or(0.5),
            },
            "soft" => {
                let alpha = alpha.unwrap_or(10.0);
                if !(alpha.is_finite() && alpha > 0.0) {
                    return Err(Error::Value {
                        arg: "alpha",
                        msg: format!("must be > 0, got {alpha}"),
                    });
                }
                Model::Soft {
                    alpha,
                    sigma: sigma.unwrap_or(1.0),
                }
            }
            "relu" => Model::Relu {
                sigma: sigma.unwrap_or(1.0),
            },
            "bias" => Model::Bias {
                sigma: sigma.unwrap_or(1.0),
            },
            "linear" => {
                let w = w.unwrap_or_else(|| Array2::from_elem((1, 1), 1.0));
                let (d, l) = w.dim();
                if d == 0 || l == 0 || l > 2 {
                    return Err(Error::Shape {
                        arg: "W",
                        msg: format!(
                            "expected shape (D, L) with D ≥ 1 and L ∈ {{1, 2}}, got {:?}",
                            w.dim()
                        ),
                    });
                }
                let b = b.unwrap_or_else(|| Array1::zeros(d));
                if b.len() != d {
                    return Err(Error::Shape {
                        arg: "b",
                        msg: format!("expected shape ({d},) to match W, got ({},)", b.len()),
                    });
                }
                ensure_finite("W", w.iter())?;
                ensure_finite("b", b.iter())?;
                Model::Linear {
                    w,
                    b,
                    sigma: sigma.unwrap_or(1.0),
                }
            }
            other => {
                return Err(Error::Value {
                    arg: "model",
                    msg: format!(
                        "unknown toy model {other:?} (expected sym, soft, relu, bias or linear)"
                    ),
                })
            }
        };
        check_sigma(model.sigma())?;
        Ok(model)
    }

    /// Observation noise SD σ.
    pub fn sigma(&self) -> f64 {
        match self {
            Model::Sym { sigma }
            | Model::Soft { sigma, .. }
            | Model::Relu { sigma }
            | Model::Bias { sigma }
            | Model::Linear { sigma, .. } => *sigma,
        }
    }

    /// Latent dimension L.
    pub fn latent_dim(&self) -> usize {
        match self {
            Model::Linear { w, .. } => w.ncols(),
            _ => 2,
        }
    }

    /// Data dimension D.
    pub fn data_dim(&self) -> usize {
        match self {
            Model::Linear { w, .. } => w.nrows(),
            _ => 1,
        }
    }

    /// log p(x, z) with all constants; writes ∇_z log p(x, z) into `score[..L]`.
    pub fn log_joint_and_score(&self, x: &[f64], z: &[f64], score: &mut [f64]) -> f64 {
        let s2 = self.sigma() * self.sigma();
        let l = self.latent_dim();
        let d = self.data_dim();
        let mut lp = -0.5 * (d as f64) * (LN_2PI + s2.ln()) - 0.5 * (l as f64) * LN_2PI;
        for a in 0..l {
            lp -= 0.5 * z[a] * z[a];
            score[a] = -z[a];
        }
        match self {
            Model::Linear { w, b, .. } => {
                for i in 0..d {
                    let mut g = b[i];
                    for a in 0..l {
                        g += w[[i, a]] * z[a];
                    }
                    let r = (x[i] - g) / s2;
                    lp -= 0.5 * (x[i] - g) * r;
                    for a in 0..l {
                        score[a] += w[[i, a]] * r;
                    }
                }
            }
            _ => {
                let (z1, z2) = (z[0], z[1]);
                // g = h(z1)·k(z2) with Jacobian (h'(z1) k(z2), h(z1) k'(z2)).
                let (g, j1, j2) = match self {
                    Model::Sym { .. } => (z1 * z2, z2, z1),
                    Model::Soft { alpha, .. } => {
                        let h = softplus(z1, *alpha);
                        (h * z2, softplus_grad(z1, *alpha) * z2, h)
                    }
                    Model::Relu { .. } => {
                        let h = z1.max(0.0);
                        (h * z2, if z1 > 0.0 { z2 } else { 0.0 }, h)
                    }
                    Model::Bias { .. } => ((2.0 * z1 + 1.0) * z2, 2.0 * z2, 2.0 * z1 + 1.0),
                    Model::Linear { .. } => unreachable!("handled above"),
                };
                let r = (x[0] - g) / s2;
                lp -= 0.5 * (x[0] - g) * r;
                score[0] += j1 * r;
                score[1] += j2 * r;
            }
        }
        lp
    }

    /// Check observations x (B, D): shape, B ≥ 1, finite.
    pub fn check_x(&self, x: &ArrayView2<'_, f64>) -> Result<()> {
        ensure_rows("x", x.dim(), self.data_dim(), |d| {
            format!("model has data dimension {}, got {d}", self.data_dim())
        })?;
        ensure_finite("x", x.iter())?;
        Ok(())
    }

    /// Check that a grid has one axis per latent dimension (the error names `axes`).
    fn check_grid(&self, grid: &Grid) -> Result<()> {
        if grid.dim() != self.latent_dim() {
            return Err(Error::Shape {
                arg: "axes",
                msg: format!(
                    "model has {} latent dimensions, got {} axes",
                    self.latent_dim(),
                    grid.dim()
                ),
            });
        }
        Ok(())
    }

    /// Log-joint and score at points z (P, L) for each observation x (B, D):
    /// returns (B, P) and (B, P, L).
    pub fn eval_points(
        &self,
        x: ArrayView2<'_, f64>,
        z: ArrayView2<'_, f64>,
    ) -> Result<(Array2<f64>, Array3<f64>)> {
        self.check_x(&x)?;
        let l = self.latent_dim();
        if z.ncols() != l {
            return Err(Error::Shape {
                arg: "z",
                msg: format!(
                    "model has latent dimension {l}, got z of shape {:?}",
                    z.dim()
                ),
            });
        }
        ensure_finite("z", z.iter())?;
        let (b, p) = (x.nrows(), z.nrows());
        let zs = z.as_standard_layout();
        let mut lj = Array2::<f64>::zeros((b, p));
        let mut sc = Array3::<f64>::zeros((b, p, l));
        Zip::from(x.axis_iter(Axis(0)))
            .and(lj.axis_iter_mut(Axis(0)))
            .and(sc.axis_iter_mut(Axis(0)))
            .par_for_each(|xr, mut ljr, mut scr| {
                let xr = xr.to_vec();
                let mut s = [0.0; 2];
                for (k, zr) in zs.axis_iter(Axis(0)).enumerate() {
                    let zr = [zr[0], if l == 2 { zr[1] } else { 0.0 }];
                    ljr[k] = self.log_joint_and_score(&xr, &zr, &mut s);
                    for a in 0..l {
                        scr[[k, a]] = s[a];
                    }
                }
            });
        Ok((lj, sc))
    }

    /// The log-joint (B, G) of each observation x (B, D) on a grid with L axes.
    pub fn log_joint_grid(&self, x: ArrayView2<'_, f64>, grid: &Grid) -> Result<Array2<f64>> {
        self.check_x(&x)?;
        self.check_grid(grid)?;
        let (b, g) = (x.nrows(), grid.len());
        let mut lj = Array2::<f64>::zeros((b, g));
        Zip::from(x.axis_iter(Axis(0)))
            .and(lj.axis_iter_mut(Axis(0)))
            .par_for_each(|xr, mut out| {
                let xr = xr.to_vec();
                let (mut z, mut s) = ([0.0; 2], [0.0; 2]);
                for (gi, o) in out.iter_mut().enumerate() {
                    grid.point(gi, &mut z);
                    *o = self.log_joint_and_score(&xr, &z, &mut s);
                }
            });
        Ok(lj)
    }

    /// Fill `out` (G values) with log p(x, z_g) over the grid; the nonlinear models use a
    /// specialised loop (no score, constants hoisted).
    fn fill_grid(&self, x: &[f64], grid: &Grid, out: &mut [f64]) {
        #[inline(always)]
        fn fill2(
            grid: &Grid,
            x0: f64,
            c0: f64,
            h: f64,
            out: &mut [f64],
            g: impl Fn(f64, f64) -> f64,
        ) {
            let (a1, a2) = (&grid.axes()[0], &grid.axes()[1]);
            for (row, &z1) in out.chunks_exact_mut(a2.len()).zip(a1) {
                let p1 = c0 - 0.5 * z1 * z1;
                for (o, &z2) in row.iter_mut().zip(a2) {
                    let r = x0 - g(z1, z2);
                    *o = p1 - 0.5 * z2 * z2 - h * r * r;
                }
            }
        }
        let s2 = self.sigma() * self.sigma();
        let h = 0.5 / s2;
        let c0 = -0.5 * (LN_2PI + s2.ln()) - LN_2PI;
        let x0 = x[0];
        match self {
            Model::Sym { .. } => fill2(grid, x0, c0, h, out, |z1, z2| z1 * z2),
            Model::Soft { alpha, .. } => {
                let a = *alpha;
                fill2(grid, x0, c0, h, out, |z1, z2| softplus(z1, a) * z2)
            }
            Model::Relu { .. } => fill2(grid, x0, c0, h, out, |z1, z2| z1.max(0.0) * z2),
            Model::Bias { .. } => fill2(grid, x0, c0, h, out, |z1, z2| (2.0 * z1 + 1.0) * z2),
            Model::Linear { .. } => {
                let (mut z, mut s) = ([0.0; 2], [0.0; 2]);
                for (gi, o) in out.iter_mut().enumerate() {
                    grid.point(gi, &mut z);
                    *o = self.log_joint_and_score(x, &z, &mut s);
                }
            }
        }
    }

    /// Grid posterior of each observation: log evidence, mean, covariance, normalised density.
    /// Fused per observation (log-joint straight into the density buffer, then summarised in
    /// place), parallel over observations.
    pub fn posterior(&self, x: ArrayView2<'_, f64>, grid: &Grid) -> Result<Summary> {
        self.check_x(&x)?;
        self.check_grid(grid)?;
        let (b, g, l) = (x.nrows(), grid.len(), grid.dim());
        let mut log_z = Array1::<f64>::zeros(b);
        let mut mean = Array2::<f64>::zeros((b, l));
        let mut cov = Array3::<f64>::zeros((b, l, l));
        let mut density = Array2::<f64>::zeros((b, g));
        let mut bad = vec![false; b];
        Zip::from(x.axis_iter(Axis(0)))
            .and(&mut log_z)
            .and(mean.axis_iter_mut(Axis(0)))
            .and(cov.axis_iter_mut(Axis(0)))
            .and(density.axis_iter_mut(Axis(0)))
            .and(&mut bad)
            .par_for_each(|xr, lz, mut mu, mut c, mut dens, bad| {
                let xr = xr.to_vec();
                let buf = dens
                    .as_slice_mut()
                    .expect("freshly allocated rows are contiguous");
                self.fill_grid(&xr, grid, buf);
                if !buf.iter().any(|v| v.is_finite()) {
                    *bad = true;
                    return;
                }
                let (l_z, m, cv) = grid::summarise_row_inplace(buf, grid);
                *lz = l_z;
                for a in 0..l {
                    mu[a] = m[a];
                    for bb in 0..l {
                        c[[a, bb]] = cv[a][bb];
                    }
                }
            });
        if let Some(r) = bad.iter().position(|v| *v) {
            return Err(Error::Value {
                arg: "x",
                msg: format!("observation {r} has no finite log-joint on the grid"),
            });
        }
        Ok(Summary {
            log_z,
            mean,
            cov,
            density,
        })
    }

    /// KL(q‖p(z|x)) and ½ E_q‖∇log q − ∇log p(z|x)‖² for a batch of Gaussian-mixture q, with the
    /// analytic posterior score and log p(z|x) = log p(x, z) − log_z (log_z (B,) from the grid).
    ///
    /// E_q is a whitened trapezoid rule per component (69² nodes on [−8.5, 8.5]², see
    /// [`Mixture::nodes`]), so q need not lie inside any grid; it converges faster than any
    /// power of the node spacing for smooth models (`Relu` has a kink: O(Δu²) there).
    pub fn divergences(
        &self,
        x: ArrayView2<'_, f64>,
        log_z: ArrayView1<'_, f64>,
        q_weights: ArrayView2<'_, f64>,
        q_means: ArrayView3<'_, f64>,
        q_covs: ArrayView4<'_, f64>,
    ) -> Result<(Array1<f64>, Array1<f64>)> {
        self.check_x(&x)?;
        let b = x.nrows();
        let l = self.latent_dim();
        if log_z.len() != b {
            return Err(Error::Shape {
                arg: "log_z",
                msg: format!("expected ({b},), got ({},)", log_z.len()),
            });
        }
        ensure_finite("log_z", log_z.iter())?;
        let mixes = Mixture::batch(q_weights, q_means, q_covs, b, l)?;
        let mut kl = Array1::<f64>::zeros(b);
        let mut fd = Array1::<f64>::zeros(b);
        Zip::from(x.axis_iter(Axis(0)))
            .and(&log_z)
            .and(&mut kl)
            .and(&mut fd)
            .and(&mixes)
            .par_for_each(|xr, &lz, k, f, mix| {
                let xr = xr.to_vec();
                let (z, lw) = mix.nodes(Q_NODES, Q_HALF_WIDTH);
                let p = lw.len();
                let mut log_p = vec![0.0; p];
                let mut score = vec![0.0; p * l];
                let mut zz = [0.0; 2];
                for i in 0..p {
                    zz[..l].copy_from_slice(&z[i * l..(i + 1) * l]);
                    log_p[i] =
                        self.log_joint_and_score(&xr, &zz, &mut score[i * l..(i + 1) * l]) - lz;
                }
                let (a, c) = grid::quadrature(mix, &z, &lw, &log_p, &score, l);
                *k = a;
                *f = c;
            });
        Ok((kl, fd))
    }
}

/// Closed-form posterior of the linear-Gaussian model for x (D,): (log evidence, mean (L,),
/// covariance (L, L)), L ∈ {1, 2}.
pub fn linear_closed_form(
    w: &Array2<f64>,
    b: &Array1<f64>,
    sigma: f64,
    x: &[f64],
) -> (f64, Vec<f64>, Vec<f64>) {
    let (d, l) = w.dim();
    let s2 = sigma * sigma;
    // Precision A = I + WᵀW/σ², mean = A⁻¹ Wᵀ(x − b)/σ².
    let mut a = [[0.0; 2]; 2];
    let mut rhs = [0.0; 2];
    for p in 0..l {
        a[p][p] = 1.0;
        for q in 0..l {
            for i in 0..d {
                a[p][q] += w[[i, p]] * w[[i, q]] / s2;
            }
        }
        for i in 0..d {
            rhs[p] += w[[i, p]] * (x[i] - b[i]) / s2;
        }
    }
    let (cov, det_a) = if l == 1 {
        (vec![1.0 / a[0][0]], a[0][0])
    } else {
        let det = a[0][0] * a[1][1] - a[0][1] * a[1][0];
        (
            vec![a[1][1] / det, -a[0][1] / det, -a[1][0] / det, a[0][0] / det],
            det,
        )
    };
    let mean: Vec<f64> = (0..l)
        .map(|p| (0..l).map(|q| cov[p * l + q] * rhs[q]).sum())
        .collect();
    // log N(x; b, σ²I + WWᵀ) via the matrix determinant lemma and Woodbury:
    // log det = D ln σ² + ln det A; quadratic = |r|²/σ² − rhsᵀ A⁻¹ rhs.
    let r2: f64 = (0..d).map(|i| (x[i] - b[i]).powi(2)).sum::<f64>() / s2;
    let quad = r2 - (0..l).map(|p| rhs[p] * mean[p]).sum::<f64>();
    let log_z = -0.5 * (d as f64) * (LN_2PI + s2.ln()) - 0.5 * det_a.ln() - 0.5 * quad;
    (log_z, mean, cov)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array3, Array4};

    #[test]
    fn linear_2d_matches_closed_form() {
        let w = array![[1.0, -0.5], [0.3, 0.8], [0.0, 1.2]];
        let b = array![0.1, -0.2, 0.3];
        let model =
            Model::from_name("linear", Some(0.7), None, Some(w.clone()), Some(b.clone())).unwrap();
        let x = array![[0.5, 1.0, -0.4], [-1.0, 0.2, 0.9]];
        let grid = Grid::linspace(-7.0, 7.0, 281, 2).unwrap();
        let s = model.posterior(x.view(), &grid).unwrap();
        for r in 0..2 {
            let (lz, m, c) = linear_closed_form(&w, &b, 0.7, x.row(r).as_slice().unwrap());
            assert!(
                (s.log_z[r] - lz).abs() < 1e-10 * lz.abs().max(1.0),
                "{} {}",
                s.log_z[r],
                lz
            );
            for p in 0..2 {
                assert!((s.mean[[r, p]] - m[p]).abs() < 1e-10);
                for q in 0..2 {
                    assert!((s.cov[[r, p, q]] - c[p * 2 + q]).abs() < 1e-10);
                }
            }
        }
    }

    #[test]
    fn scores_match_finite_differences() {
        let models = ["sym", "soft", "relu", "bias"];
        let x = [0.7];
        for name in models {
            let m = Model::from_name(name, None, None, None, None).unwrap();
            for z in [[0.3, -1.1], [-0.8, 0.4], [1.7, 2.0]] {
                let mut s = [0.0; 2];
                m.log_joint_and_score(&x, &z, &mut s);
                let h = 1e-6;
                for a in 0..2 {
                    let (mut zp, mut zm) = (z, z);
                    zp[a] += h;
                    zm[a] -= h;
                    let mut t = [0.0; 2];
                    let d = (m.log_joint_and_score(&x, &zp, &mut t)
                        - m.log_joint_and_score(&x, &zm, &mut t))
                        / (2.0 * h);
                    assert!((d - s[a]).abs() < 1e-6, "{name} {z:?} {a}: {d} vs {}", s[a]);
                }
            }
        }
    }

    #[test]
    fn gaussian_q_against_linear_posterior() {
        let w = array![[1.5]];
        let b = array![0.0];
        let model =
            Model::from_name("linear", Some(1.0), None, Some(w.clone()), Some(b.clone())).unwrap();
        let x = array![[0.8]];
        let (lz, m, c) = linear_closed_form(&w, &b, 1.0, &[0.8]);
        let (qm, qv) = (0.1, 0.9);
        let (kl, fd) = model
            .divergences(
                x.view(),
                array![lz].view(),
                array![[1.0]].view(),
                Array3::from_elem((1, 1, 1), qm).view(),
                Array4::from_elem((1, 1, 1, 1), qv).view(),
            )
            .unwrap();
        let (pm, pv) = (m[0], c[0]);
        let kl_true = 0.5 * (qv / pv + (qm - pm).powi(2) / pv - 1.0 - (qv / pv).ln());
        // ∇log q − ∇log p = (1/pv − 1/qv)(z − qm) + (qm − pm)/pv, z ~ N(qm, qv).
        let fd_true = 0.5 * ((1.0 / pv - 1.0 / qv).powi(2) * qv + ((qm - pm) / pv).powi(2));
        assert!((kl[0] - kl_true).abs() < 1e-12, "{} {}", kl[0], kl_true);
        assert!((fd[0] - fd_true).abs() < 1e-12, "{} {}", fd[0], fd_true);
    }

    #[test]
    fn softplus_thresholds() {
        assert_eq!(softplus(2.0, 10.0), 2.0);
        assert_eq!(softplus(-2.0, 10.0), 0.0);
        assert!((softplus(0.0, 10.0) - 2f64.ln() / 10.0).abs() < 1e-15);
        assert_eq!(softplus_grad(2.0, 10.0), 1.0);
        assert!((softplus_grad(0.0, 10.0) - 0.5).abs() < 1e-15);
    }

    #[test]
    fn non_finite_linear_parameters_name_the_argument() {
        let named = |w: Array2<f64>, b: Array1<f64>| match Model::from_name(
            "linear",
            None,
            None,
            Some(w),
            Some(b),
        ) {
            Err(Error::Value { arg, .. }) => arg,
            other => panic!("expected a value error, got {:?}", other.is_ok()),
        };
        assert_eq!(named(array![[f64::NAN]], array![0.0]), "W");
        assert_eq!(named(array![[1.0]], array![f64::NAN]), "b");
        assert_eq!(named(array![[1.0, 2.0]], array![f64::INFINITY]), "b");
    }

    #[test]
    fn bad_models_are_rejected() {
        assert!(Model::from_name("nope", None, None, None, None).is_err());
        assert!(Model::from_name("sym", Some(-1.0), None, None, None).is_err());
        assert!(Model::from_name("sym", None, Some(3.0), None, None).is_err());
        assert!(Model::from_name("linear", None, None, Some(Array2::zeros((2, 3))), None).is_err());
        let m = Model::from_name("sym", None, None, None, None).unwrap();
        assert!(m
            .posterior(
                array![[f64::NAN]].view(),
                &Grid::linspace(-3.0, 3.0, 10, 2).unwrap()
            )
            .is_err());
        assert!(m
            .posterior(
                array![[1.0]].view(),
                &Grid::linspace(-3.0, 3.0, 10, 1).unwrap()
            )
            .is_err());
    }
}
