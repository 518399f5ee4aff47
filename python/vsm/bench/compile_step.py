"""``vsm bench --check``'s torch.compile check: a VAE training step through the fused ops,
compiled with ``fullgraph=True``, against eager (:func:`check_compile`)."""

from __future__ import annotations

import math

import torch

from .compare import CheckResult, compare


def _vae_step(
    enc: torch.nn.Sequential,
    dec_layers: list[torch.nn.Linear],
    x: torch.Tensor,
    eps: torch.Tensor,
    log_sigma2: torch.Tensor,
) -> torch.Tensor:
    """Encoder-and-decoder loss of an MLP VAE with the fused ops: mean PFD (decoder VJP written
    out by hand, ReLU MLP) + mean m2 (gaussian_terms)."""
    import vsm

    h = enc(x)
    latent = h.shape[-1] // 2
    mu, logvar = h[..., :latent], h[..., latent:]
    z = mu + torch.exp(0.5 * logvar) * eps
    acts, a = [], z
    for i, layer in enumerate(dec_layers):  # forward, keeping the ReLU masks
        a = layer(a)
        if i < len(dec_layers) - 1:
            acts.append(a > 0)
            a = torch.relu(a)
    x_mean = a
    g = (x - x_mean) * torch.exp(-log_sigma2)  # ∇_{x_mean} log p(x|z)
    for i in range(len(dec_layers) - 1, -1, -1):  # VJP back to z
        g = g @ dec_layers[i].weight
        if i > 0:
            g = g * acts[i - 1]
    pfd = vsm.posterior_fd(z, mu, logvar, g).mean(0)
    m2 = vsm.objectives.m2(x, x_mean, log_sigma2)
    return (pfd + m2).mean()


def check_compile(
    device: torch.device, dtype: torch.dtype, compile_backend: str, small: bool
) -> list[CheckResult]:
    """``torch.compile(fullgraph=True)`` of ``_vae_step`` vs eager: loss and parameter grads
    (float32 / float64 tolerances of :data:`vsm.bench.compare.TOLERANCES`)."""
    dname = str(dtype).removeprefix("torch.")
    n, b, d, l, w = (2, 3, 6, 2, 5) if small else (5, 100, 784, 16, 128)
    shape = f"N={n} B={b} D={d} L={l} width {w}"
    torch.manual_seed(0)
    enc = torch.nn.Sequential(torch.nn.Linear(d, w), torch.nn.ReLU(), torch.nn.Linear(w, 2 * l))
    dec = [torch.nn.Linear(l, w), torch.nn.Linear(w, w), torch.nn.Linear(w, d)]
    enc = enc.to(device, dtype)
    dec = [m.to(device, dtype) for m in dec]
    log_sigma2 = torch.tensor(-1.0, device=device, dtype=dtype, requires_grad=True)
    params = [*enc.parameters(), *(p for m in dec for p in m.parameters()), log_sigma2]
    x = torch.rand(b, d, device=device, dtype=dtype)
    eps = torch.randn(n, b, l, device=device, dtype=dtype)

    def res(quantity, ok, err=0.0, ratio=0.0, msg=""):
        return CheckResult(
            "compile VAE step", compile_backend, dname, shape, quantity, ok, err, ratio, msg
        )

    try:
        loss = _vae_step(enc, dec, x, eps, log_sigma2)
        grads = torch.autograd.grad(loss, params)
        torch._dynamo.reset()
        step = torch.compile(_vae_step, fullgraph=True, backend=compile_backend)
        closs = step(enc, dec, x, eps, log_sigma2)
        cgrads = torch.autograd.grad(closs, params)
    except Exception as exc:  # noqa: BLE001 - a failed compile is a failed check
        return [res("compile", False, math.inf, math.inf, f"{type(exc).__name__}: {exc}"[:300])]
    out = [res("loss", *compare(closs, loss, dtype))]
    for i, (g, cg) in enumerate(zip(grads, cgrads, strict=True)):
        out.append(res(f"grad param{i} {tuple(g.shape)}", *compare(cg, g, dtype)))
    return out
