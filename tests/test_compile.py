"""``torch.compile(fullgraph=True)`` readiness of vsm's fused ops.

Under ``TRITON_INTERPRET=1`` (conftest) CPU tensors take the Triton path, so the ``torch.library``
custom ops (``vsm::posterior_fd``, ``vsm::gaussian_terms``, ``vsm::hutchinson_*``) are what dynamo
traces: a training step using them must compile without graph breaks and match eager, values and
gradients. The tests use the "aot_eager" backend: it runs dynamo + AOTAutograd (the fake
implementations and the registered autograd formulas, i.e. everything the ops are responsible
for) without inductor's C++ code generation, which on this 2-core CPU machine costs tens of
seconds per graph; inductor itself is exercised once in ``test_inductor_compiles_posterior_fd``.
``torch.library.opcheck`` checks the custom ops' registrations.

``vsm.hutchinson_trace`` itself calls ``torch.autograd.grad`` (not traceable with
``fullgraph=True``); its probe and dot ops are compiled directly.
"""

from __future__ import annotations

import pytest
import torch
import vsm
from vsm.ops import hutchinson as H


def _vae_batch(n=3, b=5, l=4, d=7, dtype=torch.float64):
    gen = torch.Generator().manual_seed(0)

    def r(*s):
        return torch.randn(*s, generator=gen, dtype=dtype)

    params = {
        "w": r(l, d).requires_grad_(True),
        "mu": r(b, l).requires_grad_(True),
        "logvar": (0.3 * r(b, l)).requires_grad_(True),
        "log_sigma2": torch.zeros((), dtype=dtype, requires_grad=True),
    }
    return params, r(b, d), r(n, b, l)


def _step(w, mu, logvar, log_sigma2, x, eps):
    """A small VAE-like loss: decoder x_mean = tanh(z W), PFD with an analytic VJP, terms."""
    z = mu + torch.exp(0.5 * logvar) * eps
    h = torch.tanh(z @ w)
    resid = (x - h) / torch.exp(log_sigma2)  # ∇_x_mean log p(x|z)
    grad_loglik_z = (resid * (1 - h * h)) @ w.T  # VJP through tanh(z W)
    pfd = vsm.posterior_fd(z, mu, logvar, grad_loglik_z)
    terms = vsm.gaussian_terms(x, h, log_sigma2)
    return pfd.mean() + terms.sq_mean.mean() - 0.5 * terms.mean_sq.mean()


def _grads(fn, params, x, eps):
    loss = fn(**params, x=x, eps=eps)
    return loss, torch.autograd.grad(loss, list(params.values()))


def _compiled_matches_eager(backend, params, x, eps):
    """:func:`_step` under ``torch.compile(fullgraph=True)`` on ``backend`` gives the eager loss
    and gradients; returns the eager ones."""
    with vsm.backend(backend):
        loss, grads = _grads(_step, params, x, eps)
        compiled = torch.compile(_step, fullgraph=True, backend="aot_eager")
        closs, cgrads = _grads(compiled, params, x, eps)
    torch.testing.assert_close(closs, loss)
    for g, cg in zip(grads, cgrads, strict=True):
        torch.testing.assert_close(cg, g)
    return loss, grads


def test_training_step_compiles_fullgraph_and_matches_eager():
    _compiled_matches_eager("triton", *_vae_batch())


def test_no_graph_breaks_reported_by_explain():
    params, x, eps = _vae_batch()
    with vsm.backend("triton"):
        explanation = torch._dynamo.explain(_step)(**params, x=x, eps=eps)
    assert explanation.graph_break_count == 0
    assert explanation.graph_count == 1
    # the custom ops are in the graph as single nodes, not decomposed or run eagerly
    code = "\n".join(str(g.graph) for g in explanation.graphs)
    assert "vsm.posterior_fd" in code and "vsm.gaussian_terms" in code


def test_hutchinson_ops_compile_and_match():
    u = torch.randn(2, 3, 17, dtype=torch.float64, requires_grad=True)

    def f(u):
        v = H._probes_op(u[0], 2, 123, "gaussian")
        return H._dot_op(u, 123, "gaussian").sum() + (v * u).sum()

    want = f(u)
    (gw,) = torch.autograd.grad(want, u)
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    got = compiled(u)
    (gg,) = torch.autograd.grad(got, u)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(gg, gw)


def test_inductor_compiles_posterior_fd():
    params, _x, eps = _vae_batch(dtype=torch.float32)

    def pfd_only(mu, logvar, eps, g):
        z = mu + torch.exp(0.5 * logvar) * eps
        return vsm.posterior_fd(z, mu, logvar, g).sum()

    g = torch.randn_like(eps)
    mu, logvar = params["mu"].float(), params["logvar"].float()
    with vsm.backend("triton"):
        want = pfd_only(mu, logvar, eps, g)
        got = torch.compile(pfd_only, fullgraph=True, backend="inductor")(mu, logvar, eps, g)
    torch.testing.assert_close(got, want)


OPCHECK_CASES = ["probes", "dot", "dot_backward", "posterior_fd", "gaussian_terms"]


def _opcheck_case(case):
    """(custom op, float64 sample arguments) of one fused op for ``torch.library.opcheck``."""
    gen = torch.Generator().manual_seed(1)

    def r(*s, grad=True):
        return torch.randn(*s, generator=gen, dtype=torch.float64).requires_grad_(grad)

    if case == "probes":
        op, args = H._probes_op, (r(3, 5, grad=False), 2, 7, "rademacher")
    elif case == "dot":
        op, args = H._dot_op, (r(2, 3, 5), 7, "gaussian")
    elif case == "dot_backward":
        op, args = H._dot_bwd_op, (r(2, 3), 7, "rademacher", 5)
    elif case == "posterior_fd":
        from vsm.ops.posterior_fd import _pfd_op

        op, args = _pfd_op, (r(2, 3, 4), r(3, 4), r(3, 4), r(2, 3, 4))
    else:
        from vsm.ops.gaussian_terms import _gt_op

        op, args = _gt_op, (r(3, 6), r(2, 3, 6), r(()))
    return op, args


@pytest.mark.parametrize("case", OPCHECK_CASES)
def test_opcheck(case):
    torch.library.opcheck(*_opcheck_case(case))


def test_bench_harness_runs_from_the_package(capsys, monkeypatch):
    """``vsm bench`` (vsm.bench.main) produces its table; timings themselves are not asserted."""
    from vsm import bench

    monkeypatch.setattr(bench.timing, "time_ms", lambda f, device, min_run_time: (f(), 1.0)[1])
    status = bench.main(
        [
            "--quick",
            "--no-compile",
            "--device",
            "cpu",
            "--op",
            "posterior_fd",
            "--op",
            "hutchinson_trace",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "Triton-interpreter timings are meaningless" in out
    prefixes = ("| posterior_fd", "| hutchinson_trace")
    rows = [line for line in out.splitlines() if line.startswith(prefixes)]
    # quick set: 2 posterior_fd shapes + 1 hutchinson shape, each fwd and fwd+bwd; no large rows
    assert len(rows) == 6
    assert all("1.00x" in r for r in rows)
    assert not any("B=4096 L" in r or "D=12288" in r for r in rows)
