//! Per-datum terms of a Gaussian likelihood's x-score (CPU twin of
//! `python/vsm/kernels/gaussian_terms.py`).
//!
//! With f_n = (x_mean[n] − x)·inv, inv = exp(−log σ²), for each datum b:
//!
//! ```text
//! sq_mean[b] = (1/N) Σ_n Σ_d f_nbd²        mean_sq[b] = Σ_d fbar_bd²,   fbar = (1/N) Σ_n f_n
//! ```
//!
//! As in the Triton kernel, D is cut into tiles of min(next_pow2(D), [`MAX_BLOCK_D`]) columns;
//! per tile the N samples are accumulated columnwise (Σ_n f, Σ_n f²), fbar = (Σ_n f)/N, the tile's
//! partials Σ_d(Σ_n f²)/N and Σ_d fbar² are formed, and the tiles' partials are summed in order.
//!
//! Backward, given a = ∂L/∂sq_mean[b] and c = ∂L/∂mean_sq[b]:
//!
//! ```text
//! dx_mean[n,b,d] = (2·inv/N)·(a f_nbd + c fbar_bd)      dx[b,d] = (−2·inv)(a + c)·fbar_bd
//! ```
//!
//! (d log σ² needs no kernel: −2 Σ_b (a·sq_mean + c·mean_sq), formed by the caller.)
//! Accumulation in the input dtype.

use super::threads::{plan, run};
use super::{check_shape, hsum, slice, split_rows, split_slabs, standard, Real, LANES};
use crate::Result;
use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, CowArray, Ix2, Ix3};

/// Largest D tile, as the Triton kernel's `MAX_BLOCK_D`.
pub const MAX_BLOCK_D: usize = 128;

/// Tile width for D columns.
fn block_d(d: usize) -> usize {
    d.max(1).next_power_of_two().min(MAX_BLOCK_D)
}

/// Accumulates Σ_n f of one datum's tile into `acc_f`, f = (xm − x)·inv.
#[inline(always)]
fn accumulate_tile<T: Real>(
    xms: &[T],
    x: &[T],
    inv: T,
    row_stride: usize,
    n: usize,
    acc_f: &mut [T],
) {
    let w = x.len();
    let acc_f = &mut acc_f[..w];
    acc_f.fill(T::ZERO);
    for ni in 0..n {
        let xm = &xms[ni * row_stride..ni * row_stride + w];
        for k in 0..w {
            acc_f[k] += (xm[k] - x[k]) * inv;
        }
    }
}

/// The forward's partials of one datum's tile: (Σ_k (Σ_n f²)_k, Σ_k fbar_k²), fbar = (Σ_n f)/N,
/// each Σ_k lane-wise as [`super::sum_sq`] takes it (column k in lane k mod [`LANES`], the
/// columns of a lane in order, then [`hsum`]). Full groups of [`LANES`] columns keep Σ_n f
/// and Σ_n f² in registers (no per-column accumulator array stored and re-read); the last
/// columns go one at a time.
#[inline(always)]
fn forward_tile<T: Real>(xms: &[T], x: &[T], inv: T, row_stride: usize, n: usize, nf: T) -> (T, T) {
    let (mut lane_sq, mut lane_m) = ([T::ZERO; LANES], [T::ZERO; LANES]);
    let (groups, tail) = x.as_chunks::<LANES>();
    for (g, xc) in groups.iter().enumerate() {
        let (mut af, mut asq) = ([T::ZERO; LANES], [T::ZERO; LANES]);
        for ni in 0..n {
            let o = ni * row_stride + g * LANES;
            let xm: &[T; LANES] = xms[o..o + LANES].try_into().expect("LANES values");
            for j in 0..LANES {
                let f = (xm[j] - xc[j]) * inv;
                af[j] += f;
                asq[j] += f * f;
            }
        }
        for j in 0..LANES {
            lane_sq[j] += asq[j];
            let fbar = af[j] / nf;
            lane_m[j] += fbar * fbar;
        }
    }
    let c0 = groups.len() * LANES;
    for (j, &xk) in tail.iter().enumerate() {
        let (mut sf, mut sq) = (T::ZERO, T::ZERO);
        for ni in 0..n {
            let f = (xms[ni * row_stride + c0 + j] - xk) * inv;
            sf += f;
            sq += f * f;
        }
        lane_sq[j] += sq;
        let fbar = sf / nf;
        lane_m[j] += fbar * fbar;
    }
    (hsum(&lane_sq), hsum(&lane_m))
}

/// One task of the forward: data `b0..` of sq_mean (`sq_t`) and mean_sq (`msq_t`), tile by tile.
/// A function marked `inline(always)`, so that it is compiled into the AVX2 copy of the thread
/// runner's task call (a closure body this size is not inlined there and runs as SSE2 code).
#[inline(always)]
fn forward_task<T: Real>(
    (xs, xms, inv): (&[T], &[T], T),
    (n, b, d): (usize, usize, usize),
    b0: usize,
    sq_t: &mut [T],
    msq_t: &mut [T],
) {
    let (nf, bd) = (T::from_usize(n), block_d(d));
    for (j, (sq_b, msq_b)) in sq_t.iter_mut().zip(msq_t.iter_mut()).enumerate() {
        let bi = b0 + j;
        let (mut s, mut m) = (T::ZERO, T::ZERO);
        for d0 in (0..d).step_by(bd) {
            let w = bd.min(d - d0);
            let x_t = &xs[bi * d + d0..bi * d + d0 + w];
            let (ts, tm) = forward_tile(&xms[bi * d + d0..], x_t, inv, b * d, n, nf);
            s += ts / nf;
            m += tm;
        }
        *sq_b = s;
        *msq_b = m;
    }
}

/// The inputs of both kernels: `x` (B, D) and `x_mean` (N, B, D), checked against each other and
/// in standard layout, and inv = exp(−`log_sigma2`).
pub struct Inputs<'a, T> {
    dims: (usize, usize, usize),
    x: CowArray<'a, T, Ix2>,
    x_mean: CowArray<'a, T, Ix3>,
    inv: T,
}

impl<'a, T: Real> Inputs<'a, T> {
    /// Errors: `Error::Shape` naming `x_mean` when its shape is not (N, *x.shape).
    pub fn new(x: ArrayView2<'a, T>, x_mean: ArrayView3<'a, T>, log_sigma2: T) -> Result<Self> {
        let (n, b, d) = x_mean.dim();
        let expected = [n, x.nrows(), x.ncols()];
        check_shape("x_mean", x_mean.shape(), &expected, "(N, *x.shape)")?;
        Ok(Inputs {
            dims: (n, b, d),
            x: standard(x),
            x_mean: standard(x_mean),
            inv: (-log_sigma2).exp(),
        })
    }

    /// Forward: (sq_mean (B,), mean_sq (B,)).
    pub fn forward(&self, n_threads: usize) -> (Array1<T>, Array1<T>) {
        let (n, b, d) = self.dims;
        let (xs, xms, inv) = (slice(&self.x), slice(&self.x_mean), self.inv);
        let mut sq = vec![T::ZERO; b];
        let mut msq = vec![T::ZERO; b];
        if n * b * d == 0 {
            return (Array1::from_vec(sq), Array1::from_vec(msq));
        }
        let bounds = plan(n_threads, b, 3 * n * d);
        let tasks: Vec<_> = split_rows(&mut sq, 1, &bounds)
            .into_iter()
            .zip(split_rows(&mut msq, 1, &bounds))
            .collect();
        run(n_threads, tasks, |((b0, sq_t), (_, msq_t))| {
            forward_task((xs, xms, inv), (n, b, d), b0, sq_t, msq_t)
        });
        (Array1::from_vec(sq), Array1::from_vec(msq))
    }

    /// Backward: (dx (B, D), dx_mean (N, B, D)) given `grad_sq_mean` a (B,) and `grad_mean_sq`
    /// c (B,).
    ///
    /// Errors: `Error::Shape` naming the argument when its shape is not (B,).
    pub fn backward(
        &self,
        grad_sq_mean: ArrayView1<'_, T>,
        grad_mean_sq: ArrayView1<'_, T>,
        n_threads: usize,
    ) -> Result<(Array2<T>, Array3<T>)> {
        let (n, b, d) = self.dims;
        check_shape("grad_sq_mean", grad_sq_mean.shape(), &[b], "x.shape[:1]")?;
        check_shape("grad_mean_sq", grad_mean_sq.shape(), &[b], "x.shape[:1]")?;
        let (ga, gc) = (
            grad_sq_mean.as_standard_layout(),
            grad_mean_sq.as_standard_layout(),
        );
        let (gas, gcs) = (slice(&ga), slice(&gc));
        let (xs, xms, inv) = (slice(&self.x), slice(&self.x_mean), self.inv);
        let mut dx = vec![T::ZERO; b * d];
        let mut dxm = vec![T::ZERO; n * b * d];
        if n * b * d > 0 {
            let nf = T::from_usize(n);
            let neg2inv = -T::TWO * inv;
            let coef = T::TWO * inv / nf;
            let bd = block_d(d);
            let bounds = plan(n_threads, b, 4 * n * d);
            let tasks: Vec<_> = split_rows(&mut dx, d, &bounds)
                .into_iter()
                .zip(split_slabs(&mut dxm, b * d, d, &bounds))
                .collect();
            run(n_threads, tasks, |((b0, dx_t), mut dxm_t)| {
                let mut acc_f = [T::ZERO; MAX_BLOCK_D];
                let mut cf = [T::ZERO; MAX_BLOCK_D];
                for (j, dx_r) in dx_t.chunks_exact_mut(d).enumerate() {
                    let bi = b0 + j;
                    let (a, c) = (gas[bi], gcs[bi]);
                    let s = neg2inv * (a + c);
                    for d0 in (0..d).step_by(bd) {
                        let w = bd.min(d - d0);
                        let x_t = &xs[bi * d + d0..bi * d + d0 + w];
                        let xm_t = &xms[bi * d + d0..];
                        accumulate_tile(xm_t, x_t, inv, b * d, n, &mut acc_f);
                        let (fbar, cf) = (&mut acc_f[..w], &mut cf[..w]);
                        let dx_w = &mut dx_r[d0..d0 + w];
                        for k in 0..w {
                            fbar[k] = fbar[k] / nf;
                            dx_w[k] = s * fbar[k];
                            cf[k] = c * fbar[k];
                        }
                        for (ni, slab) in dxm_t.iter_mut().enumerate() {
                            let xm = &xm_t[ni * b * d..ni * b * d + w];
                            let out = &mut slab[j * d + d0..j * d + d0 + w];
                            for k in 0..w {
                                let f = (xm[k] - x_t[k]) * inv;
                                out[k] = coef * (a * f + cf[k]);
                            }
                        }
                    }
                }
            });
        }
        Ok((
            Array2::from_shape_vec((b, d), dx).expect("B·D values"),
            Array3::from_shape_vec((n, b, d), dxm).expect("N·B·D values"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array, Ix1, Ix2, Ix3};

    fn pseudo<D: ndarray::Dimension>(shape: &[usize], salt: u64) -> Array<f64, D> {
        super::super::pseudo(shape, salt)
            .into_dimensionality()
            .unwrap()
    }

    #[test]
    fn forward_backward_match_naive_formulas() {
        for &(n, b, d) in &[
            (1, 1, 1),
            (3, 5, 7),
            (2, 3, 300),
            (5, 20, 129),
            (4, 2, 1024),
        ] {
            let x: Array2<f64> = pseudo::<Ix2>(&[b, d], 1);
            let xm: Array3<f64> = pseudo::<Ix3>(&[n, b, d], 2);
            let ga: Array1<f64> = pseudo::<Ix1>(&[b], 3);
            let gc: Array1<f64> = pseudo::<Ix1>(&[b], 4);
            let ls = 0.3f64;
            let inv = (-ls).exp();
            let f = (&xm - &x) * inv;
            let fbar = f.mean_axis(ndarray::Axis(0)).unwrap();
            let sq_want = (&f * &f)
                .sum_axis(ndarray::Axis(2))
                .mean_axis(ndarray::Axis(0))
                .unwrap();
            let msq_want = (&fbar * &fbar).sum_axis(ndarray::Axis(1));
            let inputs = Inputs::new(x.view(), xm.view(), ls).unwrap();
            for threads in [1, 2, 5] {
                let (sq, msq) = inputs.forward(threads);
                for (a, w) in sq.iter().zip(&sq_want).chain(msq.iter().zip(&msq_want)) {
                    assert!((a - w).abs() <= 1e-12 * (1.0 + w.abs()), "{a} vs {w}");
                }
                let (dx, dxm) = inputs.backward(ga.view(), gc.view(), threads).unwrap();
                for bi in 0..b {
                    let (a, c) = (ga[bi], gc[bi]);
                    for k in 0..d {
                        let want = -2.0 * inv * (a + c) * fbar[[bi, k]];
                        assert!((dx[[bi, k]] - want).abs() <= 1e-12 * (1.0 + want.abs()));
                        for ni in 0..n {
                            let w = 2.0 * inv / n as f64 * (a * f[[ni, bi, k]] + c * fbar[[bi, k]]);
                            let got = dxm[[ni, bi, k]];
                            assert!((got - w).abs() <= 1e-12 * (1.0 + w.abs()), "{got} vs {w}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn closed_form() {
        // N = 2, B = 1, D = 2, σ² = 1: f_0 = (1, 0), f_1 = (3, 2) → sq_mean = (1 + 13)/2 = 7,
        // fbar = (2, 1) → mean_sq = 5
        let x = Array2::from_shape_vec((1, 2), vec![0.0f32, 0.0]).unwrap();
        let xm = Array3::from_shape_vec((2, 1, 2), vec![1.0f32, 0.0, 3.0, 2.0]).unwrap();
        let inputs = Inputs::new(x.view(), xm.view(), 0.0).unwrap();
        let (sq, msq) = inputs.forward(1);
        assert_eq!((sq[0], msq[0]), (7.0, 5.0));
        // a = 1, c = 0: dx_mean = (2/N) f = f, dx = −2 fbar
        let (ga, gc) = (Array1::from_elem(1, 1.0f32), Array1::from_elem(1, 0.0f32));
        let (dx, dxm) = inputs.backward(ga.view(), gc.view(), 1).unwrap();
        assert_eq!(dx.as_slice().unwrap(), &[-4.0, -2.0]);
        assert_eq!(dxm.as_slice().unwrap(), &[1.0, 0.0, 3.0, 2.0]);
    }

    #[test]
    fn shape_errors_name_the_argument() {
        let x = Array2::<f64>::zeros((2, 3));
        let xm = Array3::<f64>::zeros((1, 2, 4));
        let err = Inputs::new(x.view(), xm.view(), 0.0).err().unwrap();
        assert!(err.to_string().starts_with("x_mean:"), "{err}");
        let xm = Array3::<f64>::zeros((1, 2, 3));
        let g = Array1::<f64>::zeros(3);
        let inputs = Inputs::new(x.view(), xm.view(), 0.0).unwrap();
        let err = inputs.backward(g.view(), g.view(), 1).unwrap_err();
        assert!(err.to_string().starts_with("grad_sq_mean:"), "{err}");
    }
}
