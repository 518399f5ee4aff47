"""Triton kernels of vsm (installed as ``vsm.kernels``).

Each module holds the ``@triton.jit`` kernels of one fused op and a small launcher that takes
contiguous torch tensors. Kernels are interpreter-compatible (``TRITON_INTERPRET=1``: no libdevice,
no chained assignment, no autotuning under the interpreter) and generic in the dtype, so float64
inputs run through them for ``gradcheck``. Callers never import this package on a machine without
Triton: :mod:`vsm._dispatch` decides when a kernel may run.
"""
