//! vsm-core: the pure-Rust CPU engine of vsm.
//!
//! Everything here is plain Rust over `ndarray` views (no Python); the PyO3 glue in `rust/py`
//! converts NumPy arrays, releases the GIL and maps [`Error`] to Python exceptions.
//!
//! Modules:
//! - [`importance`]: importance sampling — the log evidence and ESS of given log weights
//!   (log-mean-exp in float64), and the streaming evaluation (log evidence, ESS, marginal score,
//!   Hyvärinen loss) of a Gaussian VAE, chunk by chunk in O(B·D) memory.
//! - [`grid`]: grid quadrature of 1-D/2-D latent posteriors from a tabulated log-joint.
//! - [`toy_models`]: the built-in toy models ("sym", "soft", "relu", "bias", "linear").
//! - [`mixture`]: Gaussian-mixture q (density, score, quadrature nodes) for KL and FD.
//! - [`fused`]: CPU twins (f32/f64, forward and backward) of the fused Triton kernels: posterior
//!   FD, Gaussian terms, Hutchinson probes (Philox probe stream v2) and probe dot products.

// Index loops over tiny latent dimensions (L ≤ 2) read more clearly than iterator chains.
#![allow(clippy::needless_range_loop)]

pub mod fused;
pub mod grid;
pub mod importance;
pub mod mixture;
pub mod toy_models;

/// Errors raised by the engine; every one becomes a Python `ValueError` naming the argument.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum Error {
    /// An argument has an unusable shape or size.
    #[error("{arg}: {msg}")]
    Shape { arg: &'static str, msg: String },
    /// An argument holds values the computation cannot use (NaN, out of range, ...).
    #[error("{arg}: {msg}")]
    Value { arg: &'static str, msg: String },
}

/// Result type of the engine.
pub type Result<T> = std::result::Result<T, Error>;

/// `Err(Error::Value { arg, "must be finite" })` if any of `values` is NaN or ±∞.
pub(crate) fn ensure_finite<'a>(
    arg: &'static str,
    values: impl IntoIterator<Item = &'a f64>,
) -> Result<()> {
    if values.into_iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(Error::Value {
            arg,
            msg: "must be finite".into(),
        })
    }
}

/// Checks a (B, n) batch of rows: `Err(Error::Shape { arg, .. })` with "empty batch" if B = 0,
/// or with `mismatch(n)` if n ≠ `n_expected`.
pub(crate) fn ensure_rows(
    arg: &'static str,
    (b, n): (usize, usize),
    n_expected: usize,
    mismatch: impl FnOnce(usize) -> String,
) -> Result<()> {
    let msg = if b == 0 {
        "empty batch".into()
    } else if n != n_expected {
        mismatch(n)
    } else {
        return Ok(());
    };
    Err(Error::Shape { arg, msg })
}
