"""Tests of ``vsm.gaussian_terms``: Triton kernels (interpreter) vs the pure-torch reference over
hypothesis-drawn shapes (forward and backward), float64 gradcheck through the kernels, dispatch,
input validation, and the hand-derived gradient formulas."""

from __future__ import annotations

import contextlib

import _cases as C
import numpy as np
import pytest
import torch
import vsm
from _cases import OK, TE, VE, B, D, N, seeded, t
from hypothesis import given
from hypothesis import strategies as st
from vsm import reference
from vsm.kernels import gaussian_terms as K

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: {"rtol": 2e-5, "atol": 2e-5}, torch.float64: {"rtol": 1e-11, "atol": 1e-11}}


@contextlib.contextmanager
def _max_block_d(width):
    """Shrink the kernels' D tile so that small D already spans several tiles."""
    old = K.MAX_BLOCK_D
    K.MAX_BLOCK_D = width
    try:
        yield
    finally:
        K.MAX_BLOCK_D = old


def _inputs(n, b, d, dtype, *, requires_grad=False, seed=0, log_sigma2=0.3):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, d, generator=gen, dtype=dtype)
    xm = x + 0.5 * torch.randn(n, b, d, generator=gen, dtype=dtype)
    ls = torch.tensor(log_sigma2, dtype=dtype)
    return tuple(t.requires_grad_(requires_grad) for t in (x, xm, ls))


def _scalarise(t, w1, w2, w3):
    """A loss using all three outputs with random weights (trace may be 0-dim)."""
    return (t.sq_mean * w1).sum() + (t.mean_sq * w2).sum() + (t.trace * w3).sum()


def _check_against_reference(n, b, d, dtype, seed):
    args = _inputs(n, b, d, dtype, requires_grad=True, seed=seed)
    with vsm.backend("triton"):
        out = vsm.gaussian_terms(*args)
    ref = reference.gaussian_terms(*args)
    for name in ("sq_mean", "mean_sq", "trace"):
        o, r = getattr(out, name), getattr(ref, name)
        assert o.dtype == dtype and o.shape == r.shape, name
        torch.testing.assert_close(o, r, **TOL[dtype], msg=lambda m, name=name: f"{name}: {m}")
    assert out.sq_mean.shape == (b,) and out.mean_sq.shape == (b,)
    gen = torch.Generator().manual_seed(seed + 1)
    w1, w2 = (torch.randn(b, generator=gen, dtype=dtype) for _ in range(2))
    w3 = torch.randn((), generator=gen, dtype=dtype)
    grads = torch.autograd.grad(_scalarise(out, w1, w2, w3), args)
    ref_grads = torch.autograd.grad(_scalarise(ref, w1, w2, w3), args)
    for name, g, rg in zip(("x", "x_mean", "log_sigma2"), grads, ref_grads, strict=True):
        scale = max(1.0, rg.abs().max().item())
        tol = {k: v * scale for k, v in TOL[dtype].items()}
        torch.testing.assert_close(g, rg, **tol, msg=lambda m, name=name: f"d{name}: {m}")


@given(
    n=st.integers(1, 5),
    b=st.integers(1, 9),
    d=st.one_of(st.integers(1, 9), st.sampled_from([16, 17, 31, 33, 40])),
    f64=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_kernel_matches_reference_small_blocks(n, b, d, f64, seed):
    """With the D tile shrunk to 16, D in {17, 31, 33, 40} spans several tiles (D > block)."""
    with _max_block_d(16):
        _check_against_reference(n, b, d, torch.float64 if f64 else torch.float32, seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 130), (2, 70, 3), (7, 2, 257)])
def test_kernel_matches_reference_default_blocks(dtype, shape):
    """Default tiles: D = 130 and 257 exceed the 128-wide D tile; B = 70 spans several B tiles."""
    _check_against_reference(*shape, dtype, seed=3)


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 2, 5), (2, 3, 20)])
def test_gradcheck_through_triton_kernels(shape):
    args = _inputs(*shape, torch.float64, requires_grad=True)
    with _max_block_d(16), vsm.backend("triton"):  # D = 20 spans two tiles
        assert torch.autograd.gradcheck(lambda *a: tuple(vsm.gaussian_terms(*a)), args)


def test_gradgradcheck_create_graph_path():
    """With create_graph the backward runs in differentiable torch ops (for bi-level unrolling)."""
    args = _inputs(3, 2, 4, torch.float64, requires_grad=True)
    with vsm.backend("triton"):
        assert torch.autograd.gradgradcheck(lambda *a: tuple(vsm.gaussian_terms(*a)), args)


def test_gradcheck_reference_path():
    args = _inputs(2, 3, 4, torch.float64, requires_grad=True)
    with vsm.backend("reference"):
        assert torch.autograd.gradcheck(lambda *a: tuple(vsm.gaussian_terms(*a)), args)


def test_hand_derived_gradients():
    """The formulas in the kernel docstring, against autograd of the reference."""
    x, xm, ls = _inputs(4, 3, 6, torch.float64, requires_grad=True, log_sigma2=-0.4)
    gen = torch.Generator().manual_seed(5)
    a, c = (
        torch.randn(3, generator=gen, dtype=torch.float64),
        torch.randn(3, generator=gen, dtype=torch.float64),
    )
    with vsm.backend("triton"):
        t = vsm.gaussian_terms(x, xm, ls)
    dx, dxm, dls = torch.autograd.grad((a * t.sq_mean + c * t.mean_sq).sum(), (x, xm, ls))
    with torch.no_grad():
        inv = torch.exp(-ls)
        f = (xm - x) * inv
        fbar = f.mean(0)
        n = xm.shape[0]
        torch.testing.assert_close(dxm, inv * 2 / n * (a[:, None] * f + c[:, None] * fbar))
        torch.testing.assert_close(dx, -2 * inv * (a + c)[:, None] * fbar)
        torch.testing.assert_close(dls, -2 * (a * t.sq_mean + c * t.mean_sq).sum())


def test_values_by_hand():
    """One datum, D = 2, N = 2, σ² = 2: f_1 = (1, 0), f_2 = (0, 1)."""
    x = torch.zeros(1, 2, dtype=torch.float64)
    xm = torch.tensor([[[2.0, 0.0]], [[0.0, 2.0]]], dtype=torch.float64)
    ls = torch.tensor(2.0, dtype=torch.float64).log()
    with vsm.backend("triton"):
        t = vsm.gaussian_terms(x, xm, ls)
    torch.testing.assert_close(t.sq_mean, torch.tensor([1.0], dtype=torch.float64))
    torch.testing.assert_close(t.mean_sq, torch.tensor([0.5], dtype=torch.float64))
    torch.testing.assert_close(t.trace, torch.tensor(-1.0, dtype=torch.float64))


def test_two_dim_x_mean_is_one_sample():
    x, xm, ls = _inputs(1, 4, 5, torch.float64)
    for name in ("triton", "reference"):
        with vsm.backend(name):
            a = vsm.gaussian_terms(x, xm[0], ls)
            b = vsm.gaussian_terms(x, xm, ls)
        for u, v in zip(a, b, strict=True):
            torch.testing.assert_close(u, v)
        torch.testing.assert_close(a.sq_mean, a.mean_sq)  # N = 1


def test_non_contiguous_inputs():
    x, xm, ls = _inputs(3, 4, 6, torch.float64)
    xm_t = xm.transpose(0, 1).contiguous().transpose(0, 1)
    x_e = x[:1].expand(4, 6)
    assert not xm_t.is_contiguous()
    with vsm.backend("triton"):
        out = vsm.gaussian_terms(x_e, xm_t, ls)
    ref = reference.gaussian_terms(x_e.contiguous(), xm, ls)
    for u, v in zip(out, ref, strict=True):
        torch.testing.assert_close(u, v)


def test_dispatch_uses_rust_without_interpreter(monkeypatch):
    from vsm import _dispatch
    from vsm.ops import _rust

    calls = {"kernel": 0, "reference": 0, "rust": 0}
    real_fwd, real_ref = K.forward, reference.gaussian_terms
    real_rust = _rust.gaussian_terms.forward

    def spy(name, fn):
        def wrapped(*a):
            calls[name] += 1
            return fn(*a)

        return wrapped

    monkeypatch.setattr(K, "forward", spy("kernel", real_fwd))
    monkeypatch.setattr(reference, "gaussian_terms", spy("reference", real_ref))
    monkeypatch.setattr(_rust.gaussian_terms, "forward", spy("rust", real_rust))
    args = _inputs(2, 3, 4, torch.float32)
    # dispatch follows how the kernels were built, not TRITON_INTERPRET at call time
    monkeypatch.setattr(_dispatch, "_kernel_build", lambda: "compiled")
    vsm.gaussian_terms(*args)
    assert calls == {"kernel": 0, "reference": 0, "rust": 1}
    monkeypatch.setattr(_dispatch, "_kernel_build", lambda: "interpreted")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    vsm.gaussian_terms(*args)
    assert calls == {"kernel": 1, "reference": 0, "rust": 1}
    with vsm.backend("reference"):
        vsm.gaussian_terms(*args)
    assert calls == {"kernel": 1, "reference": 1, "rust": 1}
    with vsm.backend("rust"):
        vsm.gaussian_terms(*args)
    assert calls == {"kernel": 1, "reference": 1, "rust": 2}
    monkeypatch.setattr(_dispatch, "_kernel_build", lambda: "compiled")
    with pytest.raises(RuntimeError, match="triton"), vsm.backend("triton"):
        vsm.gaussian_terms(*args)


def test_fake_impl_and_autograd_registration():
    """torch.library.opcheck: schema, fake (meta) implementation and autograd registration."""
    x, xm, ls = _inputs(2, 3, 4, torch.float64, requires_grad=True)
    from vsm.ops.gaussian_terms import _gt_op

    torch.library.opcheck(
        _gt_op,
        (x, xm, ls),
        test_utils=("test_schema", "test_faketensor", "test_autograd_registration"),
    )


@pytest.mark.parametrize("output", ["sq_mean", "mean_sq"])
def test_backward_with_one_output_used(output):
    """Only one output in the loss: the other output's gradient is absent or zero."""
    args = _inputs(3, 4, 5, torch.float64, requires_grad=True)
    with vsm.backend("triton"):
        out = getattr(vsm.gaussian_terms(*args), output)
    ref = getattr(reference.gaussian_terms(*args), output)
    for g, rg in zip(
        torch.autograd.grad(out.sum(), args), torch.autograd.grad(ref.sum(), args), strict=True
    ):
        torch.testing.assert_close(g, rg)


# ---- bad input (feeds tests/test_bad_input.py's matrix)
# Rows (id, kind, call, kwargs, expected) and tables as described in tests/_cases.py.
BAD_INPUT = [
    ("gt-ok", "valid", C.gt, dict, OK),
    ("gt-list", "type", C.gt, lambda: {"x": t(B, D).tolist()}, TE("x")),
    ("gt-ndarray", "type", C.gt, lambda: {"x_mean": np.zeros((N, B, D))}, TE("x_mean")),
    ("gt-float", "type", C.gt, lambda: {"log_sigma2": 0.0}, TE("log_sigma2")),
    ("gt-int", "dtype", C.gt, lambda: {"x": torch.zeros(B, D, dtype=torch.int32)}, TE("x")),
    ("gt-dtype-mix", "dtype", C.gt, lambda: {"log_sigma2": C.f32()}, TE("log_sigma2")),
    ("gt-shape", "shape", C.gt, lambda: {"x_mean": t(N, B, D + 1)}, VE("x_mean")),
    ("gt-rank", "shape", C.gt, lambda: {"log_sigma2": t(1)}, VE("log_sigma2")),
    ("gt-empty", "empty", C.gt, lambda: {"x": t(0, D), "x_mean": t(N, 0, D)}, VE("x")),
    ("gt-device", "device", C.gt, lambda: {"x_mean": C.on_meta(N, B, D)}, VE("x_mean")),
    ("gt-dtype-mix-xm", "dtype", C.gt, lambda: {"x_mean": C.f32(N, B, D)}, TE("x_mean")),
    ("gt-rank-x", "shape", C.gt, lambda: {"x": t(D)}, VE("x")),
    ("gt-rank-xm", "shape", C.gt, lambda: {"x_mean": t(1, N, B, D)}, VE("x_mean")),
    ("gt-shape-B", "shape", C.gt, lambda: {"x_mean": t(N, B - 1, D)}, VE("x_mean")),
    ("gt-empty-N", "empty", C.gt, lambda: {"x_mean": t(0, B, D)}, VE("x_mean")),
    ("gt-empty-D", "empty", C.gt, lambda: {"x": t(B, 0), "x_mean": t(N, B, 0)}, VE("x")),
    *C.dtype_rows("gt", C.gt, "x_mean", (N, B, D)),
]
test_bad_input_raises_naming_argument = C.raises_test(BAD_INPUT)


def _nf_gt(v):
    out = vsm.gaussian_terms(seeded(1, B, D), C.bad_datum(seeded(2, N, B, D), v, 1), seeded(3))
    return out.sq_mean, out.mean_sq


NONFINITE_ROWS = {"gaussian_terms": _nf_gt}
test_non_finite_datum_stays_in_its_row = C.non_finite_test(NONFINITE_ROWS)


LAYOUT_ROWS = {"gaussian_terms": C.gaussian_args_layout(vsm.gaussian_terms)}
test_non_contiguous_inputs_give_the_contiguous_result = C.layout_test(LAYOUT_ROWS)
EXPANDED_ROWS = {
    "gt": C.gaussian_args_expanded(vsm.gaussian_terms, "x_mean"),
    "gt_x": C.gaussian_args_expanded(vsm.gaussian_terms, "x"),
}
test_expanded_inputs_give_the_contiguous_result = C.expanded_test(EXPANDED_ROWS)


# Backward through the kernels with non-contiguous leaves equals the contiguous one.
test_non_contiguous_gradients = C.layout_gradients_test(vsm.gaussian_terms, ((B, D), (N, B, D), ()))
