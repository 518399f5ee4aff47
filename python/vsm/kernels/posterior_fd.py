"""Triton kernels for ``vsm.posterior_fd``: the per-sample posterior Fisher divergence.

Forward, for rows r = (n, b) of the flattened (N·B, L) tensors::

    e    = exp(-logvar[b])
    res  = -(z - mu[b]) * e + z - g            (g = ∇_z log p(x|z), the decoder VJP)
    out[r] = Σ_l res²

Backward, with go = grad_out[r]::

    dz = 2 go res (1 - e),   dg = -2 go res,
    dmu[b] = e Σ_n 2 go res,  dlogvar[b] = e Σ_n 2 go res (z - mu)

The backward kernel tiles (B, L) and loops over the samples n of its chunk, so the reductions over
N for dmu/dlogvar happen in registers (no atomics). When the (B, L) tiles alone are too few to fill
the GPU (small B, see :mod:`vsm.kernels._launch`), the N samples are split into chunks: each
(chunk, tile) program writes its partial sums Σ_{n in chunk} into an (n_chunks, B, L) buffer and
a second kernel adds the chunks in order and multiplies by e — deterministic, and still summing
over N *before* the multiplication by e (as autograd does for the reference, where mu and logvar
are broadcast over N): with e up to ~1e13, per-sample terms that overflow float32 but cancel over
the samples must not give inf − inf = NaN. Accumulation happens in the input dtype (float32 or
float64); all offsets are int64.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._launch import TARGET_PROGRAMS, _exp, check_contiguous, launch, rows_per_tile, warps_for


@triton.jit(do_not_specialize=["M"])
def _pfd_fwd_kernel(
    z_ptr,
    mu_ptr,
    lv_ptr,
    g_ptr,
    out_ptr,
    M,
    B,
    L,
    BLOCK_M: tl.constexpr,
    BLOCK_L: tl.constexpr,
    PRECISE: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
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
        res = z - (z - mu) * _exp(-lv, PRECISE) - g
        acc += tl.where(mask, res * res, 0.0)
    tl.store(out_ptr + rows, tl.sum(acc, axis=1), mask=row_ok)


@triton.jit(do_not_specialize=["N", "B", "N_BT", "N_LT", "CHUNK"])
def _pfd_bwd_kernel(
    go_ptr,
    z_ptr,
    mu_ptr,
    lv_ptr,
    g_ptr,
    dz_ptr,
    dmu_ptr,
    dlv_ptr,
    dg_ptr,
    N,
    B,
    L,
    N_BT,
    N_LT,
    CHUNK,
    BLOCK_B: tl.constexpr,
    BLOCK_L: tl.constexpr,
    PARTIAL: tl.constexpr,
    PRECISE: tl.constexpr,
):
    # program id -> (chunk of samples, B tile, L tile); 1-D grid of n_chunks·N_BT·N_LT programs
    pid = tl.program_id(0).to(tl.int64)
    pid_b = pid % N_BT
    pid_l = (pid // N_BT) % N_LT
    chunk = pid // (N_BT * N_LT)
    bs = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    b_ok = bs < B
    mask = b_ok[:, None] & (cols < L)[None, :]
    boff = bs[:, None] * L + cols[None, :]
    mu = tl.load(mu_ptr + boff, mask=mask, other=0.0)
    lv = tl.load(lv_ptr + boff, mask=mask, other=0.0)
    e = _exp(-lv, PRECISE)
    acc_mu = tl.zeros((BLOCK_B, BLOCK_L), dtype=z_ptr.dtype.element_ty)
    acc_lv = tl.zeros((BLOCK_B, BLOCK_L), dtype=z_ptr.dtype.element_ty)
    n0 = chunk * CHUNK
    for k in range(CHUNK):
        n = n0 + k
        rows = n * B + bs
        r_ok = b_ok & ((bs * 0 + n) < N)  # the last chunk may run past N
        m = r_ok[:, None] & (cols < L)[None, :]
        off = rows[:, None] * L + cols[None, :]
        z = tl.load(z_ptr + off, mask=m, other=0.0)
        g = tl.load(g_ptr + off, mask=m, other=0.0)
        go = tl.load(go_ptr + rows, mask=r_ok, other=0.0)
        d = z - mu
        t = 2.0 * go[:, None] * (z - d * e - g)
        tl.store(dz_ptr + off, t * (1.0 - e), mask=m)
        tl.store(dg_ptr + off, -t, mask=m)
        acc_mu += tl.where(m, t, 0.0)
        acc_lv += tl.where(m, t * d, 0.0)
    if PARTIAL:
        # partial sums of this chunk: (n_chunks, B, L) buffers, finished by _pfd_bwd_reduce_kernel
        poff = chunk * B * L + boff
        tl.store(dmu_ptr + poff, acc_mu, mask=mask)
        tl.store(dlv_ptr + poff, acc_lv, mask=mask)
    else:
        tl.store(dmu_ptr + boff, acc_mu * e, mask=mask)
        tl.store(dlv_ptr + boff, acc_lv * e, mask=mask)


@triton.jit(do_not_specialize=["C"])
def _pfd_bwd_reduce_kernel(
    pmu_ptr,
    plv_ptr,
    lv_ptr,
    dmu_ptr,
    dlv_ptr,
    C,
    BL,
    BLOCK: tl.constexpr,
    PRECISE: tl.constexpr,
):
    # dmu = e · Σ_c pmu[c], dlogvar = e · Σ_c plv[c], chunks added in order (deterministic)
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < BL
    acc_mu = tl.load(pmu_ptr + offs, mask=ok, other=0.0)
    acc_lv = tl.load(plv_ptr + offs, mask=ok, other=0.0)
    coff = offs
    for _c in range(1, C):
        coff += BL
        acc_mu += tl.load(pmu_ptr + coff, mask=ok, other=0.0)
        acc_lv += tl.load(plv_ptr + coff, mask=ok, other=0.0)
    e = _exp(-tl.load(lv_ptr + offs, mask=ok, other=0.0), PRECISE)
    tl.store(dmu_ptr + offs, acc_mu * e, mask=ok)
    tl.store(dlv_ptr + offs, acc_lv * e, mask=ok)


#: Widest latent tile (columns); longer rows loop (forward) or span several tiles (backward).
MAX_BLOCK_L = 128


def _block_l(L: int) -> int:
    return min(triton.next_power_of_2(max(L, 1)), MAX_BLOCK_L)


def forward(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, g: torch.Tensor
) -> torch.Tensor:
    """PFD per row. ``z``, ``g``: contiguous (N, B, L); ``mu``, ``logvar``: contiguous (B, L)."""
    check_contiguous(z=z, mu=mu, logvar=logvar, g=g)
    N, B, L = z.shape
    M = N * B
    out = torch.empty((N, B), dtype=z.dtype, device=z.device)
    if M == 0:
        return out
    if L == 0:
        return out.zero_()
    block_l = _block_l(L)
    block_m = rows_per_tile(M, block_l)
    launch(
        _pfd_fwd_kernel,
        triton.cdiv(M, block_m),
        z,
        mu,
        logvar,
        g,
        out,
        M,
        B,
        L,
        num_warps=warps_for(block_m * block_l),
        BLOCK_M=block_m,
        BLOCK_L=block_l,
    )
    return out


def backward(
    go: torch.Tensor, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, g: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (dz, dmu, dlogvar, dg) given ``go`` = dLoss/dPFD of shape (N, B)."""
    check_contiguous(go=go, z=z, mu=mu, logvar=logvar, g=g)
    N, B, L = z.shape
    dz = torch.empty_like(z)
    dg = torch.empty_like(g)
    dmu = torch.empty_like(mu)
    dlv = torch.empty_like(logvar)
    if N * B * L == 0:
        return dz, dmu.zero_(), dlv.zero_(), dg
    block_l = _block_l(L)
    n_lt = triton.cdiv(L, block_l)
    block_b = rows_per_tile(B, block_l, n_lt)
    n_bt = triton.cdiv(B, block_b)
    # too few (B, L) tiles for the GPU: split the samples into chunks (two-stage reduction)
    n_chunks = min(N, triton.cdiv(TARGET_PROGRAMS, n_bt * n_lt))
    chunk = triton.cdiv(N, n_chunks)
    n_chunks = triton.cdiv(N, chunk)
    partial = n_chunks > 1
    if partial:
        pmu = torch.empty((n_chunks, B, L), dtype=mu.dtype, device=mu.device)
        plv = torch.empty((n_chunks, B, L), dtype=mu.dtype, device=mu.device)
    else:
        pmu, plv = dmu, dlv
    launch(
        _pfd_bwd_kernel,
        n_chunks * n_bt * n_lt,
        go,
        z,
        mu,
        logvar,
        g,
        dz,
        pmu,
        plv,
        dg,
        N,
        B,
        L,
        n_bt,
        n_lt,
        chunk,
        num_warps=warps_for(block_b * block_l),
        BLOCK_B=block_b,
        BLOCK_L=block_l,
        PARTIAL=partial,
    )
    if partial:
        bl = B * L
        block = rows_per_tile(bl, 1)
        launch(
            _pfd_bwd_reduce_kernel,
            triton.cdiv(bl, block),
            pmu,
            plv,
            logvar,
            dmu,
            dlv,
            n_chunks,
            bl,
            num_warps=warps_for(block),
            BLOCK=block,
        )
    return dz, dmu, dlv, dg
