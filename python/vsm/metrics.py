"""Test-set metrics of a trained Gaussian VAE (MATH.md Part I "Evaluation", Part III §9).

- :func:`neg_elbo`: −ELBO per datum with 5 reparametrised samples and the closed-form KL;
- :func:`recon_mse`: mean squared error of g(μ(x̃)) against the clean x (per pixel);
- :func:`mmd2_cubic` / :func:`latent_mmd`: unbiased MMD² between one posterior draw per datum
  and as many prior draws, cubic kernel k(a, b) = (aᵀb + 1)³;
- :func:`mean_posterior_fd`: mean over 5 samples of the posterior FD (no ½, ``vsm.posterior_fd``);
- :func:`posterior_sd_histogram`: per-latent histograms of the posterior SDs s(x);
- :func:`importance_metrics`: IS negative log-likelihood, ESS and the Hyvärinen (SM) loss from
  :func:`vsm.importance.is_evaluate`;
- :func:`evaluate`: all of the above as a JSON-able dict.

All functions take x as (B, *data_shape) and the input-noise SD ``eta`` (x̃ = x + η ε, redrawn per
metric); they draw from torch's global RNG (wrap in ``torch.random.fork_rng`` to isolate).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from . import objectives as O
from .models import GaussianVAE, GaussianVAELike

__all__ = [
    "SD_BINS",
    "add_input_noise",
    "evaluate",
    "importance_metrics",
    "latent_mmd",
    "mean_posterior_fd",
    "mmd2_cubic",
    "neg_elbo",
    "posterior_sd_histogram",
    "recon_mse",
]

SD_BINS = np.linspace(0.0, 1.5, 31)
"""Bin edges of the posterior-SD histograms (the authors' ``linspace(0, 1.5, 31)``)."""


def add_input_noise(x: torch.Tensor, eta: float) -> torch.Tensor:
    """x̃ = x + η ε with fresh ε ~ N(0, I) from the global RNG (x itself when η = 0).

    The one place where input noise is drawn: the metrics below and the training objectives
    (:mod:`vsm.train.algorithm`) both use it.
    """
    return x + eta * torch.randn_like(x) if eta > 0 else x


def _chunks(x: torch.Tensor, size: int) -> Iterator[torch.Tensor]:
    for i in range(0, x.shape[0], size):
        yield x[i : i + size]


def mmd2_cubic(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD² between samples ``a`` (n, L) and ``b`` (m, L), cubic kernel (aᵀb + 1)³.

    MMD² = Σ_{i≠j} k(a_i, a_j)/(n(n−1)) + Σ_{i≠j} k(b_i, b_j)/(m(m−1)) − 2 Σ_{i,j} k(a_i, b_j)/(nm).
    Returns a 0-dim tensor in a's dtype (can be negative; its expectation is 0 when a and b come
    from the same distribution).

    Raises:
        ValueError: not 2-D, fewer than 2 rows, or different latent sizes.
    """
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 2 or t.shape[0] < 2:
            raise ValueError(f"{name}: expected shape (n ≥ 2, L), got {tuple(t.shape)}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"b: latent size {b.shape[1]} differs from a's {a.shape[1]}")
    n, m = a.shape[0], b.shape[0]
    kaa = (a @ a.T + 1) ** 3
    kbb = (b @ b.T + 1) ** 3
    kab = (a @ b.T + 1) ** 3
    saa = (kaa.sum() - kaa.diagonal().sum()) / (n * (n - 1))
    sbb = (kbb.sum() - kbb.diagonal().sum()) / (m * (m - 1))
    return saa + sbb - 2 * kab.mean()


@torch.no_grad()
def latent_mmd(model: GaussianVAELike, x: torch.Tensor, eta: float = 0.0) -> float:
    """Unbiased cubic-kernel MMD² between z_i ~ q(·|x̃_i) (one per datum) and as many N(0, I) draws."""
    mu, logvar = model.encode(add_input_noise(x, eta))
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    y = torch.randn_like(z)
    return float(mmd2_cubic(z.double(), y.double()))


@torch.no_grad()
def recon_mse(model: GaussianVAELike, x: torch.Tensor, eta: float = 0.0) -> float:
    """mean over data and dimensions of (x − g(μ(x̃)))², x̃ = x + η ε (noisy input, clean target)."""
    mu, _ = model.encode(add_input_noise(x, eta))
    return float(((model.decode(mu) - x) ** 2).mean())


def neg_elbo(
    model: GaussianVAELike, x: torch.Tensor, eta: float = 0.0, n_samples: int = 5
) -> torch.Tensor:
    """−ELBO per datum (B,) of the noisy x̃, with ``n_samples`` reparametrised samples and closed KL.

    Samples by :func:`vsm.objectives.sample_posterior`; the value is :func:`vsm.objectives.elbo`
    (summed over the D data dimensions, nats).
    """
    with torch.no_grad():
        xt = add_input_noise(x, eta).reshape(x.shape[0], -1)
        mu, logvar = model.encode(xt.reshape(x.shape))
        z = O.sample_posterior(mu, logvar, n_samples)
        x_mean = model.decode(z).reshape(n_samples, x.shape[0], -1)
        return O.elbo(xt, x_mean, model.log_sigma2, mu, logvar)


def mean_posterior_fd(
    model: GaussianVAELike, x: torch.Tensor, eta: float = 0.0, n_samples: int = 5
) -> torch.Tensor:
    """Posterior FD per datum (B,): mean over ``n_samples`` z ~ q(·|x̃) of PFD(z) (no ½).

    PFD(z) = ‖∇_z log q(z|x̃) + z − ∇_z log p(x̃|z)‖²: :func:`vsm.objectives.posterior_fd_loss`
    (its sampling and decoder VJP) evaluated without a graph.
    """
    with torch.no_grad():
        xt = add_input_noise(x, eta).reshape(x.shape[0], -1)
        mu, logvar = model.encode(xt.reshape(x.shape))
        return O.posterior_fd_loss(
            xt, model.decode, mu, logvar, model.log_sigma2, n_samples=n_samples, reparam=False
        )


@torch.no_grad()
def posterior_sd_histogram(
    model: GaussianVAELike, x: torch.Tensor, eta: float = 0.0, bins: np.ndarray = SD_BINS
) -> np.ndarray:
    """Histogram counts (L, len(bins) − 1) of the posterior SDs s_j(x̃) per latent dimension.

    SDs outside [bins[0], bins[-1]] are not counted (NumPy's histogram semantics).
    """
    _, logvar = model.encode(add_input_noise(x, eta))
    sd = torch.exp(0.5 * logvar).double().cpu().numpy()
    return np.stack([np.histogram(sd[:, j], bins=bins)[0] for j in range(sd.shape[1])])


def importance_metrics(
    model: GaussianVAELike,
    x: torch.Tensor,
    *,
    n_samples: int = 1000,
    proposal: str = "q",
    batch_size: int = 500,
) -> dict[str, Any]:
    """Importance-sampled NLL, ESS and SM loss on ``x`` via :func:`vsm.importance.is_evaluate`.

    Returns means over the data of ``nll`` = −log p̂(x) (nats per datum), ``ess`` and ``sm_loss``
    = Ĵ(x) (MATH.md Part I "Evaluation"), plus ``nll_per_dim`` = nll / D.
    """
    from .importance import is_evaluate

    nll, ess, sm = [], [], []
    with torch.no_grad():
        for xb in _chunks(x, batch_size):
            res = is_evaluate(model, xb, n_samples=n_samples, proposal=proposal)
            nll.append(-torch.as_tensor(res.log_p, dtype=torch.float64).reshape(-1))
            ess.append(torch.as_tensor(res.ess, dtype=torch.float64).reshape(-1))
            sm.append(torch.as_tensor(res.sm_loss, dtype=torch.float64).reshape(-1))
    nll_t = torch.cat(nll)
    return {
        "is_nll": float(nll_t.mean()),
        "is_nll_per_dim": float(nll_t.mean()) / x[0].numel(),
        "is_ess": float(torch.cat(ess).mean()),
        "sm_loss": float(torch.cat(sm).mean()),
        "is_samples": n_samples,
        "is_proposal": proposal,
    }


def evaluate(
    model: GaussianVAE,
    x: torch.Tensor,
    *,
    eta: float = 0.0,
    n_is: int = 0,
    is_proposal: str = "q",
    batch_size: int = 1000,
    histograms: bool = True,
) -> dict[str, Any]:
    """All test metrics of ``model`` on ``x`` (B, *data_shape) as a JSON-able dict.

    Keys: ``neg_elbo`` (nats per datum), ``mse``, ``mmd2``, ``posterior_fd``, ``sigma2``,
    ``n_test``; ``posterior_sd_hist`` (L lists of counts) and ``posterior_sd_bins`` when
    ``histograms``; with ``n_is > 0`` also ``is_nll``, ``is_nll_per_dim``, ``is_ess``,
    ``sm_loss`` (:func:`importance_metrics`).
    """
    was_training = model.training
    model.eval()
    try:
        elbo = torch.cat([neg_elbo(model, xb, eta).double() for xb in _chunks(x, batch_size)])
        pfd = torch.cat(
            [mean_posterior_fd(model, xb, eta).double() for xb in _chunks(x, batch_size)]
        )
        mse = [recon_mse(model, xb, eta) * xb.shape[0] for xb in _chunks(x, batch_size)]
        out: dict[str, Any] = {
            "n_test": int(x.shape[0]),
            "neg_elbo": float(elbo.mean()),
            "mse": float(sum(mse) / x.shape[0]),
            "mmd2": latent_mmd(model, x[: min(x.shape[0], 5000)], eta),
            "posterior_fd": float(pfd.mean()),
            "sigma2": float(torch.exp(model.log_sigma2.detach())),
        }
        if histograms:
            out["posterior_sd_bins"] = SD_BINS.tolist()
            out["posterior_sd_hist"] = posterior_sd_histogram(model, x, eta).tolist()
        if n_is > 0:
            out.update(importance_metrics(model, x, n_samples=n_is, proposal=is_proposal))
        return out
    finally:
        model.train(was_training)
