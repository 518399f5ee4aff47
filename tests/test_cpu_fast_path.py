"""Tests of the eager direct CPU path of the fused ops (:mod:`vsm.ops._direct`).

On plain CPU tensors with the Rust kernels selected (``vsm.backend("rust")`` here, since the tests
run with ``TRITON_INTERPRET=1``), ``vsm.posterior_fd``, ``vsm.gaussian_terms`` and
``vsm.hutchinson_trace`` call the Rust launchers through one ``torch.autograd.Function`` each,
without the ``torch.library`` ops. Checked here:

- the direct path is taken (the custom ops are not called) and equals the ``torch.library`` path
  exactly and the reference to rounding, values and gradients (also ``create_graph=True``),
  float32/float64, hypothesis shapes;
- float64 gradcheck/gradgradcheck through it;
- ``torch.compile``, ``opcheck``, fake tensors, dispatch modes, vmap and the Triton interpreter
  (the default under the tests) keep the ``torch.library`` path.
"""

from __future__ import annotations

import importlib

import pytest
import torch
import vsm
from hypothesis import given
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode
from vsm import reference
from vsm.ops import _direct

PFD = importlib.import_module("vsm.ops.posterior_fd")
GT = importlib.import_module("vsm.ops.gaussian_terms")
HU = importlib.import_module("vsm.ops.hutchinson")
LIBRARY_OPS = [
    (PFD, "_pfd_op"),
    (PFD, "_pfd_bwd_op"),
    (GT, "_gt_op"),
    (GT, "_gt_bwd_op"),
    (HU, "_probes_op"),
    (HU, "_dot_op"),
    (HU, "_dot_bwd_op"),
]
DIRECT_FUNCTIONS = [(PFD, "_PfdDirect"), (GT, "_GtDirect"), (HU, "_DotDirect")]
#: Agreement with the reference (other reduction order; values and gradients are O(10-100)).
TOL = {torch.float32: {"rtol": 1e-4, "atol": 1e-4}, torch.float64: {"rtol": 1e-11, "atol": 1e-11}}
dims = st.one_of(st.integers(1, 9), st.sampled_from([16, 33, 129]))


def _forbid(monkeypatch, targets, what):
    """Make every (module, name) in ``targets`` raise when called."""

    def fail(*a, **k):
        raise AssertionError(f"the {what} was called")

    for mod, name in targets:
        if hasattr(getattr(mod, name), "apply"):
            monkeypatch.setattr(getattr(mod, name), "apply", fail)
        else:
            monkeypatch.setattr(mod, name, fail)


@pytest.fixture
def library_path():
    """Run the body with the direct path off (the ``torch.library`` path, as before it)."""
    _direct.ENABLED[0] = False
    try:
        yield
    finally:
        _direct.ENABLED[0] = True


def _leaves(gen, dtype, *shapes):
    return [torch.randn(s, generator=gen, dtype=dtype).requires_grad_(True) for s in shapes]


def _pfd(args):
    out = vsm.posterior_fd(*args)
    (g0,) = torch.autograd.grad(out.sum(), args[0], create_graph=True)
    return [out, *torch.autograd.grad(out.sum() + (g0 * args[3]).sum(), args)]


def _gt(args):
    t = vsm.gaussian_terms(*args)
    loss = (t.sq_mean * 1.5 - t.mean_sq).sum() + t.trace
    (g1,) = torch.autograd.grad(loss, args[1], create_graph=True)
    second = (g1 * args[1]).sum()
    return [t.sq_mean, t.mean_sq, t.trace, *torch.autograd.grad(loss + second, args)]


def _hutch(args):
    w, x = args
    est = vsm.hutchinson_trace(torch.tanh(x @ w), x, n_probes=2, seed=5, dist="gaussian")
    (gx,) = torch.autograd.grad(est.sum(), x, create_graph=True)
    return [est, *torch.autograd.grad(est.sum() + gx.square().sum(), args)]


def _run_both(monkeypatch, fn, args):
    """fn(args) on the direct path (library ops forbidden) and on the torch.library path."""
    with vsm.backend("rust"), monkeypatch.context() as m:
        _forbid(m, LIBRARY_OPS, "torch.library path")
        direct = fn(args)
    _direct.ENABLED[0] = False
    try:
        with vsm.backend("rust"):
            library = fn(args)
    finally:
        _direct.ENABLED[0] = True
    return direct, library


def _assert_direct_equals_library_and_reference(fn, args, dtype):
    """fn(args) on the direct path equals the torch.library path exactly, and the reference."""
    with pytest.MonkeyPatch.context() as mp:
        direct, library = _run_both(mp, fn, args)
    with vsm.backend("reference"):
        ref = fn(args)
    for d, lib, r in zip(direct, library, ref, strict=True):
        assert d.dtype == dtype and d.shape == r.shape
        torch.testing.assert_close(d, lib, rtol=0, atol=0)
        torch.testing.assert_close(d, r, **TOL[dtype])


@given(n=st.integers(1, 4), b=dims, l=dims, batched=st.booleans(), f64=st.booleans())
def test_posterior_fd_direct_equals_library_and_reference(n, b, l, batched, f64):
    dtype = torch.float64 if f64 else torch.float32
    gen = torch.Generator().manual_seed(n * 100 + b * 10 + l)
    shape = (n, b, l) if batched else (b, l)
    z, mu, lv, g = _leaves(gen, dtype, shape, (b, l), (b, l), shape)
    _assert_direct_equals_library_and_reference(
        _pfd, [z, mu, (0.3 * lv).detach().requires_grad_(True), g], dtype
    )


@given(n=st.integers(1, 4), b=dims, d=dims, unbatched=st.booleans(), f64=st.booleans())
def test_gaussian_terms_direct_equals_library_and_reference(n, b, d, unbatched, f64):
    dtype = torch.float64 if f64 else torch.float32
    gen = torch.Generator().manual_seed(n * 100 + b * 10 + d)
    x, xm, ls = _leaves(gen, dtype, (b, d), (b, d) if unbatched else (n, b, d), ())
    _assert_direct_equals_library_and_reference(
        _gt, [x, xm, (0.3 * ls).detach().requires_grad_(True)], dtype
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hutchinson_direct_equals_library(monkeypatch, dtype):
    """Same probe stream and the same differentiable dot ↔ dot_backward pair as the library ops
    (the reference draws other probes, so it is compared in test_rust_kernels.py by formula)."""
    gen = torch.Generator().manual_seed(1)
    args = _leaves(gen, dtype, (6, 6), (4, 6))
    direct, library = _run_both(monkeypatch, _hutch, args)
    for d, lib in zip(direct, library, strict=True):
        torch.testing.assert_close(d, lib, rtol=0, atol=0)


def test_gradcheck_and_gradgradcheck_through_the_direct_path(monkeypatch):
    gen = torch.Generator().manual_seed(2)
    f64 = torch.float64
    pfd = _leaves(gen, f64, (2, 3, 4), (3, 4), (3, 4), (2, 3, 4))
    gt = _leaves(gen, f64, (3, 5), (2, 3, 5), ())
    w, x = _leaves(gen, f64, (5, 5), (3, 5))

    def terms(*a):
        return tuple(vsm.gaussian_terms(*a))

    def est(w, x):
        return vsm.hutchinson_trace(torch.tanh(x @ w), x, n_probes=2, seed=11)

    _forbid(monkeypatch, LIBRARY_OPS, "torch.library path")
    with vsm.backend("rust"):
        for fn, args in ((vsm.posterior_fd, pfd), (terms, gt), (est, (w, x))):
            assert torch.autograd.gradcheck(fn, args)
            assert torch.autograd.gradgradcheck(fn, args)


def test_no_grad_and_inference_mode_skip_autograd(monkeypatch):
    gen = torch.Generator().manual_seed(3)
    args = _leaves(gen, torch.float32, (2, 3, 4), (3, 4), (3, 4), (2, 3, 4))
    with vsm.backend("rust"):
        want = vsm.posterior_fd(*args).detach()
        _forbid(monkeypatch, [*LIBRARY_OPS, *DIRECT_FUNCTIONS], "autograd/library path")
        with torch.no_grad():
            got = vsm.posterior_fd(*args)
        with torch.inference_mode():
            got_inf = vsm.posterior_fd(*args)
    assert not got.requires_grad
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(got_inf, want, rtol=0, atol=0)


def test_parameters_and_non_contiguous_inputs_take_the_direct_path(monkeypatch):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(6, 3, generator=gen, dtype=torch.float64).T  # (3, 6), not contiguous
    xm = torch.randn(2, 3, 6, generator=gen, dtype=torch.float64)
    ls = torch.nn.Parameter(torch.tensor(0.2, dtype=torch.float64))
    with vsm.backend("reference"):
        want = vsm.gaussian_terms(x, xm, ls)
        want_g = torch.autograd.grad(want.sq_mean.sum(), ls)
    _forbid(monkeypatch, LIBRARY_OPS, "torch.library path")
    with vsm.backend("rust"):
        got = vsm.gaussian_terms(x, xm, ls)
        got_g = torch.autograd.grad(got.sq_mean.sum(), ls)
    for g, w in zip((*got, *got_g), (*want, *want_g), strict=True):
        torch.testing.assert_close(g, w, **TOL[torch.float64])


class _CountingMode(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


def test_tracing_modes_and_the_interpreter_keep_the_library_path(monkeypatch):
    """``ready()`` is False under dispatch modes, fake tensors, vmap and dynamo; the interpreted
    Triton kernels (the tests' default CPU kernels) never take the direct path."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    z, mu, lv, g = (torch.randn(*s) for s in ((2, 3, 4), (3, 4), (3, 4), (2, 3, 4)))
    with vsm.backend("rust"):
        assert _direct.ready()
        with _CountingMode():
            assert not _direct.ready()
        with FakeTensorMode():
            assert not _direct.ready()
        assert torch.vmap(lambda t: torch.tensor(_direct.ready()) + 0 * t)(z).logical_not().all()
        assert not _direct.plain_cpu(torch.zeros(2, device="meta"))
        assert not _direct.plain_cpu(torch.zeros(2, dtype=torch.float16))
        assert not _direct.plain_cpu(torch.zeros(2), torch.zeros(2, dtype=torch.float64))
        assert not _direct.plain_cpu(torch.zeros(2, 2).to_sparse())
    assert not _direct.ready()  # the tests' default: interpreted Triton kernels on CPU
    _forbid(monkeypatch, DIRECT_FUNCTIONS, "direct path")
    monkeypatch.setattr(PFD.R.posterior_fd, "forward", lambda *a: 1 / 0)
    out = vsm.posterior_fd(z, mu, lv, g)  # the interpreter, through the library op
    torch.testing.assert_close(out, reference.posterior_fd(z, mu, lv, g), **TOL[torch.float32])


def test_compile_and_opcheck_take_the_library_path(monkeypatch):
    """Under ``torch.compile(fullgraph=True)`` the direct path is never entered (the compiled
    graph holds the custom ops), and opcheck of the ops still passes."""
    gen = torch.Generator().manual_seed(5)
    args = _leaves(gen, torch.float64, (2, 3, 4), (3, 4), (3, 4), (2, 3, 4))
    xs = _leaves(gen, torch.float64, (3, 4), (2, 3, 4), ())

    def step(z, mu, lv, g, x, xm, ls):
        t = vsm.gaussian_terms(x, xm, ls)
        return vsm.posterior_fd(z, mu, lv, g).sum() + t.sq_mean.sum() + t.trace

    with vsm.backend("rust"):
        want = torch.autograd.grad(step(*args, *xs), [*args, *xs])
        torch._dynamo.reset()
        _forbid(monkeypatch, DIRECT_FUNCTIONS, "direct path")
        monkeypatch.setattr(_direct, "ENABLED", [True])
        compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
        got = torch.autograd.grad(compiled(*args, *xs), [*args, *xs])
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b)
        r = [t.detach().requires_grad_(True) for t in args]
        torch.library.opcheck(PFD._pfd_op, tuple(r))
    torch._dynamo.reset()
