"""Grid quadrature of toy latent posteriors (1-D and 2-D latents) through the Rust engine.

``grid_posterior(log_joint, axes)`` summarises a user-supplied log-joint tabulated on a uniform
grid; ``posterior(model, x, ...)`` does the same for the built-in models ("sym", "soft", "relu",
"bias", "linear"; MATH.md Part III §5). Both return a :class:`Posterior` with the log evidence,
mean, covariance and normalised density, and ``kl_from`` / ``fd_from`` for Gaussian or
Gaussian-mixture q. NumPy (or torch, converted) in; float64 NumPy out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _core
from . import _validate as V

MODELS = ("sym", "soft", "relu", "bias", "linear")
MAX_GRID_VALUES = 2**28
"""Largest batch × grid size that :func:`posterior` accepts (a float64 grid of it is 2 GiB)."""


def _real(name: str, v: Any) -> float:
    """A finite-or-not real scalar (Python/NumPy number or one-element array/tensor) as a float."""
    if isinstance(v, (str, bytes, bool, np.bool_)):
        raise TypeError(f"{name}: expected a float, got {type(v).__name__}")
    try:
        return float(v)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name}: expected a float, got {type(v).__name__}") from e


@dataclass(frozen=True)
class Posterior:
    """Grid posterior(s) p(z | x) for a batch of observations.

    Attributes:
        log_z: (*batch,) log evidence log ∫ p(x, z) dz (rectangle rule on the grid).
        mean: (*batch, L) posterior mean.
        cov: (*batch, L, L) posterior covariance.
        density: (*batch, n1[, n2]) p(z_g | x) on the grid (``ij`` indexing), normalised so that
            ``density.sum(axis=grid axes) * prod(steps) == 1``.
        axes: the grid axes (tuple of 1 or 2 arrays).
    """

    log_z: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    density: np.ndarray
    axes: tuple[np.ndarray, ...]
    _model: str | None = field(default=None, repr=False)
    _params: dict = field(default_factory=dict, repr=False)
    _x: np.ndarray | None = field(default=None, repr=False)  # (B, D) for built-in models
    _log_joint: np.ndarray | None = field(default=None, repr=False)  # (B, G) for user grids

    @classmethod
    def _from_flat(
        cls, summary: tuple[np.ndarray, ...], bs: tuple[int, ...], axes: Any, **private: Any
    ) -> Posterior:
        """From ``_core``'s flat (log_z (B,), mean (B, L), cov (B, L, L), density (B, G)) for
        batch shape ``bs`` on the grid ``axes``; ``private`` sets the ``_``-fields."""
        log_z, mean, cov, dens = summary
        L = len(axes)
        shape = tuple(len(a) for a in axes)
        return cls(
            log_z.reshape(bs),
            mean.reshape(*bs, L),
            cov.reshape(*bs, L, L),
            dens.reshape(*bs, *shape),
            tuple(axes),
            **private,
        )

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.log_z.shape

    def _q(self, q_mean: Any, q_cov: Any, q_weights: Any) -> tuple[np.ndarray, ...]:
        """Broadcast q to (B, C), (B, C, L), (B, C, L, L)."""
        L = len(self.axes)
        bs = self.batch_shape
        B = int(np.prod(bs, dtype=np.int64))
        m = V.array("q_mean", q_mean, real=True)
        c = V.array("q_cov", q_cov, real=True)
        if q_weights is None:
            m, c = m[..., None, :], c[..., None, :, :]
            w = np.ones(m.shape[:-1])
        else:
            w = V.array("q_weights", q_weights, real=True)
        if m.ndim < 2 or m.shape[-1] != L:
            raise ValueError(f"q_mean: expected shape (..., [C,] {L}), got {np.shape(q_mean)}")
        if c.ndim < 3 or c.shape[-2:] != (L, L):
            raise ValueError(f"q_cov: expected shape (..., [C,] {L}, {L}), got {np.shape(q_cov)}")
        C = m.shape[-2]
        out = []
        for name, a, tail in (
            ("q_mean", m, (C, L)),
            ("q_cov", c, (C, L, L)),
            ("q_weights", w, (C,)),
        ):
            try:
                out.append(np.ascontiguousarray(np.broadcast_to(a, (*bs, *tail)).reshape(B, *tail)))
            except ValueError as e:
                raise ValueError(
                    f"{name}: shape {a.shape} does not broadcast to (*batch, {C} components, ...) "
                    f"= {(*bs, *tail)} (q shapes: {np.shape(q_mean)}, {np.shape(q_cov)}, "
                    f"{np.shape(q_weights)})"
                ) from e
        m, c, w = out
        return w, m, c

    def _div(self, q_mean: Any, q_cov: Any, q_weights: Any) -> tuple[np.ndarray, np.ndarray]:
        w, m, c = self._q(q_mean, q_cov, q_weights)
        if self._model is not None:
            assert self._x is not None  # set together with _model by posterior()
            kl, fd = _core.toy_divergences(
                self._model, self._x, self.log_z.reshape(-1), w, m, c, **self._params
            )
        else:
            assert self._log_joint is not None  # set by grid_posterior()
            kl, fd = _core.grid_divergences(self._log_joint, list(self.axes), w, m, c)
        return kl.reshape(self.batch_shape), fd.reshape(self.batch_shape)

    def kl_from(self, q_mean: Any, q_cov: Any, q_weights: Any = None) -> np.ndarray:
        """KL(q ‖ p(z|x)) per observation, shape (*batch,).

        Args:
            q_mean: (..., L) Gaussian mean, or (..., C, L) component means if ``q_weights``.
            q_cov: (..., L, L) covariance, or (..., C, L, L) component covariances.
            q_weights: None (Gaussian q) or (..., C) non-negative mixture weights (normalised
                internally). Leading dims broadcast against the batch.

        Built-in models: E_q by a whitened trapezoid rule per q component (independent of the
        grid; spectrally accurate for smooth models), log p(z|x) = log p(x,z) − log_z with the
        grid's log_z. User grids: quadrature on the grid with q restricted to it (q should lie
        well inside the grid).
        """
        return self._div(q_mean, q_cov, q_weights)[0]

    def fd_from(self, q_mean: Any, q_cov: Any, q_weights: Any = None) -> np.ndarray:
        """Fisher divergence ½ E_q ‖∇_z log q − ∇_z log p(z|x)‖² per observation, (*batch,).

        Arguments as :meth:`kl_from`. Built-in models use the analytic posterior score. User grids
        use second-order finite differences of the log-joint (central inside, one-sided
        second-order at the edges): the score error is O(Δ²) in the grid spacing Δ.
        """
        return self._div(q_mean, q_cov, q_weights)[1]


def _axes(axes: Any) -> list[np.ndarray]:
    if isinstance(axes, np.ndarray) and axes.ndim == 1:
        axes = (axes,)
    if not isinstance(axes, (tuple, list)):
        raise TypeError(
            f"axes: expected a tuple of one or two 1-D arrays, got {type(axes).__name__}"
        )
    if len(axes) not in (1, 2):
        raise ValueError(f"axes: expected a tuple of one or two 1-D arrays, got {len(axes)}")
    out = [V.array("axes", a, real=True) for a in axes]
    for i, a in enumerate(out):
        if a.ndim != 1:
            raise ValueError(f"axes: each axis must be 1-D, got shape {a.shape}")
        if len(a) < 3:
            raise ValueError(f"axes: axis {i} needs at least 3 points, got {len(a)}")
    return out


def grid_posterior(log_joint: Any, axes: Any) -> Posterior:
    """Summarise log-joints tabulated on a uniform grid.

    Args:
        log_joint: (*batch, n1) or (*batch, n1, n2) values of log p(x, z) (``ij`` indexing);
            −inf allowed (zero density) except for ``kl_from``/``fd_from``; NaN/+inf rejected.
        axes: tuple of one or two strictly increasing, uniformly spaced 1-D arrays (≥ 3 points).

    Returns:
        :class:`Posterior`; integrals by the rectangle rule (error decays faster than any power
        of the spacing for a smooth posterior that vanishes inside the grid).

    Raises:
        ValueError: shapes, empty batch, an axis with < 3 points, non-uniform axes, NaN/+inf, a
            row that is −inf everywhere.
        TypeError: non-numeric input (or float16/bool/complex), ``axes`` not a tuple/list.
    """
    ax = _axes(axes)
    lj = V.array("log_joint", log_joint, real=True)
    L = len(ax)
    shape = tuple(len(a) for a in ax)
    if lj.ndim < L or lj.shape[lj.ndim - L :] != shape:
        raise ValueError(
            f"log_joint: expected shape (*batch, {', '.join(map(str, shape))}), got {lj.shape}"
        )
    bs = lj.shape[: lj.ndim - L]
    flat = lj.reshape(-1, int(np.prod(shape)))
    return Posterior._from_flat(_core.grid_summary(flat, ax), bs, ax, _log_joint=flat)


def _model_params(model: str, params: dict) -> dict:
    V.choice("model", model, MODELS)
    allowed = {"sigma", "alpha", "W", "b"}
    extra = set(params) - allowed
    if extra:
        raise ValueError(f"{min(extra)}: unknown parameter for toy model {model!r}")
    out: dict = {}
    for name in ("sigma", "alpha"):
        v = params.get(name)
        if v is None:
            continue
        out[name] = _real(name, v)
    if params.get("W") is not None:
        w = V.array("W", params["W"], real=True)
        out["w"] = w.reshape(-1, 1) if w.ndim == 1 else w
        if out["w"].ndim != 2 or out["w"].size == 0:
            raise ValueError(f"W: expected a non-empty shape (D, L), got {w.shape}")
        if not np.isfinite(out["w"]).all():
            raise ValueError("W: must be finite")
    if params.get("b") is not None:
        out["b"] = V.array("b", params["b"], real=True).reshape(-1)
        if not np.isfinite(out["b"]).all():
            raise ValueError("b: must be finite")
    return out


def _model_dims(model: str, p: dict) -> tuple[int, int]:
    """(D, L) of a built-in model."""
    if model == "linear":
        w = p.get("w")
        return (1, 1) if w is None else (w.shape[0], w.shape[1])
    return 1, 2


def _x_batch(x: Any, D: int) -> tuple[np.ndarray, tuple[int, ...]]:
    xa = V.array("x", x, real=True)
    if D == 1 and (xa.ndim == 0 or xa.shape[-1] != 1):
        bs = xa.shape
    else:
        if xa.ndim == 0 or xa.shape[-1] != D:
            raise ValueError(f"x: expected shape (*batch, {D}), got {xa.shape}")
        bs = xa.shape[:-1]
    return np.ascontiguousarray(xa.reshape(-1, D)), bs


def posterior(
    model: str, x: Any, *, lo: float = -3.0, hi: float = 3.0, n: int = 100, **params: Any
) -> Posterior:
    """Grid posterior of a built-in toy model with prior N(0, I).

    Models (σ the observation SD): "sym" x ~ N(z1·z2, σ²), σ=0.5; "soft" x ~ N(softplus_α(z1)·z2,
    σ²), α=10, σ=1; "relu" N(relu(z1)·z2, σ²); "bias" N((2z1+1)·z2, σ²); "linear"
    x ~ N(W z + b, σ² I_D) with ``W`` (D, L), L ∈ {1, 2} (default W=[[1]]), ``b`` (D,).

    Args:
        model: model name. x: (*batch,) scalar observations (D = 1) or (*batch, D).
        lo, hi, n: grid [lo, hi] with n points per latent axis. params: sigma, alpha, W, b.

    Returns:
        :class:`Posterior` with the analytic posterior score used by ``fd_from``.

    Raises:
        TypeError: non-numeric ``x``/``W``/``b`` (or float16/bool/complex), non-real ``sigma``,
            ``alpha``, ``lo``, ``hi``, non-int ``n``.
        ValueError: unknown ``model`` or parameter, shapes, an empty batch, NaN/inf in x, W or b,
            σ ≤ 0, α ≤ 0, ``n < 3``, not ``lo < hi`` finite, a grid of more than
            :data:`MAX_GRID_VALUES` values (batch × n^L).
    """
    p = _model_params(model, params)
    D, L = _model_dims(model, p)
    xf, bs = _x_batch(x, D)
    n = V.positive_int("n", n, minimum=3)  # grid points per axis
    size = xf.shape[0] * n**L
    if size > MAX_GRID_VALUES:
        raise ValueError(
            f"n: {xf.shape[0]} observations × {n}**{L} grid points = {size} values exceeds "
            f"{MAX_GRID_VALUES}; use fewer points or split the batch"
        )
    lo, hi = _real("lo", lo), _real("hi", hi)
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise ValueError(f"lo: need finite lo < hi, got lo={lo}, hi={hi}")
    ax = [np.linspace(lo, hi, n)] * L
    summary = _core.toy_posterior(model, xf, ax, **p)
    return Posterior._from_flat(summary, bs, ax, _model=model, _params=p, _x=xf)


def log_joint(model: str, x: Any, z: Any, **params: Any) -> tuple[np.ndarray, np.ndarray]:
    """log p(x, z) and ∇_z log p(x, z) of a built-in model at points z.

    Args: x (*batch,) or (*batch, D); z (P, L). Returns ((*batch, P), (*batch, P, L)).
    """
    p = _model_params(model, params)
    D, L = _model_dims(model, p)
    xf, bs = _x_batch(x, D)
    za = V.array("z", z, real=True)
    if za.ndim != 2:
        raise ValueError(f"z: expected shape (P, {L}), got {za.shape}")
    lj, sc = _core.toy_log_joint(model, xf, za, **p)
    return lj.reshape(*bs, -1), sc.reshape(*bs, za.shape[0], -1)


def linear_closed_form(
    x: Any, *, W: Any = None, b: Any = None, sigma: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact (log evidence, posterior mean, posterior covariance) of the "linear" model.

    x ~ N(W z + b, σ² I), z ~ N(0, I): log p(x) = log N(x; b, W Wᵀ + σ² I), posterior covariance
    (I + WᵀW/σ²)⁻¹ and mean cov·Wᵀ(x − b)/σ². Shapes as :func:`posterior`.
    """
    p = _model_params("linear", {"W": W, "b": b, "sigma": sigma})
    w = p.get("w", np.ones((1, 1)))
    D, L = w.shape
    bb = p.get("b", np.zeros(D))
    xf, bs = _x_batch(x, D)
    s2 = float(sigma) ** 2
    cov = np.linalg.inv(np.eye(L) + w.T @ w / s2)
    mean = (xf - bb) @ w @ cov.T / s2
    S = w @ w.T + s2 * np.eye(D)
    r = xf - bb
    _, logdet = np.linalg.slogdet(S)
    quad = np.einsum("bi,ij,bj->b", r, np.linalg.inv(S), r)
    log_z = -0.5 * (D * np.log(2 * np.pi) + logdet + quad)
    return log_z.reshape(bs), mean.reshape(*bs, L), np.broadcast_to(cov, (*bs, L, L)).copy()


__all__ = ["MODELS", "Posterior", "grid_posterior", "linear_closed_form", "log_joint", "posterior"]
