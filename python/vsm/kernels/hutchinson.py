"""Triton kernels for ``vsm.hutchinson_trace``: Philox probes and the probe dot product.

Probes v (P, B, D) are a pure function of ``(seed, flat index)``: element ``i = (p·B + b)·D + d``
is drawn with Triton's Philox (``tl.randint`` / ``tl.randn`` with ``seed`` and offset ``i``), so any
kernel can regenerate them instead of reading them from memory:

- ``probes``: writes v (needed once, as the ``grad_outputs`` of the VJP vᵀJ);
- ``dot``: out[p, b] = Σ_d v[p, b, d] · u[p, b, d] (u = vᵀJ from autograd), regenerating v;
- ``dot_backward``: du[p, b, d] = go[p, b] · v[p, b, d], regenerating v (nothing saved but the seed).

Distributions (``DIST``): 0 = Rademacher (±1 from the lowest bit of a Philox word), 1 = standard
Gaussian (``tl.randn``, drawn in float32 and cast). Values are independent of the output dtype, so
float32 and float64 calls with the same seed see the same probes. Accumulation happens in the input
dtype. Interpreter-compatible (the Philox functions are plain ``triton.language`` code).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

DISTS = {"rademacher": 0, "gaussian": 1}
_MAX_NUMEL = 2**31 - 1  # Philox offsets are int32 element indices


@triton.jit
def _draw(seed, offs, DIST: tl.constexpr):
    if DIST == 0:
        r = tl.randint(seed, offs)
        v = tl.where((r & 1) == 0, 1.0, -1.0)
    else:
        v = tl.randn(seed, offs)
    return v


@triton.jit
def _probes_kernel(out_ptr, seed, M, BLOCK: tl.constexpr, DIST: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    v = _draw(seed, offs, DIST)
    tl.store(out_ptr + offs, v.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _dot_kernel(
    u_ptr, out_ptr, seed, R, D,
    BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr, DIST: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    row_ok = rows < R
    acc = tl.zeros((BLOCK_R, BLOCK_D), dtype=u_ptr.dtype.element_ty)
    for d0 in range(0, D, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        mask = row_ok[:, None] & (cols < D)[None, :]
        off = rows[:, None] * D + cols[None, :]
        u = tl.load(u_ptr + off, mask=mask, other=0.0)
        v = _draw(seed, off, DIST).to(u_ptr.dtype.element_ty)
        acc += tl.where(mask, u * v, 0.0)
    tl.store(out_ptr + rows, tl.sum(acc, axis=1), mask=row_ok)


@triton.jit
def _scale_kernel(
    go_ptr, out_ptr, seed, R, D,
    BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr, DIST: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    row_ok = rows < R
    mask = row_ok[:, None] & (cols < D)[None, :]
    off = rows[:, None] * D + cols[None, :]
    go = tl.load(go_ptr + rows, mask=row_ok, other=0.0)
    v = _draw(seed, off, DIST).to(out_ptr.dtype.element_ty)
    tl.store(out_ptr + off, go[:, None] * v, mask=mask)


def _check_size(numel: int) -> None:
    if numel > _MAX_NUMEL:
        raise ValueError(f"n_probes·B·D = {numel} exceeds the Philox offset range 2**31 - 1")


def _blocks(D: int) -> tuple[int, int]:
    block_d = min(triton.next_power_of_2(max(D, 1)), 256)
    block_r = max(1, min(64, 4096 // block_d))
    return block_r, block_d


def probes(
    shape: tuple[int, int, int], seed: int, dist: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Probes v of ``shape`` (P, B, D) drawn from ``seed`` (``dist``: 0 Rademacher, 1 Gaussian)."""
    out = torch.empty(shape, dtype=dtype, device=device)
    M = out.numel()
    _check_size(M)
    if M == 0:
        return out
    block = 1024
    _probes_kernel[(triton.cdiv(M, block),)](out, seed, M, BLOCK=block, DIST=dist)
    return out


def dot(u: torch.Tensor, seed: int, dist: int) -> torch.Tensor:
    """out[p, b] = Σ_d v[p, b, d]·u[p, b, d] for contiguous ``u`` (P, B, D), v regenerated."""
    P, B, D = u.shape
    R = P * B
    _check_size(u.numel())
    out = torch.empty((P, B), dtype=u.dtype, device=u.device)
    if R == 0:
        return out
    if D == 0:
        return out.zero_()
    block_r, block_d = _blocks(D)
    _dot_kernel[(triton.cdiv(R, block_r),)](
        u, out, seed, R, D, BLOCK_R=block_r, BLOCK_D=block_d, DIST=dist
    )
    return out


def dot_backward(go: torch.Tensor, seed: int, dist: int, D: int) -> torch.Tensor:
    """du[p, b, d] = go[p, b]·v[p, b, d] for contiguous ``go`` (P, B), v regenerated."""
    P, B = go.shape
    R = P * B
    out = torch.empty((P, B, D), dtype=go.dtype, device=go.device)
    _check_size(out.numel())
    if out.numel() == 0:
        return out
    block_r, block_d = _blocks(D)
    grid = (triton.cdiv(R, block_r), triton.cdiv(D, block_d))
    _scale_kernel[grid](go, out, seed, R, D, BLOCK_R=block_r, BLOCK_D=block_d, DIST=dist)
    return out
