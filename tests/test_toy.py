"""Tests of vsm.toy (Rust grid quadrature): closed forms of the linear-Gaussian model, symmetry of
"sym", analytic scores, KL/FD of Gaussian and mixture q, and agreement with the NumPy twins."""

from __future__ import annotations

import math

import _cases as C
import numpy as np
import pytest
import torch
import vsm
from _cases import META, NAN, OK, TE, VE, seeded
from hypothesis import given
from hypothesis import strategies as st
from vsm import _core, toy
from vsm import reference_rust as R


def gauss_kl(m1, S1, m2, S2):
    """KL(N(m1,S1) ‖ N(m2,S2))."""
    L = len(m1)
    P2 = np.linalg.inv(S2)
    d = m2 - m1
    return 0.5 * (
        np.trace(P2 @ S1) + d @ P2 @ d - L + np.linalg.slogdet(S2)[1] - np.linalg.slogdet(S1)[1]
    )


def gauss_fd(m1, S1, m2, S2):
    """½ E_{N(m1,S1)} ‖∇log N(m1,S1) − ∇log N(m2,S2)‖²."""
    P1, P2 = np.linalg.inv(S1), np.linalg.inv(S2)
    A = P2 - P1  # difference of scores: A (z − m1) + P2 (m1 − m2)
    c = P2 @ (m1 - m2)
    return 0.5 * (np.trace(A @ S1 @ A.T) + c @ c)


W2 = np.array([[1.0, -0.5], [0.3, 0.8], [0.2, 1.2]])
B2 = np.array([0.1, -0.2, 0.3])


def test_linear_1d_closed_form():
    x = np.array([-1.3, 0.0, 0.4, 2.5])
    post = vsm.toy.posterior("linear", x, lo=-8, hi=8, n=801, W=[[1.5]], b=[0.2], sigma=0.8)
    lz, m, c = vsm.toy.linear_closed_form(x, W=[[1.5]], b=[0.2], sigma=0.8)
    np.testing.assert_allclose(post.log_z, lz, rtol=1e-8)
    np.testing.assert_allclose(post.mean, m, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(post.cov, c, rtol=1e-8)
    assert post.density.shape == (4, 801)
    np.testing.assert_allclose(post.density.sum(-1) * (16 / 800), 1.0, rtol=1e-12)


def test_linear_2d_closed_form_with_batch_dims():
    x = np.random.default_rng(0).normal(size=(2, 2, 3))
    post = vsm.toy.posterior("linear", x, lo=-8, hi=8, n=321, W=W2, b=B2, sigma=0.7)
    lz, m, c = vsm.toy.linear_closed_form(x, W=W2, b=B2, sigma=0.7)
    assert post.log_z.shape == (2, 2) and post.mean.shape == (2, 2, 2)
    assert post.cov.shape == (2, 2, 2, 2) and post.density.shape == (2, 2, 321, 321)
    np.testing.assert_allclose(post.log_z, lz, rtol=1e-8)
    np.testing.assert_allclose(post.mean, m, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(post.cov, c, rtol=1e-8)


@pytest.mark.parametrize("use_grid", [False, True])
def test_kl_fd_gaussian_q_against_closed_forms(use_grid):
    x = np.array([[0.5, 1.0, -0.4], [-1.0, 0.2, 0.9]])
    _lz, m, c = vsm.toy.linear_closed_form(x, W=W2, b=B2, sigma=0.7)
    if use_grid:
        ax = np.linspace(-7, 7, 281)
        lj, _ = vsm.toy.log_joint("linear", x, R.grid_points([ax, ax]), W=W2, b=B2, sigma=0.7)
        post = vsm.toy.grid_posterior(lj.reshape(2, 281, 281), (ax, ax))
    else:
        post = vsm.toy.posterior("linear", x, lo=-7, hi=7, n=281, W=W2, b=B2, sigma=0.7)
    qm = np.array([[0.2, -0.3], [0.5, 0.1]])
    qc = np.array([[[0.5, 0.1], [0.1, 0.3]], [[0.2, -0.05], [-0.05, 0.4]]])
    kl, fd = post.kl_from(qm, qc), post.fd_from(qm, qc)
    for i in range(2):
        assert kl[i] == pytest.approx(gauss_kl(qm[i], qc[i], m[i], c[i]), rel=1e-8)
        assert fd[i] == pytest.approx(gauss_fd(qm[i], qc[i], m[i], c[i]), rel=1e-8)
    # q = p gives zero divergence.
    np.testing.assert_allclose(post.kl_from(m, c), 0.0, atol=1e-8)
    np.testing.assert_allclose(post.fd_from(m, c), 0.0, atol=1e-8)


def test_mixture_q_reduces_and_matches_twin():
    post = vsm.toy.posterior("sym", np.array([2.0, -1.0]), n=120)
    qm = np.array([[1.2, 1.4], [-1.3, -1.1]])
    qc = np.array([[[0.3, -0.1], [-0.1, 0.2]], [[0.25, 0.0], [0.0, 0.35]]])
    qw = np.array([0.4, 0.6])
    # Two identical components equal the single Gaussian.
    same = post.kl_from(np.stack([qm[0], qm[0]]), np.stack([qc[0], qc[0]]), [0.3, 0.7])
    np.testing.assert_allclose(same, post.kl_from(qm[0], qc[0]), rtol=1e-12)
    kl, fd = post.kl_from(qm, qc, qw), post.fd_from(qm, qc, qw)
    x = np.array([[2.0], [-1.0]])
    args = (np.tile(qw, (2, 1)), np.tile(qm, (2, 1, 1)), np.tile(qc, (2, 1, 1, 1)))
    kl_t, fd_t = R.toy_divergences("sym", x, post.log_z, *args)
    np.testing.assert_allclose(kl, kl_t, rtol=1e-10)
    np.testing.assert_allclose(fd, fd_t, rtol=1e-10)
    assert np.all(kl > 0) and np.all(fd > 0)


def test_sym_symmetries():
    post = vsm.toy.posterior("sym", np.array([2.0, 0.5, -1.0]), n=101)
    d = post.density
    np.testing.assert_allclose(d, d[:, ::-1, ::-1], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(d, np.swapaxes(d, 1, 2), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(post.mean, 0.0, atol=1e-12)
    np.testing.assert_allclose(post.cov[:, 0, 0], post.cov[:, 1, 1], rtol=1e-12)
    # x = 2 puts the mass on the hyperbola branches in quadrants I and III: positive correlation.
    assert post.cov[0, 0, 1] > 0 and post.cov[2, 0, 1] < 0


@pytest.mark.parametrize("model", ["sym", "soft", "relu", "bias"])
def test_scores_are_gradients(model):
    z = np.random.default_rng(1).normal(size=(20, 2)) * 1.5
    z = z[np.abs(z[:, 0]) > 0.05]  # away from relu's kink
    x = np.array([0.7, -1.2])
    _lj, sc = vsm.toy.log_joint(model, x, z)
    h = 1e-6
    for a in range(2):
        e = np.zeros(2)
        e[a] = h
        fd = (vsm.toy.log_joint(model, x, z + e)[0] - vsm.toy.log_joint(model, x, z - e)[0]) / (
            2 * h
        )
        np.testing.assert_allclose(sc[..., a], fd, rtol=1e-6, atol=1e-6)


def test_soft_likelihood_values():
    z = np.array([[3.0, 0.5], [-3.0, 0.5], [0.0, 2.0]])
    lj, _ = vsm.toy.log_joint("soft", 1.0, z)
    g = np.array([3.0 * 0.5, 0.0, np.log(2) / 10 * 2.0])
    want = (
        -0.5 * (1.0 - g) ** 2 - 0.5 * np.log(2 * np.pi) - 0.5 * (z**2).sum(-1) - np.log(2 * np.pi)
    )
    np.testing.assert_allclose(lj, want, rtol=1e-14)


@pytest.mark.parametrize("model", ["sym", "soft", "relu", "bias"])
def test_models_match_numpy_twin(model):
    x = np.array([[2.0], [-0.3], [1.1]])
    ax = [np.linspace(-3, 3, 61)] * 2
    got = _core.toy_posterior(model, x, ax)
    want = R.toy_posterior(model, x, ax)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-13)


def test_fd_scores_second_order():
    """Finite-difference scores on a user grid converge as O(Δ²)."""
    errs = []
    for n in (41, 81, 161):
        ax = np.linspace(-3, 3, n)
        z = R.grid_points([ax, ax])
        lj, sc = vsm.toy.log_joint("soft", np.array([1.0]), z, alpha=2.0)
        lj, sc = lj.reshape(1, -1), sc.reshape(1, -1, 2)
        got = _core.grid_fd_scores(lj, [ax, ax])
        errs.append(np.abs(got - sc).max())
        np.testing.assert_allclose(got, R.grid_fd_scores(lj, [ax, ax]), rtol=1e-10, atol=1e-10)
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(rates > 1.8), (errs, rates)


@given(
    bshape=st.sampled_from([(), (1,), (3,), (2, 2)]),
    n1=st.integers(3, 17),
    n2=st.one_of(st.none(), st.integers(3, 13)),
    seed=st.integers(0, 2**16),
)
def test_grid_posterior_matches_twin(bshape, n1, n2, seed):
    rng = np.random.default_rng(seed)
    axes = [np.linspace(-1.0, 2.0, n1)] + ([] if n2 is None else [np.linspace(0.5, 1.5, n2)])
    shape = tuple(len(a) for a in axes)
    lj = rng.normal(scale=3.0, size=(*bshape, *shape))
    post = vsm.toy.grid_posterior(lj, tuple(axes))
    want = R.grid_summary(lj.reshape(-1, int(np.prod(shape))), axes)
    L = len(axes)
    np.testing.assert_allclose(post.log_z.reshape(-1), want[0], rtol=1e-12)
    np.testing.assert_allclose(post.mean.reshape(-1, L), want[1], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(post.cov.reshape(-1, L, L), want[2], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(post.density.reshape(want[3].shape), want[3], rtol=1e-11)
    qm = np.full(L, 0.5 if L == 1 else 0.8)
    qc = np.eye(L) * 0.3
    B = want[0].shape[0]
    args = (np.ones((B, 1)), np.tile(qm, (B, 1, 1)), np.tile(qc, (B, 1, 1, 1)))
    try:
        kl = post.kl_from(qm, qc).reshape(-1)
    except ValueError as e:  # coarse grids may not resolve q: must say so, naming q_mean
        assert "q_mean" in str(e)
        return
    kl_t, fd_t = R.grid_divergences(lj.reshape(B, -1), axes, *args)
    np.testing.assert_allclose(kl, kl_t, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(post.fd_from(qm, qc).reshape(-1), fd_t, rtol=1e-9, atol=1e-10)


# ---- bad input (feeds tests/test_bad_input.py's matrix)
# Rows (id, kind, call, kwargs, expected) and tables as described in tests/_cases.py.
BAD_INPUT = [
    # ---------------------------------------------------------------- toy.posterior
    ("toy-ok", "valid", C.toy, dict, OK),
    ("toy-model", "option", C.toy, lambda: {"model": "nope"}, VE("model")),
    ("toy-x-str", "dtype", C.toy, lambda: {"x": np.array(["a"])}, TE("x")),
    ("toy-x-nan", "non-finite", C.toy, lambda: {"x": np.array([NAN])}, VE("x")),
    ("toy-x-empty", "empty", C.toy, lambda: {"x": np.zeros(0)}, VE("x")),
    (
        "toy-x-shape",
        "shape",
        C.toy,
        lambda: {"model": "linear", "W": np.ones((2, 1)), "x": np.zeros((3, 3))},
        VE("x"),
    ),
    ("toy-n-small", "option", C.toy, lambda: {"n": 2}, VE("n")),
    ("toy-n-float", "option", C.toy, lambda: {"n": 20.0}, TE("n")),
    ("toy-lohi", "option", C.toy, lambda: {"lo": 1.0, "hi": -1.0}, VE("lo")),
    ("toy-lo-nan", "non-finite", C.toy, lambda: {"lo": NAN}, VE("lo")),
    ("toy-sigma-neg", "option", C.toy, lambda: {"sigma": -1.0}, VE("sigma")),
    ("toy-sigma-nan", "non-finite", C.toy, lambda: {"sigma": NAN}, VE("sigma")),
    ("toy-param", "option", C.toy, lambda: {"gamma": 1.0}, VE("gamma")),
    ("toy-sigma-str", "option", C.toy, lambda: {"sigma": "a"}, TE("sigma")),
    ("toy-alpha-nan", "non-finite", C.toy, lambda: {"model": "soft", "alpha": NAN}, VE("alpha")),
    ("toy-x-meta", "device", C.toy, lambda: {"x": torch.zeros(2, device=META)}, VE("x")),
    (
        "toy-b-len",
        "shape",
        C.toy,
        lambda: {"model": "linear", "W": np.ones((2, 1)), "b": np.ones(3), "x": np.zeros((3, 2))},
        VE("b"),
    ),
    (
        "toy-W-nan",
        "non-finite",
        C.toy,
        lambda: {"model": "linear", "W": np.full((1, 1), NAN)},
        VE("W"),
    ),
    (
        "toy-W-empty",
        "empty",
        C.toy,
        lambda: {"model": "linear", "W": np.ones((0, 1)), "x": np.zeros(1)},
        VE("W"),
    ),
    ("toy-b-nan", "non-finite", C.toy, lambda: {"model": "linear", "b": np.array([NAN])}, VE("b")),
    ("toy-x-complex", "dtype", C.toy, lambda: {"x": np.zeros(2, complex)}, TE("x")),
    ("toy-x-f16", "dtype", C.toy, lambda: {"x": np.zeros(2, np.float16)}, TE("x")),
    ("toy-x-list", "type", C.toy, lambda: {"x": [object()]}, TE("x")),
    ("toy-lo-str", "option", C.toy, lambda: {"lo": "a"}, TE("lo")),
    ("toy-hi-none", "option", C.toy, lambda: {"hi": None}, TE("hi")),
    ("toy-hi-inf", "non-finite", C.toy, lambda: {"hi": math.inf}, VE("lo")),
    ("toy-n-huge", "option", C.toy, lambda: {"n": 10**6}, VE("n")),
    ("toy-n-bool", "option", C.toy, lambda: {"n": True}, TE("n")),
    ("toy-alpha-bool", "option", C.toy, lambda: {"model": "soft", "alpha": True}, TE("alpha")),
    ("toy-alpha-neg", "option", C.toy, lambda: {"model": "soft", "alpha": -1.0}, VE("alpha")),
    ("toy-sigma-zero", "option", C.toy, lambda: {"sigma": 0.0}, VE("sigma")),
    (
        "toy-W-rank",
        "shape",
        C.toy,
        lambda: {"model": "linear", "W": np.ones((1, 1, 1)), "x": np.zeros(1)},
        VE("W"),
    ),
    ("toy-alpha-sym", "option", C.toy, lambda: {"alpha": 2.0}, VE("alpha")),
    (
        "toy-W-latent",
        "shape",
        C.toy,
        lambda: {"model": "linear", "W": np.ones((2, 3)), "x": np.array([1.0, 2.0])},
        VE("W"),
    ),
    *C.dtype_rows("toy", C.toy, "x", (2,)),
    # ---------------------------------------------------------------- toy.grid_posterior
    ("grid-ok", "valid", C.grid, dict, OK),
    ("grid-axes-type", "type", C.grid, lambda: {"axes": 1.0}, TE("axes")),
    ("grid-axes-count", "shape", C.grid, lambda: {"axes": ()}, VE("axes")),
    (
        "grid-axes-empty",
        "empty",
        C.grid,
        lambda: {"axes": (np.zeros(0),), "log_joint": np.zeros((2, 0))},
        VE("axes"),
    ),
    (
        "grid-axes-meta",
        "device",
        C.grid,
        lambda: {"axes": (torch.zeros(11, device=META),)},
        VE("axes"),
    ),
    (
        "grid-lj-bool",
        "dtype",
        C.grid,
        lambda: {"log_joint": np.zeros((2, 11), bool)},
        TE("log_joint"),
    ),
    (
        "grid-lj-f16",
        "dtype",
        C.grid,
        lambda: {"log_joint": np.zeros((2, 11), np.float16)},
        TE("log_joint"),
    ),
    ("grid-lj-list", "type", C.grid, lambda: {"log_joint": [object()] * 11}, TE("log_joint")),
    ("grid-lj-0d", "shape", C.grid, lambda: {"log_joint": np.float64(0.0)}, VE("log_joint")),
    ("grid-axes-decreasing", "option", C.grid, lambda: {"axes": (C.AX[::-1],)}, VE("axes")),
    ("grid-axes-rank", "shape", C.grid, lambda: {"axes": (np.zeros((3, 3)),)}, VE("axes")),
    (
        "grid-axes-nonuniform",
        "option",
        C.grid,
        lambda: {"axes": (np.r_[C.AX[:-1], 10.0],)},
        VE("axes"),
    ),
    (
        "grid-axes-short",
        "shape",
        C.grid,
        lambda: {"axes": (C.AX[:2],), "log_joint": np.zeros((2, 2))},
        VE("axes"),
    ),
    ("grid-lj-shape", "shape", C.grid, lambda: {"log_joint": np.zeros((2, 12))}, VE("log_joint")),
    ("grid-lj-str", "dtype", C.grid, lambda: {"log_joint": np.array(["a"] * 11)}, TE("log_joint")),
    (
        "grid-lj-nan",
        "non-finite",
        C.grid,
        lambda: {"log_joint": np.full((2, 11), NAN)},
        VE("log_joint"),
    ),
    (
        "grid-lj-allneginf",
        "non-finite",
        C.grid,
        lambda: {"log_joint": np.full((2, 11), -math.inf)},
        VE("log_joint"),
    ),
    ("grid-axes-three", "shape", C.grid, lambda: {"axes": (C.AX,) * 3}, VE("axes")),
    ("grid-axes-nan", "non-finite", C.grid, lambda: {"axes": (np.r_[C.AX[:-1], NAN],)}, VE("axes")),
    (
        "grid-lj-complex",
        "dtype",
        C.grid,
        lambda: {"log_joint": np.zeros((2, 11), complex)},
        TE("log_joint"),
    ),
    (
        "grid-lj-meta",
        "device",
        C.grid,
        lambda: {"log_joint": torch.zeros(2, 11, device=META)},
        VE("log_joint"),
    ),
    ("grid-lj-empty", "empty", C.grid, lambda: {"log_joint": np.zeros((0, 11))}, VE("log_joint")),
    (
        "grid-lj-posinf",
        "non-finite",
        C.grid,
        lambda: {"log_joint": np.full((2, 11), math.inf)},
        VE("log_joint"),
    ),
    *C.dtype_rows("grid", C.grid, "log_joint", (2, 11)),
    # ---------------------------------------------------------------- Posterior.kl_from / fd_from
    *[
        row
        for name, call in (
            ("kl", C.div("kl_from")),
            ("fd", C.div("fd_from")),
            ("kl-grid", C.div("kl_from", "grid")),
            ("fd-grid", C.div("fd_from", "grid")),
        )
        for row in (
            (f"{name}-ok", "valid", call, dict, OK),
            (
                f"{name}-qm-obj",
                "type",
                call,
                lambda: {"q_mean": [object(), object()]},
                TE("q_mean"),
            ),
            (f"{name}-qc-none", "type", call, lambda: {"q_cov": None}, TE("q_cov")),
            (
                f"{name}-qm-str",
                "dtype",
                call,
                lambda: {"q_mean": np.array(["a", "b"])},
                TE("q_mean"),
            ),
            (
                f"{name}-qm-complex",
                "dtype",
                call,
                lambda: {"q_mean": np.zeros(2, complex)},
                TE("q_mean"),
            ),
            (
                f"{name}-qc-f16",
                "dtype",
                call,
                lambda: {"q_cov": np.eye(2, dtype=np.float16)},
                TE("q_cov"),
            ),
            (
                f"{name}-qw-bool",
                "dtype",
                call,
                lambda: {"q_mean": np.zeros((1, 2)), "q_cov": np.eye(2)[None], "q_weights": [True]},
                TE("q_weights"),
            ),
            (f"{name}-qm-shape", "shape", call, lambda: {"q_mean": np.zeros(3)}, VE("q_mean")),
            (f"{name}-qc-shape", "shape", call, lambda: {"q_cov": np.eye(3)}, VE("q_cov")),
            (f"{name}-qm-batch", "shape", call, lambda: {"q_mean": np.zeros((3, 2))}, VE("q_mean")),
            (
                f"{name}-qc-batch",
                "shape",
                call,
                lambda: {"q_cov": np.stack([np.eye(2)] * 3)},
                VE("q_cov"),
            ),
            (
                f"{name}-qw-shape",
                "shape",
                call,
                lambda: {
                    "q_mean": np.zeros((1, 2)),
                    "q_cov": np.eye(2)[None],
                    "q_weights": [1.0, 1.0],
                },
                VE("q_weights"),
            ),
            (
                f"{name}-q-empty",
                "empty",
                call,
                lambda: {
                    "q_mean": np.zeros((0, 2)),
                    "q_cov": np.zeros((0, 2, 2)),
                    "q_weights": np.zeros(0),
                },
                VE("q_weights"),
            ),
            (
                f"{name}-qm-meta",
                "device",
                call,
                lambda: {"q_mean": torch.zeros(2, device=META)},
                VE("q_mean"),
            ),
            (
                f"{name}-qm-nan",
                "non-finite",
                call,
                lambda: {"q_mean": np.array([0.0, NAN])},
                VE("q_mean"),
            ),
            (
                f"{name}-qc-inf",
                "non-finite",
                call,
                lambda: {"q_cov": np.full((2, 2), math.inf)},
                VE("q_cov"),
            ),
            (
                f"{name}-qw-nan",
                "non-finite",
                call,
                lambda: {"q_mean": np.zeros((1, 2)), "q_cov": np.eye(2)[None], "q_weights": [NAN]},
                VE("q_weights"),
            ),
            (f"{name}-qc-notpd", "option", call, lambda: {"q_cov": -np.eye(2)}, VE("q_cov")),
            (
                f"{name}-qc-asym",
                "option",
                call,
                lambda: {"q_cov": np.array([[1.0, 0.5], [0.0, 1.0]])},
                VE("q_cov"),
            ),
            (
                f"{name}-qw-neg",
                "option",
                call,
                lambda: {
                    "q_mean": np.zeros((2, 2)),
                    "q_cov": np.stack([np.eye(2)] * 2),
                    "q_weights": [1.0, -0.5],
                },
                VE("q_weights"),
            ),
            (
                f"{name}-qw-zero",
                "option",
                call,
                lambda: {"q_mean": np.zeros((1, 2)), "q_cov": np.eye(2)[None], "q_weights": [0.0]},
                VE("q_weights"),
            ),
        )
    ],
    (
        "kl-grid-neginf",
        "non-finite",
        lambda **kw: C.grid(
            log_joint=np.where(np.abs(C.AX) > 2.0, -math.inf, -0.5 * C.AX**2)
        ).kl_from([0.0], [[1.0]]),
        dict,
        VE("log_joint"),
    ),
    (
        "kl-grid-q-unresolved",
        "option",
        C.div("kl_from", "grid"),
        lambda: {"q_mean": np.full(2, 1e6), "q_cov": 1e-6 * np.eye(2)},
        VE("q_mean"),
    ),
]
test_bad_input_raises_naming_argument = C.raises_test(BAD_INPUT)


def _l_div(method, kind):
    def row(lay):
        qm, qc = lay(seeded(1, 2, 3, 2).numpy() * 0.3), lay(C.spd(2, 2, 3) * 0.3)
        qw = lay(seeded(3, 2, 3).numpy() ** 2 + 0.1)
        return getattr(C.small_posterior(kind), method)(qm, qc, qw)

    return row


def _l_toy(lay):
    return toy.posterior("sym", lay(seeded(1, 2, 3).numpy()), n=15)


def _l_toy_linear(lay):
    w = lay(seeded(2, 2, 2).numpy())
    return toy.posterior("linear", lay(seeded(1, 3, 2).numpy()), n=9, W=w)


def _l_grid(lay):
    ax = np.linspace(-3.0, 3.0, 9)
    lj = -0.5 * (ax[:, None] ** 2 + ax[None, :] ** 2) + seeded(1, 2, 9, 9).numpy() * 0.1
    return toy.grid_posterior(lay(lj), (lay(ax), lay(ax)))


LAYOUT_ROWS = {
    "toy.posterior": _l_toy,
    "toy.posterior-linear": _l_toy_linear,
    "toy.grid_posterior": _l_grid,
    "kl_from": _l_div("kl_from", "toy"),
    "fd_from": _l_div("fd_from", "toy"),
    "kl_from-grid": _l_div("kl_from", "grid"),
    "fd_from-grid": _l_div("fd_from", "grid"),
}
test_non_contiguous_inputs_give_the_contiguous_result = C.layout_test(LAYOUT_ROWS)


def _x_toy_x(e):
    x = np.broadcast_to(np.array([0.7]), (4,))
    return toy.posterior("soft", x if e else np.ascontiguousarray(x), n=11)


def _x_grid(e):
    ax = np.linspace(-2.0, 2.0, 7)
    lj = np.broadcast_to(-0.5 * ax**2, (3, 7))
    return toy.grid_posterior(lj if e else np.ascontiguousarray(lj), (ax,))


def _x_div(e):
    qc = np.broadcast_to(C.spd(2) * 0.3, (2, 3, 2, 2))
    qw = np.broadcast_to(np.array([0.2, 0.3, 0.5]), (2, 3))
    c = (lambda a: a) if e else np.ascontiguousarray
    post, qm = C.small_posterior("toy"), seeded(1, 2, 3, 2).numpy() * 0.3
    return post.kl_from(qm, c(qc), c(qw)), post.fd_from(qm, c(qc), c(qw))


EXPANDED_ROWS = {"toy_x": _x_toy_x, "grid": _x_grid, "div": _x_div}
test_expanded_inputs_give_the_contiguous_result = C.expanded_test(EXPANDED_ROWS)


_AX5 = np.linspace(-1, 1, 5)


def _raises(exc, match, fn, *a, **k):
    with pytest.raises(exc, match=match):
        fn(*a, **k)


def test_toy_core_direct_bad():
    """The compiled core checks its arguments itself (not only through the wrappers)."""
    ax = [np.linspace(-1, 1, 5)] * 2
    _raises(ValueError, "axes", _core.toy_posterior, "sym", np.zeros((1, 1)), ax[:1])
    _raises(ValueError, "x", _core.toy_posterior, "sym", np.zeros((1, 2)), ax)
    _raises(ValueError, "z", _core.toy_log_joint, "sym", np.zeros((1, 1)), np.zeros((3, 1)))
    # log_z of the wrong length; an all-ones (singular) q_cov; q of dimension 3 for a 2-D model
    for arg, n, k, m in (("log_z", 2, 3, 2), ("q_cov", 1, 1, 2), ("q_mean", 1, 1, 3)):
        x, log_z, q_weights = np.zeros((n, 1)), np.zeros(k), np.ones((n, 1))
        q_means, q_covs = np.zeros((n, 1, m)), np.ones((n, 1, m, m))
        _raises(ValueError, arg, _core.toy_divergences, "sym", x, log_z, q_weights, q_means, q_covs)


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
    g = vsm.toy.grid_posterior(lj, (_AX5,))
    np.testing.assert_allclose(g.log_z, vsm.toy.grid_posterior(lj.copy(), (_AX5,)).log_z)
