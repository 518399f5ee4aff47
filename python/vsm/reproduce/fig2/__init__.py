"""Figure 2 (and Fig. 5 / A.5.2): fitting Gaussians and Gaussian mixtures to 2-D toy posteriors.

Toy models (MATH.md Part III §5, eq. 11), prior N(0, I₂), one observation x = 2::

    "sym":  x ~ N(z1·z2, 0.5²)                  (bimodal posterior, saddle at the origin)
    "soft": x ~ N(softplus_10(z1)·z2, 1)

The exact posteriors come from grid quadrature in Rust (:func:`vsm.toy.posterior`), which also
gives the exact KL(q‖p(z|x)) and FD ½E_q‖∇log q − ∇log p(z|x)‖² of every fitted q.

Gaussian fits (Fig. 2): q = N(m, diag(e^{2ς})), m started on a grid of points, ς = 0; one sample
per step; three gradient estimators, each with SGD and with Adam, all runs batched in one tensor::

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

Layout: :mod:`.config` (settings), :mod:`.fits` (the Gaussian and mixture fits), :mod:`.plots`;
this module runs them (:func:`run`) and summarises the fits against the exact posteriors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ... import toy
from .._common import Timer, prepare_out, write_results
from .config import (
    LIKELIHOODS,
    LOW_DENSITY_RADIUS,
    METHODS,
    OPTIMISERS,
    X_OBS,
    Fig2Config,
)
from .fits import fit_gaussians, fit_mixtures, initial_means, log_lik
from .plots import _plot_mixtures, _plot_trajectories

__all__ = [
    "LIKELIHOODS",
    "LOW_DENSITY_RADIUS",
    "METHODS",
    "OPTIMISERS",
    "X_OBS",
    "Fig2Config",
    "fit_gaussians",
    "fit_mixtures",
    "initial_means",
    "log_lik",
    "run",
]


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
