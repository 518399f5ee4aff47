"""Figure 1: parameter recovery by joint-KLD versus joint-FD minimisation (MATH.md Part III §5).

Model (1-D linear-Gaussian VAE, σ² fixed)::

    p(z) = N(0, 1),  p_θ(x|z) = N(θ z, σ²),  q_φ(z|x) = N(φ x, c),  c = α v_θ,
    v_θ = σ²/(θ² + σ²)  (the exact posterior variance; α imposes a posterior mismatch),
    data p_d = p_θ* = N(0, s²) with s² = θ*² + σ².

We fit (θ, φ) by minimising the joint KLD or the joint FD between q(x,z) = p_d(x) q_φ(z|x) and
p_θ(x,z), and compare θ̂ with θ*. Everything is Gaussian, so both objectives are closed-form.

Derivation (all expectations under q(x,z)). Write x ~ N(0, s²), z = φx + √c ε, ε ~ N(0,1).
For a linear form a x + b z:  E[(a x + b z)²] = (a + bφ)² s² + b² c.              (★)

Joint KLD (exact, including the entropy constants)::

    JKLD = E[log p_d(x) + log q(z|x) − log p(z) − log p_θ(x|z)]
         = −½log(2πe s²) − ½log(2πe c) + ½log(2π) + ½(φ²s² + c)
           + ½log(2πσ²) + [(1 − θφ)² s² + θ² c]/(2σ²),

using E z² = φ²s² + c and E(x − θz)² = (1 − θφ)² s² + θ² c (from ★). For fixed θ it is
quadratic in φ with minimiser φ* = θ/(θ² + σ²) (the exact posterior mean), and then::

    JKLD(θ, φ*) = KL(p_d ‖ p_θ) + ½(α − 1 − log α),

whose second term does not depend on θ: θ̂ = ±θ* for every α.

Joint FD (½ convention, MATH.md §2 eq. 6; x-part + posterior FD). The scores are linear::

    ∇_x log q(x,z) = −x/s² + φ(z − φx)/c,   ∇_z log q(x,z) = −(z − φx)/c,
    ∇_x log p_θ(x,z) = −(x − θz)/σ²,        ∇_z log p_θ(x,z) = −z + θ(x − θz)/σ².

The x-difference d_x = ∇_x log q − ∇_x log p_θ has coefficients::

    a_x = 1/σ² − 1/s² − φ²/c,  b_x = φ/c − θ/σ²,   so a_x + b_xφ = (1/σ² − 1/s²) − θφ/σ²;

the z-difference d_z (the posterior-FD integrand) has::

    a_z = φ/c − θ/σ²,  b_z = Λ − 1/c  (Λ = 1 + θ²/σ² = 1/v_θ),  so a_z + b_zφ = Λφ − θ/σ².

By (★)::

    x-part        = ½ s² [(1/σ² − 1/s²) − θφ/σ²]² + ½ c (φ/c − θ/σ²)²,
    posterior FD  = ½ s² [Λφ − θ/σ²]² + ½ c (Λ − 1/c)²,
    JFD = x-part + posterior FD.

With c = α v_θ the last term is ½ c (Λ − Λ/α)² = ½ Λ (α − 1)²/α = ½ (1 + θ²/σ²)(α − 1)²/α: for
α ≠ 1 it grows with θ², so JFD minimisation shrinks θ̂ below θ*; at α = 1 the joints can match
exactly (JFD = 0 at θ = θ*, φ = θ*/(θ*² + σ²)), so θ* is recovered. JFD is also quadratic in φ for
fixed θ: with terms k_i (u_i φ − w_i)², (k, u, w) = (s², θ/σ², 1/σ² − 1/s²), (s², Λ, θ/σ²),
(c, 1/c, θ/σ²), the profiled minimiser is φ*(θ) = Σ k_i u_i w_i / Σ k_i u_i².

Both profiled objectives are even in θ ((θ, φ) → (−θ, −φ) leaves them unchanged), so we minimise
over θ ≥ 0 on a dense grid and refine with a bounded scalar search. A gradient-based Monte-Carlo
fit (:func:`mc_fit`, autograd scores of the two log-joints, reparametrised samples, Adam) checks the
closed forms (tests and ``--full``).

Layout: :mod:`.closed_form` (the objectives and their fits), :mod:`.monte_carlo` (the check);
this module holds the settings, :func:`run` and the figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._common import FigureConfig, Timer, plt, prepare_out, preset, save_figure, write_results
from .closed_form import (
    METHODS,
    best_phi,
    fit_closed_form,
    jfd,
    jfd_parts,
    jkld,
    marginal_fd,
    marginal_kl,
    objective,
)
from .monte_carlo import _mc_losses as _mc_losses
from .monte_carlo import mc_fit

__all__ = [
    "METHODS",
    "Fig1Config",
    "best_phi",
    "fit_closed_form",
    "jfd",
    "jfd_parts",
    "jkld",
    "joint_covariances",
    "marginal_fd",
    "marginal_kl",
    "mc_fit",
    "objective",
    "run",
]


@dataclass
class Fig1Config(FigureConfig):
    """Settings of the Figure 1 reproduction.

    theta_stars: true θ* values; alphas: posterior-variance mismatch factors; sigma2: σ²;
    example: (θ*, α) whose fitted joints are drawn; mc_steps: Adam steps of the Monte-Carlo check
    (0 skips it); mc_batch: samples per Monte-Carlo step.

    Modes: quick, the closed-form sweep plus a short Monte-Carlo check (seconds); full, the
    closed-form sweep on a denser grid plus a longer Monte-Carlo check.
    """

    theta_stars: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0)
    alphas: tuple[float, ...] = (0.5, 1.0, 2.0)
    sigma2: float = 1.0
    example: tuple[float, float] = (2.0, 0.5)
    grid_points: int = preset(20001, full=200001)
    mc_steps: int = preset(0, quick=600, full=6000)
    mc_batch: int = preset(4096, quick=1024, full=16384)
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- figure


def _gauss_contours(ax, cov: np.ndarray, color: str, label: str, lim: float) -> None:
    """Draw 1-, 2- and 3-SD contours of a zero-mean 2-D Gaussian with covariance ``cov``."""
    g = np.linspace(-lim, lim, 241)
    xx, zz = np.meshgrid(g, g, indexing="xy")
    pts = np.stack([xx, zz], -1)
    prec = np.linalg.inv(cov)
    maha = np.einsum("...i,ij,...j->...", pts, prec, pts)
    ax.contour(xx, zz, maha, levels=[1.0, 4.0, 9.0], colors=color, linewidths=1.2)
    ax.plot([], [], color=color, label=label)


def joint_covariances(
    theta: float, phi: float, theta_star: float, alpha: float, sigma2: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Covariances in (x, z) of the data joint p_d(x)q_φ(z|x) and the model joint p_θ(x,z)."""
    s2 = theta_star**2 + sigma2
    c = alpha * sigma2 / (theta**2 + sigma2)
    data = np.array([[s2, phi * s2], [phi * s2, phi**2 * s2 + c]])
    model = np.array([[theta**2 + sigma2, theta], [theta, 1.0]])
    return data, model


def run(out: str | Path, config: Fig1Config | None = None) -> dict[str, Any]:
    """Run the Figure 1 reproduction: writes ``fig1.png`` and ``results.json`` into ``out``."""
    cfg = config or Fig1Config.quick()
    out = prepare_out(out)
    timer = Timer()
    table: list[dict[str, float | str]] = []
    theta_hat: dict[str, list[list[float]]] = {m: [] for m in METHODS}
    for method in METHODS:
        for alpha in cfg.alphas:
            row = []
            for ts in cfg.theta_stars:
                fit = fit_closed_form(method, ts, alpha, cfg.sigma2, grid_points=cfg.grid_points)
                row.append(fit["theta_hat"])
                x_part, post = jfd_parts(fit["theta_hat"], fit["phi_hat"], ts, alpha, cfg.sigma2)
                table.append(
                    {
                        "method": method,
                        "theta_star": ts,
                        "alpha": alpha,
                        **fit,
                        "jkld": float(
                            jkld(fit["theta_hat"], fit["phi_hat"], ts, alpha, cfg.sigma2)
                        ),
                        "jfd": float(x_part + post),
                        "jfd_x_part": float(x_part),
                        "jfd_posterior_fd": float(post),
                        "marginal_kl": marginal_kl(fit["theta_hat"], ts, cfg.sigma2),
                        "marginal_fd": marginal_fd(fit["theta_hat"], ts, cfg.sigma2),
                    }
                )
            theta_hat[method].append(row)

    # example joints
    ts_ex, al_ex = cfg.example
    example: dict[str, Any] = {"theta_star": ts_ex, "alpha": al_ex}
    for method in METHODS:
        fit = fit_closed_form(method, ts_ex, al_ex, cfg.sigma2, grid_points=cfg.grid_points)
        example[method] = {
            **fit,
            "jkld": float(jkld(fit["theta_hat"], fit["phi_hat"], ts_ex, al_ex, cfg.sigma2)),
            "jfd": float(jfd(fit["theta_hat"], fit["phi_hat"], ts_ex, al_ex, cfg.sigma2)),
        }

    results: dict[str, Any] = {
        "figure": "fig1",
        "sigma2": cfg.sigma2,
        "theta_stars": list(cfg.theta_stars),
        "alphas": list(cfg.alphas),
        "theta_hat": theta_hat,
        "table": table,
        "example": example,
    }

    if cfg.mc_steps > 0:
        cases = [(m, ts, al) for m in METHODS for al in cfg.alphas for ts in cfg.theta_stars]
        mc = mc_fit(cases, sigma2=cfg.sigma2, steps=cfg.mc_steps, batch=cfg.mc_batch, seed=cfg.seed)
        closed = {(r["method"], r["theta_star"], r["alpha"]): r["theta_hat"] for r in table}
        rows: list[dict[str, Any]] = []
        for (m, ts, al), r in zip(cases, mc, strict=True):
            rows.append(
                {
                    "method": m,
                    "theta_star": ts,
                    "alpha": al,
                    "theta_hat_mc": r["theta_hat"],
                    "phi_hat_mc": r["phi_hat"],
                    "theta_hat_closed": closed[(m, ts, al)],
                }
            )
        results["mc_check"] = {
            "steps": cfg.mc_steps,
            "batch": cfg.mc_batch,
            "rows": rows,
            "max_abs_diff": max(abs(r["theta_hat_mc"] - r["theta_hat_closed"]) for r in rows),
        }

    _plot(out / "fig1.png", cfg, theta_hat, example)
    results["seconds"] = timer.elapsed()
    write_results(out, results)
    return results


def _plot(
    path: Path, cfg: Fig1Config, theta_hat: dict[str, list[list[float]]], example: dict[str, Any]
) -> None:
    """θ̂ vs θ* per method and α (left); fitted joints for the example case (middle, right)."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.3))
    ax = axes[0]
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, len(cfg.alphas)))
    ts = np.asarray(cfg.theta_stars)
    ax.plot([0, ts.max()], [0, ts.max()], color="0.7", lw=1, zorder=0, label="θ̂ = θ*")
    for j, alpha in enumerate(cfg.alphas):
        ax.plot(ts, theta_hat["jkld"][j], "o-", color=colors[j], label=f"JKLD, α={alpha:g}")
        ax.plot(
            ts, theta_hat["jfd"][j], "s--", color=colors[j], mfc="none", label=f"JFD, α={alpha:g}"
        )
    ax.set_xlabel("true θ*")
    ax.set_ylabel("estimated θ̂")
    ax.set_title("parameter recovery (σ²=1)")
    ax.legend(fontsize=7, ncol=2)
    ts_ex, al_ex = example["theta_star"], example["alpha"]
    lim = 3.2 * math.sqrt(ts_ex**2 + cfg.sigma2)
    for ax, method in zip(axes[1:], METHODS, strict=True):
        fit = example[method]
        data_cov, model_cov = joint_covariances(
            fit["theta_hat"], fit["phi_hat"], ts_ex, al_ex, cfg.sigma2
        )
        _gauss_contours(ax, data_cov, "tab:blue", "data joint p_d(x) q(z|x)", lim)
        _gauss_contours(ax, model_cov, "tab:red", "model joint p_θ̂(x,z)", lim)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim / 2, lim / 2)
        ax.set_xlabel("x")
        ax.set_ylabel("z")
        ax.set_title(
            f"{method.upper()} fit, θ*={ts_ex:g}, α={al_ex:g}: θ̂={fit['theta_hat']:.3f}\n"
            f"JKLD={fit['jkld']:.3f}, JFD={fit['jfd']:.3f}",
            fontsize=9,
        )
        ax.legend(fontsize=7, loc="upper left")
    save_figure(fig, path)
