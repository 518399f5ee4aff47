"""Argument checks shared by vsm's public functions.

Every check raises ``TypeError`` (wrong type or dtype) or ``ValueError`` (shape, device, value)
with a message that starts with the offending argument's name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

FLOAT_DTYPES = (torch.float32, torch.float64)

SEED_BOUND = 2**63
"""Every seed argument is an int in [0, SEED_BOUND), for every seeded function alike (a seed
valid for ``hutchinson_trace`` is valid for ``sliced_sm``, ``dsm``, ...). Why 2**63 although
Philox keys are 64-bit: the Triton path carries the seed as the ``int`` of a ``torch.library``
custom op, which is a signed 64-bit SymInt (2**63 fails to cast), and PROBES.md fixes the same
range for the Rust CPU probe stream. ``torch.Generator.manual_seed`` accepts the whole range."""


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


def callable_(name: str, f: object) -> Callable[..., Any]:
    """Check that a function argument (score_fn, decoder, ...) is callable; returns it."""
    if not callable(f):
        raise TypeError(f"{name}: expected a callable, got {type(f).__name__}")
    return f


def positive_int(name: str, v: object, *, minimum: int = 1) -> int:
    """Check an int ≥ ``minimum`` (default: strictly positive); returns it as a Python int.

    Python and NumPy integers are ints; ``bool`` is not. ``TypeError`` for a non-int,
    ``ValueError`` below ``minimum``.
    """
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):  # bool is not an int here
        raise TypeError(f"{name}: expected an int, got {type(v).__name__}")
    n = int(v)
    if n < minimum:
        want = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name}: expected {want}, got {n}")
    return n


def seed(name: str, v: object) -> int | None:
    """Check an optional seed: None, or an int in [0, :data:`SEED_BOUND`)."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name}: expected an int or None, got {type(v).__name__}")
    s = int(v)
    if not 0 <= s < SEED_BOUND:
        raise ValueError(f"{name}: expected an int in [0, 2**63), got {s}")
    return s


def resolve_seed(name: str, v: object) -> int:
    """:func:`seed`, with None replaced by a seed drawn from torch's global RNG (so that
    ``torch.manual_seed`` makes the call reproducible)."""
    s = seed(name, v)
    if s is None:
        return int(torch.randint(0, 2**31 - 1, ()).item())
    return s


def choice(name: str, v: object, allowed: Sequence[str]) -> str:
    """Check that ``v`` is one of the names in ``allowed`` (anything else is a ``ValueError``)."""
    if not isinstance(v, str) or v not in allowed:
        want = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name}: expected one of {want}, got {v!r}")
    return v


def array(
    name: str, a: object, *, ndim: int | None = None, real: bool = False, keep_f32: bool = False
) -> np.ndarray:
    """A torch tensor or NumPy array as a C-ordered float64 ndarray (no copy when it already is).

    Args:
        name: argument name for the messages.
        a: a float32/float64 torch tensor (any device; detached and copied to host) or NumPy
            array. With ``real=True`` also integer dtypes and anything ``np.asarray`` reads
            (lists, scalars; 0-d stays 0-d).
        ndim: required number of dimensions (None: any).
        keep_f32: return float32 input as float32 (for consumers that read it directly).

    Raises:
        TypeError: not a tensor/array (``real=False``), or a dtype outside float32/float64
            (``real=True``: outside real floats and ints; float16, bfloat16, bool and complex
            are always rejected).
        ValueError: a meta-device tensor (no data), or the wrong number of dimensions.
    """
    ok = "a real float/int array" if real else "float32 or float64"
    if isinstance(a, torch.Tensor):
        has_data(name, a)
        if not real and a.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name}: expected {ok}, got {a.dtype}")
        try:
            a = a.detach().cpu().numpy()
        except TypeError as e:  # e.g. bfloat16, which NumPy has no dtype for
            raise TypeError(f"{name}: expected {ok}, got dtype {a.dtype}") from e
    if not real and not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a torch.Tensor or numpy.ndarray, got {type(a).__name__}")
    try:
        arr = np.asarray(a)
    except Exception as e:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name}: cannot convert {type(a).__name__} to an array") from e
    if real:
        bad = arr.dtype.kind not in "fiu" or arr.dtype == np.float16
    else:
        bad = arr.dtype not in (np.float32, np.float64)
    if bad:
        raise TypeError(f"{name}: expected {ok}, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {arr.shape}")
    if keep_f32 and arr.dtype == np.float32:
        return np.asarray(arr, order="C")
    return np.asarray(arr, dtype=np.float64, order="C")
