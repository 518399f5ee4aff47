"""``vsm.posterior_fd``: the per-sample posterior Fisher divergence of a Gaussian VAE, fused.

The Triton path is the custom op ``vsm::posterior_fd`` (forward kernel) whose autograd formula is
the custom op ``vsm::posterior_fd_backward`` (backward kernels); both are registered by
:func:`vsm.ops._register.fused_op` (``triton_op`` when the kernels are compiled, so
``torch.compile`` traces into them; an opaque ``custom_op`` with a fake implementation under the
interpreter). Their CPU implementation (``register_kernel("cpu")``) runs the Rust kernels
(:mod:`vsm.ops._rust`), or the Triton kernels in the interpreter when they were built for it
(:func:`vsm._dispatch.cpu_kernel`). ``vsm.backend("reference")`` runs
:func:`vsm.reference.posterior_fd` instead.
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


def _kernels() -> list[object]:
    from ..kernels import posterior_fd as K

    return [K._pfd_fwd_kernel, K._pfd_bwd_kernel, K._pfd_bwd_reduce_kernel]


def _pfd_fake(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, g: torch.Tensor):
    return z.new_empty(z.shape[:-1])


@fused_op("vsm::posterior_fd", _pfd_fake, _kernels)
def _pfd_op(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, g: torch.Tensor
) -> torch.Tensor:
    from ..kernels import posterior_fd as K

    return K.forward(z, mu, logvar, g)


@_pfd_op.register_kernel("cpu")
def _(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return cpu_launchers("posterior_fd").forward(z, mu, logvar, g)


def _pfd_bwd_fake(go, z, mu, logvar, g):
    return torch.empty_like(z), torch.empty_like(mu), torch.empty_like(logvar), torch.empty_like(g)


@fused_op("vsm::posterior_fd_backward", _pfd_bwd_fake, _kernels)
def _pfd_bwd_op(
    go: torch.Tensor, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, g: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from ..kernels import posterior_fd as K

    return K.backward(go, z, mu, logvar, g)


@_pfd_bwd_op.register_kernel("cpu")
def _(go, z, mu, logvar, g):
    return cpu_launchers("posterior_fd").backward(go, z, mu, logvar, g)


def _rust_backward(*args: torch.Tensor):
    return R.posterior_fd.backward(*args)  # looked up per call: tests patch the namespace


def _setup_context(ctx, inputs, output) -> None:
    ctx.save_for_backward(*inputs)
    ctx.cpu_kernel = cpu_kernel_of(inputs[0])


def _backward(ctx, go: torch.Tensor):
    z, mu, logvar, g = ctx.saved_tensors
    if torch.is_grad_enabled():
        # create_graph=True (e.g. bi-level unrolling differentiates an encoder update): the
        # kernel formulas of kernels/posterior_fd.py written in torch, so they are differentiable
        # (sums over the N samples before the multiplication by e, as in the kernel).
        e = torch.exp(-logvar)
        t = 2.0 * go.unsqueeze(-1) * (z - (z - mu) * e - g)
        return t * (1.0 - e), t.sum(0) * e, (t * (z - mu)).sum(0) * e, -t
    return _direct.launch(
        ctx.cpu_kernel, _pfd_bwd_op, _rust_backward, go.contiguous(), z, mu, logvar, g
    )


_pfd_op.register_autograd(_backward, setup_context=_setup_context)
_PfdDirect = _direct.function(
    "posterior_fd", lambda *a: R.posterior_fd.forward(*a), _setup_context, _backward
)


def _direct_ok(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, g: torch.Tensor) -> bool:
    """Valid arguments for the direct path (:mod:`vsm.ops._direct`), checked cheaply."""
    if not (_direct.ready() and _direct.plain_cpu(z, mu, logvar, g)):
        return False
    s = z.shape
    return (
        len(s) in (2, 3) and mu.shape == s[-2:] == logvar.shape and g.shape == s and z.numel() > 0
    )


def posterior_fd(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, grad_loglik_z: torch.Tensor
) -> torch.Tensor:
    """Posterior Fisher divergence per sample (MATH.md Part I, no ½).

    PFD(z) = ‖ −(z−mu)·exp(−logvar) + z − grad_loglik_z ‖², summed over the latent dimension.

    Args:
        z: latent samples, (N, B, L) or (B, L).
        mu: posterior means, (B, L); broadcast over the N samples.
        logvar: posterior log-variances log s², (B, L).
        grad_loglik_z: ∇_z log p(x|z) at ``z`` (a VJP through the decoder computed by the caller),
            same shape as ``z``.

    Returns:
        Tensor of shape ``z.shape[:-1]`` in the dtype and on the device of ``z``. Differentiable
        w.r.t. all four inputs. The posterior FD F(q‖p(z|x)) with the ½ convention is
        ``0.5 * posterior_fd(...).mean(0)``.

    Raises:
        TypeError: an argument is not a float32/float64 tensor or dtypes differ.
        ValueError: shapes do not match, devices differ, z is empty.
    """
    if _direct_ok(z, mu, logvar, grad_loglik_z):
        squeeze = z.dim() == 2
        args = (
            (z[None], mu, logvar, grad_loglik_z[None])
            if squeeze
            else (z, mu, logvar, grad_loglik_z)
        )
        if _direct.needs_grad(z, mu, logvar, grad_loglik_z):
            out = _PfdDirect.apply(*args)
        else:
            out = R.posterior_fd.forward(*args)
        return out[0] if squeeze else out
    V.tensor("z", z, ndim=(2, 3))
    V.tensor("mu", mu, ndim=2)
    V.tensor("logvar", logvar, ndim=2)
    V.tensor("grad_loglik_z", grad_loglik_z)
    V.same_kind("z", z, mu=mu, logvar=logvar, grad_loglik_z=grad_loglik_z)
    V.shape("mu", mu, z.shape[-2:], "z.shape[-2:]")
    V.shape("logvar", logvar, z.shape[-2:], "z.shape[-2:]")
    V.shape("grad_loglik_z", grad_loglik_z, z.shape, "z.shape")
    V.nonempty("z", z)
    if select(z) == "reference":
        return reference.posterior_fd(z, mu, logvar, grad_loglik_z)
    squeeze = z.dim() == 2
    z3 = z.unsqueeze(0) if squeeze else z
    g3 = grad_loglik_z.unsqueeze(0) if squeeze else grad_loglik_z
    out = _pfd_op(z3.contiguous(), mu.contiguous(), logvar.contiguous(), g3.contiguous())
    return out.squeeze(0) if squeeze else out
