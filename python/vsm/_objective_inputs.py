"""What :mod:`vsm.objectives` takes: the estimator option types and the argument checks that its
functions and :mod:`vsm._network_terms` share (errors name the argument, as the module docstring
of :mod:`vsm.objectives` describes)."""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Literal

import torch

from . import _validate as V

Encoder = Callable[[torch.Tensor], "tuple[torch.Tensor, torch.Tensor]"]
Decoder = Callable[[torch.Tensor], torch.Tensor]

Estimator = Literal["samples", "minibatch"]
"""``"samples"`` (vsm: means over a datum's N posterior samples) or ``"minibatch"`` (the authors'
2-D code: the ½‖mean f‖² term averages over the whole minibatch)."""
ESTIMATORS: tuple[str, ...] = typing.get_args(Estimator)
CrossTerm = Literal["per-sample", "summed"]
"""L_B cross terms: mean_n f_n·ψ_n (vsm) or mean_n f_n·Σ_m ψ_m (the authors' image code)."""
CROSS_TERMS: tuple[str, ...] = typing.get_args(CrossTerm)
PsiDerivative = Literal["partial", "total"]
"""ψ = ∇_x log q(z|x) at fixed z (vsm) or along the reparametrised z = μ(x)+s(x)ε (authors)."""
PSI_DERIVATIVES: tuple[str, ...] = typing.get_args(PsiDerivative)


# ----------------------------------------------------------------------------- validation helpers


def _data(x: object) -> torch.Tensor:
    x = V.tensor("x", x)
    if x.dim() != 2:
        raise ValueError(
            f"x: expected flat data of shape (B, D) (flatten image pixels), got {tuple(x.shape)}"
        )
    V.nonempty("x", x)
    return x


def _samples(name: str, t: object, x: torch.Tensor) -> torch.Tensor:
    """Check a per-sample (N, B, D) tensor (or (B, D), one sample) against x; return it 3-D."""
    t = V.tensor(name, t, ndim=(2, 3))
    V.same_kind("x", x, **{name: t})
    V.shape(name, t, (*t.shape[:-2], *x.shape), "(N, *x.shape)")
    V.nonempty(name, t)
    return t.unsqueeze(0) if t.dim() == 2 else t


def _scalar(name: str, t: object, x: torch.Tensor) -> torch.Tensor:
    t = V.tensor(name, t, ndim=0)
    V.same_kind("x", x, **{name: t})
    return t


def _posterior(x: torch.Tensor, mu: object, logvar: object) -> tuple[torch.Tensor, torch.Tensor]:
    mu = V.tensor("mu", mu, ndim=2)
    logvar = V.tensor("logvar", logvar, ndim=2)
    V.same_kind("x", x, mu=mu, logvar=logvar)
    if mu.shape[0] != x.shape[0]:
        raise ValueError(f"mu: expected {x.shape[0]} rows (x's batch), got {tuple(mu.shape)}")
    V.shape("logvar", logvar, mu.shape, "mu.shape")
    V.nonempty("mu", mu)
    return mu, logvar


def _latents(z: object, mu: torch.Tensor) -> torch.Tensor:
    z = V.tensor("z", z, ndim=(2, 3))
    V.same_kind("mu", mu, z=z)
    V.shape("z", z, (*z.shape[:-2], *mu.shape), "(N, *mu.shape)")
    V.nonempty("z", z)
    return z.unsqueeze(0) if z.dim() == 2 else z


def _bool(name: str, v: object) -> bool:
    if not isinstance(v, bool):
        raise TypeError(f"{name}: expected a bool, got {type(v).__name__}")
    return v


def _encoder_pair(out: object) -> tuple[torch.Tensor, torch.Tensor]:
    """What an ``encode`` callable returned, checked to be a (mu, logvar) pair of tensors."""
    if (
        not isinstance(out, tuple | list)
        or len(out) != 2
        or not all(isinstance(o, torch.Tensor) for o in out)
    ):
        raise TypeError(
            f"encode: expected it to return a (mu, logvar) pair of tensors, got "
            f"{type(out).__name__}"
        )
    return out[0], out[1]


def _encoded(encode: object, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu, logvar) = encode(x), checked against x; errors name ``encode``."""
    out = _encoder_pair(V.callable_("encode", encode)(x))
    try:
        return _posterior(x, *out)
    except (TypeError, ValueError) as e:
        raise type(e)(f"encode: returned {e}") from e


def _grad_mode_default(create_graph: bool | None) -> bool:
    return torch.is_grad_enabled() if create_graph is None else bool(create_graph)
