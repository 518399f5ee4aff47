"""Importance sampling (MATH.md Part I, "Evaluation") through the Rust engine (``vsm._core``).

One estimator, log p̂(x) = logsumexp_k log w_k − log K with its effective sample size, at three
levels:

- log weights: :func:`is_log_evidence` for log weights the caller computed, differentiable as a
  torch function (``vsm.is_log_evidence``);
- streaming: :class:`ISAccumulator` takes chunks of decoder means of a Gaussian VAE (memory O(B·D)
  whatever the number of samples K) and returns log p̂(x), the ESS, the self-normalised marginal
  score ŝ(x) and the Hyvärinen loss Ĵ(x) (``vsm.ISAccumulator``);
- model driver: :func:`is_evaluate` draws the samples from a trained model
  (:class:`vsm.models.GaussianVAELike`) and feeds the accumulator.

Torch tensors are accepted everywhere (the engine runs on CPU in float64) and NumPy arrays wherever
the engine takes them; results come back in the kind of the input.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, overload

import numpy as np
import torch

from . import _core
from . import _validate as V

if TYPE_CHECKING:
    from .models import GaussianVAELike

ISProposal = Literal["q", "prior"]
"""The importance-sampling proposals: the encoder's q(z|x) or the prior p(z)."""
IS_PROPOSALS: tuple[str, ...] = typing.get_args(ISProposal)
"""Proposals of :func:`is_evaluate`: the encoder's q(z|x), or the prior N(0, I)."""

Array: TypeAlias = "np.ndarray | torch.Tensor"
"""What the IS functions accept for an array argument."""


# ------------------------------------------------------------------------------- log weights


class _ISLogEvidence(torch.autograd.Function):
    """log_p = logsumexp(log_w) − log K via Rust; d log_p / d log_w = softmax(log_w)."""

    @staticmethod
    def forward(ctx: Any, log_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        arr = log_w.detach().to("cpu", torch.float64).contiguous().numpy()
        lp, ess = _core.is_log_evidence(arr)
        log_p = torch.from_numpy(lp).to(log_w.device, log_w.dtype)
        ess_t = torch.from_numpy(ess).to(log_w.device, log_w.dtype)
        ctx.save_for_backward(log_w)
        ctx.mark_non_differentiable(ess_t)
        return log_p, ess_t

    @staticmethod
    def backward(ctx: Any, g_logp: torch.Tensor, g_ess: torch.Tensor) -> torch.Tensor:
        (log_w,) = ctx.saved_tensors
        w = torch.softmax(log_w.to(torch.float64), dim=-1).to(log_w.dtype)
        return g_logp.unsqueeze(-1) * w


@overload
def is_log_evidence(log_w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...
@overload
def is_log_evidence(log_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
def is_log_evidence(log_w: Array) -> tuple[Array, Array]:
    """Importance-sampled log evidence and effective sample size, per row.

    Args:
        log_w: (B, K) log importance weights log p(x, z_k) − log r(z_k); float32 or float64 torch
            tensor (any device) or NumPy array. Entries may be −inf (zero weight), not NaN/+inf.

    Returns:
        ``(log_p, ess)``, each (B,): log_p = logsumexp_k log_w − log K (accumulated in float64),
        ess = (Σw)²/Σw² ∈ [1, K] (0 for a row with all weights zero). Torch in → torch out in
        log_w's dtype and device, differentiable w.r.t. log_w (gradient = normalised weights);
        NumPy in → float64 NumPy out.

    Raises:
        TypeError: not a tensor/array, or not a float32/float64 dtype.
        ValueError: not 2-D, K = 0, B = 0 (an empty batch is rejected rather than returning
            empty arrays), or NaN/+inf entries. Non-contiguous and read-only inputs are fine.
    """
    if isinstance(log_w, np.ndarray):
        return _core.is_log_evidence(V.array("log_w", log_w, ndim=2))
    V.tensor("log_w", log_w, ndim=2)
    V.has_data("log_w", log_w)
    log_p, ess = _ISLogEvidence.apply(log_w)
    return log_p, ess


# --------------------------------------------------------------------------------- streaming


@dataclass(frozen=True)
class ISResult:
    """Per-datum IS estimates. NumPy float64 if x was NumPy; torch in x's dtype/device otherwise.

    log_p: (B,) log p̂(x) (nats). ess: (B,) (Σw)²/Σw². score: (B, D) ŝ(x) = Σ w̄_k f_k.
    sm_loss: (B,) Ĵ(x) = Σ w̄_k(‖f_k‖² − D/σ²) − ½‖ŝ‖², with f_k = (g(z_k) − x)/σ².
    A datum whose weights all vanished (every log w = −∞) gets log_p = −∞, ess = 0 and NaN score
    and sm_loss: there is no estimate, and NaN says so rather than a made-up number.
    """

    log_p: Array
    ess: Array
    score: Array
    sm_loss: Array


class ISAccumulator:
    """Streaming importance-sampled log evidence, ESS, marginal score and SM loss.

    Args:
        x: (B, D) data (torch tensor or NumPy array, float32/float64).
        log_sigma2: log σ² of the decoder (float or 0-dim tensor).

    Feed samples with :meth:`add` any number of times, then call :meth:`result`. All sums are
    accumulated in float64 with online log-sum-exp rescaling; one pass over each chunk.
    """

    def __init__(self, x: Array, log_sigma2: float | np.number | Array) -> None:
        # Results come back as torch tensors in x's dtype and device when x is a tensor.
        self._like = (x.dtype, x.device) if isinstance(x, torch.Tensor) else None
        xa = V.array("x", x, ndim=2)
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

    def add(self, x_mean: Array, log_prior: Array, log_proposal: Array) -> None:
        """Add a chunk of Kc samples per datum.

        Args:
            x_mean: (B, Kc, D) decoder means g(z_k) (float32 is read without conversion).
            log_prior: (B, Kc) log p(z_k). log_proposal: (B, Kc) log r(z_k) (pass the same array
                as log_prior for the prior proposal).
        Raises ValueError on shape mismatch, Kc = 0, or non-finite values (state unchanged).
        """
        xm = V.array("x_mean", x_mean, ndim=3, keep_f32=True)
        lp = V.array("log_prior", log_prior, ndim=2)
        self._acc.add(xm, lp, V.array("log_proposal", log_proposal, ndim=2))

    def result(self) -> ISResult:
        """Estimates from all samples so far (see :class:`ISResult`)."""
        lp, ess, score, sm = self._acc.result()
        if self._like is None:
            return ISResult(lp, ess, score, sm)
        dtype, device = self._like
        conv = [torch.from_numpy(a).to(device, dtype) for a in (lp, ess, score, sm)]
        return ISResult(*conv)


# ------------------------------------------------------------------------------ model driver


def _log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Σ_L log N(z; mu, exp(logvar)) over the last dim."""
    return -0.5 * (((z - mu) ** 2) * torch.exp(-logvar) + logvar + math.log(2 * math.pi)).sum(-1)


@torch.no_grad()
def is_evaluate(
    model: GaussianVAELike,
    x: torch.Tensor,
    *,
    n_samples: int = 1000,
    proposal: str = "q",
    chunk: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> ISResult:
    """Importance-sampled evaluation of a Gaussian VAE on a batch.

    Args:
        model: a :class:`vsm.models.GaussianVAELike`: ``encode(x) -> (mu, logvar)``,
            ``decode(z)``, ``log_sigma2``, ``latent_dim`` (every ``GaussianVAE`` has them).
        x: (B, *data_shape) data.
        n_samples: K samples per datum (up to ~1e5; processed in chunks).
        proposal: one of :data:`IS_PROPOSALS`: "q" (the encoder's q(z|x), default) or "prior"
            (N(0, I)).
        chunk: samples per chunk; default keeps a chunk of decoder means ≤ 2²⁴ values.
        generator: torch.Generator for the samples (on z's device).
        progress: show a tqdm progress bar.

    Returns:
        :class:`ISResult` of torch tensors in x's dtype and device: log_p (B,), ess (B,),
        score (B, D) with D = prod(data_shape), sm_loss (B,).
    """
    V.choice("proposal", proposal, IS_PROPOSALS)
    n_samples = V.positive_int("n_samples", n_samples)
    B = x.shape[0]
    xf = x.reshape(B, -1)
    D = xf.shape[1]
    if chunk is None:
        chunk = max(1, min(n_samples, (1 << 24) // max(1, B * D)))
    chunk = V.positive_int("chunk", chunk)
    acc = ISAccumulator(xf, model.log_sigma2)
    L = int(model.latent_dim)
    if proposal == "q":
        mu, logvar = model.encode(x)
    else:
        mu = torch.zeros(B, L, dtype=x.dtype, device=x.device)
        logvar = torch.zeros_like(mu)
    std = torch.exp(0.5 * logvar)
    steps: Iterable[int] = range(0, n_samples, chunk)
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
        log_prop = (
            log_prior
            if proposal == "prior"
            else _log_normal(z64, mu[:, None].double(), logvar[:, None].double())
        )
        acc.add(x_mean, log_prior, log_prop)
    return acc.result()


__all__ = ["IS_PROPOSALS", "ISAccumulator", "ISResult", "is_evaluate", "is_log_evidence"]
