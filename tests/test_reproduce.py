"""Tests of ``vsm.reproduce``: each figure runs in a tiny setting and its numbers check the maths.

fig1: closed-form JKLD recovers θ* for every α, closed-form JFD recovers θ* only at α = 1, the
closed forms match Monte-Carlo estimates, and a gradient-based Monte-Carlo fit lands on the
closed-form optimum. fig2: the Gaussian-q optimisation runs and its exact divergences are finite.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
import torch
from vsm._errors import UsageError
from vsm.reproduce import fig1
from vsm.reproduce._common import all_finite


def test_fig1_closed_form_recovery(tmp_path):
    cfg = fig1.Fig1Config(grid_points=4001, mc_steps=0)
    res = fig1.run(tmp_path, cfg)
    data = json.loads((tmp_path / "results.json").read_text())
    assert (tmp_path / "fig1.png").stat().st_size > 10_000
    assert all_finite(data)
    ts = np.array(cfg.theta_stars)
    for j, alpha in enumerate(cfg.alphas):
        kl = np.array(res["theta_hat"]["jkld"][j])
        fd = np.array(res["theta_hat"]["jfd"][j])
        assert np.all(np.abs(kl - ts) < 1e-3), (alpha, kl)
        if alpha == 1.0:
            assert np.all(np.abs(fd - ts) < 1e-3), fd
        else:
            # JFD shrinks θ̂ below θ* by far more than numerical error
            assert np.all(fd < ts - 0.2), (alpha, fd)
    # JKLD at its optimum equals ½(α − 1 − log α) (the θ-independent posterior-mismatch cost)
    for row in res["table"]:
        if row["method"] == "jkld":
            a = row["alpha"]
            assert row["jkld"] == pytest.approx(0.5 * (a - 1 - math.log(a)), abs=1e-9)
        assert row["jfd"] == pytest.approx(row["jfd_x_part"] + row["jfd_posterior_fd"])
    ex = res["example"]
    # the JFD fit has a lower JFD but a higher JKLD than the JKLD fit
    assert ex["jfd"]["jfd"] < ex["jkld"]["jfd"]
    assert ex["jfd"]["jkld"] > ex["jkld"]["jkld"]


def test_fig1_closed_forms_match_monte_carlo():
    gen = torch.Generator().manual_seed(1)
    th = torch.tensor([0.7, 1.5, 2.2], dtype=torch.float64)
    ph = torch.tensor([0.2, -0.1, 0.35], dtype=torch.float64)
    ts = torch.tensor([2.0, 1.0, 3.0], dtype=torch.float64)
    al = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    kl, fd = fig1._mc_losses(th, ph, ts, al, 1.0, 200_000, gen)
    for i in range(3):
        args = (th[i].item(), ph[i].item(), ts[i].item(), al[i].item())
        assert kl[i].item() == pytest.approx(float(fig1.jkld(*args)), rel=0.02, abs=0.01)
        assert fd[i].item() == pytest.approx(float(fig1.jfd(*args)), rel=0.02, abs=0.01)


def test_fig1_gradient_fit_matches_closed_form():
    cases = [("jkld", 2.0, 0.5), ("jfd", 2.0, 2.0), ("jfd", 1.0, 0.5), ("jfd", 2.0, 1.0)]
    mc = fig1.mc_fit(cases, steps=400, batch=1024, seed=0)
    for (m, t, a), r in zip(cases, mc, strict=True):
        closed = fig1.fit_closed_form(m, t, a)
        assert abs(r["theta_hat"] - closed["theta_hat"]) < 0.05, (m, t, a, r, closed)
        assert abs(r["phi_hat"] - closed["phi_hat"]) < 0.05, (m, t, a, r, closed)


def test_fig1_best_phi_is_stationary():
    th = np.linspace(0.1, 4.0, 7)
    for method in fig1.METHODS:
        phi = fig1.best_phi(method, th, 2.0, 0.5)
        h = 1e-6
        up = fig1.objective(method, th, phi + h, 2.0, 0.5)
        dn = fig1.objective(method, th, phi - h, 2.0, 0.5)
        mid = fig1.objective(method, th, phi, 2.0, 0.5)
        assert np.all(np.abs(up - dn) / (2 * h) < 1e-5)
        assert np.all(up >= mid) and np.all(dn >= mid)


def test_fig2_tiny_run(tmp_path):
    from vsm.reproduce import fig2

    cfg = fig2.Fig2Config(grid=2, steps=300, mix_steps=60, mix_restarts=2, quad_n=81)
    res = fig2.run(tmp_path, cfg)
    data = json.loads((tmp_path / "results.json").read_text())
    assert (tmp_path / "fig2.png").exists() and (tmp_path / "fig2_mixture.png").exists()
    for model in fig2.LIKELIHOODS:
        post = data[model]["posterior"]
        assert all_finite(post)
        if model == "sym":  # the "sym" posterior is symmetric under z → −z: its mean is 0
            assert np.allclose(post["mean"], 0.0, atol=1e-6)
        for key, s in data[model]["gaussian"].items():
            assert s["n_runs"] == cfg.grid**2, key
            if "kl_median" in s:
                assert s["kl_median"] >= 0 and s["fd_median"] >= 0
                assert 0.0 <= s["frac_low_density"] <= 1.0
        mix = data[model]["mixture"]
        assert len(mix["fd_per_restart"]) == cfg.mix_restarts
        assert all(v >= 0 and math.isfinite(v) for v in mix["fd_per_restart"])
    assert math.isfinite(res["seconds"])
    assert data["complete"] and data["units_done"] == sorted(
        f"{m}/{k}" for m in fig2.LIKELIHOODS for k in fig2.FITS
    )
    # --resume runs only the units results.json does not record, and gives the same numbers
    from vsm.reproduce.executors import LocalExecutor

    submitted = []

    class Recording(LocalExecutor):
        def submit(self, unit):
            submitted.append(unit.key)
            super().submit(unit)

    data["complete"] = False
    data["units_done"].remove("soft/mixtures")
    (tmp_path / "results.json").write_text(json.dumps(data))
    fig2.run(tmp_path, cfg, resume=True, executor=Recording())
    again = json.loads((tmp_path / "results.json").read_text())
    assert again["complete"] and submitted == ["soft/mixtures"]
    assert again["soft"]["mixture"]["fd_per_restart"] == data["soft"]["mixture"]["fd_per_restart"]
    assert again["sym"]["gaussian"] == data["sym"]["gaussian"]


def test_fig2_kld_fit_is_a_local_minimum_of_the_exact_kl():
    """The KLD-fitted Gaussian (Adam) is a local minimum of the exact grid KL from vsm.toy."""
    from vsm import toy
    from vsm.reproduce import fig2

    cfg = fig2.Fig2Config(grid=2, init_range=1.0, steps=3000, lr_sgd=1e-3, lr_adam=3e-3)
    fit = fig2.fit_gaussians("soft", cfg)
    sel = [i for i, r in enumerate(fit["runs"]) if r[0] == "kld" and r[1] == "adam"]
    post = toy.posterior("soft", 2.0, lo=-6, hi=6, n=121)
    m = fit["m"][sel[0]]
    var = np.exp(2 * fit["log_sd"][sel[0]])
    kl0 = float(post.kl_from(m, np.diag(var)))
    # KLD-optimised q: perturbing its mean or variance increases the exact KL
    for dm in ([0.3, 0.0], [0.0, 0.3], [-0.3, 0.0]):
        assert float(post.kl_from(m + np.array(dm), np.diag(var))) > kl0
    assert float(post.kl_from(m, np.diag(var * 2.0))) > kl0
    assert float(post.kl_from(m, np.diag(var * 0.5))) > kl0


def _tiny_images_config(**settings: Any) -> Any:
    """An image config with the smallest conv VAE (ngf = ndf = 4) and one posterior sample and
    encoder update per step, plus ``settings``."""
    from vsm.reproduce import images

    return images.ImagesConfig(ngf=4, ndf=4, n_samples=1, k_enc=1, **settings)


def test_images_tiny_run(tmp_path):
    from vsm.reproduce import images

    cfg = _tiny_images_config(
        objectives=("kl-elbo", "fd-m1"), steps=4, eval_every=2, latent_dim=4, batch_size=20
    )
    res = images.run(tmp_path, cfg)
    data = json.loads((tmp_path / "results.json").read_text())
    for name in ("images_metrics.png", "images_sd_hist.png", "images_samples.png"):
        assert (tmp_path / name).exists()
    for obj in cfg.objectives:
        r = data["objectives"][obj]
        assert r["diverged"] is None
        assert r["curves"]["step"] == [2, 4]
        assert all_finite(r["final"]) and all_finite(r["curves"])
        assert r["final"]["mse"] >= 0 and r["final"]["posterior_fd"] >= 0
        # histogram: one count per (test image, latent dim) whose SD lies in the bins' range
        assert 0 < sum(r["sd_hist"]) <= 300 * cfg.latent_dim
    assert math.isfinite(res["seconds"])


def test_images_epochs_and_posterior_sd_shares(tmp_path):
    from vsm.reproduce import images

    full = images.ImagesConfig.full()  # the paper's image setting (MATH.md §9)
    assert (full.lr, full.n_samples, full.k_enc, full.batch_size, full.epochs) == (
        1e-4,
        5,
        5,
        100,
        1000,
    )
    assert (full.latent_dim, full.ngf, full.ndf) == (100, 64, 64)
    cfg = _tiny_images_config(
        objectives=("kl-m1",), epochs=1, steps=10**6, eval_every=7, latent_dim=3, batch_size=500
    )
    res = images.run(tmp_path, cfg)
    assert res["objectives"]["kl-m1"]["curves"]["step"] == [2]  # 1497 // 500 = 2 iterations
    (row,) = res["table"]
    assert 0.0 <= row["sd_share_low"] <= 1.0 and 0.0 <= row["sd_share_high"] <= 1.0
    shares = images.sd_shares(
        {"sd_hist": [3, 0, 0, 0, 1] + [0] * 25, "sd_bins": np.linspace(0, 1.5, 31).tolist()}
    )
    assert shares == {"sd_share_low": 0.75, "sd_share_high": 0.0}
    shares = images.sd_shares(
        {"sd_hist": [0] * 16 + [2, 2] + [0] * 12, "sd_bins": np.linspace(0, 1.5, 31).tolist()}
    )
    assert shares == {"sd_share_low": 0.0, "sd_share_high": 1.0}


def test_images_sigma2_reach_says_when_a_run_is_too_short(tmp_path, capsys):
    """Adam moves log σ² by about lr per decoder update: the paper's 1000 epochs on the 1497
    offline digits (14 000 minibatches, 2 800 decoder updates) reach 0.28, the paper's MNIST run
    (600 000 minibatches) 12; a run that cannot take σ² down 100× prints a note."""
    from vsm.reproduce import images

    full = images.ImagesConfig.full()
    assert images.sigma2_reach(full) == pytest.approx(1e-4 * (1000 * 14 // 5), rel=1e-9)
    assert images.sigma2_reach(full, train_size=60_000) == pytest.approx(12.0)
    full.variant = "paper"  # its decoder parameter is log σ: log σ² moves twice as far
    assert images.sigma2_reach(full) == pytest.approx(0.56)
    full.dataset = "mnist"  # epochs of a data set of unknown size: not judged
    assert images.sigma2_reach(full) is None
    long = images.ImagesConfig(steps=250_000, k_enc=5, lr=1e-4)
    assert images.sigma2_reach(long) == pytest.approx(5.0)
    cfg = _tiny_images_config(objectives=("kl-m1",), steps=2, eval_every=2, latent_dim=3)
    images.run(tmp_path, cfg)
    assert "too few iterations for the paper's image claims" in capsys.readouterr().err


def test_main_cli_fig1(tmp_path, capsys):
    from vsm.reproduce import main

    assert main(["fig1", "--quick", "--out", str(tmp_path / "o")]) == 0
    data = json.loads((tmp_path / "o" / "results.json").read_text())
    assert data["figure"] == "fig1" and all_finite(data)
    # the gradient-based check agrees with the closed form on the mismatched-α JFD cases
    rows = [r for r in data["mc_check"]["rows"] if r["method"] == "jfd" and r["alpha"] != 1.0]
    assert max(abs(r["theta_hat_mc"] - r["theta_hat_closed"]) for r in rows) < 0.05
    # --resume: a complete one-piece figure is not run again
    capsys.readouterr()
    assert main(["fig1", "--quick", "--out", str(tmp_path / "o"), "--resume"]) == 0
    assert "already in" in capsys.readouterr().err
    with pytest.raises(UsageError, match="invalid choice: 'nope'"):  # vsm: error: ..., exit 2
        main(["nope", "--out", str(tmp_path)])


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("fig1", "Fig1Config"),
        ("fig2", "Fig2Config"),
        ("fig3", "Fig3Config"),
        ("images", "ImagesConfig"),
    ],
)
def test_each_figure_runs_its_own_config(name, config):
    """``vsm reproduce NAME`` builds the figure's own config (not the shared base class that the
    figure module also imports)."""
    import importlib

    from vsm import reproduce

    mod = importlib.import_module(f"vsm.reproduce.{name}")
    assert reproduce._config_class(mod) is getattr(mod, config)


def test_presets_give_each_mode_its_values():
    from dataclasses import dataclass

    from vsm.reproduce._common import FigureConfig, preset

    @dataclass
    class Toy(FigureConfig):
        steps: int = preset(10, quick=2, full=100)
        lr: float = preset(0.1, full=0.01)
        seed: int = 0

    assert Toy.modes() == ("quick", "full")
    assert Toy.quick() == Toy(steps=2) and Toy.full() == Toy(steps=100, lr=0.01)
    assert Toy() == Toy(steps=10, lr=0.1, seed=0)
    with pytest.raises(ValueError, match="^mode: Toy has the modes"):
        Toy.medium()
    with pytest.raises(ValueError, match="^modes: expected names among"):
        preset(1, fast=2)
    from vsm.reproduce.fig3 import Fig3Config

    assert Fig3Config.modes() == ("quick", "medium", "full", "paper")


def test_main_cli_interrupted_says_where_the_results_are(tmp_path, capsys, monkeypatch):
    """A sweep stopped by SIGTERM exits 128 + 15 and says how to continue; it names results.json
    only when one was written (a sweep stopped before its first unit finished has none)."""
    import signal

    import vsm.reproduce as R
    from vsm.train.stopping import TrainingInterrupted

    def stopped(*args: Any, **kwargs: Any) -> None:
        raise TrainingInterrupted(signal.SIGTERM)

    monkeypatch.setattr(R, "run", stopped)
    out = tmp_path / "o"
    assert R.main(["fig1", "--quick", "--out", str(out)]) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "no run had finished yet" in err and err.rstrip().endswith(
        "--out " + str(out) + " --resume"
    )
    (out / "results.json").write_text('{"figure": "fig1"}')
    assert R.main(["fig1", "--quick", "--out", str(out), "--resume"]) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert f"finished runs are in {out / 'results.json'}" in err


def test_results_kept_on_stop_updates_only_an_existing_results_file(tmp_path):
    """On an exception the block's snapshot replaces results.json, if there is one; none is
    created (the interrupt message says "no run had finished yet" then), and the exception
    passes on unchanged."""
    from vsm.reproduce._common import results_kept_on_stop, write_results

    with pytest.raises(KeyboardInterrupt), results_kept_on_stop(tmp_path, lambda: {"seconds": 2.0}):
        raise KeyboardInterrupt
    assert not (tmp_path / "results.json").exists()
    write_results(tmp_path, {"figure": "fig3", "seconds": 1.0})
    with results_kept_on_stop(tmp_path, lambda: {"seconds": 2.0}):  # no exception: untouched
        pass
    assert json.loads((tmp_path / "results.json").read_text())["seconds"] == 1.0
    with pytest.raises(ValueError, match="units failed"):
        with results_kept_on_stop(tmp_path, lambda: {"figure": "fig3", "seconds": 3.0}):
            raise ValueError("units failed")
    assert json.loads((tmp_path / "results.json").read_text())["seconds"] == 3.0
