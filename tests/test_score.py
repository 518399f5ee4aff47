"""Tests of ``vsm.score``: the seed-001 Gaussian sanity case (SM = maximum likelihood), sliced SM
unbiased for exact SM, DSM / multi-scale DSM against their Gaussian closed forms, and score
networks trained on a 2-D mixture by each estimator whose annealed-Langevin samples beat the
initial noise in MMD."""

from __future__ import annotations

import math

import _cases as C
import numpy as np
import pytest
import torch
import vsm
from _cases import META, NAN, OK, TE, VE, B, D, seeded, t
from torch import nn
from vsm import score as S


def _gauss_score(m, v):
    return lambda x: -(x - m) / v


def test_exact_sm_on_univariate_gaussian_gives_ml_estimates():
    gen = torch.Generator().manual_seed(0)
    x = 2.0 + 1.5 * torch.randn(400, 1, generator=gen, dtype=torch.float64)
    m = torch.zeros((), dtype=torch.float64, requires_grad=True)
    log_v = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [m, log_v],
        max_iter=200,
        tolerance_grad=1e-12,
        tolerance_change=1e-14,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        loss = S.exact_sm(_gauss_score(m, log_v.exp()), x).mean()
        loss.backward()
        return loss

    opt.step(closure)
    torch.testing.assert_close(m.detach(), x.mean(), rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(log_v.exp().detach(), x.var(unbiased=False), rtol=1e-6, atol=1e-8)
    # closed form of the per-datum loss: −1/v + (x − m)²/(2v²)
    v = 0.7
    loss = S.exact_sm(_gauss_score(0.3, v), x)
    torch.testing.assert_close(loss, -1 / v + (x[:, 0] - 0.3) ** 2 / (2 * v * v))


class _Net(nn.Module):
    """Small MLP score network; optionally conditioned on log σ."""

    def __init__(self, d: int = 2, hidden: int = 64, cond: bool = False) -> None:
        super().__init__()
        self.cond = cond
        self.f = nn.Sequential(
            nn.Linear(d + cond, hidden),
            nn.Softplus(),
            nn.Linear(hidden, hidden),
            nn.Softplus(),
            nn.Linear(hidden, d),
        )

    def forward(self, x: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
        if self.cond:
            x = torch.cat([x, torch.full_like(x[:, :1], math.log(sigma))], -1)
        return self.f(x)


@pytest.mark.usefixtures("reference_backend")
@pytest.mark.parametrize("dist", ["rademacher", "gaussian"])
@pytest.mark.parametrize("variance_reduced", [True, False])
def test_sliced_sm_is_unbiased_for_exact_sm(dist, variance_reduced):
    torch.manual_seed(1)
    net = _Net(3).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    reps = 800
    xr = x.repeat(reps, 1)  # independent probes per row
    exact = S.exact_sm(net, x).detach()
    est = (
        S.sliced_sm(net, xr, n_probes=2, dist=dist, variance_reduced=variance_reduced, seed=3)
        .detach()
        .reshape(reps, 5)
    )
    mean, stderr = est.mean(0), est.std(0) / math.sqrt(reps)
    assert bool(((mean - exact).abs() < 5 * stderr + 1e-12).all())


def test_sliced_sm_triton_path_and_rademacher_exact_for_diagonal_score():
    w = torch.tensor([0.5, -1.0, 2.0, 0.1], dtype=torch.float64, requires_grad=True)

    def score_fn(x):
        return -x * w + torch.sin(x)  # diagonal Jacobian

    x = torch.randn(6, 4, dtype=torch.float64)
    exact = S.exact_sm(score_fn, x)
    for backend in ("triton", "reference"):
        with vsm.backend(backend):
            sl = S.sliced_sm(score_fn, x, n_probes=1, seed=4)
        torch.testing.assert_close(sl, exact)
        (g,) = torch.autograd.grad(sl.sum(), w)
        (ge,) = torch.autograd.grad(exact.sum(), w, retain_graph=True)
        torch.testing.assert_close(g, ge)
    with vsm.backend("triton"):  # non-VR form with the kernel's probes: ½(vᵀs)² term
        x1 = x.requires_grad_(True)
        s = score_fn(x1)
        v = vsm.ops.hutchinson_probes(x1, 3, 8, "gaussian")
        want = vsm.hutchinson_trace(s, x1, n_probes=3, dist="gaussian", seed=8) + 0.5 * (
            (v * s).sum(-1) ** 2
        ).mean(0)
        got = S.sliced_sm(score_fn, x1, n_probes=3, dist="gaussian", variance_reduced=False, seed=8)
    torch.testing.assert_close(got, want)


def test_dsm_and_multiscale_match_gaussian_closed_form():
    d, reps = 3, 20000
    x = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64).repeat(reps, 1)
    m, v, sigma = torch.tensor([0.1, 0.2, -0.3], dtype=torch.float64), 1.7, 0.4
    a2 = float(((x[0] - m) ** 2).sum())
    est = S.dsm(_gauss_score(m, v), x, sigma, seed=0)
    want = 0.5 * (a2 / v**2 + d * (1 / sigma - sigma / v) ** 2)
    assert abs(est.mean().item() - want) < 5 * est.std().item() / math.sqrt(reps)

    sigmas = [1.0, 0.5, 0.25]
    est = S.multiscale_dsm(lambda xt, s: -(xt - m) / (v + s * s), x, sigmas, seed=1)
    want = sum(
        s * s * (a2 / (v + s * s) ** 2 + d * (1 / s - s / (v + s * s)) ** 2) for s in sigmas
    ) / len(sigmas)
    assert abs(est.mean().item() - want) < 5 * est.std().item() / math.sqrt(reps)
    # one level: λ(σ)‖·‖² = 2σ² × the single-level DSM (same noise)
    one = S.multiscale_dsm(lambda xt, s: -(xt - m) / v, x[:10], [sigma], seed=5)
    torch.testing.assert_close(one, 2 * sigma**2 * S.dsm(_gauss_score(m, v), x[:10], sigma, seed=5))


def _mixture(n: int, gen: torch.Generator) -> torch.Tensor:
    centres = torch.tensor([[1.5, 1.5], [-1.5, 1.5], [1.5, -1.5], [-1.5, -1.5]])
    idx = torch.randint(0, 4, (n,), generator=gen)
    return centres[idx] + 0.3 * torch.randn(n, 2, generator=gen)


def _mmd2(a: torch.Tensor, b: torch.Tensor, bw: float = 0.5) -> float:
    """Biased MMD² with a Gaussian kernel of bandwidth ``bw``."""

    def k(u, w):
        return torch.exp(-(torch.cdist(u, w) ** 2) / (2 * bw * bw)).mean()

    return float(k(a, a) + k(b, b) - 2 * k(a, b))


@pytest.fixture
def one_thread():
    """Tiny matrices: one intra-op thread avoids oversubscribing the shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.usefixtures("reference_backend", "one_thread")
@pytest.mark.parametrize("estimator", ["exact_sm", "sliced_sm", "dsm", "multiscale_dsm"])
def test_trained_score_model_samples_match_mixture(estimator):
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    data = _mixture(2000, gen)
    sigmas = [1.0, 0.5, 0.25, 0.1]
    net = _Net(2, hidden=32, cond=estimator == "multiscale_dsm")
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for step in range(500):
        x = data[torch.randint(0, len(data), (128,), generator=gen)]
        if estimator == "exact_sm":
            loss = S.exact_sm(net, x)
        elif estimator == "sliced_sm":
            loss = S.sliced_sm(net, x, n_probes=1, seed=step)
        elif estimator == "dsm":
            loss = S.dsm(net, x, 0.3)  # samples follow the σ-smoothed data
        else:
            loss = S.multiscale_dsm(net, x, sigmas)
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
    x0 = 3.0 * torch.randn(500, 2, generator=gen)
    with torch.no_grad():
        if estimator == "multiscale_dsm":
            samples = S.annealed_langevin(net, x0, sigmas, n_steps=30, step_size=2e-3, seed=0)
        else:
            samples = S.annealed_langevin(
                lambda x, s: net(x), x0, [0.1], n_steps=150, step_size=3e-3, seed=0
            )
    assert torch.isfinite(samples).all()
    test = _mixture(500, gen)
    # initial noise: MMD² ≈ 0.12; the true score with this sampler: ≈ 0.006
    assert _mmd2(samples, test) < 0.5 * _mmd2(x0, test)


def test_annealed_langevin_on_gaussian_score_reaches_target_and_is_reproducible():
    # exact score of N(1, 0.5²) (σ-independent): samples ~ N(1, 0.5²) after many steps
    x0 = torch.zeros(4000, 2, dtype=torch.float64)

    def score_fn(x, s):
        return -(x - 1.0) / 0.25

    out = S.annealed_langevin(score_fn, x0, [0.1], n_steps=300, step_size=0.01, seed=3)
    assert abs(out.mean().item() - 1.0) < 0.03
    assert abs(out.var().item() - 0.25) < 0.03  # step 0.01 biases the variance by ~0.3 %
    again = S.annealed_langevin(score_fn, x0, [0.1], n_steps=300, step_size=0.01, seed=3)
    assert torch.equal(out, again)
    # α_i = ε σ_i²/σ_L²: zero score, one step at σ_1 = 2σ_L has noise variance 4ε
    z = S.annealed_langevin(
        lambda x, s: torch.zeros_like(x), x0, [0.2, 0.1], n_steps=1, step_size=0.01, seed=4
    )
    assert abs(z.var().item() - (4 * 0.01 + 0.01)) < 0.004


# Bad score functions of the rows below (``*sigma``: the noise level that multiscale_dsm and
# annealed_langevin pass as well).
def _float32_score(x, *sigma):
    """Answers in float32 (the data are float64)."""
    return x.float()


def _list_score(x, *sigma):
    """Answers a list, not a tensor."""
    return x.tolist()


def _meta_score(x, *sigma):
    """Answers on another device."""
    return torch.zeros_like(x, device=META)


# ---- bad input (feeds tests/test_bad_input.py's matrix)
# Rows (id, kind, call, kwargs, expected) and tables as described in tests/_cases.py.
BAD_INPUT = [
    # ---------------------------------------------------------------- exact_sm
    ("exact-ok", "valid", C.exact, dict, OK),
    ("exact-list", "type", C.exact, lambda: {"x": t(B, D).tolist()}, TE("x")),
    ("exact-int", "dtype", C.exact, lambda: {"x": C.i64(B, D)}, TE("x")),
    ("exact-dtype-mix", "dtype", C.exact, lambda: {"score_fn": _float32_score}, TE("score_fn")),
    ("exact-shape", "shape", C.exact, lambda: {"score_fn": lambda x: x[:, :-1]}, VE("score_fn")),
    ("exact-rank", "shape", C.exact, lambda: {"x": t(D)}, VE("x")),
    ("exact-empty", "empty", C.exact, lambda: {"x": t(0, D)}, VE("x")),
    ("exact-device", "device", C.exact, lambda: {"score_fn": _meta_score}, VE("score_fn")),
    ("exact-not-tensor", "type", C.exact, lambda: {"score_fn": _list_score}, TE("score_fn")),
    ("exact-not-callable", "type", C.exact, lambda: {"score_fn": None}, TE("score_fn")),
    *C.dtype_rows("exact", C.exact, "x", (B, D)),
    # ---------------------------------------------------------------- sliced_sm
    ("sliced-ok", "valid", C.sliced, dict, OK),
    ("sliced-ndarray", "type", C.sliced, lambda: {"x": np.zeros((B, D))}, TE("x")),
    ("sliced-int", "dtype", C.sliced, lambda: {"x": torch.zeros(B, D, dtype=torch.int8)}, TE("x")),
    ("sliced-dtype-mix", "dtype", C.sliced, lambda: {"score_fn": _float32_score}, TE("score_fn")),
    ("sliced-shape", "shape", C.sliced, lambda: {"score_fn": lambda x: x.sum(-1)}, VE("score_fn")),
    ("sliced-rank", "shape", C.sliced, lambda: {"x": t(B, D, 2)}, VE("x")),
    ("sliced-empty", "empty", C.sliced, lambda: {"x": t(0, D)}, VE("x")),
    ("sliced-probes0", "option", C.sliced, lambda: {"n_probes": 0}, VE("n_probes")),
    ("sliced-probes-neg", "option", C.sliced, lambda: {"n_probes": -1}, VE("n_probes")),
    ("sliced-dist", "option", C.sliced, lambda: {"dist": "normal"}, VE("dist")),
    ("sliced-dist-type", "option", C.sliced, lambda: {"dist": 1}, VE("dist")),
    ("sliced-vr", "option", C.sliced, lambda: {"variance_reduced": 1}, TE("variance_reduced")),
    ("sliced-not-callable", "type", C.sliced, lambda: {"score_fn": "s"}, TE("score_fn")),
    ("sliced-not-tensor", "type", C.sliced, lambda: {"score_fn": _list_score}, TE("score_fn")),
    ("sliced-device", "device", C.sliced, lambda: {"score_fn": _meta_score}, VE("score_fn")),
    ("sliced-probes-float", "option", C.sliced, lambda: {"n_probes": 1.0}, TE("n_probes")),
    ("sliced-seed-neg", "option", C.sliced, lambda: {"seed": -1}, VE("seed")),
    ("sliced-seed-float", "option", C.sliced, lambda: {"seed": 0.5}, TE("seed")),
    *C.dtype_rows("sliced", C.sliced, "x", (B, D)),
    # ---------------------------------------------------------------- dsm
    ("dsm-ok", "valid", C.dsm, dict, OK),
    ("dsm-list", "type", C.dsm, lambda: {"x": [[0.0] * D] * B}, TE("x")),
    ("dsm-int", "dtype", C.dsm, lambda: {"x": C.i64(B, D)}, TE("x")),
    ("dsm-dtype-mix", "dtype", C.dsm, lambda: {"score_fn": _float32_score}, TE("score_fn")),
    ("dsm-shape", "shape", C.dsm, lambda: {"score_fn": lambda x: x.T}, VE("score_fn")),
    ("dsm-rank", "shape", C.dsm, lambda: {"x": t(B)}, VE("x")),
    ("dsm-empty", "empty", C.dsm, lambda: {"x": t(0, D)}, VE("x")),
    ("dsm-sigma-nan", "non-finite", C.dsm, lambda: {"sigma": NAN}, VE("sigma")),
    ("dsm-sigma-zero", "option", C.dsm, lambda: {"sigma": 0.0}, VE("sigma")),
    ("dsm-sigma-neg", "option", C.dsm, lambda: {"sigma": -0.1}, VE("sigma")),
    ("dsm-sigma-inf", "non-finite", C.dsm, lambda: {"sigma": math.inf}, VE("sigma")),
    ("dsm-sigma-str", "option", C.dsm, lambda: {"sigma": "0.5"}, TE("sigma")),
    ("dsm-sigma-vec", "option", C.dsm, lambda: {"sigma": torch.ones(2)}, VE("sigma")),
    ("dsm-seed", "option", C.dsm, lambda: {"seed": -2}, VE("seed")),
    ("dsm-sigma-bool", "option", C.dsm, lambda: {"sigma": True}, TE("sigma")),
    ("dsm-not-callable", "type", C.dsm, lambda: {"score_fn": 1.0}, TE("score_fn")),
    ("dsm-not-tensor", "type", C.dsm, lambda: {"score_fn": _list_score}, TE("score_fn")),
    ("dsm-device", "device", C.dsm, lambda: {"score_fn": _meta_score}, VE("score_fn")),
    C.arg_row("dsm-sigma-meta", "device", C.dsm, VE("sigma"), torch.tensor, 0.5, device=META),
    ("dsm-seed-big", "option", C.dsm, lambda: {"seed": 2**64}, VE("seed")),
    ("dsm-seed-float", "option", C.dsm, lambda: {"seed": 1.0}, TE("seed")),
    *C.dtype_rows("dsm", C.dsm, "x", (B, D)),
    # ---------------------------------------------------------------- multiscale_dsm
    ("mdsm-ok", "valid", C.mdsm, dict, OK),
    ("mdsm-ndarray", "type", C.mdsm, lambda: {"x": np.zeros((B, D))}, TE("x")),
    ("mdsm-int", "dtype", C.mdsm, lambda: {"x": C.i64(B, D)}, TE("x")),
    ("mdsm-dtype-mix", "dtype", C.mdsm, lambda: {"score_fn": _float32_score}, TE("score_fn")),
    ("mdsm-shape", "shape", C.mdsm, lambda: {"score_fn": lambda x, s: x[:1]}, VE("score_fn")),
    ("mdsm-rank", "shape", C.mdsm, lambda: {"x": t(1, B, D)}, VE("x")),
    ("mdsm-empty", "empty", C.mdsm, lambda: {"x": t(0, D)}, VE("x")),
    ("mdsm-sigmas-empty", "empty", C.mdsm, lambda: {"sigmas": []}, VE("sigmas")),
    ("mdsm-sigmas-nan", "non-finite", C.mdsm, lambda: {"sigmas": [1.0, NAN]}, VE("sigmas")),
    ("mdsm-sigmas-neg", "option", C.mdsm, lambda: {"sigmas": [1.0, -0.5]}, VE("sigmas")),
    ("mdsm-sigmas-type", "option", C.mdsm, lambda: {"sigmas": 0.5}, TE("sigmas")),
    ("mdsm-sigmas-rank", "shape", C.mdsm, lambda: {"sigmas": torch.ones(2, 2)}, VE("sigmas")),
    ("mdsm-sigmas-str", "option", C.mdsm, lambda: {"sigmas": "abc"}, TE("sigmas")),
    ("mdsm-not-callable", "type", C.mdsm, lambda: {"score_fn": 0}, TE("score_fn")),
    ("mdsm-not-tensor", "type", C.mdsm, lambda: {"score_fn": lambda x, s: None}, TE("score_fn")),
    ("mdsm-device", "device", C.mdsm, lambda: {"score_fn": _meta_score}, VE("score_fn")),
    C.arg_row("mdsm-sigmas-meta", "device", C.mdsm, VE("sigmas"), torch.ones, 2, device=META),
    ("mdsm-sigmas-inf", "non-finite", C.mdsm, lambda: {"sigmas": [math.inf, 1.0]}, VE("sigmas")),
    ("mdsm-sigmas-zero", "option", C.mdsm, lambda: {"sigmas": [1.0, 0.0]}, VE("sigmas")),
    ("mdsm-seed-neg", "option", C.mdsm, lambda: {"seed": -1}, VE("seed")),
    *C.dtype_rows("mdsm", C.mdsm, "x", (B, D)),
    # ---------------------------------------------------------------- annealed_langevin
    ("lang-ok", "valid", C.lang, dict, OK),
    ("lang-list", "type", C.lang, lambda: {"x0": [[0.0] * D]}, TE("x0")),
    ("lang-int", "dtype", C.lang, lambda: {"x0": C.i64(B, D)}, TE("x0")),
    ("lang-rank", "shape", C.lang, lambda: {"x0": t(D)}, VE("x0")),
    ("lang-empty", "empty", C.lang, lambda: {"x0": t(0, D)}, VE("x0")),
    ("lang-sigmas-nan", "non-finite", C.lang, lambda: {"sigmas": [NAN]}, VE("sigmas")),
    ("lang-sigmas-increasing", "option", C.lang, lambda: {"sigmas": [0.5, 1.0]}, VE("sigmas")),
    ("lang-steps0", "option", C.lang, lambda: {"n_steps": 0}, VE("n_steps")),
    ("lang-steps-float", "option", C.lang, lambda: {"n_steps": 2.5}, TE("n_steps")),
    ("lang-step-size", "option", C.lang, lambda: {"step_size": -1.0}, VE("step_size")),
    ("lang-step-size-nan", "non-finite", C.lang, lambda: {"step_size": NAN}, VE("step_size")),
    ("lang-dtype-mix", "dtype", C.lang, lambda: {"score_fn": _float32_score}, TE("score_fn")),
    ("lang-shape", "shape", C.lang, lambda: {"score_fn": lambda x, s: x[:1]}, VE("score_fn")),
    ("lang-not-callable", "type", C.lang, lambda: {"score_fn": None}, TE("score_fn")),
    ("lang-not-tensor", "type", C.lang, lambda: {"score_fn": _list_score}, TE("score_fn")),
    ("lang-ndarray", "type", C.lang, lambda: {"x0": np.zeros((B, D))}, TE("x0")),
    ("lang-device", "device", C.lang, lambda: {"score_fn": _meta_score}, VE("score_fn")),
    ("lang-sigmas-empty", "empty", C.lang, lambda: {"sigmas": []}, VE("sigmas")),
    ("lang-sigmas-type", "option", C.lang, lambda: {"sigmas": 1.0}, TE("sigmas")),
    ("lang-sigmas-neg", "option", C.lang, lambda: {"sigmas": [1.0, -1.0]}, VE("sigmas")),
    ("lang-steps-neg", "option", C.lang, lambda: {"n_steps": -1}, VE("n_steps")),
    ("lang-steps-bool", "option", C.lang, lambda: {"n_steps": True}, TE("n_steps")),
    ("lang-step-size-zero", "option", C.lang, lambda: {"step_size": 0.0}, VE("step_size")),
    ("lang-step-size-inf", "non-finite", C.lang, lambda: {"step_size": math.inf}, VE("step_size")),
    ("lang-step-size-str", "option", C.lang, lambda: {"step_size": "0.1"}, TE("step_size")),
    ("lang-seed-str", "option", C.lang, lambda: {"seed": "0"}, TE("seed")),
    *C.dtype_rows("lang", C.lang, "x0", (B, D)),
]
test_bad_input_raises_naming_argument = C.raises_test(BAD_INPUT)


def _nf_score(f):
    def row(v):
        x = C.bad_datum(seeded(1, B, D), v)
        return f(lambda u: torch.tanh(u) - u, x)

    return row


NONFINITE_ROWS = {
    "exact_sm": _nf_score(S.exact_sm),
    "sliced_sm": _nf_score(lambda f, x: S.sliced_sm(f, x, n_probes=2, seed=0)),
    "dsm": _nf_score(lambda f, x: S.dsm(f, x, 0.5, seed=0)),
    "multiscale_dsm": _nf_score(
        lambda f, x: S.multiscale_dsm(lambda u, s: f(u), x, [1.0, 0.5], seed=0)
    ),
    "annealed_langevin": _nf_score(
        lambda f, x: S.annealed_langevin(
            lambda u, s: f(u), x, [1.0, 0.5], n_steps=2, step_size=0.01, seed=0
        )
    ),
}
test_non_finite_datum_stays_in_its_row = C.non_finite_test(NONFINITE_ROWS)


def _l_exact(lay):
    return S.exact_sm(lambda x: torch.tanh(x) - x, lay(seeded(1, B, D)))


def _l_sliced(lay):
    return S.sliced_sm(
        lambda x: torch.tanh(x) - x,
        lay(seeded(1, B, D)),
        n_probes=2,
        seed=3,
        variance_reduced=False,
    )


def _l_dsm(lay):
    return S.dsm(lambda x: torch.tanh(x) - x, lay(seeded(1, B, D)), 0.3, seed=5)


def _l_mdsm(lay):
    return S.multiscale_dsm(C.noise_score, lay(seeded(1, B, D)), [1.0, 0.3], seed=5)


def _l_lang(lay):
    return S.annealed_langevin(
        C.noise_score, lay(seeded(1, B, D)), [1.0, 0.3], n_steps=2, step_size=0.01, seed=5
    )


LAYOUT_ROWS = {
    "exact_sm": _l_exact,
    "sliced_sm": _l_sliced,
    "dsm": _l_dsm,
    "multiscale_dsm": _l_mdsm,
    "annealed_langevin": _l_lang,
}
test_non_contiguous_inputs_give_the_contiguous_result = C.layout_test(LAYOUT_ROWS)


def _x_exact(e):
    x = seeded(1, 1, D).expand(B, D)
    return S.exact_sm(lambda v: torch.tanh(v) - v, x if e else x.contiguous())


def _x_sliced(e):
    x = seeded(1, 1, D).expand(B, D)
    return S.sliced_sm(lambda v: -(v**3), x if e else x.contiguous(), n_probes=2, seed=1)


def _x_dsm(e):
    x = seeded(1, 1, D).expand(B, D)
    return S.dsm(lambda v: -v, x if e else x.contiguous(), 0.4, seed=2)


def _x_mdsm(e):
    x = seeded(1, B, 1).expand(B, D)
    return S.multiscale_dsm(C.noise_score, x if e else x.contiguous(), [1.0, 0.5], seed=2)


def _x_lang(e):
    x = seeded(1, 1, D).expand(B, D)
    return S.annealed_langevin(
        C.noise_score, x if e else x.contiguous(), [1.0, 0.5], n_steps=2, step_size=0.01, seed=2
    )


EXPANDED_ROWS = {
    "exact": _x_exact,
    "sliced": _x_sliced,
    "dsm": _x_dsm,
    "mdsm": _x_mdsm,
    "lang": _x_lang,
}
test_expanded_inputs_give_the_contiguous_result = C.expanded_test(EXPANDED_ROWS)
