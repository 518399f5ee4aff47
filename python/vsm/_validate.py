"""Argument checks shared by vsm's public functions.

Every check raises ``TypeError`` (wrong type or dtype) or ``ValueError`` (shape, device, value)
with a message that starts with the offending argument's name.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

FLOAT_DTYPES = (torch.float32, torch.float64)


def tensor(name: str, t: object, *, ndim: Sequence[int] | int | None = None) -> torch.Tensor:
    """Check that ``t`` is a float32/float64 tensor with one of the allowed ranks."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {t.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if t.dim() not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name}: expected {want} dimensions, got shape {tuple(t.shape)}")
    return t


def same_kind(ref_name: str, ref: torch.Tensor, **others: torch.Tensor) -> None:
    """Check that every tensor in ``others`` has the dtype and device of ``ref``."""
    for name, t in others.items():
        if t.dtype != ref.dtype:
            raise TypeError(f"{name}: dtype {t.dtype} differs from {ref_name}'s {ref.dtype}")
        if t.device != ref.device:
            raise ValueError(f"{name}: device {t.device} differs from {ref_name}'s {ref.device}")


def shape(name: str, t: torch.Tensor, expected: Sequence[int], what: str = "") -> None:
    """Check an exact shape."""
    if tuple(t.shape) != tuple(expected):
        extra = f" ({what})" if what else ""
        raise ValueError(f"{name}: expected shape {tuple(expected)}{extra}, got {tuple(t.shape)}")


def nonempty(name: str, t: torch.Tensor) -> None:
    """Reject tensors with a zero-sized dimension."""
    if t.numel() == 0:
        raise ValueError(f"{name}: empty tensor of shape {tuple(t.shape)}")


def has_data(name: str, t: torch.Tensor) -> None:
    """Reject tensors without storage (the ``meta`` device) before copying them to host."""
    if t.is_meta:
        raise ValueError(f"{name}: tensor on the meta device has no data")


def callable_(name: str, f: object) -> None:
    """Check that a function argument (score_fn, decoder, ...) is callable."""
    if not callable(f):
        raise TypeError(f"{name}: expected a callable, got {type(f).__name__}")


def positive_int(name: str, v: object) -> int:
    """Check a strictly positive Python int."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name}: expected an int, got {type(v).__name__}")
    if v < 1:
        raise ValueError(f"{name}: expected a positive int, got {v}")
    return v
