"""Tests of vsm.is_log_evidence (Rust engine) against scipy.special.logsumexp and its gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import vsm
from scipy.special import logsumexp
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
