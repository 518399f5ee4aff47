"""Triton kernels for ``vsm.posterior_fd``: the per-sample posterior Fisher divergence.

Forward, for rows r = (n, b) of the flattened (N·B, L) tensors::

    e    = exp(-logvar[b])
    res  = -(z - mu[b]) * e + z - g            (g = ∇_z log p(x|z), the decoder VJP)
    out[r] = Σ_l res²

Backward, with go = grad_out[r]::

    dz = 2 go res (1 - e),   dg = -2 go res,
    dmu[b] = e Σ_n 2 go res,  dlogvar[b] = e Σ_n 2 go res (z - mu)

The backward kernel tiles (B, L) and loops over the N samples, so the reductions over N for
dmu/dlogvar happen in registers: no atomics and no (N,B,L) scratch buffers. The sums over N are
taken before the multiplication by e (as autograd does for the reference, where mu and logvar are
broadcast over N): with e up to ~1e13, per-sample terms that overflow float32 but cancel over the
samples must not give inf − inf = NaN. Accumulation happens in the input dtype (float32 or
float64).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _pfd_fwd_kernel(
    z_ptr, mu_ptr, lv_ptr, g_ptr, out_ptr,
    M, B, L,
    BLOCK_M: tl.constexpr, BLOCK_L: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    brow = rows % B
    acc = tl.zeros((BLOCK_M, BLOCK_L), dtype=z_ptr.dtype.element_ty)
    for l0 in range(0, L, BLOCK_L):
        cols = l0 + tl.arange(0, BLOCK_L)
        mask = row_ok[:, None] & (cols < L)[None, :]
        off = rows[:, None] * L + cols[None, :]
        boff = brow[:, None] * L + cols[None, :]
        z = tl.load(z_ptr + off, mask=mask, other=0.0)
        g = tl.load(g_ptr + off, mask=mask, other=0.0)
        mu = tl.load(mu_ptr + boff, mask=mask, other=0.0)
        lv = tl.load(lv_ptr + boff, mask=mask, other=0.0)
        res = z - (z - mu) * tl.exp(-lv) - g
        acc += tl.where(mask, res * res, 0.0)
    tl.store(out_ptr + rows, tl.sum(acc, axis=1), mask=row_ok)


@triton.jit
def _pfd_bwd_kernel(
    go_ptr, z_ptr, mu_ptr, lv_ptr, g_ptr,
    dz_ptr, dmu_ptr, dlv_ptr, dg_ptr,
    N, B, L,
    BLOCK_B: tl.constexpr, BLOCK_L: tl.constexpr,
):
    pid_b = tl.program_id(0)
    pid_l = tl.program_id(1)
    bs = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    b_ok = bs < B
    mask = b_ok[:, None] & (cols < L)[None, :]
    boff = bs[:, None] * L + cols[None, :]
    mu = tl.load(mu_ptr + boff, mask=mask, other=0.0)
    lv = tl.load(lv_ptr + boff, mask=mask, other=0.0)
    e = tl.exp(-lv)
    acc_mu = tl.zeros((BLOCK_B, BLOCK_L), dtype=z_ptr.dtype.element_ty)
    acc_lv = tl.zeros((BLOCK_B, BLOCK_L), dtype=z_ptr.dtype.element_ty)
    for n in range(N):
        rows = n * B + bs
        off = rows[:, None] * L + cols[None, :]
        z = tl.load(z_ptr + off, mask=mask, other=0.0)
        g = tl.load(g_ptr + off, mask=mask, other=0.0)
        go = tl.load(go_ptr + rows, mask=b_ok, other=0.0)
        d = z - mu
        t = 2.0 * go[:, None] * (z - d * e - g)
        tl.store(dz_ptr + off, t * (1.0 - e), mask=mask)
        tl.store(dg_ptr + off, -t, mask=mask)
        acc_mu += t
        acc_lv += t * d
    tl.store(dmu_ptr + boff, acc_mu * e, mask=mask)
    tl.store(dlv_ptr + boff, acc_lv * e, mask=mask)


def _block_l(L: int) -> int:
    return min(triton.next_power_of_2(max(L, 1)), 128)


def forward(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """PFD per row. ``z``, ``g``: contiguous (N, B, L); ``mu``, ``logvar``: contiguous (B, L)."""
    N, B, L = z.shape
    M = N * B
    out = torch.empty((N, B), dtype=z.dtype, device=z.device)
    if M == 0:
        return out
    block_l = _block_l(L)
    block_m = max(1, min(64, 4096 // block_l))
    grid = (triton.cdiv(M, block_m),)
    _pfd_fwd_kernel[grid](z, mu, logvar, g, out, M, B, L, BLOCK_M=block_m, BLOCK_L=block_l)
    return out


def backward(
    go: torch.Tensor, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, g: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (dz, dmu, dlogvar, dg) given ``go`` = dLoss/dPFD of shape (N, B)."""
    N, B, L = z.shape
    dz = torch.empty_like(z)
    dg = torch.empty_like(g)
    dmu = torch.empty_like(mu)
    dlv = torch.empty_like(logvar)
    if N * B * L == 0:
        return dz, dmu.zero_(), dlv.zero_(), dg
    block_l = _block_l(L)
    block_b = max(1, min(64, 2048 // block_l))
    grid = (triton.cdiv(B, block_b), triton.cdiv(L, block_l))
    _pfd_bwd_kernel[grid](
        go, z, mu, logvar, g, dz, dmu, dlv, dg, N, B, L, BLOCK_B=block_b, BLOCK_L=block_l
    )
    return dz, dmu, dlv, dg
