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

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ... import toy
from .._common import (
    Timer,
    prepare_out,
    previous_results,
    results_kept_on_stop,
    write_results,
)
from ..executors import Executor, LocalExecutor, Unit, UnitsFailed, log, run_units
from .config import (
    LIKELIHOODS,
    LOW_DENSITY_RADIUS,
    METHODS,
    OPTIMISERS,
    X_OBS,
    Fig2Config,
)
from .fits import fit_gaussians, fit_mixtures, gaussian_runs, initial_means, log_lik
from .plots import _plot_mixtures, _plot_trajectories

__all__ = [
    "LIKELIHOODS",
    "LOW_DENSITY_RADIUS",
    "METHODS",
    "OPTIMISERS",
    "X_OBS",
    "Fig2Config",
    "FITS",
    "fit_gaussians",
    "fit_mixtures",
    "gaussian_runs",
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


FITS = {"gaussians": fit_gaussians, "mixtures": fit_mixtures}
"""The fits of one toy likelihood; each (likelihood, fit) is one unit of the sweep."""


def _save_fit(path: Path, fit: dict[str, Any]) -> None:
    """Save a fit's arrays atomically (``runs`` is rebuilt from the config when loading)."""
    tmp = path.with_name(path.name + f".tmp.{os.getpid()}.npz")
    arrays: dict[str, Any] = {k: np.asarray(v) for k, v in fit.items() if k != "runs"}
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _load_fit(path: Path, kind: str, cfg: Fig2Config) -> dict[str, Any]:
    with np.load(path) as f:
        fit: dict[str, Any] = {k: f[k] for k in f.files}
    if kind == "gaussians":
        fit["runs"] = gaussian_runs(cfg.grid**2)
    return fit


def run(
    out: str | Path,
    config: Fig2Config | None = None,
    *,
    resume: bool = False,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Run Figure 2 (Gaussian trajectories) and the A.5.2 mixture fits into ``out``.

    Each (likelihood, fit) of :data:`FITS` is one unit of
    :func:`vsm.reproduce.executors.run_units` on ``executor`` (default: this process); its arrays
    go to ``out/fits/<likelihood>-<fit>.npz`` and ``results.json`` (``"units_done"``,
    ``"complete": false``) is rewritten as each one finishes. With ``resume`` the recorded units
    are loaded instead of run again, whichever executor made them. The starts of one fit share
    one random stream, so they stay one batched unit.
    """
    cfg = config or Fig2Config.quick()
    out = prepare_out(out)
    timer = Timer()
    torch.manual_seed(cfg.seed)
    prev = previous_results(out, "fig2", cfg) if resume else None
    if prev is not None and prev.get("complete"):
        print(f"fig2: already in {out}/results.json (--resume)", file=sys.stderr)
        return prev
    results: dict[str, Any] = {
        "figure": "fig2",
        "x": X_OBS,
        "config": vars(cfg).copy(),
        "low_density_radius": LOW_DENSITY_RADIUS,
    }
    seconds = float(prev.get("seconds", 0.0)) if prev else 0.0
    fits_dir = out / "fits"
    fits_dir.mkdir(exist_ok=True)
    recorded = set(prev.get("units_done", [])) if prev else set()
    done: dict[str, dict[str, Any]] = {}
    for model in LIKELIHOODS:
        for kind in FITS:
            key, path = f"{model}/{kind}", fits_dir / f"{model}-{kind}.npz"
            if key in recorded and path.is_file():
                done[key] = _load_fit(path, kind, cfg)
                print(f"fig2: {key}: recorded", file=sys.stderr)
    failed: dict[str, str] = {}

    def snapshot() -> dict[str, Any]:
        return {
            **results,
            "units_done": sorted(done),
            "failed": dict(failed),
            "complete": False,
            "seconds": seconds + timer.elapsed(),
        }

    def record(unit: Unit, fit: dict[str, Any]) -> None:
        model, kind = unit.key.split("/")
        _save_fit(fits_dir / f"{model}-{kind}.npz", fit)
        done[unit.key] = fit
        write_results(out, snapshot())
        log(f"fig2: {unit.key}: done")

    def failure(unit: Unit, error: str) -> None:
        failed[unit.key] = error
        write_results(out, snapshot())

    threads = torch.get_num_threads()
    units = [
        Unit(f"{model}/{kind}", fn, (model, cfg), threads=threads)
        for model in LIKELIHOODS
        for kind, fn in FITS.items()
        if f"{model}/{kind}" not in done
    ]
    with results_kept_on_stop(out, snapshot):
        run_units(
            units, executor or LocalExecutor(), on_done=record, on_failed=failure, desc="fig2"
        )
        if failed:
            raise UnitsFailed("fig2", failed)
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
        fits[model] = done[f"{model}/gaussians"]
        summ = _summaries(model, posts[model], fits[model])
        mix = done[f"{model}/mixtures"]
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
    results["units_done"] = sorted(done)
    results["complete"] = True
    results["seconds"] = seconds + timer.elapsed()
    write_results(out, results)
    return results
