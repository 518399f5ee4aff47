//! Streaming importance-sampled evaluation of a Gaussian VAE (the formulas are in the parent
//! module's documentation).
//!
//! [`Accumulator`] receives the samples chunk by chunk and keeps, per datum, only the
//! log-sum-exp state [`Row`] (a running maximum of the log weights and rescaled sums, D + 4
//! values): memory O(B·D) whatever K is. Per datum and chunk, a first pass computes the Kc log
//! weights, a second accumulates the sums while the datum's Kc·D decoder values are still in
//! cache, and the chunk's state is merged into the running one by log-sum-exp rescaling.

use super::Row;
use crate::{ensure_finite, Error, Result};
use ndarray::{Array1, Array2, ArrayView2, ArrayView3};
use rayon::prelude::*;

const LN_2PI: f64 = 1.837_877_066_409_345_5;
/// Data dimensions up to which a chunk's weighted differences are summed one dimension at a
/// time (see [`chunk_row`]).
const SMALL_D: usize = 8;

/// acc += e·(g − x), elementwise over acc's length (slices pre-cut so the loop vectorises).
#[inline(always)]
fn axpy_diff<T: Copy + Into<f64>>(acc: &mut [f64], e: f64, g: &[T], x: &[f64]) {
    let n = acc.len();
    let (g, x) = (&g[..n], &x[..n]);
    for i in 0..n {
        acc[i] += e * (g[i].into() - x[i]);
    }
}

/// ‖a − x‖² with 8 independent f64 accumulators (so the compiler can vectorise the reduction).
#[inline(always)]
fn sqdist<T: Copy + Into<f64>>(a: &[T], x: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let ca = a.chunks_exact(8);
    let cx = x.chunks_exact(8);
    let (ra, rx) = (ca.remainder(), cx.remainder());
    for (pa, px) in ca.zip(cx) {
        for i in 0..8 {
            let d = pa[i].into() - px[i];
            acc[i] += d * d;
        }
    }
    let mut tail = 0.0;
    for (va, vx) in ra.iter().zip(rx) {
        let d = (*va).into() - vx;
        tail += d * d;
    }
    if a.len() < 8 {
        return tail; // the lanes are all 0 (+0.0): skip their 8 serial adds (small D)
    }
    acc.iter().sum::<f64>() + tail
}

/// [`sqdist`] of every sample of a chunk for a small D known at compile time (the same
/// additions in the same order as `sqdist`'s tail; with D fixed, the loop over the samples
/// vectorises).
#[inline(always)]
fn sqdist_small<const D: usize, T: Copy + Into<f64>>(sqs: &mut [f64], flat: &[T], x: &[f64]) {
    let x: &[f64; D] = x.try_into().expect("x has D values");
    for (sq, g) in sqs.iter_mut().zip(flat.as_chunks::<D>().0) {
        let mut t = 0.0;
        for j in 0..D {
            let dj = g[j].into() - x[j];
            t += dj * dj;
        }
        *sq = t;
    }
}

/// Errors unless the log prior values are free of NaN and +∞ (−∞, a zero prior density, is
/// allowed) and the log proposal values are finite.
#[inline(always)]
fn check_log_densities(lp: &[f64], lq: &[f64]) -> Result<()> {
    if lp.iter().any(|v| v.is_nan() || *v == f64::INFINITY) {
        return Err(Error::Value {
            arg: "log_prior",
            msg: "contains NaN or +inf".into(),
        });
    }
    if lq.iter().any(|v| !v.is_finite()) {
        return Err(Error::Value {
            arg: "log_proposal",
            msg: "contains NaN or ±inf".into(),
        });
    }
    Ok(())
}

/// The error [`Accumulator::add`] reports for invalid values, in its documented order: NaN/+∞
/// log prior, then NaN/±∞ log proposal, then the first non-finite decoder distance in (datum,
/// sample) order. `None` if all values are valid. Runs only after a row found an error.
fn first_error<T: Copy + Into<f64>>(
    (lps, lqs): (&[f64], &[f64]),
    xms: &[T],
    kc: usize,
    xs: &[f64],
) -> Option<Error> {
    if let Err(e) = check_log_densities(lps, lqs) {
        return Some(e);
    }
    let d = xs.len() / (lps.len() / kc).max(1);
    for (r, (rows, xr)) in xms.chunks_exact(kc * d).zip(xs.chunks_exact(d)).enumerate() {
        if let Some(k) = rows
            .chunks_exact(d)
            .position(|g| !sqdist(g, xr).is_finite())
        {
            return Some(Error::Value {
                arg: "x_mean",
                msg: format!("contains NaN or inf (datum {r}, sample {k})"),
            });
        }
    }
    None
}

/// Reused per-thread buffers of [`chunk_row`] (Kc squared distances, log weights, weights).
type Scratch = (Vec<f64>, Vec<f64>, Vec<f64>);

/// Arguments of [`chunk_row`]: datum r, its Kc·D decoder means, its D values, its Kc log prior
/// and log proposal values, log N normaliser, 1/σ².
type RowArgs<'a, T> = (usize, &'a [T], &'a [f64], &'a [f64], &'a [f64], f64, f64);

/// [`chunk_row`] compiled for AVX2 (the crate's baseline is SSE2): the exp and the loops run
/// 4 × f64 wide. Safety: the CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn chunk_row_avx2<T: Copy + Into<f64>>(
    args: RowArgs<'_, T>,
    scratch: &mut Scratch,
) -> Result<Row> {
    chunk_row(args, scratch)
}

/// The state of datum `r` over one chunk (see [`RowArgs`]).
#[inline(always)]
fn chunk_row<T: Copy + Into<f64>>(
    (r, flat, xr, lp, lq, log_norm, inv_s2): RowArgs<'_, T>,
    (sqs, lws, es): &mut Scratch,
) -> Result<Row> {
    let d = xr.len();
    let mut st = Row::new(d);
    check_log_densities(lp, lq)?;
    // Pass 1: squared distances, then log weights, of the chunk (Kc values), written through
    // slices (no per-sample push) so that the second loop vectorises.
    let kc = lp.len();
    sqs.resize(kc, 0.0);
    lws.resize(kc, 0.0);
    match d {
        1 => sqdist_small::<1, T>(sqs, flat, xr),
        2 => sqdist_small::<2, T>(sqs, flat, xr),
        3 => sqdist_small::<3, T>(sqs, flat, xr),
        4 => sqdist_small::<4, T>(sqs, flat, xr),
        _ => {
            for (sq, g) in sqs.iter_mut().zip(flat.chunks_exact(d)) {
                *sq = sqdist(g, xr);
            }
        }
    }
    if let Some(k) = sqs.iter().position(|sq| !sq.is_finite()) {
        return Err(Error::Value {
            arg: "x_mean",
            msg: format!("contains NaN or inf (datum {r}, sample {k})"),
        });
    }
    for (lw, ((&sq, &p), &q)) in lws.iter_mut().zip(sqs.iter().zip(lp).zip(lq)) {
        *lw = log_norm - 0.5 * sq * inv_s2 + p - q;
    }
    // Pass 2: weights relative to the chunk maximum (none if all vanished); the datum's Kc·D
    // decoder values are still in cache.
    st.weigh_into(lws, es);
    for (&e, &sq) in es.iter().zip(sqs.iter()) {
        st.sq += e * sq;
    }
    // Σ w (g − x) rather than Σ w g: the score (Σw(g−x)/Σw)/σ² then keeps its precision when
    // |x| ≫ |g − x| (no cancellation of two large sums).
    if d <= SMALL_D {
        // one register accumulator per dimension (same order of additions over k as below,
        // without a store and reload of st.sg per sample)
        for (j, (sg, &xj)) in st.sg.iter_mut().zip(xr).enumerate() {
            let mut a = 0.0;
            for (g, &e) in flat.chunks_exact(d).zip(es.iter()) {
                a += e * (g[j].into() - xj);
            }
            *sg += a;
        }
    } else {
        for (g, &e) in flat.chunks_exact(d).zip(es.iter()) {
            axpy_diff(&mut st.sg, e, g, xr);
        }
    }
    Ok(st)
}

/// Per-datum outputs of [`Accumulator::result`].
#[derive(Clone, Debug)]
pub struct IsResult {
    /// (B,) log p̂(x).
    pub log_p: Array1<f64>,
    /// (B,) effective sample size (Σw)²/Σw².
    pub ess: Array1<f64>,
    /// (B, D) self-normalised marginal score ŝ(x).
    pub score: Array2<f64>,
    /// (B,) Hyvärinen loss estimate Ĵ(x).
    pub sm_loss: Array1<f64>,
}

/// Streaming importance-sampling accumulator over B data of dimension D.
#[derive(Clone, Debug)]
pub struct Accumulator {
    x: Array2<f64>,
    log_sigma2: f64,
    n_samples: u64,
    rows: Vec<Row>,
}

impl Accumulator {
    /// Start an accumulator for data x (B, D) and log σ² (finite scalar).
    pub fn new(x: ArrayView2<'_, f64>, log_sigma2: f64) -> Result<Accumulator> {
        let (b, d) = x.dim();
        if b == 0 || d == 0 {
            return Err(Error::Shape {
                arg: "x",
                msg: format!("expected a non-empty (B, D) array, got {:?}", x.dim()),
            });
        }
        ensure_finite("x", x.iter())?;
        if !log_sigma2.is_finite() {
            return Err(Error::Value {
                arg: "log_sigma2",
                msg: format!("must be finite, got {log_sigma2}"),
            });
        }
        Ok(Accumulator {
            x: x.as_standard_layout().into_owned(),
            log_sigma2,
            n_samples: 0,
            rows: vec![Row::new(d); b],
        })
    }

    /// Batch size B.
    pub fn batch(&self) -> usize {
        self.x.nrows()
    }

    /// Data dimension D.
    pub fn data_dim(&self) -> usize {
        self.x.ncols()
    }

    /// Samples per datum added so far (K).
    pub fn n_samples(&self) -> u64 {
        self.n_samples
    }

    /// Add a chunk of Kc samples per datum: decoder means `x_mean` (B, Kc, D) (f32 or f64),
    /// `log_prior` = log p(z_k) and `log_proposal` = log r(z_k), both (B, Kc).
    ///
    /// Errors (the state is left unchanged): shape mismatch, Kc = 0, NaN/±∞ decoder means, NaN or
    /// +∞ log prior, NaN or ±∞ log proposal.
    pub fn add<T>(
        &mut self,
        x_mean: ArrayView3<'_, T>,
        log_prior: ArrayView2<'_, f64>,
        log_proposal: ArrayView2<'_, f64>,
    ) -> Result<()>
    where
        T: Copy + Into<f64> + Sync,
    {
        let (b, d) = self.x.dim();
        let (bb, kc, dd) = x_mean.dim();
        if bb != b || dd != d {
            return Err(Error::Shape {
                arg: "x_mean",
                msg: format!("expected shape ({b}, Kc, {d}), got {:?}", x_mean.dim()),
            });
        }
        if kc == 0 {
            return Err(Error::Shape {
                arg: "x_mean",
                msg: "empty chunk (Kc = 0)".into(),
            });
        }
        for (name, a) in [("log_prior", &log_prior), ("log_proposal", &log_proposal)] {
            if a.dim() != (b, kc) {
                return Err(Error::Shape {
                    arg: name,
                    msg: format!(
                        "expected shape ({b}, {kc}) to match x_mean, got {:?}",
                        a.dim()
                    ),
                });
            }
        }
        let xm = x_mean.as_standard_layout();
        let (lp, lq) = (
            log_prior.as_standard_layout(),
            log_proposal.as_standard_layout(),
        );
        let std_layout = "standard layout";
        let (xms, lps, lqs) = (
            xm.as_slice().expect(std_layout),
            lp.as_slice().expect(std_layout),
            lq.as_slice().expect(std_layout),
        );
        let xs = self.x.as_slice().expect(std_layout);
        let inv_s2 = (-self.log_sigma2).exp();
        let log_norm = -0.5 * (d as f64) * (LN_2PI + self.log_sigma2);
        let partial: Result<Vec<Row>> = (0..b)
            .into_par_iter()
            .map_init(
                || {
                    (
                        Vec::with_capacity(kc),
                        Vec::with_capacity(kc),
                        Vec::with_capacity(kc),
                    )
                },
                |scratch, r| {
                    let (flat, xr) = (&xms[r * kc * d..(r + 1) * kc * d], &xs[r * d..(r + 1) * d]);
                    let (lp, lq) = (&lps[r * kc..(r + 1) * kc], &lqs[r * kc..(r + 1) * kc]);
                    let args = (r, flat, xr, lp, lq, log_norm, inv_s2);
                    #[cfg(target_arch = "x86_64")]
                    if std::arch::is_x86_feature_detected!("avx2") {
                        // SAFETY: the CPU supports AVX2 (checked just above).
                        return unsafe { chunk_row_avx2(args, scratch) };
                    }
                    chunk_row(args, scratch)
                },
            )
            .collect();
        // The rows check their own values (no extra pass over the arrays); on an error, the
        // checks run again in their documented order to report the first offending value.
        let partial = partial.map_err(|e| first_error((lps, lqs), xms, kc, xs).unwrap_or(e))?;
        self.rows
            .par_iter_mut()
            .zip(partial.par_iter())
            .for_each(|(row, p)| row.merge(p));
        self.n_samples += kc as u64;
        Ok(())
    }

    /// Final estimates from all samples added so far. A datum whose weights all vanished gets
    /// log p̂ = −∞, ESS = 0 and NaN score and loss. Errors if no chunk was added.
    pub fn result(&self) -> Result<IsResult> {
        if self.n_samples == 0 {
            return Err(Error::Value {
                arg: "result",
                msg: "no samples were added".into(),
            });
        }
        let (b, d) = self.x.dim();
        let s2 = self.log_sigma2.exp();
        let inv_s2 = 1.0 / s2;
        let log_k = (self.n_samples as f64).ln();
        let mut log_p = Array1::<f64>::zeros(b);
        let mut ess = Array1::<f64>::zeros(b);
        let mut score = Array2::<f64>::zeros((b, d));
        let mut sm = Array1::<f64>::zeros(b);
        for (r, row) in self.rows.iter().enumerate() {
            log_p[r] = row.log_sum() - log_k;
            ess[r] = row.ess();
            if row.is_empty() {
                score.row_mut(r).fill(f64::NAN);
                sm[r] = f64::NAN;
                continue;
            }
            let mut n2 = 0.0;
            for j in 0..d {
                let s = row.sg[j] / row.s1 * inv_s2;
                score[[r, j]] = s;
                n2 += s * s;
            }
            // E‖f‖² = E‖g − x‖²/σ⁴.
            sm[r] = row.sq / row.s1 * inv_s2 * inv_s2 - (d as f64) * inv_s2 - 0.5 * n2;
        }
        Ok(IsResult {
            log_p,
            ess,
            score,
            sm_loss: sm,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, Array3};

    /// Direct (non-streaming) evaluation for comparison.
    fn direct(
        x: &Array2<f64>,
        ls2: f64,
        g: &Array3<f64>,
        lp: &Array2<f64>,
        lq: &Array2<f64>,
    ) -> IsResult {
        let (b, k, d) = g.dim();
        let s2 = ls2.exp();
        let mut out = IsResult {
            log_p: Array1::zeros(b),
            ess: Array1::zeros(b),
            score: Array2::zeros((b, d)),
            sm_loss: Array1::zeros(b),
        };
        for r in 0..b {
            let lw: Vec<f64> = (0..k)
                .map(|j| {
                    let sq: f64 = (0..d).map(|i| (g[[r, j, i]] - x[[r, i]]).powi(2)).sum();
                    -0.5 * sq / s2 - 0.5 * d as f64 * (LN_2PI + ls2) + lp[[r, j]] - lq[[r, j]]
                })
                .collect();
            let m = lw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = lw.iter().map(|v| (v - m).exp()).collect();
            let s: f64 = w.iter().sum();
            out.log_p[r] = m + s.ln() - (k as f64).ln();
            out.ess[r] = s * s / w.iter().map(|v| v * v).sum::<f64>();
            let mut ef2 = 0.0;
            for j in 0..k {
                let mut f2 = 0.0;
                for i in 0..d {
                    let f = (g[[r, j, i]] - x[[r, i]]) / s2;
                    out.score[[r, i]] += w[j] / s * f;
                    f2 += f * f;
                }
                ef2 += w[j] / s * f2;
            }
            let n2: f64 = out.score.row(r).iter().map(|v| v * v).sum();
            out.sm_loss[r] = ef2 - d as f64 / s2 - 0.5 * n2;
        }
        out
    }

    fn pseudo(n: usize, seed: u64) -> Vec<f64> {
        // xorshift-based uniform(-2, 2) numbers, deterministic without extra crates.
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0
            })
            .collect()
    }

    #[test]
    fn chunked_equals_direct() {
        let (b, k, d) = (3, 37, 11);
        let x = Array2::from_shape_vec((b, d), pseudo(b * d, 1)).unwrap();
        let g = Array3::from_shape_vec((b, k, d), pseudo(b * k * d, 2)).unwrap();
        let lp = Array2::from_shape_vec((b, k), pseudo(b * k, 3)).unwrap();
        let lq = Array2::from_shape_vec((b, k), pseudo(b * k, 4)).unwrap();
        let ls2 = -0.3;
        let want = direct(&x, ls2, &g, &lp, &lq);
        let mut acc = Accumulator::new(x.view(), ls2).unwrap();
        for (lo, hi) in [(0, 5), (5, 6), (6, 30), (30, 37)] {
            let s = ndarray::s![.., lo..hi, ..];
            let s2 = ndarray::s![.., lo..hi];
            acc.add(g.slice(s), lp.slice(s2), lq.slice(s2)).unwrap();
        }
        let got = acc.result().unwrap();
        for r in 0..b {
            assert!((got.log_p[r] - want.log_p[r]).abs() < 1e-12);
            assert!((got.ess[r] - want.ess[r]).abs() < 1e-10);
            assert!(
                (got.sm_loss[r] - want.sm_loss[r]).abs() < 1e-10 * want.sm_loss[r].abs().max(1.0)
            );
            for i in 0..d {
                assert!((got.score[[r, i]] - want.score[[r, i]]).abs() < 1e-10);
            }
        }
    }

    #[test]
    fn f32_means_work_and_errors_leave_state() {
        let x = Array2::<f64>::zeros((2, 3));
        let mut acc = Accumulator::new(x.view(), 0.0).unwrap();
        let g = Array3::<f32>::from_elem((2, 4, 3), 0.5);
        let z = Array2::<f64>::zeros((2, 4));
        acc.add(g.view(), z.view(), z.view()).unwrap();
        let mut bad = g.clone();
        bad[[1, 2, 0]] = f32::NAN;
        assert!(acc.add(bad.view(), z.view(), z.view()).is_err());
        assert!(acc
            .add(g.view(), z.view(), Array2::<f64>::zeros((2, 3)).view())
            .is_err());
        assert_eq!(acc.n_samples(), 4);
        let r = acc.result().unwrap();
        assert!((r.ess[0] - 4.0).abs() < 1e-12);
        assert!((r.score[[0, 0]] - 0.5).abs() < 1e-12);
        // Equal samples: Ĵ = ‖f‖² − D/σ² − ½‖f‖² = ½·3·0.25 − 3.
        assert!((r.sm_loss[0] - (0.375 - 3.0)).abs() < 1e-12);
    }

    #[test]
    fn score_keeps_precision_for_large_data() {
        // x = 1e6, decoder means 1e6 + δ_k with δ = (1e-6, 3e-6), equal weights (the same log
        // prior and proposal; the likelihood differs by δ²/2 ≈ 1e-12, negligible): the score is
        // mean δ / σ² = 2e-6, which Σw·g/Σw − x would get only to ~1e-4 relative error.
        let x = Array2::from_elem((1, 1), 1e6);
        let mut acc = Accumulator::new(x.view(), 0.0).unwrap();
        let g = Array3::from_shape_vec((1, 2, 1), vec![1e6 + 1e-6, 1e6 + 3e-6]).unwrap();
        let z = Array2::<f64>::zeros((1, 2));
        acc.add(g.view(), z.view(), z.view()).unwrap();
        let s = acc.result().unwrap().score[[0, 0]];
        let want = ((1e6 + 1e-6 - 1e6) + (1e6 + 3e-6 - 1e6)) / 2.0;
        assert!((s - want).abs() < 1e-9 * want, "{s} vs {want}");
    }

    #[test]
    fn result_needs_samples_and_rejects_bad_x() {
        let x = Array2::<f64>::zeros((2, 3));
        assert!(Accumulator::new(x.view(), 0.0).unwrap().result().is_err());
        assert!(Accumulator::new(Array2::<f64>::zeros((0, 3)).view(), 0.0).is_err());
        assert!(Accumulator::new(x.view(), f64::NAN).is_err());
    }
}
