"""Tests of vsm.metrics: MMD against a double loop and its unbiasedness, the other metrics
against direct computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vsm import metrics as M
from vsm import objectives as O
from vsm.models import MLPVAE


def _mmd_loop(a, b):
    def k(u, v):
        return float((u @ v + 1) ** 3)

    n, m = len(a), len(b)
    saa = sum(k(a[i], a[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    sbb = sum(k(b[i], b[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    sab = sum(k(a[i], b[j]) for i in range(n) for j in range(m)) / (n * m)
    return saa + sbb - 2 * sab


@pytest.mark.parametrize("n,m,L", [(2, 2, 1), (7, 5, 3), (12, 12, 2)])
def test_mmd_matches_double_loop(n, m, L):
    a = torch.randn(n, L, dtype=torch.float64)
    b = 0.5 + torch.randn(m, L, dtype=torch.float64)
    assert float(M.mmd2_cubic(a, b)) == pytest.approx(_mmd_loop(a, b), rel=1e-10, abs=1e-10)


def test_mmd_unbiased_and_detects_difference():
    same = torch.stack(
        [
            M.mmd2_cubic(
                torch.randn(40, 2, dtype=torch.float64), torch.randn(40, 2, dtype=torch.float64)
            )
            for _ in range(400)
        ]
    )
    se = float(same.std()) / 20
    assert abs(float(same.mean())) < 4 * se
    # a shifted distribution: MMD² far above the n = 40 null spread (which is larger than n = 400's)
    diff = M.mmd2_cubic(
        torch.randn(400, 2, dtype=torch.float64), 1.0 + torch.randn(400, 2, dtype=torch.float64)
    )
    assert float(diff) > 10 * float(same.std())


def test_mmd_errors():
    with pytest.raises(ValueError, match="^a"):
        M.mmd2_cubic(torch.randn(1, 2), torch.randn(3, 2))
    with pytest.raises(ValueError, match="^b"):
        M.mmd2_cubic(torch.randn(3, 2), torch.randn(3, 4))
    with pytest.raises(TypeError, match="^a"):
        M.mmd2_cubic([[1.0]], torch.randn(3, 2))


def _model():
    torch.manual_seed(3)
    return MLPVAE((3,), latent_dim=2, width=6).double()


def test_recon_mse_and_histogram(reference_backend):
    m = _model()
    x = torch.randn(20, 3, dtype=torch.float64)
    mu, logvar = m.encode(x)
    assert M.recon_mse(m, x) == pytest.approx(float(((m.decode(mu) - x) ** 2).mean().detach()))
    h = M.posterior_sd_histogram(m, x)
    sd = torch.exp(0.5 * logvar).detach().numpy()
    assert h.shape == (2, 30)
    np.testing.assert_array_equal(h[1], np.histogram(sd[:, 1], bins=np.linspace(0, 1.5, 31))[0])


def _metric_and_its_samples(metric, m, x, n, *, seed):
    """``metric(m, x, n_samples=n)`` after ``torch.manual_seed(seed)``, and the mu, logvar and
    reparametrised samples z (n, B, L) that it should have drawn."""
    torch.manual_seed(seed)
    got = metric(m, x, n_samples=n)
    torch.manual_seed(seed)
    mu, logvar = m.encode(x)
    eps = torch.randn(n, x.shape[0], mu.shape[1], dtype=torch.float64)
    return got, (mu, logvar, mu + torch.exp(0.5 * logvar) * eps)


def test_posterior_fd_direct(reference_backend):
    m = _model()
    x = torch.randn(4, 3, dtype=torch.float64)
    got, (mu, logvar, z) = _metric_and_its_samples(M.mean_posterior_fd, m, x, 3, seed=11)
    s2 = torch.exp(m.log_sigma2)
    want = torch.zeros(4, dtype=torch.float64)
    for n in range(3):
        for b in range(4):
            jac = torch.autograd.functional.jacobian(m.decode, z[n, b])  # (D, L)
            gl = jac.T @ (x[b] - m.decode(z[n, b])) / s2
            r = -(z[n, b] - mu[b]) / torch.exp(logvar[b]) + z[n, b] - gl
            want[b] += (r @ r) / 3
    torch.testing.assert_close(got, want.detach())


def test_neg_elbo_and_evaluate(reference_backend):
    m = _model()
    x = torch.randn(64, 3, dtype=torch.float64)
    got, (mu, logvar, z) = _metric_and_its_samples(M.neg_elbo, m, x, 2, seed=5)
    torch.testing.assert_close(got, O.elbo(x, m.decode(z), m.log_sigma2, mu, logvar).detach())
    res = M.evaluate(m, x, n_is=500, is_proposal="q", batch_size=25)
    for key in ("neg_elbo", "mse", "mmd2", "posterior_fd", "is_nll", "is_ess", "sm_loss"):
        assert np.isfinite(res[key]), key
    assert len(res["posterior_sd_hist"]) == 2 and len(res["posterior_sd_bins"]) == 31
    assert res["is_nll"] <= res["neg_elbo"] + 1e-6  # the ELBO bounds log p from below
