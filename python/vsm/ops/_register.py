"""Registration of vsm's fused ops with ``torch.library``, by how the Triton kernels were built.

- Compiled kernels (a CUDA machine, ``TRITON_INTERPRET`` unset at import):
  ``torch.library.triton_op``. The op body is the launcher of :mod:`vsm.kernels`, whose launches go
  through ``torch.library.wrap_triton`` (:func:`vsm.kernels._launch.launch`), so
  ``torch.compile`` traces *into* the op: inductor sees the Triton kernels themselves, emits their
  launches in its own wrapper (CUDA graphs included) and can fuse the torch code around them
  (partial sums, ``.mean(0)``). The body doubles as the fake implementation (it only allocates
  and launches). ``triton_op`` takes no tags; layout safety comes from the launchers, which reject
  non-contiguous inputs at trace time, and from inductor keeping the traced strides of Triton
  kernel arguments.
- Interpreted kernels (``TRITON_INTERPRET=1`` at import, CPU tests) or no triton:
  ``torch.library.custom_op`` with an explicit fake implementation, tagged
  ``torch.Tag.needs_contiguous_strides``. ``wrap_triton`` cannot trace interpreted kernels (they
  would run on fake tensors), so under the interpreter the op stays opaque to ``torch.compile``.

Either way the op has the same name, schema, fake behaviour and autograd formula (registered by
the ops modules on the returned ``CustomOpDef``), and the ops modules add the CPU implementation
(the Rust kernels) with ``op.register_kernel("cpu", fn)``. A ``triton_op`` is decomposed into its
Triton launches for CUDA (and meta) tensors only; for CPU tensors it stays one opaque node with the explicit
fake implementation (``_decompose_off_cpu``), so ``torch.compile`` of CPU code runs the
Rust kernels.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

import torch

from .._dispatch import kernel_build


def fused_op(
    name: str, fake: Callable[..., object], kernels: Callable[[], list[object]]
) -> Callable[[Callable[..., object]], torch.library.CustomOpDef]:
    """Decorator: register the launcher-calling function as the custom op ``name``.

    Args:
        name: "vsm::op_name".
        fake: the fake (meta) implementation used when the op is an opaque ``custom_op``.
        kernels: returns the ``@triton.jit`` kernels the op launches; recorded for
            ``torch.compile``'s cache key (``torch._library.triton`` finds kernels by reading the
            op's source, which misses launches made through a helper).
    """

    def register(fn: Callable[..., object]) -> torch.library.CustomOpDef:
        if kernel_build() == "compiled":
            op = typing.cast(
                torch.library.CustomOpDef, torch.library.triton_op(name, fn, mutates_args=())
            )
            from torch._library import triton as _lt

            if hasattr(_lt, "triton_ops_to_kernels"):
                _lt.triton_ops_to_kernels[name] = list(kernels())
            _decompose_off_cpu(op, fn, fake)
            return op
        op = torch.library.custom_op(
            name, fn, mutates_args=(), tags=(torch.Tag.needs_contiguous_strides,)
        )
        op.register_fake(fake)
        return op

    return register


def _on_cpu(args: tuple[object, ...], kwargs: dict[str, object]) -> bool:
    """Whether the op's tensor arguments live on the CPU (they share one device)."""
    for a in (*args, *kwargs.values()):
        if isinstance(a, torch.Tensor):
            return a.device.type == "cpu"
    return False


def _decompose_off_cpu(
    op: torch.library.CustomOpDef, fn: Callable[..., object], fake: Callable[..., object]
) -> None:
    """Keep a ``triton_op`` opaque for CPU tensors (CUDA and meta tensors still decompose).

    ``triton_op`` decomposes the op into its Triton launches under ``torch.compile``
    (FunctionalTensorMode) and uses the launcher as fake implementation, whatever the device. CPU
    tensors must instead stay one op node that runs the op's CPU kernel (the Rust kernels,
    registered with ``register_kernel("cpu")``) and get ``fake`` as fake implementation.
    """
    from torch._subclasses.functional_tensor import FunctionalTensorMode

    decompose = op._torch_dispatch_fns.get(FunctionalTensorMode)

    def functional(
        mode: Any, func: Any, types: Any, args: tuple[object, ...], kwargs: dict[str, object]
    ) -> object:
        if decompose is not None and not _on_cpu(args, kwargs):
            return decompose(mode, func, types, args, kwargs)
        return mode.__torch_dispatch__(func, types, args, kwargs)

    op.register_torch_dispatch(FunctionalTensorMode, functional)
    op.register_fake(lambda *a, **k: (fake if _on_cpu(a, k) else fn)(*a, **k))
