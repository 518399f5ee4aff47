"""Backend dispatch for vsm's fused ops.

Rules (API.md): CUDA tensors run the compiled Triton kernels; CPU tensors run the pure-torch
reference (or the Rust engine); with ``TRITON_INTERPRET=1`` in the environment *before vsm's kernels
are first used*, CPU tensors run the Triton kernels through Triton's interpreter (this is how CI
tests the kernels). A compiled Triton kernel is never launched without a GPU.

``vsm.backend("reference")`` / ``vsm.backend("triton")`` override the choice in a ``with`` block
(benchmarks use it; "triton" on CPU still requires the interpreter).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from collections.abc import Iterator

import torch

_BACKENDS = ("auto", "reference", "triton")
_forced: list[str] = ["auto"]


def interpret_mode() -> bool:
    """True when Triton's interpreter is switched on (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@functools.cache
def triton_available() -> bool:
    """True when the ``triton`` package can be imported."""
    return importlib.util.find_spec("triton") is not None


def use_triton(t: torch.Tensor) -> bool:
    """Whether the fused op on tensor ``t`` should run the Triton kernels."""
    mode = _forced[-1]
    if mode == "reference":
        return False
    if t.device.type == "cuda":
        ok = triton_available()
    elif t.device.type == "cpu":
        ok = interpret_mode() and triton_available()
    else:
        ok = False
    if mode == "triton" and not ok:
        raise RuntimeError(
            "vsm.backend('triton') needs a CUDA tensor, or TRITON_INTERPRET=1 for CPU tensors, "
            f"and the triton package (tensor on {t.device}, triton "
            f"{'installed' if triton_available() else 'missing'})"
        )
    return ok


@contextlib.contextmanager
def backend(name: str) -> Iterator[None]:
    """Force the backend of vsm's fused ops inside a ``with`` block.

    ``name``: "auto" (the dispatch rules), "reference" (pure torch everywhere) or "triton"
    (the kernels; an error where they cannot run).
    """
    if name not in _BACKENDS:
        raise ValueError(f"backend: expected one of {_BACKENDS}, got {name!r}")
    _forced.append(name)
    try:
        yield
    finally:
        _forced.pop()
