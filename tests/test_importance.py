"""Tests of vsm.importance, level by level: vsm.is_log_evidence (Rust log-mean-exp and ESS)
against scipy.special.logsumexp and its gradient; vsm.ISAccumulator (Rust streaming IS): chunking
invariance and agreement with a direct computation and the NumPy twin; vsm.is_evaluate:
linear-Gaussian closed forms and its argument checks."""

from __future__ import annotations

import math

import _cases as C
import numpy as np
import pytest
import torch
import vsm
from _cases import F64, META, NAN, OK, TE, VE, B, D, seeded, t
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import logsumexp
from vsm import _core
from vsm import reference_rust as R

# ------------------------------------------------------------------------- log weights level


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
def test_log_evidence_torch_in_torch_out(dtype):
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


def test_old_evidence_module_still_imports():
    from vsm.evidence import is_log_evidence

    assert is_log_evidence is vsm.is_log_evidence is vsm.importance.is_log_evidence


# ---------------------------------------------------------------------------- streaming level

LN2PI = math.log(2 * math.pi)


def direct(x, ls2, xm, lp, lq):
    """One-shot evaluation of MATH.md Part I "Evaluation" with all K samples at once."""
    s2 = np.exp(ls2)
    D = x.shape[1]
    f = (xm - x[:, None]) / s2
    lw = -0.5 * ((xm - x[:, None]) ** 2).sum(-1) / s2 - 0.5 * D * (LN2PI + ls2) + lp - lq
    m = lw.max(1, keepdims=True)
    w = np.exp(lw - m)
    wn = w / w.sum(1, keepdims=True)
    log_p = np.log(w.sum(1)) + m[:, 0] - np.log(lw.shape[1])
    ess = w.sum(1) ** 2 / (w**2).sum(1)
    score = (wn[..., None] * f).sum(1)
    sm = (wn * ((f**2).sum(-1) - D / s2)).sum(1) - 0.5 * (score**2).sum(1)
    return log_p, ess, score, sm


@given(
    B=st.integers(1, 5),
    D=st.sampled_from([1, 2, 7, 9, 33]),
    chunks=st.lists(st.integers(1, 9), min_size=1, max_size=4),
    ls2=st.floats(-2.0, 1.0),
    seed=st.integers(0, 2**16),
    f32=st.booleans(),
)
def test_chunked_matches_direct_and_twin(B, D, chunks, ls2, seed, f32):
    rng = np.random.default_rng(seed)
    K = sum(chunks)
    x = rng.normal(size=(B, D))
    xm = rng.normal(size=(B, K, D))
    if f32:
        xm = xm.astype(np.float32)
    lp, lq = rng.normal(size=(B, K)) * 2, rng.normal(size=(B, K))
    acc = vsm.ISAccumulator(x, ls2)
    twin = R.ISAccumulatorNumpy(x, ls2)
    k0 = 0
    for c in chunks:
        sl = slice(k0, k0 + c)
        acc.add(xm[:, sl], lp[:, sl], lq[:, sl])
        twin.add(xm[:, sl], lp[:, sl], lq[:, sl])
        k0 += c
    assert acc.n_samples == K
    r = acc.result()
    for got, want, tw in zip(
        (r.log_p, r.ess, r.score, r.sm_loss),
        direct(x, ls2, xm.astype(np.float64), lp, lq),
        twin.result(),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(got, tw, rtol=1e-9, atol=1e-9)


def test_extreme_weights_are_stable():
    x = np.zeros((2, 3))
    xm = np.zeros((2, 4, 3))
    xm[0] += 40.0  # log w ≈ −2400: exp underflows without rescaling
    lp = np.array([[0.0, -1e30, 5.0, 0.0], [700.0, 0.0, 0.0, 0.0]])
    acc = vsm.ISAccumulator(x, 0.0)
    acc.add(xm[:, :2], lp[:, :2], np.zeros((2, 2)))
    acc.add(xm[:, 2:], lp[:, 2:], np.zeros((2, 2)))
    r = acc.result()
    want = direct(x, 0.0, xm, lp, np.zeros((2, 4)))
    np.testing.assert_allclose(r.log_p, want[0], rtol=1e-13)
    np.testing.assert_allclose(r.ess, want[1], rtol=1e-12)
    assert np.all(np.isfinite(r.score)) and np.all(np.isfinite(r.sm_loss))


def test_zero_weight_rows_give_minus_inf():
    acc = vsm.ISAccumulator(np.zeros((2, 2)), 0.0)
    lp = np.array([[-np.inf, -np.inf], [0.0, 0.0]])
    acc.add(np.zeros((2, 2, 2)), lp, np.zeros((2, 2)))
    r = acc.result()
    assert r.log_p[0] == -np.inf and r.ess[0] == 0 and np.isnan(r.sm_loss[0])
    assert np.isfinite(r.log_p[1]) and r.ess[1] == pytest.approx(2.0)


def test_accumulator_torch_in_torch_out():
    x = torch.randn(3, 4, dtype=torch.float32)
    acc = vsm.ISAccumulator(x, torch.tensor(-0.5))
    acc.add(torch.randn(3, 6, 4), torch.randn(3, 6), torch.randn(3, 6, dtype=torch.float64))
    r = acc.result()
    assert r.log_p.dtype == torch.float32 and r.score.shape == (3, 4) and r.sm_loss.shape == (3,)


# ------------------------------------------------------------------------- model driver level


class LinearVAE(torch.nn.Module):
    """x = W z + b + σ ε with the exact posterior as encoder (WᵀW diagonal → diagonal posterior)."""

    def __init__(self, W, b, sigma):
        super().__init__()
        self.W = torch.as_tensor(W, dtype=torch.float64)
        self.b = torch.as_tensor(b, dtype=torch.float64)
        self.log_sigma2 = torch.nn.Parameter(torch.tensor(2 * math.log(sigma), dtype=torch.float64))
        self.latent_dim = self.W.shape[1]
        self.data_shape = (self.W.shape[0],)
        s2 = sigma**2
        self.C = torch.linalg.inv(
            torch.eye(self.latent_dim, dtype=torch.float64) + self.W.T @ self.W / s2
        )
        self.s2 = s2

    def encode(self, x):
        mu = (x - self.b) @ self.W @ self.C.T / self.s2
        return mu, torch.log(torch.diagonal(self.C)).expand_as(mu)

    def decode(self, z):
        return z @ self.W.T + self.b


W = np.array([[1.0, 0.5], [0.0, 1.0], [-1.0, 0.5]])  # orthogonal columns
BIAS = np.array([0.2, -0.1, 0.4])
SIGMA = 0.5


def closed_form(x):
    S = W @ W.T + SIGMA**2 * np.eye(3)
    P = np.linalg.inv(S)
    r = x - BIAS
    log_p = -0.5 * (3 * LN2PI + np.linalg.slogdet(S)[1] + np.einsum("bi,ij,bj->b", r, P, r))
    score = -r @ P
    sm = 0.5 * (score**2).sum(1) - np.trace(P)
    return log_p, score, sm


def test_is_evaluate_exact_posterior_proposal():
    model = LinearVAE(W, BIAS, SIGMA)
    x = torch.tensor([[0.3, -0.8, 1.1], [-1.0, 0.4, 0.0]], dtype=torch.float64)
    K = 20000
    g = torch.Generator().manual_seed(0)
    r = vsm.is_evaluate(model, x, n_samples=K, proposal="q", chunk=3000, generator=g)
    lp, s, sm = closed_form(x.numpy())
    # Exact posterior proposal: every weight equals p(x), so log p̂ is exact and ESS = K.
    np.testing.assert_allclose(r.log_p.numpy(), lp, rtol=1e-10)
    np.testing.assert_allclose(r.ess.numpy(), K, rtol=1e-10)
    # ŝ and Ĵ are plain Monte-Carlo means: check within 5 standard errors (closed-form variances).
    s2 = SIGMA**2
    C = model.C.numpy()
    Sf = W @ C @ W.T / s2**2  # Cov(f_k)
    se_s = np.sqrt(np.diag(Sf) / K)
    assert np.all(np.abs(r.score.numpy() - s) < 5 * se_s)
    for i in range(2):
        var_f2 = 2 * np.trace(Sf @ Sf) + 4 * s[i] @ Sf @ s[i]
        assert abs(r.sm_loss[i].item() - sm[i]) < 5 * math.sqrt(var_f2 / K) + 1e-12


def test_is_evaluate_prior_proposal_within_mc_error():
    model = LinearVAE(W, BIAS, 1.0)
    x = torch.tensor([[0.3, -0.8, 1.1], [-1.0, 0.4, 0.0]], dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    r = vsm.is_evaluate(model, x, n_samples=40000, proposal="prior", chunk=7000, generator=g)
    S = W @ W.T + np.eye(3)
    P = np.linalg.inv(S)
    rr = x.numpy() - BIAS
    lp = -0.5 * (3 * LN2PI + np.linalg.slogdet(S)[1] + np.einsum("bi,ij,bj->b", rr, P, rr))
    # Relative SE of the IS mean ≈ 1/sqrt(ESS); allow 5 of them.
    ess = r.ess.numpy()
    assert np.all(ess > 1000)
    assert np.all(np.abs(r.log_p.numpy() - lp) < 5 / np.sqrt(ess))
    np.testing.assert_allclose(r.score.numpy(), -rr @ P, atol=5 * 3 / np.sqrt(ess.min()))


@pytest.mark.parametrize(
    "kw, exc, name",
    [
        ({"proposal": "posterior"}, ValueError, "proposal"),
        ({"proposal": 1}, ValueError, "proposal"),
        ({"n_samples": 0}, ValueError, "n_samples"),
        ({"n_samples": -3}, ValueError, "n_samples"),
        ({"n_samples": 10.0}, TypeError, "n_samples"),
        ({"n_samples": True}, TypeError, "n_samples"),
        ({"chunk": 0}, ValueError, "chunk"),
        ({"chunk": "7"}, TypeError, "chunk"),
        ({"chunk": False}, TypeError, "chunk"),
    ],
)
def test_is_evaluate_bad_args(kw, exc, name):
    # The error contract: a non-int (bool included) is a TypeError, an int < 1 a ValueError.
    model = LinearVAE(W, BIAS, SIGMA)
    x = torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(exc, match=f"^{name}"):
        vsm.is_evaluate(model, x, **kw)


def test_is_evaluate_accepts_numpy_ints_and_every_proposal():
    model = LinearVAE(W, BIAS, SIGMA)
    x = torch.zeros(2, 3, dtype=torch.float64)
    for proposal in vsm.importance.IS_PROPOSALS:
        r = vsm.is_evaluate(
            model,
            x,
            n_samples=np.int64(20),
            chunk=np.int32(7),
            proposal=proposal,
            generator=torch.Generator().manual_seed(0),
        )
        assert r.log_p.shape == (2,)


def test_is_evaluate_with_mlp_vae_float32():
    from vsm.models import MLPVAE

    model = MLPVAE(data_shape=(2,), latent_dim=2, width=8, log_sigma2_init=math.log(0.1))
    x = torch.randn(5, 2)
    g = torch.Generator().manual_seed(3)
    r1 = vsm.is_evaluate(model, x, n_samples=300, chunk=70, generator=g)
    g = torch.Generator().manual_seed(3)
    r2 = vsm.is_evaluate(model, x, n_samples=300, chunk=70, generator=g)
    assert r1.log_p.dtype == torch.float32 and r1.score.shape == (5, 2)
    assert torch.isfinite(r1.log_p).all() and torch.isfinite(r1.sm_loss).all()
    assert torch.equal(r1.log_p, r2.log_p)  # reproducible from the generator
    assert ((r1.ess >= 1) & (r1.ess <= 300)).all()
    rp = vsm.is_evaluate(
        model, x, n_samples=3000, proposal="prior", generator=torch.Generator().manual_seed(4)
    )
    # Both proposals estimate the same log p(x) (loose: a few nats for an untrained model).
    assert (rp.log_p - r1.log_p).abs().max() < 3.0


# ---- bad input (feeds tests/test_bad_input.py's matrix)
# Rows (id, kind, call, kwargs, expected) and tables as described in tests/_cases.py.
def _one(value, *shape):
    """Zeros of ``shape`` with one entry (not the first) set to ``value``."""
    a = np.zeros(shape)
    a.flat[-2] = value
    return a


# is_log_evidence's rows (log weights level); merged into the tables below.
_ISLE_BAD_INPUT = [
    ("isle-ok", "valid", C.isle, dict, OK),
    ("isle-np-ok", "valid", C.isle, lambda: {"log_w": np.zeros((B, 5))}, OK),
    ("isle-list", "type", C.isle, lambda: {"log_w": [[0.0, 1.0]]}, TE("log_w")),
    (
        "isle-int",
        "dtype",
        C.isle,
        lambda: {"log_w": torch.zeros(B, 5, dtype=torch.int64)},
        TE("log_w"),
    ),
    (
        "isle-np-int",
        "dtype",
        C.isle,
        lambda: {"log_w": np.zeros((B, 5), dtype=np.int32)},
        TE("log_w"),
    ),
    ("isle-rank", "shape", C.isle, lambda: {"log_w": t(5)}, VE("log_w")),
    ("isle-empty-B", "empty", C.isle, lambda: {"log_w": t(0, 5)}, VE("log_w")),
    ("isle-empty-K", "empty", C.isle, lambda: {"log_w": np.zeros((B, 0))}, VE("log_w")),
    (
        "isle-nan",
        "non-finite",
        C.isle,
        lambda: {"log_w": torch.tensor([[0.0, NAN]], dtype=F64)},
        VE("log_w"),
    ),
    ("isle-inf", "non-finite", C.isle, lambda: {"log_w": np.array([[0.0, math.inf]])}, VE("log_w")),
    ("isle-meta", "device", C.isle, lambda: {"log_w": t(B, 5, device=META)}, VE("log_w")),
    ("isle-np-f16", "dtype", C.isle, lambda: {"log_w": np.zeros((B, 5), np.float16)}, TE("log_w")),
    ("isle-np-complex", "dtype", C.isle, lambda: {"log_w": np.zeros((B, 5), complex)}, TE("log_w")),
    ("isle-np-rank", "shape", C.isle, lambda: {"log_w": np.zeros((B, 5, 1))}, VE("log_w")),
    ("isle-np-empty-B", "empty", C.isle, lambda: {"log_w": np.zeros((0, 5))}, VE("log_w")),
    ("isle-torch-empty-K", "empty", C.isle, lambda: {"log_w": t(B, 0)}, VE("log_w")),
    (
        "isle-torch-inf",
        "non-finite",
        C.isle,
        lambda: {"log_w": torch.full((B, 5), math.inf, dtype=F64)},
        VE("log_w"),
    ),
    ("isle-np-nan", "non-finite", C.isle, lambda: {"log_w": np.array([[0.0, NAN]])}, VE("log_w")),
    ("isle-np-rank1", "shape", C.isle, lambda: {"log_w": np.zeros(3)}, VE("log_w")),
    *C.dtype_rows("isle", C.isle, "log_w", (B, 5)),
]


def _l_isle_torch(lay):
    return vsm.is_log_evidence(lay(seeded(1, B, 6)))


def _l_isle_np(lay):
    return vsm.is_log_evidence(lay(seeded(1, B, 6).numpy()))


_ISLE_LAYOUT_ROWS = {"is_log_evidence": _l_isle_torch, "is_log_evidence-np": _l_isle_np}


def _x_isle(e):
    lw = seeded(1, 1, 6).expand(B, 6)
    return vsm.is_log_evidence(lw if e else lw.contiguous())


def _x_isle_np(e):
    lw = np.broadcast_to(seeded(1, 1, 6).numpy(), (B, 6))
    return vsm.is_log_evidence(lw if e else np.ascontiguousarray(lw))


_ISLE_EXPANDED_ROWS = {"isle": _x_isle, "isle_np": _x_isle_np}


def test_core_rejects_wrong_dtype_with_type_error():
    """The compiled core takes float64 only; the wrapper converts (float32 -> float64) first."""
    with pytest.raises(TypeError):
        _core.is_log_evidence(np.zeros((2, 2), dtype=np.float32))


BAD_INPUT = [
    *_ISLE_BAD_INPUT,
    # ---------------------------------------------------------------- ISAccumulator(x, log_sigma2)
    ("isacc-ok", "valid", C.isacc, dict, OK),
    ("isacc-x-list", "type", C.isacc, lambda: {"x": [[0.0] * D]}, TE("x")),
    ("isacc-x-int", "dtype", C.isacc, lambda: {"x": torch.zeros(B, D, dtype=torch.int64)}, TE("x")),
    ("isacc-x-rank", "shape", C.isacc, lambda: {"x": t(B, D, 1)}, VE("x")),
    ("isacc-x-empty", "empty", C.isacc, lambda: {"x": t(0, D)}, VE("x")),
    (
        "isacc-x-nan",
        "non-finite",
        C.isacc,
        lambda: {"x": torch.full((B, D), NAN, dtype=F64)},
        VE("x"),
    ),
    ("isacc-ls2-nan", "non-finite", C.isacc, lambda: {"log_sigma2": NAN}, VE("log_sigma2")),
    ("isacc-ls2-str", "option", C.isacc, lambda: {"log_sigma2": "0"}, TE("log_sigma2")),
    ("isacc-ls2-vec", "option", C.isacc, lambda: {"log_sigma2": torch.zeros(2)}, VE("log_sigma2")),
    ("isacc-ls2-int", "dtype", C.isacc, lambda: {"log_sigma2": torch.tensor(0)}, TE("log_sigma2")),
    ("isacc-x-meta", "device", C.isacc, lambda: {"x": t(B, D, device=META)}, VE("x")),
    (
        "isacc-ls2-meta",
        "device",
        C.isacc,
        lambda: {"log_sigma2": torch.tensor(0.0, device=META)},
        VE("log_sigma2"),
    ),
    ("isacc-x-complex", "dtype", C.isacc, lambda: {"x": np.zeros((B, D), complex)}, TE("x")),
    ("isacc-x-empty-D", "empty", C.isacc, lambda: {"x": np.zeros((B, 0))}, VE("x")),
    ("isacc-x-inf", "non-finite", C.isacc, lambda: {"x": np.full((B, D), math.inf)}, VE("x")),
    ("isacc-ls2-inf", "non-finite", C.isacc, lambda: {"log_sigma2": math.inf}, VE("log_sigma2")),
    ("isacc-ls2-bool", "option", C.isacc, lambda: {"log_sigma2": True}, TE("log_sigma2")),
    (
        "isacc-ls2-ndarray-vec",
        "option",
        C.isacc,
        lambda: {"log_sigma2": np.zeros(2)},
        VE("log_sigma2"),
    ),
    ("isacc-x-rank1", "shape", C.isacc, lambda: {"x": np.zeros(D)}, VE("x")),
    *C.dtype_rows("isacc", C.isacc, "x", (B, D)),
    # ---------------------------------------------------------------- ISAccumulator.add
    ("isadd-ok", "valid", C.isadd, dict, OK),
    ("isadd-meta", "device", C.isadd, lambda: {"x_mean": t(B, 5, D, device=META)}, VE("x_mean")),
    (
        "isadd-np-f16",
        "dtype",
        C.isadd,
        lambda: {"x_mean": np.zeros((B, 5, D), np.float16)},
        TE("x_mean"),
    ),
    ("isadd-list", "type", C.isadd, lambda: {"x_mean": t(B, 5, D).tolist()}, TE("x_mean")),
    (
        "isadd-int",
        "dtype",
        C.isadd,
        lambda: {"log_prior": torch.zeros(B, 5, dtype=torch.int64)},
        TE("log_prior"),
    ),
    ("isadd-shape-D", "shape", C.isadd, lambda: {"x_mean": t(B, 5, D + 1)}, VE("x_mean")),
    ("isadd-shape-B", "shape", C.isadd, lambda: {"log_proposal": t(B + 1, 5)}, VE("log_proposal")),
    ("isadd-shape-K", "shape", C.isadd, lambda: {"log_prior": t(B, 4)}, VE("log_prior")),
    ("isadd-rank", "shape", C.isadd, lambda: {"x_mean": t(B, D)}, VE("x_mean")),
    (
        "isadd-empty-K",
        "empty",
        C.isadd,
        lambda: {"x_mean": t(B, 0, D), "log_prior": t(B, 0), "log_proposal": t(B, 0)},
        VE("x_mean"),
    ),
    (
        "isadd-complex-prior",
        "dtype",
        C.isadd,
        lambda: {"log_prior": torch.zeros(B, 5, dtype=torch.complex128)},
        TE("log_prior"),
    ),
    (
        "isadd-empty-B",
        "empty",
        C.isadd,
        lambda: {"x_mean": t(0, 5, D), "log_prior": t(0, 5), "log_proposal": t(0, 5)},
        VE("x_mean"),
    ),
    (
        "isadd-xm-inf",
        "non-finite",
        C.isadd,
        lambda: {"x_mean": torch.full((B, 5, D), math.inf, dtype=F64)},
        VE("x_mean"),
    ),
    (
        "isadd-prior-posinf",
        "non-finite",
        C.isadd,
        lambda: {"log_prior": torch.full((B, 5), math.inf, dtype=F64)},
        VE("log_prior"),
    ),
    (
        "isadd-nan",
        "non-finite",
        C.isadd,
        lambda: {"log_proposal": torch.full((B, 5), NAN, dtype=F64)},
        VE("log_proposal"),
    ),
    (
        "isadd-int-xm",
        "dtype",
        C.isadd,
        lambda: {"x_mean": np.zeros((B, 5, D), np.int64)},
        TE("x_mean"),
    ),
    ("isadd-shape-B-xm", "shape", C.isadd, lambda: {"x_mean": t(B + 1, 5, D)}, VE("x_mean")),
    ("isadd-rank-lq", "shape", C.isadd, lambda: {"log_proposal": t(5)}, VE("log_proposal")),
    (
        "isadd-xm-one-nan",
        "non-finite",
        C.isadd,
        lambda: {"x_mean": _one(NAN, B, 5, D)},
        VE("x_mean"),
    ),
    (
        "isadd-prior-nan",
        "non-finite",
        C.isadd,
        lambda: {"log_prior": np.full((B, 5), NAN)},
        VE("log_prior"),
    ),
    (
        "isadd-lq-neginf",
        "non-finite",
        C.isadd,
        lambda: {"log_proposal": np.full((B, 5), -math.inf)},
        VE("log_proposal"),
    ),
    *C.dtype_rows("isadd", C.isadd, "log_proposal", (B, 5)),
    # ---------------------------------------------------------------- ISAccumulator.result
    ("isres-ok", "valid", C.isadd, dict, OK),  # result() after one add()
    ("isres-empty", "empty", C.isres, dict, VE("result")),
]
test_bad_input_raises_naming_argument = C.raises_test(BAD_INPUT)


def _l_isacc(lay, to=lambda a: a):
    acc = vsm.ISAccumulator(lay(to(seeded(1, B, D))), 0.2)
    for k in range(2):
        acc.add(
            lay(to(seeded(10 + k, B, 5, D))),
            lay(to(seeded(20 + k, B, 5))),
            lay(to(seeded(30 + k, B, 5))),
        )
    return acc.result()


LAYOUT_ROWS = {
    **_ISLE_LAYOUT_ROWS,
    "ISAccumulator": _l_isacc,
    "ISAccumulator-np": lambda lay: _l_isacc(lay, to=lambda a: a.numpy()),
    "ISAccumulator-np-f32": lambda lay: _l_isacc(lay, to=lambda a: a.float().numpy()),
}
test_non_contiguous_inputs_give_the_contiguous_result = C.layout_test(LAYOUT_ROWS)


def _x_isacc(e):
    xm = np.broadcast_to(seeded(2, B, 1, D).numpy(), (B, 5, D))
    lp = np.broadcast_to(seeded(3, 1, 5).numpy(), (B, 5))
    acc = vsm.ISAccumulator(seeded(1, B, D).numpy(), -0.3)
    c = (lambda a: a) if e else np.ascontiguousarray
    acc.add(c(xm), c(lp), c(lp))
    return acc.result()


def _x_isacc_torch(e):
    xm = seeded(2, B, 1, D).expand(B, 5, D)
    lp = seeded(3, 1, 5).expand(B, 5)
    acc = vsm.ISAccumulator(seeded(1, B, D), torch.tensor(-0.3, dtype=F64))
    c = (lambda a: a) if e else torch.Tensor.contiguous
    acc.add(c(xm), c(lp), c(seeded(4, B, 5)))
    return acc.result()


EXPANDED_ROWS = {**_ISLE_EXPANDED_ROWS, "isacc": _x_isacc, "isacc_torch": _x_isacc_torch}
test_expanded_inputs_give_the_contiguous_result = C.expanded_test(EXPANDED_ROWS)


def test_failed_adds_leave_the_state_untouched():
    acc = vsm.ISAccumulator(np.zeros((2, 3)), 0.0)
    z = np.zeros((2, 4))
    nan = _one(NAN, 2, 4, 3)
    for bad in ((np.zeros((2, 4, 5)), z, z), (nan, z, z), (np.zeros((2, 4, 3)), z, -np.inf + z)):
        with pytest.raises(ValueError):
            acc.add(*bad)
    # the compiled core checks types itself too (the wrapper converts before calling it)
    with pytest.raises(TypeError, match="^x_mean"):
        acc._acc.add(np.zeros((2, 4, 3), dtype=np.int64), z, z)
    with pytest.raises(TypeError, match="^x_mean"):
        acc._acc.add([1, 2], z, z)
    assert acc.n_samples == 0
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
