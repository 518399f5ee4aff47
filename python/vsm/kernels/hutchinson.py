"""Triton kernels for ``vsm.hutchinson_trace``: Philox probes and the probe dot product.

Probe stream v2 (``/work/wt/PROBES.md``; the Rust CPU kernels implement the same stream). Probes
v have shape (P, B, D); row r = p·B + b (int64), column d; ``seed`` an int in [0, 2**63), a runtime
argument (never specialised, so a new seed never triggers a recompilation). Philox is Triton's
``tl.randint4x(seed, offset)`` / ``tl.randn4x(seed, offset)`` (10 rounds; key = (seed low 32 bits,
seed high 32 bits), counter = (offset low 32 bits, offset high 32 bits, 0, 0)):

- Rademacher (``DIST`` 0): one Philox call gives 128 signs. With n128 = ceil(D/128),
  offset = r·n128 + d // 128, (x0, x1, x2, x3) = randint4x(seed, offset), j = d % 128,
  word = x_{j // 32}, bit = (word >> (j % 32)) & 1, v[p, b, d] = 1 − 2·bit.
- Gaussian (``DIST`` 1): one Philox call gives 4 normals (both Box–Muller outputs of each pair).
  With n4 = ceil(D/4), offset = r·n4 + d // 4, (n0, n1, n2, n3) = randn4x(seed, offset),
  v[p, b, d] = n_{d % 4}, computed in float32 and cast to the tensor dtype.

Values do not depend on the dtype, so float32 and float64 calls with the same seed see the same
probes (Gaussian ones rounded to float32 first). Rademacher probes are bit-identical on every
backend (integer Philox); Gaussian ones agree up to the rounding of log/cos/sin/sqrt (libdevice on
the GPU, NumPy in the interpreter).

Each program handles a tile of BLOCK_R rows × NC groups × BJ columns (a group = the GROUP = 128
or 4 columns of one Philox call; BJ = min(GROUP, next_power_of_2(D))), so each Philox call is made
once per group, not once per element. Kernels regenerate v instead of reading it from memory:

- ``probes``: writes v (needed once, as the ``grad_outputs`` of the VJP vᵀJ);
- ``dot``: out[p, b] = Σ_d v[p, b, d] · u[p, b, d] (u = vᵀJ from autograd): each (row tile, column
  tile) program writes a partial sum into an (n_col_tiles, P·B) buffer, added in order by
  ``torch.sum`` (deterministic, and the grid spreads over columns when P·B is small);
- ``dot_backward``: du[p, b, d] = go[p, b] · v[p, b, d] (nothing saved but the seed).

Accumulation happens in the input dtype; all offsets (addresses and Philox counters) are int64,
so there is no size limit beyond memory. Interpreter-compatible.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..reference import HUTCHINSON_DISTS
from ._launch import MAX_TILE, TARGET_PROGRAMS, check_contiguous, launch, rows_per_tile, warps_for

#: Kernel ids of the probe distributions, in the order of ``vsm.reference.HUTCHINSON_DISTS``.
DISTS = {name: i for i, name in enumerate(HUTCHINSON_DISTS)}
#: Probe columns per Philox call (one call = 4 × 32 random bits): 128 signs or 4 normals.
GROUP = {0: 128, 1: 4}
#: Largest tile per distribution. Gaussian tiles stop at 256 elements: with 512 or more, ptxas
#: 12.9 (sm_80) gives ``_probes_kernel`` an 8-byte spill (the local frame of libdevice's sin/cos
#: slow path); Box–Muller is ALU-bound, so the smaller tile costs no bandwidth.
_MAX_COLS = {0: MAX_TILE, 1: 256}


@triton.jit
def _probe_tile(seed, rows, grp, NG, BJ: tl.constexpr, DIST: tl.constexpr):
    """float32 probes of rows ``rows`` (BLOCK_R,), groups ``grp`` (NC,), columns j < BJ of each
    group: shape (BLOCK_R, NC, BJ); column d = grp·GROUP + j (stream v2, module docstring)."""
    offs = rows[:, None, None] * NG + grp[None, :, None]
    j = tl.arange(0, BJ)[None, None, :]
    if DIST == 0:
        x0, x1, x2, x3 = tl.randint4x(seed, offs)
        word = tl.where(j < 32, x0, tl.where(j < 64, x1, tl.where(j < 96, x2, x3)))
        bit = (word >> (j % 32).to(tl.uint32)) & 1
        v = 1.0 - 2.0 * bit.to(tl.float32)
    else:
        n0, n1, n2, n3 = tl.randn4x(seed, offs)
        v = tl.where(j == 0, n0, tl.where(j == 1, n1, tl.where(j == 2, n2, n3)))
    return v


@triton.jit
def _tile_index(
    R, D, N_RT, BLOCK_R: tl.constexpr, NC: tl.constexpr, BJ: tl.constexpr, GROUP: tl.constexpr
):
    """Program id → (rows, groups, element offsets, mask) of its (BLOCK_R, NC, BJ) tile."""
    pid = tl.program_id(0).to(tl.int64)
    pid_r = pid % N_RT
    pid_c = pid // N_RT
    rows = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
    grp = pid_c * NC + tl.arange(0, NC)
    cols = grp[None, :, None] * GROUP + tl.arange(0, BJ)[None, None, :]
    off = rows[:, None, None] * D + cols
    mask = (rows < R)[:, None, None] & (cols < D)
    return pid_c, rows, grp, off, mask


@triton.jit(do_not_specialize=["seed", "R", "NG", "N_RT"])
def _probes_kernel(
    out_ptr,
    seed,
    R,
    D,
    NG,
    N_RT,
    BLOCK_R: tl.constexpr,
    NC: tl.constexpr,
    BJ: tl.constexpr,
    GROUP: tl.constexpr,
    DIST: tl.constexpr,
):
    _, rows, grp, off, mask = _tile_index(R, D, N_RT, BLOCK_R, NC, BJ, GROUP)
    v = _probe_tile(seed, rows, grp, NG, BJ, DIST)
    tl.store(out_ptr + off, v.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit(do_not_specialize=["seed", "R", "NG", "N_RT"])
def _dot_kernel(
    u_ptr,
    part_ptr,
    seed,
    R,
    D,
    NG,
    N_RT,
    BLOCK_R: tl.constexpr,
    NC: tl.constexpr,
    BJ: tl.constexpr,
    GROUP: tl.constexpr,
    DIST: tl.constexpr,
):
    pid_c, rows, grp, off, mask = _tile_index(R, D, N_RT, BLOCK_R, NC, BJ, GROUP)
    u = tl.load(u_ptr + off, mask=mask, other=0.0)
    v = _probe_tile(seed, rows, grp, NG, BJ, DIST).to(u_ptr.dtype.element_ty)
    acc = tl.sum(tl.sum(tl.where(mask, u * v, 0.0), axis=2), axis=1)
    tl.store(part_ptr + pid_c * R + rows, acc, mask=rows < R)


@triton.jit(do_not_specialize=["seed", "R", "NG", "N_RT"])
def _scale_kernel(
    go_ptr,
    out_ptr,
    seed,
    R,
    D,
    NG,
    N_RT,
    BLOCK_R: tl.constexpr,
    NC: tl.constexpr,
    BJ: tl.constexpr,
    GROUP: tl.constexpr,
    DIST: tl.constexpr,
):
    _, rows, grp, off, mask = _tile_index(R, D, N_RT, BLOCK_R, NC, BJ, GROUP)
    go = tl.load(go_ptr + rows, mask=rows < R, other=0.0)
    v = _probe_tile(seed, rows, grp, NG, BJ, DIST).to(out_ptr.dtype.element_ty)
    tl.store(out_ptr + off, go[:, None, None] * v, mask=mask)


def _plan(R: int, D: int, dist: int) -> tuple[dict[str, int], int, int, int]:
    """Tile of the three kernels: (constexprs, NG, number of row tiles, number of column tiles).

    Column tiles of NC·BJ ≤ MAX_TILE columns (whole Philox groups); rows per tile from
    :func:`vsm.kernels._launch.rows_per_tile`; with a single row per tile and still fewer than
    TARGET_PROGRAMS programs, the column tile is halved (down to one group or MIN_TILE columns).
    """
    group = GROUP[dist]
    bj = min(group, triton.next_power_of_2(max(D, 1)))
    ng = triton.cdiv(D, group)
    nc = min(triton.next_power_of_2(ng), max(1, _MAX_COLS[dist] // bj))
    block_r = rows_per_tile(R, nc * bj, triton.cdiv(ng, nc), _MAX_COLS[dist])
    while block_r == 1 and nc > 1 and nc * bj > 64 and R * triton.cdiv(ng, nc) < TARGET_PROGRAMS:
        nc //= 2
    meta = {"BLOCK_R": block_r, "NC": nc, "BJ": bj, "GROUP": group, "DIST": dist}
    return meta, ng, triton.cdiv(R, block_r), triton.cdiv(ng, nc)


def _warps(meta: dict[str, int]) -> int:
    return warps_for(meta["BLOCK_R"] * meta["NC"] * meta["BJ"])


def probes(
    shape: tuple[int, int, int], seed: int, dist: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Probes v of ``shape`` (P, B, D) drawn from ``seed`` (``dist``: 0 Rademacher, 1 Gaussian)."""
    out = torch.empty(shape, dtype=dtype, device=device)
    if out.numel() == 0:
        return out
    P, B, D = shape
    R = P * B
    meta, ng, n_rt, n_ct = _plan(R, D, dist)
    launch(_probes_kernel, n_rt * n_ct, out, seed, R, D, ng, n_rt, num_warps=_warps(meta), **meta)
    return out


def dot(u: torch.Tensor, seed: int, dist: int) -> torch.Tensor:
    """out[p, b] = Σ_d v[p, b, d]·u[p, b, d] for contiguous ``u`` (P, B, D), v regenerated."""
    check_contiguous(u=u)
    P, B, D = u.shape
    R = P * B
    if R == 0:
        return torch.empty((P, B), dtype=u.dtype, device=u.device)
    if D == 0:
        return torch.zeros((P, B), dtype=u.dtype, device=u.device)
    meta, ng, n_rt, n_ct = _plan(R, D, dist)
    # one partial sum per column tile (a single tile writes the result directly)
    part = torch.empty((n_ct, P, B) if n_ct > 1 else (P, B), dtype=u.dtype, device=u.device)
    launch(_dot_kernel, n_rt * n_ct, u, part, seed, R, D, ng, n_rt, num_warps=_warps(meta), **meta)
    return part.sum(0) if n_ct > 1 else part


def dot_backward(go: torch.Tensor, seed: int, dist: int, D: int) -> torch.Tensor:
    """du[p, b, d] = go[p, b]·v[p, b, d] for contiguous ``go`` (P, B), v regenerated."""
    check_contiguous(go=go)
    P, B = go.shape
    R = P * B
    out = torch.empty((P, B, D), dtype=go.dtype, device=go.device)
    if out.numel() == 0:
        return out
    meta, ng, n_rt, n_ct = _plan(R, D, dist)
    launch(
        _scale_kernel, n_rt * n_ct, go, out, seed, R, D, ng, n_rt, num_warps=_warps(meta), **meta
    )
    return out
