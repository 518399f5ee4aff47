//! Posterior Fisher divergence per sample (CPU twin of `python/vsm/kernels/posterior_fd.py`).
//!
//! Forward, for the rows r = (n, b) of the (N, B, L) inputs:
//!
//! ```text
//! e = exp(−logvar[b]),   res = z − (z − mu[b])·e − g,   out[n, b] = Σ_l res²
//! ```
//!
//! Backward, with go = ∂loss/∂out[n, b] and t = 2·go·res:
//!
//! ```text
//! dz = t (1 − e),  dg = −t,  dmu[b] = (Σ_n t)·e,  dlogvar[b] = (Σ_n t (z − mu))·e
//! ```
//!
//! The sums over the N samples are taken before the multiplication by e, as in the Triton kernel
//! (and as autograd does for the reference): with e up to ~1e13, per-sample terms that overflow
//! float32 but cancel over the samples must not give inf − inf = NaN. Accumulation is in the
//! input dtype. The forward reduction over L is lane-wise ([`super::LANES`] partial sums).

use super::threads::{plan, run};
use super::{check_shape, hsum, slice, split_rows, split_slabs, standard, Real, LANES};
use crate::Result;
use ndarray::{Array2, Array3, ArrayView2, ArrayView3, CowArray, Ix2, Ix3};

/// Σ_l (z − (z − mu)·e − g)² for one row, lane-wise.
#[inline(always)]
fn row_pfd<T: Real>(z: &[T], mu: &[T], e: &[T], g: &[T]) -> T {
    let (zc, zt) = z.as_chunks::<LANES>();
    let (mc, mt) = mu.as_chunks::<LANES>();
    let (ec, et) = e.as_chunks::<LANES>();
    let (gc, gt) = g.as_chunks::<LANES>();
    let mut acc = [T::ZERO; LANES];
    for (((z, m), e), g) in zc.iter().zip(mc).zip(ec).zip(gc) {
        for j in 0..LANES {
            let res = z[j] - (z[j] - m[j]) * e[j] - g[j];
            acc[j] += res * res;
        }
    }
    for (j, (((&z, &m), &e), &g)) in zt.iter().zip(mt).zip(et).zip(gt).enumerate() {
        let res = z - (z - m) * e - g;
        acc[j] += res * res;
    }
    hsum(&acc)
}

/// e = exp(−logvar), elementwise, in parallel over chunks of `row_len` values.
fn exp_neg<T: Real>(logvar: &[T], row_len: usize, n_threads: usize) -> Vec<T> {
    let mut e = vec![T::ZERO; logvar.len()];
    let rows = logvar.len().checked_div(row_len).unwrap_or(0);
    let bounds = plan(n_threads, rows, row_len * 8);
    run(
        n_threads,
        split_rows(&mut e, row_len, &bounds),
        |(r0, out)| {
            let lv = &logvar[r0 * row_len..r0 * row_len + out.len()];
            for (o, &v) in out.iter_mut().zip(lv) {
                *o = (-v).exp();
            }
        },
    );
    e
}

/// The inputs of both kernels, checked against each other and in standard layout: `z`,
/// `g` = ∇_z log p(x|z) (N, B, L) and `mu`, `logvar` (B, L).
pub struct Inputs<'a, T> {
    dims: (usize, usize, usize),
    z: CowArray<'a, T, Ix3>,
    mu: CowArray<'a, T, Ix2>,
    logvar: CowArray<'a, T, Ix2>,
    g: CowArray<'a, T, Ix3>,
}

impl<'a, T: Real> Inputs<'a, T> {
    /// Errors: `Error::Shape` naming the argument when the shapes disagree.
    pub fn new(
        z: ArrayView3<'a, T>,
        mu: ArrayView2<'a, T>,
        logvar: ArrayView2<'a, T>,
        g: ArrayView3<'a, T>,
    ) -> Result<Self> {
        let (n, b, l) = z.dim();
        check_shape("mu", mu.shape(), &[b, l], "z.shape[1:]")?;
        check_shape("logvar", logvar.shape(), &[b, l], "z.shape[1:]")?;
        check_shape("grad_loglik_z", g.shape(), &[n, b, l], "z.shape")?;
        Ok(Inputs {
            dims: (n, b, l),
            z: standard(z),
            mu: standard(mu),
            logvar: standard(logvar),
            g: standard(g),
        })
    }

    /// Forward: PFD per sample, (N, B).
    pub fn forward(&self, n_threads: usize) -> Array2<T> {
        let (n, b, l) = self.dims;
        let (zs, ms, gs) = (slice(&self.z), slice(&self.mu), slice(&self.g));
        let mut out = vec![T::ZERO; n * b];
        if l == 0 || out.is_empty() {
            return Array2::from_shape_vec((n, b), out).expect("N·B values");
        }
        let es = exp_neg(slice(&self.logvar), l, n_threads);
        let bounds = plan(n_threads, n * b, 5 * l);
        run(n_threads, split_rows(&mut out, 1, &bounds), |(r0, out)| {
            for (i, o) in out.iter_mut().enumerate() {
                let r = r0 + i;
                let br = (r % b) * l;
                *o = row_pfd(
                    &zs[r * l..(r + 1) * l],
                    &ms[br..br + l],
                    &es[br..br + l],
                    &gs[r * l..(r + 1) * l],
                );
            }
        });
        Array2::from_shape_vec((n, b), out).expect("N·B values")
    }

    /// Gradients (dz, dmu, dlogvar, dg) of Σ go·PFD for `go` (N, B).
    ///
    /// Errors: `Error::Shape` naming `go` when its shape is not (N, B).
    #[allow(clippy::type_complexity)]
    pub fn backward(
        &self,
        go: ArrayView2<'_, T>,
        n_threads: usize,
    ) -> Result<(Array3<T>, Array2<T>, Array2<T>, Array3<T>)> {
        let (n, b, l) = self.dims;
        check_shape("go", go.shape(), &[n, b], "z.shape[:-1]")?;
        let go = go.as_standard_layout();
        let (zs, ms, gs) = (slice(&self.z), slice(&self.mu), slice(&self.g));
        let (gos, lvs) = (slice(&go), slice(&self.logvar));
        let mut dz = vec![T::ZERO; n * b * l];
        let mut dg = vec![T::ZERO; n * b * l];
        let mut dmu = vec![T::ZERO; b * l];
        let mut dlv = vec![T::ZERO; b * l];
        if l > 0 && b > 0 {
            let bounds = plan(n_threads, b, (n * 9 + 3) * l);
            let dz_parts = split_slabs(&mut dz, b * l, l, &bounds);
            let dg_parts = split_slabs(&mut dg, b * l, l, &bounds);
            let tasks: Vec<_> = split_rows(&mut dmu, l, &bounds)
                .into_iter()
                .zip(split_rows(&mut dlv, l, &bounds))
                .zip(dz_parts.into_iter().zip(dg_parts))
                .map(|(((b0, dmu_t), (_, dlv_t)), (dzp, dgp))| (b0, dzp, dgp, dmu_t, dlv_t))
                .collect();
            run(n_threads, tasks, |(b0, mut dzp, mut dgp, dmu_t, dlv_t)| {
                let mut e = vec![T::ZERO; l];
                let mut acc_mu = vec![T::ZERO; l];
                let mut acc_lv = vec![T::ZERO; l];
                let rows = dmu_t.chunks_exact_mut(l).zip(dlv_t.chunks_exact_mut(l));
                for (j, (dmu_r, dlv_r)) in rows.enumerate() {
                    let bi = b0 + j;
                    let mu_r = &ms[bi * l..(bi + 1) * l];
                    for (ev, &v) in e.iter_mut().zip(&lvs[bi * l..(bi + 1) * l]) {
                        *ev = (-v).exp();
                    }
                    acc_mu.fill(T::ZERO);
                    acc_lv.fill(T::ZERO);
                    for ni in 0..n {
                        let r = ni * b + bi;
                        let t2go = T::TWO * gos[r];
                        sample_step(
                            t2go,
                            &zs[r * l..(r + 1) * l],
                            &gs[r * l..(r + 1) * l],
                            mu_r,
                            &e,
                            &mut dzp[ni][j * l..(j + 1) * l],
                            &mut dgp[ni][j * l..(j + 1) * l],
                            &mut acc_mu,
                            &mut acc_lv,
                        );
                    }
                    for k in 0..l {
                        dmu_r[k] = acc_mu[k] * e[k];
                        dlv_r[k] = acc_lv[k] * e[k];
                    }
                }
            });
        }
        Ok((
            Array3::from_shape_vec((n, b, l), dz).expect("N·B·L values"),
            Array2::from_shape_vec((b, l), dmu).expect("B·L values"),
            Array2::from_shape_vec((b, l), dlv).expect("B·L values"),
            Array3::from_shape_vec((n, b, l), dg).expect("N·B·L values"),
        ))
    }
}

/// One sample's row of the backward: t = t2go·(z − d·e − g) with d = z − mu; writes dz, dg and
/// adds t, t·d to the accumulators (all slices have length L).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn sample_step<T: Real>(
    t2go: T,
    z: &[T],
    g: &[T],
    mu: &[T],
    e: &[T],
    dz: &mut [T],
    dg: &mut [T],
    acc_mu: &mut [T],
    acc_lv: &mut [T],
) {
    let l = z.len();
    let (g, mu, e) = (&g[..l], &mu[..l], &e[..l]);
    let (dz, dg, acc_mu, acc_lv) = (
        &mut dz[..l],
        &mut dg[..l],
        &mut acc_mu[..l],
        &mut acc_lv[..l],
    );
    for k in 0..l {
        let d = z[k] - mu[k];
        let t = t2go * (z[k] - d * e[k] - g[k]);
        dz[k] = t * (T::ONE - e[k]);
        dg[k] = -t;
        acc_mu[k] += t;
        acc_lv[k] += t * d;
    }
}

#[cfg(test)]
mod tests {
    use super::super::pseudo;
    use super::*;

    /// The formulas elementwise in f64, naively (the oracle for the tests below).
    #[allow(clippy::type_complexity)]
    fn naive(
        z: &Array3<f64>,
        mu: &Array2<f64>,
        lv: &Array2<f64>,
        g: &Array3<f64>,
        go: &Array2<f64>,
    ) -> (
        Array2<f64>,
        Array3<f64>,
        Array2<f64>,
        Array2<f64>,
        Array3<f64>,
    ) {
        let (n, b, l) = z.dim();
        let mut out = Array2::zeros((n, b));
        let mut dz = Array3::zeros((n, b, l));
        let mut dg = Array3::zeros((n, b, l));
        let mut dmu = Array2::zeros((b, l));
        let mut dlv = Array2::zeros((b, l));
        for bi in 0..b {
            for k in 0..l {
                let e = (-lv[[bi, k]]).exp();
                let (mut sm, mut sl) = (0.0, 0.0);
                for ni in 0..n {
                    let d = z[[ni, bi, k]] - mu[[bi, k]];
                    let res = z[[ni, bi, k]] - d * e - g[[ni, bi, k]];
                    out[[ni, bi]] += res * res;
                    let t = 2.0 * go[[ni, bi]] * res;
                    dz[[ni, bi, k]] = t * (1.0 - e);
                    dg[[ni, bi, k]] = -t;
                    sm += t;
                    sl += t * d;
                }
                dmu[[bi, k]] = sm * e;
                dlv[[bi, k]] = sl * e;
            }
        }
        (out, dz, dmu, dlv, dg)
    }

    fn close(a: &[f64], b: &[f64], rtol: f64) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= rtol * (1.0 + y.abs()), "{x} vs {y}");
        }
    }

    #[test]
    fn forward_backward_match_naive_formulas() {
        for &(n, b, l) in &[(1, 1, 1), (3, 5, 7), (2, 4, 17), (5, 40, 16), (1, 3, 130)] {
            let z = pseudo(&[n, b, l], 1).into_dimensionality().unwrap();
            let g = pseudo(&[n, b, l], 2).into_dimensionality().unwrap();
            let mu = pseudo(&[b, l], 3).into_dimensionality().unwrap();
            let lv = pseudo(&[b, l], 4).into_dimensionality().unwrap();
            let go = pseudo(&[n, b], 5).into_dimensionality().unwrap();
            let want = naive(&z, &mu, &lv, &g, &go);
            let inputs = Inputs::new(z.view(), mu.view(), lv.view(), g.view()).unwrap();
            for threads in [1, 3] {
                let out = inputs.forward(threads);
                close(out.as_slice().unwrap(), want.0.as_slice().unwrap(), 1e-13);
                let (dz, dmu, dlv, dg) = inputs.backward(go.view(), threads).unwrap();
                // elementwise results are bit-identical to the naive formulas
                assert_eq!(dz, want.1);
                assert_eq!(dmu, want.2);
                assert_eq!(dlv, want.3);
                assert_eq!(dg, want.4);
            }
        }
    }

    #[test]
    fn closed_form_single_element() {
        // z = 2, mu = 1, logvar = 0 (e = 1), g = 0.5: res = 2 − 1 − 0.5 = 0.5, PFD = 0.25
        let z = Array3::from_elem((1, 1, 1), 2.0f32);
        let g = Array3::from_elem((1, 1, 1), 0.5f32);
        let mu = Array2::from_elem((1, 1), 1.0f32);
        let lv = Array2::from_elem((1, 1), 0.0f32);
        let inputs = Inputs::new(z.view(), mu.view(), lv.view(), g.view()).unwrap();
        let out = inputs.forward(1);
        assert_eq!(out[[0, 0]], 0.25);
        let go = Array2::from_elem((1, 1), 1.0f32);
        let (dz, dmu, dlv, dg) = inputs.backward(go.view(), 1).unwrap();
        // t = 2·0.5 = 1: dz = t(1 − e) = 0, dg = −1, dmu = 1, dlogvar = t·(z − mu)·e = 1
        assert_eq!((dz[[0, 0, 0]], dg[[0, 0, 0]]), (0.0, -1.0));
        assert_eq!((dmu[[0, 0]], dlv[[0, 0]]), (1.0, 1.0));
    }

    #[test]
    fn sums_over_samples_before_scaling_by_e() {
        // e = exp(60) ≈ 1e26: per-sample t·e overflows float32 but t cancels over the 2 samples.
        let z = Array3::from_shape_vec((2, 1, 1), vec![1.0f32, -1.0]).unwrap();
        let g = Array3::zeros((2, 1, 1));
        let mu = Array2::zeros((1, 1));
        let lv = Array2::from_elem((1, 1), -60.0f32);
        let go = Array2::from_elem((2, 1), 1.0f32);
        let inputs = Inputs::new(z.view(), mu.view(), lv.view(), g.view()).unwrap();
        let (_, dmu, dlv, _) = inputs.backward(go.view(), 1).unwrap();
        assert_eq!(dmu[[0, 0]], 0.0);
        assert_eq!(dlv[[0, 0]], f32::NEG_INFINITY); // Σ t·d does not cancel: −inf, not NaN
    }

    #[test]
    fn non_contiguous_views_and_shape_errors() {
        let z = pseudo(&[3, 4, 5], 1)
            .into_dimensionality::<ndarray::Ix3>()
            .unwrap();
        let g = pseudo(&[3, 4, 5], 2)
            .into_dimensionality::<ndarray::Ix3>()
            .unwrap();
        let mu = pseudo(&[5, 4], 3)
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap();
        let lv = pseudo(&[4, 5], 4)
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap();
        let inputs = Inputs::new(z.view(), mu.t(), lv.view(), g.view()).unwrap();
        let a = inputs.forward(1);
        let b = Inputs::new(z.view(), mu.t().to_owned().view(), lv.view(), g.view())
            .unwrap()
            .forward(1);
        assert_eq!(a, b);
        let err = Inputs::new(z.view(), mu.view(), lv.view(), g.view())
            .err()
            .unwrap();
        assert!(
            err.to_string().starts_with("mu: expected shape [4, 5]"),
            "{err}"
        );
        let bad_go = Array2::<f64>::zeros((3, 5));
        let err = inputs.backward(bad_go.view(), 1).unwrap_err();
        assert!(err.to_string().starts_with("go:"), "{err}");
    }

    #[test]
    fn empty_shapes() {
        let z = Array3::<f64>::zeros((0, 2, 3));
        let mu = Array2::<f64>::zeros((2, 3));
        let out = Inputs::new(z.view(), mu.view(), mu.view(), z.view())
            .unwrap()
            .forward(2);
        assert_eq!(out.dim(), (0, 2));
        let z = Array3::<f64>::zeros((2, 2, 0));
        let mu = Array2::<f64>::zeros((2, 0));
        let out = Inputs::new(z.view(), mu.view(), mu.view(), z.view())
            .unwrap()
            .forward(2);
        assert_eq!(out, Array2::zeros((2, 2)));
    }
}
