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
the ops modules on the returned ``CustomOpDef``), and more device implementations can be added
on top with ``op.register_kernel("cpu", fn)``.
"""

from __future__ import annotations

import typing
from collections.abc import Callable

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
            op = typing.cast(torch.library.CustomOpDef,
                             torch.library.triton_op(name, fn, mutates_args=()))
            from torch._library import triton as _lt

            if hasattr(_lt, "triton_ops_to_kernels"):
                _lt.triton_ops_to_kernels[name] = list(kernels())
            return op
        op = torch.library.custom_op(
            name, fn, mutates_args=(), tags=(torch.Tag.needs_contiguous_strides,)
        )
        op.register_fake(fake)
        return op

    return register
