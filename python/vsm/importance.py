"""Importance-sampled evaluation of Gaussian VAEs (MATH.md Part I, "Evaluation") via Rust.

:class:`ISAccumulator` streams chunks of decoder means into the Rust accumulator (memory O(B·D)
whatever the number of samples K) and returns log p̂(x), the ESS, the self-normalised marginal
score ŝ(x) and the Hyvärinen loss Ĵ(x). :func:`is_evaluate` drives it with a trained model
(``encode``/``decode``/``log_sigma2`` as in the shared model interface).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import _core
from . import _validate as V


@dataclass(frozen=True)
class ISResult:
    """Per-datum IS estimates. NumPy float64 if x was NumPy; torch in x's dtype/device otherwise.

    log_p: (B,) log p̂(x) (nats). ess: (B,) (Σw)²/Σw². score: (B, D) ŝ(x) = Σ w̄_k f_k.
    sm_loss: (B,) Ĵ(x) = Σ w̄_k(‖f_k‖² − D/σ²) − ½‖ŝ‖², with f_k = (g(z_k) − x)/σ².
    A datum whose weights all vanished (every log w = −∞) gets log_p = −∞, ess = 0 and NaN score
    and sm_loss: there is no estimate, and NaN says so rather than a made-up number.
    """

    log_p: Any
    ess: Any
    score: Any
    sm_loss: Any


def _to_np(name: str, a: Any, ndim: int, keep_f32: bool = False) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        if a.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"{name}: expected float32 or float64, got {a.dtype}")
        V.has_data(name, a)
        a = a.detach().cpu().numpy()
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {type(a).__name__}")
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: expected float32 or float64, got {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {a.shape}")
    if keep_f32 and a.dtype == np.float32:
        return a
    return a.astype(np.float64, copy=False)


class ISAccumulator:
    """Streaming importance-sampled log evidence, ESS, marginal score and SM loss.

    Args:
        x: (B, D) data (torch tensor or NumPy array, float32/float64).
        log_sigma2: log σ² of the decoder (float or 0-dim tensor).

    Feed samples with :meth:`add` any number of times, then call :meth:`result`. All sums are
    accumulated in float64 with online log-sum-exp rescaling; one pass over each chunk.
    """

    def __init__(self, x: Any, log_sigma2: Any) -> None:
        self._torch = isinstance(x, torch.Tensor)
        if self._torch:
            self._dtype, self._device = x.dtype, x.device
        xa = _to_np("x", x, 2)
        if isinstance(log_sigma2, torch.Tensor):
            if log_sigma2.numel() != 1:
                raise ValueError(
                    f"log_sigma2: expected a scalar, got shape {tuple(log_sigma2.shape)}"
                )
            if not log_sigma2.is_floating_point():
                raise TypeError(f"log_sigma2: expected a float tensor, got {log_sigma2.dtype}")
            V.has_data("log_sigma2", log_sigma2)
            log_sigma2 = float(log_sigma2.detach().cpu())
        if isinstance(log_sigma2, np.ndarray):
            if log_sigma2.size != 1:
                raise ValueError(f"log_sigma2: expected a scalar, got shape {log_sigma2.shape}")
            log_sigma2 = log_sigma2.reshape(())[()]
        if isinstance(log_sigma2, (bool, np.bool_)) or not isinstance(
            log_sigma2, (int, float, np.floating, np.integer)
        ):
            raise TypeError(f"log_sigma2: expected a float, got {type(log_sigma2).__name__}")
        self._acc = _core.ISAccumulator(xa, float(log_sigma2))

    @property
    def n_samples(self) -> int:
        """Samples per datum added so far (K)."""
        return self._acc.n_samples

    def add(self, x_mean: Any, log_prior: Any, log_proposal: Any) -> None:
        """Add a chunk of Kc samples per datum.

        Args:
            x_mean: (B, Kc, D) decoder means g(z_k) (float32 is read without conversion).
            log_prior: (B, Kc) log p(z_k). log_proposal: (B, Kc) log r(z_k) (pass the same array
                as log_prior for the prior proposal).
        Raises ValueError on shape mismatch, Kc = 0, or non-finite values (state unchanged).
        """
        xm = _to_np("x_mean", x_mean, 3, keep_f32=True)
        self._acc.add(xm, _to_np("log_prior", log_prior, 2), _to_np("log_proposal", log_proposal, 2))

    def result(self) -> ISResult:
        """Estimates from all samples so far (see :class:`ISResult`)."""
        lp, ess, score, sm = self._acc.result()
        if not self._torch:
            return ISResult(lp, ess, score, sm)
        conv = [torch.from_numpy(a).to(self._device, self._dtype) for a in (lp, ess, score, sm)]
        return ISResult(*conv)


def _log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Σ_L log N(z; mu, exp(logvar)) over the last dim."""
    return -0.5 * (((z - mu) ** 2) * torch.exp(-logvar) + logvar + math.log(2 * math.pi)).sum(-1)


@torch.no_grad()
def is_evaluate(model: Any, x: torch.Tensor, *, n_samples: int = 1000, proposal: str = "q",
                chunk: int | None = None, generator: torch.Generator | None = None,
                progress: bool = False) -> ISResult:
    """Importance-sampled evaluation of a Gaussian VAE on a batch.

    Args:
        model: object with ``encode(x) -> (mu, logvar)``, ``decode(z)``, ``log_sigma2``,
            ``latent_dim`` (the shared ``GaussianVAE`` interface).
        x: (B, *data_shape) data.
        n_samples: K samples per datum (up to ~1e5; processed in chunks).
        proposal: "q" (the encoder's q(z|x), default) or "prior" (N(0, I)).
        chunk: samples per chunk; default keeps a chunk of decoder means ≤ 2²⁴ values.
        generator: torch.Generator for the samples (on z's device).
        progress: show a tqdm progress bar.

    Returns:
        :class:`ISResult` of torch tensors in x's dtype and device: log_p (B,), ess (B,),
        score (B, D) with D = prod(data_shape), sm_loss (B,).
    """
    if proposal not in ("q", "prior"):
        raise ValueError(f"proposal: expected 'q' or 'prior', got {proposal!r}")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples: expected a positive int, got {n_samples!r}")
    B = x.shape[0]
    xf = x.reshape(B, -1)
    D = xf.shape[1]
    if chunk is None:
        chunk = max(1, min(n_samples, (1 << 24) // max(1, B * D)))
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk: expected a positive int, got {chunk!r}")
    acc = ISAccumulator(xf, model.log_sigma2)
    L = int(model.latent_dim)
    if proposal == "q":
        mu, logvar = model.encode(x)
    else:
        mu = torch.zeros(B, L, dtype=x.dtype, device=x.device)
        logvar = torch.zeros_like(mu)
    std = torch.exp(0.5 * logvar)
    steps = range(0, n_samples, chunk)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="IS", unit="chunk")
    for k0 in steps:
        kc = min(chunk, n_samples - k0)
        eps = torch.randn(B, kc, L, dtype=mu.dtype, device=mu.device, generator=generator)
        z = mu[:, None] + std[:, None] * eps
        x_mean = model.decode(z).reshape(B, kc, D)
        z64 = z.double()  # log densities in float64 (they enter the weights exponentiated)
        log_prior = _log_normal(z64, torch.zeros_like(z64), torch.zeros_like(z64))
        log_prop = log_prior if proposal == "prior" else _log_normal(
            z64, mu[:, None].double(), logvar[:, None].double())
        acc.add(x_mean, log_prior, log_prop)
    return acc.result()


__all__ = ["ISAccumulator", "ISResult", "is_evaluate"]
