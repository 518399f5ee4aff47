"""Reference twins of the Rust engine (``vsm._core``): the same formulas in plain NumPy, float64.

:mod:`vsm.reference` stands in for the fused (Triton) ops; this module stands in for the Rust
engine. Used by the tests (agreement with Rust) and by ``benches/bench_rust.py`` (the NumPy
baseline).
Shapes follow the Rust functions: batches flattened to B, grids flattened to G (``ij`` order).
"""

from __future__ import annotations

from typing import Any

import numpy as np

LN_2PI = float(np.log(2 * np.pi))


def _lse(a: np.ndarray, axis: int = -1) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return (m + np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True))).squeeze(axis)


def is_log_evidence(log_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, K) → log_p = logsumexp − log K, ess = (Σw)²/Σw² (B,).

    A row whose weights all vanish (all −∞) gives log_p = −∞ and ess = 0, as the Rust engine.
    """
    lw = np.asarray(log_w, dtype=np.float64)
    m = lw.max(-1, keepdims=True)
    dead = np.isneginf(m[:, 0])
    w = np.exp(lw - np.where(np.isneginf(m), 0.0, m))
    s1, s2 = w.sum(-1), (w * w).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = m[:, 0] + np.log(s1) - np.log(lw.shape[1])
        ess = np.where(dead, 0.0, s1 * s1 / np.where(dead, 1.0, s2))
    return np.where(dead, -np.inf, log_p), ess


def grid_points(axes: list[np.ndarray]) -> np.ndarray:
    """(G, L) grid points in ``ij`` order."""
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.reshape(-1) for m in mesh], axis=-1)


def grid_summary(
    log_joint: np.ndarray, axes: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(B, G) log-joint → (log_z (B,), mean (B, L), cov (B, L, L), density (B, G))."""
    cell = float(np.prod([a[1] - a[0] for a in axes]))
    z = grid_points(axes)
    m = log_joint.max(-1, keepdims=True)
    e = np.exp(log_joint - m)
    s = e.sum(-1, keepdims=True)
    log_z = (m + np.log(s))[:, 0] + np.log(cell)
    p = e / s
    mean = p @ z
    d = z[None] - mean[:, None]
    cov = np.einsum("bg,bgi,bgj->bij", p, d, d)
    return log_z, mean, cov, p / cell


def grid_fd_scores(log_joint: np.ndarray, axes: list[np.ndarray]) -> np.ndarray:
    """(B, G) → (B, G, L) second-order finite differences (``numpy.gradient``, edge_order=2)."""
    shape = tuple(len(a) for a in axes)
    lj = log_joint.reshape(-1, *shape)
    grads = np.gradient(lj, *axes, axis=tuple(range(1, 1 + len(axes))), edge_order=2)
    if len(axes) == 1:
        grads = [grads]
    return np.stack([g.reshape(lj.shape[0], -1) for g in grads], axis=-1)


def softplus(u: np.ndarray, alpha: float) -> np.ndarray:
    """softplus_α(u) = log(1 + e^{αu})/α with MATH.md's cut-offs (u if αu ≥ 20, 0 if αu ≤ −20),
    elementwise, as the Rust toy models compute it."""
    t = alpha * u
    mid = np.log1p(np.exp(np.clip(t, -20, 20))) / alpha
    return np.where(t >= 20, u, np.where(t <= -20, 0.0, mid))


def softplus_grad(u: np.ndarray, alpha: float) -> np.ndarray:
    """d softplus_α(u)/du = sigmoid(αu), elementwise, with the same cut-offs as :func:`softplus`."""
    t = alpha * u
    mid = 1.0 / (1.0 + np.exp(-np.clip(t, -20, 20)))
    return np.where(t >= 20, 1.0, np.where(t <= -20, 0.0, mid))


def toy_log_joint(
    model: str,
    x: np.ndarray,
    z: np.ndarray,
    sigma: float | None = None,
    alpha: float | None = None,
    w: np.ndarray | None = None,
    b: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """x (B, D), z (P, L) → log p(x, z) (B, P), ∇_z (B, P, L)."""
    s = sigma if sigma is not None else (0.5 if model == "sym" else 1.0)
    s2 = s * s
    prior = -0.5 * (z * z).sum(-1)
    if model == "linear":
        w = np.ones((1, 1)) if w is None else w
        b = np.zeros(w.shape[0]) if b is None else b
        D, L = w.shape
        const = -0.5 * D * (LN_2PI + np.log(s2)) - 0.5 * L * LN_2PI
        g = z @ w.T + b  # (P, D)
        r = (x[:, None, :] - g[None]) / s2  # (B, P, D)
        lj = const + prior[None] - 0.5 * s2 * (r * r).sum(-1)
        score = -z[None] + r @ w
        return lj, score
    const = -0.5 * (LN_2PI + np.log(s2)) - LN_2PI  # the nonlinear models: D = 1, L = 2
    z1, z2 = z[:, 0], z[:, 1]
    if model == "sym":
        g, j1, j2 = z1 * z2, z2, z1
    elif model == "soft":
        a = 10.0 if alpha is None else alpha
        h = softplus(z1, a)
        g, j1, j2 = h * z2, softplus_grad(z1, a) * z2, h
    elif model == "relu":
        h = np.maximum(z1, 0.0)
        g, j1, j2 = h * z2, np.where(z1 > 0, z2, 0.0), h
    elif model == "bias":
        g, j1, j2 = (2 * z1 + 1) * z2, 2 * z2, 2 * z1 + 1
    else:
        raise ValueError(f"model: unknown toy model {model!r}")
    r = (x[:, 0:1] - g[None]) / s2  # (B, P)
    lj = const + prior[None] - 0.5 * s2 * r * r
    score = -z[None] + np.stack([j1[None] * r, j2[None] * r], axis=-1)
    return lj, score


def toy_posterior(
    model: str, x: np.ndarray, axes: list[np.ndarray], **params: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grid posterior of a built-in model: as :func:`grid_summary` of its log-joint."""
    lj, _ = toy_log_joint(model, x, grid_points(axes), **params)
    return grid_summary(lj, axes)


def mixture_log_pdf_and_score(
    z: np.ndarray, weights: np.ndarray, means: np.ndarray, covs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """z (P, L); weights (C,), means (C, L), covs (C, L, L) → log q (P,), ∇ log q (P, L)."""
    L = z.shape[1]
    prec = np.linalg.inv(covs)
    _, logdet = np.linalg.slogdet(covs)
    wts = weights / weights.sum()
    with np.errstate(divide="ignore"):
        logc = np.log(wts) - 0.5 * L * LN_2PI - 0.5 * logdet
    d = z[:, None, :] - means[None]  # (P, C, L)
    y = np.einsum("cij,pcj->pci", prec, d)
    lc = logc[None] - 0.5 * (d * y).sum(-1)  # (P, C)
    lq = _lse(lc, -1)
    r = np.exp(lc - lq[:, None])
    return lq, -(r[..., None] * y).sum(1)


def _quad(
    lw: np.ndarray, lq: np.ndarray, sq: np.ndarray, lp: np.ndarray, sp: np.ndarray
) -> tuple[float, float]:
    w = np.exp(lw - lw.max())
    w = w / w.sum()
    return (w * (lq - lp)).sum(), 0.5 * (w * ((sq - sp) ** 2).sum(-1)).sum()


def grid_divergences(
    log_joint: np.ndarray,
    axes: list[np.ndarray],
    q_weights: np.ndarray,
    q_means: np.ndarray,
    q_covs: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """KL(q‖p) and ½E_q‖∇log q − ∇log p‖² by grid quadrature, FD scores; (B,), (B,)."""
    log_z = grid_summary(log_joint, axes)[0]
    sc = grid_fd_scores(log_joint, axes)
    z = grid_points(axes)
    kl, fd = np.zeros(len(log_z)), np.zeros(len(log_z))
    for i in range(len(log_z)):
        lq, sq = mixture_log_pdf_and_score(z, q_weights[i], q_means[i], q_covs[i])
        kl[i], fd[i] = _quad(lq, lq, sq, log_joint[i] - log_z[i], sc[i])
    return kl, fd


def mixture_nodes(
    weights: np.ndarray, means: np.ndarray, covs: np.ndarray, n: int = 69, half_width: float = 8.5
) -> tuple[np.ndarray, np.ndarray]:
    """Whitened trapezoid nodes per component: (P, L) nodes and (P,) log weights."""
    L = means.shape[1]
    u = np.linspace(-half_width, half_width, n)
    lphi = -0.5 * u * u
    lphi = lphi - _lse(lphi)
    U = grid_points([u] * L)
    LU = grid_points([lphi] * L).sum(-1)
    wts = weights / weights.sum()
    zs, lws = [], []
    for c in range(len(wts)):
        if wts[c] == 0:
            continue
        ch = np.linalg.cholesky(covs[c])
        zs.append(means[c] + U @ ch.T)
        lws.append(np.log(wts[c]) + LU)
    return np.concatenate(zs), np.concatenate(lws)


def toy_divergences(
    model: str,
    x: np.ndarray,
    log_z: np.ndarray,
    q_weights: np.ndarray,
    q_means: np.ndarray,
    q_covs: np.ndarray,
    **params: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """KL and FD of mixture q against a built-in model's posterior (analytic scores); (B,), (B,)."""
    B = x.shape[0]
    kl, fd = np.zeros(B), np.zeros(B)
    for i in range(B):
        z, lw = mixture_nodes(q_weights[i], q_means[i], q_covs[i])
        lj, sp = toy_log_joint(model, x[i : i + 1], z, **params)
        lq, sq = mixture_log_pdf_and_score(z, q_weights[i], q_means[i], q_covs[i])
        kl[i], fd[i] = _quad(lw, lq, sq, lj[0] - log_z[i], sp[0])
    return kl, fd


class ISAccumulatorNumpy:
    """NumPy twin of the Rust ``ISAccumulator`` (vectorised over the chunk, online log-sum-exp)."""

    def __init__(self, x: np.ndarray, log_sigma2: float) -> None:
        self.x = np.asarray(x, dtype=np.float64)
        self.ls2 = float(log_sigma2)
        B, D = self.x.shape
        self.m = np.full(B, -np.inf)
        self.s1, self.s2, self.sq = np.zeros(B), np.zeros(B), np.zeros(B)
        self.sg = np.zeros((B, D))
        self.k = 0

    def add(self, x_mean: np.ndarray, log_prior: np.ndarray, log_proposal: np.ndarray) -> None:
        """Fold in a chunk: x_mean (B, Kc, D) decoder means, log_prior and log_proposal (B, Kc)."""
        _B, kc, D = x_mean.shape
        xm = x_mean.astype(np.float64, copy=False)  # same semantics as Rust: float64 sums
        diff = xm - self.x[:, None, :]
        sq = np.einsum("bkd,bkd->bk", diff, diff)
        lw = (
            -0.5 * D * (LN_2PI + self.ls2) - 0.5 * sq * np.exp(-self.ls2) + log_prior - log_proposal
        )
        m_new = np.maximum(self.m, lw.max(1))
        live = np.isfinite(m_new)  # a datum whose weights all vanished so far stays at zero
        shift = np.where(live, m_new, 0.0)
        a = np.exp(np.where(np.isfinite(self.m), self.m - shift, -np.inf))
        e = np.exp(lw - shift[:, None])
        self.s1 = a * self.s1 + e.sum(1)
        self.s2 = a * a * self.s2 + (e * e).sum(1)
        self.sq = a * self.sq + (e * sq).sum(1)
        # Σ e·(g − x), not Σ e·g: keeps the score's precision when |x| ≫ |g − x| (as Rust).
        self.sg = a[:, None] * self.sg + np.einsum("bk,bkd->bd", e, diff)
        self.m = m_new
        self.k += kc

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(log_p, ess, score, sm_loss) as the Rust accumulator."""
        s2 = np.exp(self.ls2)
        D = self.x.shape[1]
        dead = np.isneginf(self.m)  # all weights vanished: −∞, 0, NaN, NaN (as Rust)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_p = np.where(dead, -np.inf, self.m + np.log(self.s1) - np.log(self.k))
            ess = np.where(dead, 0.0, self.s1**2 / self.s2)
            score = self.sg / self.s1[:, None] / s2
            sm = self.sq / self.s1 / s2**2 - D / s2 - 0.5 * (score**2).sum(1)
        score[dead] = np.nan
        sm[dead] = np.nan
        return log_p, ess, score, sm
