"""Bad input to every public function of API.md: a table of function × kind of bad input.

Each row of ``CASES`` calls one public function with exactly one argument made bad and asserts the
exception type (TypeError for wrong types/dtypes, ValueError for shapes, values, devices) and that
the message names the offending argument. Each row has a kind (``KINDS``): wrong type (list /
ndarray where a tensor is needed, not callable), dtype (int, float16, bfloat16, complex, bool, or
dtypes that differ), shape (mismatch, wrong rank), empty batch, device (the ``meta`` device stands
in for a second device, as no GPU is available here), non-finite values where they cannot mean
anything, bad options/values (σ ≤ 0, n_probes < 1, unknown dist, bad seeds, ...).

Torch-level functions do not scan tensor data for NaN/inf (a device sync per call); a third table
checks that a non-finite datum stays in its own row of the result instead. Further tables check
that non-contiguous (transposed, strided) and expanded (stride-0) inputs are HANDLED: the result
equals the result for the contiguous copy. Fused ops run through the Triton kernels under the
interpreter (conftest sets TRITON_INTERPRET=1), with tiny shapes.

``python tests/test_bad_input.py`` prints the function × kind matrix (Markdown) built from these
tables; ``test_matrix_is_complete`` requires each cell to be tested or to state why it does not
apply.
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
    x, dec = a.pop("x"), a.pop("decoder", decoder)
    return O.posterior_fd_loss(x, dec, a.pop("mu"), a.pop("logvar"), a.pop("log_sigma2"), **a)


def _fae(**kw):
    a = {"x": t(B, D), "z": t(N, B, L), "x_mean": t(N, B, D), "log_sigma2": t(), "mu": t(B, L),
         "logvar": t(B, L), "psi": t(N, B, D), "grad_loglik_z": t(N, B, L)}
    a.update(kw)
    return O.fae(**a)


def encode(x):
    w = torch.linspace(-1.0, 1.0, D * L, dtype=x.dtype).reshape(D, L)
    return x @ w, 0.1 * torch.tanh(x @ w)


def _fae_loss(**kw):
    a = {"x": t(B, D), "encode": encode, "decoder": decoder, "log_sigma2": t(), "n_samples": 2,
         "reparam": True}
    a.update(kw)
    x, enc, dec, ls2 = a.pop("x"), a.pop("encode"), a.pop("decoder"), a.pop("log_sigma2")
    return O.fae_loss(x, enc, dec, ls2, **a)


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
        a.get("score_fn", noise_score_fn), a["x0"], a["sigmas"], n_steps=a["n_steps"],
        step_size=a["step_size"],
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


def _isacc_result(**kw):
    return vsm.ISAccumulator(t(B, D), 0.1).result()


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


_POSTS = {}


def _post(kind):
    """A small built-in-model (``toy``) or user-grid (``grid``) posterior, built once."""
    if kind not in _POSTS:
        if kind == "toy":
            _POSTS[kind] = toy.posterior("sym", np.array([0.5, -1.0]), n=21)
        else:
            lj = -0.5 * (_AX[:, None] ** 2 + 0.5 * _AX[None, :] ** 2)
            _POSTS[kind] = toy.grid_posterior(np.stack([lj, lj + 1.0]), (_AX, _AX))
    return _POSTS[kind]


def _div(method, kind="toy"):
    """Posterior.kl_from / fd_from of a 2-D posterior with a valid Gaussian q."""

    def call(**kw):
        post = _post(kind)
        a = {"q_mean": np.zeros(2), "q_cov": np.eye(2), "q_weights": None}
        a.update(kw)
        return getattr(post, method)(a["q_mean"], a["q_cov"], a["q_weights"])

    return call


TE, VE = TypeError, ValueError
NAN = float("nan")

# Kinds of bad input (the columns of the matrix printed by ``python tests/test_bad_input.py``).
TYPE = "type"  # not a tensor/array (list, ndarray for a torch-only argument), not callable
DTYPE = "dtype"  # int, float16/bfloat16, complex, bool, str arrays; dtypes differing between args
SHAPE = "shape"  # wrong shape or rank, mismatched sizes
EMPTY = "empty"  # B = 0 (or N = 0, K = 0, no components, no noise levels)
DEVICE = "device"  # a second device (meta), or a meta tensor where data is needed
NONFINITE = "non-finite"  # NaN/inf where it cannot mean anything
OPTION = "option"  # bad option or value: n_probes=0, dist="foo", sigma<=0, n_steps<1, seed<0, ...
KINDS = (TYPE, DTYPE, SHAPE, EMPTY, DEVICE, NONFINITE, OPTION)

# (id, kind, call, kwargs making one argument bad, exception, regex naming the argument)
CASES = [
    # ---------------------------------------------------------------- posterior_fd
    ("pfd-list", TYPE, _pfd, lambda: {"z": t(B, L).tolist()}, TE, "z"),
    ("pfd-ndarray", TYPE, _pfd, lambda: {"mu": np.zeros((B, L))}, TE, "mu"),
    ("pfd-int", DTYPE, _pfd, lambda: {"logvar": torch.zeros(B, L, dtype=torch.int64)}, TE,
     "logvar"),
    ("pfd-dtype-mix", DTYPE, _pfd, lambda: {"grad_loglik_z": t(N, B, L, dtype=torch.float32)}, TE,
     "grad_loglik_z"),
    ("pfd-shape", SHAPE, _pfd, lambda: {"mu": t(B + 1, L)}, VE, "mu"),
    ("pfd-shape-g", SHAPE, _pfd, lambda: {"grad_loglik_z": t(N, B, L + 1)}, VE, "grad_loglik_z"),
    ("pfd-rank", SHAPE, _pfd, lambda: {"logvar": t(1, B, L)}, VE, "logvar"),
    ("pfd-rank-z", SHAPE, _pfd, lambda: {"z": t(1, N, B, L)}, VE, "z"),
    ("pfd-empty", EMPTY, _pfd, lambda: {"z": t(N, 0, L), "mu": t(0, L), "logvar": t(0, L),
                                     "grad_loglik_z": t(N, 0, L)}, VE, "z"),
    ("pfd-device", DEVICE, _pfd, lambda: {"mu": t(B, L, device=META)}, VE, "mu"),
    # ---------------------------------------------------------------- gaussian_terms
    ("gt-list", TYPE, _gt, lambda: {"x": t(B, D).tolist()}, TE, "x"),
    ("gt-ndarray", TYPE, _gt, lambda: {"x_mean": np.zeros((N, B, D))}, TE, "x_mean"),
    ("gt-float", TYPE, _gt, lambda: {"log_sigma2": 0.0}, TE, "log_sigma2"),
    ("gt-int", DTYPE, _gt, lambda: {"x": torch.zeros(B, D, dtype=torch.int32)}, TE, "x"),
    ("gt-dtype-mix", DTYPE, _gt, lambda: {"log_sigma2": t(dtype=torch.float32)}, TE, "log_sigma2"),
    ("gt-shape", SHAPE, _gt, lambda: {"x_mean": t(N, B, D + 1)}, VE, "x_mean"),
    ("gt-rank", SHAPE, _gt, lambda: {"log_sigma2": t(1)}, VE, "log_sigma2"),
    ("gt-empty", EMPTY, _gt, lambda: {"x": t(0, D), "x_mean": t(N, 0, D)}, VE, "x"),
    ("gt-device", DEVICE, _gt, lambda: {"x_mean": t(N, B, D, device=META)}, VE, "x_mean"),
    # ---------------------------------------------------------------- hutchinson_trace
    ("hutch-list", TYPE, _hutch, lambda: {"outputs": [[1.0] * D] * B}, TE, "outputs"),
    ("hutch-int", DTYPE, _hutch, lambda: {"inputs": torch.zeros(B, D, dtype=torch.int64)}, TE,
     "inputs"),
    ("hutch-dtype-mix", DTYPE, _hutch,
     lambda: {"outputs": t(B, D, dtype=torch.float32).requires_grad_(True)}, TE, "outputs"),
    ("hutch-shape", SHAPE, _hutch, lambda: {"outputs": t(B, D + 1).requires_grad_(True)}, VE,
     "outputs"),
    ("hutch-rank", SHAPE, _hutch, lambda: _io(t(B, D, 1), lambda i: i.squeeze(-1) * 2.0), VE,
     "inputs"),
    ("hutch-empty", EMPTY, _hutch, lambda: _io(t(0, D), lambda i: i * 2.0), VE, "inputs"),
    ("hutch-device", DEVICE, _hutch,
     lambda: {"outputs": t(B, D, device=META).requires_grad_(True)}, VE, "outputs"),
    ("hutch-nograd", OPTION, _hutch, lambda: {"inputs": t(B, D)}, VE, "inputs"),
    ("hutch-probes0", OPTION, _hutch, lambda: {"n_probes": 0}, VE, "n_probes"),
    ("hutch-probes-neg", OPTION, _hutch, lambda: {"n_probes": -3}, VE, "n_probes"),
    ("hutch-probes-float", OPTION, _hutch, lambda: {"n_probes": 2.0}, TE, "n_probes"),
    ("hutch-dist", OPTION, _hutch, lambda: {"dist": "uniform"}, VE, "dist"),
    ("hutch-seed-neg", OPTION, _hutch, lambda: {"seed": -1}, VE, "seed"),
    ("hutch-seed-float", OPTION, _hutch, lambda: {"seed": 1.5}, TE, "seed"),
    ("hutch-seed-big", OPTION, _hutch, lambda: {"seed": 2**63}, VE, "seed"),
    # ---------------------------------------------------------------- objectives.elbo
    ("elbo-list", TYPE, _elbo, lambda: {"x": t(B, D).tolist()}, TE, "x"),
    ("elbo-ndarray", TYPE, _elbo, lambda: {"mu": np.zeros((B, L))}, TE, "mu"),
    ("elbo-int", DTYPE, _elbo, lambda: {"logvar": torch.zeros(B, L, dtype=torch.int64)}, TE,
     "logvar"),
    ("elbo-dtype-mix", DTYPE, _elbo, lambda: {"x_mean": t(N, B, D, dtype=torch.float32)}, TE,
     "x_mean"),
    ("elbo-shape", SHAPE, _elbo, lambda: {"logvar": t(B, L + 1)}, VE, "logvar"),
    ("elbo-batch", SHAPE, _elbo, lambda: {"mu": t(B + 1, L), "logvar": t(B + 1, L)}, VE, "mu"),
    ("elbo-rank", SHAPE, _elbo, lambda: {"x": t(B, D, 1)}, VE, "x"),
    ("elbo-empty", EMPTY, _elbo,
     lambda: {"x": t(0, D), "x_mean": t(N, 0, D), "mu": t(0, L), "logvar": t(0, L)},
     VE, "x"),
    ("elbo-device", DEVICE, _elbo, lambda: {"log_sigma2": t(device=META)}, VE, "log_sigma2"),
    # ---------------------------------------------------------------- objectives.m1 / m2
    *[
        row
        for name, fn in (("m1", O.m1), ("m2", O.m2))
        for row in (
            (f"{name}-list", TYPE, _m(fn), lambda: {"x_mean": t(N, B, D).tolist()}, TE, "x_mean"),
            (f"{name}-int", DTYPE, _m(fn), lambda: {"x": torch.ones(B, D, dtype=torch.int64)}, TE,
             "x"),
            (f"{name}-dtype-mix", DTYPE, _m(fn),
             lambda: {"x_mean": t(N, B, D, dtype=torch.float32)}, TE, "x_mean"),
            (f"{name}-shape", SHAPE, _m(fn), lambda: {"x_mean": t(N, B + 1, D)}, VE, "x_mean"),
            (f"{name}-rank", SHAPE, _m(fn), lambda: {"log_sigma2": t(B)}, VE, "log_sigma2"),
            (f"{name}-empty", EMPTY, _m(fn), lambda: {"x_mean": t(0, B, D)}, VE, "x_mean"),
            (f"{name}-device", DEVICE, _m(fn), lambda: {"x_mean": t(N, B, D, device=META)}, VE,
             "x_mean"),
        )
    ],
    # ---------------------------------------------------------------- objectives.m3
    ("m3-ndarray", TYPE, _m3, lambda: {"psi": np.zeros((N, B, D))}, TE, "psi"),
    ("m3-int", DTYPE, _m3, lambda: {"psi": torch.zeros(N, B, D, dtype=torch.int64)}, TE, "psi"),
    ("m3-dtype-mix", DTYPE, _m3, lambda: {"psi": t(N, B, D, dtype=torch.float32)}, TE, "psi"),
    ("m3-shape", SHAPE, _m3, lambda: {"psi": t(N + 1, B, D)}, VE, "psi"),
    ("m3-rank", SHAPE, _m3, lambda: {"psi": t(D)}, VE, "psi"),
    ("m3-empty", EMPTY, _m3, lambda: {"x": t(0, D), "x_mean": t(N, 0, D), "psi": t(N, 0, D)}, VE,
     "x"),
    ("m3-device", DEVICE, _m3, lambda: {"psi": t(N, B, D, device=META)}, VE, "psi"),
    # ---------------------------------------------------------------- objectives.posterior_fd_loss
    ("pfdl-list", TYPE, _pfd_loss, lambda: {"mu": t(B, L).tolist()}, TE, "mu"),
    ("pfdl-int", DTYPE, _pfd_loss, lambda: {"x": torch.zeros(B, D, dtype=torch.int64)}, TE, "x"),
    ("pfdl-dtype-mix", DTYPE, _pfd_loss, lambda: {"logvar": t(B, L, dtype=torch.float32)}, TE,
     "logvar"),
    ("pfdl-shape", SHAPE, _pfd_loss, lambda: {"logvar": t(B, L + 1)}, VE, "logvar"),
    ("pfdl-rank", SHAPE, _pfd_loss, lambda: {"mu": t(B), "logvar": t(B)}, VE, "mu"),
    ("pfdl-empty", EMPTY, _pfd_loss, lambda: {"x": t(0, D), "mu": t(0, L), "logvar": t(0, L)}, VE,
     "x"),
    ("pfdl-device", DEVICE, _pfd_loss, lambda: {"mu": t(B, L, device=META)}, VE, "mu"),
    ("pfdl-n0", OPTION, _pfd_loss, lambda: {"n_samples": 0}, VE, "n_samples"),
    ("pfdl-nfloat", OPTION, _pfd_loss, lambda: {"n_samples": 1.0}, TE, "n_samples"),
    ("pfdl-reparam", OPTION, _pfd_loss, lambda: {"reparam": "yes"}, TE, "reparam"),
    ("pfdl-nbool", OPTION, _pfd_loss, lambda: {"n_samples": True}, TE, "n_samples"),
    ("pfdl-decoder-call", TYPE, _pfd_loss, lambda: {"decoder": 3}, TE, "decoder"),
    ("pfdl-decoder-list", TYPE, _pfd_loss, lambda: {"decoder": lambda z: [0.0]}, TE, "decoder"),
    ("pfdl-decoder-shape", SHAPE, _pfd_loss, lambda: {"decoder": lambda z: z}, VE, "decoder"),
    ("pfdl-nneg", OPTION, _pfd_loss, lambda: {"n_samples": -2}, VE, "n_samples"),
    ("pfdl-ls2-float", TYPE, _pfd_loss, lambda: {"log_sigma2": 0.0}, TE, "log_sigma2"),
    ("pfdl-ls2-rank", SHAPE, _pfd_loss, lambda: {"log_sigma2": t(1)}, VE, "log_sigma2"),
    ("pfdl-decoder-dtype", DTYPE, _pfd_loss, lambda: {"decoder": lambda z: decoder(z).float()}, TE,
     "decoder"),
    ("pfdl-decoder-device", DEVICE, _pfd_loss, lambda: {"decoder": lambda z: decoder(z).to(META)},
     VE, "decoder"),
    ("pfdl-eps-shape", SHAPE, _pfd_loss, lambda: {"eps": t(3, B, L)}, VE, "eps"),
    ("pfdl-eps-dtype-mix", DTYPE, _pfd_loss, lambda: {"eps": t(2, B, L, dtype=torch.float32)}, TE,
     "eps"),
    ("pfdl-eps-device", DEVICE, _pfd_loss, lambda: {"eps": t(2, B, L, device=META)}, VE, "eps"),
    ("pfdl-generator", OPTION, _pfd_loss, lambda: {"generator": 3}, TE, "generator"),
    # ---------------------------------------------------------------- objectives.fae
    ("fae-list", TYPE, _fae, lambda: {"x": t(B, D).tolist()}, TE, "x"),
    ("fae-ndarray", TYPE, _fae, lambda: {"z": np.zeros((N, B, L))}, TE, "z"),
    ("fae-ls2-float", TYPE, _fae, lambda: {"log_sigma2": 0.0}, TE, "log_sigma2"),
    ("fae-int", DTYPE, _fae, lambda: {"mu": torch.zeros(B, L, dtype=torch.int64)}, TE, "mu"),
    ("fae-dtype-mix", DTYPE, _fae, lambda: {"x_mean": t(N, B, D, dtype=torch.float32)}, TE,
     "x_mean"),
    ("fae-dtype-mix-g", DTYPE, _fae, lambda: {"grad_loglik_z": t(N, B, L, dtype=torch.float32)},
     TE, "grad_loglik_z"),
    ("fae-dtype-mix-ls2", DTYPE, _fae, lambda: {"log_sigma2": t(dtype=torch.float32)}, TE,
     "log_sigma2"),
    ("fae-shape-psi", SHAPE, _fae, lambda: {"psi": t(N, B, D + 1)}, VE, "psi"),
    ("fae-shape-psi-N", SHAPE, _fae, lambda: {"psi": t(N + 1, B, D)}, VE, "psi"),
    ("fae-shape-g", SHAPE, _fae, lambda: {"grad_loglik_z": t(N, B, L + 1)}, VE, "grad_loglik_z"),
    ("fae-shape-z", SHAPE, _fae, lambda: {"z": t(N, B, L + 1)}, VE, "z"),
    ("fae-shape-logvar", SHAPE, _fae, lambda: {"logvar": t(B, L + 1)}, VE, "logvar"),
    ("fae-batch", SHAPE, _fae, lambda: {"mu": t(B + 1, L), "logvar": t(B + 1, L)}, VE, "mu"),
    ("fae-samples", SHAPE, _fae, lambda: {"z": t(N + 1, B, L), "grad_loglik_z": t(N + 1, B, L)},
     VE, "z"),
    ("fae-rank", SHAPE, _fae, lambda: {"x": t(B, D, 1)}, VE, "x"),
    ("fae-rank-ls2", SHAPE, _fae, lambda: {"log_sigma2": t(1)}, VE, "log_sigma2"),
    ("fae-rank-g", SHAPE, _fae, lambda: {"grad_loglik_z": t(1, N, B, L)}, VE, "grad_loglik_z"),
    ("fae-empty", EMPTY, _fae,
     lambda: {"x": t(0, D), "z": t(N, 0, L), "x_mean": t(N, 0, D), "mu": t(0, L),
              "logvar": t(0, L), "psi": t(N, 0, D), "grad_loglik_z": t(N, 0, L)}, VE, "x"),
    ("fae-empty-N", EMPTY, _fae,
     lambda: {"z": t(0, B, L), "x_mean": t(0, B, D), "psi": t(0, B, D),
              "grad_loglik_z": t(0, B, L)}, VE, "x_mean"),
    ("fae-device-psi", DEVICE, _fae, lambda: {"psi": t(N, B, D, device=META)}, VE, "psi"),
    ("fae-device-g", DEVICE, _fae, lambda: {"grad_loglik_z": t(N, B, L, device=META)}, VE,
     "grad_loglik_z"),
    ("fae-device-z", DEVICE, _fae, lambda: {"z": t(N, B, L, device=META)}, VE, "z"),
    # ---------------------------------------------------------------- objectives.fae_loss (fae's
    # model-level form)
    ("faeloss-list", TYPE, _fae_loss, lambda: {"x": t(B, D).tolist()}, TE, "x"),
    ("faeloss-encode-not-callable", TYPE, _fae_loss, lambda: {"encode": 3}, TE, "encode"),
    ("faeloss-decoder-not-callable", TYPE, _fae_loss, lambda: {"decoder": None}, TE, "decoder"),
    ("faeloss-encode-not-pair", TYPE, _fae_loss, lambda: {"encode": lambda x: x}, TE, "encode"),
    ("faeloss-encode-dtype", DTYPE, _fae_loss,
     lambda: {"encode": lambda x: tuple(o.float() for o in encode(x))}, TE, "encode"),
    ("faeloss-encode-batch", SHAPE, _fae_loss, lambda: {"encode": lambda x: encode(x[:-1])}, VE,
     "encode"),
    ("faeloss-ls2-float", TYPE, _fae_loss, lambda: {"log_sigma2": 0.5}, TE, "log_sigma2"),
    ("faeloss-ls2-device", DEVICE, _fae_loss, lambda: {"log_sigma2": t(device=META)}, VE,
     "log_sigma2"),
    ("faeloss-empty", EMPTY, _fae_loss, lambda: {"x": t(0, D)}, VE, "x"),
    ("faeloss-n0", OPTION, _fae_loss, lambda: {"n_samples": 0}, VE, "n_samples"),
    ("faeloss-reparam", OPTION, _fae_loss, lambda: {"reparam": "yes"}, TE, "reparam"),
    # ---------------------------------------------------------------- score.exact_sm
    ("exact-list", TYPE, _exact, lambda: {"x": t(B, D).tolist()}, TE, "x"),
    ("exact-int", DTYPE, _exact, lambda: {"x": torch.zeros(B, D, dtype=torch.int64)}, TE, "x"),
    ("exact-dtype-mix", DTYPE, _exact, lambda: {"score_fn": lambda x: x.float()}, TE, "score_fn"),
    ("exact-shape", SHAPE, _exact, lambda: {"score_fn": lambda x: x[:, :-1]}, VE, "score_fn"),
    ("exact-rank", SHAPE, _exact, lambda: {"x": t(D)}, VE, "x"),
    ("exact-empty", EMPTY, _exact, lambda: {"x": t(0, D)}, VE, "x"),
    ("exact-device", DEVICE, _exact,
     lambda: {"score_fn": lambda x: torch.zeros_like(x, device=META)}, VE, "score_fn"),
    ("exact-not-tensor", TYPE, _exact, lambda: {"score_fn": lambda x: x.tolist()}, TE, "score_fn"),
    ("exact-not-callable", TYPE, _exact, lambda: {"score_fn": None}, TE, "score_fn"),
    # ---------------------------------------------------------------- score.sliced_sm
    ("sliced-ndarray", TYPE, _sliced, lambda: {"x": np.zeros((B, D))}, TE, "x"),
    ("sliced-int", DTYPE, _sliced, lambda: {"x": torch.zeros(B, D, dtype=torch.int8)}, TE, "x"),
    ("sliced-dtype-mix", DTYPE, _sliced, lambda: {"score_fn": lambda x: x.float()}, TE, "score_fn"),
    ("sliced-shape", SHAPE, _sliced, lambda: {"score_fn": lambda x: x.sum(-1)}, VE, "score_fn"),
    ("sliced-rank", SHAPE, _sliced, lambda: {"x": t(B, D, 2)}, VE, "x"),
    ("sliced-empty", EMPTY, _sliced, lambda: {"x": t(0, D)}, VE, "x"),
    ("sliced-probes0", OPTION, _sliced, lambda: {"n_probes": 0}, VE, "n_probes"),
    ("sliced-probes-neg", OPTION, _sliced, lambda: {"n_probes": -1}, VE, "n_probes"),
    ("sliced-dist", OPTION, _sliced, lambda: {"dist": "normal"}, VE, "dist"),
    ("sliced-dist-type", OPTION, _sliced, lambda: {"dist": 1}, VE, "dist"),
    ("sliced-vr", OPTION, _sliced, lambda: {"variance_reduced": 1}, TE, "variance_reduced"),
    ("sliced-not-callable", TYPE, _sliced, lambda: {"score_fn": "s"}, TE, "score_fn"),
    ("sliced-not-tensor", TYPE, _sliced, lambda: {"score_fn": lambda x: x.tolist()}, TE,
     "score_fn"),
    ("sliced-device", DEVICE, _sliced,
     lambda: {"score_fn": lambda x: torch.zeros_like(x, device=META)}, VE, "score_fn"),
    ("sliced-probes-float", OPTION, _sliced, lambda: {"n_probes": 1.0}, TE, "n_probes"),
    ("sliced-seed-neg", OPTION, _sliced, lambda: {"seed": -1}, VE, "seed"),
    ("sliced-seed-float", OPTION, _sliced, lambda: {"seed": 0.5}, TE, "seed"),
    # ---------------------------------------------------------------- score.dsm
    ("dsm-list", TYPE, _dsm, lambda: {"x": [[0.0] * D] * B}, TE, "x"),
    ("dsm-int", DTYPE, _dsm, lambda: {"x": torch.zeros(B, D, dtype=torch.int64)}, TE, "x"),
    ("dsm-dtype-mix", DTYPE, _dsm, lambda: {"score_fn": lambda x: x.float()}, TE, "score_fn"),
    ("dsm-shape", SHAPE, _dsm, lambda: {"score_fn": lambda x: x.T}, VE, "score_fn"),
    ("dsm-rank", SHAPE, _dsm, lambda: {"x": t(B)}, VE, "x"),
    ("dsm-empty", EMPTY, _dsm, lambda: {"x": t(0, D)}, VE, "x"),
    ("dsm-sigma-nan", NONFINITE, _dsm, lambda: {"sigma": NAN}, VE, "sigma"),
    ("dsm-sigma-zero", OPTION, _dsm, lambda: {"sigma": 0.0}, VE, "sigma"),
    ("dsm-sigma-neg", OPTION, _dsm, lambda: {"sigma": -0.1}, VE, "sigma"),
    ("dsm-sigma-inf", NONFINITE, _dsm, lambda: {"sigma": math.inf}, VE, "sigma"),
    ("dsm-sigma-str", OPTION, _dsm, lambda: {"sigma": "0.5"}, TE, "sigma"),
    ("dsm-sigma-vec", OPTION, _dsm, lambda: {"sigma": torch.ones(2)}, VE, "sigma"),
    ("dsm-seed", OPTION, _dsm, lambda: {"seed": -2}, VE, "seed"),
    ("dsm-sigma-bool", OPTION, _dsm, lambda: {"sigma": True}, TE, "sigma"),
    ("dsm-not-callable", TYPE, _dsm, lambda: {"score_fn": 1.0}, TE, "score_fn"),
    ("dsm-not-tensor", TYPE, _dsm, lambda: {"score_fn": lambda x: x.tolist()}, TE, "score_fn"),
    ("dsm-device", DEVICE, _dsm, lambda: {"score_fn": lambda x: torch.zeros_like(x, device=META)},
     VE, "score_fn"),
    ("dsm-sigma-meta", DEVICE, _dsm, lambda: {"sigma": torch.tensor(0.5, device=META)}, VE,
     "sigma"),
    ("dsm-seed-big", OPTION, _dsm, lambda: {"seed": 2**64}, VE, "seed"),
    ("dsm-seed-float", OPTION, _dsm, lambda: {"seed": 1.0}, TE, "seed"),
    # ---------------------------------------------------------------- score.multiscale_dsm
    ("mdsm-ndarray", TYPE, _mdsm, lambda: {"x": np.zeros((B, D))}, TE, "x"),
    ("mdsm-int", DTYPE, _mdsm, lambda: {"x": torch.zeros(B, D, dtype=torch.int64)}, TE, "x"),
    ("mdsm-dtype-mix", DTYPE, _mdsm, lambda: {"score_fn": lambda x, s: x.float()}, TE, "score_fn"),
    ("mdsm-shape", SHAPE, _mdsm, lambda: {"score_fn": lambda x, s: x[:1]}, VE, "score_fn"),
    ("mdsm-rank", SHAPE, _mdsm, lambda: {"x": t(1, B, D)}, VE, "x"),
    ("mdsm-empty", EMPTY, _mdsm, lambda: {"x": t(0, D)}, VE, "x"),
    ("mdsm-sigmas-empty", EMPTY, _mdsm, lambda: {"sigmas": []}, VE, "sigmas"),
    ("mdsm-sigmas-nan", NONFINITE, _mdsm, lambda: {"sigmas": [1.0, NAN]}, VE, "sigmas"),
    ("mdsm-sigmas-neg", OPTION, _mdsm, lambda: {"sigmas": [1.0, -0.5]}, VE, "sigmas"),
    ("mdsm-sigmas-type", OPTION, _mdsm, lambda: {"sigmas": 0.5}, TE, "sigmas"),
    ("mdsm-sigmas-rank", SHAPE, _mdsm, lambda: {"sigmas": torch.ones(2, 2)}, VE, "sigmas"),
    ("mdsm-sigmas-str", OPTION, _mdsm, lambda: {"sigmas": "abc"}, TE, "sigmas"),
    ("mdsm-not-callable", TYPE, _mdsm, lambda: {"score_fn": 0}, TE, "score_fn"),
    ("mdsm-not-tensor", TYPE, _mdsm, lambda: {"score_fn": lambda x, s: None}, TE, "score_fn"),
    ("mdsm-device", DEVICE, _mdsm,
     lambda: {"score_fn": lambda x, s: torch.zeros_like(x, device=META)}, VE, "score_fn"),
    ("mdsm-sigmas-meta", DEVICE, _mdsm, lambda: {"sigmas": torch.ones(2, device=META)}, VE,
     "sigmas"),
    ("mdsm-sigmas-inf", NONFINITE, _mdsm, lambda: {"sigmas": [math.inf, 1.0]}, VE, "sigmas"),
    ("mdsm-sigmas-zero", OPTION, _mdsm, lambda: {"sigmas": [1.0, 0.0]}, VE, "sigmas"),
    ("mdsm-seed-neg", OPTION, _mdsm, lambda: {"seed": -1}, VE, "seed"),
    # ---------------------------------------------------------------- score.annealed_langevin
    ("lang-list", TYPE, _langevin, lambda: {"x0": [[0.0] * D]}, TE, "x0"),
    ("lang-int", DTYPE, _langevin, lambda: {"x0": torch.zeros(B, D, dtype=torch.int64)}, TE, "x0"),
    ("lang-rank", SHAPE, _langevin, lambda: {"x0": t(D)}, VE, "x0"),
    ("lang-empty", EMPTY, _langevin, lambda: {"x0": t(0, D)}, VE, "x0"),
    ("lang-sigmas-nan", NONFINITE, _langevin, lambda: {"sigmas": [NAN]}, VE, "sigmas"),
    ("lang-sigmas-increasing", OPTION, _langevin, lambda: {"sigmas": [0.5, 1.0]}, VE, "sigmas"),
    ("lang-steps0", OPTION, _langevin, lambda: {"n_steps": 0}, VE, "n_steps"),
    ("lang-steps-float", OPTION, _langevin, lambda: {"n_steps": 2.5}, TE, "n_steps"),
    ("lang-step-size", OPTION, _langevin, lambda: {"step_size": -1.0}, VE, "step_size"),
    ("lang-step-size-nan", NONFINITE, _langevin, lambda: {"step_size": NAN}, VE, "step_size"),
    ("lang-dtype-mix", DTYPE, _langevin, lambda: {"score_fn": lambda x, s: x.float()}, TE,
     "score_fn"),
    ("lang-shape", SHAPE, _langevin, lambda: {"score_fn": lambda x, s: x[:1]}, VE, "score_fn"),
    ("lang-not-callable", TYPE, _langevin, lambda: {"score_fn": None}, TE, "score_fn"),
    ("lang-not-tensor", TYPE, _langevin, lambda: {"score_fn": lambda x, s: x.tolist()}, TE,
     "score_fn"),
    ("lang-ndarray", TYPE, _langevin, lambda: {"x0": np.zeros((B, D))}, TE, "x0"),
    ("lang-device", DEVICE, _langevin,
     lambda: {"score_fn": lambda x, s: torch.zeros_like(x, device=META)}, VE, "score_fn"),
    ("lang-sigmas-empty", EMPTY, _langevin, lambda: {"sigmas": []}, VE, "sigmas"),
    ("lang-sigmas-type", OPTION, _langevin, lambda: {"sigmas": 1.0}, TE, "sigmas"),
    ("lang-sigmas-neg", OPTION, _langevin, lambda: {"sigmas": [1.0, -1.0]}, VE, "sigmas"),
    ("lang-steps-neg", OPTION, _langevin, lambda: {"n_steps": -1}, VE, "n_steps"),
    ("lang-steps-bool", OPTION, _langevin, lambda: {"n_steps": True}, TE, "n_steps"),
    ("lang-step-size-zero", OPTION, _langevin, lambda: {"step_size": 0.0}, VE, "step_size"),
    ("lang-step-size-inf", NONFINITE, _langevin, lambda: {"step_size": math.inf}, VE,
     "step_size"),
    ("lang-step-size-str", OPTION, _langevin, lambda: {"step_size": "0.1"}, TE, "step_size"),
    ("lang-seed-str", OPTION, _langevin, lambda: {"seed": "0"}, TE, "seed"),
    # ---------------------------------------------------------------- is_log_evidence
    ("isle-list", TYPE, _isle, lambda: {"log_w": [[0.0, 1.0]]}, TE, "log_w"),
    ("isle-int", DTYPE, _isle, lambda: {"log_w": torch.zeros(B, 5, dtype=torch.int64)}, TE,
     "log_w"),
    ("isle-np-int", DTYPE, _isle, lambda: {"log_w": np.zeros((B, 5), dtype=np.int32)}, TE, "log_w"),
    ("isle-rank", SHAPE, _isle, lambda: {"log_w": t(5)}, VE, "log_w"),
    ("isle-empty-B", EMPTY, _isle, lambda: {"log_w": t(0, 5)}, VE, "log_w"),
    ("isle-empty-K", EMPTY, _isle, lambda: {"log_w": np.zeros((B, 0))}, VE, "log_w"),
    ("isle-nan", NONFINITE, _isle, lambda: {"log_w": torch.tensor([[0.0, NAN]], dtype=F64)}, VE,
     "log_w"),
    ("isle-inf", NONFINITE, _isle, lambda: {"log_w": np.array([[0.0, math.inf]])}, VE, "log_w"),
    ("isle-meta", DEVICE, _isle, lambda: {"log_w": t(B, 5, device=META)}, VE, "log_w"),
    ("isle-np-f16", DTYPE, _isle, lambda: {"log_w": np.zeros((B, 5), np.float16)}, TE, "log_w"),
    ("isle-np-complex", DTYPE, _isle, lambda: {"log_w": np.zeros((B, 5), complex)}, TE, "log_w"),
    ("isle-np-rank", SHAPE, _isle, lambda: {"log_w": np.zeros((B, 5, 1))}, VE, "log_w"),
    ("isle-np-empty-B", EMPTY, _isle, lambda: {"log_w": np.zeros((0, 5))}, VE, "log_w"),
    ("isle-torch-empty-K", EMPTY, _isle, lambda: {"log_w": t(B, 0)}, VE, "log_w"),
    ("isle-torch-inf", NONFINITE, _isle, lambda: {"log_w": torch.full((B, 5), math.inf, dtype=F64)},
     VE, "log_w"),
    # ---------------------------------------------------------------- ISAccumulator(x, log_sigma2)
    ("isacc-x-list", TYPE, _isacc_init, lambda: {"x": [[0.0] * D]}, TE, "x"),
    ("isacc-x-int", DTYPE, _isacc_init, lambda: {"x": torch.zeros(B, D, dtype=torch.int64)}, TE,
     "x"),
    ("isacc-x-rank", SHAPE, _isacc_init, lambda: {"x": t(B, D, 1)}, VE, "x"),
    ("isacc-x-empty", EMPTY, _isacc_init, lambda: {"x": t(0, D)}, VE, "x"),
    ("isacc-x-nan", NONFINITE, _isacc_init, lambda: {"x": torch.full((B, D), NAN, dtype=F64)}, VE,
     "x"),
    ("isacc-ls2-nan", NONFINITE, _isacc_init, lambda: {"log_sigma2": NAN}, VE, "log_sigma2"),
    ("isacc-ls2-str", OPTION, _isacc_init, lambda: {"log_sigma2": "0"}, TE, "log_sigma2"),
    ("isacc-ls2-vec", OPTION, _isacc_init, lambda: {"log_sigma2": torch.zeros(2)}, VE,
     "log_sigma2"),
    ("isacc-ls2-int", DTYPE, _isacc_init, lambda: {"log_sigma2": torch.tensor(0)}, TE,
     "log_sigma2"),
    ("isacc-x-meta", DEVICE, _isacc_init, lambda: {"x": t(B, D, device=META)}, VE, "x"),
    ("isacc-ls2-meta", DEVICE, _isacc_init, lambda: {"log_sigma2": torch.tensor(0.0, device=META)},
     VE, "log_sigma2"),
    ("isacc-x-complex", DTYPE, _isacc_init, lambda: {"x": np.zeros((B, D), complex)}, TE, "x"),
    ("isacc-x-empty-D", EMPTY, _isacc_init, lambda: {"x": np.zeros((B, 0))}, VE, "x"),
    ("isacc-x-inf", NONFINITE, _isacc_init, lambda: {"x": np.full((B, D), math.inf)}, VE, "x"),
    ("isacc-ls2-inf", NONFINITE, _isacc_init, lambda: {"log_sigma2": math.inf}, VE, "log_sigma2"),
    ("isacc-ls2-bool", OPTION, _isacc_init, lambda: {"log_sigma2": True}, TE, "log_sigma2"),
    ("isacc-ls2-ndarray-vec", OPTION, _isacc_init, lambda: {"log_sigma2": np.zeros(2)}, VE,
     "log_sigma2"),
    # ---------------------------------------------------------------- ISAccumulator.add
    ("isadd-meta", DEVICE, _isacc_add, lambda: {"x_mean": t(B, 5, D, device=META)}, VE, "x_mean"),
    ("isadd-np-f16", DTYPE, _isacc_add, lambda: {"x_mean": np.zeros((B, 5, D), np.float16)}, TE,
     "x_mean"),
    ("isadd-list", TYPE, _isacc_add, lambda: {"x_mean": t(B, 5, D).tolist()}, TE, "x_mean"),
    ("isadd-int", DTYPE, _isacc_add,
     lambda: {"log_prior": torch.zeros(B, 5, dtype=torch.int64)}, TE, "log_prior"),
    ("isadd-shape-D", SHAPE, _isacc_add, lambda: {"x_mean": t(B, 5, D + 1)}, VE, "x_mean"),
    ("isadd-shape-B", SHAPE, _isacc_add, lambda: {"log_proposal": t(B + 1, 5)}, VE, "log_proposal"),
    ("isadd-shape-K", SHAPE, _isacc_add, lambda: {"log_prior": t(B, 4)}, VE, "log_prior"),
    ("isadd-rank", SHAPE, _isacc_add, lambda: {"x_mean": t(B, D)}, VE, "x_mean"),
    ("isadd-empty-K", EMPTY, _isacc_add, lambda: {"x_mean": t(B, 0, D), "log_prior": t(B, 0),
                                               "log_proposal": t(B, 0)}, VE, "x_mean"),
    ("isadd-complex-prior", DTYPE, _isacc_add,
     lambda: {"log_prior": torch.zeros(B, 5, dtype=torch.complex128)}, TE, "log_prior"),
    ("isadd-empty-B", EMPTY, _isacc_add, lambda: {"x_mean": t(0, 5, D), "log_prior": t(0, 5),
                                                   "log_proposal": t(0, 5)}, VE, "x_mean"),
    ("isadd-xm-inf", NONFINITE, _isacc_add, lambda: {"x_mean": torch.full((B, 5, D), math.inf,
                                                                         dtype=F64)}, VE, "x_mean"),
    ("isadd-prior-posinf", NONFINITE, _isacc_add,
     lambda: {"log_prior": torch.full((B, 5), math.inf, dtype=F64)}, VE, "log_prior"),
    # ---------------------------------------------------------------- ISAccumulator.result
    ("isres-empty", EMPTY, _isacc_result, dict, VE, "result"),
    ("isadd-nan", NONFINITE, _isacc_add,
     lambda: {"log_proposal": torch.full((B, 5), NAN, dtype=F64)}, VE, "log_proposal"),
    # ---------------------------------------------------------------- toy.posterior
    ("toy-model", OPTION, _toy, lambda: {"model": "nope"}, VE, "model"),
    ("toy-x-str", DTYPE, _toy, lambda: {"x": np.array(["a"])}, TE, "x"),
    ("toy-x-nan", NONFINITE, _toy, lambda: {"x": np.array([NAN])}, VE, "x"),
    ("toy-x-empty", EMPTY, _toy, lambda: {"x": np.zeros(0)}, VE, "x"),
    ("toy-x-shape", SHAPE, _toy,
     lambda: {"model": "linear", "W": np.ones((2, 1)), "x": np.zeros((3, 3))}, VE, "x"),
    ("toy-n-small", OPTION, _toy, lambda: {"n": 2}, VE, "n"),
    ("toy-n-float", OPTION, _toy, lambda: {"n": 20.0}, TE, "n"),
    ("toy-lohi", OPTION, _toy, lambda: {"lo": 1.0, "hi": -1.0}, VE, "lo"),
    ("toy-lo-nan", NONFINITE, _toy, lambda: {"lo": NAN}, VE, "lo"),
    ("toy-sigma-neg", OPTION, _toy, lambda: {"sigma": -1.0}, VE, "sigma"),
    ("toy-sigma-nan", NONFINITE, _toy, lambda: {"sigma": NAN}, VE, "sigma"),
    ("toy-param", OPTION, _toy, lambda: {"gamma": 1.0}, VE, "gamma"),
    ("toy-sigma-str", OPTION, _toy, lambda: {"sigma": "a"}, TE, "sigma"),
    ("toy-alpha-nan", NONFINITE, _toy, lambda: {"model": "soft", "alpha": NAN}, VE, "alpha"),
    ("toy-x-meta", DEVICE, _toy, lambda: {"x": torch.zeros(2, device=META)}, VE, "x"),
    ("toy-b-len", SHAPE, _toy, lambda: {"model": "linear", "W": np.ones((2, 1)), "b": np.ones(3),
                                 "x": np.zeros((3, 2))}, VE, "b"),
    ("toy-W-nan", NONFINITE, _toy, lambda: {"model": "linear", "W": np.full((1, 1), NAN)}, VE, "W"),
    ("toy-W-empty", EMPTY, _toy,
     lambda: {"model": "linear", "W": np.ones((0, 1)), "x": np.zeros(1)}, VE, "W"),
    ("toy-b-nan", NONFINITE, _toy, lambda: {"model": "linear", "b": np.array([NAN])}, VE, "b"),
    ("toy-x-complex", DTYPE, _toy, lambda: {"x": np.zeros(2, complex)}, TE, "x"),
    ("toy-x-f16", DTYPE, _toy, lambda: {"x": np.zeros(2, np.float16)}, TE, "x"),
    ("toy-x-list", TYPE, _toy, lambda: {"x": [object()]}, TE, "x"),
    ("toy-lo-str", OPTION, _toy, lambda: {"lo": "a"}, TE, "lo"),
    ("toy-hi-none", OPTION, _toy, lambda: {"hi": None}, TE, "hi"),
    ("toy-hi-inf", NONFINITE, _toy, lambda: {"hi": math.inf}, VE, "lo"),
    ("toy-n-huge", OPTION, _toy, lambda: {"n": 10**6}, VE, "n"),
    ("toy-n-bool", OPTION, _toy, lambda: {"n": True}, TE, "n"),
    ("toy-alpha-bool", OPTION, _toy, lambda: {"model": "soft", "alpha": True}, TE, "alpha"),
    ("toy-alpha-neg", OPTION, _toy, lambda: {"model": "soft", "alpha": -1.0}, VE, "alpha"),
    ("toy-sigma-zero", OPTION, _toy, lambda: {"sigma": 0.0}, VE, "sigma"),
    ("toy-W-rank", SHAPE, _toy,
     lambda: {"model": "linear", "W": np.ones((1, 1, 1)), "x": np.zeros(1)}, VE, "W"),
    # ---------------------------------------------------------------- toy.grid_posterior
    ("grid-axes-type", TYPE, _grid, lambda: {"axes": 1.0}, TE, "axes"),
    ("grid-axes-count", SHAPE, _grid, lambda: {"axes": ()}, VE, "axes"),
    ("grid-axes-empty", EMPTY, _grid,
     lambda: {"axes": (np.zeros(0),), "log_joint": np.zeros((2, 0))}, VE, "axes"),
    ("grid-axes-meta", DEVICE, _grid, lambda: {"axes": (torch.zeros(11, device=META),)}, VE,
     "axes"),
    ("grid-lj-bool", DTYPE, _grid, lambda: {"log_joint": np.zeros((2, 11), bool)}, TE, "log_joint"),
    ("grid-lj-f16", DTYPE, _grid, lambda: {"log_joint": np.zeros((2, 11), np.float16)}, TE,
     "log_joint"),
    ("grid-lj-list", TYPE, _grid, lambda: {"log_joint": [object()] * 11}, TE, "log_joint"),
    ("grid-lj-0d", SHAPE, _grid, lambda: {"log_joint": np.float64(0.0)}, VE, "log_joint"),
    ("grid-axes-decreasing", OPTION, _grid, lambda: {"axes": (_AX[::-1],)}, VE, "axes"),
    ("grid-axes-rank", SHAPE, _grid, lambda: {"axes": (np.zeros((3, 3)),)}, VE, "axes"),
    ("grid-axes-nonuniform", OPTION, _grid, lambda: {"axes": (np.r_[_AX[:-1], 10.0],)}, VE, "axes"),
    ("grid-axes-short", SHAPE, _grid,
     lambda: {"axes": (_AX[:2],), "log_joint": np.zeros((2, 2))}, VE, "axes"),
    ("grid-lj-shape", SHAPE, _grid, lambda: {"log_joint": np.zeros((2, 12))}, VE, "log_joint"),
    ("grid-lj-str", DTYPE, _grid, lambda: {"log_joint": np.array(["a"] * 11)}, TE, "log_joint"),
    ("grid-lj-nan", NONFINITE, _grid, lambda: {"log_joint": np.full((2, 11), NAN)}, VE,
     "log_joint"),
    ("grid-lj-allneginf", NONFINITE, _grid, lambda: {"log_joint": np.full((2, 11), -math.inf)}, VE,
     "log_joint"),
    ("grid-axes-three", SHAPE, _grid, lambda: {"axes": (_AX,) * 3}, VE, "axes"),
    ("grid-axes-nan", NONFINITE, _grid, lambda: {"axes": (np.r_[_AX[:-1], NAN],)}, VE, "axes"),
    ("grid-lj-complex", DTYPE, _grid, lambda: {"log_joint": np.zeros((2, 11), complex)}, TE,
     "log_joint"),
    ("grid-lj-meta", DEVICE, _grid, lambda: {"log_joint": torch.zeros(2, 11, device=META)}, VE,
     "log_joint"),
    ("grid-lj-empty", EMPTY, _grid, lambda: {"log_joint": np.zeros((0, 11))}, VE, "log_joint"),
    # ---------------------------------------------------------------- Posterior.kl_from / fd_from
    *[
        row
        for name, call in (("kl", _div("kl_from")), ("fd", _div("fd_from")),
                           ("kl-grid", _div("kl_from", "grid")),
                           ("fd-grid", _div("fd_from", "grid")))
        for row in (
            (f"{name}-qm-obj", TYPE, call, lambda: {"q_mean": [object(), object()]}, TE, "q_mean"),
            (f"{name}-qc-none", TYPE, call, lambda: {"q_cov": None}, TE, "q_cov"),
            (f"{name}-qm-str", DTYPE, call, lambda: {"q_mean": np.array(["a", "b"])}, TE, "q_mean"),
            (f"{name}-qm-complex", DTYPE, call, lambda: {"q_mean": np.zeros(2, complex)}, TE,
             "q_mean"),
            (f"{name}-qc-f16", DTYPE, call, lambda: {"q_cov": np.eye(2, dtype=np.float16)}, TE,
             "q_cov"),
            (f"{name}-qw-bool", DTYPE, call,
             lambda: {"q_mean": np.zeros((1, 2)), "q_cov": np.eye(2)[None], "q_weights": [True]},
             TE, "q_weights"),
            (f"{name}-qm-shape", SHAPE, call, lambda: {"q_mean": np.zeros(3)}, VE, "q_mean"),
            (f"{name}-qc-shape", SHAPE, call, lambda: {"q_cov": np.eye(3)}, VE, "q_cov"),
            (f"{name}-qm-batch", SHAPE, call, lambda: {"q_mean": np.zeros((3, 2))}, VE, "q_mean"),
            (f"{name}-qc-batch", SHAPE, call, lambda: {"q_cov": np.stack([np.eye(2)] * 3)}, VE,
             "q_cov"),
            (f"{name}-qw-shape", SHAPE, call,
             lambda: {"q_mean": np.zeros((1, 2)), "q_cov": np.eye(2)[None],
                      "q_weights": [1.0, 1.0]},
             VE, "q_weights"),
            (f"{name}-q-empty", EMPTY, call,
             lambda: {"q_mean": np.zeros((0, 2)), "q_cov": np.zeros((0, 2, 2)),
                      "q_weights": np.zeros(0)}, VE, "q_weights"),
            (f"{name}-qm-meta", DEVICE, call, lambda: {"q_mean": torch.zeros(2, device=META)}, VE,
             "q_mean"),
            (f"{name}-qm-nan", NONFINITE, call, lambda: {"q_mean": np.array([0.0, NAN])}, VE,
             "q_mean"),
            (f"{name}-qc-inf", NONFINITE, call, lambda: {"q_cov": np.full((2, 2), math.inf)}, VE,
             "q_cov"),
            (f"{name}-qw-nan", NONFINITE, call,
             lambda: {"q_mean": np.zeros((1, 2)), "q_cov": np.eye(2)[None], "q_weights": [NAN]},
             VE, "q_weights"),
            (f"{name}-qc-notpd", OPTION, call, lambda: {"q_cov": -np.eye(2)}, VE, "q_cov"),
            (f"{name}-qc-asym", OPTION, call, lambda: {"q_cov": np.array([[1.0, 0.5], [0.0, 1.0]])},
             VE, "q_cov"),
            (f"{name}-qw-neg", OPTION, call,
             lambda: {"q_mean": np.zeros((2, 2)), "q_cov": np.stack([np.eye(2)] * 2),
                      "q_weights": [1.0, -0.5]}, VE, "q_weights"),
            (f"{name}-qw-zero", OPTION, call,
             lambda: {"q_mean": np.zeros((1, 2)), "q_cov": np.eye(2)[None], "q_weights": [0.0]},
             VE, "q_weights"),
        )
    ],
    ("kl-grid-neginf", NONFINITE, lambda **kw: _grid(
        log_joint=np.where(np.abs(_AX) > 2.0, -math.inf, -0.5 * _AX**2)).kl_from([0.0], [[1.0]]),
     dict, VE, "log_joint"),
    # ---------------------------------------------------------------- dtypes other than f32/f64
    *[
        (f"{prefix}-{dname}", DTYPE, call,
         (lambda a=arg, s=shape, d=dt: {a: torch.zeros(s, dtype=d)}), TE, arg)
        for prefix, call, arg, shape in (
            ("pfd", _pfd, "z", (N, B, L)), ("gt", _gt, "x_mean", (N, B, D)),
            ("hutch", _hutch, "outputs", (B, D)), ("elbo", _elbo, "mu", (B, L)),
            ("m1", _m(O.m1), "x", (B, D)), ("m2", _m(O.m2), "log_sigma2", ()),
            ("m3", _m3, "x_mean", (N, B, D)), ("fae", _fae, "grad_loglik_z", (N, B, L)),
            ("faeloss", _fae_loss, "x", (B, D)), ("pfdl", _pfd_loss, "logvar", (B, L)),
            ("exact", _exact, "x", (B, D)), ("sliced", _sliced, "x", (B, D)),
            ("dsm", _dsm, "x", (B, D)), ("mdsm", _mdsm, "x", (B, D)),
            ("lang", _langevin, "x0", (B, D)), ("isle", _isle, "log_w", (B, 5)),
            ("isacc", _isacc_init, "x", (B, D)), ("isadd", _isacc_add, "log_proposal", (B, 5)),
            ("toy", _toy, "x", (2,)), ("grid", _grid, "log_joint", (2, 11)),
        )
        for dname, dt in (("f16", torch.float16), ("bf16", torch.bfloat16),
                          ("complex", torch.complex64))
    ],
]


@pytest.mark.parametrize(
    "call, bad, exc, match", [pytest.param(*c[2:], id=c[0]) for c in CASES]
)
def test_bad_input_raises_naming_argument(call, bad, exc, match):
    with pytest.raises(exc, match=rf"\b{match}\b") as info:
        call(**bad())
    assert type(info.value) is exc, f"expected exactly {exc.__name__}, got {info.type.__name__}"


# ===================================================================== NaN/inf in tensor data
# The torch-level functions do not scan tensor data for NaN/inf: that would cost a device-to-host
# synchronisation per call (and break CUDA graphs / torch.compile), and torch ops propagate
# non-finite values themselves. What they guarantee instead is checked here: a NaN or inf in one
# datum makes that datum's result non-finite and leaves every other datum's result finite. (The
# Rust-backed functions do reject non-finite data; see the NONFINITE rows of CASES.)
def _bad_row(a, value, dim=0):
    """A copy of ``a`` with index 0 along ``dim`` (the datum) set to ``value``."""
    a = a.clone()
    a.select(dim, 0).fill_(value)
    return a


def _nf_pfd(v):
    return vsm.posterior_fd(_bad_row(_gen(1, N, B, L), v, 1), _gen(2, B, L), _gen(3, B, L),
                            _gen(4, N, B, L)).T  # (B, N): datum first


def _nf_gt(v):
    out = vsm.gaussian_terms(_gen(1, B, D), _bad_row(_gen(2, N, B, D), v, 1), _gen(3))
    return out.sq_mean, out.mean_sq


def _nf_hutch(v):
    inputs = _bad_row(_gen(1, B, D), v).requires_grad_(True)
    return vsm.hutchinson_trace(torch.tanh(inputs) * inputs, inputs, n_probes=2, seed=1)


def _nf_elbo(v):
    return O.elbo(_gen(1, B, D), _bad_row(_gen(2, N, B, D), v, 1), _gen(3), _gen(4, B, L),
                  _gen(5, B, L))


def _nf_m(fn):
    return lambda v: fn(_bad_row(_gen(1, B, D), v), _gen(2, N, B, D), _gen(3))


def _nf_m3(v):
    return O.m3(_gen(1, B, D), _gen(2, N, B, D), _gen(3), _bad_row(_gen(4, N, B, D), v, 1))


def _nf_fae(v):
    return O.fae(_gen(1, B, D), _gen(2, N, B, L), _gen(3, N, B, D), _gen(4), _gen(5, B, L),
                 _gen(6, B, L), _gen(7, N, B, D), _bad_row(_gen(8, N, B, L), v, 1))


def _nf_pfdl(v):
    return O.posterior_fd_loss(_bad_row(_gen(1, B, D), v), decoder, _gen(2, B, L), _gen(3, B, L),
                               _gen(4), n_samples=2, reparam=True, eps=_gen(5, 2, B, L))


def _nf_fae_loss(v):
    return O.fae_loss(_bad_row(_gen(1, B, D), v), encode, decoder, _gen(2), n_samples=2,
                      reparam=True, eps=_gen(3, 2, B, L))


def _nf_score(f):
    def row(v):
        x = _bad_row(_gen(1, B, D), v)
        return f(lambda u: torch.tanh(u) - u, x)

    return row


NONFINITE_ROWS = {
    "posterior_fd": _nf_pfd, "gaussian_terms": _nf_gt, "hutchinson_trace": _nf_hutch,
    "elbo": _nf_elbo, "m1": _nf_m(O.m1), "m2": _nf_m(O.m2), "m3": _nf_m3, "fae": _nf_fae,
    "fae_loss": _nf_fae_loss, "posterior_fd_loss": _nf_pfdl, "exact_sm": _nf_score(S.exact_sm),
    "sliced_sm": _nf_score(lambda f, x: S.sliced_sm(f, x, n_probes=2, seed=0)),
    "dsm": _nf_score(lambda f, x: S.dsm(f, x, 0.5, seed=0)),
    "multiscale_dsm": _nf_score(lambda f, x: S.multiscale_dsm(lambda u, s: f(u), x, [1.0, 0.5],
                                                              seed=0)),
    "annealed_langevin": _nf_score(lambda f, x: S.annealed_langevin(
        lambda u, s: f(u), x, [1.0, 0.5], n_steps=2, step_size=0.01, seed=0)),
}


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # interpreter
@pytest.mark.parametrize("value", [NAN, math.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("row", sorted(NONFINITE_ROWS))
def test_non_finite_datum_stays_in_its_row(row, value):
    out = NONFINITE_ROWS[row](value)
    for o in out if isinstance(out, tuple) else (out,):
        o = o.detach()
        assert not torch.isfinite(o[0]).all(), f"{row}: datum 0 is {o[0]}, expected non-finite"
        assert torch.isfinite(o[1:]).all(), f"{row}: other data became non-finite: {o[1:]}"


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


def _l_fae(lay):
    return O.fae(lay(_gen(1, B, D)), lay(_gen(2, N, B, L)), lay(_gen(3, N, B, D)), _gen(4),
                 lay(_gen(5, B, L)), lay(_gen(6, B, L)), lay(_gen(7, N, B, D)),
                 lay(_gen(8, N, B, L)))


def _l_fae_loss(lay):
    torch.manual_seed(11)
    return O.fae_loss(lay(_gen(1, B, D)), encode, decoder, _gen(2), n_samples=2, reparam=True,
                      eps=lay(_gen(3, 2, B, L)))


def _q_spd(seed, *batch):
    a = _gen(seed, *batch, 2, 2).numpy()
    return a @ np.swapaxes(a, -1, -2) + np.eye(2)


def _l_div(method, kind):
    def row(lay):
        qm, qc = lay(_gen(1, 2, 3, 2).numpy() * 0.3), lay(_q_spd(2, 2, 3) * 0.3)
        return getattr(_post(kind), method)(qm, qc, lay(_gen(3, 2, 3).numpy() ** 2 + 0.1))

    return row


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
    "toy.posterior-linear": _l_toy_linear, "toy.grid_posterior": _l_grid, "fae": _l_fae,
    "fae_loss": _l_fae_loss, "kl_from": _l_div("kl_from", "toy"),
    "fd_from": _l_div("fd_from", "toy"),
    "kl_from-grid": _l_div("kl_from", "grid"), "fd_from-grid": _l_div("fd_from", "grid"),
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

    def m1(e):
        xm = _gen(2, B, D).expand(N, B, D)
        return O.m1(_gen(1, B, D), xm if e else xm.contiguous(), _gen(3))

    def m2(e):
        x = _gen(1, 1, D).expand(B, D)
        return O.m2(x if e else x.contiguous(), _gen(2, N, B, D), _gen(3))

    def fae(e):
        z, g = _gen(2, 1, B, L).expand(N, B, L), _gen(8, B, 1).expand(N, B, L)
        c = (lambda a: a) if e else torch.Tensor.contiguous
        return O.fae(_gen(1, B, D), c(z), _gen(3, N, B, D), _gen(4), _gen(5, B, L), _gen(6, B, L),
                     _gen(7, N, B, D), c(g))

    def pfdl(e):
        mu = _gen(2, 1, L).expand(B, L)
        torch.manual_seed(3)
        return O.posterior_fd_loss(_gen(1, B, D), decoder, mu if e else mu.contiguous(),
                                   _gen(3, B, L), _gen(4), n_samples=2, reparam=False)

    def exact(e):
        x = _gen(1, 1, D).expand(B, D)
        return S.exact_sm(lambda v: torch.tanh(v) - v, x if e else x.contiguous())

    def dsm(e):
        x = _gen(1, 1, D).expand(B, D)
        return S.dsm(lambda v: -v, x if e else x.contiguous(), 0.4, seed=2)

    def mdsm(e):
        x = _gen(1, B, 1).expand(B, D)
        return S.multiscale_dsm(noise_score_fn, x if e else x.contiguous(), [1.0, 0.5], seed=2)

    def lang(e):
        x = _gen(1, 1, D).expand(B, D)
        return S.annealed_langevin(noise_score_fn, x if e else x.contiguous(), [1.0, 0.5],
                                   n_steps=2, step_size=0.01, seed=2)

    def fae_loss(e):
        x = _gen(1, 1, D).expand(B, D)
        return O.fae_loss(x if e else x.contiguous(), encode, decoder, _gen(2), n_samples=2,
                          reparam=False, eps=_gen(3, 2, B, L))

    def div(e):
        qc = np.broadcast_to(_q_spd(2) * 0.3, (2, 3, 2, 2))
        qw = np.broadcast_to(np.array([0.2, 0.3, 0.5]), (2, 3))
        c = (lambda a: a) if e else np.ascontiguousarray
        post = _post("toy")
        return post.kl_from(_gen(1, 2, 3, 2).numpy() * 0.3, c(qc), c(qw)), post.fd_from(
            _gen(1, 2, 3, 2).numpy() * 0.3, c(qc), c(qw))

    return [(f.__name__, f) for f in (pfd, pfd_z, gt, gt_x, m1, m2, m3, elbo, fae, fae_loss, pfdl,
                                      hutch,
                                      exact, sliced, dsm, mdsm, lang, isle, isle_np, isacc,
                                      isacc_torch, toy_x, grid, div)]


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


# ===================================================================== the function × kind matrix
# API function -> (CASES id prefix, LAYOUT_ROWS / NONFINITE_ROWS key, expanded-case names).
API = {
    "vsm.posterior_fd": ("pfd", "posterior_fd", ("pfd", "pfd_z")),
    "vsm.gaussian_terms": ("gt", "gaussian_terms", ("gt", "gt_x")),
    "vsm.hutchinson_trace": ("hutch", "hutchinson_trace", ("hutch",)),
    "objectives.elbo": ("elbo", "elbo", ("elbo",)),
    "objectives.m1": ("m1", "m1", ("m1",)),
    "objectives.m2": ("m2", "m2", ("m2",)),
    "objectives.m3": ("m3", "m3", ("m3",)),
    "objectives.fae": ("fae", "fae", ("fae",)),
    "objectives.fae_loss": ("faeloss", "fae_loss", ("fae_loss",)),
    "objectives.posterior_fd_loss": ("pfdl", "posterior_fd_loss", ("pfdl",)),
    "score.exact_sm": ("exact", "exact_sm", ("exact",)),
    "score.sliced_sm": ("sliced", "sliced_sm", ("sliced",)),
    "score.dsm": ("dsm", "dsm", ("dsm",)),
    "score.multiscale_dsm": ("mdsm", "multiscale_dsm", ("mdsm",)),
    "score.annealed_langevin": ("lang", "annealed_langevin", ("lang",)),
    "vsm.is_log_evidence": ("isle", "is_log_evidence", ("isle", "isle_np")),
    "ISAccumulator(x, log_sigma2)": ("isacc", "ISAccumulator", ("isacc", "isacc_torch")),
    "ISAccumulator.add": ("isadd", "ISAccumulator", ("isacc", "isacc_torch")),
    "ISAccumulator.result": ("isres", "ISAccumulator", ("isacc", "isacc_torch")),
    "toy.posterior": ("toy", "toy.posterior", ("toy_x",)),
    "toy.grid_posterior": ("grid", "toy.grid_posterior", ("grid",)),
    "Posterior.kl_from": ("kl", "kl_from", ("div",)),
    "Posterior.fd_from": ("fd", "fd_from", ("div",)),
}
NONCONTIG, EXPANDED = "non-contig", "expanded"
_NO_OPTIONS = "n/a: no options"
_NO_ARGS = "n/a: no arguments"
NOT_APPLICABLE = {
    **{(f, OPTION): _NO_OPTIONS for f in (
        "vsm.posterior_fd", "vsm.gaussian_terms", "objectives.elbo", "objectives.m1",
        "objectives.m2", "objectives.m3", "objectives.fae", "score.exact_sm",
        "vsm.is_log_evidence", "ISAccumulator.add")},
    **{("ISAccumulator.result", k): _NO_ARGS for k in (TYPE, DTYPE, SHAPE, DEVICE, NONFINITE,
                                                       OPTION)},
}


def _api_of_case(case_id):
    prefix = case_id.split("-")[0]
    return [f for f, (p, _, _) in API.items() if p == prefix]


def matrix():
    """{function: {kind: cell}}: exception names of the CASES rows, 'NaN->row' for the
    propagation table, 'same' for the layout tables, else the NOT_APPLICABLE reason."""
    cells = {f: {} for f in API}
    for case_id, kind, _, _, exc, _ in CASES:
        for f in _api_of_case(case_id):
            cells[f].setdefault(kind, set()).add(exc.__name__)
    expanded = {name for name, _ in _expanded_cases()}
    for f, (_, key, exp) in API.items():
        if key in NONFINITE_ROWS:
            cells[f].setdefault(NONFINITE, set()).add("NaN->row")
        if any(k.split("-")[0] == key for k in LAYOUT_ROWS):
            cells[f][NONCONTIG] = {"same"}
        if expanded.intersection(exp):
            cells[f][EXPANDED] = {"same"}
    out = {}
    for f, row in cells.items():
        out[f] = {k: "/".join(sorted(row[k])) if k in row else NOT_APPLICABLE.get((f, k), "MISSING")
                  for k in (*KINDS, NONCONTIG, EXPANDED)}
    return out


def format_matrix():
    """The matrix as a Markdown table (``python tests/test_bad_input.py``)."""
    cols = (*KINDS, NONCONTIG, EXPANDED)
    abbrev = {"TypeError": "TE", "ValueError": "VE"}
    lines = ["| function | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for f, row in matrix().items():
        vals = [row[c] for c in cols]
        for long, short in abbrev.items():
            vals = [v.replace(long, short) for v in vals]
        lines.append(f"| {f} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


def test_matrix_is_complete():
    """Every row belongs to an API function, and every function × kind cell is tested or has a
    stated reason why it does not apply (and not both)."""
    for case_id, kind, *_ in CASES:
        assert kind in KINDS, case_id
        assert _api_of_case(case_id), f"{case_id}: unknown function prefix"
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate row ids"
    missing = [(f, k) for f, row in matrix().items() for k, v in row.items() if v == "MISSING"]
    assert not missing, f"untested cells without a reason: {missing}"
    for f, row in matrix().items():
        for k, v in row.items():
            if (f, k) in NOT_APPLICABLE:
                assert v == NOT_APPLICABLE[(f, k)], f"{f} × {k} is tested: drop its n/a reason"


if __name__ == "__main__":
    print(format_matrix())
