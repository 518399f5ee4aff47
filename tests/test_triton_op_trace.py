"""With compiled kernels (no ``TRITON_INTERPRET``), vsm's ops are ``torch.library.triton_op``s and
AOTAutograd traces *into* them: the graph holds the Triton kernel launches
(``triton_kernel_wrapper_functional``), not an opaque ``vsm::`` call. Checked in a subprocess on
``meta`` tensors, which stand in for CUDA ones (tracing only; nothing is launched, so no GPU
is needed). CPU tensors deliberately stay one opaque op that runs the Rust kernels
(tests/test_rust_kernels.py checks that)."""

from __future__ import annotations

import _cases as C
import pytest

pytest.importorskip("triton")

SCRIPT = r"""
import torch, vsm
from vsm import _dispatch
from functorch.compile import aot_function
from vsm.ops import hutchinson as H
assert _dispatch.kernel_build() == "compiled"

class Stop(Exception):
    pass

def capture(fn, *args):
    graphs = []
    def compiler(gm, inputs):
        graphs.append(gm.code)
        raise Stop
    try:
        aot_function(fn, fw_compiler=compiler)(*args)
    except Stop:
        pass
    return graphs[0]

z = torch.randn(3, 4, 5, device="meta"); mu = torch.randn(4, 5, device="meta")
code = capture(lambda z, mu: torch.ops.vsm.posterior_fd(z, mu, mu, z), z, mu)
assert "triton_kernel_wrapper_functional" in code and "vsm.posterior_fd" not in code, code
u = torch.randn(2, 4, 300, device="meta")
code = capture(lambda u: H._dot_op(u, 5, "rademacher") * 2, u)
assert "triton_kernel_wrapper_functional" in code and "hutchinson_dot" not in code, code
print("OK")
"""


def test_ops_trace_into_triton_kernels_when_compiled():
    proc = C.run_compiled(SCRIPT, TRITON_DEFAULT_FP_FUSION="0")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stderr[-4000:]
