"""Backend dispatch for vsm's fused ops.

Rules (API.md): CUDA tensors run the compiled Triton kernels; CPU tensors run the Rust engine's
kernels (:mod:`vsm.ops._rust`, registered as the ops' CPU implementation); with
``TRITON_INTERPRET=1`` in the environment *before vsm's kernels are first used*, CPU tensors run
the Triton kernels through Triton's interpreter instead (this is how CI tests the kernels). Other
devices run the pure-torch reference. A compiled Triton kernel is never launched without a GPU.

``vsm.backend("reference")`` / ``vsm.backend("triton")`` / ``vsm.backend("rust")`` override the
choice in a ``with`` block (benchmarks use it; "triton" on CPU still requires the interpreter,
"rust" requires CPU tensors). :func:`select` maps a tensor to its backend; :func:`cpu_kernel`
tells the ops' CPU implementation which kernels to run.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from collections.abc import Iterator

import torch

_BACKENDS = ("auto", "reference", "triton", "rust")
_forced: list[str] = ["auto"]


def interpret_mode() -> bool:
    """True when Triton's interpreter is switched on (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@functools.cache
def triton_available() -> bool:
    """True when the ``triton`` package can be imported."""
    return importlib.util.find_spec("triton") is not None


def _interpreted_triton_on_cpu() -> bool:
    """Whether the Triton kernels can run CPU tensors (through the interpreter)."""
    return interpret_mode() and triton_available()


def select(t: torch.Tensor) -> str:
    """The backend that runs a fused op on tensor ``t``: "triton", "rust" or "reference".

    Raises:
        RuntimeError: ``vsm.backend("triton")`` where the Triton kernels cannot run ``t``, or
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
    if t.device.type == "cuda":
        ok = triton_available()
    elif t.device.type == "cpu":
        ok = _interpreted_triton_on_cpu()
    else:
        ok = False
    if mode == "triton" and not ok:
        raise RuntimeError(
            "vsm.backend('triton') needs a CUDA tensor, or TRITON_INTERPRET=1 for CPU tensors, "
            f"and the triton package (tensor on {t.device}, triton "
            f"{'installed' if triton_available() else 'missing'})"
        )
    if ok:
        return "triton"
    return "rust" if t.device.type == "cpu" else "reference"


def use_triton(t: torch.Tensor) -> bool:
    """Whether the fused op on tensor ``t`` should run the Triton kernels (see :func:`select`)."""
    return select(t) == "triton"


def cpu_kernel() -> str:
    """The kernels the fused ops' CPU implementation runs now: "rust" or "triton".

    "triton" (the interpreter) inside ``vsm.backend("triton")``, and by default when the Triton
    kernels can run CPU tensors (:func:`select`); "rust" otherwise, and always inside
    ``vsm.backend("rust")``. Read when an op executes; the ops' backward formulas replay the
    forward's choice (:func:`cpu_kernel_of`, :func:`same_cpu_kernel`).
    """
    mode = _forced[-1]
    if mode == "rust":
        return "rust"
    if mode == "triton" or _interpreted_triton_on_cpu():
        return "triton"
    return "rust"


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
