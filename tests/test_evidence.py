"""Tests of vsm.is_log_evidence (Rust engine) against scipy.special.logsumexp and its gradient."""

from __future__ import annotations

import math

import _cases as C
import numpy as np
import pytest
import torch
import vsm
from _cases import F64, META, NAN, OK, TE, VE, B, seeded, t
from scipy.special import logsumexp
from vsm import _core
from vsm import reference_numpy as R


def _scipy(lw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lw = lw.astype(np.float64)
    lp = logsumexp(lw, axis=1) - np.log(lw.shape[1])
    log_ess = 2 * logsumexp(lw, axis=1) - logsumexp(2 * lw, axis=1)
    return lp, np.exp(log_ess)


@pytest.mark.parametrize("shape", [(1, 1), (3, 1), (4, 7), (2, 1000), (17, 33)])
def test_matches_scipy_numpy(shape):
    lw = np.random.default_rng(1).normal(scale=5.0, size=shape)
    lp, ess = vsm.is_log_evidence(lw)
    want_lp, want_ess = _scipy(lw)
    np.testing.assert_allclose(lp, want_lp, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(ess, want_ess, rtol=1e-10)
    tw = R.is_log_evidence(lw)
    np.testing.assert_allclose(lp, tw[0], rtol=1e-13, atol=1e-13)
    assert np.all((ess >= 1 - 1e-12) & (ess <= shape[1] * (1 + 1e-12)))


def test_extreme_log_weights():
    lw = np.array([[-1e30, 700.0, 700.0, 699.0], [700.0, -1e30, -1e30, -1e30]])
    lp, ess = vsm.is_log_evidence(lw)
    want_lp, want_ess = _scipy(lw)
    np.testing.assert_allclose(lp, want_lp, rtol=1e-14)
    np.testing.assert_allclose(ess, want_ess, rtol=1e-12)
    assert ess[1] == pytest.approx(1.0)


def test_k1_is_identity():
    lw = np.array([[3.5], [-1e30], [700.0]])
    lp, ess = vsm.is_log_evidence(lw)
    np.testing.assert_array_equal(lp, lw[:, 0])
    np.testing.assert_array_equal(ess, np.ones(3))


def test_all_minus_inf_row():
    lp, ess = vsm.is_log_evidence(np.array([[-np.inf, -np.inf], [0.0, -np.inf]]))
    assert lp[0] == -np.inf and ess[0] == 0.0
    assert lp[1] == pytest.approx(-np.log(2)) and ess[1] == 1.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_in_torch_out(dtype):
    lw = torch.randn(5, 9, dtype=dtype) * 3
    lp, ess = vsm.is_log_evidence(lw)
    assert lp.dtype == dtype and ess.dtype == dtype and lp.shape == (5,)
    want_lp, want_ess = _scipy(lw.double().numpy())
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    np.testing.assert_allclose(lp.double().numpy(), want_lp, rtol=tol, atol=tol)
    np.testing.assert_allclose(ess.double().numpy(), want_ess, rtol=tol * 10)


def test_float32_numpy_accumulates_in_float64():
    lw = np.random.default_rng(2).normal(size=(3, 50)).astype(np.float32)
    lp, _ = vsm.is_log_evidence(lw)
    assert lp.dtype == np.float64
    np.testing.assert_allclose(lp, _scipy(lw)[0], rtol=1e-14)


def test_gradient_is_softmax_and_gradcheck():
    lw = (torch.randn(3, 6, dtype=torch.float64) * 2).requires_grad_()
    lp, _ = vsm.is_log_evidence(lw)
    (g,) = torch.autograd.grad(lp.sum(), lw)
    torch.testing.assert_close(g, torch.softmax(lw.detach(), -1))
    assert torch.autograd.gradcheck(lambda t: vsm.is_log_evidence(t)[0], (lw,))


def test_non_contiguous_and_read_only():
    base = np.random.default_rng(3).normal(size=(6, 10))
    for arr in (base[::2, ::3], base.T, base[:, ::-1]):
        np.testing.assert_allclose(vsm.is_log_evidence(arr)[0], _scipy(arr)[0], rtol=1e-13)
    ro = base.copy()
    ro.setflags(write=False)
    np.testing.assert_allclose(vsm.is_log_evidence(ro)[0], _scipy(base)[0], rtol=1e-13)
    t = torch.randn(8, 5, dtype=torch.float64)[:, ::2]
    np.testing.assert_allclose(vsm.is_log_evidence(t)[0].numpy(), _scipy(t.numpy())[0], rtol=1e-13)

# ---- bad input (feeds tests/test_bad_input.py's matrix)
# Rows (id, kind, call, kwargs, expected) and tables as described in tests/_cases.py.
BAD_INPUT = [
    ("isle-ok", "valid", C.isle, dict, OK),
    ("isle-np-ok", "valid", C.isle, lambda: {"log_w": np.zeros((B, 5))}, OK),
    ("isle-list", "type", C.isle, lambda: {"log_w": [[0.0, 1.0]]}, TE("log_w")),
    ("isle-int", "dtype", C.isle, lambda: {"log_w": torch.zeros(B, 5, dtype=torch.int64)},
     TE("log_w")),
    ("isle-np-int", "dtype", C.isle, lambda: {"log_w": np.zeros((B, 5), dtype=np.int32)},
     TE("log_w")),
    ("isle-rank", "shape", C.isle, lambda: {"log_w": t(5)}, VE("log_w")),
    ("isle-empty-B", "empty", C.isle, lambda: {"log_w": t(0, 5)}, VE("log_w")),
    ("isle-empty-K", "empty", C.isle, lambda: {"log_w": np.zeros((B, 0))}, VE("log_w")),
    ("isle-nan", "non-finite", C.isle, lambda: {"log_w": torch.tensor([[0.0, NAN]], dtype=F64)},
     VE("log_w")),
    ("isle-inf", "non-finite", C.isle, lambda: {"log_w": np.array([[0.0, math.inf]])},
     VE("log_w")),
    ("isle-meta", "device", C.isle, lambda: {"log_w": t(B, 5, device=META)}, VE("log_w")),
    ("isle-np-f16", "dtype", C.isle, lambda: {"log_w": np.zeros((B, 5), np.float16)},
     TE("log_w")),
    ("isle-np-complex", "dtype", C.isle, lambda: {"log_w": np.zeros((B, 5), complex)},
     TE("log_w")),
    ("isle-np-rank", "shape", C.isle, lambda: {"log_w": np.zeros((B, 5, 1))}, VE("log_w")),
    ("isle-np-empty-B", "empty", C.isle, lambda: {"log_w": np.zeros((0, 5))}, VE("log_w")),
    ("isle-torch-empty-K", "empty", C.isle, lambda: {"log_w": t(B, 0)}, VE("log_w")),
    ("isle-torch-inf", "non-finite", C.isle,
     lambda: {"log_w": torch.full((B, 5), math.inf, dtype=F64)}, VE("log_w")),
    ("isle-np-nan", "non-finite", C.isle, lambda: {"log_w": np.array([[0.0, NAN]])},
     VE("log_w")),
    ("isle-np-rank1", "shape", C.isle, lambda: {"log_w": np.zeros(3)}, VE("log_w")),
    *C.dtype_rows("isle", C.isle, "log_w", (B, 5)),
]
test_bad_input_raises_naming_argument = C.raises_test(BAD_INPUT)


def _l_isle_torch(lay):
    return vsm.is_log_evidence(lay(seeded(1, B, 6)))


def _l_isle_np(lay):
    return vsm.is_log_evidence(lay(seeded(1, B, 6).numpy()))


LAYOUT_ROWS = {"is_log_evidence": _l_isle_torch, "is_log_evidence-np": _l_isle_np}
test_non_contiguous_inputs_give_the_contiguous_result = C.layout_test(LAYOUT_ROWS)


def _x_isle(e):
    lw = seeded(1, 1, 6).expand(B, 6)
    return vsm.is_log_evidence(lw if e else lw.contiguous())


def _x_isle_np(e):
    lw = np.broadcast_to(seeded(1, 1, 6).numpy(), (B, 6))
    return vsm.is_log_evidence(lw if e else np.ascontiguousarray(lw))


EXPANDED_ROWS = {"isle": _x_isle, "isle_np": _x_isle_np}
test_expanded_inputs_give_the_contiguous_result = C.expanded_test(EXPANDED_ROWS)


def test_core_rejects_wrong_dtype_with_type_error():
    """The compiled core takes float64 only; the wrapper converts (float32 -> float64) first."""
    with pytest.raises(TypeError):
        _core.is_log_evidence(np.zeros((2, 2), dtype=np.float32))
