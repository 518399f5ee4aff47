//! Grid quadrature of 1-D and 2-D latent posteriors from a log-joint tabulated on a uniform grid.
//!
//! A [`Grid`] is one or two strictly increasing, uniformly spaced axes; grid points are ordered
//! like NumPy's `meshgrid(..., indexing="ij")` flattened in C order (point `g = i·n2 + j` is
//! `(a1[i], a2[j])`). Integrals use the rectangle rule `∫ f dz ≈ Σ_g f(z_g)·ΔA` with cell area
//! `ΔA = Δ1·Δ2`; for a smooth integrand that decays to (numerically) zero inside the grid this is
//! the trapezoidal rule and converges faster than any power of the spacing.
//!
//! [`summarise`] turns a batch of log-joints `(B, G)` into the log evidence, posterior mean,
//! covariance and normalised density; [`fd_scores`] differentiates a log-joint row by finite
//! differences (second order, `O(Δ²)`), and [`divergences`] computes `KL(q‖p)` and the Fisher
//! divergence of a Gaussian-mixture `q` against the grid posterior by grid quadrature.

use crate::mixture::Mixture;
use crate::{ensure_rows, Error, Result};
use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, Axis, Zip};

/// Relative tolerance on the spacing of an axis to count as uniform.
const UNIFORM_RTOL: f64 = 1e-6;
/// Smallest rectangle-rule mass of q on the grid accepted by [`divergences`].
pub const MIN_Q_MASS: f64 = 0.5;

/// A uniform tensor-product grid of one or two latent axes.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    axes: Vec<Vec<f64>>,
    steps: Vec<f64>,
}

impl Grid {
    /// Validate and build a grid: 1 or 2 axes, each with ≥ 3 finite, strictly increasing,
    /// uniformly spaced points (relative spacing tolerance 1e-6).
    pub fn new(axes: Vec<Vec<f64>>) -> Result<Grid> {
        if axes.is_empty() || axes.len() > 2 {
            return Err(Error::Shape {
                arg: "axes",
                msg: format!("expected 1 or 2 axes, got {}", axes.len()),
            });
        }
        let mut steps = Vec::with_capacity(axes.len());
        for (a, ax) in axes.iter().enumerate() {
            if ax.len() < 3 {
                return Err(Error::Shape {
                    arg: "axes",
                    msg: format!("axis {a} needs at least 3 points, got {}", ax.len()),
                });
            }
            if ax.iter().any(|v| !v.is_finite()) {
                return Err(Error::Value {
                    arg: "axes",
                    msg: format!("axis {a} is not finite"),
                });
            }
            let n = ax.len();
            let step = (ax[n - 1] - ax[0]) / (n - 1) as f64;
            if step.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                return Err(Error::Value {
                    arg: "axes",
                    msg: format!("axis {a} must be strictly increasing"),
                });
            }
            let scale = ax[0].abs().max(ax[n - 1].abs()).max(step);
            for (i, w) in ax.windows(2).enumerate() {
                let d = w[1] - w[0];
                if (d - step).abs() > UNIFORM_RTOL * step.max(1e-12 * scale) {
                    return Err(Error::Value {
                        arg: "axes",
                        msg: format!(
                            "axis {a} is not uniformly spaced (step {i} is {d}, mean step {step})"
                        ),
                    });
                }
            }
            steps.push(step);
        }
        Ok(Grid { axes, steps })
    }

    /// Uniform grid with `n` points per axis on `[lo, hi]` in `dim` dimensions.
    pub fn linspace(lo: f64, hi: f64, n: usize, dim: usize) -> Result<Grid> {
        if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
            return Err(Error::Value {
                arg: "lo",
                msg: format!("need finite lo < hi, got lo={lo}, hi={hi}"),
            });
        }
        if n < 3 {
            return Err(Error::Value {
                arg: "n",
                msg: format!("need n ≥ 3, got {n}"),
            });
        }
        let ax: Vec<f64> = (0..n)
            .map(|i| lo + (hi - lo) * (i as f64) / ((n - 1) as f64))
            .collect();
        Grid::new(vec![ax; dim])
    }

    /// Number of latent dimensions L (1 or 2).
    pub fn dim(&self) -> usize {
        self.axes.len()
    }

    /// Number of grid points G = n1 (·n2).
    pub fn len(&self) -> usize {
        self.axes.iter().map(Vec::len).product()
    }

    /// Always false: a grid has at least 3 points per axis.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Points per axis.
    pub fn shape(&self) -> Vec<usize> {
        self.axes.iter().map(Vec::len).collect()
    }

    /// Spacing per axis.
    pub fn steps(&self) -> &[f64] {
        &self.steps
    }

    /// The axes.
    pub fn axes(&self) -> &[Vec<f64>] {
        &self.axes
    }

    /// Cell area ΔA = Π Δ_a.
    pub fn cell(&self) -> f64 {
        self.steps.iter().product()
    }

    /// Coordinates of flat point `g` written into `out[..L]`.
    #[inline]
    pub fn point(&self, g: usize, out: &mut [f64]) {
        if self.axes.len() == 1 {
            out[0] = self.axes[0][g];
        } else {
            let n2 = self.axes[1].len();
            out[0] = self.axes[0][g / n2];
            out[1] = self.axes[1][g % n2];
        }
    }

    /// All grid points as a (G, L) array.
    pub fn points(&self) -> Array2<f64> {
        let l = self.dim();
        let mut out = Array2::<f64>::zeros((self.len(), l));
        for (g, mut row) in out.rows_mut().into_iter().enumerate() {
            let mut z = [0.0; 2];
            self.point(g, &mut z);
            for a in 0..l {
                row[a] = z[a];
            }
        }
        out
    }
}

/// Posterior summaries of a batch of log-joints on a grid.
#[derive(Clone, Debug)]
pub struct Summary {
    /// (B,) log evidence log ∫ p(x, z) dz.
    pub log_z: Array1<f64>,
    /// (B, L) posterior mean.
    pub mean: Array2<f64>,
    /// (B, L, L) posterior covariance.
    pub cov: Array3<f64>,
    /// (B, G) normalised posterior density p(z_g | x) (Σ_g density·ΔA = 1).
    pub density: Array2<f64>,
}

/// Check a (B, G) log-joint against the grid: B ≥ 1, no NaN or +∞, and every row with a finite
/// entry. `all_finite` additionally rejects −∞ (needed for finite differences).
pub fn check_log_joint(
    log_joint: &ArrayView2<'_, f64>,
    grid: &Grid,
    all_finite: bool,
) -> Result<()> {
    ensure_rows("log_joint", log_joint.dim(), grid.len(), |g| {
        let (shape, len) = (grid.shape(), grid.len());
        format!("has {g} grid values per row, the axes give {shape:?} = {len}")
    })?;
    for (r, row) in log_joint.axis_iter(Axis(0)).enumerate() {
        let mut any_finite = false;
        for &v in row.iter() {
            if v.is_nan() || v == f64::INFINITY || (all_finite && v == f64::NEG_INFINITY) {
                let what = if all_finite {
                    "NaN or ±inf"
                } else {
                    "NaN or +inf"
                };
                return Err(Error::Value {
                    arg: "log_joint",
                    msg: format!("row {r} contains {what}"),
                });
            }
            any_finite |= v.is_finite();
        }
        if !any_finite {
            return Err(Error::Value {
                arg: "log_joint",
                msg: format!("row {r} is −inf everywhere (no posterior mass on the grid)"),
            });
        }
    }
    Ok(())
}

/// Log evidence, mean, covariance and normalised density of each row of `log_joint` (B, G).
///
/// Errors: wrong number of grid values, empty batch, NaN/+∞ entries, or a row that is −∞
/// everywhere.
pub fn summarise(log_joint: ArrayView2<'_, f64>, grid: &Grid) -> Result<Summary> {
    check_log_joint(&log_joint, grid, false)?;
    let (b, g) = log_joint.dim();
    let l = grid.dim();
    let mut log_z = Array1::<f64>::zeros(b);
    let mut mean = Array2::<f64>::zeros((b, l));
    let mut cov = Array3::<f64>::zeros((b, l, l));
    let mut density = Array2::<f64>::zeros((b, g));
    Zip::from(log_joint.axis_iter(Axis(0)))
        .and(&mut log_z)
        .and(mean.axis_iter_mut(Axis(0)))
        .and(cov.axis_iter_mut(Axis(0)))
        .and(density.axis_iter_mut(Axis(0)))
        .par_for_each(|row, lz, mut mu, mut c, mut dens| {
            for (d, v) in dens.iter_mut().zip(row.iter()) {
                *d = *v;
            }
            let buf = dens
                .as_slice_mut()
                .expect("freshly allocated rows are contiguous");
            let (l_z, m, cv) = summarise_row_inplace(buf, grid);
            *lz = l_z;
            for a in 0..l {
                mu[a] = m[a];
                for bb in 0..l {
                    c[[a, bb]] = cv[a][bb];
                }
            }
        });
    Ok(Summary {
        log_z,
        mean,
        cov,
        density,
    })
}

/// Overwrites each log value v of `row` (the points along `axis`) by e = exp(v − m) and returns
/// (Σ e, Σ e·u, Σ e·u²) with u = z − `zref` for the point's coordinate z.
#[inline(always)]
fn exp_moments(row: &mut [f64], axis: &[f64], m: f64, zref: f64) -> (f64, f64, f64) {
    let (mut s0, mut s1, mut s2) = (0.0, 0.0, 0.0);
    for (v, &z) in row.iter_mut().zip(axis) {
        let e = (*v - m).exp();
        *v = e;
        let u = z - zref;
        s0 += e;
        s1 += e * u;
        s2 += e * u * u;
    }
    (s0, s1, s2)
}

/// Summarise one row in place: `buf` holds log p(x, z_g) (G values, no NaN/+∞, some finite) and
/// is overwritten by the normalised density. Returns (log_z, mean, cov) (entries beyond L zero).
///
/// One pass for the maximum, one fused pass for exp, the mass and the first and second moments
/// (taken about the grid's mode to avoid cancellation), one pass to normalise.
pub fn summarise_row_inplace(buf: &mut [f64], grid: &Grid) -> (f64, [f64; 2], [[f64; 2]; 2]) {
    let l = grid.dim();
    let (mut m, mut arg) = (f64::NEG_INFINITY, 0usize);
    for (g, &v) in buf.iter().enumerate() {
        if v > m {
            m = v;
            arg = g;
        }
    }
    let mut zref = [0.0; 2];
    grid.point(arg, &mut zref);
    let (mut s0, mut s1, mut s2, mut s11, mut s12, mut s22) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let ax0 = &grid.axes()[0];
    if l == 1 {
        (s0, s1, s11) = exp_moments(buf, ax0, m, zref[0]);
    } else {
        let ax1 = &grid.axes()[1];
        let n2 = ax1.len();
        for (i, row) in buf.chunks_exact_mut(n2).enumerate() {
            let u1 = ax0[i] - zref[0];
            let (r0, r2, r22) = exp_moments(row, ax1, m, zref[1]);
            s0 += r0;
            s1 += r0 * u1;
            s11 += r0 * u1 * u1;
            s2 += r2;
            s12 += r2 * u1;
            s22 += r22;
        }
    }
    let cell = grid.cell();
    let log_z = m + s0.ln() + cell.ln();
    let inv = 1.0 / s0;
    let (d1, d2) = (s1 * inv, s2 * inv);
    let mean = [zref[0] + d1, if l == 2 { zref[1] + d2 } else { 0.0 }];
    let mut cov = [[s11 * inv - d1 * d1, 0.0], [0.0, 0.0]];
    if l == 2 {
        cov[0][1] = s12 * inv - d1 * d2;
        cov[1][0] = cov[0][1];
        cov[1][1] = s22 * inv - d2 * d2;
    }
    let to_density = inv / cell;
    for v in buf.iter_mut() {
        *v *= to_density;
    }
    (log_z, mean, cov)
}

/// Gradient of one log-joint row (G values) on the grid by finite differences, written into
/// `out` (G·L values, point-major: `out[g·L + a]` = ∂/∂z_a at point g).
///
/// Second-order central differences inside, second-order one-sided differences
/// `(−3f₀ + 4f₁ − f₂)/(2Δ)` at the edges (the same as `numpy.gradient(..., edge_order=2)`):
/// truncation error `O(Δ²)` everywhere.
pub fn fd_scores_row(row: &[f64], grid: &Grid, out: &mut [f64]) {
    let l = grid.dim();
    let shape = grid.shape();
    let n1 = shape[0];
    let n2 = if l == 2 { shape[1] } else { 1 };
    for a in 0..l {
        let (n, stride) = if a == 0 { (n1, n2) } else { (n2, 1) };
        let h = grid.steps()[a];
        let inv2h = 0.5 / h;
        for g in 0..row.len() {
            let i = if a == 0 { g / n2 } else { g % n2 };
            let d = if i == 0 {
                (-3.0 * row[g] + 4.0 * row[g + stride] - row[g + 2 * stride]) * inv2h
            } else if i == n - 1 {
                (3.0 * row[g] - 4.0 * row[g - stride] + row[g - 2 * stride]) * inv2h
            } else {
                (row[g + stride] - row[g - stride]) * inv2h
            };
            out[g * l + a] = d;
        }
    }
}

/// Finite-difference gradients (B, G, L) of a batch of log-joints (B, G); see [`fd_scores_row`].
/// Errors as [`summarise`], and every entry must be finite.
pub fn fd_scores(log_joint: ArrayView2<'_, f64>, grid: &Grid) -> Result<Array3<f64>> {
    check_log_joint(&log_joint, grid, true)?;
    let (b, g) = log_joint.dim();
    let l = grid.dim();
    let mut out = Array3::<f64>::zeros((b, g, l));
    Zip::from(log_joint.axis_iter(Axis(0)))
        .and(out.axis_iter_mut(Axis(0)))
        .par_for_each(|row, mut o| {
            let row = row.to_vec();
            let mut buf = vec![0.0; g * l];
            fd_scores_row(&row, grid, &mut buf);
            for (dst, src) in o.iter_mut().zip(buf) {
                *dst = src;
            }
        });
    Ok(out)
}

/// Quadrature of KL(q‖p) = E_q[log q − log p] and FD = ½ E_q‖∇log q − ∇log p‖² over nodes with
/// normalised weights. `log_p[i]`, `score_p[i·L..]` are the posterior log density and score at
/// node `z[i·L..]`; `log_w[i]` are unnormalised log weights of the nodes.
pub(crate) fn quadrature(
    mix: &Mixture,
    z: &[f64],
    log_w: &[f64],
    log_p: &[f64],
    score_p: &[f64],
    l: usize,
) -> (f64, f64) {
    let mw = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut wsum = 0.0;
    let (mut kl, mut fd) = (0.0, 0.0);
    let mut sq = [0.0; 2];
    for i in 0..log_w.len() {
        let w = (log_w[i] - mw).exp();
        if w == 0.0 {
            continue;
        }
        let zi = &z[i * l..(i + 1) * l];
        let lq = mix.log_pdf_and_score(zi, &mut sq[..l]);
        let mut d2 = 0.0;
        for a in 0..l {
            let d = sq[a] - score_p[i * l + a];
            d2 += d * d;
        }
        wsum += w;
        kl += w * (lq - log_p[i]);
        fd += w * d2;
    }
    (kl / wsum, 0.5 * fd / wsum)
}

/// KL(q‖p) and ½ E_q‖∇log q − ∇log p‖² of a batch of Gaussian-mixture `q` against the grid
/// posteriors p(z|x) ∝ exp(log_joint) by quadrature on the grid.
///
/// `q_weights` (B, C), `q_means` (B, C, L), `q_covs` (B, C, L, L). E_q is taken over q restricted
/// to the grid (weights q(z_g)·ΔA renormalised), so q should lie well inside the grid; an error
/// is raised when the grid holds less than [`MIN_Q_MASS`] of q's mass. The
/// posterior score comes from [`fd_scores_row`] (error `O(Δ²)`); the rectangle rule adds an
/// error that vanishes faster than any power of Δ for smooth, well-contained integrands.
pub fn divergences(
    log_joint: ArrayView2<'_, f64>,
    grid: &Grid,
    q_weights: ArrayView2<'_, f64>,
    q_means: ArrayView3<'_, f64>,
    q_covs: ndarray::ArrayView4<'_, f64>,
) -> Result<(Array1<f64>, Array1<f64>)> {
    check_log_joint(&log_joint, grid, true)?;
    let (b, g) = log_joint.dim();
    let l = grid.dim();
    let mixes = Mixture::batch(q_weights, q_means, q_covs, b, l)?;
    let summary = summarise(log_joint, grid)?;
    let points = grid.points();
    let zs = points.as_standard_layout();
    let zs = zs.as_slice().unwrap_or(&[]);
    let mut kl = Array1::<f64>::zeros(b);
    let mut fd = Array1::<f64>::zeros(b);
    let mut fail: Vec<Option<Error>> = vec![None; b];
    let log_cell = grid.cell().ln();
    Zip::from(log_joint.axis_iter(Axis(0)))
        .and(&summary.log_z)
        .and(&mut kl)
        .and(&mut fd)
        .and(&mut fail)
        .and(&mixes)
        .par_for_each(|row, &lz, k, f, err, mix| {
            let row = row.to_vec();
            let mut score = vec![0.0; g * l];
            fd_scores_row(&row, grid, &mut score);
            let log_p: Vec<f64> = row.iter().map(|v| v - lz).collect();
            let mut sq = [0.0; 2];
            let log_w: Vec<f64> = (0..g)
                .map(|i| mix.log_pdf_and_score(&zs[i * l..(i + 1) * l], &mut sq[..l]))
                .collect();
            // Rectangle-rule mass of q on the grid: q must lie inside it and be resolved by it.
            let mw = log_w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mass = if mw == f64::NEG_INFINITY {
                0.0
            } else {
                log_w.iter().map(|v| (v - mw).exp()).sum::<f64>() * (mw + log_cell).exp()
            };
            if mass.is_nan() || mass < MIN_Q_MASS {
                *err = Some(Error::Value {
                    arg: "q_mean",
                    msg: format!(
                        "q puts only {mass:.3e} of its mass on the grid (need ≥ {MIN_Q_MASS}); \
                         q must lie inside the grid and be resolved by its spacing"
                    ),
                });
                return;
            }
            let (a, c) = quadrature(mix, zs, &log_w, &log_p, &score, l);
            *k = a;
            *f = c;
        });
    if let Some(e) = fail.into_iter().flatten().next() {
        return Err(e);
    }
    Ok((kl, fd))
}

/// The axes as 1-D views (helper for callers holding `ArrayView1`s).
pub fn axes_from_views(axes: &[ArrayView1<'_, f64>]) -> Result<Grid> {
    Grid::new(axes.iter().map(|a| a.to_vec()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array4};

    fn gauss_grid_1d(mu: f64, s2: f64, n: usize) -> (Grid, Array2<f64>) {
        let grid = Grid::linspace(-8.0, 8.0, n, 1).unwrap();
        let lj: Vec<f64> = grid.axes()[0]
            .iter()
            .map(|z| {
                1.5 - 0.5 * (z - mu).powi(2) / s2 - 0.5 * (2.0 * std::f64::consts::PI * s2).ln()
            })
            .collect();
        (grid, Array2::from_shape_vec((1, n), lj).unwrap())
    }

    #[test]
    fn gaussian_1d_moments() {
        let (grid, lj) = gauss_grid_1d(0.3, 0.7, 401);
        let s = summarise(lj.view(), &grid).unwrap();
        assert!((s.log_z[0] - 1.5).abs() < 1e-12);
        assert!((s.mean[[0, 0]] - 0.3).abs() < 1e-12);
        assert!((s.cov[[0, 0, 0]] - 0.7).abs() < 1e-12);
        let tot: f64 = s.density.iter().sum::<f64>() * grid.cell();
        assert!((tot - 1.0).abs() < 1e-12);
    }

    #[test]
    fn gaussian_2d_moments_and_ij_order() {
        let a1: Vec<f64> = (0..161).map(|i| -8.0 + 0.1 * i as f64).collect();
        let a2: Vec<f64> = (0..241).map(|i| -13.0 + 0.1 * i as f64).collect();
        let grid = Grid::new(vec![a1.clone(), a2.clone()]).unwrap();
        // N(m, S) with S = [[1, .5], [.5, 2]], m = (0.5, -1).
        let (s11, s12, s22) = (1.0, 0.5, 2.0);
        let det: f64 = s11 * s22 - s12 * s12;
        let (p11, p12, p22) = (s22 / det, -s12 / det, s11 / det);
        let mut lj = Vec::new();
        for &x in &a1 {
            for &y in &a2 {
                let (dx, dy) = (x - 0.5, y + 1.0);
                let q = p11 * dx * dx + 2.0 * p12 * dx * dy + p22 * dy * dy;
                lj.push(-0.5 * q - (2.0 * std::f64::consts::PI).ln() - 0.5 * det.ln());
            }
        }
        let lj = Array2::from_shape_vec((1, lj.len()), lj).unwrap();
        let s = summarise(lj.view(), &grid).unwrap();
        assert!(s.log_z[0].abs() < 1e-9);
        assert!((s.mean[[0, 0]] - 0.5).abs() < 1e-9 && (s.mean[[0, 1]] + 1.0).abs() < 1e-9);
        assert!((s.cov[[0, 0, 0]] - s11).abs() < 1e-8);
        assert!((s.cov[[0, 0, 1]] - s12).abs() < 1e-8);
        assert!((s.cov[[0, 1, 1]] - s22).abs() < 1e-8);
    }

    #[test]
    fn fd_scores_exact_on_quadratics() {
        let grid = Grid::new(vec![vec![0.0, 0.5, 1.0, 1.5], vec![-1.0, 0.0, 1.0]]).unwrap();
        let pts = grid.points();
        let lj: Vec<f64> = pts
            .rows()
            .into_iter()
            .map(|p| p[0] * p[0] - 3.0 * p[0] * p[1] + p[1])
            .collect();
        let mut out = vec![0.0; 24];
        fd_scores_row(&lj, &grid, &mut out);
        for (g, p) in pts.rows().into_iter().enumerate() {
            assert!((out[2 * g] - (2.0 * p[0] - 3.0 * p[1])).abs() < 1e-12);
            assert!((out[2 * g + 1] - (-3.0 * p[0] + 1.0)).abs() < 1e-12);
        }
    }

    #[test]
    fn kl_and_fd_of_gaussians() {
        let (grid, lj) = gauss_grid_1d(0.0, 1.0, 801);
        let w = array![[1.0]];
        let m = Array3::from_elem((1, 1, 1), 0.5);
        let c = Array4::from_elem((1, 1, 1, 1), 0.5);
        let (kl, fd) = divergences(lj.view(), &grid, w.view(), m.view(), c.view()).unwrap();
        // KL(N(.5,.5) || N(0,1)) = ½(.5 + .25 − 1 − ln .5)
        let expect = 0.5 * (0.5 + 0.25 - 1.0 - 0.5f64.ln());
        assert!((kl[0] - expect).abs() < 1e-9, "{}", kl[0]);
        // ½ E_q (−(z−.5)/.5 + z)² = ½ E (−z + 1)² with z ~ N(.5,.5): ½(.5 + .25)
        assert!((fd[0] - 0.375).abs() < 1e-9, "{}", fd[0]);
    }

    #[test]
    fn bad_grids_are_rejected() {
        assert!(Grid::new(vec![]).is_err());
        assert!(Grid::new(vec![vec![0.0, 1.0]]).is_err());
        assert!(Grid::new(vec![vec![0.0, 1.0, 3.0]]).is_err());
        assert!(Grid::new(vec![vec![2.0, 1.0, 0.0]]).is_err());
        assert!(Grid::new(vec![vec![0.0, f64::NAN, 2.0]]).is_err());
        let grid = Grid::linspace(-1.0, 1.0, 5, 1).unwrap();
        let bad = Array2::from_elem((1, 4), 0.0);
        assert!(summarise(bad.view(), &grid).is_err());
        let nan = Array2::from_elem((1, 5), f64::NAN);
        assert!(summarise(nan.view(), &grid).is_err());
        let ninf = Array2::from_elem((1, 5), f64::NEG_INFINITY);
        assert!(summarise(ninf.view(), &grid).is_err());
        let empty = Array2::<f64>::zeros((0, 5));
        assert!(summarise(empty.view(), &grid).is_err());
    }
}
