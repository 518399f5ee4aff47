"""Figure 2's plots: the Gaussian-fit trajectories over the exact posteriors (``fig2.png``) and
the mixture fits (``fig2_mixture.png``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._common import plt, save_figure
from .config import LIKELIHOODS, LOW_DENSITY_RADIUS, METHODS, OPTIMISERS, Fig2Config


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
