"""The benchmark cases of ``vsm bench``: one op at one shape, its vsm and reference callables."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .. import reference

OPS = ("posterior_fd", "gaussian_terms", "hutchinson_trace")


@dataclass
class Case:
    """One op at one shape: ``make(device, dtype)`` → inputs dict; ``grad_wrt`` names the inputs
    that receive gradients in the fwd+bwd pass."""

    op: str
    shape: str
    make: Callable[[torch.device, torch.dtype], dict]
    vsm_fn: Callable[..., torch.Tensor]
    ref_fn: Callable[..., torch.Tensor]
    grad_wrt: tuple[str, ...]
    large: bool = False
    paper: bool = False


def _randn(device: torch.device, dtype: torch.dtype, *shape: int, grad: bool = False):
    return torch.randn(*shape, device=device, dtype=dtype).requires_grad_(grad)


def _case(
    op: str,
    shape: str,
    make: Callable[[torch.device, torch.dtype], dict],
    grad_wrt: tuple[str, ...],
    large: bool,
    paper: bool,
    wrap: Callable[[Callable[..., Any]], Callable[..., torch.Tensor]] = lambda f: f,
) -> Case:
    """The :class:`Case` of ``op``: ``wrap`` applied to the public op and to its reference twin
    (the same function name in :mod:`vsm` and :mod:`vsm.reference`)."""
    import vsm

    return Case(
        op,
        shape,
        make,
        wrap(getattr(vsm, op)),
        wrap(getattr(reference, op)),
        grad_wrt,
        large,
        paper,
    )


def _pfd_case(n: int, b: int, l: int, large: bool = False, paper: bool = False) -> Case:
    def make(device, dtype):
        return {
            "z": _randn(device, dtype, n, b, l, grad=True),
            "mu": _randn(device, dtype, b, l, grad=True),
            "logvar": (0.3 * _randn(device, dtype, b, l)).requires_grad_(True),
            "grad_loglik_z": _randn(device, dtype, n, b, l, grad=True),
        }

    grad_wrt = ("z", "mu", "logvar", "grad_loglik_z")
    return _case("posterior_fd", f"N={n} B={b} L={l}", make, grad_wrt, large, paper)


def _gt_case(n: int, b: int, d: int, large: bool = False, paper: bool = False) -> Case:
    def make(device, dtype):
        return {
            "x": _randn(device, dtype, b, d, grad=True),
            "x_mean": _randn(device, dtype, n, b, d, grad=True),
            "log_sigma2": torch.zeros((), device=device, dtype=dtype, requires_grad=True),
        }

    def out(f):
        def g(**kw):
            t = f(**kw)
            return torch.stack([t.sq_mean.sum(), t.mean_sq.sum()])

        return g

    grad_wrt = ("x", "x_mean", "log_sigma2")
    return _case("gaussian_terms", f"N={n} B={b} D={d}", make, grad_wrt, large, paper, out)


def _hutch_case(b: int, d: int, p: int, large: bool = False, paper: bool = False) -> Case:
    def make(device, dtype):
        return {
            "x": _randn(device, dtype, b, d, grad=True),
            "w": _randn(device, dtype, d, grad=True),
        }

    def wrap(f):
        def g(x, w):  # elementwise map: the probe draws and dots dominate, not the Jacobian
            y = x * w + torch.sin(x)
            return f(y, x, n_probes=p, seed=0)

        return g

    return _case("hutchinson_trace", f"B={b} D={d} P={p}", make, ("w",), large, paper, wrap)


def cases(quick: bool = False, tiny: bool = False) -> list[Case]:
    """The benchmark cases: issue #2's posterior_fd set, the paper's shapes (N=5, B=100) and the
    large shapes. ``quick``: fewer shapes; ``tiny``: one small shape per op (tests, CPU checks)."""
    if tiny:
        return [_pfd_case(2, 3, 5), _gt_case(2, 3, 7), _hutch_case(3, 6, 1)]
    out = [
        _pfd_case(5, 100, 2, paper=True),
        _pfd_case(5, 100, 100, paper=True),  # N·B = 500
        _pfd_case(4, 1024, 2),
        _pfd_case(4, 1024, 100),  # N·B = 4096
        _pfd_case(5, 4096, 100, large=True),
        _gt_case(5, 100, 2, paper=True),
        _gt_case(5, 100, 1024, paper=True),
        _gt_case(5, 4096, 12288, large=True),
        _hutch_case(100, 1024, 1, paper=True),
        _hutch_case(100, 1024, 4),
        _hutch_case(4096, 12288, 1, large=True),
    ]
    if quick:
        out = [c for c in out if "L=2" not in c.shape and "P=4" not in c.shape]
    return out
