"""Launch policy shared by vsm's Triton launchers: tile sizes, warps, FP fusion, device guard.

Every launcher in :mod:`vsm.kernels` goes through :func:`launch`, so the rules below hold for all
kernels (and the compile test, ``tests/test_kernel_compile.py``, checks them for every kernel):

- **Tiles** hold at most :data:`MAX_TILE` = 1024 elements and run on ``num_warps`` =
  :func:`warps_for` (tile // 256, 1–4 warps): ≤ 8 elements per thread per live tile, which keeps
  the fused float64 kernels below the 255-register cap without spilling on sm_80/sm_90.
- **Filling the machine**: tiles shrink (down to :data:`MIN_TILE` elements) until a launch has at
  least :data:`TARGET_PROGRAMS` programs (the 132 SMs of an H100/H200), see :func:`rows_per_tile`.
  Below ``MIN_TILE · TARGET_PROGRAMS`` ≈ 8 K parallel elements a launch cannot fill the machine
  without programs of a few elements; such launches move a few KB and are latency-bound anyway.
- **Grids are 1-D** (x up to 2³¹ − 1 programs; kernels split the program id themselves), and all
  address arithmetic inside the kernels is int64.
- **FP fusion** is set explicitly (:data:`FP_FUSION` = False): no FMA contraction, so the compiled
  kernels round operation by operation like the interpreter and the torch reference, whatever
  Triton's default (3.9 fuses; 3.10 will not).
- **Precise exp**: kernels take ``PRECISE: tl.constexpr``; compiled kernels get True (libdevice
  ``exp``: ≤ 2 ulp in float32, instead of ``ex2.approx`` of a rounded product, ~29 ulp at
  |x| = 30); interpreted ones get False and never execute the libdevice branch.
- **Device guard**: the launch runs under ``torch.cuda.device(<the tensors' device>)``.
- **Contiguity**: every tensor argument must be contiguous (asserted; the ops are tagged
  ``needs_contiguous_strides`` and the public wrappers call ``.contiguous()``).
- Compiled kernels are launched through ``torch.library.wrap_triton`` so that, inside the
  ``triton_op`` registrations of :mod:`vsm.ops`, ``torch.compile`` traces the launches themselves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice

#: Largest tile (elements per program per live tensor tile).
MAX_TILE = 1024
#: Smallest tile the launchers shrink to while looking for more programs.
MIN_TILE = 64
#: Programs a launch aims for: the SM count of an H100/H200 (an A100 has 108).
TARGET_PROGRAMS = 132
#: FMA contraction in the compiled kernels (explicit at every launch; see the module docstring).
FP_FUSION = False

#: When not None, :func:`launch` appends ``(kernel, grid, args, kwargs)`` here instead of running
#: (used by the compile test to capture the launchers' real launches; see :func:`recording`).
_recorder: list[tuple[Any, tuple[int, ...], tuple[Any, ...], dict[str, Any]]] | None = None


@triton.jit
def _exp(x, PRECISE: tl.constexpr):
    """exp(x): libdevice ``exp`` when ``PRECISE`` (compiled kernels), ``tl.exp`` otherwise."""
    if PRECISE:
        y = libdevice.exp(x)
    else:
        y = tl.exp(x)
    return y


def is_interpreted(kernel: Any) -> bool:
    """True when ``kernel`` was built for Triton's interpreter (``TRITON_INTERPRET=1`` at import)."""
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(kernel, InterpretedFunction)


def warps_for(tile: int) -> int:
    """Warps for a tile of ``tile`` elements: one per 256 elements, 1 to 4 (≤ 8 per thread)."""
    return max(1, min(4, tile // 256))


def rows_per_tile(n_rows: int, width: int, col_tiles: int = 1, max_tile: int = MAX_TILE) -> int:
    """Rows per program for tiles ``width`` columns wide (a power of two ≤ ``max_tile``).

    Starts from the largest power of two with ``rows·width ≤ max_tile`` (at most the rows there
    are) and halves it while the launch, ``ceil(n_rows/rows)·col_tiles`` programs, has fewer than
    TARGET_PROGRAMS programs and the tile is above MIN_TILE elements.
    """
    rows = max(1, min(max_tile // width, triton.next_power_of_2(max(n_rows, 1))))
    while (
        rows > 1
        and rows * width > MIN_TILE
        and triton.cdiv(n_rows, rows) * col_tiles < TARGET_PROGRAMS
    ):
        rows //= 2
    return rows


def device_guard(t: torch.Tensor) -> contextlib.AbstractContextManager:
    """``torch.cuda.device(t.device)`` for CUDA tensors, a no-op otherwise."""
    if t.device.type == "cuda":
        return torch.cuda.device(t.device)
    return contextlib.nullcontext()


def check_contiguous(**tensors: torch.Tensor) -> None:
    """Raise ValueError naming the first non-contiguous tensor (kernels assume row-major)."""
    for name, t in tensors.items():
        if not t.is_contiguous():
            raise ValueError(
                f"{name}: the Triton kernels need a contiguous tensor "
                f"(shape {tuple(t.shape)}, strides {t.stride()})"
            )


def launch(kernel: Any, n_programs: int, *args: Any, num_warps: int, **constexprs: Any) -> None:
    """Launch ``kernel`` on a 1-D grid of ``n_programs`` on the tensors' device.

    Adds ``PRECISE`` (compiled kernels only; see ``_exp``) and the explicit FP-fusion
    setting. The first tensor argument decides the device.
    """
    grid = (n_programs,)
    interpreted = is_interpreted(kernel)
    if "PRECISE" in _arg_names(kernel):
        constexprs["PRECISE"] = not interpreted
    kwargs = {**constexprs, "num_warps": num_warps, "enable_fp_fusion": FP_FUSION}
    if _recorder is not None:
        _recorder.append((kernel, grid, args, kwargs))
        return
    first = next(a for a in args if isinstance(a, torch.Tensor))
    runner = kernel if interpreted else torch.library.wrap_triton(kernel)
    with device_guard(first):
        runner[grid](*args, **kwargs)


def _arg_names(kernel: Any) -> list[str]:
    return list(kernel.arg_names)


@contextlib.contextmanager
def recording() -> Iterator[list[tuple[Any, tuple[int, ...], tuple[Any, ...], dict[str, Any]]]]:
    """Capture the launches of the launchers called inside the block instead of running them.

    Yields the list of ``(kernel, grid, args, kwargs)``; the launchers may be called with
    ``device="meta"`` tensors. Used by the compile test.
    """
    global _recorder
    previous, _recorder = _recorder, []
    try:
        yield _recorder
    finally:
        _recorder = previous


def jit_functions(module: Any) -> dict[str, Callable]:
    """The ``@triton.jit`` kernels (JIT or interpreted) defined at the top level of ``module``."""
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    return {
        name: obj
        for name, obj in vars(module).items()
        if isinstance(obj, (JITFunction, InterpretedFunction))
        and getattr(getattr(obj, "fn", None), "__module__", None) == module.__name__
    }
