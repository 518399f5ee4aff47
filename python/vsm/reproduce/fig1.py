"""Figure 1: parameter recovery by joint-KLD versus joint-FD minimisation (MATH.md Part III §5).

Model (1-D linear-Gaussian VAE, σ² fixed):
    p(z) = N(0, 1),  p_θ(x|z) = N(θ z, σ²),  q_φ(z|x) = N(φ x, c),  c = α v_θ,
    v_θ = σ²/(θ² + σ²)  (the exact posterior variance; α imposes a posterior mismatch),
    data p_d = p_θ* = N(0, s²) with s² = θ*² + σ².
We fit (θ, φ) by minimising the joint KLD or the joint FD between q(x,z) = p_d(x) q_φ(z|x) and
p_θ(x,z), and compare θ̂ with θ*. Everything is Gaussian, so both objectives are closed-form.

Derivation (all expectations under q(x,z)). Write x ~ N(0, s²), z = φx + √c ε, ε ~ N(0,1).
For a linear form a x + b z:  E[(a x + b z)²] = (a + bφ)² s² + b² c.              (★)

Joint KLD (exact, including the entropy constants):
    JKLD = E[log p_d(x) + log q(z|x) − log p(z) − log p_θ(x|z)]
         = −½log(2πe s²) − ½log(2πe c) + ½log(2π) + ½(φ²s² + c)
           + ½log(2πσ²) + [(1 − θφ)² s² + θ² c]/(2σ²),
using E z² = φ²s² + c and E(x − θz)² = (1 − θφ)² s² + θ² c (from ★). For fixed θ it is
quadratic in φ with minimiser φ* = θ/(θ² + σ²) (the exact posterior mean), and then
    JKLD(θ, φ*) = KL(p_d ‖ p_θ) + ½(α − 1 − log α),
whose second term does not depend on θ: θ̂ = ±θ* for every α.

Joint FD (½ convention, MATH.md §2 eq. 6; x-part + posterior FD). The scores are linear:
    ∇_x log q(x,z) = −x/s² + φ(z − φx)/c,   ∇_z log q(x,z) = −(z − φx)/c,
    ∇_x log p_θ(x,z) = −(x − θz)/σ²,        ∇_z log p_θ(x,z) = −z + θ(x − θz)/σ².
The x-difference d_x = ∇_x log q − ∇_x log p_θ has coefficients
    a_x = 1/σ² − 1/s² − φ²/c,  b_x = φ/c − θ/σ²,   so a_x + b_xφ = (1/σ² − 1/s²) − θφ/σ²;
the z-difference d_z (the posterior-FD integrand) has
    a_z = φ/c − θ/σ²,  b_z = Λ − 1/c  (Λ = 1 + θ²/σ² = 1/v_θ),  so a_z + b_zφ = Λφ − θ/σ².
By (★):
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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize_scalar

from ._common import Timer, plt, prepare_out, save_figure, write_results

METHODS = ("jkld", "jfd")


@dataclass
class Fig1Config:
    """Settings of the Figure 1 reproduction.

    theta_stars: true θ* values; alphas: posterior-variance mismatch factors; sigma2: σ²;
    example: (θ*, α) whose fitted joints are drawn; mc_steps: Adam steps of the Monte-Carlo check
    (0 skips it); mc_batch: samples per Monte-Carlo step.
    """

    theta_stars: tuple[float, ...] = (0.5, 1.0, 2.0, 3.0)
    alphas: tuple[float, ...] = (0.5, 1.0, 2.0)
    sigma2: float = 1.0
    example: tuple[float, float] = (2.0, 0.5)
    grid_points: int = 20001
    mc_steps: int = 0
    mc_batch: int = 4096
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def quick(cls) -> Fig1Config:
        """Closed-form sweep plus a short Monte-Carlo check (seconds)."""
        return cls(mc_steps=600, mc_batch=1024)

    @classmethod
    def full(cls) -> Fig1Config:
        """Closed-form sweep on a denser grid plus a longer Monte-Carlo check."""
        return cls(grid_points=200001, mc_steps=6000, mc_batch=16384)


# ----------------------------------------------------------------------------- closed forms


def _c(theta: np.ndarray, alpha: float, sigma2: float) -> np.ndarray:
    """q's variance c = α σ²/(θ² + σ²)."""
    return alpha * sigma2 / (theta**2 + sigma2)


def jkld(theta, phi, theta_star: float, alpha: float, sigma2: float = 1.0) -> np.ndarray:
    """Exact joint KLD KL(p_d q_φ ‖ p_θ) (nats) for arrays ``theta``, ``phi`` (broadcast)."""
    theta = np.asarray(theta, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    s2 = theta_star**2 + sigma2
    c = _c(theta, alpha, sigma2)
    two_pi_e = 2.0 * math.pi * math.e
    return (
        -0.5 * np.log(two_pi_e * s2)
        - 0.5 * np.log(two_pi_e * c)
        + 0.5 * math.log(2.0 * math.pi)
        + 0.5 * (phi**2 * s2 + c)
        + 0.5 * math.log(2.0 * math.pi * sigma2)
        + ((1.0 - theta * phi) ** 2 * s2 + theta**2 * c) / (2.0 * sigma2)
    )


def jfd_parts(theta, phi, theta_star: float, alpha: float, sigma2: float = 1.0):
    """Exact joint FD split as (x-part, posterior FD), ½ convention, arrays broadcast."""
    theta = np.asarray(theta, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    s2 = theta_star**2 + sigma2
    c = _c(theta, alpha, sigma2)
    lam = 1.0 + theta**2 / sigma2
    x_part = (
        0.5 * s2 * ((1.0 / sigma2 - 1.0 / s2) - theta * phi / sigma2) ** 2
        + 0.5 * c * (phi / c - theta / sigma2) ** 2
    )
    post = 0.5 * s2 * (lam * phi - theta / sigma2) ** 2 + 0.5 * c * (lam - 1.0 / c) ** 2
    return x_part, post


def jfd(theta, phi, theta_star: float, alpha: float, sigma2: float = 1.0) -> np.ndarray:
    """Exact joint FD F(p_d q_φ ‖ p_θ) (½ convention) = x-part + posterior FD."""
    x_part, post = jfd_parts(theta, phi, theta_star, alpha, sigma2)
    return x_part + post


def best_phi(method: str, theta, theta_star: float, alpha: float, sigma2: float = 1.0):
    """Closed-form minimiser φ*(θ) of ``method`` ("jkld" or "jfd") for fixed θ (array)."""
    theta = np.asarray(theta, dtype=np.float64)
    if method == "jkld":
        return theta / (theta**2 + sigma2)
    if method == "jfd":
        s2 = theta_star**2 + sigma2
        c = _c(theta, alpha, sigma2)
        lam = 1.0 + theta**2 / sigma2
        ks = (s2, s2, c)
        us = (theta / sigma2, lam, 1.0 / c)
        ws = (1.0 / sigma2 - 1.0 / s2, theta / sigma2, theta / sigma2)
        num = sum(k * u * w for k, u, w in zip(ks, us, ws, strict=True))
        den = sum(k * u * u for k, u in zip(ks, us, strict=True))
        return num / den
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def objective(method: str, theta, phi, theta_star: float, alpha: float, sigma2: float = 1.0):
    """The closed-form objective named ``method`` at (θ, φ)."""
    if method == "jkld":
        return jkld(theta, phi, theta_star, alpha, sigma2)
    if method == "jfd":
        return jfd(theta, phi, theta_star, alpha, sigma2)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def fit_closed_form(
    method: str,
    theta_star: float,
    alpha: float,
    sigma2: float = 1.0,
    *,
    grid_points: int = 20001,
) -> dict[str, float]:
    """Minimise the profiled closed-form objective over θ ≥ 0.

    Dense grid on [0, 3θ* + 5], then a bounded Brent search in the bracketing cell.
    Returns {"theta_hat", "phi_hat", "objective"}.
    """
    if theta_star < 0 or alpha <= 0 or sigma2 <= 0:
        raise ValueError("theta_star must be >= 0 and alpha, sigma2 > 0")

    def prof(t):
        return objective(
            method, t, best_phi(method, t, theta_star, alpha, sigma2), theta_star, alpha, sigma2
        )

    grid = np.linspace(0.0, 3.0 * theta_star + 5.0, grid_points)
    vals = prof(grid)
    i = int(np.argmin(vals))
    lo = grid[max(i - 1, 0)]
    hi = grid[min(i + 1, grid_points - 1)]
    res = minimize_scalar(
        lambda t: float(prof(t)), bounds=(lo, hi), method="bounded", options={"xatol": 1e-12}
    )
    theta_hat = float(res.x) if res.fun <= vals[i] else float(grid[i])
    phi_hat = float(best_phi(method, theta_hat, theta_star, alpha, sigma2))
    return {
        "theta_hat": theta_hat,
        "phi_hat": phi_hat,
        "objective": float(objective(method, theta_hat, phi_hat, theta_star, alpha, sigma2)),
    }


def marginal_kl(theta: float, theta_star: float, sigma2: float = 1.0) -> float:
    """KL(p_d ‖ p_θ) between the zero-mean Gaussian marginals (nats)."""
    a = theta_star**2 + sigma2
    b = theta**2 + sigma2
    return 0.5 * (a / b - 1.0 - math.log(a / b))


def marginal_fd(theta: float, theta_star: float, sigma2: float = 1.0) -> float:
    """Marginal FD ½ E_pd (∇log p_d − ∇log p_θ)² between the Gaussian marginals."""
    a = theta_star**2 + sigma2
    b = theta**2 + sigma2
    return 0.5 * a * (1.0 / a - 1.0 / b) ** 2


# ----------------------------------------------------------------------------- Monte Carlo


def _mc_losses(
    theta: torch.Tensor,
    phi: torch.Tensor,
    theta_star: torch.Tensor,
    alpha: torch.Tensor,
    sigma2: float,
    n: int,
    gen: torch.Generator,
):
    """Reparametrised Monte-Carlo (JKLD, JFD), each of shape (C,), for C cases at once.

    x = s·ε_x (a leaf: p_d has no parameters) and z = φ·s·ε_x + √c·ε_z built from a separate copy
    of x, so that autograd w.r.t. (x, z) gives the partial scores ∇_x, ∇_z of each log-joint while
    the parameters still reach the loss through the score coefficients and through the sample z.
    """
    s2 = theta_star**2 + sigma2
    c = alpha * sigma2 / (theta**2 + sigma2)
    eps_x = torch.randn(n, theta.shape[0], generator=gen, dtype=theta.dtype)
    eps_z = torch.randn(n, theta.shape[0], generator=gen, dtype=theta.dtype)
    x = (s2.sqrt() * eps_x).requires_grad_(True)
    z = phi * (s2.sqrt() * eps_x) + c.sqrt() * eps_z
    if not z.requires_grad:  # parameters without gradients (evaluation only)
        z = z.requires_grad_(True)
    half_log2pi = 0.5 * math.log(2.0 * math.pi)
    log_q = (
        -0.5 * x**2 / s2
        - 0.5 * torch.log(s2)
        - half_log2pi
        - 0.5 * (z - phi * x) ** 2 / c
        - 0.5 * torch.log(c)
        - half_log2pi
    )
    log_p = (
        -0.5 * z**2
        - half_log2pi
        - 0.5 * (x - theta * z) ** 2 / sigma2
        - 0.5 * math.log(sigma2)
        - half_log2pi
    )
    kl = (log_q - log_p).mean(0)
    gq = torch.autograd.grad(log_q.sum(), (x, z), create_graph=True)
    gp = torch.autograd.grad(log_p.sum(), (x, z), create_graph=True)
    fd = 0.5 * ((gq[0] - gp[0]) ** 2 + (gq[1] - gp[1]) ** 2).mean(0)
    return kl, fd


def mc_fit(
    cases: list[tuple[str, float, float]],
    *,
    sigma2: float = 1.0,
    steps: int = 1500,
    batch: int = 4096,
    lr: float = 0.05,
    seed: int = 0,
) -> list[dict[str, float]]:
    """Gradient-based Monte-Carlo fit of (θ, φ), all ``cases`` (method, θ*, α) in one tensor.

    Adam on reparametrised Monte-Carlo estimates of JKLD / JFD (scores by autograd), started at
    θ = 1, φ = 0.3; the reported θ̂ = |θ| is the average over the last quarter of the iterates.
    Returns one {"theta_hat", "phi_hat"} per case.
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    gen = torch.Generator().manual_seed(seed)
    dt = torch.float64
    n_cases = len(cases)
    theta = torch.full((n_cases,), 1.0, dtype=dt, requires_grad=True)
    phi = torch.full((n_cases,), 0.3, dtype=dt, requires_grad=True)
    ts = torch.tensor([c[1] for c in cases], dtype=dt)
    al = torch.tensor([c[2] for c in cases], dtype=dt)
    is_kl = torch.tensor([c[0] == "jkld" for c in cases])
    opt = torch.optim.Adam([theta, phi], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr * 0.02)
    avg_from = steps - max(steps // 4, 1)
    sum_t = torch.zeros(n_cases, dtype=dt)
    sum_p = torch.zeros(n_cases, dtype=dt)
    for step in range(steps):
        kl, fd = _mc_losses(theta, phi, ts, al, sigma2, batch, gen)
        loss = torch.where(is_kl, kl, fd).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step >= avg_from:
            sign = torch.sign(theta.detach())
            sum_t += theta.detach().abs()
            sum_p += phi.detach() * sign
    n_avg = steps - avg_from
    return [
        {"theta_hat": float(sum_t[i] / n_avg), "phi_hat": float(sum_p[i] / n_avg)}
        for i in range(n_cases)
    ]


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
