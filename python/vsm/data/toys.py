"""The 2-D toy distributions of vsm's experiments (MATH.md §9): the paper's "sparse" and
"mixture" recipes plus "rings", "moons", "pinwheel", "checkerboard" and "8gaussians";
:func:`sample_toy` draws from one, :data:`TOY_DATASETS` names them."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .. import _validate as V


def _sparse(n: int, g: torch.Generator) -> torch.Tensor:
    u = torch.randn(n, 2, generator=g, dtype=torch.float64)
    u = torch.sign(u) * u.abs() ** 2
    a = torch.tensor([[1.0, 0.3], [-0.3, 1.0]], dtype=torch.float64) / 10
    return u @ a + 0.01 * torch.randn(n, 2, generator=g, dtype=torch.float64)


def _mixture(n: int, g: torch.Generator) -> torch.Tensor:
    half = n // 2
    centres = torch.cat([torch.full((half, 2), -0.5), torch.full((n - half, 2), 0.5)]).to(
        torch.float64
    )
    x = centres + 0.2 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return x[torch.randperm(n, generator=g)]


def _rings(n: int, g: torch.Generator) -> torch.Tensor:
    radius = 0.25 * (1 + torch.randint(0, 4, (n,), generator=g)).to(torch.float64)
    angle = 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    x = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], -1)
    return x + 0.02 * torch.randn(n, 2, generator=g, dtype=torch.float64)


def _moons(n: int, g: torch.Generator) -> torch.Tensor:
    upper = torch.rand(n, generator=g) < 0.5
    t = math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    x1 = torch.where(upper, torch.cos(t), 1 - torch.cos(t))
    x2 = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
    x = torch.stack([x1 - 0.5, x2 - 0.25], -1) / 1.5
    return x + 0.05 * torch.randn(n, 2, generator=g, dtype=torch.float64)


def _pinwheel(n: int, g: torch.Generator) -> torch.Tensor:
    n_arms, radial_sd, tangential_sd, rate = 5, 0.3, 0.05, 0.25
    arm = torch.randint(0, n_arms, (n,), generator=g).to(torch.float64)
    feats = torch.randn(n, 2, generator=g, dtype=torch.float64) * torch.tensor(
        [radial_sd, tangential_sd], dtype=torch.float64
    )
    feats[:, 0] += 1.0
    angle = arm * 2 * math.pi / n_arms + rate * torch.exp(feats[:, 0])
    c, s = torch.cos(angle), torch.sin(angle)
    x = torch.stack([c * feats[:, 0] - s * feats[:, 1], s * feats[:, 0] + c * feats[:, 1]], -1)
    return x / 2


def _checkerboard(n: int, g: torch.Generator) -> torch.Tensor:
    x1 = 4 * torch.rand(n, generator=g, dtype=torch.float64) - 2
    x2 = torch.rand(n, generator=g, dtype=torch.float64) - 2 * torch.randint(
        0, 2, (n,), generator=g
    ).to(torch.float64)
    x2 = x2 + torch.floor(x1) % 2
    return torch.stack([x1, x2], -1) / 2


def _eight_gaussians(n: int, g: torch.Generator) -> torch.Tensor:
    k = torch.randint(0, 8, (n,), generator=g).to(torch.float64)
    angle = k * (2 * math.pi / 8)
    centres = torch.stack([torch.cos(angle), torch.sin(angle)], -1)
    return centres + 0.1 * torch.randn(n, 2, generator=g, dtype=torch.float64)


_TOYS: dict[str, Callable[[int, torch.Generator], torch.Tensor]] = {
    "sparse": _sparse,
    "mixture": _mixture,
    "rings": _rings,
    "moons": _moons,
    "pinwheel": _pinwheel,
    "checkerboard": _checkerboard,
    "8gaussians": _eight_gaussians,
}
TOY_DATASETS: tuple[str, ...] = tuple(_TOYS)
"""The names of the 2-D toy distributions (:func:`sample_toy`, :func:`vsm.data.load_dataset`)."""


def sample_toy(
    name: str, n: int, *, generator: torch.Generator | None = None, seed: int | None = None
) -> torch.Tensor:
    """Draw ``n`` points (n, 2) float32 from the 2-D toy distribution ``name``.

    Args:
        name: one of ``TOY_DATASETS``.
        n: number of points.
        generator: CPU torch generator to draw from (takes precedence over ``seed``).
        seed: seed for a fresh generator when ``generator`` is None (default 0).
    """
    V.choice("name", name, TOY_DATASETS)
    n = V.positive_int("n", n)
    seed = V.seed("seed", seed)
    g = generator if generator is not None else torch.Generator().manual_seed(seed or 0)
    return _TOYS[name](n, g).to(torch.float32)
