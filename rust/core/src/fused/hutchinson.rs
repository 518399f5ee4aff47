//! Hutchinson probes (probe stream v2) and the probe dot product (CPU twin of
//! `python/vsm/kernels/hutchinson.py`).
//!
//! Probe v[p, b, d] of a (P, B, D) probe tensor, row r = p·B + b (PROBES.md):
//!
//! - Rademacher: one Philox call per 128 columns, offset r·⌈D/128⌉ + d/128; column d takes bit
//!   d % 32 of word (d % 128)/32, v = 1 − 2·bit (bit-identical to the Triton kernels).
//! - Gaussian: one `randn4x` per 4 columns, offset r·⌈D/4⌉ + d/4, v = n_{d % 4}, drawn in float32
//!   and then cast (identical up to the libm rounding of log/cos/sin/sqrt).
//!
//! Index arithmetic is 64-bit. Kernels: [`probes`] writes v, [`dot`] computes
//! out[p, b] = Σ_d v·u regenerating v (lane-wise, in u's dtype), [`dot_backward`] writes
//! go[p, b]·v[p, b, d].

use super::philox::{randint4x, randn4x};
use super::threads::{plan, run};
use super::{hsum, slice, split_rows, Real, LANES};
use crate::{Error, Result};
use ndarray::{Array2, Array3, ArrayView2, ArrayView3};

/// Columns covered by one Rademacher Philox call (4 words × 32 bits).
pub const RADEMACHER_COLS: usize = 128;
/// Columns covered by one Gaussian Philox call (`randn4x`).
pub const GAUSSIAN_COLS: usize = 4;
/// Columns generated at a time by [`dot`] (a multiple of both of the above).
const BLOCK: usize = 128;

/// Probe distribution; the ids are those of the Triton kernels (`kernels/hutchinson.py: DISTS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dist {
    /// ±1 with probability ½ each (id 0).
    Rademacher,
    /// Standard normal (id 1).
    Gaussian,
}

impl Dist {
    /// The distribution with kernel id `id` (0 Rademacher, 1 Gaussian).
    pub fn from_id(id: i64) -> Result<Dist> {
        match id {
            0 => Ok(Dist::Rademacher),
            1 => Ok(Dist::Gaussian),
            _ => Err(Error::Value {
                arg: "dist",
                msg: format!("expected 0 (rademacher) or 1 (gaussian), got {id}"),
            }),
        }
    }
}

/// The pieces of `out` (columns `d0 ..` of row `r` of a D-column probe tensor) that one Philox
/// call each fills, `cols` columns a call, paired with that call's offset r·⌈D/cols⌉ + d/cols.
/// `d0` must be a multiple of `cols`.
#[inline(always)]
fn philox_groups<T>(
    out: &mut [T],
    r: u64,
    d: usize,
    d0: usize,
    cols: usize,
) -> impl Iterator<Item = (u64, &mut [T])> {
    let per_row = d.div_ceil(cols) as u64;
    let first = (d0 / cols) as u64;
    let row_offset = r.wrapping_mul(per_row);
    out.chunks_mut(cols)
        .enumerate()
        .map(move |(k, group)| (row_offset.wrapping_add(first + k as u64), group))
}

/// Writes probe columns `d0 .. d0 + out.len()` of row `r` of a D-column probe tensor.
/// `d0` must be a multiple of [`BLOCK`] (or 0).
#[inline(always)]
fn fill<T: Real>(seed: u64, r: u64, d: usize, d0: usize, dist: Dist, out: &mut [T]) {
    match dist {
        Dist::Rademacher => {
            for (offset, block) in philox_groups(out, r, d, d0, RADEMACHER_COLS) {
                let words = randint4x(seed, offset);
                for (word, sub) in words.iter().zip(block.chunks_mut(32)) {
                    for (i, o) in sub.iter_mut().enumerate() {
                        *o = T::rademacher((word >> i) & 1);
                    }
                }
            }
        }
        Dist::Gaussian => {
            for (offset, group) in philox_groups(out, r, d, d0, GAUSSIAN_COLS) {
                let normals = randn4x(seed, offset);
                for (o, &v) in group.iter_mut().zip(&normals) {
                    *o = T::from_f32(v);
                }
            }
        }
    }
}

/// The (P, B, D) probes for `seed` and `dist`, each row r = p·B + b then passed to
/// `then(r, row)` (on the thread that drew it). `rademacher_cost`: work per column of a
/// Rademacher row, for the thread plan (a Gaussian one costs 16).
#[inline(always)]
fn probe_rows<T: Real>(
    (p, b, d): (usize, usize, usize),
    seed: u64,
    dist: Dist,
    n_threads: usize,
    rademacher_cost: usize,
    then: impl Fn(usize, &mut [T]) + Sync,
) -> Array3<T> {
    let mut out = vec![T::ZERO; p * b * d];
    if d > 0 {
        let cost = if dist == Dist::Gaussian {
            16
        } else {
            rademacher_cost
        };
        let bounds = plan(n_threads, p * b, cost * d);
        run(n_threads, split_rows(&mut out, d, &bounds), |(r0, rows)| {
            for (i, row) in rows.chunks_exact_mut(d).enumerate() {
                let r = r0 + i;
                fill(seed, r as u64, d, 0, dist, row);
                then(r, row);
            }
        });
    }
    Array3::from_shape_vec((p, b, d), out).expect("P·B·D values")
}

/// The probes v, shape (`p`, `b`, `d`), for `seed` and `dist`.
pub fn probes<T: Real>(
    p: usize,
    b: usize,
    d: usize,
    seed: u64,
    dist: Dist,
    n_threads: usize,
) -> Array3<T> {
    probe_rows((p, b, d), seed, dist, n_threads, 1, |_, _| {})
}

/// out[p, b] = Σ_d v[p, b, d]·u[p, b, d] for `u` (P, B, D), the probes regenerated from `seed`.
pub fn dot<T: Real>(u: ArrayView3<'_, T>, seed: u64, dist: Dist, n_threads: usize) -> Array2<T> {
    let (p, b, d) = u.dim();
    let u = u.as_standard_layout();
    let us = slice(&u);
    let mut out = vec![T::ZERO; p * b];
    if d > 0 {
        let cost = if dist == Dist::Gaussian { 16 } else { 2 };
        let bounds = plan(n_threads, p * b, cost * d);
        run(n_threads, split_rows(&mut out, 1, &bounds), |(r0, outs)| {
            let mut v = [T::ZERO; BLOCK];
            for (i, o) in outs.iter_mut().enumerate() {
                let r = r0 + i;
                let u_row = &us[r * d..(r + 1) * d];
                let mut acc = [T::ZERO; LANES];
                for (k, u_blk) in u_row.chunks(BLOCK).enumerate() {
                    let v = &mut v[..u_blk.len()];
                    fill(seed, r as u64, d, k * BLOCK, dist, v);
                    let (uc, ut) = u_blk.as_chunks::<LANES>();
                    let (vc, vt) = v.as_chunks::<LANES>();
                    for (uu, vv) in uc.iter().zip(vc) {
                        for j in 0..LANES {
                            acc[j] += uu[j] * vv[j];
                        }
                    }
                    for (j, (&uu, &vv)) in ut.iter().zip(vt).enumerate() {
                        acc[j] += uu * vv;
                    }
                }
                *o = hsum(&acc);
            }
        });
    }
    Array2::from_shape_vec((p, b), out).expect("P·B values")
}

/// du[p, b, d] = go[p, b]·v[p, b, d] for `go` (P, B), the probes regenerated from `seed`.
pub fn dot_backward<T: Real>(
    go: ArrayView2<'_, T>,
    seed: u64,
    dist: Dist,
    d: usize,
    n_threads: usize,
) -> Array3<T> {
    let (p, b) = go.dim();
    let go = go.as_standard_layout();
    let gos = slice(&go);
    probe_rows((p, b, d), seed, dist, n_threads, 2, |r, row| {
        let g = gos[r];
        for v in row.iter_mut() {
            *v = g * *v;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// v[p, b, d] straight from the spec (PROBES.md), one element at a time.
    fn spec_value(seed: u64, b: usize, d: usize, p: usize, bi: usize, col: usize, g: bool) -> f64 {
        let r = (p * b + bi) as u64;
        if g {
            let n4 = d.div_ceil(4) as u64;
            randn4x(seed, r * n4 + (col / 4) as u64)[col % 4] as f64
        } else {
            let n128 = d.div_ceil(128) as u64;
            let words = randint4x(seed, r * n128 + (col / 128) as u64);
            let j = col % 128;
            let bit = (words[j / 32] >> (j % 32)) & 1;
            1.0 - 2.0 * bit as f64
        }
    }

    #[test]
    fn probes_follow_the_spec_elementwise() {
        for &(p, b, d) in &[(1, 1, 1), (2, 3, 5), (1, 2, 128), (3, 1, 129), (1, 2, 300)] {
            for (dist, g) in [(Dist::Rademacher, false), (Dist::Gaussian, true)] {
                for threads in [1, 3] {
                    let v: Array3<f64> = probes(p, b, d, 0xfeed_beef_1234, dist, threads);
                    let v32: Array3<f32> = probes(p, b, d, 0xfeed_beef_1234, dist, threads);
                    for ((pi, bi, col), &x) in v.indexed_iter() {
                        assert_eq!(x, spec_value(0xfeed_beef_1234, b, d, pi, bi, col, g));
                        assert_eq!(x, v32[[pi, bi, col]] as f64);
                    }
                }
            }
        }
    }

    #[test]
    fn rademacher_probes_are_balanced_signs() {
        let v: Array3<f32> = probes(4, 50, 1000, 7, Dist::Rademacher, 2);
        assert!(v.iter().all(|&x| x == 1.0 || x == -1.0));
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.01, "{mean}");
    }

    #[test]
    fn dot_and_backward_regenerate_the_probes() {
        for &(p, b, d) in &[(1, 1, 1), (2, 3, 7), (2, 2, 130), (1, 3, 513)] {
            for dist in [Dist::Rademacher, Dist::Gaussian] {
                let v: Array3<f64> = probes(p, b, d, 99, dist, 1);
                let u = Array3::from_shape_fn((p, b, d), |(i, j, k)| {
                    ((i * 31 + j * 7 + k) % 13) as f64 - 6.0
                });
                let want = (&v * &u).sum_axis(ndarray::Axis(2));
                for threads in [1, 4] {
                    let got = dot(u.view(), 99, dist, threads);
                    for (a, w) in got.iter().zip(&want) {
                        assert!((a - w).abs() <= 1e-12 * (1.0 + w.abs()), "{a} vs {w}");
                    }
                    let go = Array2::from_shape_fn((p, b), |(i, j)| (i + 2 * j) as f64 - 1.5);
                    let du = dot_backward(go.view(), 99, dist, d, threads);
                    let want_du = &v * &go.view().insert_axis(ndarray::Axis(2));
                    assert_eq!(du, want_du);
                }
            }
        }
    }

    #[test]
    fn dist_ids() {
        assert_eq!(Dist::from_id(0).unwrap(), Dist::Rademacher);
        assert_eq!(Dist::from_id(1).unwrap(), Dist::Gaussian);
        assert!(Dist::from_id(2)
            .unwrap_err()
            .to_string()
            .starts_with("dist:"));
    }
}
