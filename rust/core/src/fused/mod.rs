//! CPU twins of vsm's fused Triton kernels (`python/vsm/kernels/*.py`), float32 and float64.
//!
//! Each kernel computes what its Triton launcher computes, with the same formulas in the same
//! operation order and accumulation in the input dtype:
//! - [`posterior_fd`]: per-sample posterior Fisher divergence, forward and backward;
//! - [`gaussian_terms`]: per-datum ½‖f‖²-type terms of a Gaussian likelihood's x-score, forward
//!   and backward;
//! - [`hutchinson`]: Hutchinson probes from probe stream v2 (`PROBES.md`: Triton's
//!   Philox-4x32-10, see [`philox`]), the probe dot product and its backward.
//!
//! The forward and backward of [`posterior_fd`] and [`gaussian_terms`] are methods of the
//! module's `Inputs`, which checks the shapes of the inputs they share and makes them
//! standard-layout once.
//!
//! Reductions over the contiguous axis (L or D) accumulate in [`LANES`] independent partial sums
//! (the CPU analogue of a Triton tile's lanes; it lets LLVM vectorise without reassociating),
//! reduced at the end. Results therefore equal the Triton kernels' up to the rounding of the
//! final in-tile reduction order, which Triton leaves unspecified.
//!
//! Threads: every kernel takes `n_threads` and runs on at most that many threads, the calling
//! thread included (see [`threads`]): the Python layer passes `torch.get_num_threads()` so the
//! Rust kernels never use more cores than torch's intra-op pool.

pub mod gaussian_terms;
pub mod hutchinson;
pub mod philox;
pub mod posterior_fd;
pub mod threads;

use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

/// Number of independent partial sums of the lane-wise reductions.
pub const LANES: usize = 8;

/// The float types the fused kernels run in (f32, f64): just the operations they use.
pub trait Real:
    Copy
    + Send
    + Sync
    + Debug
    + PartialEq
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + 'static
{
    /// 0
    const ZERO: Self;
    /// 1
    const ONE: Self;
    /// 2
    const TWO: Self;
    /// e^self in this type.
    fn exp(self) -> Self;
    /// `n` rounded to this type (a sample count N, as Triton's `acc / N`).
    fn from_usize(n: usize) -> Self;
    /// Exact widening (f64) or identity (f32) of a float32 value (probes are drawn in f32).
    fn from_f32(x: f32) -> Self;
    /// `x` rounded to this type (exact for values that came from this type).
    fn from_f64(x: f64) -> Self;
    /// +1 if `bit` is 0, −1 if it is 1 (`bit` must be 0 or 1): the Rademacher sign 1 − 2·bit.
    fn rademacher(bit: u32) -> Self;
    /// Name of the type for messages ("float32", "float64").
    const NAME: &'static str;
}

/// `impl Real` for a float type `$t` whose bit pattern is the unsigned integer `$bits`.
macro_rules! impl_real {
    ($t:ident, $bits:ident, $name:literal) => {
        impl Real for $t {
            const ZERO: $t = 0.0;
            const ONE: $t = 1.0;
            const TWO: $t = 2.0;
            const NAME: &'static str = $name;
            #[inline(always)]
            fn exp(self) -> $t {
                $t::exp(self)
            }
            #[inline(always)]
            fn from_usize(n: usize) -> $t {
                n as $t
            }
            #[inline(always)]
            fn from_f32(x: f32) -> $t {
                x as $t
            }
            #[inline(always)]
            fn from_f64(x: f64) -> $t {
                x as $t
            }
            #[inline(always)]
            fn rademacher(bit: u32) -> $t {
                // 1.0 with the sign bit set to `bit`: exactly 1 − 2·bit, branch-free.
                $t::from_bits((1.0 as $t).to_bits() | (($bits::from(bit)) << ($bits::BITS - 1)))
            }
        }
    };
}

impl_real!(f32, u32, "float32");
impl_real!(f64, u64, "float64");

/// Sum of the lane partial sums (a fixed pairwise tree).
#[inline(always)]
pub(crate) fn hsum<T: Real>(acc: &[T; LANES]) -> T {
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// Σ_i a_i·b_i over equal-length slices, lane-wise (see the module docs).
#[inline(always)]
pub(crate) fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    debug_assert_eq!(a.len(), b.len());
    let (ac, at) = a.as_chunks::<LANES>();
    let (bc, bt) = b.as_chunks::<LANES>();
    let mut acc = [T::ZERO; LANES];
    for (x, y) in ac.iter().zip(bc) {
        for j in 0..LANES {
            acc[j] += x[j] * y[j];
        }
    }
    for (j, (x, y)) in at.iter().zip(bt).enumerate() {
        acc[j] += *x * *y;
    }
    hsum(&acc)
}

/// Σ_i a_i² lane-wise.
#[inline(always)]
pub(crate) fn sum_sq<T: Real>(a: &[T]) -> T {
    dot(a, a)
}

/// `Error::Shape` unless `shape == expected`.
pub(crate) fn check_shape(
    arg: &'static str,
    shape: &[usize],
    expected: &[usize],
    what: &str,
) -> crate::Result<()> {
    if shape == expected {
        Ok(())
    } else {
        Err(crate::Error::Shape {
            arg,
            msg: format!("expected shape {expected:?} ({what}), got {shape:?}"),
        })
    }
}

/// `a` itself if it is in standard layout, else a standard-layout copy.
pub(crate) fn standard<'a, T: Clone, D: ndarray::Dimension>(
    a: ndarray::ArrayView<'a, T, D>,
) -> ndarray::CowArray<'a, T, D> {
    if a.is_standard_layout() {
        a.into()
    } else {
        a.as_standard_layout().into_owned().into()
    }
}

/// The contiguous data of a standard-layout array (from `as_standard_layout` or [`standard`]).
pub(crate) fn slice<'a, T, D: ndarray::Dimension>(a: &'a ndarray::CowArray<'_, T, D>) -> &'a [T] {
    a.as_slice().expect("standard layout")
}

/// Splits `out` into consecutive pieces of `(bounds[k+1] − bounds[k])·row_len` values, one per
/// task, each paired with its first row index `bounds[k]`.
pub(crate) fn split_rows<'a, T>(
    out: &'a mut [T],
    row_len: usize,
    bounds: &[usize],
) -> Vec<(usize, &'a mut [T])> {
    let mut tasks = Vec::with_capacity(bounds.len().saturating_sub(1));
    let mut rest = out;
    for w in bounds.windows(2) {
        let (head, tail) = rest.split_at_mut((w[1] - w[0]) * row_len);
        tasks.push((w[0], head));
        rest = tail;
    }
    tasks
}

/// Splits `data` (rows of `rows_per_outer · row_len` values per outer index, e.g. the N sample
/// slabs of an (N, B, L) array) into per-task groups: task k gets, for every outer index, the
/// rows `bounds[k]..bounds[k+1]` of that slab. Lets tasks that own a range of b write their part
/// of every sample slab without unsafe code.
pub(crate) fn split_slabs<'a, T>(
    data: &'a mut [T],
    slab_len: usize,
    row_len: usize,
    bounds: &[usize],
) -> Vec<Vec<&'a mut [T]>> {
    let n_tasks = bounds.len() - 1;
    let mut out: Vec<Vec<&'a mut [T]>> = (0..n_tasks).map(|_| Vec::new()).collect();
    if slab_len == 0 {
        return out;
    }
    for slab in data.chunks_exact_mut(slab_len) {
        let mut rest = slab;
        for (k, task) in out.iter_mut().enumerate() {
            let (head, tail) = rest.split_at_mut((bounds[k + 1] - bounds[k]) * row_len);
            task.push(head);
            rest = tail;
        }
    }
    out
}

/// Deterministic pseudo-random test arrays in [-2, 2], shared by the kernels' tests.
#[cfg(test)]
pub(crate) fn pseudo(shape: &[usize], salt: u64) -> ndarray::ArrayD<f64> {
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|i| {
            let w = philox::randint4x(salt, i as u64)[0];
            (w as f64 / u32::MAX as f64) * 4.0 - 2.0
        })
        .collect();
    ndarray::Array::from_shape_vec(ndarray::IxDyn(shape), v).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rademacher_signs() {
        assert_eq!(f32::rademacher(0), 1.0);
        assert_eq!(f32::rademacher(1), -1.0);
        assert_eq!(f64::rademacher(0), 1.0);
        assert_eq!(f64::rademacher(1), -1.0);
    }

    #[test]
    fn lane_sums_match_plain_sums_on_exact_values() {
        for n in [0usize, 1, 7, 8, 9, 17, 64, 100] {
            let a: Vec<f64> = (0..n).map(|i| i as f64 - 3.0).collect();
            let b: Vec<f64> = (0..n).map(|i| (i % 5) as f64).collect();
            assert_eq!(
                dot(&a, &b),
                a.iter().zip(&b).map(|(x, y)| x * y).sum::<f64>()
            );
            assert_eq!(sum_sq(&a), a.iter().map(|x| x * x).sum::<f64>());
        }
    }

    #[test]
    fn split_slabs_partitions_every_slab() {
        // 3 slabs of 5 rows of 2 values, tasks own rows 0..2, 2..5
        let mut data: Vec<usize> = (0..30).collect();
        let parts = split_slabs(&mut data, 10, 2, &[0, 2, 5]);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].len(), 3);
        assert_eq!(parts[0][1], &[10, 11, 12, 13]);
        assert_eq!(parts[1][2], &[24, 25, 26, 27, 28, 29]);
    }
}
