"""Bad input to every Rust entry point raises a Python ValueError/TypeError naming the argument —
never a panic (pyo3 would raise PanicException, a BaseException) or a crash."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import vsm
from vsm import _core


def _raises(exc, match, fn, *a, **k):
    with pytest.raises(exc, match=match):
        fn(*a, **k)


# ---------------------------------------------------------------- is_log_evidence
@pytest.mark.parametrize(
    "bad, exc, match",
    [
        (np.array([[0.0, np.nan]]), ValueError, "log_w"),
        (np.array([[0.0, np.inf]]), ValueError, "log_w"),
        (np.zeros(3), ValueError, "log_w"),
        (np.zeros((2, 2, 2)), ValueError, "log_w"),
        (np.zeros((2, 0)), ValueError, "log_w"),
        (np.zeros((0, 3)), ValueError, "log_w"),
        (np.zeros((2, 3), dtype=np.int64), TypeError, "log_w"),
        (torch.zeros(2, 3, dtype=torch.int32), TypeError, "log_w"),
        (torch.zeros(2, 0), ValueError, "log_w"),
        ([[0.0, 1.0]], TypeError, "log_w"),
    ],
)
def test_is_log_evidence_bad(bad, exc, match):
    _raises(exc, match, vsm.is_log_evidence, bad)


def test_core_rejects_wrong_dtype_with_type_error():
    with pytest.raises(TypeError):
        _core.is_log_evidence(np.zeros((2, 2), dtype=np.float32))


# ---------------------------------------------------------------- toy / grid
AX = np.linspace(-1, 1, 5)


@pytest.mark.parametrize(
    "lj, axes, match",
    [
        (np.full((2, 5), np.nan), (AX,), "log_joint"),
        (np.full((2, 5), np.inf), (AX,), "log_joint"),
        (np.full((2, 5), -np.inf), (AX,), "log_joint"),
        (np.zeros((2, 4)), (AX,), "log_joint"),
        (np.zeros((0, 5)), (AX,), "log_joint"),
        (np.zeros((5,)), (np.array([0.0, 1.0, 3.0, 4.0, 5.0]),), "axes"),
        (np.zeros((5,)), (AX[::-1],), "axes"),
        (np.zeros((2,)), (np.array([0.0, 1.0]),), "axes"),
        (np.zeros((5, 5, 5)), (AX, AX, AX), "axes"),
        (np.zeros((5,)), (np.array([0.0, np.nan, 1, 2, 3]),), "axes"),
    ],
)
def test_grid_posterior_bad(lj, axes, match):
    _raises(ValueError, match, vsm.toy.grid_posterior, lj, axes)


def test_grid_divergences_bad():
    lj = np.zeros((2, 5))
    lj[0, 0] = -np.inf
    post = vsm.toy.grid_posterior(lj, (AX,))
    _raises(ValueError, "log_joint", post.kl_from, [0.0], [[1.0]])
    post = vsm.toy.grid_posterior(np.zeros(5), (AX,))
    _raises(ValueError, "q_cov", post.kl_from, [0.0], [[-1.0]])
    _raises(ValueError, "q_mean", post.kl_from, [np.nan], [[1.0]])
    _raises(ValueError, "q_mean", post.fd_from, [0.0, 1.0], [[1.0]])
    _raises(ValueError, "q_weights", post.fd_from, [[0.0]], [[[1.0]]], [-1.0])
    _raises(ValueError, "q_mean", post.kl_from, [1e6], [[1e-6]])


def test_toy_posterior_bad():
    _raises(ValueError, "model", vsm.toy.posterior, "nope", 1.0)
    _raises(ValueError, "x", vsm.toy.posterior, "sym", np.nan)
    _raises(ValueError, "x", vsm.toy.posterior, "sym", np.zeros(0))
    _raises(ValueError, "sigma", vsm.toy.posterior, "sym", 1.0, sigma=-1.0)
    _raises(ValueError, "alpha", vsm.toy.posterior, "sym", 1.0, alpha=2.0)
    _raises(ValueError, "alpha", vsm.toy.posterior, "soft", 1.0, alpha=0.0)
    _raises(ValueError, "W", vsm.toy.posterior, "linear", [1.0, 2.0], W=np.ones((2, 3)))
    _raises(ValueError, "b", vsm.toy.posterior, "linear", [1.0, 2.0], W=np.ones((2, 1)), b=[1.0])
    _raises(ValueError, "x", vsm.toy.posterior, "linear", [1.0, 2.0, 3.0], W=np.ones((2, 1)))
    _raises(ValueError, "n", vsm.toy.posterior, "sym", 1.0, n=2)
    _raises(TypeError, "n", vsm.toy.posterior, "sym", 1.0, n=2.5)
    _raises(ValueError, "lo", vsm.toy.posterior, "sym", 1.0, lo=1.0, hi=-1.0)
    _raises(ValueError, "foo", vsm.toy.posterior, "sym", 1.0, foo=1.0)
    _raises(TypeError, "x", vsm.toy.posterior, "sym", "abc")


def test_toy_core_direct_bad():
    ax = [np.linspace(-1, 1, 5)] * 2
    _raises(ValueError, "axes", _core.toy_posterior, "sym", np.zeros((1, 1)), ax[:1])
    _raises(ValueError, "x", _core.toy_posterior, "sym", np.zeros((1, 2)), ax)
    _raises(ValueError, "z", _core.toy_log_joint, "sym", np.zeros((1, 1)), np.zeros((3, 1)))
    _raises(ValueError, "log_z", _core.toy_divergences, "sym", np.zeros((2, 1)), np.zeros(3),
            np.ones((2, 1)), np.zeros((2, 1, 2)), np.ones((2, 1, 2, 2)))
    _raises(ValueError, "q_cov", _core.toy_divergences, "sym", np.zeros((1, 1)), np.zeros(1),
            np.ones((1, 1)), np.zeros((1, 1, 2)), np.ones((1, 1, 2, 2)))
    _raises(ValueError, "q_mean", _core.toy_divergences, "sym", np.zeros((1, 1)), np.zeros(1),
            np.ones((1, 1)), np.zeros((1, 1, 3)), np.ones((1, 1, 3, 3)))


def test_toy_accepts_non_contiguous_read_only_and_torch():
    x = np.linspace(-2, 2, 10)[::3]
    ro = x.copy()
    ro.setflags(write=False)
    a = vsm.toy.posterior("sym", x, n=31)
    b = vsm.toy.posterior("sym", ro, n=31)
    c = vsm.toy.posterior("sym", torch.from_numpy(x.copy()), n=31)
    np.testing.assert_array_equal(a.log_z, b.log_z)
    np.testing.assert_array_equal(a.log_z, c.log_z)
    lj = np.random.default_rng(0).normal(size=(5, 8)).T  # non-contiguous (8, 5) view
    g = vsm.toy.grid_posterior(lj, (AX,))
    np.testing.assert_allclose(g.log_z, vsm.toy.grid_posterior(lj.copy(), (AX,)).log_z)


# ---------------------------------------------------------------- ISAccumulator
def _acc(B=2, D=3):
    return vsm.ISAccumulator(np.zeros((B, D)), 0.0)


def test_is_accumulator_bad():
    _raises(ValueError, "x", vsm.ISAccumulator, np.zeros((0, 3)), 0.0)
    _raises(ValueError, "x", vsm.ISAccumulator, np.zeros((2, 0)), 0.0)
    _raises(ValueError, "x", vsm.ISAccumulator, np.zeros(3), 0.0)
    _raises(ValueError, "x", vsm.ISAccumulator, np.full((2, 3), np.nan), 0.0)
    _raises(ValueError, "log_sigma2", vsm.ISAccumulator, np.zeros((2, 3)), float("nan"))
    _raises(TypeError, "log_sigma2", vsm.ISAccumulator, np.zeros((2, 3)), "a")
    _raises(TypeError, "x", vsm.ISAccumulator, np.zeros((2, 3), dtype=np.int32), 0.0)
    acc = _acc()
    _raises(ValueError, "result", acc.result)
    z = np.zeros((2, 4))
    _raises(ValueError, "x_mean", acc.add, np.zeros((2, 4, 5)), z, z)
    _raises(ValueError, "x_mean", acc.add, np.zeros((3, 4, 3)), z, z)
    _raises(ValueError, "x_mean", acc.add, np.zeros((2, 0, 3)), np.zeros((2, 0)), np.zeros((2, 0)))
    _raises(ValueError, "x_mean", acc.add, np.zeros((2, 4)), z, z)
    _raises(ValueError, "log_prior", acc.add, np.zeros((2, 4, 3)), np.zeros((2, 5)), z)
    _raises(ValueError, "log_proposal", acc.add, np.zeros((2, 4, 3)), z, np.zeros(4))
    bad = np.zeros((2, 4, 3))
    bad[1, 2, 1] = np.nan
    _raises(ValueError, "x_mean", acc.add, bad, z, z)
    bad[1, 2, 1] = np.inf
    _raises(ValueError, "x_mean", acc.add, bad, z, z)
    _raises(ValueError, "log_prior", acc.add, np.zeros((2, 4, 3)), np.full((2, 4), np.nan), z)
    _raises(ValueError, "log_proposal", acc.add, np.zeros((2, 4, 3)), z, np.full((2, 4), -np.inf))
    _raises(TypeError, "x_mean", acc.add, np.zeros((2, 4, 3), dtype=np.int64), z, z)
    _raises(TypeError, "x_mean", acc._acc.add, np.zeros((2, 4, 3), dtype=np.int64), z, z)
    _raises(TypeError, "x_mean", acc._acc.add, [1, 2], z, z)
    assert acc.n_samples == 0  # failed adds leave the state untouched
    acc.add(np.zeros((2, 4, 3)), z, z)
    assert acc.n_samples == 4


def test_is_accumulator_strided_read_only_float32():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 4))
    xm = rng.normal(size=(3, 12, 8))
    lp = rng.normal(size=(3, 12))
    a = vsm.ISAccumulator(x, 0.1)
    a.add(np.ascontiguousarray(xm[:, ::2, ::2]), np.ascontiguousarray(lp[:, ::2]), np.zeros((3, 6)))
    ro = xm.copy()
    ro.setflags(write=False)
    b = vsm.ISAccumulator(x, 0.1)
    b.add(ro[:, ::2, ::2], lp[:, ::2], np.zeros((3, 6)))
    c = vsm.ISAccumulator(x, 0.1)
    c.add(xm[:, ::2, ::2].astype(np.float32), lp[:, ::2], np.zeros((3, 6)))
    ra, rb, rc = a.result(), b.result(), c.result()
    np.testing.assert_array_equal(ra.log_p, rb.log_p)
    np.testing.assert_array_equal(ra.score, rb.score)
    np.testing.assert_allclose(ra.log_p, rc.log_p, rtol=1e-6)
