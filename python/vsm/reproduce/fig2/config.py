"""Figure 2's settings: the toy likelihoods, estimators and optimisers compared, the observation,
and :class:`Fig2Config` (quick mode by default, :meth:`Fig2Config.full` closer to the paper)."""

from __future__ import annotations

from dataclasses import dataclass

from .._common import FigureConfig, preset

LIKELIHOODS = ("sym", "soft")
METHODS = ("fd_repar", "fd_norepar", "kld")
OPTIMISERS = ("sgd", "adam")
X_OBS = 2.0
LOW_DENSITY_RADIUS = 0.5


@dataclass
class Fig2Config(FigureConfig):
    """Settings of the Figure 2 reproduction.

    grid: initial means on a grid × grid lattice over [-init_range, init_range]²;
    steps / lr_sgd / lr_adam: Gaussian-fit optimisation; ``mix_*``: mixture fit (A.5.2);
    quad_n / quad_lim: quadrature grid of the exact posterior.

    The defaults are the quick mode (minutes on a 2-core CPU: larger lr, fewer steps than the
    paper; module docstring); :meth:`full` is closer to the paper: a finer grid, 10× more steps,
    A.5.2's lr 1e-3 × 5000 steps.
    """

    grid: int = preset(5, full=7)
    init_range: float = preset(2.0, full=2.5)
    steps: int = preset(20000, full=200000)
    lr_sgd: float = preset(3e-4, full=1e-4)
    lr_adam: float = preset(3e-3, full=1e-3)
    mix_components: int = 10
    mix_restarts: int = 10
    mix_samples: int = 10
    mix_steps: int = preset(1500, full=5000)
    mix_lr: float = preset(5e-3, full=1e-3)
    quad_n: int = 201
    quad_lim: float = 6.0
    seed: int = 0
