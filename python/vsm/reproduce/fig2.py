"""Figure 2 (and Fig. 5 / A.5.2): fitting Gaussians and Gaussian mixtures to 2-D toy posteriors.

Toy models (MATH.md Part III §5, eq. 11), prior N(0, I₂), one observation x = 2:
    "sym":  x ~ N(z1·z2, 0.5²)                  (bimodal posterior, saddle at the origin)
    "soft": x ~ N(softplus_10(z1)·z2, 1)
The exact posteriors come from grid quadrature in Rust (:func:`vsm.toy.posterior`), which also
gives the exact KL(q‖p(z|x)) and FD ½E_q‖∇log q − ∇log p(z|x)‖² of every fitted q.

Gaussian fits (Fig. 2): q = N(m, diag(e^{2ς})), m started on a grid of points, ς = 0; one sample
per step; three gradient estimators, each with SGD and with Adam, all runs batched in one tensor:
    "fd_repar":   ‖∇_z log q(z) − ∇_z log p(x|z) + z‖² (no ½), z = m + e^ς ε reparametrised;
    "fd_norepar": the same loss with z detached (the paper's biased gradient, MATH.md §8 A.5.1);
    "kld":        −log p(x|z) − log p(z) − Σ ς  (reparametrised z, analytic entropy; = KL + const).
∇_z log p(x|z) is taken by autograd (create_graph, so reparametrised gradients see it).
The paper used lr 1e-4 for 10⁶ steps (SGD and Adam). Quick mode: 2·10⁴ steps, SGD lr 3e-4
(SGD "time" lr × steps = 6 vs the paper's 100; larger SGD rates diverge on the cubic "sym"
gradients from far starts), Adam lr 3e-3 (path length up to 60 per coordinate), starts on a
5 × 5 lattice over [−2, 2]²; full mode: 2·10⁵ steps, SGD 1e-4, Adam 1e-3, 7 × 7 over [−2.5, 2.5]².
The final q is the average of the last 10 % of the iterates (one-sample gradients are noisy);
runs whose parameters leave |m| < 50, |ς| < 20 or become non-finite count as diverged.
"Low-density region": ‖m‖ < 0.5.

Mixture fit (A.5.2, Fig. 5): q = 10-component diagonal Gaussian mixture (logits 0, means ~ N(0,I),
log-SDs 0), Adam, 10 non-reparametrised samples per step, loss (no ½)
(1/10) Σ_k ‖∇_z log q(z_k) − ∇_z log p(x|z_k) + z_k‖² with ∇_z log q by autograd
(create_graph); several random restarts batched in one tensor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import toy
from ._common import FigureConfig, Timer, plt, prepare_out, save_figure, write_results

LIKELIHOODS = ("sym", "soft")
METHODS = ("fd_repar", "fd_norepar", "kld")
OPTIMISERS = ("sgd", "adam")
X_OBS = 2.0
LOW_DENSITY_RADIUS = 0.5


@dataclass
class Fig2Config(FigureConfig):
    """Settings of the Figure 2 reproduction.

    grid: initial means on a grid × grid lattice over [-init_range, init_range]²;
    steps / lr_sgd / lr_adam: Gaussian-fit optimisation; mix_*: mixture fit (A.5.2);
    quad_n / quad_lim: quadrature grid of the exact posterior.

    The defaults are the quick mode (minutes on a 2-core CPU: larger lr, fewer steps than the
    paper; module docstring); :meth:`full` is closer to the paper.
    """

    grid: int = 5
    init_range: float = 2.0
    steps: int = 20000
    lr_sgd: float = 3e-4
    lr_adam: float = 3e-3
    mix_components: int = 10
    mix_restarts: int = 10
    mix_samples: int = 10
    mix_steps: int = 1500
    mix_lr: float = 5e-3
    quad_n: int = 201
    quad_lim: float = 6.0
    seed: int = 0

    @classmethod
    def full(cls) -> Fig2Config:
        """Closer to the paper: finer grid, 10× more steps, A.5.2's lr 1e-3 × 5000 steps."""
        return cls(
            grid=7,
            init_range=2.5,
            steps=200000,
            lr_sgd=1e-4,
            lr_adam=1e-3,
            mix_steps=5000,
            mix_lr=1e-3,
        )


# ----------------------------------------------------------------------------- model


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


def fit_gaussians(model: str, cfg: Fig2Config, *, record_every: int = 0) -> dict[str, Any]:
    """Run every (method, optimiser, initial mean) Gaussian fit for ``model`` in one batch.

    Returns dict with "runs" (list of (method, optimiser, start index)), "m", "log_sd" final
    (iterate-averaged) parameters (R, 2), and "traj" (T, R, 2) recorded means.
    """
    gen = torch.Generator().manual_seed(cfg.seed)
    starts = torch.tensor(initial_means(cfg), dtype=torch.float64)
    n0 = starts.shape[0]
    runs = [(me, op, i) for op in OPTIMISERS for me in METHODS for i in range(n0)]
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


# ----------------------------------------------------------------------------- run


def _summaries(model: str, post: Any, fit: dict[str, Any]) -> dict[str, Any]:
    """Exact KL/FD of every fitted Gaussian and per-(method, optimiser) summaries."""
    ok = np.isfinite(fit["m"]).all(-1) & np.isfinite(fit["log_sd"]).all(-1)
    ok &= (np.abs(fit["m"]) < 50).all(-1) & (np.abs(fit["log_sd"]) < 20).all(-1)
    m = np.where(ok[:, None], fit["m"], 0.0)  # diverged runs: placeholder, excluded below
    var = np.where(ok[:, None], np.exp(2.0 * np.clip(fit["log_sd"], -20, 20)), 1.0)
    R = len(fit["runs"])
    cov = np.zeros((R, 2, 2))
    cov[:, 0, 0], cov[:, 1, 1] = var[:, 0], var[:, 1]
    xs = np.full(R, X_OBS)
    bpost = toy.posterior(model, xs, lo=-post["lim"], hi=post["lim"], n=post["n"])
    kl = bpost.kl_from(m, cov)
    fd = bpost.fd_from(m, cov)
    lj, _ = toy.log_joint(model, X_OBS, m)
    rel_log_dens = lj.reshape(-1) - post["max_log_joint"]
    near = np.linalg.norm(m, axis=-1) < LOW_DENSITY_RADIUS
    out: dict[str, Any] = {}
    for op in OPTIMISERS:
        for me in METHODS:
            sel_all = np.array([r[0] == me and r[1] == op for r in fit["runs"]])
            sel = sel_all & ok
            if not sel.any():
                out[f"{me}/{op}"] = {"n_runs": int(sel_all.sum()), "frac_diverged": 1.0}
                continue
            out[f"{me}/{op}"] = {
                "frac_diverged": float(1.0 - sel.sum() / sel_all.sum()),
                "kl_median": float(np.median(kl[sel])),
                "kl_mean": float(np.mean(kl[sel])),
                "fd_median": float(np.median(fd[sel])),
                "fd_mean": float(np.mean(fd[sel])),
                "frac_low_density": float(np.mean(near[sel])),
                "rel_log_density_at_mean_median": float(np.median(rel_log_dens[sel])),
                "n_runs": int(sel_all.sum()),
            }
    return {"per_method": out, "kl": kl, "fd": fd, "ok": ok}


def run(out: str | Path, config: Fig2Config | None = None) -> dict[str, Any]:
    """Run Figure 2 (Gaussian trajectories) and the A.5.2 mixture fits into ``out``."""
    cfg = config or Fig2Config.quick()
    out = prepare_out(out)
    timer = Timer()
    torch.manual_seed(cfg.seed)
    results: dict[str, Any] = {
        "figure": "fig2",
        "x": X_OBS,
        "config": vars(cfg).copy(),
        "low_density_radius": LOW_DENSITY_RADIUS,
    }
    posts, fits, mixes = {}, {}, {}
    for model in LIKELIHOODS:
        p = toy.posterior(model, X_OBS, lo=-cfg.quad_lim, hi=cfg.quad_lim, n=cfg.quad_n)
        g = np.linspace(-cfg.quad_lim, cfg.quad_lim, cfg.quad_n)
        zz = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
        lj, _ = toy.log_joint(model, X_OBS, zz)
        posts[model] = {
            "post": p,
            "lim": cfg.quad_lim,
            "n": cfg.quad_n,
            "max_log_joint": float(lj.max()),
        }
        # the best single Gaussian by KL from the exact moments is not unique for "sym"; report
        # the moment-matched Gaussian's divergences as a reference point
        fits[model] = fit_gaussians(model, cfg)
        summ = _summaries(model, posts[model], fits[model])
        mix = fit_mixtures(model, cfg)
        mixes[model] = mix
        R = cfg.mix_restarts
        var = np.exp(2 * mix["log_sd"])
        mcov = np.zeros((R, cfg.mix_components, 2, 2))
        mcov[..., 0, 0], mcov[..., 1, 1] = var[..., 0], var[..., 1]
        bpost = toy.posterior(
            model, np.full(R, X_OBS), lo=-cfg.quad_lim, hi=cfg.quad_lim, n=cfg.quad_n
        )
        mix_fd = bpost.fd_from(mix["means"], mcov, mix["weights"])
        mix_kl = bpost.kl_from(mix["means"], mcov, mix["weights"])
        # weight of the mixture on the z1 > 0 half-plane (for "sym": mode balance; exact = 0.5)
        w_pos = (mix["weights"] * (mix["means"][..., 0] > 0)).sum(-1)
        results[model] = {
            "posterior": {"log_z": float(p.log_z), "mean": p.mean, "cov": p.cov},
            "gaussian": summ["per_method"],
            "mixture": {
                "fd_per_restart": mix_fd,
                "kl_per_restart": mix_kl,
                "fd_median": float(np.median(mix_fd)),
                "kl_median": float(np.median(mix_kl)),
                "final_loss_mean": float(mix["loss"][-50:].mean()),
                "weight_z1_positive": w_pos,
            },
        }
    _plot_trajectories(out / "fig2.png", cfg, posts, fits, results)
    _plot_mixtures(out / "fig2_mixture.png", cfg, posts, mixes, results)
    results["seconds"] = timer.elapsed()
    write_results(out, results)
    return results


# ----------------------------------------------------------------------------- plots


def _contour(ax: Any, post: dict[str, Any]) -> None:
    p = post["post"]
    g = p.axes[0]
    ax.contourf(g, g, p.density.T, levels=12, cmap="Greys")


def _square_panel(ax: Any, lim: float, title: str) -> None:
    """A panel of the latent square [-lim, lim]² with a small title."""
    ax.set_title(title, fontsize=8)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)


def _finish(fig: Any, path: Path, title: str, *, fontsize: int) -> None:
    """Title, lay out and write a figure."""
    fig.suptitle(title, fontsize=fontsize)
    fig.tight_layout()
    save_figure(fig, path)


def _plot_trajectories(
    path: Path,
    cfg: Fig2Config,
    posts: dict[str, dict[str, Any]],
    fits: dict[str, dict[str, Any]],
    results: dict[str, Any],
) -> None:
    fig, axes = plt.subplots(4, 3, figsize=(11, 14.5))
    lim = cfg.init_range + 0.8
    for i, model in enumerate(LIKELIHOODS):
        fit = fits[model]
        traj = fit["traj"]
        for j, op in enumerate(OPTIMISERS):
            for k, me in enumerate(METHODS):
                ax = axes[2 * i + j, k]
                _contour(ax, posts[model])
                sel = [n for n, r in enumerate(fit["runs"]) if r[0] == me and r[1] == op]
                for n in sel:
                    ax.plot(traj[:, n, 0], traj[:, n, 1], "-", color="tab:blue", lw=0.7, alpha=0.8)
                ax.plot(traj[0, sel, 0], traj[0, sel, 1], "o", color="tab:orange", ms=3)
                ax.plot(fit["m"][sel, 0], fit["m"][sel, 1], "x", color="tab:red", ms=5)
                ax.add_patch(
                    plt.Circle((0, 0), LOW_DENSITY_RADIUS, fill=False, ls=":", color="tab:red")
                )
                s = results[model]["gaussian"][f"{me}/{op}"]
                if "kl_median" in s:
                    title = (
                        f"median KL={s['kl_median']:.2f} FD={s['fd_median']:.2f}, "
                        f"‖m‖<{LOW_DENSITY_RADIUS}: {s['frac_low_density']:.0%}"
                    )
                else:
                    title = "all runs diverged"
                if s.get("frac_diverged", 0.0) > 0:
                    title += f", diverged {s['frac_diverged']:.0%}"
                _square_panel(ax, lim, f"{model}, {me}, {op}\n{title}")
    _finish(
        fig,
        path,
        "Gaussian q fitted to toy posteriors (x=2): mean trajectories from orange "
        "starts to red crosses",
        fontsize=10,
    )


def _plot_mixtures(
    path: Path,
    cfg: Fig2Config,
    posts: dict[str, dict[str, Any]],
    mixes: dict[str, Any],
    results: dict[str, Any],
) -> None:
    n_show = min(cfg.mix_restarts, 4)
    fig, axes = plt.subplots(2, n_show, figsize=(3.2 * n_show, 6.6), squeeze=False)
    lim = 3.5
    g = np.linspace(-lim, lim, 141)
    zz = torch.tensor(np.stack(np.meshgrid(g, g, indexing="ij"), -1), dtype=torch.float64)
    for i, model in enumerate(LIKELIHOODS):
        mix = mixes[model]
        for r in range(n_show):
            ax = axes[i, r]
            _contour(ax, posts[model])
            mu = torch.tensor(mix["means"][r])
            sd = torch.exp(torch.tensor(mix["log_sd"][r]))
            w = torch.tensor(mix["weights"][r])
            d = (zz.unsqueeze(-2) - mu) / sd
            comp = -0.5 * (d**2).sum(-1) - torch.log(sd).sum(-1) - math.log(2 * math.pi)
            dens = torch.exp(torch.logsumexp(comp + torch.log(w), -1)).numpy()
            ax.contour(g, g, dens.T, levels=6, colors="tab:blue", linewidths=0.8)
            fd = results[model]["mixture"]["fd_per_restart"][r]
            _square_panel(ax, lim, f"{model}, restart {r}: FD={fd:.3f}")
    _finish(
        fig,
        path,
        "10-component mixture q by FD without reparametrisation (A.5.2): "
        "posterior (grey) and q (blue)",
        fontsize=9,
    )
