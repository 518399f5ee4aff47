"""Backend dispatch for vsm's fused ops.

Rules (API.md): CUDA tensors run the compiled Triton kernels; CPU tensors run the Rust engine's
kernels (:mod:`vsm.ops._rust`, registered as the ops' CPU implementation); with
``TRITON_INTERPRET=1`` in the environment *when vsm's kernels are first imported*, CPU tensors run
the Triton kernels through Triton's interpreter instead (this is how CI tests the kernels). Other
devices run the pure-torch reference. A compiled Triton kernel is never launched without a GPU.

Triton decides compiled-vs-interpreted once, when ``@triton.jit`` runs (at the import of
:mod:`vsm.kernels`); :func:`kernel_build` reads that decision from the kernel objects themselves,
so changing ``TRITON_INTERPRET`` later changes nothing. A mismatch is an error, not a silent
fallback: CUDA tensors meeting interpreted kernels (they would crawl through the interpreter with
host copies), and ``vsm.backend("triton")`` with CPU tensors when the kernels were compiled.

``vsm.backend("reference")`` / ``vsm.backend("triton")`` / ``vsm.backend("rust")`` override the
choice in a ``with`` block (benchmarks use it; "rust" requires CPU tensors). Backends are listed in
``_BACKENDS``; :func:`select` maps a tensor to the backend that runs it, so another backend is
one more name there and one more branch in :func:`select`. :func:`cpu_kernel` tells the ops' CPU
implementation which kernels to run ("rust", or "triton" in the interpreter).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from typing import Literal

import torch

_BACKENDS = ("auto", "reference", "triton", "rust")
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
        return (
            f"vsm's Triton kernels were built for Triton's interpreter (TRITON_INTERPRET was "
            f"set when vsm.kernels was imported), which cannot run {t.device} tensors at GPU "
            "speed; unset TRITON_INTERPRET before importing vsm, or use CPU tensors"
        )
    return (
        f"vsm's Triton kernels were compiled for the GPU (TRITON_INTERPRET was not set when "
        f"vsm.kernels was imported) and cannot run {t.device} tensors; set TRITON_INTERPRET=1 "
        "before importing vsm to run them in the interpreter on CPU"
    )


def select(t: torch.Tensor) -> str:
    """The backend that runs a fused op on tensor ``t``: "triton", "rust" or "reference".

    Raises:
        RuntimeError: the tensor and the kernel build do not match (CUDA tensors with interpreted
            kernels; or ``vsm.backend("triton")`` where the kernels cannot run ``t``), or
            ``vsm.backend("rust")`` with a tensor not on the CPU.
    """
    mode = _forced[-1]
    if mode == "reference":
        return "reference"
    if mode == "rust":
        if t.device.type != "cpu":
            raise RuntimeError(
                f"vsm.backend('rust'): the Rust kernels run CPU tensors only (tensor on {t.device})"
            )
        return "rust"
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
    return "rust" if t.device.type == "cpu" else "reference"


def use_triton(t: torch.Tensor) -> bool:
    """Whether the fused op on tensor ``t`` should run the Triton kernels (see :func:`select`)."""
    return select(t) == "triton"


def cpu_kernel() -> str:
    """The kernels the fused ops' CPU implementation runs now: "rust" or "triton".

    "triton" (the interpreter) inside ``vsm.backend("triton")``, and by default when the Triton
    kernels were built for the interpreter (:func:`kernel_build`); "rust" otherwise, and always
    inside ``vsm.backend("rust")``. Read when an op executes; the ops' backward formulas replay the
    forward's choice (:func:`cpu_kernel_of`, :func:`same_cpu_kernel`).
    """
    mode = _forced[-1]
    if mode == "rust":
        return "rust"
    if mode == "triton" or kernel_build() == "interpreted":
        return "triton"
    return "rust"


#: :func:`cpu_kernel_of` value recorded by the eager direct path (:mod:`vsm.ops._direct`): the
#: forward ran the Rust launchers without ``torch.library``, and so does its backward.
DIRECT = "rust-direct"


def direct_rust() -> bool:
    """Whether a fused op on CPU tensors runs the Rust kernels now (:func:`select` gives "rust"
    and :func:`cpu_kernel` gives "rust"), so the eager direct path may call them itself."""
    mode = _forced[-1]
    return mode == "rust" or (mode == "auto" and kernel_build() != "interpreted")


def cpu_kernel_of(t: torch.Tensor) -> str | None:
    """:func:`cpu_kernel` for a CPU tensor, None for others.

    An op's forward records it so that its backward (which autograd runs later, possibly after
    the ``with vsm.backend(...)`` block has closed) runs the same kernel set: see
    :func:`same_cpu_kernel`.
    """
    return cpu_kernel() if t.device.type == "cpu" else None


def same_cpu_kernel(kernel: str | None) -> contextlib.AbstractContextManager[None]:
    """Context running the ops' CPU implementation on ``kernel`` ("rust"/"triton"; None: as is).

    Eager autograd only: under ``torch.compile`` the backward graph is traced once and its ops
    read :func:`cpu_kernel` when they execute (both kernel sets compute the same formulas and the
    same probe stream, so mixing them changes results by rounding only).
    """
    return backend(kernel) if kernel is not None else contextlib.nullcontext()


@contextlib.contextmanager
def backend(name: str) -> Iterator[None]:
    """Force the backend of vsm's fused ops inside a ``with`` block.

    ``name``: "auto" (the dispatch rules), "reference" (pure torch everywhere), "triton"
    (the Triton kernels; an error where they cannot run) or "rust" (the Rust CPU kernels; an
    error for tensors not on the CPU).
    """
    if name not in _BACKENDS:
        raise ValueError(f"backend: expected one of {_BACKENDS}, got {name!r}")
    _forced.append(name)
    try:
        yield
    finally:
        _forced.pop()
