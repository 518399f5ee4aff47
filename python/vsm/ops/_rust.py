"""CPU launchers of vsm's fused ops in the Rust engine (``vsm._core``, crate ``vsm_core::fused``).

One function per Triton launcher of :mod:`vsm.kernels`, with the same arguments and return
convention, on CPU tensors:

=============================  ==============================================
Triton launcher                Rust twin (this module)
=============================  ==============================================
``posterior_fd.forward``       :func:`posterior_fd_forward`
``posterior_fd.backward``      :func:`posterior_fd_backward`
``gaussian_terms.forward``     :func:`gaussian_terms_forward`
``gaussian_terms.backward``    :func:`gaussian_terms_backward`
``hutchinson.probes``          :func:`hutchinson_probes`
``hutchinson.dot``             :func:`hutchinson_dot`
``hutchinson.dot_backward``    :func:`hutchinson_dot_backward`
=============================  ==============================================

The namespaces :data:`posterior_fd`, :data:`gaussian_terms` and :data:`hutchinson` mirror the
kernel modules (``_rust.posterior_fd.forward`` is ``kernels.posterior_fd.forward``'s twin), and
:func:`cpu_launchers` returns the set the ops' CPU implementation uses now (see
:func:`vsm._dispatch.cpu_kernel`).

The kernels compute the Triton kernels' formulas in the same order, accumulating in the input
dtype (float32 or float64); Hutchinson probes follow probe stream v2 (Triton's Philox-4x32-10:
Rademacher probes are bit-identical to the Triton kernels', Gaussian ones equal up to the libm
rounding of log/cos/sin). Inputs are passed zero-copy (``Tensor.numpy()`` of a contiguous CPU
tensor; a non-contiguous one is copied first), outputs come back zero-copy
(``torch.from_numpy``), and the GIL is released while a kernel runs.

Threads policy: a Rust kernel runs on at most ``torch.get_num_threads()`` threads, the calling
thread included, so it never uses more cores than torch's own intra-op pool, and torch ops and
Rust kernels run one after the other, never at the same time. Below about 32k element
operations a kernel runs serially in the calling thread (no pool, no synchronisation); above, the
rows are split into tasks that the threads of a team take from a shared counter. The team is
torch's own OpenMP team when torch runs on OpenMP (Linux wheels), so the kernels run on the very
threads torch uses: a separate pool's workers compete with torch's still-spinning OpenMP workers
after every parallel torch op (measured on 2 cores: slower than serial). Elsewhere, or with
``VSM_RUST_POOL=rayon``, it is the calling thread and the workers of a rayon pool of
``torch.get_num_threads() − 1`` threads (built once per size and kept). ``torch.set_num_threads(1)``
therefore makes every Rust kernel single-threaded.
"""

from __future__ import annotations

import importlib
from types import ModuleType, SimpleNamespace

import numpy as np
import torch

from .. import _core, _dispatch

__all__ = [
    "cpu_launchers",
    "gaussian_terms",
    "gaussian_terms_backward",
    "gaussian_terms_forward",
    "hutchinson",
    "hutchinson_dot",
    "hutchinson_dot_backward",
    "hutchinson_probes",
    "posterior_fd",
    "posterior_fd_backward",
    "posterior_fd_forward",
]

_DTYPES = {torch.float32: "float32", torch.float64: "float64"}


def _np(t: torch.Tensor) -> np.ndarray:
    """Zero-copy NumPy view of a contiguous CPU tensor (copied first if not contiguous)."""
    return t.detach().contiguous().numpy()


def _threads() -> int:
    return torch.get_num_threads()


def posterior_fd_forward(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, g: torch.Tensor
) -> torch.Tensor:
    """PFD per row (N, B). ``z``, ``g``: (N, B, L); ``mu``, ``logvar``: (B, L); one dtype."""
    out = _core.posterior_fd_forward(_np(z), _np(mu), _np(logvar), _np(g), _threads())
    return torch.from_numpy(out)


def posterior_fd_backward(
    go: torch.Tensor, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, g: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (dz, dmu, dlogvar, dg) given ``go`` = dLoss/dPFD of shape (N, B)."""
    grads = _core.posterior_fd_backward(_np(go), _np(z), _np(mu), _np(logvar), _np(g), _threads())
    dz, dmu, dlv, dg = (torch.from_numpy(a) for a in grads)
    return dz, dmu, dlv, dg


def gaussian_terms_forward(
    x: torch.Tensor, x_mean: torch.Tensor, log_sigma2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sq_mean, mean_sq), each (B,). ``x`` (B, D), ``x_mean`` (N, B, D), ``log_sigma2`` 0-dim."""
    sq, msq = _core.gaussian_terms_forward(_np(x), _np(x_mean), float(log_sigma2), _threads())
    return torch.from_numpy(sq), torch.from_numpy(msq)


def gaussian_terms_backward(
    grad_sq_mean: torch.Tensor,
    grad_mean_sq: torch.Tensor,
    x: torch.Tensor,
    x_mean: torch.Tensor,
    log_sigma2: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(dx (B, D), dx_mean (N, B, D)) given the (B,) gradients of sq_mean and mean_sq."""
    dx, dxm = _core.gaussian_terms_backward(
        _np(grad_sq_mean),
        _np(grad_mean_sq),
        _np(x),
        _np(x_mean),
        float(log_sigma2),
        _threads(),
    )
    return torch.from_numpy(dx), torch.from_numpy(dxm)


def hutchinson_probes(
    shape: tuple[int, int, int], seed: int, dist: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Probes v of ``shape`` (P, B, D) drawn from ``seed`` (``dist``: 0 Rademacher, 1 Gaussian).

    ``device`` must be the CPU (the argument keeps the Triton launcher's signature).
    """
    if torch.device(device).type != "cpu":
        raise ValueError(f"device: the Rust kernels run on the CPU, got {device}")
    if dtype not in _DTYPES:
        raise TypeError(f"dtype: expected torch.float32 or torch.float64, got {dtype}")
    p, b, d = (int(s) for s in shape)
    out = _core.hutchinson_probes((p, b, d), int(seed), int(dist), _DTYPES[dtype], _threads())
    return torch.from_numpy(out)


def hutchinson_dot(u: torch.Tensor, seed: int, dist: int) -> torch.Tensor:
    """out[p, b] = Σ_d v[p, b, d]·u[p, b, d] for ``u`` (P, B, D), v regenerated from ``seed``."""
    return torch.from_numpy(_core.hutchinson_dot(_np(u), int(seed), int(dist), _threads()))


def hutchinson_dot_backward(go: torch.Tensor, seed: int, dist: int, D: int) -> torch.Tensor:
    """du[p, b, d] = go[p, b]·v[p, b, d] for ``go`` (P, B), v regenerated from ``seed``."""
    out = _core.hutchinson_dot_backward(_np(go), int(seed), int(dist), int(D), _threads())
    return torch.from_numpy(out)


#: Rust twins of :mod:`vsm.kernels.posterior_fd`'s launchers.
posterior_fd = SimpleNamespace(forward=posterior_fd_forward, backward=posterior_fd_backward)
#: Rust twins of :mod:`vsm.kernels.gaussian_terms`'s launchers.
gaussian_terms = SimpleNamespace(forward=gaussian_terms_forward, backward=gaussian_terms_backward)
#: Rust twins of :mod:`vsm.kernels.hutchinson`'s launchers.
hutchinson = SimpleNamespace(
    probes=hutchinson_probes, dot=hutchinson_dot, dot_backward=hutchinson_dot_backward
)
_TWINS = {"posterior_fd": posterior_fd, "gaussian_terms": gaussian_terms, "hutchinson": hutchinson}


def cpu_launchers(op: str) -> ModuleType | SimpleNamespace:
    """The launchers of fused op ``op`` ("posterior_fd", "gaussian_terms", "hutchinson") that the
    op's CPU implementation calls now: the Triton kernel module (run by the interpreter) when
    :func:`vsm._dispatch.cpu_kernel` says "triton", else the Rust twins of this module."""
    if _dispatch.cpu_kernel() == "triton":
        return importlib.import_module(f"..kernels.{op}", __package__)
    return _TWINS[op]
