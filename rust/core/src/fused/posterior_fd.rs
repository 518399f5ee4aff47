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
use super::{check_shape, slice, split_rows, split_slabs, standard, sum_sq, Real};
use crate::Result;
use ndarray::{Array2, Array3, ArrayView2, ArrayView3, CowArray, Ix2, Ix3};
use std::any::TypeId;

/// Values (rows of L) per block of rows that the kernels process together: a block's e, residuals
/// and accumulators are one contiguous run of `rows·L` values, so that at small L the elementwise
/// loops and the exp still vectorise (one row of L = 2 is all scalar tail) and per-row overhead is
/// paid once per block. Elementwise results and each row's lane-wise sum are unchanged.
const BLOCK_VALUES: usize = 256;

/// Rows per block for rows of `l` values (at least 1).
fn block_rows(l: usize) -> usize {
    (BLOCK_VALUES / l.max(1)).max(1)
}

/// res = z − (z − mu)·e − g elementwise over equal-length slices (a loop LLVM vectorises).
#[inline(always)]
fn residuals<T: Real>(z: &[T], mu: &[T], e: &[T], g: &[T], res: &mut [T]) {
    let l = z.len();
    let (mu, e, g, res) = (&mu[..l], &e[..l], &g[..l], &mut res[..l]);
    for k in 0..l {
        res[k] = z[k] - (z[k] - mu[k]) * e[k] - g[k];
    }
}

/// e = exp(−logvar) elementwise (a block of rows of L values), vectorised (see [`exp_f32`],
/// [`exp_f64`]).
#[inline(always)]
fn exp_neg_row<T: Real>(logvar: &[T], e: &mut [T]) {
    let e = &mut e[..logvar.len()];
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        // SAFETY: T is f32 (same type, so same layout).
        let (lv, e) = unsafe { (cast::<T, f32>(logvar), cast_mut::<T, f32>(e)) };
        for (o, &v) in e.iter_mut().zip(lv) {
            *o = exp_f32(-v);
        }
    } else if TypeId::of::<T>() == TypeId::of::<f64>() {
        // SAFETY: T is f64.
        let (lv, e) = unsafe { (cast::<T, f64>(logvar), cast_mut::<T, f64>(e)) };
        for (o, &v) in e.iter_mut().zip(lv) {
            *o = exp_f64(-v);
        }
    } else {
        for (o, &v) in e.iter_mut().zip(logvar) {
            *o = (-v).exp();
        }
    }
}

/// `&[T]` as `&[U]`. Safety: `T` and `U` are the same type.
unsafe fn cast<T, U>(a: &[T]) -> &[U] {
    unsafe { std::slice::from_raw_parts(a.as_ptr().cast::<U>(), a.len()) }
}

/// `&mut [T]` as `&mut [U]`. Safety: `T` and `U` are the same type.
unsafe fn cast_mut<T, U>(a: &mut [T]) -> &mut [U] {
    unsafe { std::slice::from_raw_parts_mut(a.as_mut_ptr().cast::<U>(), a.len()) }
}

/// 2^k for k in [−252, 254] as the product of two normal powers of two (exact unless the
/// product over- or underflows, which then rounds once, as a correctly rounded exp would).
#[inline(always)]
fn pow2_f32(k: i32) -> (f32, f32) {
    let k1 = k >> 1;
    let s = |k: i32| f32::from_bits((k.wrapping_add(127) as u32) << 23);
    (s(k1), s(k - k1))
}

/// e^x in float32, branch-free so that LLVM vectorises a loop of it (libm's `expf` is a scalar
/// call): Cephes `expf` (range reduction by ln 2 in two parts, degree-6 polynomial; ≤ 1 ulp in
/// the normal range). Overflow gives +inf, underflow subnormals or 0, NaN stays NaN.
#[inline(always)]
#[allow(clippy::excessive_precision)] // Cephes' published coefficients, as printed
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4; // ln 2 = C1 − C2, C1 with few mantissa bits (k·C1 exact)
    const C2: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5·2^23: (v + ROUND) − ROUND rounds v to an integer
    let x = x.clamp(-104.0, 89.0); // beyond: 0 and +inf anyway (k stays in pow2's range)
    let t = x * LOG2E + ROUND;
    let kf = t - ROUND;
    let r = (x - kf * C1) - kf * C2;
    let p = (((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 1.666_666_5e-1)
        * r
        + 5.000_000_1e-1)
        * (r * r)
        + r
        + 1.0;
    // k = kf from t's low mantissa bits (integer ops only: `kf as i32` would not vectorise)
    let (s1, s2) = pow2_f32((t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32));
    p * s1 * s2
}

/// 2^k for k in [−2044, 2046] as the product of two normal powers of two (see [`pow2_f32`]).
#[inline(always)]
fn pow2_f64(k: i64) -> (f64, f64) {
    let k1 = k >> 1;
    let s = |k: i64| f64::from_bits((k.wrapping_add(1023) as u64) << 52);
    (s(k1), s(k - k1))
}

/// e^x in float64, branch-free (see [`exp_f32`]): Cephes `exp` (two-part ln 2 reduction, Padé
/// form 1 + 2r·P(r²)/(Q(r²) − r·P(r²)); ≤ 1 ulp in the normal range).
#[inline(always)]
#[allow(clippy::excessive_precision)] // Cephes' published coefficients, as printed
pub(crate) fn exp_f64(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const C1: f64 = 6.931_457_519_531_25e-1;
    const C2: f64 = 1.428_606_820_309_417_232_12e-6;
    const ROUND: f64 = 6_755_399_441_055_744.0; // 1.5·2^52
    let x = x.clamp(-746.0, 710.0);
    let t = x * LOG2E + ROUND;
    let kf = t - ROUND;
    let r = (x - kf * C1) - kf * C2;
    let rr = r * r;
    let px = r
        * ((1.261_771_930_748_105_908_78e-4 * rr + 3.029_944_077_074_419_613e-2) * rr
            + 9.999_999_999_999_999_999_1e-1);
    let qx = ((3.001_985_051_386_644_550_42e-6 * rr + 2.524_483_403_496_841_041_92e-3) * rr
        + 2.272_655_482_081_550_287_66e-1)
        * rr
        + 2.0;
    let p = 1.0 + 2.0 * (px / (qx - px));
    let (s1, s2) = pow2_f64((t.to_bits() as i64).wrapping_sub(ROUND.to_bits() as i64));
    p * s1 * s2
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
        let (zs, ms, lvs, gs) = (
            slice(&self.z),
            slice(&self.mu),
            slice(&self.logvar),
            slice(&self.g),
        );
        let mut out = vec![T::ZERO; n * b];
        if l > 0 && b > 0 && n > 0 {
            // tasks own ranges of b: e = exp(−logvar[b]) is computed once per b, into a block
            // buffer that stays in L1 while the N samples of those b use it
            let bounds = plan(n_threads, b, (5 * n + 2) * l);
            let starts = bounds.windows(2).map(|w| w[0]);
            let tasks: Vec<_> = starts.zip(split_slabs(&mut out, b, 1, &bounds)).collect();
            let inputs = (zs, ms, lvs, gs);
            run(n_threads, tasks, |(b0, outp)| {
                forward_task(inputs, (b, l), b0, outp)
            });
        }
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
            let inputs = (gos, zs, ms, lvs, gs);
            run(n_threads, tasks, |(b0, dzp, dgp, dmu_t, dlv_t)| {
                backward_task(inputs, (n, b, l), b0, dzp, dgp, dmu_t, dlv_t)
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

/// One task of the forward: rows `b0..` of every sample's output slab `outp[n]`, in blocks of
/// [`block_rows`] rows of b. A function marked `inline(always)`, so that it is compiled into
/// [`run`]'s AVX2 copy (see [`backward_task`]).
#[inline(always)]
fn forward_task<T: Real>(
    (zs, ms, lvs, gs): (&[T], &[T], &[T], &[T]),
    (b, l): (usize, usize),
    b0: usize,
    mut outp: Vec<&mut [T]>,
) {
    let rows = outp.first().map_or(0, |o| o.len());
    let k = block_rows(l);
    let (mut e, mut res) = (vec![T::ZERO; k * l], vec![T::ZERO; k * l]);
    for j0 in (0..rows).step_by(k) {
        let kk = k.min(rows - j0);
        let br = (b0 + j0) * l..(b0 + j0 + kk) * l;
        let (e, res) = (&mut e[..kk * l], &mut res[..kk * l]);
        exp_neg_row(&lvs[br.clone()], e);
        for (ni, o) in outp.iter_mut().enumerate() {
            let r = (ni * b + b0 + j0) * l;
            residuals(
                &zs[r..r + kk * l],
                &ms[br.clone()],
                e,
                &gs[r..r + kk * l],
                res,
            );
            for (o, res_row) in o[j0..j0 + kk].iter_mut().zip(res.chunks_exact(l)) {
                *o = sum_sq(res_row);
            }
        }
    }
}

/// One task of the backward: rows `b0..` of dmu/dlogvar and of every sample slab of dz/dg, in
/// blocks of [`block_rows`] rows of b (all elementwise, so blocks change no value).
/// A function marked `inline(always)`, so that it is compiled into [`run`]'s AVX2 copy (as a
/// closure body this size it was not inlined there and ran as SSE2 code).
#[inline(always)]
#[allow(clippy::type_complexity)]
fn backward_task<T: Real>(
    (gos, zs, ms, lvs, gs): (&[T], &[T], &[T], &[T], &[T]),
    (n, b, l): (usize, usize, usize),
    b0: usize,
    mut dzp: Vec<&mut [T]>,
    mut dgp: Vec<&mut [T]>,
    dmu_t: &mut [T],
    dlv_t: &mut [T],
) {
    let k = block_rows(l);
    let mut e = vec![T::ZERO; k * l];
    let mut acc_mu = vec![T::ZERO; k * l];
    let mut acc_lv = vec![T::ZERO; k * l];
    let mut t2go = vec![T::ZERO; k * l];
    let blocks = dmu_t.chunks_mut(k * l).zip(dlv_t.chunks_mut(k * l));
    for (jb, (dmu_r, dlv_r)) in blocks.enumerate() {
        let (j0, w) = (jb * k, dmu_r.len());
        let bi = b0 + j0;
        let mu_r = &ms[bi * l..bi * l + w];
        let (e, acc_mu, acc_lv) = (&mut e[..w], &mut acc_mu[..w], &mut acc_lv[..w]);
        let t2go = &mut t2go[..w];
        exp_neg_row(&lvs[bi * l..bi * l + w], e);
        acc_mu.fill(T::ZERO);
        acc_lv.fill(T::ZERO);
        for ni in 0..n {
            let r = ni * b + bi;
            for (t_row, go) in t2go.chunks_exact_mut(l).zip(&gos[r..r + w / l]) {
                t_row.fill(T::TWO * *go);
            }
            sample_step(
                t2go,
                &zs[r * l..r * l + w],
                &gs[r * l..r * l + w],
                mu_r,
                e,
                &mut dzp[ni][j0 * l..j0 * l + w],
                &mut dgp[ni][j0 * l..j0 * l + w],
                acc_mu,
                acc_lv,
            );
        }
        for k in 0..w {
            dmu_r[k] = acc_mu[k] * e[k];
            dlv_r[k] = acc_lv[k] * e[k];
        }
    }
}

/// One sample's rows of the backward: t = t2go·(z − d·e − g) with d = z − mu; writes dz, dg and
/// adds t, t·d to the accumulators (all slices have the same length, `t2go` = 2·go of each
/// value's row).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn sample_step<T: Real>(
    t2go: &[T],
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
    let (t2go, g, mu, e) = (&t2go[..l], &g[..l], &mu[..l], &e[..l]);
    let (dz, dg, acc_mu, acc_lv) = (
        &mut dz[..l],
        &mut dg[..l],
        &mut acc_mu[..l],
        &mut acc_lv[..l],
    );
    for k in 0..l {
        let d = z[k] - mu[k];
        let t = t2go[k] * (z[k] - d * e[k] - g[k]);
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
                let e = exp_f64(-lv[[bi, k]]); // the kernels' exp (tested below)
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

    /// ulps between two finite floats of the same sign (or both zero).
    fn ulps_f64(a: f64, b: f64) -> u64 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
    }

    #[test]
    fn vectorised_exp_is_within_ulps_of_libm_and_keeps_special_values() {
        let (mut worst, mut over_one) = ((0u64, 0u64), 0usize);
        for i in 0..200_001 {
            let x = -120.0 + 2.1e-3 * i as f64; // [-120, 300], through f32's range and beyond
            let (got, want) = (exp_f64(x), x.exp());
            over_one += usize::from(ulps_f64(got, want) > 1);
            worst.0 = worst.0.max(ulps_f64(got, want));
            let xf = (x / 1.4) as f32;
            let (got, want) = (exp_f32(xf), (xf as f64).exp() as f32);
            if want.is_normal() && got.is_finite() {
                let d = (got.to_bits() as i64 - want.to_bits() as i64).unsigned_abs();
                worst.1 = worst.1.max(d);
            } else {
                // subnormal range: within one subnormal step of the correctly rounded value
                assert!(
                    (got - want).abs() <= f32::from_bits(1) * 1.01 || got == want,
                    "{xf}"
                );
            }
        }
        // Cephes' bounds: f64 ≤ 2 ulp (1 of 200 001 points here), f32 ≤ 1 ulp
        assert!(
            worst.0 <= 2 && over_one <= 5 && worst.1 <= 1,
            "{worst:?} {over_one}"
        );
        for x in [-745.2f64, -740.0, -708.5, 0.0, 1e-300, 709.7, -1e-17] {
            assert!(ulps_f64(exp_f64(x), x.exp()) <= 1, "{x}");
        }
        assert_eq!(exp_f64(0.0), 1.0);
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f64(710.0), f64::INFINITY);
        assert_eq!(exp_f64(f64::INFINITY), f64::INFINITY);
        assert_eq!(exp_f64(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp_f64(-800.0), 0.0);
        assert!(exp_f64(f64::NAN).is_nan());
        assert_eq!(exp_f32(88.8), f32::INFINITY);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-110.0), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(60.0), 60f64.exp() as f32);
        assert!(exp_f32(88.7).is_finite());
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
