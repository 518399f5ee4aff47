//! `vsm._core`: thin PyO3 glue over `vsm-core`. Each function borrows NumPy arrays zero-copy
//! (read-only views, any strides), releases the GIL around the numerical work, and turns engine
//! errors into Python `ValueError`s (wrong dtypes are `TypeError`s raised by the conversion).
//! No numerics live here.

use ndarray::{Array1, Array2};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArray3, PyReadonlyArray1, PyReadonlyArray2,
    PyReadonlyArray3, PyReadonlyArray4, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use vsm_core::grid::{self, Grid};
use vsm_core::importance::Accumulator;
use vsm_core::toy_models::Model;

fn to_py_err(e: vsm_core::Error) -> PyErr {
    PyValueError::new_err(e.to_string())
}

type Arr1<'py> = Bound<'py, PyArray1<f64>>;
type Arr2<'py> = Bound<'py, PyArray2<f64>>;
type Arr3<'py> = Bound<'py, PyArray3<f64>>;

/// (log_z, mean, cov, density) of a grid posterior summary, moved into NumPy arrays.
fn summary_to_py(py: Python<'_>, s: grid::Summary) -> (Arr1<'_>, Arr2<'_>, Arr3<'_>, Arr2<'_>) {
    (
        s.log_z.into_pyarray(py),
        s.mean.into_pyarray(py),
        s.cov.into_pyarray(py),
        s.density.into_pyarray(py),
    )
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
) -> PyResult<(Arr1<'py>, Arr1<'py>)> {
    let view = log_w.as_array();
    let (lp, ess) = py
        .detach(|| vsm_core::importance::log_mean_exp_ess(view))
        .map_err(to_py_err)?;
    Ok((lp.into_pyarray(py), ess.into_pyarray(py)))
}

fn grid_from(axes: Vec<PyReadonlyArray1<'_, f64>>) -> PyResult<Grid> {
    Grid::new(axes.iter().map(|a| a.as_array().to_vec()).collect()).map_err(to_py_err)
}

/// grid_summary(log_joint, axes) -> (log_z (B,), mean (B, L), cov (B, L, L), density (B, G))
#[pyfunction]
fn grid_summary<'py>(
    py: Python<'py>,
    log_joint: PyReadonlyArray2<'py, f64>,
    axes: Vec<PyReadonlyArray1<'py, f64>>,
) -> PyResult<(Arr1<'py>, Arr2<'py>, Arr3<'py>, Arr2<'py>)> {
    let grid = grid_from(axes)?;
    let lj = log_joint.as_array();
    let s = py
        .detach(|| grid::summarise(lj, &grid))
        .map_err(to_py_err)?;
    Ok(summary_to_py(py, s))
}

/// grid_fd_scores(log_joint, axes) -> (B, G, L) second-order finite-difference gradients
#[pyfunction]
fn grid_fd_scores<'py>(
    py: Python<'py>,
    log_joint: PyReadonlyArray2<'py, f64>,
    axes: Vec<PyReadonlyArray1<'py, f64>>,
) -> PyResult<Arr3<'py>> {
    let grid = grid_from(axes)?;
    let lj = log_joint.as_array();
    let s = py
        .detach(|| grid::fd_scores(lj, &grid))
        .map_err(to_py_err)?;
    Ok(s.into_pyarray(py))
}

/// grid_divergences(log_joint, axes, q_weights (B,C), q_means (B,C,L), q_covs (B,C,L,L)) -> (kl, fd)
#[pyfunction]
fn grid_divergences<'py>(
    py: Python<'py>,
    log_joint: PyReadonlyArray2<'py, f64>,
    axes: Vec<PyReadonlyArray1<'py, f64>>,
    q_weights: PyReadonlyArray2<'py, f64>,
    q_means: PyReadonlyArray3<'py, f64>,
    q_covs: PyReadonlyArray4<'py, f64>,
) -> PyResult<(Arr1<'py>, Arr1<'py>)> {
    let grid = grid_from(axes)?;
    let (lj, w, m, c) = (
        log_joint.as_array(),
        q_weights.as_array(),
        q_means.as_array(),
        q_covs.as_array(),
    );
    let (kl, fd) = py
        .detach(|| grid::divergences(lj, &grid, w, m, c))
        .map_err(to_py_err)?;
    Ok((kl.into_pyarray(py), fd.into_pyarray(py)))
}

fn model_from(
    name: &str,
    sigma: Option<f64>,
    alpha: Option<f64>,
    w: Option<PyReadonlyArray2<'_, f64>>,
    b: Option<PyReadonlyArray1<'_, f64>>,
) -> PyResult<Model> {
    let w: Option<Array2<f64>> = w.map(|a| a.as_array().to_owned());
    let b: Option<Array1<f64>> = b.map(|a| a.as_array().to_owned());
    Model::from_name(name, sigma, alpha, w, b).map_err(to_py_err)
}

/// toy_posterior(model, x (B, D), axes, sigma=None, alpha=None, w=None, b=None)
///     -> (log_z, mean, cov, density)
#[pyfunction]
#[pyo3(signature = (model, x, axes, sigma=None, alpha=None, w=None, b=None))]
#[allow(clippy::too_many_arguments)]
fn toy_posterior<'py>(
    py: Python<'py>,
    model: &str,
    x: PyReadonlyArray2<'py, f64>,
    axes: Vec<PyReadonlyArray1<'py, f64>>,
    sigma: Option<f64>,
    alpha: Option<f64>,
    w: Option<PyReadonlyArray2<'py, f64>>,
    b: Option<PyReadonlyArray1<'py, f64>>,
) -> PyResult<(Arr1<'py>, Arr2<'py>, Arr3<'py>, Arr2<'py>)> {
    let m = model_from(model, sigma, alpha, w, b)?;
    let grid = grid_from(axes)?;
    let xv = x.as_array();
    let s = py.detach(|| m.posterior(xv, &grid)).map_err(to_py_err)?;
    Ok(summary_to_py(py, s))
}

/// toy_log_joint(model, x (B, D), z (P, L), ...) -> (log_joint (B, P), score (B, P, L))
#[pyfunction]
#[pyo3(signature = (model, x, z, sigma=None, alpha=None, w=None, b=None))]
#[allow(clippy::too_many_arguments)]
fn toy_log_joint<'py>(
    py: Python<'py>,
    model: &str,
    x: PyReadonlyArray2<'py, f64>,
    z: PyReadonlyArray2<'py, f64>,
    sigma: Option<f64>,
    alpha: Option<f64>,
    w: Option<PyReadonlyArray2<'py, f64>>,
    b: Option<PyReadonlyArray1<'py, f64>>,
) -> PyResult<(Arr2<'py>, Arr3<'py>)> {
    let m = model_from(model, sigma, alpha, w, b)?;
    let (xv, zv) = (x.as_array(), z.as_array());
    let (lj, sc) = py.detach(|| m.eval_points(xv, zv)).map_err(to_py_err)?;
    Ok((lj.into_pyarray(py), sc.into_pyarray(py)))
}

/// toy_divergences(model, x (B, D), log_z (B,), q_weights, q_means, q_covs, ...) -> (kl, fd)
#[pyfunction]
#[pyo3(signature = (model, x, log_z, q_weights, q_means, q_covs, sigma=None, alpha=None, w=None, b=None))]
#[allow(clippy::too_many_arguments)]
fn toy_divergences<'py>(
    py: Python<'py>,
    model: &str,
    x: PyReadonlyArray2<'py, f64>,
    log_z: PyReadonlyArray1<'py, f64>,
    q_weights: PyReadonlyArray2<'py, f64>,
    q_means: PyReadonlyArray3<'py, f64>,
    q_covs: PyReadonlyArray4<'py, f64>,
    sigma: Option<f64>,
    alpha: Option<f64>,
    w: Option<PyReadonlyArray2<'py, f64>>,
    b: Option<PyReadonlyArray1<'py, f64>>,
) -> PyResult<(Arr1<'py>, Arr1<'py>)> {
    let m = model_from(model, sigma, alpha, w, b)?;
    let (xv, lz) = (x.as_array(), log_z.as_array());
    let (qw, qm, qc) = (q_weights.as_array(), q_means.as_array(), q_covs.as_array());
    let (kl, fd) = py
        .detach(|| m.divergences(xv, lz, qw, qm, qc))
        .map_err(to_py_err)?;
    Ok((kl.into_pyarray(py), fd.into_pyarray(py)))
}

/// ISAccumulator(x (B, D) float64, log_sigma2: float): streaming importance-sampled evaluation.
#[pyclass(name = "ISAccumulator", module = "vsm._core")]
struct PyISAccumulator {
    inner: Accumulator,
}

#[pymethods]
impl PyISAccumulator {
    #[new]
    fn new(x: PyReadonlyArray2<'_, f64>, log_sigma2: f64) -> PyResult<Self> {
        Ok(PyISAccumulator {
            inner: Accumulator::new(x.as_array(), log_sigma2).map_err(to_py_err)?,
        })
    }

    /// add(x_mean (B, Kc, D) float32|float64, log_prior (B, Kc) float64, log_proposal (B, Kc) float64)
    fn add(
        &mut self,
        py: Python<'_>,
        x_mean: &Bound<'_, PyAny>,
        log_prior: PyReadonlyArray2<'_, f64>,
        log_proposal: PyReadonlyArray2<'_, f64>,
    ) -> PyResult<()> {
        let (lp, lq) = (log_prior.as_array(), log_proposal.as_array());
        let inner = &mut self.inner;
        if let Ok(a) = x_mean.extract::<PyReadonlyArray3<'_, f32>>() {
            let v = a.as_array();
            py.detach(|| inner.add(v, lp, lq)).map_err(to_py_err)
        } else if let Ok(a) = x_mean.extract::<PyReadonlyArray3<'_, f64>>() {
            let v = a.as_array();
            py.detach(|| inner.add(v, lp, lq)).map_err(to_py_err)
        } else {
            let what = match x_mean.cast::<numpy::PyUntypedArray>() {
                Ok(a) => format!("a {}-D array of dtype {}", a.ndim(), a.dtype()),
                Err(_) => x_mean
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
            };
            Err(PyTypeError::new_err(format!(
                "x_mean: expected a 3-D float32 or float64 NumPy array, got {what}"
            )))
        }
    }

    /// result() -> (log_p (B,), ess (B,), score (B, D), sm_loss (B,))
    fn result<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Arr1<'py>, Arr1<'py>, Arr2<'py>, Arr1<'py>)> {
        let inner = &self.inner;
        let r = py.detach(|| inner.result()).map_err(to_py_err)?;
        Ok((
            r.log_p.into_pyarray(py),
            r.ess.into_pyarray(py),
            r.score.into_pyarray(py),
            r.sm_loss.into_pyarray(py),
        ))
    }

    /// Samples per datum added so far.
    #[getter]
    fn n_samples(&self) -> u64 {
        self.inner.n_samples()
    }

    /// (B, D)
    #[getter]
    fn shape(&self) -> (usize, usize) {
        (self.inner.batch(), self.inner.data_dim())
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(is_log_evidence, m)?)?;
    m.add_function(wrap_pyfunction!(grid_summary, m)?)?;
    m.add_function(wrap_pyfunction!(grid_fd_scores, m)?)?;
    m.add_function(wrap_pyfunction!(grid_divergences, m)?)?;
    m.add_function(wrap_pyfunction!(toy_posterior, m)?)?;
    m.add_function(wrap_pyfunction!(toy_log_joint, m)?)?;
    m.add_function(wrap_pyfunction!(toy_divergences, m)?)?;
    m.add_class::<PyISAccumulator>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
