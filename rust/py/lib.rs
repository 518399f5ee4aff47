//! `vsm._core`: thin PyO3 glue over `vsm-core`. Each function borrows NumPy arrays zero-copy
//! (read-only views, any strides), releases the GIL around the numerical work, and turns engine
//! errors into Python `ValueError`s (wrong dtypes are `TypeError`s raised by the conversion).
//! No numerics live here.

use ndarray::{Array1, Array2, Dimension, Ix1, Ix2, Ix3, Ix4};
use numpy::{
    Element, IntoPyArray, PyArray1, PyArray2, PyArrayDescrMethods, PyReadonlyArray,
    PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::IntoPyObjectExt;
use vsm_core::fused::hutchinson::{self, Dist};
use vsm_core::fused::{gaussian_terms, posterior_fd, Real};
use vsm_core::grid::{self, Grid};
use vsm_core::importance::Accumulator;
use vsm_core::toy_models::Model;

fn to_py_err(e: vsm_core::Error) -> PyErr {
    PyValueError::new_err(e.to_string())
}

type Arr1<'py> = Bound<'py, PyArray1<f64>>;
type Arr2<'py> = Bound<'py, PyArray2<f64>>;

/// An engine result (an array, a tuple of arrays, a grid summary) moved into NumPy arrays (no
/// copy), as the Python object (an array or a tuple) a function returns.
trait IntoPyOut {
    fn into_py_out(self, py: Python<'_>) -> PyResult<Bound<'_, PyAny>>;
}

impl<T: Element, D: Dimension> IntoPyOut for ndarray::Array<T, D> {
    fn into_py_out(self, py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        Ok(self.into_pyarray(py).into_any())
    }
}

impl<A: IntoPyOut, B: IntoPyOut> IntoPyOut for (A, B) {
    fn into_py_out(self, py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        (self.0.into_py_out(py)?, self.1.into_py_out(py)?).into_bound_py_any(py)
    }
}

impl<A: IntoPyOut, B: IntoPyOut, C: IntoPyOut, D: IntoPyOut> IntoPyOut for (A, B, C, D) {
    fn into_py_out(self, py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        let (a, b, c, d) = self;
        let (a, b) = (a.into_py_out(py)?, b.into_py_out(py)?);
        let (c, d) = (c.into_py_out(py)?, d.into_py_out(py)?);
        (a, b, c, d).into_bound_py_any(py)
    }
}

/// Runs `kernel` with the GIL released; its result as NumPy arrays, its error as a `ValueError`.
fn detached<'py, R: IntoPyOut + Send>(
    py: Python<'py>,
    kernel: impl FnOnce() -> vsm_core::Result<R> + Send,
) -> PyResult<Bound<'py, PyAny>> {
    py.detach(kernel).map_err(to_py_err)?.into_py_out(py)
}

/// (log_z, mean, cov, density) of a grid posterior summary.
impl IntoPyOut for grid::Summary {
    fn into_py_out(self, py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        (self.log_z, self.mean, self.cov, self.density).into_py_out(py)
    }
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

type F64Arr<'py, D> = PyReadonlyArray<'py, f64, D>;
type Axes<'py> = Vec<PyReadonlyArray1<'py, f64>>;

/// Defines the `#[pyfunction]` of a grid function, signature `(log_joint, axes, args…)`:
/// `$call` runs with the GIL released, `$lj` the (B, G) view of `log_joint`, `$grid` the grid of
/// `axes` and each array argument bound to its own name as a view.
macro_rules! grid_pyfunction {
    (
        $(#[$doc:meta])*
        fn $name:ident<$lt:lifetime>($($arg:ident: $ty:ty),*) => |$lj:ident, $grid:ident| $call:expr
    ) => {
        $(#[$doc])*
        #[pyfunction]
        fn $name<$lt>(
            py: Python<$lt>,
            log_joint: F64Arr<$lt, Ix2>,
            axes: Axes<$lt>,
            $($arg: $ty,)*
        ) -> PyResult<Bound<$lt, PyAny>> {
            let grid = grid_from(axes)?;
            let ($lj, $grid) = (log_joint.as_array(), &grid);
            $(let $arg = $arg.as_array();)*
            detached(py, || $call)
        }
    };
}

grid_pyfunction! {
    /// grid_summary(log_joint, axes) -> (log_z (B,), mean (B, L), cov (B, L, L), density (B, G))
    fn grid_summary<'py>() => |lj, grid| grid::summarise(lj, grid)
}

grid_pyfunction! {
    /// grid_fd_scores(log_joint, axes) -> (B, G, L) second-order finite-difference gradients
    fn grid_fd_scores<'py>() => |lj, grid| grid::fd_scores(lj, grid)
}

grid_pyfunction! {
    /// grid_divergences(log_joint, axes, q_weights (B,C), q_means (B,C,L), q_covs (B,C,L,L)) -> (kl, fd)
    fn grid_divergences<'py>(
        q_weights: F64Arr<'py, Ix2>,
        q_means: F64Arr<'py, Ix3>,
        q_covs: F64Arr<'py, Ix4>
    ) => |lj, grid| grid::divergences(lj, grid, q_weights, q_means, q_covs)
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

/// Defines the `#[pyfunction]` of a toy-model function, signature
/// `(model, args…, sigma=None, alpha=None, w=None, b=None)`: `$body` runs with `$m` the model
/// built from those ([`model_from`]) and `$py` the GIL token.
macro_rules! toy_pyfunction {
    (
        $(#[$doc:meta])*
        fn $name:ident<$lt:lifetime>($($arg:ident: $ty:ty),+) => |$py:ident, $m:ident| $body:expr
    ) => {
        $(#[$doc])*
        #[pyfunction]
        #[pyo3(signature = (model, $($arg,)+ sigma=None, alpha=None, w=None, b=None))]
        #[allow(clippy::too_many_arguments)]
        fn $name<$lt>(
            $py: Python<$lt>,
            model: &str,
            $($arg: $ty,)+
            sigma: Option<f64>,
            alpha: Option<f64>,
            w: Option<PyReadonlyArray2<$lt, f64>>,
            b: Option<PyReadonlyArray1<$lt, f64>>,
        ) -> PyResult<Bound<$lt, PyAny>> {
            let $m = model_from(model, sigma, alpha, w, b)?;
            $body
        }
    };
}

toy_pyfunction! {
    /// toy_posterior(model, x (B, D), axes, sigma=None, alpha=None, w=None, b=None)
    ///     -> (log_z, mean, cov, density)
    fn toy_posterior<'py>(x: F64Arr<'py, Ix2>, axes: Axes<'py>) => |py, m| {
        let grid = grid_from(axes)?;
        let x = x.as_array();
        detached(py, || m.posterior(x, &grid))
    }
}

toy_pyfunction! {
    /// toy_log_joint(model, x (B, D), z (P, L), ...) -> (log_joint (B, P), score (B, P, L))
    fn toy_log_joint<'py>(x: F64Arr<'py, Ix2>, z: F64Arr<'py, Ix2>) => |py, m| {
        let (x, z) = (x.as_array(), z.as_array());
        detached(py, || m.eval_points(x, z))
    }
}

toy_pyfunction! {
    /// toy_divergences(model, x (B, D), log_z (B,), q_weights, q_means, q_covs, ...) -> (kl, fd)
    fn toy_divergences<'py>(
        x: F64Arr<'py, Ix2>,
        log_z: F64Arr<'py, Ix1>,
        q_weights: F64Arr<'py, Ix2>,
        q_means: F64Arr<'py, Ix3>,
        q_covs: F64Arr<'py, Ix4>
    ) => |py, m| {
        let (x, lz) = (x.as_array(), log_z.as_array());
        let (qw, qm, qc) = (q_weights.as_array(), q_means.as_array(), q_covs.as_array());
        detached(py, || m.divergences(x, lz, qw, qm, qc))
    }
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
    ($first:expr, $name:expr, $T:ident => $body:expr) => {{
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

/// Defines the `#[pyfunction]` of a fused kernel, signature `(arrays…, scalars…, n_threads=1)`.
///
/// The float type `$T` is that of the first array; every array argument `name: IxN` is borrowed
/// zero-copy as an N-D array of `$T` (a `TypeError` naming it otherwise) and bound, as an ndarray
/// view, to its own name in `$call`, which runs with the GIL released (an engine error becomes a
/// `ValueError`). `{ $pre }` runs first, before any array is looked at.
macro_rules! fused_pyfunction {
    (
        $(#[$doc:meta])*
        fn $name:ident($first:ident: $fdim:ident $(, $arr:ident: $dim:ident)*
            $(; $($scalar:ident: $sty:ty),+)?)
        { $($pre:tt)* }
        => |$T:ident, $nt:ident| $call:expr
    ) => {
        $(#[$doc])*
        #[pyfunction]
        #[pyo3(signature = ($first, $($arr,)* $($($scalar,)+)? $nt = 1))]
        fn $name<'py>(
            $first: &Bound<'py, PyAny>,
            $($arr: &Bound<'py, PyAny>,)*
            $($($scalar: $sty,)+)?
            $nt: usize,
        ) -> PyResult<Bound<'py, PyAny>> {
            $($pre)*
            let py = $first.py();
            with_float_type!($first, stringify!($first), $T => {
                let $first = arr::<$T, $fdim>(stringify!($first), $first)?;
                $(let $arr = arr::<$T, $dim>(stringify!($arr), $arr)?;)*
                let ($first, $($arr,)*) = ($first.as_array(), $($arr.as_array(),)*);
                detached(py, || $call)
            })
        }
    };
}

fused_pyfunction! {
    /// posterior_fd_forward(z (N,B,L), mu (B,L), logvar (B,L), grad_loglik_z (N,B,L), n_threads=1)
    ///     -> PFD (N, B)
    fn posterior_fd_forward(z: Ix3, mu: Ix2, logvar: Ix2, grad_loglik_z: Ix3) {}
        => |T, n_threads| {
            let inputs = posterior_fd::Inputs::new(z, mu, logvar, grad_loglik_z)?;
            Ok(inputs.forward(n_threads))
        }
}

fused_pyfunction! {
    /// posterior_fd_backward(go (N,B), z, mu, logvar, grad_loglik_z, n_threads=1)
    ///     -> (dz (N,B,L), dmu (B,L), dlogvar (B,L), dgrad_loglik_z (N,B,L))
    fn posterior_fd_backward(go: Ix2, z: Ix3, mu: Ix2, logvar: Ix2, grad_loglik_z: Ix3) {}
        => |T, n_threads| {
            posterior_fd::Inputs::new(z, mu, logvar, grad_loglik_z)?.backward(go, n_threads)
        }
}

fused_pyfunction! {
    /// gaussian_terms_forward(x (B,D), x_mean (N,B,D), log_sigma2: float, n_threads=1)
    ///     -> (sq_mean (B,), mean_sq (B,)); log_sigma2 is rounded to the arrays' dtype.
    fn gaussian_terms_forward(x: Ix2, x_mean: Ix3; log_sigma2: f64) {}
        => |T, n_threads| {
            let inputs = gaussian_terms::Inputs::new(x, x_mean, T::from_f64(log_sigma2))?;
            Ok(inputs.forward(n_threads))
        }
}

fused_pyfunction! {
    /// gaussian_terms_backward(grad_sq_mean (B,), grad_mean_sq (B,), x (B,D), x_mean (N,B,D),
    ///     log_sigma2: float, n_threads=1) -> (dx (B,D), dx_mean (N,B,D))
    fn gaussian_terms_backward(grad_sq_mean: Ix1, grad_mean_sq: Ix1, x: Ix2, x_mean: Ix3;
        log_sigma2: f64) {}
        => |T, n_threads| {
            let inputs = gaussian_terms::Inputs::new(x, x_mean, T::from_f64(log_sigma2))?;
            inputs.backward(grad_sq_mean, grad_mean_sq, n_threads)
        }
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
        "float32" => detached(py, || {
            Ok(hutchinson::probes::<f32>(p, b, d, seed, dist, n_threads))
        }),
        "float64" => detached(py, || {
            Ok(hutchinson::probes::<f64>(p, b, d, seed, dist, n_threads))
        }),
        other => Err(PyValueError::new_err(format!(
            "dtype: expected \"float32\" or \"float64\", got {other:?}"
        ))),
    }
}

fused_pyfunction! {
    /// hutchinson_dot(u (P, B, D), seed, dist, n_threads=1) -> Σ_d v·u, (P, B), v regenerated
    fn hutchinson_dot(u: Ix3; seed: u64, dist: i64) {
        let dist = Dist::from_id(dist).map_err(to_py_err)?;
    } => |T, n_threads| Ok(hutchinson::dot(u, seed, dist, n_threads))
}

fused_pyfunction! {
    /// hutchinson_dot_backward(go (P, B), seed, dist, d, n_threads=1) -> go·v, (P, B, d)
    fn hutchinson_dot_backward(go: Ix2; seed: u64, dist: i64, d: usize) {
        let dist = Dist::from_id(dist).map_err(to_py_err)?;
    } => |T, n_threads| Ok(hutchinson::dot_backward(go, seed, dist, d, n_threads))
}

/// The extension module `vsm._core`: every function above and the IS accumulator class.
#[pymodule]
mod _core {
    #[pymodule_export]
    use super::{
        gaussian_terms_backward, gaussian_terms_forward, grid_divergences, grid_fd_scores,
        grid_summary, hutchinson_dot, hutchinson_dot_backward, hutchinson_probes, is_log_evidence,
        posterior_fd_backward, posterior_fd_forward, toy_divergences, toy_log_joint, toy_posterior,
        PyISAccumulator,
    };

    use pyo3::prelude::*;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))
    }
}
