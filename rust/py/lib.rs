//! `vsm._core`: thin PyO3 glue over `vsm-core`. Each function borrows NumPy arrays zero-copy
//! (read-only views, any strides), releases the GIL around the numerical work, and turns engine
//! errors into Python `ValueError`s (wrong dtypes are `TypeError`s raised by the conversion).
//! No numerics live here.

use ndarray::{Array1, Array2, Dimension, Ix1, Ix2, Ix3};
use numpy::{
    Element, IntoPyArray, PyArray1, PyArray2, PyArray3, PyArrayDescrMethods, PyReadonlyArray,
    PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3, PyReadonlyArray4, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use vsm_core::fused::{self, hutchinson::Dist, Real};
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
            Err(PyTypeError::new_err(format!(
                "x_mean: expected a 3-D float32 or float64 NumPy array, got {}",
                describe(x_mean)
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

// ---------------------------------------------------------------------------------------------
// Fused-op kernels (vsm_core::fused): float32 or float64 arrays, all of one dtype (that of the
// first array argument); new arrays out. Called by python/vsm/ops/_rust.py.

/// How a Python object that is not the expected array reads in a message.
fn describe(obj: &Bound<'_, PyAny>) -> String {
    match obj.cast::<numpy::PyUntypedArray>() {
        Ok(a) => format!("a {}-D array of dtype {}", a.ndim(), a.dtype()),
        Err(_) => obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default(),
    }
}

/// `obj` as a read-only `ndim`-D array of `T` (zero-copy), or a `TypeError` naming `name`.
fn arr<'py, T: Real + Element, D: Dimension>(
    name: &str,
    obj: &Bound<'py, PyAny>,
) -> PyResult<PyReadonlyArray<'py, T, D>> {
    obj.extract::<PyReadonlyArray<'py, T, D>>().map_err(|_| {
        let nd = D::NDIM.map(|n| format!("{n}-D ")).unwrap_or_default();
        PyTypeError::new_err(format!(
            "{name}: expected a {nd}{} NumPy array, got {}",
            T::NAME,
            describe(obj)
        ))
    })
}

/// Runs `$body` with `$T` bound to f32 or f64, the dtype of the array `$first` (named `$name`).
macro_rules! with_float_type {
    ($first:expr, $name:literal, $T:ident => $body:expr) => {{
        let first: &Bound<'_, PyAny> = $first;
        let py = first.py();
        match first.cast::<numpy::PyUntypedArray>() {
            Ok(a) if a.dtype().is_equiv_to(&numpy::dtype::<f32>(py)) => {
                type $T = f32;
                $body
            }
            Ok(a) if a.dtype().is_equiv_to(&numpy::dtype::<f64>(py)) => {
                type $T = f64;
                $body
            }
            _ => Err(PyTypeError::new_err(format!(
                "{}: expected a float32 or float64 NumPy array, got {}",
                $name,
                describe(first)
            ))),
        }
    }};
}

fn pfd_forward<'py, T: Real + Element>(
    py: Python<'py>,
    z: &Bound<'py, PyAny>,
    mu: &Bound<'py, PyAny>,
    logvar: &Bound<'py, PyAny>,
    g: &Bound<'py, PyAny>,
    n_threads: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let (z, mu) = (arr::<T, Ix3>("z", z)?, arr::<T, Ix2>("mu", mu)?);
    let (lv, g) = (
        arr::<T, Ix2>("logvar", logvar)?,
        arr::<T, Ix3>("grad_loglik_z", g)?,
    );
    let (z, mu, lv, g) = (z.as_array(), mu.as_array(), lv.as_array(), g.as_array());
    let out = py
        .detach(|| fused::posterior_fd::forward(z, mu, lv, g, n_threads))
        .map_err(to_py_err)?;
    Ok(out.into_pyarray(py).into_any())
}

/// posterior_fd_forward(z (N,B,L), mu (B,L), logvar (B,L), grad_loglik_z (N,B,L), n_threads=1)
///     -> PFD (N, B)
#[pyfunction]
#[pyo3(signature = (z, mu, logvar, grad_loglik_z, n_threads=1))]
fn posterior_fd_forward<'py>(
    z: &Bound<'py, PyAny>,
    mu: &Bound<'py, PyAny>,
    logvar: &Bound<'py, PyAny>,
    grad_loglik_z: &Bound<'py, PyAny>,
    n_threads: usize,
) -> PyResult<Bound<'py, PyAny>> {
    with_float_type!(z, "z", T => pfd_forward::<T>(z.py(), z, mu, logvar, grad_loglik_z, n_threads))
}

type Four<'py> = (
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
    Bound<'py, PyAny>,
);

fn pfd_backward<'py, T: Real + Element>(
    py: Python<'py>,
    go: &Bound<'py, PyAny>,
    args: [&Bound<'py, PyAny>; 4],
    n_threads: usize,
) -> PyResult<Four<'py>> {
    let go = arr::<T, Ix2>("go", go)?;
    let (z, mu) = (arr::<T, Ix3>("z", args[0])?, arr::<T, Ix2>("mu", args[1])?);
    let (lv, g) = (
        arr::<T, Ix2>("logvar", args[2])?,
        arr::<T, Ix3>("grad_loglik_z", args[3])?,
    );
    let (go, z, mu, lv, g) = (
        go.as_array(),
        z.as_array(),
        mu.as_array(),
        lv.as_array(),
        g.as_array(),
    );
    let (dz, dmu, dlv, dg) = py
        .detach(|| fused::posterior_fd::backward(go, z, mu, lv, g, n_threads))
        .map_err(to_py_err)?;
    Ok((
        dz.into_pyarray(py).into_any(),
        dmu.into_pyarray(py).into_any(),
        dlv.into_pyarray(py).into_any(),
        dg.into_pyarray(py).into_any(),
    ))
}

/// posterior_fd_backward(go (N,B), z, mu, logvar, grad_loglik_z, n_threads=1)
///     -> (dz (N,B,L), dmu (B,L), dlogvar (B,L), dgrad_loglik_z (N,B,L))
#[pyfunction]
#[pyo3(signature = (go, z, mu, logvar, grad_loglik_z, n_threads=1))]
fn posterior_fd_backward<'py>(
    go: &Bound<'py, PyAny>,
    z: &Bound<'py, PyAny>,
    mu: &Bound<'py, PyAny>,
    logvar: &Bound<'py, PyAny>,
    grad_loglik_z: &Bound<'py, PyAny>,
    n_threads: usize,
) -> PyResult<Four<'py>> {
    let args = [z, mu, logvar, grad_loglik_z];
    with_float_type!(go, "go", T => pfd_backward::<T>(go.py(), go, args, n_threads))
}

fn gt_forward<'py, T: Real + Element>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    x_mean: &Bound<'py, PyAny>,
    log_sigma2: f64,
    n_threads: usize,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let (x, xm) = (arr::<T, Ix2>("x", x)?, arr::<T, Ix3>("x_mean", x_mean)?);
    let (x, xm, ls) = (x.as_array(), xm.as_array(), T::from_f64(log_sigma2));
    let (sq, msq) = py
        .detach(|| fused::gaussian_terms::forward(x, xm, ls, n_threads))
        .map_err(to_py_err)?;
    Ok((
        sq.into_pyarray(py).into_any(),
        msq.into_pyarray(py).into_any(),
    ))
}

/// gaussian_terms_forward(x (B,D), x_mean (N,B,D), log_sigma2: float, n_threads=1)
///     -> (sq_mean (B,), mean_sq (B,)); log_sigma2 is rounded to the arrays' dtype.
#[pyfunction]
#[pyo3(signature = (x, x_mean, log_sigma2, n_threads=1))]
fn gaussian_terms_forward<'py>(
    x: &Bound<'py, PyAny>,
    x_mean: &Bound<'py, PyAny>,
    log_sigma2: f64,
    n_threads: usize,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    with_float_type!(x, "x", T => gt_forward::<T>(x.py(), x, x_mean, log_sigma2, n_threads))
}

fn gt_backward<'py, T: Real + Element>(
    py: Python<'py>,
    args: [&Bound<'py, PyAny>; 4],
    log_sigma2: f64,
    n_threads: usize,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let ga = arr::<T, Ix1>("grad_sq_mean", args[0])?;
    let gc = arr::<T, Ix1>("grad_mean_sq", args[1])?;
    let (x, xm) = (
        arr::<T, Ix2>("x", args[2])?,
        arr::<T, Ix3>("x_mean", args[3])?,
    );
    let (ga, gc, x, xm) = (ga.as_array(), gc.as_array(), x.as_array(), xm.as_array());
    let ls = T::from_f64(log_sigma2);
    let (dx, dxm) = py
        .detach(|| fused::gaussian_terms::backward(ga, gc, x, xm, ls, n_threads))
        .map_err(to_py_err)?;
    Ok((
        dx.into_pyarray(py).into_any(),
        dxm.into_pyarray(py).into_any(),
    ))
}

/// gaussian_terms_backward(grad_sq_mean (B,), grad_mean_sq (B,), x (B,D), x_mean (N,B,D),
///     log_sigma2: float, n_threads=1) -> (dx (B,D), dx_mean (N,B,D))
#[pyfunction]
#[pyo3(signature = (grad_sq_mean, grad_mean_sq, x, x_mean, log_sigma2, n_threads=1))]
fn gaussian_terms_backward<'py>(
    grad_sq_mean: &Bound<'py, PyAny>,
    grad_mean_sq: &Bound<'py, PyAny>,
    x: &Bound<'py, PyAny>,
    x_mean: &Bound<'py, PyAny>,
    log_sigma2: f64,
    n_threads: usize,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let args = [grad_sq_mean, grad_mean_sq, x, x_mean];
    with_float_type!(grad_sq_mean, "grad_sq_mean", T => gt_backward::<T>(grad_sq_mean.py(), args, log_sigma2, n_threads))
}

/// hutchinson_probes(shape (P, B, D), seed, dist, dtype="float32"|"float64", n_threads=1)
///     -> probes (P, B, D) of probe stream v2 (dist: 0 Rademacher, 1 Gaussian)
#[pyfunction]
#[pyo3(signature = (shape, seed, dist, dtype, n_threads=1))]
fn hutchinson_probes<'py>(
    py: Python<'py>,
    shape: (usize, usize, usize),
    seed: u64,
    dist: i64,
    dtype: &str,
    n_threads: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let dist = Dist::from_id(dist).map_err(to_py_err)?;
    let (p, b, d) = shape;
    match dtype {
        "float32" => Ok(py
            .detach(|| fused::hutchinson::probes::<f32>(p, b, d, seed, dist, n_threads))
            .into_pyarray(py)
            .into_any()),
        "float64" => Ok(py
            .detach(|| fused::hutchinson::probes::<f64>(p, b, d, seed, dist, n_threads))
            .into_pyarray(py)
            .into_any()),
        other => Err(PyValueError::new_err(format!(
            "dtype: expected \"float32\" or \"float64\", got {other:?}"
        ))),
    }
}

fn hutch_dot<'py, T: Real + Element>(
    py: Python<'py>,
    u: &Bound<'py, PyAny>,
    seed: u64,
    dist: Dist,
    n_threads: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let u = arr::<T, Ix3>("u", u)?;
    let u = u.as_array();
    let out = py.detach(|| fused::hutchinson::dot(u, seed, dist, n_threads));
    Ok(out.into_pyarray(py).into_any())
}

/// hutchinson_dot(u (P, B, D), seed, dist, n_threads=1) -> Σ_d v·u, (P, B), v regenerated
#[pyfunction]
#[pyo3(signature = (u, seed, dist, n_threads=1))]
fn hutchinson_dot<'py>(
    u: &Bound<'py, PyAny>,
    seed: u64,
    dist: i64,
    n_threads: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let dist = Dist::from_id(dist).map_err(to_py_err)?;
    with_float_type!(u, "u", T => hutch_dot::<T>(u.py(), u, seed, dist, n_threads))
}

fn hutch_dot_backward<'py, T: Real + Element>(
    py: Python<'py>,
    go: &Bound<'py, PyAny>,
    seed: u64,
    dist: Dist,
    d: usize,
    n_threads: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let go = arr::<T, Ix2>("go", go)?;
    let go = go.as_array();
    let out = py.detach(|| fused::hutchinson::dot_backward(go, seed, dist, d, n_threads));
    Ok(out.into_pyarray(py).into_any())
}

/// hutchinson_dot_backward(go (P, B), seed, dist, d, n_threads=1) -> go·v, (P, B, d)
#[pyfunction]
#[pyo3(signature = (go, seed, dist, d, n_threads=1))]
fn hutchinson_dot_backward<'py>(
    go: &Bound<'py, PyAny>,
    seed: u64,
    dist: i64,
    d: usize,
    n_threads: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let dist = Dist::from_id(dist).map_err(to_py_err)?;
    with_float_type!(go, "go", T => hutch_dot_backward::<T>(go.py(), go, seed, dist, d, n_threads))
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
    m.add_function(wrap_pyfunction!(posterior_fd_forward, m)?)?;
    m.add_function(wrap_pyfunction!(posterior_fd_backward, m)?)?;
    m.add_function(wrap_pyfunction!(gaussian_terms_forward, m)?)?;
    m.add_function(wrap_pyfunction!(gaussian_terms_backward, m)?)?;
    m.add_function(wrap_pyfunction!(hutchinson_probes, m)?)?;
    m.add_function(wrap_pyfunction!(hutchinson_dot, m)?)?;
    m.add_function(wrap_pyfunction!(hutchinson_dot_backward, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
