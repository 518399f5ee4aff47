"""Bad input to every public function of API.md: a table of function × kind of bad input.

Each row calls one public function with exactly one argument made bad and asserts the exception
type (TypeError for wrong types/dtypes, ValueError for shapes, values, devices) and that the message
names the offending argument. Kinds of bad input: wrong type (list / ndarray where a tensor is
needed), integer dtype, dtype mismatch between arguments, shape mismatch, wrong rank, empty batch,
device mismatch (the ``meta`` device stands in for a second device, as no GPU is available here),
meaningless values (NaN/zero/negative sigma, n_probes < 1, unknown dist strings, NaN/inf weights).

A second table checks that non-contiguous (transposed, strided) and expanded (stride-0) tensors
are HANDLED: the result equals the result for the contiguous copy. Fused ops run through the
Triton kernels under the interpreter (conftest sets TRITON_INTERPRET=1), with tiny shapes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import vsm
from vsm import objectives as O
from vsm import score as S
from vsm import toy

F64 = torch.float64
META = torch.device("meta")
B, D, L, N = 3, 4, 2, 2


def t(*shape, dtype=F64, device="cpu"):
    return torch.randn(shape, dtype=dtype, device=device)


def score_fn(x):
    return -x * 1.5


def noise_score_fn(x, sigma):
    return -x / (1.0 + sigma**2)


def decoder(z):
    w = torch.linspace(-1.0, 1.0, L * D, dtype=z.dtype).reshape(L, D)
    return torch.tanh(z @ w)


# -------------------------------------------------------------------- valid argument builders
def _pfd(**kw):
    a = {"z": t(N, B, L), "mu": t(B, L), "logvar": t(B, L), "grad_loglik_z": t(N, B, L)}
    a.update(kw)
    return vsm.posterior_fd(a["z"], a["mu"], a["logvar"], a["grad_loglik_z"])


def _gt(**kw):
    a = {"x": t(B, D), "x_mean": t(N, B, D), "log_sigma2": t()}
    a.update(kw)
    return vsm.gaussian_terms(a["x"], a["x_mean"], a["log_sigma2"])


def _hutch(**kw):
    inputs = kw.pop("inputs", None)
    if inputs is None:
        inputs = t(B, D).requires_grad_(True)
    outputs = kw.pop("outputs", None)
    if outputs is None:
        outputs = torch.tanh(inputs) * 2.0
    opts = {"n_probes": 2, "dist": "rademacher", "seed": 0}
    opts.update(kw)
    return vsm.hutchinson_trace(outputs, inputs, **opts)


def _io(inputs, f):
    """hutchinson_trace arguments: inputs (made to require grad) and outputs = f(inputs)."""
    inputs = inputs.requires_grad_(True)
    return {"inputs": inputs, "outputs": f(inputs)}


def _elbo(**kw):
    a = {"x": t(B, D), "x_mean": t(N, B, D), "log_sigma2": t(), "mu": t(B, L), "logvar": t(B, L)}
    a.update(kw)
    return O.elbo(a["x"], a["x_mean"], a["log_sigma2"], a["mu"], a["logvar"])


def _m(fn):
    def call(**kw):
        a = {"x": t(B, D), "x_mean": t(N, B, D), "log_sigma2": t()}
        a.update(kw)
        return fn(a["x"], a["x_mean"], a["log_sigma2"])

    return call


def _m3(**kw):
    a = {"x": t(B, D), "x_mean": t(N, B, D), "log_sigma2": t(), "psi": t(N, B, D)}
    a.update(kw)
    return O.m3(a["x"], a["x_mean"], a["log_sigma2"], a["psi"])


def _pfd_loss(**kw):
    a = {"x": t(B, D), "mu": t(B, L), "logvar": t(B, L), "log_sigma2": t(), "n_samples": 2,
         "reparam": True}
    a.update(kw)
    return O.posterior_fd_loss(
        a["x"], a.get("decoder", decoder), a["mu"], a["logvar"], a["log_sigma2"],
        n_samples=a["n_samples"], reparam=a["reparam"],
    )


def _exact(**kw):
    a = {"x": t(B, D), "score_fn": score_fn}
    a.update(kw)
    return S.exact_sm(a["score_fn"], a["x"])


def _sliced(**kw):
    a = {"x": t(B, D), "score_fn": score_fn}
    a.update(kw)
    x, fn = a.pop("x"), a.pop("score_fn")
    a.setdefault("seed", 0)
    return S.sliced_sm(fn, x, **a)


def _dsm(**kw):
    a = {"x": t(B, D), "sigma": 0.5, "score_fn": score_fn, "seed": 0}
    a.update(kw)
    return S.dsm(a["score_fn"], a["x"], a["sigma"], seed=a["seed"])


def _mdsm(**kw):
    a = {"x": t(B, D), "sigmas": [1.0, 0.5], "score_fn": noise_score_fn, "seed": 0}
    a.update(kw)
    return S.multiscale_dsm(a["score_fn"], a["x"], a["sigmas"], seed=a["seed"])


def _langevin(**kw):
    a = {"x0": t(B, D), "sigmas": [1.0, 0.5], "n_steps": 2, "step_size": 0.01, "seed": 0}
    a.update(kw)
    return S.annealed_langevin(
        a.get("score_fn", noise_score_fn), a["x0"], a["sigmas"], n_steps=a["n_steps"], step_size=a["step_size"],
        seed=a["seed"],
    )


def _isle(**kw):
    return vsm.is_log_evidence(kw.get("log_w", t(B, 5)))


def _isacc_init(**kw):
    a = {"x": t(B, D), "log_sigma2": 0.1}
    a.update(kw)
    return vsm.ISAccumulator(a["x"], a["log_sigma2"])


def _isacc_add(**kw):
    acc = vsm.ISAccumulator(t(B, D), 0.1)
    a = {"x_mean": t(B, 5, D), "log_prior": t(B, 5), "log_proposal": t(B, 5)}
    a.update(kw)
    acc.add(a["x_mean"], a["log_prior"], a["log_proposal"])
    return acc.result()


def _toy(**kw):
    a = {"model": "sym", "x": np.array([0.5, -1.0]), "n": 21}
    a.update(kw)
    model, x = a.pop("model"), a.pop("x")
    return toy.posterior(model, x, **a)


_AX = np.linspace(-3.0, 3.0, 11)


def _grid(**kw):
    a = {"log_joint": -0.5 * _AX[None, :] ** 2 + np.zeros((2, 1)), "axes": (_AX,)}
    a.update(kw)
    return toy.grid_posterior(a["log_joint"], a["axes"])


TE, VE = TypeError, ValueError
NAN = float("nan")

# (id, call, kwargs making one argument bad, exception, regex naming the argument)
CASES = [
    # ---------------------------------------------------------------- posterior_fd
    ("pfd-list", _pfd, lambda: {"z": t(B, L).tolist()}, TE, "z"),
    ("pfd-ndarray", _pfd, lambda: {"mu": np.zeros((B, L))}, TE, "mu"),
    ("pfd-int", _pfd, lambda: {"logvar": torch.zeros(B, L, dtype=torch.int64)}, TE, "logvar"),
    ("pfd-dtype-mix", _pfd, lambda: {"grad_loglik_z": t(N, B, L, dtype=torch.float32)}, TE,
     "grad_loglik_z"),
    ("pfd-shape", _pfd, lambda: {"mu": t(B + 1, L)}, VE, "mu"),
    ("pfd-shape-g", _pfd, lambda: {"grad_loglik_z": t(N, B, L + 1)}, VE, "grad_loglik_z"),
    ("pfd-rank", _pfd, lambda: {"logvar": t(1, B, L)}, VE, "logvar"),
    ("pfd-rank-z", _pfd, lambda: {"z": t(1, N, B, L)}, VE, "z"),
    ("pfd-empty", _pfd, lambda: {"z": t(N, 0, L), "mu": t(0, L), "logvar": t(0, L),
                                     "grad_loglik_z": t(N, 0, L)}, VE, "z"),
    ("pfd-device", _pfd, lambda: {"mu": t(B, L, device=META)}, VE, "mu"),
    # ---------------------------------------------------------------- gaussian_terms
    ("gt-list", _gt, lambda: {"x": t(B, D).tolist()}, TE, "x"),
    ("gt-ndarray", _gt, lambda: {"x_mean": np.zeros((N, B, D))}, TE, "x_mean"),
    ("gt-float", _gt, lambda: {"log_sigma2": 0.0}, TE, "log_sigma2"),
    ("gt-int", _gt, lambda: {"x": torch.zeros(B, D, dtype=torch.int32)}, TE, "x"),
    ("gt-dtype-mix", _gt, lambda: {"log_sigma2": t(dtype=torch.float32)}, TE, "log_sigma2"),
    ("gt-shape", _gt, lambda: {"x_mean": t(N, B, D + 1)}, VE, "x_mean"),
    ("gt-rank", _gt, lambda: {"log_sigma2": t(1)}, VE, "log_sigma2"),
    ("gt-empty", _gt, lambda: {"x": t(0, D), "x_mean": t(N, 0, D)}, VE, "x"),
    ("gt-device", _gt, lambda: {"x_mean": t(N, B, D, device=META)}, VE, "x_mean"),
    # ---------------------------------------------------------------- hutchinson_trace
    ("hutch-list", _hutch, lambda: {"outputs": [[1.0] * D] * B}, TE, "outputs"),
    ("hutch-int", _hutch, lambda: {"inputs": torch.zeros(B, D, dtype=torch.int64)}, TE, "inputs"),
    ("hutch-dtype-mix", _hutch,
     lambda: {"outputs": t(B, D, dtype=torch.float32).requires_grad_(True)}, TE, "outputs"),
    ("hutch-shape", _hutch, lambda: {"outputs": t(B, D + 1).requires_grad_(True)}, VE, "outputs"),
    ("hutch-rank", _hutch, lambda: _io(t(B, D, 1), lambda i: i.squeeze(-1) * 2.0), VE,
     "inputs"),
    ("hutch-empty", _hutch, lambda: _io(t(0, D), lambda i: i * 2.0), VE, "inputs"),
    ("hutch-device", _hutch, lambda: {"outputs": t(B, D, device=META).requires_grad_(True)}, VE,
     "outputs"),
    ("hutch-nograd", _hutch, lambda: {"inputs": t(B, D)}, VE, "inputs"),
    ("hutch-probes0", _hutch, lambda: {"n_probes": 0}, VE, "n_probes"),
    ("hutch-probes-neg", _hutch, lambda: {"n_probes": -3}, VE, "n_probes"),
    ("hutch-probes-float", _hutch, lambda: {"n_probes": 2.0}, TE, "n_probes"),
    ("hutch-dist", _hutch, lambda: {"dist": "uniform"}, VE, "dist"),
    ("hutch-seed-neg", _hutch, lambda: {"seed": -1}, VE, "seed"),
    ("hutch-seed-float", _hutch, lambda: {"seed": 1.5}, TE, "seed"),
    ("hutch-seed-big", _hutch, lambda: {"seed": 2**63}, VE, "seed"),
    # ---------------------------------------------------------------- objectives.elbo
    ("elbo-list", _elbo, lambda: {"x": t(B, D).tolist()}, TE, "x"),
    ("elbo-ndarray", _elbo, lambda: {"mu": np.zeros((B, L))}, TE, "mu"),
    ("elbo-int", _elbo, lambda: {"logvar": torch.zeros(B, L, dtype=torch.int64)}, TE, "logvar"),
    ("elbo-dtype-mix", _elbo, lambda: {"x_mean": t(N, B, D, dtype=torch.float32)}, TE, "x_mean"),
    ("elbo-shape", _elbo, lambda: {"logvar": t(B, L + 1)}, VE, "logvar"),
    ("elbo-batch", _elbo, lambda: {"mu": t(B + 1, L), "logvar": t(B + 1, L)}, VE, "mu"),
    ("elbo-rank", _elbo, lambda: {"x": t(B, D, 1)}, VE, "x"),
    ("elbo-empty", _elbo,
     lambda: {"x": t(0, D), "x_mean": t(N, 0, D), "mu": t(0, L), "logvar": t(0, L)},
     VE, "x"),
    ("elbo-device", _elbo, lambda: {"log_sigma2": t(device=META)}, VE, "log_sigma2"),
    # ---------------------------------------------------------------- objectives.m1 / m2
    *[
        row
        for name, fn in (("m1", O.m1), ("m2", O.m2))
        for row in (
            (f"{name}-list", _m(fn), lambda: {"x_mean": t(N, B, D).tolist()}, TE, "x_mean"),
            (f"{name}-int", _m(fn), lambda: {"x": torch.ones(B, D, dtype=torch.int64)}, TE, "x"),
            (f"{name}-dtype-mix", _m(fn), lambda: {"x_mean": t(N, B, D, dtype=torch.float32)},
             TE, "x_mean"),
            (f"{name}-shape", _m(fn), lambda: {"x_mean": t(N, B + 1, D)}, VE, "x_mean"),
            (f"{name}-rank", _m(fn), lambda: {"log_sigma2": t(B)}, VE, "log_sigma2"),
            (f"{name}-empty", _m(fn), lambda: {"x_mean": t(0, B, D)}, VE, "x_mean"),
            (f"{name}-device", _m(fn), lambda: {"x_mean": t(N, B, D, device=META)}, VE,
             "x_mean"),
        )
    ],
    # ---------------------------------------------------------------- objectives.m3
    ("m3-ndarray", _m3, lambda: {"psi": np.zeros((N, B, D))}, TE, "psi"),
    ("m3-int", _m3, lambda: {"psi": torch.zeros(N, B, D, dtype=torch.int64)}, TE, "psi"),
    ("m3-dtype-mix", _m3, lambda: {"psi": t(N, B, D, dtype=torch.float32)}, TE, "psi"),
    ("m3-shape", _m3, lambda: {"psi": t(N + 1, B, D)}, VE, "psi"),
    ("m3-rank", _m3, lambda: {"psi": t(D)}, VE, "psi"),
    ("m3-empty", _m3, lambda: {"x": t(0, D), "x_mean": t(N, 0, D), "psi": t(N, 0, D)}, VE, "x"),
    ("m3-device", _m3, lambda: {"psi": t(N, B, D, device=META)}, VE, "psi"),
    # ---------------------------------------------------------------- objectives.posterior_fd_loss
    ("pfdl-list", _pfd_loss, lambda: {"mu": t(B, L).tolist()}, TE, "mu"),
    ("pfdl-int", _pfd_loss, lambda: {"x": torch.zeros(B, D, dtype=torch.int64)}, TE, "x"),
    ("pfdl-dtype-mix", _pfd_loss, lambda: {"logvar": t(B, L, dtype=torch.float32)}, TE, "logvar"),
    ("pfdl-shape", _pfd_loss, lambda: {"logvar": t(B, L + 1)}, VE, "logvar"),
    ("pfdl-rank", _pfd_loss, lambda: {"mu": t(B), "logvar": t(B)}, VE, "mu"),
    ("pfdl-empty", _pfd_loss, lambda: {"x": t(0, D), "mu": t(0, L), "logvar": t(0, L)}, VE, "x"),
    ("pfdl-device", _pfd_loss, lambda: {"mu": t(B, L, device=META)}, VE, "mu"),
    ("pfdl-n0", _pfd_loss, lambda: {"n_samples": 0}, VE, "n_samples"),
    ("pfdl-nfloat", _pfd_loss, lambda: {"n_samples": 1.0}, TE, "n_samples"),
    ("pfdl-reparam", _pfd_loss, lambda: {"reparam": "yes"}, TE, "reparam"),
    ("pfdl-nbool", _pfd_loss, lambda: {"n_samples": True}, TE, "n_samples"),
    ("pfdl-decoder-call", _pfd_loss, lambda: {"decoder": 3}, TE, "decoder"),
    ("pfdl-decoder-list", _pfd_loss, lambda: {"decoder": lambda z: [0.0]}, TE, "decoder"),
    ("pfdl-decoder-shape", _pfd_loss, lambda: {"decoder": lambda z: z}, VE, "decoder"),
    # ---------------------------------------------------------------- score.exact_sm
    ("exact-list", _exact, lambda: {"x": t(B, D).tolist()}, TE, "x"),
    ("exact-int", _exact, lambda: {"x": torch.zeros(B, D, dtype=torch.int64)}, TE, "x"),
    ("exact-dtype-mix", _exact, lambda: {"score_fn": lambda x: x.float()}, TE, "score_fn"),
    ("exact-shape", _exact, lambda: {"score_fn": lambda x: x[:, :-1]}, VE, "score_fn"),
    ("exact-rank", _exact, lambda: {"x": t(D)}, VE, "x"),
    ("exact-empty", _exact, lambda: {"x": t(0, D)}, VE, "x"),
    ("exact-device", _exact, lambda: {"score_fn": lambda x: torch.zeros_like(x, device=META)},
     VE, "score_fn"),
    ("exact-not-tensor", _exact, lambda: {"score_fn": lambda x: x.tolist()}, TE, "score_fn"),
    ("exact-not-callable", _exact, lambda: {"score_fn": None}, TE, "score_fn"),
    # ---------------------------------------------------------------- score.sliced_sm
    ("sliced-ndarray", _sliced, lambda: {"x": np.zeros((B, D))}, TE, "x"),
    ("sliced-int", _sliced, lambda: {"x": torch.zeros(B, D, dtype=torch.int8)}, TE, "x"),
    ("sliced-dtype-mix", _sliced, lambda: {"score_fn": lambda x: x.float()}, TE, "score_fn"),
    ("sliced-shape", _sliced, lambda: {"score_fn": lambda x: x.sum(-1)}, VE, "score_fn"),
    ("sliced-rank", _sliced, lambda: {"x": t(B, D, 2)}, VE, "x"),
    ("sliced-empty", _sliced, lambda: {"x": t(0, D)}, VE, "x"),
    ("sliced-probes0", _sliced, lambda: {"n_probes": 0}, VE, "n_probes"),
    ("sliced-probes-neg", _sliced, lambda: {"n_probes": -1}, VE, "n_probes"),
    ("sliced-dist", _sliced, lambda: {"dist": "normal"}, VE, "dist"),
    ("sliced-dist-type", _sliced, lambda: {"dist": 1}, VE, "dist"),
    ("sliced-vr", _sliced, lambda: {"variance_reduced": 1}, TE, "variance_reduced"),
    ("sliced-not-callable", _sliced, lambda: {"score_fn": "s"}, TE, "score_fn"),
    # ---------------------------------------------------------------- score.dsm
    ("dsm-list", _dsm, lambda: {"x": [[0.0] * D] * B}, TE, "x"),
    ("dsm-int", _dsm, lambda: {"x": torch.zeros(B, D, dtype=torch.int64)}, TE, "x"),
    ("dsm-dtype-mix", _dsm, lambda: {"score_fn": lambda x: x.float()}, TE, "score_fn"),
    ("dsm-shape", _dsm, lambda: {"score_fn": lambda x: x.T}, VE, "score_fn"),
    ("dsm-rank", _dsm, lambda: {"x": t(B)}, VE, "x"),
    ("dsm-empty", _dsm, lambda: {"x": t(0, D)}, VE, "x"),
    ("dsm-sigma-nan", _dsm, lambda: {"sigma": NAN}, VE, "sigma"),
    ("dsm-sigma-zero", _dsm, lambda: {"sigma": 0.0}, VE, "sigma"),
    ("dsm-sigma-neg", _dsm, lambda: {"sigma": -0.1}, VE, "sigma"),
    ("dsm-sigma-inf", _dsm, lambda: {"sigma": math.inf}, VE, "sigma"),
    ("dsm-sigma-str", _dsm, lambda: {"sigma": "0.5"}, TE, "sigma"),
    ("dsm-sigma-vec", _dsm, lambda: {"sigma": torch.ones(2)}, VE, "sigma"),
    ("dsm-seed", _dsm, lambda: {"seed": -2}, VE, "seed"),
    ("dsm-sigma-bool", _dsm, lambda: {"sigma": True}, TE, "sigma"),
    ("dsm-not-callable", _dsm, lambda: {"score_fn": 1.0}, TE, "score_fn"),
    # ---------------------------------------------------------------- score.multiscale_dsm
    ("mdsm-ndarray", _mdsm, lambda: {"x": np.zeros((B, D))}, TE, "x"),
    ("mdsm-int", _mdsm, lambda: {"x": torch.zeros(B, D, dtype=torch.int64)}, TE, "x"),
    ("mdsm-dtype-mix", _mdsm, lambda: {"score_fn": lambda x, s: x.float()}, TE, "score_fn"),
    ("mdsm-shape", _mdsm, lambda: {"score_fn": lambda x, s: x[:1]}, VE, "score_fn"),
    ("mdsm-rank", _mdsm, lambda: {"x": t(1, B, D)}, VE, "x"),
    ("mdsm-empty", _mdsm, lambda: {"x": t(0, D)}, VE, "x"),
    ("mdsm-sigmas-empty", _mdsm, lambda: {"sigmas": []}, VE, "sigmas"),
    ("mdsm-sigmas-nan", _mdsm, lambda: {"sigmas": [1.0, NAN]}, VE, "sigmas"),
    ("mdsm-sigmas-neg", _mdsm, lambda: {"sigmas": [1.0, -0.5]}, VE, "sigmas"),
    ("mdsm-sigmas-type", _mdsm, lambda: {"sigmas": 0.5}, TE, "sigmas"),
    ("mdsm-sigmas-rank", _mdsm, lambda: {"sigmas": torch.ones(2, 2)}, VE, "sigmas"),
    ("mdsm-sigmas-str", _mdsm, lambda: {"sigmas": "abc"}, TE, "sigmas"),
    ("mdsm-not-callable", _mdsm, lambda: {"score_fn": 0}, TE, "score_fn"),
    # ---------------------------------------------------------------- score.annealed_langevin
    ("lang-list", _langevin, lambda: {"x0": [[0.0] * D]}, TE, "x0"),
    ("lang-int", _langevin, lambda: {"x0": torch.zeros(B, D, dtype=torch.int64)}, TE, "x0"),
    ("lang-rank", _langevin, lambda: {"x0": t(D)}, VE, "x0"),
    ("lang-empty", _langevin, lambda: {"x0": t(0, D)}, VE, "x0"),
    ("lang-sigmas-nan", _langevin, lambda: {"sigmas": [NAN]}, VE, "sigmas"),
    ("lang-sigmas-increasing", _langevin, lambda: {"sigmas": [0.5, 1.0]}, VE, "sigmas"),
    ("lang-steps0", _langevin, lambda: {"n_steps": 0}, VE, "n_steps"),
    ("lang-steps-float", _langevin, lambda: {"n_steps": 2.5}, TE, "n_steps"),
    ("lang-step-size", _langevin, lambda: {"step_size": -1.0}, VE, "step_size"),
    ("lang-step-size-nan", _langevin, lambda: {"step_size": NAN}, VE, "step_size"),
    ("lang-dtype-mix", _langevin, lambda: {"score_fn": lambda x, s: x.float()}, TE, "score_fn"),
    ("lang-shape", _langevin, lambda: {"score_fn": lambda x, s: x[:1]}, VE, "score_fn"),
    ("lang-not-callable", _langevin, lambda: {"score_fn": None}, TE, "score_fn"),
    # ---------------------------------------------------------------- is_log_evidence
    ("isle-list", _isle, lambda: {"log_w": [[0.0, 1.0]]}, TE, "log_w"),
    ("isle-int", _isle, lambda: {"log_w": torch.zeros(B, 5, dtype=torch.int64)}, TE, "log_w"),
    ("isle-np-int", _isle, lambda: {"log_w": np.zeros((B, 5), dtype=np.int32)}, TE, "log_w"),
    ("isle-rank", _isle, lambda: {"log_w": t(5)}, VE, "log_w"),
    ("isle-empty-B", _isle, lambda: {"log_w": t(0, 5)}, VE, "log_w"),
    ("isle-empty-K", _isle, lambda: {"log_w": np.zeros((B, 0))}, VE, "log_w"),
    ("isle-nan", _isle, lambda: {"log_w": torch.tensor([[0.0, NAN]], dtype=F64)}, VE, "log_w"),
    ("isle-inf", _isle, lambda: {"log_w": np.array([[0.0, math.inf]])}, VE, "log_w"),
    ("isle-meta", _isle, lambda: {"log_w": t(B, 5, device=META)}, VE, "log_w"),
    # ---------------------------------------------------------------- ISAccumulator(x, log_sigma2)
    ("isacc-x-list", _isacc_init, lambda: {"x": [[0.0] * D]}, TE, "x"),
    ("isacc-x-int", _isacc_init, lambda: {"x": torch.zeros(B, D, dtype=torch.int64)}, TE, "x"),
    ("isacc-x-rank", _isacc_init, lambda: {"x": t(B, D, 1)}, VE, "x"),
    ("isacc-x-empty", _isacc_init, lambda: {"x": t(0, D)}, VE, "x"),
    ("isacc-x-nan", _isacc_init, lambda: {"x": torch.full((B, D), NAN, dtype=F64)}, VE, "x"),
    ("isacc-ls2-nan", _isacc_init, lambda: {"log_sigma2": NAN}, VE, "log_sigma2"),
    ("isacc-ls2-str", _isacc_init, lambda: {"log_sigma2": "0"}, TE, "log_sigma2"),
    ("isacc-ls2-vec", _isacc_init, lambda: {"log_sigma2": torch.zeros(2)}, VE, "log_sigma2"),
    ("isacc-ls2-int", _isacc_init, lambda: {"log_sigma2": torch.tensor(0)}, TE, "log_sigma2"),
    ("isacc-x-meta", _isacc_init, lambda: {"x": t(B, D, device=META)}, VE, "x"),
    # ---------------------------------------------------------------- ISAccumulator.add
    ("isadd-meta", _isacc_add, lambda: {"x_mean": t(B, 5, D, device=META)}, VE, "x_mean"),
    ("isadd-f16", _isacc_add, lambda: {"x_mean": np.zeros((B, 5, D), np.float16)}, TE, "x_mean"),
    ("isadd-list", _isacc_add, lambda: {"x_mean": t(B, 5, D).tolist()}, TE, "x_mean"),
    ("isadd-int", _isacc_add, lambda: {"log_prior": torch.zeros(B, 5, dtype=torch.int64)}, TE,
     "log_prior"),
    ("isadd-shape-D", _isacc_add, lambda: {"x_mean": t(B, 5, D + 1)}, VE, "x_mean"),
    ("isadd-shape-B", _isacc_add, lambda: {"log_proposal": t(B + 1, 5)}, VE, "log_proposal"),
    ("isadd-shape-K", _isacc_add, lambda: {"log_prior": t(B, 4)}, VE, "log_prior"),
    ("isadd-rank", _isacc_add, lambda: {"x_mean": t(B, D)}, VE, "x_mean"),
    ("isadd-empty-K", _isacc_add, lambda: {"x_mean": t(B, 0, D), "log_prior": t(B, 0),
                                               "log_proposal": t(B, 0)}, VE, "x_mean"),
    ("isadd-nan", _isacc_add, lambda: {"log_proposal": torch.full((B, 5), NAN, dtype=F64)}, VE,
     "log_proposal"),
    # ---------------------------------------------------------------- toy.posterior
    ("toy-model", _toy, lambda: {"model": "nope"}, VE, "model"),
    ("toy-x-str", _toy, lambda: {"x": np.array(["a"])}, TE, "x"),
    ("toy-x-nan", _toy, lambda: {"x": np.array([NAN])}, VE, "x"),
    ("toy-x-empty", _toy, lambda: {"x": np.zeros(0)}, VE, "x"),
    ("toy-x-shape", _toy, lambda: {"model": "linear", "W": np.ones((2, 1)), "x": np.zeros((3, 3))},
     VE, "x"),
    ("toy-n-small", _toy, lambda: {"n": 2}, VE, "n"),
    ("toy-n-float", _toy, lambda: {"n": 20.0}, TE, "n"),
    ("toy-lohi", _toy, lambda: {"lo": 1.0, "hi": -1.0}, VE, "lo"),
    ("toy-lo-nan", _toy, lambda: {"lo": NAN}, VE, "lo"),
    ("toy-sigma-neg", _toy, lambda: {"sigma": -1.0}, VE, "sigma"),
    ("toy-sigma-nan", _toy, lambda: {"sigma": NAN}, VE, "sigma"),
    ("toy-param", _toy, lambda: {"gamma": 1.0}, VE, "gamma"),
    ("toy-sigma-str", _toy, lambda: {"sigma": "a"}, TE, "sigma"),
    ("toy-alpha-nan", _toy, lambda: {"model": "soft", "alpha": NAN}, VE, "alpha"),
    ("toy-x-meta", _toy, lambda: {"x": torch.zeros(2, device=META)}, VE, "x"),
    ("toy-b-len", _toy, lambda: {"model": "linear", "W": np.ones((2, 1)), "b": np.ones(3),
                                 "x": np.zeros((3, 2))}, VE, "b"),
    ("toy-W-nan", _toy, lambda: {"model": "linear", "W": np.full((1, 1), NAN)}, VE, "W"),
    ("toy-W-rank", _toy, lambda: {"model": "linear", "W": np.ones((1, 1, 1)), "x": np.zeros(1)}, VE,
     "W"),
    # ---------------------------------------------------------------- toy.grid_posterior
    ("grid-axes-type", _grid, lambda: {"axes": 1.0}, VE, "axes"),
    ("grid-axes-rank", _grid, lambda: {"axes": (np.zeros((3, 3)),)}, VE, "axes"),
    ("grid-axes-nonuniform", _grid, lambda: {"axes": (np.r_[_AX[:-1], 10.0],)}, VE, "axes"),
    ("grid-axes-short", _grid, lambda: {"axes": (_AX[:2],), "log_joint": np.zeros((2, 2))}, VE,
     "axes"),
    ("grid-lj-shape", _grid, lambda: {"log_joint": np.zeros((2, 12))}, VE, "log_joint"),
    ("grid-lj-str", _grid, lambda: {"log_joint": np.array(["a"] * 11)}, TE, "log_joint"),
    ("grid-lj-nan", _grid, lambda: {"log_joint": np.full((2, 11), NAN)}, VE, "log_joint"),
    ("grid-lj-allneginf", _grid, lambda: {"log_joint": np.full((2, 11), -math.inf)}, VE,
     "log_joint"),
    ("grid-axes-three", _grid, lambda: {"axes": (_AX,) * 3}, VE, "axes"),
    ("grid-axes-nan", _grid, lambda: {"axes": (np.r_[_AX[:-1], NAN],)}, VE, "axes"),
    ("grid-lj-complex", _grid, lambda: {"log_joint": np.zeros((2, 11), complex)}, TE, "log_joint"),
    ("grid-lj-meta", _grid, lambda: {"log_joint": torch.zeros(2, 11, device=META)}, VE,
     "log_joint"),
    ("grid-lj-empty", _grid, lambda: {"log_joint": np.zeros((0, 11))}, VE, "log_joint"),
]


@pytest.mark.parametrize(
    "call, bad, exc, match", [pytest.param(*c[1:], id=c[0]) for c in CASES]
)
def test_bad_input_raises_naming_argument(call, bad, exc, match):
    with pytest.raises(exc, match=rf"\b{match}\b") as info:
        call(**bad())
    assert type(info.value) is exc, f"expected exactly {exc.__name__}, got {info.type.__name__}"


# ===================================================================== layouts that must be handled
def _strided(a):
    """Same values, last dimension with stride 2 (a non-contiguous view)."""
    if a.ndim == 0:
        return a
    if isinstance(a, np.ndarray):
        buf = np.zeros((*a.shape[:-1], 2 * a.shape[-1]), dtype=a.dtype)
        view = buf[..., ::2]
        view[...] = a
        return view
    buf = torch.zeros((*a.shape[:-1], 2 * a.shape[-1]), dtype=a.dtype, device=a.device)
    view = buf[..., ::2]
    view.copy_(a)
    return view


def _transposed(a):
    """Same values, stored in reversed-dimension (Fortran) order; 1-D falls back to strided."""
    if a.ndim < 2:
        return _strided(a)
    rev = tuple(range(a.ndim))[::-1]
    if isinstance(a, np.ndarray):
        return np.ascontiguousarray(a.transpose(rev)).transpose(rev)
    return a.permute(rev).contiguous().permute(rev)


def _same(a):
    return a


def _noncontig(f):
    """Wrap a layout so that it checks it really produced a non-contiguous array."""

    def lay(a):
        out = f(a)
        if a.ndim:
            flag = out.flags.c_contiguous if isinstance(out, np.ndarray) else out.is_contiguous()
            assert not flag, f"{f.__name__} left shape {tuple(a.shape)} contiguous"
        return out

    return lay


LAYOUTS = {"strided": _noncontig(_strided), "transposed": _noncontig(_transposed)}


def _gen(seed, *shape):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, dtype=F64, generator=g)


# Each row: lay -> result, with every array argument passed through ``lay``.
def _l_pfd(lay):
    return vsm.posterior_fd(lay(_gen(1, N, B, L)), lay(_gen(2, B, L)), lay(_gen(3, B, L)),
                            lay(_gen(4, N, B, L)))


def _l_pfd2(lay):
    return vsm.posterior_fd(lay(_gen(1, B, L)), lay(_gen(2, B, L)), lay(_gen(3, B, L)),
                            lay(_gen(4, B, L)))


def _l_gt(lay):
    return vsm.gaussian_terms(lay(_gen(1, B, D)), lay(_gen(2, N, B, D)), _gen(3))


def _l_hutch(lay):
    inputs = lay(_gen(1, B, D)).requires_grad_(True)
    return vsm.hutchinson_trace(torch.tanh(inputs) * inputs, inputs, n_probes=3, seed=7)


def _l_elbo(lay):
    return O.elbo(lay(_gen(1, B, D)), lay(_gen(2, N, B, D)), _gen(3), lay(_gen(4, B, L)),
                  lay(_gen(5, B, L)))


def _l_m1(lay):
    return O.m1(lay(_gen(1, B, D)), lay(_gen(2, N, B, D)), _gen(3))


def _l_m2(lay):
    return O.m2(lay(_gen(1, B, D)), lay(_gen(2, N, B, D)), _gen(3))


def _l_m3(lay):
    return O.m3(lay(_gen(1, B, D)), lay(_gen(2, N, B, D)), _gen(3), lay(_gen(4, N, B, D)))


def _l_pfdl(lay):
    torch.manual_seed(11)
    return O.posterior_fd_loss(lay(_gen(1, B, D)), decoder, lay(_gen(2, B, L)),
                               lay(_gen(3, B, L)), _gen(4), n_samples=2, reparam=True)


def _l_exact(lay):
    return S.exact_sm(lambda x: torch.tanh(x) - x, lay(_gen(1, B, D)))


def _l_sliced(lay):
    return S.sliced_sm(lambda x: torch.tanh(x) - x, lay(_gen(1, B, D)), n_probes=2, seed=3,
                       variance_reduced=False)


def _l_dsm(lay):
    return S.dsm(lambda x: torch.tanh(x) - x, lay(_gen(1, B, D)), 0.3, seed=5)


def _l_mdsm(lay):
    return S.multiscale_dsm(noise_score_fn, lay(_gen(1, B, D)), [1.0, 0.3], seed=5)


def _l_lang(lay):
    return S.annealed_langevin(noise_score_fn, lay(_gen(1, B, D)), [1.0, 0.3], n_steps=2,
                               step_size=0.01, seed=5)


def _l_isle_torch(lay):
    return vsm.is_log_evidence(lay(_gen(1, B, 6)))


def _l_isle_np(lay):
    return vsm.is_log_evidence(lay(_gen(1, B, 6).numpy()))


def _l_isacc(lay, to=lambda a: a):
    acc = vsm.ISAccumulator(lay(to(_gen(1, B, D))), 0.2)
    for k in range(2):
        acc.add(lay(to(_gen(10 + k, B, 5, D))), lay(to(_gen(20 + k, B, 5))),
                lay(to(_gen(30 + k, B, 5))))
    return acc.result()


def _l_isacc_np(lay):
    return _l_isacc(lay, to=lambda a: a.numpy())


def _l_isacc_f32(lay):
    return _l_isacc(lay, to=lambda a: a.float().numpy())


def _l_toy(lay):
    return toy.posterior("sym", lay(_gen(1, 2, 3).numpy()), n=15)


def _l_toy_linear(lay):
    return toy.posterior("linear", lay(_gen(1, 3, 2).numpy()), n=9, W=lay(_gen(2, 2, 2).numpy()))


def _l_grid(lay):
    ax = np.linspace(-3.0, 3.0, 9)
    lj = -0.5 * (ax[:, None] ** 2 + ax[None, :] ** 2) + _gen(1, 2, 9, 9).numpy() * 0.1
    return toy.grid_posterior(lay(lj), (lay(ax), lay(ax)))


LAYOUT_ROWS = {
    "posterior_fd": _l_pfd, "posterior_fd-2d": _l_pfd2, "gaussian_terms": _l_gt,
    "hutchinson_trace": _l_hutch, "elbo": _l_elbo, "m1": _l_m1, "m2": _l_m2, "m3": _l_m3,
    "posterior_fd_loss": _l_pfdl, "exact_sm": _l_exact, "sliced_sm": _l_sliced, "dsm": _l_dsm,
    "multiscale_dsm": _l_mdsm, "annealed_langevin": _l_lang, "is_log_evidence": _l_isle_torch,
    "is_log_evidence-np": _l_isle_np, "ISAccumulator": _l_isacc, "ISAccumulator-np": _l_isacc_np,
    "ISAccumulator-np-f32": _l_isacc_f32, "toy.posterior": _l_toy,
    "toy.posterior-linear": _l_toy_linear, "toy.grid_posterior": _l_grid,
}


def _arrays(out):
    """The numeric arrays of a result (tensor, ndarray, tuple, NamedTuple or dataclass)."""
    if isinstance(out, torch.Tensor):
        return [out.detach().numpy()]
    if isinstance(out, np.ndarray):
        return [out]
    if isinstance(out, tuple):
        return [a for o in out for a in _arrays(o)]
    if hasattr(out, "__dataclass_fields__"):
        return [a for f in out.__dataclass_fields__ if not f.startswith("_")
                for a in _arrays(getattr(out, f))]
    raise AssertionError(f"unexpected result type {type(out).__name__}")


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("row", sorted(LAYOUT_ROWS))
def test_non_contiguous_inputs_give_the_contiguous_result(row, layout):
    want = _arrays(LAYOUT_ROWS[row](_same))
    got = _arrays(LAYOUT_ROWS[row](LAYOUTS[layout]))
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def _expanded_cases():
    """(name, fn(expand: bool)): one argument is a stride-0 expand() (or np.broadcast_to) view."""

    def pfd(e):
        mu = _gen(2, 1, L).expand(B, L)
        return vsm.posterior_fd(_gen(1, N, B, L), mu if e else mu.contiguous(), _gen(3, B, L),
                                _gen(4, N, B, L))

    def pfd_z(e):
        z = _gen(1, B, L).expand(N, B, L)
        return vsm.posterior_fd(z if e else z.contiguous(), _gen(2, B, L), _gen(3, B, L),
                                _gen(4, N, B, L))

    def gt(e):
        xm = _gen(2, B, D).expand(N, B, D)
        return vsm.gaussian_terms(_gen(1, B, D), xm if e else xm.contiguous(), _gen(3))

    def gt_x(e):
        x = _gen(1, 1, D).expand(B, D)
        return vsm.gaussian_terms(x if e else x.contiguous(), _gen(2, N, B, D), _gen(3))

    def m3(e):
        ps = _gen(4, 1, B, D).expand(N, B, D)
        return O.m3(_gen(1, B, D), _gen(2, N, B, D), _gen(3), ps if e else ps.contiguous())

    def elbo(e):
        lv = torch.zeros(1, 1, dtype=F64).expand(B, L)
        return O.elbo(_gen(1, B, D), _gen(2, N, B, D), _gen(3), _gen(4, B, L),
                      lv if e else lv.contiguous())

    def hutch(e):
        x = _gen(1, 1, D).expand(B, D)
        inputs = (x if e else x.contiguous()).clone().requires_grad_(True)
        return vsm.hutchinson_trace(torch.sin(inputs), inputs, n_probes=2, seed=1)

    def sliced(e):
        x = _gen(1, 1, D).expand(B, D)
        return S.sliced_sm(lambda v: -v ** 3, x if e else x.contiguous(), n_probes=2, seed=1)

    def isle(e):
        lw = _gen(1, 1, 6).expand(B, 6)
        return vsm.is_log_evidence(lw if e else lw.contiguous())

    def isle_np(e):
        lw = np.broadcast_to(_gen(1, 1, 6).numpy(), (B, 6))
        return vsm.is_log_evidence(lw if e else np.ascontiguousarray(lw))

    def isacc(e):
        xm = np.broadcast_to(_gen(2, B, 1, D).numpy(), (B, 5, D))
        lp = np.broadcast_to(_gen(3, 1, 5).numpy(), (B, 5))
        acc = vsm.ISAccumulator(_gen(1, B, D).numpy(), -0.3)
        c = (lambda a: a) if e else np.ascontiguousarray
        acc.add(c(xm), c(lp), c(lp))
        return acc.result()

    def isacc_torch(e):
        xm = _gen(2, B, 1, D).expand(B, 5, D)
        lp = _gen(3, 1, 5).expand(B, 5)
        acc = vsm.ISAccumulator(_gen(1, B, D), torch.tensor(-0.3, dtype=F64))
        c = (lambda a: a) if e else torch.Tensor.contiguous
        acc.add(c(xm), c(lp), c(_gen(4, B, 5)))
        return acc.result()

    def toy_x(e):
        x = np.broadcast_to(np.array([0.7]), (4,))
        return toy.posterior("soft", x if e else np.ascontiguousarray(x), n=11)

    def grid(e):
        ax = np.linspace(-2.0, 2.0, 7)
        lj = np.broadcast_to(-0.5 * ax**2, (3, 7))
        return toy.grid_posterior(lj if e else np.ascontiguousarray(lj), (ax,))

    return [(f.__name__, f) for f in (pfd, pfd_z, gt, gt_x, m3, elbo, hutch, sliced, isle,
                                      isle_np, isacc, isacc_torch, toy_x, grid)]


@pytest.mark.parametrize("name, fn", _expanded_cases())
def test_expanded_inputs_give_the_contiguous_result(name, fn):
    want, got = _arrays(fn(False)), _arrays(fn(True))
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_non_contiguous_gradients_through_fused_ops(layout):
    """Backward of the Triton-backed ops with non-contiguous leaves equals the contiguous one."""
    lay = LAYOUTS[layout]

    def grads(f):
        z, mu, lv, g = (f(_gen(i, *s)).requires_grad_(True)
                        for i, s in ((1, (N, B, L)), (2, (B, L)), (3, (B, L)), (4, (N, B, L))))
        x, xm, ls2 = f(_gen(5, B, D)).requires_grad_(True), f(_gen(6, N, B, D)).requires_grad_(
            True), _gen(7).requires_grad_(True)
        gt = vsm.gaussian_terms(x, xm, ls2)
        loss = vsm.posterior_fd(z, mu, lv, g).sum() + gt.sq_mean.sum() + gt.mean_sq.sum()
        return [a.numpy() for a in torch.autograd.grad(loss, (z, mu, lv, g, x, xm, ls2))]

    for gn, gc in zip(grads(lay), grads(_same), strict=True):
        np.testing.assert_allclose(gn, gc, rtol=1e-12, atol=1e-12)
