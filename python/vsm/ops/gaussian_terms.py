"""``vsm.gaussian_terms``: the per-datum terms of a Gaussian likelihood's x-score, fused.

f_n = ∇_x log N(x; x_mean_n, σ²I) = (x_mean_n − x)/σ² (MATH.md Part I). The learning objectives
m1/m2/m3/fae (:mod:`vsm.objectives`) need only mean_n ‖f_n‖², ‖mean_n f_n‖² and tr ∇_x f = −D/σ².

The Triton path is the custom op ``vsm::gaussian_terms`` (forward kernel, one pass over x_mean)
whose autograd formula calls the custom op ``vsm::gaussian_terms_backward`` (backward kernel); both
are registered by :func:`vsm.ops._register.fused_op` (``triton_op`` when the kernels are compiled,
an opaque ``custom_op`` with a fake implementation under the interpreter); their CPU
implementation (``register_kernel("cpu")``) runs the Rust kernels (:mod:`vsm.ops._rust`), or the
Triton kernels in the interpreter when they were built for it (:func:`vsm._dispatch.cpu_kernel`).
When the backward itself must be differentiable (``create_graph=True``, e.g. bi-level unrolling)
it is evaluated with plain torch ops instead. The trace needs no kernel and is computed with torch.
``vsm.backend("reference")`` runs :func:`vsm.reference.gaussian_terms` instead.
"""

from __future__ import annotations

import functools

import torch

from .. import _validate as V
from .. import reference
from .._dispatch import cpu_kernel_of, select
from ..reference import GaussianTerms
from . import _direct
from . import _rust as R
from ._register import fused_op
from ._rust import cpu_launchers


def _kernels() -> list[object]:
    from ..kernels import gaussian_terms as K

    return [K._gt_fwd_kernel, K._gt_bwd_kernel]


def _gt_fake(x: torch.Tensor, x_mean: torch.Tensor, log_sigma2: torch.Tensor):
    return x.new_empty(x.shape[:1]), x.new_empty(x.shape[:1])


@fused_op("vsm::gaussian_terms", _gt_fake, _kernels)
def _gt_op(
    x: torch.Tensor, x_mean: torch.Tensor, log_sigma2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    from ..kernels import gaussian_terms as K

    return K.forward(x, x_mean, log_sigma2)


@_gt_op.register_kernel("cpu")
def _(x: torch.Tensor, x_mean: torch.Tensor, log_sigma2: torch.Tensor):
    return cpu_launchers("gaussian_terms").forward(x, x_mean, log_sigma2)


def _gt_bwd_fake(ga, gc, x, x_mean, log_sigma2):
    return torch.empty_like(x), torch.empty_like(x_mean)


@fused_op("vsm::gaussian_terms_backward", _gt_bwd_fake, _kernels)
@functools.wraps(R.gaussian_terms_backward, assigned=())  # the op's schema: the launchers'
def _gt_bwd_op(*args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(dx, dx_mean) from (grad_sq_mean, grad_mean_sq, x, x_mean, log_sigma2), the signature of
    the launcher that the Triton kernel module and its Rust twin share."""
    from ..kernels import gaussian_terms as K

    return K.backward(*args)


@_gt_bwd_op.register_kernel("cpu")
def _(ga, gc, x, x_mean, log_sigma2):
    return cpu_launchers("gaussian_terms").backward(ga, gc, x, x_mean, log_sigma2)


def _setup_context(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs, *output)
    ctx.cpu_kernel = cpu_kernel_of(inputs[0])


def _weighted(grad: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """grad·out, with 0 where grad is 0 even if ``out`` overflowed to inf (0·inf would be NaN).

    An output that does not enter the loss contributes nothing to d log σ², as in autograd
    through the reference (which never forms that product).
    """
    return torch.where(grad == 0, torch.zeros_like(out), grad * out)


def _backward(ctx, grad_sq_mean, grad_mean_sq):
    x, x_mean, log_sigma2, sq_mean, mean_sq = ctx.saved_tensors
    a = torch.zeros_like(sq_mean) if grad_sq_mean is None else grad_sq_mean
    c = torch.zeros_like(mean_sq) if grad_mean_sq is None else grad_mean_sq
    dls = -2.0 * (_weighted(a, sq_mean) + _weighted(c, mean_sq)).sum()
    if torch.is_grad_enabled():
        # create_graph=True: the same formulas in differentiable torch ops (see the kernels' doc).
        n = x_mean.shape[0]
        inv = torch.exp(-log_sigma2)
        f = (x_mean - x) * inv
        fbar = f.mean(0)
        dxm = (2.0 / n) * inv * (a[:, None] * f + c[:, None] * fbar)
        dx = -2.0 * inv * (a + c)[:, None] * fbar
        return dx, dxm, dls
    dx, dxm = _direct.launch(
        ctx.cpu_kernel,
        _gt_bwd_op,
        lambda *a: R.gaussian_terms.backward(*a),
        a.contiguous(),
        c.contiguous(),
        x,
        x_mean,
        log_sigma2,
    )
    return dx, dxm, dls


_gt_op.register_autograd(_backward, setup_context=_setup_context)
_GtDirect = _direct.function(
    "gaussian_terms", lambda *a: R.gaussian_terms.forward(*a), _setup_context, _backward
)


def _direct_ok(x: torch.Tensor, x_mean: torch.Tensor, log_sigma2: torch.Tensor) -> bool:
    """Valid arguments for the direct path (:mod:`vsm.ops._direct`), checked cheaply."""
    if not (_direct.ready() and _direct.plain_cpu(x, x_mean, log_sigma2)):
        return False
    s = x.shape
    return (
        len(s) == 2
        and x_mean.dim() in (2, 3)
        and x_mean.shape[-2:] == s
        and log_sigma2.dim() == 0
        and x_mean.numel() > 0
    )


def gaussian_terms(
    x: torch.Tensor, x_mean: torch.Tensor, log_sigma2: torch.Tensor
) -> GaussianTerms:
    """Per-datum terms of the Gaussian likelihood x-score f_n = (x_mean_n − x)/σ², in one pass.

    Args:
        x: data, (B, D) (image models flatten their pixels into D).
        x_mean: decoder means g(z_n), (N, B, D); a (B, D) tensor is taken as N = 1.
        log_sigma2: log σ², a 0-dim tensor (the model's scalar likelihood log-variance).

    Returns:
        :class:`vsm.GaussianTerms` with ``sq_mean`` (B,) = mean_n ‖f_n‖², ``mean_sq`` (B,) =
        ‖mean_n f_n‖² (both in units of 1/σ⁴ times squared data units) and ``trace`` = −D/σ²
        as a 0-dim tensor (broadcasts against (B,)), all in x's dtype and device. Differentiable
        w.r.t. x, x_mean and log_sigma2 (also twice, through plain torch ops in the backward).

    Raises:
        TypeError: an argument is not a float32/float64 tensor, or dtypes differ.
        ValueError: wrong ranks or shapes, empty tensors, different devices.
    """
    if _direct_ok(x, x_mean, log_sigma2):
        xm = x_mean[None] if x_mean.dim() == 2 else x_mean
        if _direct.needs_grad(x, x_mean, log_sigma2):
            sq_mean, mean_sq = _GtDirect.apply(x, xm, log_sigma2)
        else:
            sq_mean, mean_sq = R.gaussian_terms.forward(x, xm, log_sigma2)
        return GaussianTerms(sq_mean, mean_sq, -x.shape[-1] * torch.exp(-log_sigma2))
    V.tensor("x", x, ndim=2)
    V.tensor("x_mean", x_mean, ndim=(2, 3))
    V.tensor("log_sigma2", log_sigma2, ndim=0)
    V.same_kind("x", x, x_mean=x_mean, log_sigma2=log_sigma2)
    V.shape("x_mean", x_mean, (*x_mean.shape[:-2], *x.shape), "(N, *x.shape)")
    V.nonempty("x", x)
    V.nonempty("x_mean", x_mean)
    if select(x) == "reference":
        return reference.gaussian_terms(x, x_mean, log_sigma2)
    xm = x_mean.unsqueeze(0) if x_mean.dim() == 2 else x_mean
    sq_mean, mean_sq = _gt_op(x.contiguous(), xm.contiguous(), log_sigma2.contiguous())
    trace = -x.shape[-1] * torch.exp(-log_sigma2)
    return GaussianTerms(sq_mean, mean_sq, trace)
