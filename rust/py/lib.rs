//! `vsm._core`: thin PyO3 glue over `vsm-core`. Each function borrows NumPy arrays zero-copy
//! (read-only views), releases the GIL around the numerical work, and turns engine errors into
//! Python `ValueError`s. No numerics live here.

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

fn to_py_err(e: vsm_core::Error) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// is_log_evidence(log_w) -> (log_p, ess)
///
/// log_w: (B, K) float64 log importance weights. Returns log_p (B,) = logsumexp_k log_w − log K
/// and ess (B,) = (Σw)²/Σw², both float64.
#[pyfunction]
#[pyo3(signature = (log_w))]
fn is_log_evidence<'py>(
    py: Python<'py>,
    log_w: PyReadonlyArray2<'py, f64>,
) -> PyResult<(Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>)> {
    let view = log_w.as_array();
    let (lp, ess) = py
        .detach(|| vsm_core::evidence::log_mean_exp_ess(view))
        .map_err(to_py_err)?;
    Ok((lp.into_pyarray(py), ess.into_pyarray(py)))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(is_log_evidence, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
