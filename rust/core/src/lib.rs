//! vsm-core: the pure-Rust CPU engine of vsm.
//!
//! Everything here is plain Rust over `ndarray` views (no Python); the PyO3 glue in `rust/py`
//! converts NumPy arrays, releases the GIL and maps [`Error`] to Python exceptions.
//!
//! Modules:
//! - [`evidence`]: importance-sampled log evidence (log-mean-exp in float64) and ESS.

pub mod evidence;

/// Errors raised by the engine; every one becomes a Python `ValueError` naming the argument.
#[derive(Debug, thiserror::Error, PartialEq)]
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
