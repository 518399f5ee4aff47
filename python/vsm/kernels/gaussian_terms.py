"""Triton kernels for ``vsm.gaussian_terms``: per-datum terms of a Gaussian likelihood's x-score.

With f_n = (x_mean[n] − x)·inv, inv = exp(−log σ²), for each datum b::

    sq_mean[b] = (1/N) Σ_n Σ_d f_nbd²          mean_sq[b] = Σ_d fbar_bd²,  fbar = (1/N) Σ_n f_n

Forward: the grid tiles (B, D) (a 1-D grid; tiles of ≤ 1024 elements, shrunk until the launch
has ≥ 132 programs where the shape allows, see :mod:`vsm.kernels._launch`); each program loops
over the N samples, so fbar of its tile lives in registers and x_mean is read exactly once. Each program reduces its tile over D and stores one
partial sum per datum into a (n_d_tiles, B) buffer; the launcher sums the partials with
``torch.sum`` (deterministic: no atomics).

Backward, given a = ∂L/∂sq_mean[b] and c = ∂L/∂mean_sq[b] (∂L/∂f_nbd = (2/N)(a f_nbd + c fbar_bd))::

    dx_mean[n,b,d] = inv · (2/N) · (a f_nbd + c fbar_bd)
    dx[b,d]        = −inv · 2 (a + c) fbar_bd
    dlog σ²        = −2 Σ_b (a sq_mean[b] + c mean_sq[b])     (from the saved outputs, in torch)

The backward kernel uses the same (B, D) tiling and reads x_mean twice (once for fbar, once for
dx_mean). log σ² is read from device memory inside the kernels (no host synchronisation).
Accumulation happens in the input dtype (float32 or float64); offsets are int64; the kernels are
interpreter compatible.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._launch import _exp, check_contiguous, launch, rows_per_tile, warps_for


@triton.jit
def _tile(
    x_ptr, ls_ptr, B, D, N_BT, BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr, PRECISE: tl.constexpr
):
    """This program's (BLOCK_B, BLOCK_D) tile of the (B, D) data, shared by both kernels:
    its D-tile index, B as int64 (n·B must not wrap in int32), row and column indices, row and
    element masks, offsets into x, 1/σ² and the tile of x."""
    pid = tl.program_id(0).to(tl.int64)
    pid_b = pid % N_BT
    pid_d = pid // N_BT
    B64 = pid * 0 + B  # int64 copy of B: n·B must not wrap in int32
    bs = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    b_ok = bs < B
    mask = b_ok[:, None] & (cols < D)[None, :]
    off = bs[:, None] * D + cols[None, :]
    inv = _exp(-tl.load(ls_ptr), PRECISE)
    x = tl.load(x_ptr + off, mask=mask, other=0.0)
    return pid_d, B64, bs, cols, b_ok, mask, off, inv, x


@triton.jit(do_not_specialize=["N", "B", "N_BT"])
def _gt_fwd_kernel(
    x_ptr,
    xm_ptr,
    ls_ptr,
    sq_ptr,
    msq_ptr,
    N,
    B,
    D,
    N_BT,
    BLOCK_B: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PRECISE: tl.constexpr,
):
    pid_d, B64, bs, cols, b_ok, mask, _off, inv, x = _tile(
        x_ptr, ls_ptr, B, D, N_BT, BLOCK_B, BLOCK_D, PRECISE
    )
    acc_f = tl.zeros((BLOCK_B, BLOCK_D), dtype=x_ptr.dtype.element_ty)
    acc_sq = tl.zeros((BLOCK_B, BLOCK_D), dtype=x_ptr.dtype.element_ty)
    for n in range(N):
        roff = (n * B64 + bs)[:, None] * D + cols[None, :]
        xm = tl.load(xm_ptr + roff, mask=mask, other=0.0)
        f = (xm - x) * inv
        acc_f += f
        acc_sq += f * f
    fbar = acc_f / N
    sq = tl.sum(acc_sq, axis=1) / N
    msq = tl.sum(fbar * fbar, axis=1)
    out = pid_d * B + bs
    tl.store(sq_ptr + out, sq, mask=b_ok)
    tl.store(msq_ptr + out, msq, mask=b_ok)


@triton.jit(do_not_specialize=["N", "B", "N_BT"])
def _gt_bwd_kernel(
    ga_ptr,
    gc_ptr,
    x_ptr,
    xm_ptr,
    ls_ptr,
    dx_ptr,
    dxm_ptr,
    N,
    B,
    D,
    N_BT,
    BLOCK_B: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PRECISE: tl.constexpr,
):
    _pid_d, B64, bs, cols, b_ok, mask, off, inv, x = _tile(
        x_ptr, ls_ptr, B, D, N_BT, BLOCK_B, BLOCK_D, PRECISE
    )
    a = tl.load(ga_ptr + bs, mask=b_ok, other=0.0)[:, None]
    c = tl.load(gc_ptr + bs, mask=b_ok, other=0.0)[:, None]
    acc_f = tl.zeros((BLOCK_B, BLOCK_D), dtype=x_ptr.dtype.element_ty)
    for n in range(N):
        roff = (n * B64 + bs)[:, None] * D + cols[None, :]
        xm = tl.load(xm_ptr + roff, mask=mask, other=0.0)
        acc_f += (xm - x) * inv
    fbar = acc_f / N
    tl.store(dx_ptr + off, -2.0 * inv * (a + c) * fbar, mask=mask)
    coef = 2.0 * inv / N
    cf = c * fbar
    for n in range(N):
        roff = (n * B64 + bs)[:, None] * D + cols[None, :]
        xm = tl.load(xm_ptr + roff, mask=mask, other=0.0)
        f = (xm - x) * inv
        tl.store(dxm_ptr + roff, coef * (a * f + cf), mask=mask)


#: Largest D tile; module-level so tests can shrink it to exercise D > block size cheaply.
MAX_BLOCK_D = 128


def _blocks(B: int, D: int) -> tuple[int, int]:
    block_d = min(triton.next_power_of_2(max(D, 1)), MAX_BLOCK_D)
    block_b = rows_per_tile(B, block_d, triton.cdiv(D, block_d))
    return block_b, block_d


def forward(
    x: torch.Tensor, x_mean: torch.Tensor, log_sigma2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sq_mean, mean_sq), each (B,). ``x`` (B, D), ``x_mean`` (N, B, D), ``log_sigma2`` 0-dim;
    all contiguous, same dtype and device."""
    check_contiguous(x=x, x_mean=x_mean, log_sigma2=log_sigma2)
    N, B, D = x_mean.shape
    if N * B * D == 0:
        z = x.new_zeros((B,))
        return z, z.clone()
    block_b, block_d = _blocks(B, D)
    n_bt, n_dt = triton.cdiv(B, block_b), triton.cdiv(D, block_d)
    sq = torch.empty((n_dt, B), dtype=x.dtype, device=x.device)
    msq = torch.empty((n_dt, B), dtype=x.dtype, device=x.device)
    launch(
        _gt_fwd_kernel,
        n_bt * n_dt,
        x,
        x_mean,
        log_sigma2,
        sq,
        msq,
        N,
        B,
        D,
        n_bt,
        num_warps=warps_for(block_b * block_d),
        BLOCK_B=block_b,
        BLOCK_D=block_d,
    )
    return sq.sum(0), msq.sum(0)


def backward(
    grad_sq_mean: torch.Tensor,
    grad_mean_sq: torch.Tensor,
    x: torch.Tensor,
    x_mean: torch.Tensor,
    log_sigma2: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(dx (B, D), dx_mean (N, B, D)) given the (B,) gradients of sq_mean and mean_sq.

    The log σ² gradient needs no kernel: it is −2 Σ_b (a·sq_mean + c·mean_sq) (module docstring).
    """
    check_contiguous(
        grad_sq_mean=grad_sq_mean,
        grad_mean_sq=grad_mean_sq,
        x=x,
        x_mean=x_mean,
        log_sigma2=log_sigma2,
    )
    N, B, D = x_mean.shape
    dx = torch.empty_like(x)
    dxm = torch.empty_like(x_mean)
    if N * B * D == 0:
        return dx.zero_(), dxm.zero_()
    block_b, block_d = _blocks(B, D)
    n_bt, n_dt = triton.cdiv(B, block_b), triton.cdiv(D, block_d)
    launch(
        _gt_bwd_kernel,
        n_bt * n_dt,
        grad_sq_mean,
        grad_mean_sq,
        x,
        x_mean,
        log_sigma2,
        dx,
        dxm,
        N,
        B,
        D,
        n_bt,
        num_warps=warps_for(block_b * block_d),
        BLOCK_B=block_b,
        BLOCK_D=block_d,
    )
    return dx, dxm
