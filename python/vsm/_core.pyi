"""Type stub of the PyO3 extension ``vsm._core`` (Rust engine; NumPy float64 in/out, GIL released).

Every function raises ``ValueError`` (shapes, values; message starts with the argument name) or
``TypeError`` (wrong dtype/type) and never panics into Python.
"""

from typing import TypeAlias, final

import numpy as np
import numpy.typing as npt

F64: TypeAlias = npt.NDArray[np.float64]
F32: TypeAlias = npt.NDArray[np.float32]

__all__ = [
    "ISAccumulator",
    "__version__",
    "gaussian_terms_backward",
    "gaussian_terms_forward",
    "grid_divergences",
    "grid_fd_scores",
    "grid_summary",
    "hutchinson_dot",
    "hutchinson_dot_backward",
    "hutchinson_probes",
    "is_log_evidence",
    "posterior_fd_backward",
    "posterior_fd_forward",
    "toy_divergences",
    "toy_log_joint",
    "toy_posterior",
]

__version__: str

def is_log_evidence(log_w: F64) -> tuple[F64, F64]:
    """log_w (B, K) → (log_p (B,) = logsumexp_k − log K, ess (B,) = (Σw)²/Σw²)."""

def grid_summary(log_joint: F64, axes: list[F64]) -> tuple[F64, F64, F64, F64]:
    """log_joint (B, G) on 1–2 uniform axes (ij order) → (log_z (B,), mean (B, L), cov (B, L, L),
    density (B, G))."""

def grid_fd_scores(log_joint: F64, axes: list[F64]) -> F64:
    """log_joint (B, G) → (B, G, L) second-order finite-difference gradients."""

def grid_divergences(
    log_joint: F64, axes: list[F64], q_weights: F64, q_means: F64, q_covs: F64
) -> tuple[F64, F64]:
    """q_weights (B, C), q_means (B, C, L), q_covs (B, C, L, L) → (KL(q‖p) (B,), FD (B,))."""

def toy_posterior(
    model: str,
    x: F64,
    axes: list[F64],
    sigma: float | None = None,
    alpha: float | None = None,
    w: F64 | None = None,
    b: F64 | None = None,
) -> tuple[F64, F64, F64, F64]:
    """Built-in model ("sym", "soft", "relu", "bias", "linear"), x (B, D) → as grid_summary."""

def toy_log_joint(
    model: str,
    x: F64,
    z: F64,
    sigma: float | None = None,
    alpha: float | None = None,
    w: F64 | None = None,
    b: F64 | None = None,
) -> tuple[F64, F64]:
    """x (B, D), z (P, L) → (log p(x, z) (B, P), ∇_z log p(x, z) (B, P, L))."""

def toy_divergences(
    model: str,
    x: F64,
    log_z: F64,
    q_weights: F64,
    q_means: F64,
    q_covs: F64,
    sigma: float | None = None,
    alpha: float | None = None,
    w: F64 | None = None,
    b: F64 | None = None,
) -> tuple[F64, F64]:
    """Analytic-score KL(q‖p(z|x)) and ½E_q‖∇log q − ∇log p‖² per observation, (B,) each."""

@final  # a PyO3 class without `subclass`: Python cannot subclass it
class ISAccumulator:
    """Streaming importance-sampled evaluation: x (B, D) float64, log σ²."""

    def __new__(cls, x: F64, log_sigma2: float) -> ISAccumulator: ...
    def add(self, x_mean: F32 | F64, log_prior: F64, log_proposal: F64) -> None:
        """x_mean (B, Kc, D); log_prior, log_proposal (B, Kc)."""
    def result(self) -> tuple[F64, F64, F64, F64]:
        """(log_p (B,), ess (B,), score (B, D), sm_loss (B,))."""
    @property
    def n_samples(self) -> int: ...
    @property
    def shape(self) -> tuple[int, int]: ...

# Fused-op kernels (vsm_core::fused; python/vsm/ops/_rust.py wraps them for torch tensors).
# Arrays: float32 or float64, all of the dtype of the first array argument (any strides;
# C-contiguous ones are read zero-copy); results are new arrays of that dtype. n_threads: at most
# that many threads, the calling thread included (serial for small work).
FArr: TypeAlias = F32 | F64

def posterior_fd_forward(
    z: FArr, mu: FArr, logvar: FArr, grad_loglik_z: FArr, n_threads: int = 1
) -> FArr:
    """z, grad_loglik_z (N, B, L); mu, logvar (B, L) → Σ_l (z − (z−mu)e^{−logvar} − g)² (N, B)."""

def posterior_fd_backward(
    go: FArr, z: FArr, mu: FArr, logvar: FArr, grad_loglik_z: FArr, n_threads: int = 1
) -> tuple[FArr, FArr, FArr, FArr]:
    """go (N, B) → (dz (N, B, L), dmu (B, L), dlogvar (B, L), dgrad_loglik_z (N, B, L))."""

def gaussian_terms_forward(
    x: FArr, x_mean: FArr, log_sigma2: float, n_threads: int = 1
) -> tuple[FArr, FArr]:
    """x (B, D), x_mean (N, B, D) → (sq_mean (B,), mean_sq (B,)); log_sigma2 in the arrays'
    dtype."""

def gaussian_terms_backward(
    grad_sq_mean: FArr,
    grad_mean_sq: FArr,
    x: FArr,
    x_mean: FArr,
    log_sigma2: float,
    n_threads: int = 1,
) -> tuple[FArr, FArr]:
    """(B,) gradients of sq_mean and mean_sq → (dx (B, D), dx_mean (N, B, D))."""

def hutchinson_probes(
    shape: tuple[int, int, int], seed: int, dist: int, dtype: str, n_threads: int = 1
) -> FArr:
    """Probe stream v2 (P, B, D) for seed in [0, 2**64); dist 0 Rademacher, 1 Gaussian; dtype
    "float32" or "float64"."""

def hutchinson_dot(u: FArr, seed: int, dist: int, n_threads: int = 1) -> FArr:
    """u (P, B, D) → Σ_d v·u (P, B), the probes v regenerated from seed."""

def hutchinson_dot_backward(go: FArr, seed: int, dist: int, d: int, n_threads: int = 1) -> FArr:
    """go (P, B) → go·v (P, B, d), the probes v regenerated from seed."""
