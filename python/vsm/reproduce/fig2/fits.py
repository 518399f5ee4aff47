"""Figure 2's fits: the toy log-likelihoods, the batched Gaussian fits (three gradient
estimators × SGD/Adam from a lattice of starts) and the batched mixture fits (A.5.2)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .config import LIKELIHOODS, METHODS, OPTIMISERS, X_OBS, Fig2Config


def log_lik(model: str, z: torch.Tensor, x: float = X_OBS) -> torch.Tensor:
    """log p(x|z) of toy ``model`` ("sym" or "soft") at z (..., 2) → (...)."""
    if model == "sym":
        mean, sd = z[..., 0] * z[..., 1], 0.5
    elif model == "soft":
        mean, sd = F.softplus(z[..., 0], beta=10.0, threshold=20.0) * z[..., 1], 1.0
    else:
        raise ValueError(f"model must be one of {LIKELIHOODS}, got {model!r}")
    return -0.5 * ((x - mean) / sd) ** 2 - math.log(sd) - 0.5 * math.log(2 * math.pi)


def _grad_log_lik(model: str, z: torch.Tensor) -> torch.Tensor:
    """∇_z log p(x|z) by autograd, kept in the graph (create_graph)."""
    if not z.requires_grad:
        z = z.requires_grad_(True)
    (g,) = torch.autograd.grad(log_lik(model, z).sum(), z, create_graph=True)
    return g


def initial_means(cfg: Fig2Config) -> np.ndarray:
    """(grid², 2) initial means on a regular lattice (the paper's 'orange dots' are unknown)."""
    g = np.linspace(-cfg.init_range, cfg.init_range, cfg.grid)
    a, b = np.meshgrid(g, g, indexing="ij")
    return np.stack([a.ravel(), b.ravel()], -1)


def gaussian_runs(n_starts: int) -> list[tuple[str, str, int]]:
    """(method, optimiser, start index) of every Gaussian fit, in :func:`fit_gaussians`' order
    (first the SGD half, then the Adam half)."""
    return [(me, op, i) for op in OPTIMISERS for me in METHODS for i in range(n_starts)]


def fit_gaussians(model: str, cfg: Fig2Config, *, record_every: int = 0) -> dict[str, Any]:
    """Run every (method, optimiser, initial mean) Gaussian fit for ``model`` in one batch.

    Returns dict with "runs" (list of (method, optimiser, start index)), "m", "log_sd" final
    (iterate-averaged) parameters (R, 2), and "traj" (T, R, 2) recorded means.
    """
    gen = torch.Generator().manual_seed(cfg.seed)
    starts = torch.tensor(initial_means(cfg), dtype=torch.float64)
    n0 = starts.shape[0]
    runs = gaussian_runs(n0)
    R = len(runs)
    half = R // 2  # first half SGD, second half Adam
    m0 = starts.repeat(len(OPTIMISERS) * len(METHODS), 1)
    params = {
        op: (
            m0[k * half : (k + 1) * half].clone().requires_grad_(True),
            torch.zeros(half, 2, dtype=torch.float64, requires_grad=True),
        )
        for k, op in enumerate(OPTIMISERS)
    }
    opts = [
        torch.optim.SGD(params["sgd"], lr=cfg.lr_sgd),
        torch.optim.Adam(params["adam"], lr=cfg.lr_adam),
    ]
    meth = torch.tensor([METHODS.index(r[0]) for r in runs])
    repar = (meth != METHODS.index("fd_norepar")).unsqueeze(-1)
    is_fd = meth != METHODS.index("kld")
    record_every = record_every or max(cfg.steps // 200, 1)
    avg_from = cfg.steps - max(cfg.steps // 10, 1)
    traj = [m0.clone()]
    sum_m = torch.zeros(R, 2, dtype=torch.float64)
    sum_s = torch.zeros(R, 2, dtype=torch.float64)
    for step in range(cfg.steps):
        m = torch.cat([params[op][0] for op in OPTIMISERS])
        ls = torch.cat([params[op][1] for op in OPTIMISERS])
        eps = torch.randn(R, 2, generator=gen, dtype=torch.float64)
        z_r = m + torch.exp(ls) * eps
        z = torch.where(repar, z_r, z_r.detach())
        gl = _grad_log_lik(model, z)
        score_q = -(z - m) * torch.exp(-2.0 * ls)
        fd = ((score_q - gl + z) ** 2).sum(-1)
        kld = -log_lik(model, z) + 0.5 * (z**2).sum(-1) - ls.sum(-1)
        loss = torch.where(is_fd, fd, kld).sum()
        for o in opts:
            o.zero_grad()
        loss.backward()
        for o in opts:
            o.step()
        if step >= avg_from:
            sum_m += m.detach()
            sum_s += ls.detach()
        if (step + 1) % record_every == 0:
            traj.append(torch.cat([params[op][0] for op in OPTIMISERS]).detach().clone())
    n_avg = cfg.steps - avg_from
    return {
        "runs": runs,
        "m": (sum_m / n_avg).numpy(),
        "log_sd": (sum_s / n_avg).numpy(),
        "traj": torch.stack(traj).numpy(),
        "starts": starts.numpy(),
    }


def fit_mixtures(model: str, cfg: Fig2Config) -> dict[str, np.ndarray]:
    """A.5.2 mixture fits (all restarts in one tensor): returns weights (R,C), means (R,C,2),
    log_sd (R,C,2) and the loss curve (steps,) averaged over restarts."""
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    R, C, S = cfg.mix_restarts, cfg.mix_components, cfg.mix_samples
    dt = torch.float64
    logits = torch.zeros(R, C, dtype=dt, requires_grad=True)
    means = torch.randn(R, C, 2, generator=gen, dtype=dt).requires_grad_(True)
    log_sd = torch.zeros(R, C, 2, dtype=dt, requires_grad=True)
    opt = torch.optim.Adam([logits, means, log_sd], lr=cfg.mix_lr)
    losses = []

    def log_q(z: torch.Tensor) -> torch.Tensor:  # z (S,R,2) -> (S,R)
        d = (z.unsqueeze(-2) - means) * torch.exp(-log_sd)  # (S,R,C,2)
        comp = -0.5 * (d**2).sum(-1) - log_sd.sum(-1) - math.log(2 * math.pi)
        return torch.logsumexp(comp + torch.log_softmax(logits, -1), -1)

    for _ in range(cfg.mix_steps):
        with torch.no_grad():  # non-reparametrised samples (q.sample())
            k = torch.multinomial(torch.softmax(logits, -1), S, replacement=True, generator=gen)
            k = k.T  # (S, R)
            idx = k.unsqueeze(-1).expand(S, R, 2)
            mu = torch.gather(means.expand(S, R, C, 2), 2, idx.unsqueeze(2)).squeeze(2)
            sd = torch.gather(torch.exp(log_sd).expand(S, R, C, 2), 2, idx.unsqueeze(2)).squeeze(2)
            z = mu + sd * torch.randn(S, R, 2, generator=gen, dtype=dt)
        z.requires_grad_(True)
        (sq,) = torch.autograd.grad(log_q(z).sum(), z, create_graph=True)
        gl = _grad_log_lik(model, z)
        loss = ((sq - gl + z) ** 2).sum(-1).mean(0)  # (R,)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
        losses.append(loss.detach().mean().item())
    return {
        "weights": torch.softmax(logits, -1).detach().numpy(),
        "means": means.detach().numpy(),
        "log_sd": log_sd.detach().numpy(),
        "loss": np.array(losses),
    }
