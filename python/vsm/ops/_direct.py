"""The eager direct CPU path of vsm's fused ops: the Rust launchers without ``torch.library``.

A call through a ``torch.library`` custom op costs tens of microseconds in Python (dispatch,
autograd set-up of the op, the kernel-set bookkeeping) — more than the Rust kernels themselves at
the paper's small shapes. When a public op (``vsm.posterior_fd``, ``vsm.gaussian_terms``,
``vsm.hutchinson_trace``) is called eagerly on plain CPU tensors and the Rust kernels would run
anyway (:func:`vsm._dispatch.direct_rust`), it calls the launchers of :mod:`vsm.ops._rust` itself,
through one ``torch.autograd.Function`` per op (:func:`function`) whose ``setup_context`` and
``backward`` are the custom op's own: the same saved tensors, the same kernel-free
``create_graph=True`` formulas, and (through :func:`launch`) the Rust backward launchers.

Everything else keeps the ``torch.library`` path, which ``torch.compile``, ``opcheck``, fake and
meta tensors, functorch transforms, ``torch.jit`` tracing and dispatch/function modes need:
:func:`ready` is False there. The checks are cheap: :func:`plain_cpu` accepts the common valid
case with a few attribute reads, and the ops fall back to their full named-error validation
(:mod:`vsm._validate`) when it says no, so errors are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .._dispatch import DIRECT, direct_rust, same_cpu_kernel

#: ``ENABLED[0] = False`` turns the direct path off (the ``torch.library`` path runs instead);
#: benchmarks and tests compare the two this way.
ENABLED = [True]

_PLAIN = (torch.Tensor, torch.nn.Parameter)
_FLOATS = (torch.float32, torch.float64)
_STRIDED = torch.strided


def ready() -> bool:
    """Whether a fused op called now may take the direct path (given plain CPU tensors).

    False while ``torch.compile``/dynamo or ``torch.jit`` traces, under a torch dispatch or
    function mode (fake tensors, ``make_fx``, ``opcheck``'s modes, user modes), under functorch
    transforms (vmap, grad, jvp), when the direct path is disabled, and when the fused ops would
    not run the Rust kernels (:func:`vsm._dispatch.direct_rust`).
    """
    if torch.compiler.is_compiling():  # first: dynamo folds it to True and skips the rest
        return False
    C = torch._C
    return (
        ENABLED[0]
        and not C._len_torch_dispatch_stack()
        and not C._is_torch_function_mode_enabled()
        and not C._are_functorch_transforms_active()
        and C._get_tracing_state() is None
        and direct_rust()
    )


def plain_cpu(*ts: Any) -> bool:
    """Whether all ``ts`` are plain (``Tensor``/``Parameter``) strided CPU tensors of one float
    dtype (float32 or float64). Shapes are the caller's to check."""
    dtype = getattr(ts[0], "dtype", None)
    if dtype not in _FLOATS:
        return False
    for t in ts:
        if type(t) not in _PLAIN:
            return False
        if t.dtype is not dtype or not t.is_cpu or t.layout is not _STRIDED:
            return False
    return True


def needs_grad(*ts: torch.Tensor) -> bool:
    """Whether autograd must record a call on ``ts`` (grad mode on and one requires grad)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in ts)


def function(
    name: str,
    forward: Callable[..., Any],
    setup_context: Callable[[Any, tuple[Any, ...], Any], None],
    backward: Callable[..., Any],
) -> type[torch.autograd.Function]:
    """A ``torch.autograd.Function`` running ``forward`` (a Rust launcher) with the custom op's
    ``setup_context`` and ``backward``; the context records :data:`vsm._dispatch.DIRECT` as its
    kernel set, so the backward's kernel calls go to the Rust launchers too (:func:`launch`)."""

    def run(ctx: Any, *inputs: Any) -> Any:
        # forward(ctx, ...) rather than a separate setup_context staticmethod: with one,
        # Function.apply binds the arguments through inspect.signature, ~10 µs per call
        output = forward(*inputs)
        setup_context(ctx, inputs, output)
        ctx.cpu_kernel = DIRECT
        return output

    body = {
        "__doc__": f"Direct eager CPU path of ``vsm::{name}`` (see :mod:`vsm.ops._direct`).",
        "forward": staticmethod(run),
        "backward": staticmethod(backward),
    }
    return type(f"_{name}_direct", (torch.autograd.Function,), body)


def launch(kernel: str | None, op: Callable[..., Any], direct: Callable[..., Any], *args: Any):
    """Run a backward's kernel call: ``direct(*args)`` (the Rust launcher) when the forward took
    the direct path (``kernel`` is :data:`vsm._dispatch.DIRECT`), else the custom ``op`` on the
    forward's kernel set (:func:`vsm._dispatch.same_cpu_kernel`)."""
    if kernel == DIRECT:
        return direct(*args)
    with same_cpu_kernel(kernel):
        return op(*args)
