"""Reference twins of vsm's fused ops (API.md), in pure torch.

Each function has the signature and semantics of its public counterpart in :mod:`vsm` and is
written as plainly as possible, with gradients from autograd: these are the single source of truth
that the Triton kernels, the tests and the benchmarks are compared against. (The Rust engine's
twins, in NumPy, are :mod:`vsm.reference_rust`.) No input validation happens here; the public
functions validate.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import torch

from . import _validate as V


def posterior_fd(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, grad_loglik_z: torch.Tensor
) -> torch.Tensor:
    """Per-sample posterior FD ‖∇_z log q − ∇_z log p(z) − ∇_z log p(x|z)‖² (no ½), shape z.shape[:-1].

    ∇_z log q = −(z−mu)·exp(−logvar), ∇_z log p(z) = −z; ``grad_loglik_z`` = ∇_z log p(x|z).
    """
    res = -(z - mu) * torch.exp(-logvar) + z - grad_loglik_z
    return (res * res).sum(-1)


class GaussianTerms(NamedTuple):
    """Per-datum sufficient terms of a Gaussian likelihood's x-score f_n = (x_mean_n − x)/σ².

    sq_mean: (B,) mean_n ‖f_n‖²; mean_sq: (B,) ‖mean_n f_n‖²; trace: 0-dim tr ∇_x f = −D/σ²
    (broadcasts against (B,)). Units: 1/σ⁴ for the first two, 1/σ² for the trace.
    """

    sq_mean: torch.Tensor
    mean_sq: torch.Tensor
    trace: torch.Tensor


def gaussian_terms(
    x: torch.Tensor, x_mean: torch.Tensor, log_sigma2: torch.Tensor
) -> GaussianTerms:
    """(mean_n ‖f_n‖², ‖mean_n f_n‖², −D/σ²) with f_n = (x_mean_n − x)/σ².

    x (B,D); x_mean (N,B,D) (a (B,D) x_mean is one sample); log_sigma2 0-dim log σ².
    """
    xm = x_mean.unsqueeze(0) if x_mean.dim() == 2 else x_mean
    inv = torch.exp(-log_sigma2)
    f = (xm - x) * inv
    sq_mean = (f * f).sum(-1).mean(0)
    fbar = f.mean(0)
    mean_sq = (fbar * fbar).sum(-1)
    trace = -x.shape[-1] * inv
    return GaussianTerms(sq_mean, mean_sq, trace)


def is_log_evidence(log_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log_p, ess) of log importance weights (B, K), computed in float64, returned in log_w's dtype.

    log_p = logsumexp_k log_w − log K; ess = (Σw)²/Σw² = exp(2·lse(s) − lse(2·s)) with the
    weights shifted by their row maximum m, s = log_w − m ≤ 0 (unshifted, 2·lse(log_w) −
    lse(2·log_w) loses log K once |log_w| ≳ 1e16: ESS 1 instead of K). A row of −inf weights gets
    log_p = −inf and ESS 0.
    """
    lw = log_w.to(torch.float64)
    m = lw.detach().amax(dim=-1, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    s = lw - m
    lse = torch.logsumexp(s, dim=-1)
    log_p = (m.squeeze(-1) + lse) - math.log(lw.shape[-1])
    ess = torch.exp(2 * lse - torch.logsumexp(2 * s, dim=-1))
    ess = torch.where(torch.isneginf(lse), torch.zeros_like(ess), ess)
    return log_p.to(log_w.dtype), ess.to(log_w.dtype)


HUTCHINSON_DISTS = ("rademacher", "gaussian")


def hutchinson_probes(
    inputs: torch.Tensor, n_probes: int, seed: int, dist: str = "rademacher"
) -> torch.Tensor:
    """Probes v (n_probes, *inputs.shape) with E[v vᵀ] = I from a ``torch.Generator`` seeded with
    ``seed`` on ``inputs.device``: Rademacher ±1 or standard Gaussian, in ``inputs.dtype``."""
    gen = torch.Generator(device=inputs.device)
    gen.manual_seed(int(seed))
    shape = (n_probes, *inputs.shape)
    if dist == "rademacher":
        bits = torch.randint(0, 2, shape, generator=gen, device=inputs.device)
        return (2 * bits - 1).to(inputs.dtype)
    return torch.randn(shape, generator=gen, device=inputs.device, dtype=inputs.dtype)


def hutchinson_trace(
    outputs: torch.Tensor,
    inputs: torch.Tensor,
    *,
    n_probes: int = 1,
    dist: str = "rademacher",
    seed: int | None = None,
) -> torch.Tensor:
    """Hutchinson estimate (1/P) Σ_p v_pᵀ J v_p of tr(∂outputs/∂inputs) per row, shape (B,).

    ``outputs``, ``inputs``: (B, D), outputs computed from inputs; v_pᵀJ by
    ``torch.autograd.grad(outputs, inputs, v_p, create_graph=True)``; probes from
    :func:`hutchinson_probes` (``seed=None``: a seed drawn from torch's global RNG).
    """
    seed = V.resolve_seed("seed", seed)
    v = hutchinson_probes(inputs, n_probes, seed, dist)
    total = torch.zeros(inputs.shape[:-1], dtype=inputs.dtype, device=inputs.device)
    for vp, u in zip(v, probe_vjps(outputs, inputs, v), strict=True):
        if u is not None:
            total = total + (vp * u).sum(-1)
    return total / n_probes


def probe_vjps(
    outputs: torch.Tensor, inputs: torch.Tensor, v: torch.Tensor
) -> Iterator[torch.Tensor | None]:
    """v_pᵀJ for each probe v_p of ``v`` (P, *inputs.shape), J = ∂outputs/∂inputs, by
    ``torch.autograd.grad`` (graph kept when grad mode is on; None where outputs do not depend
    on inputs). Shared by the Hutchinson estimators of every backend."""
    for vp in v:
        (u,) = torch.autograd.grad(
            outputs,
            inputs,
            vp,
            create_graph=torch.is_grad_enabled(),
            retain_graph=True,
            allow_unused=True,
        )
        yield u
