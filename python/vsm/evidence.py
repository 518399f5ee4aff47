"""Importance-sampled log evidence through the Rust engine (``vsm._core``), as a differentiable
torch function.

``vsm.is_log_evidence(log_w)`` accepts a torch tensor (any device; the Rust engine runs on CPU in
float64) or a NumPy array (then NumPy arrays come back).
"""

from __future__ import annotations

import numpy as np
import torch

from . import _core
from . import _validate as V


class _ISLogEvidence(torch.autograd.Function):
    """log_p = logsumexp(log_w) − log K via Rust; d log_p / d log_w = softmax(log_w)."""

    @staticmethod
    def forward(ctx, log_w: torch.Tensor):
        arr = log_w.detach().to("cpu", torch.float64).contiguous().numpy()
        lp, ess = _core.is_log_evidence(arr)
        log_p = torch.from_numpy(lp).to(log_w.device, log_w.dtype)
        ess_t = torch.from_numpy(ess).to(log_w.device, log_w.dtype)
        ctx.save_for_backward(log_w)
        ctx.mark_non_differentiable(ess_t)
        return log_p, ess_t

    @staticmethod
    def backward(ctx, g_logp: torch.Tensor, g_ess: torch.Tensor):
        (log_w,) = ctx.saved_tensors
        w = torch.softmax(log_w.to(torch.float64), dim=-1).to(log_w.dtype)
        return g_logp.unsqueeze(-1) * w


def is_log_evidence(log_w):
    """Importance-sampled log evidence and effective sample size, per row.

    Args:
        log_w: (B, K) log importance weights log p(x, z_k) − log r(z_k); float32 or float64 torch
            tensor (any device) or NumPy array. Entries may be −inf (zero weight), not NaN/+inf.

    Returns:
        ``(log_p, ess)``, each (B,): log_p = logsumexp_k log_w − log K (accumulated in float64),
        ess = (Σw)²/Σw² ∈ [1, K] (0 for a row with all weights zero). Torch in → torch out in
        log_w's dtype and device, differentiable w.r.t. log_w (gradient = normalised weights);
        NumPy in → float64 NumPy out.

    Raises:
        TypeError: not a tensor/array, or not a floating dtype.
        ValueError: not 2-D, K = 0, B = 0 (an empty batch is rejected rather than returning
            empty arrays), or NaN/+inf entries. Non-contiguous and read-only inputs are fine.
    """
    if isinstance(log_w, np.ndarray):
        if log_w.dtype not in (np.float32, np.float64):
            raise TypeError(f"log_w: expected float32 or float64, got {log_w.dtype}")
        if log_w.ndim != 2:
            raise ValueError(f"log_w: expected 2 dimensions (B, K), got shape {log_w.shape}")
        return _core.is_log_evidence(np.ascontiguousarray(log_w, dtype=np.float64))
    V.tensor("log_w", log_w, ndim=2)
    V.has_data("log_w", log_w)
    return _ISLogEvidence.apply(log_w)
