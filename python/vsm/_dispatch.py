"""Backend dispatch for vsm's fused ops.

Rules (API.md): CUDA tensors run the compiled Triton kernels; CPU tensors run the pure-torch
reference (or the Rust engine); with ``TRITON_INTERPRET=1`` in the environment *when vsm's kernels
are first imported*, CPU tensors run the Triton kernels through Triton's interpreter (this is how
CI tests the kernels). A compiled Triton kernel is never launched without a GPU.

Triton decides compiled-vs-interpreted once, when ``@triton.jit`` runs (at the import of
:mod:`vsm.kernels`); :func:`kernel_build` reads that decision from the kernel objects themselves,
so changing ``TRITON_INTERPRET`` later changes nothing. A mismatch is an error, not a silent
fallback: CUDA tensors meeting interpreted kernels (they would crawl through the interpreter with
host copies), and ``vsm.backend("triton")`` with CPU tensors when the kernels were compiled.

``vsm.backend("reference")`` / ``vsm.backend("triton")`` override the choice in a ``with`` block
(benchmarks use it). Backends are listed in :data:`_BACKENDS`; :func:`select` maps a tensor to the
backend that runs it, so another backend is one more name there and one more branch in
:func:`select`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from typing import Literal

import torch

_BACKENDS = ("auto", "reference", "triton")
_forced: list[str] = ["auto"]

#: How vsm's Triton kernels were built: compiled for a GPU, for the interpreter, or unavailable.
KernelBuild = Literal["compiled", "interpreted", "missing"]


def interpret_mode() -> bool:
    """True when ``TRITON_INTERPRET`` is set in the environment *now*.

    Informational only: dispatch follows :func:`kernel_build` (how the kernels were built at
    import), not the current environment.
    """
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


_cache: dict[str, object] = {}


def triton_available() -> bool:
    """True when the ``triton`` package can be imported."""
    if "triton" not in _cache:
        _cache["triton"] = importlib.util.find_spec("triton") is not None
    return bool(_cache["triton"])


def kernel_build() -> KernelBuild:
    """How vsm's Triton kernels were built (imports :mod:`vsm.kernels` on first use)."""
    if not triton_available():
        return "missing"
    return _kernel_build()


def _kernel_build() -> KernelBuild:
    # cached in a plain dict (not functools.cache) so that dynamo reads a constant
    if "build" not in _cache:
        from .kernels import _launch
        from .kernels import posterior_fd as K

        _cache["build"] = "interpreted" if _launch.is_interpreted(K._pfd_fwd_kernel) else "compiled"
    return _cache["build"]  # type: ignore[return-value]


def _mismatch(t: torch.Tensor, build: KernelBuild) -> str:
    if build == "missing":
        return f"the triton package is not installed (tensor on {t.device})"
    if build == "interpreted":
        return (f"vsm's Triton kernels were built for Triton's interpreter (TRITON_INTERPRET was "
                f"set when vsm.kernels was imported), which cannot run {t.device} tensors at GPU "
                "speed; unset TRITON_INTERPRET before importing vsm, or use CPU tensors")
    return (f"vsm's Triton kernels were compiled for the GPU (TRITON_INTERPRET was not set when "
            f"vsm.kernels was imported) and cannot run {t.device} tensors; set TRITON_INTERPRET=1 "
            "before importing vsm to run them in the interpreter on CPU")


def select(t: torch.Tensor) -> str:
    """The backend that runs a fused op on tensor ``t``: "triton" or "reference".

    Raises:
        RuntimeError: the tensor and the kernel build do not match (CUDA tensors with interpreted
            kernels; or ``vsm.backend("triton")`` where the kernels cannot run ``t``).
    """
    mode = _forced[-1]
    if mode == "reference":
        return "reference"
    if t.device.type not in ("cuda", "cpu"):
        if mode == "triton":
            raise RuntimeError(f"vsm.backend('triton'): no Triton kernels for {t.device} tensors")
        return "reference"
    build = kernel_build()
    want = "compiled" if t.device.type == "cuda" else "interpreted"
    if build == want:
        return "triton"
    if mode == "triton" or (t.device.type == "cuda" and build == "interpreted"):
        raise RuntimeError(f"vsm.backend('{mode}'): {_mismatch(t, build)}")
    return "reference"


def use_triton(t: torch.Tensor) -> bool:
    """Whether the fused op on tensor ``t`` should run the Triton kernels (see :func:`select`)."""
    return select(t) == "triton"


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
