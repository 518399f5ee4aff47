"""Classical score-matching estimators and annealed Langevin sampling (MATH.md Part II).

For a model score s_θ(x) = ∇_x log p̃_θ(x) given as a callable (a score network, or the autograd
gradient of an energy network), on data x of shape (B, D); every loss is returned per datum, (B,),
in the dtype and on the device of ``x``, differentiable w.r.t. the parameters inside ``score_fn``:

- :func:`exact_sm`: Hyvärinen SM  tr ∇_x s + ½‖s‖²  (D extra backward passes);
- :func:`sliced_sm`: sliced SM with Hutchinson probes (:func:`vsm.hutchinson_trace`);
- :func:`dsm`: denoising SM  ½‖s(x̃) + (x̃ − x)/σ²‖², x̃ = x + σε;
- :func:`multiscale_dsm`: NCSN's (1/L) Σ_i σ_i² ‖s(x + σ_i ε, σ_i) + ε/σ_i‖² (as in MATH.md);
- :func:`annealed_langevin`: NCSN sampling with α_i = ε σ_i²/σ_L².

Score callables: ``score_fn(x) -> (B, D)`` for :func:`exact_sm`, :func:`sliced_sm`, :func:`dsm`;
``score_fn(x, sigma) -> (B, D)`` with ``sigma`` a Python float (the noise level) for
:func:`multiscale_dsm` and :func:`annealed_langevin`.

Argument checks: ``TypeError`` for a non-tensor or non-float32/64 x, a non-callable ``score_fn``
or one returning a non-tensor or another dtype, and badly typed options; ``ValueError`` for
shapes (x must be (B, D), B ≥ 1; the score must have x's shape), a score on another device, and
bad option values (σ ≤ 0 or non-finite, empty or increasing ``sigmas``, ``n_steps < 1``,
``seed`` outside [0, 2⁶³)). The message starts with the argument's name. x is not scanned for
NaN/inf (a device synchronisation per call); a non-finite datum gives a non-finite loss for that
datum only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch

from . import _validate as V
from .ops.hutchinson import hutchinson_probes, hutchinson_trace
from .reference import HUTCHINSON_DISTS

ScoreFn = Callable[[torch.Tensor], torch.Tensor]
NoiseScoreFn = Callable[[torch.Tensor, float], torch.Tensor]


def _data(x: object, name: str = "x") -> torch.Tensor:
    x = V.tensor(name, x, ndim=2)
    V.nonempty(name, x)
    return x


def _fn(score_fn: object) -> None:
    V.callable_("score_fn", score_fn)


def _score(name: str, s: object, x: torch.Tensor) -> torch.Tensor:
    """Check a score callable's output against x."""
    if not isinstance(s, torch.Tensor):
        raise TypeError(f"{name}: expected it to return a torch.Tensor, got {type(s).__name__}")
    if tuple(s.shape) != tuple(x.shape):
        raise ValueError(
            f"{name}: returned shape {tuple(s.shape)}, expected x's shape {tuple(x.shape)}"
        )
    if s.dtype != x.dtype:
        raise TypeError(f"{name}: returned dtype {s.dtype}, expected x's dtype {x.dtype}")
    if s.device != x.device:
        raise ValueError(f"{name}: returned device {s.device}, expected x's device {x.device}")
    return s


def _input_leaf(x: torch.Tensor) -> torch.Tensor:
    """x itself if it already requires grad, else a detached copy that does."""
    return x if x.requires_grad else x.detach().requires_grad_(True)


def _sigma(name: str, sigma: object) -> float:
    if isinstance(sigma, torch.Tensor):
        if sigma.numel() != 1:
            raise ValueError(f"{name}: expected a scalar, got shape {tuple(sigma.shape)}")
        V.has_data(name, sigma)
        sigma = sigma.item()
    if isinstance(sigma, bool) or not isinstance(sigma, int | float):
        raise TypeError(f"{name}: expected a float, got {type(sigma).__name__}")
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"{name}: expected a finite positive number, got {sigma}")
    return float(sigma)


def _sigmas(sigmas: object) -> list[float]:
    if isinstance(sigmas, torch.Tensor):
        if sigmas.dim() != 1:
            raise ValueError(f"sigmas: expected a 1-D sequence, got shape {tuple(sigmas.shape)}")
        V.has_data("sigmas", sigmas)
        sigmas = sigmas.tolist()
    if not isinstance(sigmas, Sequence) or isinstance(sigmas, str):
        raise TypeError(f"sigmas: expected a sequence of floats, got {type(sigmas).__name__}")
    if len(sigmas) == 0:
        raise ValueError("sigmas: expected at least one noise level")
    return [_sigma(f"sigmas[{i}]", s) for i, s in enumerate(sigmas)]


def _generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    seed = V.seed("seed", seed)
    if seed is None:
        return None
    if device.type == "meta":  # shape-only tensors: no random numbers to seed
        return None
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def _noise(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)


def exact_sm(score_fn: ScoreFn, x: torch.Tensor) -> torch.Tensor:
    """Hyvärinen score-matching loss per datum: tr ∇_x s(x) + ½‖s(x)‖².

    The trace is exact: one backward pass per data dimension (practical for small D). Rows of
    ``score_fn``'s output must depend only on the same row of its input.

    Args:
        score_fn: x (B, D) → model score s(x) (B, D), in units of 1/x.
        x: data, (B, D).

    Returns:
        (B,) loss in units of 1/x²; differentiable w.r.t. the parameters inside ``score_fn``
        (when grad mode is on). Its mean over the data equals the Fisher divergence
        ½E‖s − ∇log p_data‖² up to a constant.
    """
    x = _data(x)
    _fn(score_fn)
    xr = _input_leaf(x)
    s = _score("score_fn", score_fn(xr), x)
    trace = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    if s.requires_grad:
        for d in range(x.shape[1]):
            (g,) = torch.autograd.grad(
                s[:, d].sum(),
                xr,
                create_graph=torch.is_grad_enabled(),
                retain_graph=True,
                allow_unused=True,
            )
            if g is not None:
                trace = trace + g[:, d]
    return trace + 0.5 * (s * s).sum(-1)


def sliced_sm(
    score_fn: ScoreFn,
    x: torch.Tensor,
    *,
    n_probes: int = 1,
    dist: str = "rademacher",
    variance_reduced: bool = True,
    seed: int | None = None,
) -> torch.Tensor:
    """Sliced score-matching loss per datum, an unbiased estimate of :func:`exact_sm`.

    variance_reduced=True:  (1/P) Σ_p v_pᵀ ∇_x s v_p + ½‖s‖²;
    variance_reduced=False: (1/P) Σ_p [v_pᵀ ∇_x s v_p + ½ (v_pᵀ s)²],
    with probes v_p as in :func:`vsm.hutchinson_trace` (same ``n_probes``, ``dist``, ``seed``; the
    trace term is exactly ``hutchinson_trace(s, x, ...)``).

    Args:
        score_fn: x (B, D) → s(x) (B, D).
        x: data, (B, D).
        n_probes, dist, seed: probe options of :func:`vsm.hutchinson_trace`.
        variance_reduced: use the analytic E_v(vᵀs)² = ‖s‖² (default).

    Returns:
        (B,) loss, units 1/x²; differentiable w.r.t. the parameters inside ``score_fn``.
    """
    x = _data(x)
    _fn(score_fn)
    V.positive_int("n_probes", n_probes)
    V.choice("dist", dist, HUTCHINSON_DISTS)
    seed = V.resolve_seed("seed", seed)  # one seed for the trace and the probes below
    if not isinstance(variance_reduced, bool):
        raise TypeError(f"variance_reduced: expected a bool, got {type(variance_reduced).__name__}")
    xr = _input_leaf(x)
    s = _score("score_fn", score_fn(xr), x)
    if s.requires_grad:
        trace = hutchinson_trace(s, xr, n_probes=n_probes, dist=dist, seed=seed)
    else:
        trace = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    if variance_reduced:
        return trace + 0.5 * (s * s).sum(-1)
    v = hutchinson_probes(xr, n_probes, seed, dist)
    proj = (v * s.unsqueeze(0)).sum(-1)
    return trace + 0.5 * (proj * proj).mean(0)


def dsm(
    score_fn: ScoreFn, x: torch.Tensor, sigma: float, *, seed: int | None = None
) -> torch.Tensor:
    """Denoising score matching per datum: ½‖s(x̃) + (x̃ − x)/σ²‖², x̃ = x + σε, ε ~ N(0, I).

    Args:
        score_fn: x̃ (B, D) → s(x̃) (B, D) (the score of the σ-smoothed model; no σ argument).
        x: clean data, (B, D).
        sigma: noise standard deviation σ > 0, units of x.
        seed: seeds the noise ε (a ``torch.Generator`` on x's device); None uses torch's global RNG.

    Returns:
        (B,) loss, units 1/x², one noise draw per datum; differentiable w.r.t. the parameters
        inside ``score_fn``. (x̃ − x)/σ² = ε/σ.
    """
    x = _data(x)
    _fn(score_fn)
    sigma = _sigma("sigma", sigma)
    eps = _noise(x, _generator(seed, x.device))
    s = _score("score_fn", score_fn(x + sigma * eps), x)
    r = s + eps / sigma
    return 0.5 * (r * r).sum(-1)


def multiscale_dsm(
    score_fn: NoiseScoreFn,
    x: torch.Tensor,
    sigmas: Sequence[float] | torch.Tensor,
    *,
    seed: int | None = None,
) -> torch.Tensor:
    """Multi-scale DSM (NCSN) per datum: (1/L) Σ_i λ(σ_i) ‖s(x + σ_i ε_i, σ_i) + ε_i/σ_i‖², λ(σ)=σ².

    This is MATH.md Part II's formula, which has no ½ (Song & Ermon 2019 put a ½ inside each
    level's loss; the minimiser is the same). Every level is evaluated for every datum, with an
    independent ε_i ~ N(0, I) per level (one ``score_fn`` call per level).

    Args:
        score_fn: (x̃ (B, D), sigma: float) → s(x̃, σ) (B, D).
        x: clean data, (B, D).
        sigmas: noise levels σ_1, …, σ_L > 0 (units of x), usually geometric and decreasing.
        seed: seeds the noise; None uses torch's global RNG.

    Returns:
        (B,) dimensionless loss; differentiable w.r.t. the parameters inside ``score_fn``.
    """
    x = _data(x)
    _fn(score_fn)
    levels = _sigmas(sigmas)
    gen = _generator(seed, x.device)
    total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for sigma in levels:
        eps = _noise(x, gen)
        s = _score("score_fn", score_fn(x + sigma * eps, sigma), x)
        r = s + eps / sigma
        total = total + sigma**2 * (r * r).sum(-1)
    return total / len(levels)


def annealed_langevin(
    score_fn: NoiseScoreFn,
    x0: torch.Tensor,
    sigmas: Sequence[float] | torch.Tensor,
    *,
    n_steps: int,
    step_size: float,
    seed: int | None = None,
) -> torch.Tensor:
    """Annealed Langevin dynamics (NCSN): samples from the model whose score is ``score_fn``.

    For each level σ_i (in the given order, σ_L = ``sigmas[-1]``), α_i = ε σ_i²/σ_L² and n_steps
    updates x ← x + (α_i/2) s(x, σ_i) + √α_i z, z ~ N(0, I).

    Args:
        score_fn: (x (B, D), sigma: float) → s(x, σ) (B, D). It is called with grad mode as the
            caller set it (an energy model may differentiate inside); x is detached each step.
        x0: initial points, (B, D) (e.g. uniform or Gaussian noise).
        sigmas: noise levels σ_1 ≥ … ≥ σ_L > 0.
        n_steps: T ≥ 1 steps per level.
        step_size: ε > 0, the step at the smallest level (units of x²).
        seed: seeds the Langevin noise; None uses torch's global RNG.

    Returns:
        (B, D) samples (detached), dtype and device of ``x0``.
    """
    x0 = _data(x0, "x0")
    _fn(score_fn)
    levels = _sigmas(sigmas)
    if any(a < b for a, b in itertools.pairwise(levels)):
        raise ValueError(f"sigmas: expected a non-increasing sequence, got {levels}")
    n_steps = V.positive_int("n_steps", n_steps)
    step = _sigma("step_size", step_size)
    gen = _generator(seed, x0.device)
    x = x0.detach()
    for sigma in levels:
        alpha = step * sigma**2 / levels[-1] ** 2
        for _ in range(n_steps):
            s = _score("score_fn", score_fn(x, sigma), x0).detach()
            x = x + 0.5 * alpha * s + math.sqrt(alpha) * _noise(x, gen)
    return x.detach()
