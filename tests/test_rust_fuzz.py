"""Fuzzing the Python API of the Rust engine (``vsm._core`` and its wrappers) with bad arrays.

Hypothesis draws arrays of random shapes (including zero-size dimensions and 0-D), random dtypes
(float16/32/64, ints, bool, complex), with NaN/±inf injected and in non-contiguous layouts
(strided, transposed, reversed, broadcast), as NumPy arrays or torch tensors. Every call must
either raise a clean ``ValueError``/``TypeError`` (never a pyo3 ``PanicException``, which is a
``BaseException``, nor a crash) or return results of the documented shapes with no NaN. For
``is_log_evidence`` the outcome is exact: it raises iff the input is invalid, and otherwise matches
a NumPy log-sum-exp.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import vsm
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from vsm import _core

FUZZ = settings(max_examples=200, deadline=None, derandomize=True)
CLEAN = (ValueError, TypeError)
DTYPES = [np.float64, np.float32, np.float16, np.int64, np.int32, np.bool_, np.complex128]
SPECIALS = [math.nan, math.inf, -math.inf]


@st.composite
def arrays(draw, shape=None, dtypes=DTYPES, min_dims=0, max_dims=4):
    """A possibly bad array: random dtype/shape, NaN/inf injected, random memory layout."""
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    if shape is None:
        shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=5))
    a = draw(hnp.arrays(dtype, shape, elements=_elements(dtype)))
    if dtype.kind in "fc" and a.size and draw(st.integers(0, 4)) == 4:
        flat = a.reshape(-1)
        flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from(SPECIALS))
    return _layout(draw, a)


FLOATS = [np.float64, np.float32]


def near_valid(shape):
    """Arrays of the right shape and a float dtype (still with NaN/inf and odd layouts)."""
    return arrays(shape=shape, dtypes=FLOATS)


def maybe_bad(shape):
    """Mostly well-formed arrays of ``shape``, sometimes anything at all."""
    return st.one_of(near_valid(shape), near_valid(shape), near_valid(shape), arrays(max_dims=4))


def _elements(dtype):
    if dtype.kind == "f":
        return st.floats(-30.0, 30.0, width=min(64, dtype.itemsize * 8))
    if dtype.kind == "c":
        return st.complex_numbers(max_magnitude=30.0)
    if dtype.kind == "b":
        return st.booleans()
    return st.integers(-30, 30)


def _layout(draw, a):
    kind = draw(
        st.sampled_from(["plain", "strided", "transposed", "reversed", "broadcast", "torch"])
    )
    if kind == "strided" and a.ndim:
        buf = np.zeros((*a.shape[:-1], 2 * a.shape[-1]), dtype=a.dtype)
        buf[..., ::2] = a
        return buf[..., ::2]
    if kind == "transposed" and a.ndim > 1:
        return np.ascontiguousarray(a.T).T
    if kind == "reversed" and a.ndim:
        return np.ascontiguousarray(a[..., ::-1])[..., ::-1]
    if kind == "broadcast" and a.ndim and a.shape[0] == 1:
        return np.broadcast_to(a, (3, *a.shape[1:]))
    if kind == "torch" and a.dtype != np.float16:
        return (
            torch.from_numpy(np.ascontiguousarray(a)).transpose(0, -1)
            if a.ndim > 1
            else (torch.from_numpy(np.ascontiguousarray(a)))
        )
    return a


def _np(a):
    return a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _no_nan(*outs):
    for o in outs:
        o = _np(o)
        assert not np.isnan(o).any(), "NaN in a result of accepted input"


def _call(fn, *a, **k):
    """fn's result, or None if it raised a clean ValueError/TypeError (anything else propagates,
    including pyo3's PanicException, a BaseException)."""
    try:
        out = fn(*a, **k)
    except CLEAN as e:
        event(f"{getattr(fn, '__name__', fn)}: {type(e).__name__}")
        return None
    event(f"{getattr(fn, '__name__', fn)}: accepted")
    return out


# -------------------------------------------------------------------------------- is_log_evidence
def _isle_valid(a) -> bool:
    if isinstance(a, torch.Tensor):
        ok = a.dtype in (torch.float32, torch.float64)
    else:
        ok = a.dtype in (np.float32, np.float64)
    v = _np(a)
    return (
        ok
        and v.ndim == 2
        and v.shape[0] > 0
        and v.shape[1] > 0
        and not np.isnan(v).any()
        and not np.isposinf(v).any()
    )


@FUZZ
@given(
    st.one_of(
        arrays(max_dims=3),
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6).flatmap(near_valid),
    )
)
def test_is_log_evidence_fuzz(a):
    out = _call(vsm.is_log_evidence, a)
    assert (out is not None) == _isle_valid(a), f"accepted={out is not None} for {a!r}"
    if out is None:
        return
    log_p, ess = (_np(o).astype(np.float64) for o in out)
    v = _np(a).astype(np.float64)
    B, K = v.shape
    assert log_p.shape == ess.shape == (B,)
    _no_nan(log_p, ess)
    m = v.max(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = m + np.log(np.exp(v - m[:, None]).sum(1)) - math.log(K)
    want = np.where(np.isneginf(m), -np.inf, want)
    tol = 1e-5 if _np(a).dtype == np.float32 else 1e-10
    np.testing.assert_allclose(log_p, want, rtol=tol, atol=tol)
    assert np.all((ess == 0) | ((ess >= 1 - 1e-9) & (ess <= K + 1e-9)))


@FUZZ
@given(
    st.one_of(
        arrays(max_dims=3),
        st.tuples(st.integers(0, 4), st.integers(0, 4)).flatmap(
            lambda s: arrays(shape=s, dtypes=[np.float64])
        ),
    )
)
def test_core_is_log_evidence_fuzz(a):
    """The raw extension: only C-order float64 2-D finite input may succeed."""
    out = _call(_core.is_log_evidence, a)
    if out is not None:
        _no_nan(*out)


# -------------------------------------------------------------------------------- ISAccumulator
@FUZZ
@given(
    dims=st.tuples(*[st.sampled_from([1, 2, 3, 1, 2, 3, 0])] * 3),
    ls2=st.one_of(st.floats(-5, 5), st.floats(-5, 5), st.sampled_from(SPECIALS)),
    raw=st.booleans(),
    data=st.data(),
)
def test_is_accumulator_fuzz(dims, ls2, raw, data):
    B, K, D = dims
    x = data.draw(maybe_bad((B, D)))
    x_mean = data.draw(maybe_bad((B, K, D)))
    log_prior = data.draw(maybe_bad((B, K)))
    log_proposal = data.draw(maybe_bad((B, K)))
    cls = _core.ISAccumulator if raw else vsm.ISAccumulator
    acc = _call(cls, x, ls2)
    if acc is None:
        return
    assert math.isfinite(ls2), "non-finite log_sigma2 accepted"
    if _call(acc.add, x_mean, log_prior, log_proposal) is None and acc.n_samples == 0:
        # a rejected chunk leaves the state unchanged; result() of nothing must be clean too
        _call(acc.result)
        return
    res = _call(acc.result)
    if res is None:
        return
    log_p, ess, score, sm = res if raw else (res.log_p, res.ess, res.score, res.sm_loss)
    B, D = _np(x).shape
    assert _np(log_p).shape == _np(ess).shape == _np(sm).shape == (B,)
    assert _np(score).shape == (B, D)
    _no_nan(log_p, ess, score, sm)


# -------------------------------------------------------------------------------- grid / toy
@st.composite
def axes(draw):
    n = draw(st.sampled_from([3, 4, 5, 6, 3, 4, 5, 6, 0, 1, 2]))
    kind = draw(st.sampled_from(["uniform", "uniform", "uniform", "random", "bad"]))
    if kind == "uniform":
        ax = np.linspace(-2.0, 2.0, n)
    elif kind == "random":
        ax = np.sort(draw(hnp.arrays(np.float64, n, elements=st.floats(-3, 3))))
    else:
        ax = draw(arrays(max_dims=2))
    return ax


@FUZZ
@given(
    ax=st.sampled_from([1, 2, 1, 2, 0, 3]).flatmap(
        lambda k: st.lists(axes(), min_size=k, max_size=k)
    ),
    batch=st.sampled_from([1, 2, 0]),
    raw=st.booleans(),
    data=st.data(),
)
def test_grid_posterior_fuzz(ax, batch, raw, data):
    grid = tuple(np.shape(a)[0] if np.ndim(a) else 1 for a in ax)
    lj = data.draw(maybe_bad((batch, *grid) if not raw else (batch, math.prod(grid))))
    if raw:
        out = _call(_core.grid_summary, lj, list(ax))
        if out is not None:
            _no_nan(*out)
        return
    post = _call(vsm.toy.grid_posterior, lj, tuple(ax))
    if post is None:
        return
    _no_nan(post.log_z, post.mean, post.cov, post.density)
    assert np.all(post.density >= 0)
    kl = _call(post.kl_from, np.zeros(len(ax)), np.eye(len(ax)))
    if kl is not None:
        _no_nan(kl)


@FUZZ
@given(
    model=st.sampled_from(["sym", "soft", "relu", "bias", "linear", "nope", ""]),
    x=st.one_of(
        arrays(max_dims=3),
        st.integers(1, 3).flatmap(lambda b: near_valid((b,))),
        st.integers(1, 3).flatmap(lambda b: near_valid((b, 1))),
    ),
    n=st.one_of(
        st.integers(3, 12), st.integers(3, 12), st.integers(-2, 2), st.sampled_from([2.5, True])
    ),
    sigma=st.one_of(st.none(), st.floats(0.1, 3), st.floats(-1, 3), st.sampled_from(SPECIALS)),
    lohi=st.one_of(st.just((-3.0, 3.0)), st.tuples(st.floats(-4, 4), st.floats(-4, 4))),
)
def test_toy_posterior_fuzz(model, x, n, sigma, lohi):
    post = _call(vsm.toy.posterior, model, x, lo=lohi[0], hi=lohi[1], n=n, sigma=sigma)
    if post is None:
        return
    assert sigma is None or (math.isfinite(sigma) and sigma > 0), f"sigma={sigma} accepted"
    _no_nan(post.log_z, post.mean, post.cov, post.density)
    assert np.all(np.isfinite(post.log_z))


@pytest.mark.parametrize("fn", [_core.is_log_evidence, _core.grid_fd_scores])
def test_core_rejects_non_arrays_cleanly(fn):
    for bad in (None, "abc", 3.0, [[1.0, 2.0]], object()):
        args = (bad,) if fn is _core.is_log_evidence else (bad, [np.linspace(0, 1, 5)])
        with pytest.raises(CLEAN):
            fn(*args)
