"""Tolerances of ``vsm bench --check`` and the elementwise comparison of vsm against the
reference: :data:`TOLERANCES`, :class:`CheckResult` (one compared quantity), :func:`compare`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: Tolerances of vsm against the reference, per dtype: |got − want| ≤ rtol·|want| + atol·max|want|
#: elementwise (atol is relative to the largest magnitude of the compared tensor, so it is
#: unit-free and covers entries that are sums with cancellation). float32: the Triton kernels
#: reduce in a different order than torch (a few ulp per element over sums of ≤ 10³ terms) and the
#: compiled float32 exp may be ex2.approx (≤ ~30 ulp ≈ 2e-6 relative at |log s²| ≤ 30, squared by
#: the PFD: ≤ 4e-6, see shared/notes/gpu_audit.md); 1e-4 leaves 25× headroom on that and still
#: catches any real error (a wrong term is O(1) relative). float64: order-of-summation error only
#: (≤ 1e-13 relative at these sizes); 1e-9 / 1e-11.
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float32: (1e-4, 1e-5),
    torch.float64: (1e-9, 1e-11),
}


@dataclass
class CheckResult:
    """One compared quantity: ``ok`` when every element is within tolerance."""

    check: str
    backend: str
    dtype: str
    shape: str
    quantity: str
    ok: bool
    max_abs_err: float
    worst_ratio: float  # max over elements of |err| / allowed (≤ 1 passes)
    message: str = ""


def compare(
    got: torch.Tensor | None, want: torch.Tensor | None, dtype: torch.dtype
) -> tuple[bool, float, float, str]:
    """(ok, max |err|, worst err/allowed, message) of ``got`` against ``want``."""
    if got is None or want is None:
        ok = got is None and want is None
        return (
            ok,
            0.0,
            0.0,
            "" if ok else f"one side is None (got {got is None}, want {want is None})",
        )
    if got.shape != want.shape:
        return False, math.inf, math.inf, f"shape {tuple(got.shape)} != {tuple(want.shape)}"
    rtol, atol = TOLERANCES[dtype]
    g, w = got.detach().double(), want.detach().double()
    nan_g, nan_w = torch.isnan(g), torch.isnan(w)
    if not torch.equal(nan_g, nan_w):
        return False, math.inf, math.inf, "NaN in different places"
    fin = torch.isfinite(w) & torch.isfinite(g)
    if not torch.equal(g[~fin & ~nan_w], w[~fin & ~nan_w]):
        return False, math.inf, math.inf, "infinities differ"
    if not fin.any():
        return True, 0.0, 0.0, ""
    g, w = g[fin], w[fin]
    err = (g - w).abs()
    allowed = rtol * w.abs() + atol * w.abs().max() + torch.finfo(torch.float64).tiny
    ratio = float((err / allowed).max())
    ok = ratio <= 1.0
    msg = (
        ""
        if ok
        else f"max |err| {float(err.max()):.3g}, {ratio:.3g}× the tolerance "
        f"(rtol {rtol:g}, atol {atol:g}·max|want|)"
    )
    return ok, float(err.max()), ratio, msg
