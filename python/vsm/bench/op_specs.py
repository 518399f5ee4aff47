"""The cases of ``vsm bench --check``: a :class:`Spec` per fused op or objective at one shape
(inputs, the vsm computation and its reference), and :func:`specs`, the checked set."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .._dispatch import backend


@dataclass
class Spec:
    """A check: ``build(device, dtype)`` → (fn, wrt tensors, output names, wrt names), where
    ``fn(mode, ref)`` returns the outputs: the vsm computation (``ref`` False, run under backend
    ``mode``) or its reference (``ref`` True, run under backend "reference")."""

    check: str
    shape: str
    build: Callable[
        [torch.device, torch.dtype],
        tuple[
            Callable[[str, bool], Sequence[torch.Tensor]], list[torch.Tensor], list[str], list[str]
        ],
    ]


def _r(gen: torch.Generator, device, dtype, *shape, scale=1.0, grad=True) -> torch.Tensor:
    t = scale * torch.randn(*shape, generator=gen, dtype=torch.float64)
    return t.to(device, dtype).requires_grad_(grad)


def _pfd_spec(n: int | None, b: int, l: int, lv_range: float | None = None) -> Spec:
    zshape = (b, l) if n is None else (n, b, l)

    def build(device, dtype):
        import vsm

        gen = torch.Generator().manual_seed(b * 1000 + l)
        z, g = _r(gen, device, dtype, *zshape), _r(gen, device, dtype, *zshape)
        mu = _r(gen, device, dtype, b, l)
        if lv_range is None:
            lv = _r(gen, device, dtype, b, l, scale=0.5)
        else:
            u = torch.rand(b, l, generator=gen, dtype=torch.float64)
            lv = ((2 * u - 1) * lv_range).to(device, dtype).requires_grad_(True)
        ins = [z, mu, lv, g]
        return (
            (lambda _m, _ref: [vsm.posterior_fd(*ins)]),
            ins,
            ["pfd"],
            ["z", "mu", "logvar", "grad_loglik_z"],
        )

    extra = f" logvar∈±{lv_range:g}" if lv_range else ""
    return Spec("posterior_fd", f"z {zshape} L={l}{extra}", build)


def _gt_spec(n: int | None, b: int, d: int, log_sigma2: float = -0.7) -> Spec:
    xm_shape = (b, d) if n is None else (n, b, d)

    def build(device, dtype):
        import vsm

        gen = torch.Generator().manual_seed(b * 1000 + d)
        x, xm = _r(gen, device, dtype, b, d), _r(gen, device, dtype, *xm_shape)
        ls2 = torch.tensor(log_sigma2, dtype=dtype, device=device, requires_grad=True)
        ins = [x, xm, ls2]

        def fn(_m, _ref):
            t = vsm.gaussian_terms(*ins)
            return [t.sq_mean, t.mean_sq, t.trace]

        return fn, ins, ["sq_mean", "mean_sq", "trace"], ["x", "x_mean", "log_sigma2"]

    return Spec("gaussian_terms", f"x_mean {xm_shape}", build)


def _hutch_spec(b: int, d: int, p: int, dist: str) -> Spec:
    def build(device, dtype):
        import vsm

        from ..ops import hutchinson_probes

        gen = torch.Generator().manual_seed(b * 1000 + d + p)
        x = _r(gen, device, dtype, b, d)
        w_mat = _r(gen, device, dtype, d, d, scale=1 / math.sqrt(d))
        w_vec = _r(gen, device, dtype, d)
        ins = [x, w_mat, w_vec]
        seed = 12345

        def fn(mode, ref):
            y = torch.tanh(x @ w_mat) + x * w_vec  # a non-diagonal Jacobian, rows independent
            if ref:  # the estimator's formula with the probes of the backend under test
                with backend(mode):
                    v = hutchinson_probes(x, p, seed, dist).detach()
                est = torch.zeros(b, dtype=dtype, device=device)
                for k in range(p):
                    (u,) = torch.autograd.grad(y, x, v[k], create_graph=True)
                    est = est + (v[k] * u).sum(-1)
                return [est / p]
            return [vsm.hutchinson_trace(y, x, n_probes=p, dist=dist, seed=seed)]

        return fn, ins, ["trace"], ["x", "W", "w"]

    return Spec("hutchinson_trace", f"B={b} D={d} P={p} {dist}", build)


def _objective_specs(n: int, b: int, d: int, l: int) -> list[Spec]:
    def setup(device, dtype):
        gen = torch.Generator().manual_seed(n * 100 + b + d + l)
        t = {
            "x": _r(gen, device, dtype, b, d),
            "x_mean": _r(gen, device, dtype, n, b, d),
            "psi": _r(gen, device, dtype, n, b, d),
            "z": _r(gen, device, dtype, n, b, l),
            "gz": _r(gen, device, dtype, n, b, l),
            "mu": _r(gen, device, dtype, b, l),
            "logvar": _r(gen, device, dtype, b, l, scale=0.5),
        }
        t["log_sigma2"] = torch.tensor(-0.5, dtype=dtype, device=device, requires_grad=True)
        eps = _r(gen, device, dtype, n, b, l, grad=False)
        torch.manual_seed(0)
        dec = torch.nn.Sequential(torch.nn.Linear(l, 13), torch.nn.Tanh(), torch.nn.Linear(13, d))
        enc = torch.nn.Sequential(
            torch.nn.Linear(d, 11), torch.nn.Tanh(), torch.nn.Linear(11, 2 * l)
        )
        dec, enc = dec.to(device, dtype), enc.to(device, dtype)
        return t, eps, dec, enc

    def make(name: str, call, keys: list[str], nets: str = ""):
        def build(device, dtype):
            t, eps, dec, enc = setup(device, dtype)

            def encode(v):
                h = enc(v)
                return h[..., :l], h[..., l:]

            def fn(_m, _ref):
                return [call(t, eps, dec, encode)]

            params = list(dec.parameters()) if "dec" in nets else []
            params += list(enc.parameters()) if "enc" in nets else []
            names = keys + [f"{nets}.param{i}" for i in range(len(params))]
            return fn, [t[k] for k in keys] + params, [name], names

        return Spec(f"objectives.{name}", f"N={n} B={b} D={d} L={l}", build)

    from .. import objectives as O

    return [
        make(
            "m1",
            lambda t, e, dec, enc: O.m1(t["x"], t["x_mean"], t["log_sigma2"]),
            ["x", "x_mean", "log_sigma2"],
        ),
        make(
            "m2",
            lambda t, e, dec, enc: O.m2(t["x"], t["x_mean"], t["log_sigma2"]),
            ["x", "x_mean", "log_sigma2"],
        ),
        make(
            "m3",
            lambda t, e, dec, enc: O.m3(t["x"], t["x_mean"], t["log_sigma2"], t["psi"]),
            ["x", "x_mean", "log_sigma2", "psi"],
        ),
        make(
            "fae",
            lambda t, e, dec, enc: O.fae(
                t["x"],
                t["z"],
                t["x_mean"],
                t["log_sigma2"],
                t["mu"],
                t["logvar"],
                t["psi"],
                t["gz"],
            ),
            ["x", "z", "x_mean", "log_sigma2", "mu", "logvar", "psi", "gz"],
        ),
        make(
            "posterior_fd_loss",
            lambda t, e, dec, enc: O.posterior_fd_loss(
                t["x"], dec, t["mu"], t["logvar"], t["log_sigma2"], n_samples=n, reparam=True, eps=e
            ),
            ["x", "mu", "logvar", "log_sigma2"],
            "dec",
        ),
        make(
            "fae_loss",
            lambda t, e, dec, enc: O.fae_loss(
                t["x"], enc, dec, t["log_sigma2"], n_samples=n, reparam=True, eps=e
            ),
            ["x", "log_sigma2"],
            "dec+enc",
        ),
    ]


def specs(small: bool, ops: Sequence[str] | None = None) -> list[Spec]:
    """The checked cases: tiny odd shapes on CPU (interpreter), larger odd shapes on CUDA.
    ``ops``: only these fused ops and the objectives built on them (None: all)."""
    every = _specs(small)
    if ops is None:
        return every
    uses = {
        "objectives.m1": {"gaussian_terms"},
        "objectives.m2": {"gaussian_terms"},
        "objectives.m3": {"gaussian_terms"},
        "objectives.fae": {"gaussian_terms", "posterior_fd"},
        "objectives.posterior_fd_loss": {"posterior_fd"},
        "objectives.fae_loss": {"gaussian_terms", "posterior_fd"},
    }
    return [s for s in every if s.check in ops or uses.get(s.check, set()) & set(ops)]


def _specs(small: bool) -> list[Spec]:
    if small:
        return [
            _pfd_spec(2, 3, 5),
            _pfd_spec(None, 3, 1),
            _pfd_spec(2, 3, 7, lv_range=12.0),
            _gt_spec(2, 3, 5),
            _gt_spec(None, 3, 6),
            _gt_spec(1, 1, 1),
            _hutch_spec(3, 5, 2, "rademacher"),
            _hutch_spec(2, 7, 1, "gaussian"),
            *_objective_specs(2, 3, 5, 2),
        ]
    return [
        _pfd_spec(3, 37, 5),
        _pfd_spec(5, 129, 100),
        _pfd_spec(None, 33, 17),
        _pfd_spec(1, 1, 1),
        _pfd_spec(2, 65, 33, lv_range=12.0),
        _gt_spec(3, 37, 5),
        _gt_spec(5, 100, 784),
        _gt_spec(None, 19, 1000),
        _gt_spec(1, 1, 1),
        _hutch_spec(37, 129, 3, "rademacher"),
        _hutch_spec(5, 1000, 1, "gaussian"),
        _hutch_spec(1, 1, 1, "rademacher"),
        *_objective_specs(3, 37, 129, 5),
    ]
