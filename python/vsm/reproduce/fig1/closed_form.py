"""Figure 1's closed forms (MATH.md Part III §5): the joint objectives J_KLD and J_FD of the
linear-Gaussian model, their optimal encoder φ*(θ), the fitted θ (:func:`fit_closed_form`) and the
marginal KL and FD."""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar

METHODS = ("jkld", "jfd")


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
