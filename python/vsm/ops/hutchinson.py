"""``vsm.hutchinson_trace``: Hutchinson's unbiased trace estimator of a Jacobian, probes from a seed.

tr(∂outputs/∂inputs) per batch row ≈ (1/P) Σ_p v_pᵀ J v_p (MATH.md Part II), with v_pᵀJ from one
``torch.autograd.grad(outputs, inputs, v_p, create_graph=True)`` per probe.

Triton path (CUDA, or CPU under ``TRITON_INTERPRET=1``): three ``torch.library`` custom ops,
registered by :func:`vsm.ops._register.fused_op` (``triton_op`` for compiled kernels, an opaque
``custom_op`` with a fake implementation under the interpreter):

- ``vsm::hutchinson_probes`` draws v (P, B, D) with Philox from the seed (probe stream v2,
  documented in :mod:`vsm.kernels.hutchinson`);
- ``vsm::hutchinson_dot`` computes v·u per (probe, row) regenerating v from the seed; its autograd
  formula is ``vsm::hutchinson_dot_backward`` (go·v, v regenerated again), whose own autograd
  formula is ``vsm::hutchinson_dot`` — so the estimate is differentiable to any order and no probe
  tensor is saved for backward.

CPU path: the same ops, whose CPU implementation (``register_kernel("cpu")``) runs the Rust
kernels (:mod:`vsm.ops._rust`; probe stream v2 too, so the same probes for a seed as the Triton
kernels), or the Triton kernels in the interpreter when they were built for it
(:func:`vsm._dispatch.cpu_kernel`). ``vsm.backend("reference")`` runs
:func:`vsm.reference.hutchinson_trace` (probes from a seeded ``torch.Generator``: different
probes for the same seed, equally reproducible).
"""

from __future__ import annotations

import torch

from .. import _validate as V
from .. import reference
from .._dispatch import cpu_kernel_of, select
from . import _direct
from . import _rust as R
from ._register import fused_op
from ._rust import cpu_launchers

DISTS = reference.HUTCHINSON_DISTS


def _dist_id(dist: str) -> int:
    return DISTS.index(dist)


def _kernels() -> list[object]:
    from ..kernels import hutchinson as K

    return [K._probes_kernel, K._dot_kernel, K._scale_kernel]


def _probes_fake(like: torch.Tensor, n_probes: int, seed: int, dist: str) -> torch.Tensor:
    return like.new_empty((n_probes, *like.shape))


@fused_op("vsm::hutchinson_probes", _probes_fake, _kernels)
def _probes_op(like: torch.Tensor, n_probes: int, seed: int, dist: str) -> torch.Tensor:
    from ..kernels import hutchinson as K

    return K.probes((n_probes, *like.shape), seed, _dist_id(dist), like.dtype, like.device)


@_probes_op.register_kernel("cpu")
def _(like: torch.Tensor, n_probes: int, seed: int, dist: str) -> torch.Tensor:
    K = cpu_launchers("hutchinson")
    return K.probes((n_probes, *like.shape), seed, _dist_id(dist), like.dtype, like.device)


def _dot_fake(u: torch.Tensor, seed: int, dist: str) -> torch.Tensor:
    return u.new_empty(u.shape[:-1])


@fused_op("vsm::hutchinson_dot", _dot_fake, _kernels)
def _dot_op(u: torch.Tensor, seed: int, dist: str) -> torch.Tensor:
    from ..kernels import hutchinson as K

    return K.dot(u, seed, _dist_id(dist))


@_dot_op.register_kernel("cpu")
def _(u: torch.Tensor, seed: int, dist: str) -> torch.Tensor:
    return cpu_launchers("hutchinson").dot(u, seed, _dist_id(dist))


def _dot_bwd_fake(go: torch.Tensor, seed: int, dist: str, d: int) -> torch.Tensor:
    return go.new_empty((*go.shape, d))


@fused_op("vsm::hutchinson_dot_backward", _dot_bwd_fake, _kernels)
def _dot_bwd_op(go: torch.Tensor, seed: int, dist: str, d: int) -> torch.Tensor:
    from ..kernels import hutchinson as K

    return K.dot_backward(go, seed, _dist_id(dist), d)


@_dot_bwd_op.register_kernel("cpu")
def _(go: torch.Tensor, seed: int, dist: str, d: int) -> torch.Tensor:
    return cpu_launchers("hutchinson").dot_backward(go, seed, _dist_id(dist), d)


def _dot_setup(ctx, inputs, output) -> None:
    u, seed, dist = inputs
    ctx.seed, ctx.dist, ctx.d = seed, dist, u.shape[-1]
    ctx.cpu_kernel = cpu_kernel_of(u)


def _dot_backward(ctx, go: torch.Tensor):
    du = _direct.launch(
        ctx.cpu_kernel, _dot_bwd_op, _dot_bwd_direct, go.contiguous(), ctx.seed, ctx.dist, ctx.d
    )
    return du, None, None


def _dot_bwd_setup(ctx, inputs, output) -> None:
    go, seed, dist, _ = inputs
    ctx.seed, ctx.dist = seed, dist
    ctx.cpu_kernel = cpu_kernel_of(go)


def _dot_bwd_backward(ctx, ggu: torch.Tensor):
    ggo = _direct.launch(ctx.cpu_kernel, _dot_op, _dot_direct, ggu.contiguous(), ctx.seed, ctx.dist)
    return ggo, None, None, None


def _probes_setup(ctx, inputs, output) -> None:
    pass


def _probes_backward(ctx, grad):
    return None, None, None, None


_probes_op.register_autograd(_probes_backward, setup_context=_probes_setup)
_dot_op.register_autograd(_dot_backward, setup_context=_dot_setup)
_dot_bwd_op.register_autograd(_dot_bwd_backward, setup_context=_dot_bwd_setup)
_DotDirect = _direct.function(
    "hutchinson_dot",
    lambda u, seed, dist: R.hutchinson.dot(u, seed, _dist_id(dist)),
    _dot_setup,
    _dot_backward,
)
_DotBwdDirect = _direct.function(
    "hutchinson_dot_backward",
    lambda go, seed, dist, d: R.hutchinson.dot_backward(go, seed, _dist_id(dist), d),
    _dot_bwd_setup,
    _dot_bwd_backward,
)


def _dot_direct(u: torch.Tensor, seed: int, dist: str) -> torch.Tensor:
    """``vsm::hutchinson_dot`` on the direct path (:mod:`vsm.ops._direct`), differentiable."""
    if _direct.needs_grad(u):
        return _DotDirect.apply(u, seed, dist)
    return R.hutchinson.dot(u, seed, _dist_id(dist))


def _dot_bwd_direct(go: torch.Tensor, seed: int, dist: str, d: int) -> torch.Tensor:
    """``vsm::hutchinson_dot_backward`` on the direct path, differentiable (to any order)."""
    if _direct.needs_grad(go):
        return _DotBwdDirect.apply(go, seed, dist, d)
    return R.hutchinson.dot_backward(go, seed, _dist_id(dist), d)


def _check_options(n_probes: object, dist: object, seed: object) -> int:
    """Validate the shared options and resolve ``seed`` (None → drawn from torch's global RNG)."""
    V.positive_int("n_probes", n_probes)
    V.choice("dist", dist, DISTS)
    return V.resolve_seed("seed", seed)


def hutchinson_probes(
    inputs: torch.Tensor, n_probes: int, seed: int, dist: str = "rademacher"
) -> torch.Tensor:
    """The probes v (n_probes, B, D) that :func:`hutchinson_trace` uses for ``seed``.

    Same dispatch as :func:`hutchinson_trace` (the Philox probe stream on the Triton and Rust
    paths, a seeded ``torch.Generator`` on the reference path), so callers needing v itself (e.g. the non-variance-reduced
    sliced SM) see exactly the estimator's probes. Dtype and device of ``inputs``; unitless.
    """
    V.tensor("inputs", inputs, ndim=2)
    seed = _check_options(n_probes, dist, seed)
    if select(inputs) == "reference":
        return reference.hutchinson_probes(inputs, n_probes, seed, dist)
    return _probes_op(inputs, n_probes, seed, dist)


def hutchinson_trace(
    outputs: torch.Tensor,
    inputs: torch.Tensor,
    *,
    n_probes: int = 1,
    dist: str = "rademacher",
    seed: int | None = None,
) -> torch.Tensor:
    """Unbiased Hutchinson estimate of tr(∂outputs/∂inputs) per batch row.

    estimate[b] = (1/P) Σ_p v_p[b]ᵀ J_b v_p[b], J_b = ∂outputs[b]/∂inputs[b], with v_pᵀJ computed by
    ``torch.autograd.grad(outputs, inputs, v_p, create_graph=True)`` (rows are assumed independent,
    as for a score network applied row-wise). The result keeps the autograd graph (when grad mode
    is on), so it can be used inside a loss and differentiated w.r.t. the parameters of the map.

    Args:
        outputs: (B, D) tensor computed from ``inputs`` in the autograd graph.
        inputs: (B, D) tensor with ``requires_grad=True``.
        n_probes: number of probes P per row (the estimate divides by P).
        dist: "rademacher" (±1, default; exact for diagonal Jacobians) or "gaussian" (N(0, 1)).
        seed: int in [0, 2**63) fixing the probes; None draws one from torch's global RNG (so
            ``torch.manual_seed`` makes the call reproducible). The Triton and Rust paths draw the
            same (Philox) probes; the reference path (``torch.Generator``) draws others.

    Returns:
        (B,) tensor, dtype and device of ``inputs``; units of outputs/inputs.

    Raises:
        TypeError: non-float tensors, dtypes differ, non-int ``n_probes``/``seed``.
        ValueError: shapes, devices, empty inputs, ``dist``, ``n_probes < 1``, an input not
            requiring grad.
    """
    direct = (
        _direct.ready()
        and _direct.plain_cpu(inputs, outputs)
        and inputs.dim() == 2
        and outputs.shape == inputs.shape
        and inputs.numel() > 0
        and inputs.requires_grad
        and outputs.requires_grad
    )
    if direct:
        seed = _check_options(n_probes, dist, seed)
        shape = (n_probes, *inputs.shape)
        v = R.hutchinson.probes(shape, seed, _dist_id(dist), inputs.dtype, inputs.device)
        return _dot_direct(_vjps(outputs, inputs, v), seed, dist).mean(0)
    V.tensor("outputs", outputs, ndim=2)
    V.tensor("inputs", inputs, ndim=2)
    V.same_kind("inputs", inputs, outputs=outputs)
    V.shape("outputs", outputs, inputs.shape, "inputs.shape")
    V.nonempty("inputs", inputs)
    if not inputs.requires_grad:
        raise ValueError("inputs: must require grad (outputs are differentiated w.r.t. it)")
    if not outputs.requires_grad:
        raise ValueError("outputs: does not require grad; compute it from inputs with grad enabled")
    seed = _check_options(n_probes, dist, seed)
    if select(inputs) == "reference":
        return reference.hutchinson_trace(outputs, inputs, n_probes=n_probes, dist=dist, seed=seed)
    v = _probes_op(inputs, n_probes, seed, dist)
    return _dot_op(_vjps(outputs, inputs, v), seed, dist).mean(0)


def _vjps(outputs: torch.Tensor, inputs: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """u (P, B, D), u_p = v_pᵀ ∂outputs/∂inputs (zeros where outputs do not depend on inputs)."""
    us = reference.probe_vjps(outputs, inputs, v)
    return torch.stack([torch.zeros_like(inputs) if u is None else u for u in us]).contiguous()
