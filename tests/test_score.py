"""Tests of ``vsm.score``: the seed-001 Gaussian sanity case (SM = maximum likelihood), sliced SM
unbiased for exact SM, DSM / multi-scale DSM against their Gaussian closed forms, and score
networks trained on a 2-D mixture by each estimator whose annealed-Langevin samples beat the
initial noise in MMD."""

from __future__ import annotations

import math

import pytest
import torch
import vsm
from torch import nn
from vsm import score as S


def _gauss_score(m, v):
    return lambda x: -(x - m) / v


def test_exact_sm_on_univariate_gaussian_gives_ml_estimates():
    gen = torch.Generator().manual_seed(0)
    x = (2.0 + 1.5 * torch.randn(400, 1, generator=gen, dtype=torch.float64))
    m = torch.zeros((), dtype=torch.float64, requires_grad=True)
    log_v = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([m, log_v], max_iter=200, tolerance_grad=1e-12,
                            tolerance_change=1e-14, line_search_fn="strong_wolfe")

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
        self.f = nn.Sequential(nn.Linear(d + cond, hidden), nn.Softplus(),
                               nn.Linear(hidden, hidden), nn.Softplus(), nn.Linear(hidden, d))

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
    est = S.sliced_sm(net, xr, n_probes=2, dist=dist, variance_reduced=variance_reduced,
                      seed=3).detach().reshape(reps, 5)
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
            (v * s).sum(-1) ** 2).mean(0)
        got = S.sliced_sm(score_fn, x1, n_probes=3, dist="gaussian", variance_reduced=False,
                          seed=8)
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
    want = sum(s * s * (a2 / (v + s * s) ** 2 + d * (1 / s - s / (v + s * s)) ** 2)
               for s in sigmas) / len(sigmas)
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
        return torch.exp(-torch.cdist(u, w) ** 2 / (2 * bw * bw)).mean()
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
            samples = S.annealed_langevin(lambda x, s: net(x), x0, [0.1], n_steps=150,
                                          step_size=3e-3, seed=0)
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
    z = S.annealed_langevin(lambda x, s: torch.zeros_like(x), x0, [0.2, 0.1], n_steps=1,
                            step_size=0.01, seed=4)
    assert abs(z.var().item() - (4 * 0.01 + 0.01)) < 0.004


def test_validation_errors_name_the_argument():
    x = torch.randn(4, 2)
    f = _gauss_score(0.0, 1.0)
    with pytest.raises(ValueError, match="^x"):
        S.exact_sm(f, x[0])
    with pytest.raises(ValueError, match="^score_fn"):
        S.exact_sm(lambda x: x[:, :1], x)
    with pytest.raises(ValueError, match="^sigma"):
        S.dsm(f, x, -1.0)
    with pytest.raises(ValueError, match="^sigmas"):
        S.multiscale_dsm(lambda x, s: x, x, [])
    with pytest.raises(ValueError, match="^sigmas"):
        S.annealed_langevin(lambda x, s: x, x, [0.1, 1.0], n_steps=1, step_size=0.1)
    with pytest.raises(ValueError, match="^n_steps"):
        S.annealed_langevin(lambda x, s: x, x, [1.0], n_steps=0, step_size=0.1)
    with pytest.raises(ValueError, match="^dist"):
        S.sliced_sm(f, x, dist="cauchy")
    with pytest.raises(TypeError, match="^variance_reduced"):
        S.sliced_sm(f, x, variance_reduced=1)
