"""The fast path of Algorithm 1 (``TrainConfig.fast_step``, on by default): each update's loss and
its parameter gradients in closed form, without building an autograd graph.

For the MLP models (:class:`vsm.models.MLPVAE`: ``nn.Linear`` layers with ReLU between them) the
gradients of the Algorithm-1 losses are short explicit formulas: a forward pass that keeps each
layer's input, the loss's gradient with respect to the network outputs written out (below), and
the backward pass of the MLP as matrix products (``W ← dyᵀ h``, ``b ← Σ dy``, ``h ← dy W`` masked
by the ReLU). The update then is the optimiser's ordinary ``step()`` on those gradients, so
optimiser states, checkpoints and resumes are those of the plain path. Compared with autograd
(:mod:`vsm.train.algorithm`) this removes the graph bookkeeping, the second-order graph of the
decoder VJP in the FD encoder step, the weight-gradient products that a group's update does not
need, and the N-fold encoder pass of ψ (the N copies of x share one forward pass). Mathematically
the same losses and gradients (the tests compare both paths in float64 to 1e-10 after 100
iterations); summation orders differ, so float32 runs agree to rounding, not bit for bit.

Covered: one model (:class:`~vsm.train.networks.OneModel`) and S stacked replicas
(:class:`~vsm.train.replicas.Replicas`, batched products over replicas), on any device; the
inference steps "kl" (−ELBO, reparametrised) and "fd" (mean_n PFD with detached samples, or
reparametrised ones with ``fd_reparam``); the learning steps elbo, m1, m2 and m3 with both
variants' estimators (minibatch or per-datum means, per-sample or summed cross term, partial or
total ψ); both steps of the Fisher autoencoder
("fae", partial or total ψ in the encoder step); every SD head and noise parametrisation; any
K_enc, input noise η, dtype; data-parallel runs (torchrun: the trainer averages the closed-form
gradients over the ranks, :func:`vsm.train.distributed.average_grads_`). Everything else runs the
plain autograd path automatically (:func:`unsupported` names the reason): the bi-level variant
(``k_bi > 0``) and models other than an MLP of ``nn.Linear`` and ``nn.ReLU`` (the conv VAE).

The FAE's gradients, and the FD encoder step's with ``fd_reparam``, differentiate VJPs once
more. A ReLU MLP is piecewise linear, so its second derivatives with respect to its input vanish
almost everywhere (autograd's ReLU has the same zero second derivative), and what remains are
products with the Jacobian at the forward pass's ReLU patterns: J t by forward tangents
(``_MLP.jvp``), and the weight derivative of uᵀ J t, at layer l the backward signal of u
times the tangent of t into it (``_MLP.vjp_weight_grads``; biases do not enter J).

Formulas (f_n = (x_mean_n − x)/σ², e = e^{−logvar}, per datum, then the batch mean; N samples, B
data; ψ_n = ∇_x log q(z_n|x)):

- −ELBO: ∂/∂x_mean_n = (x_mean_n − x)/(σ² N B), ∂/∂mu = Σ_n ∂z_n + mu/B, ∂/∂logvar =
  Σ_n ∂z_n ⊙ ½ e^{logvar/2} ε_n + ½(e^{logvar} − 1)/B, ∂/∂log σ² = mean_b (D − mean_n‖x − x_mean_n‖²/σ²)/2;
- PFD (z detached, g_n = ∇_z log p(x|z_n) by the decoder's input-gradient): r_n = z_n − (z_n − mu) e − g_n,
  ∂/∂mu = Σ_n 2 r_n e/(N B), ∂/∂logvar = Σ_n 2 r_n (z_n − mu) e/(N B); with ``fd_reparam``
  (z_n = mu + e^{logvar/2} ε_n) also ∂/∂z_n = 2((1 − e) r_n + J_gᵀ J_g r_n/σ²)/(N B) (g_n's
  z-derivative is −J_gᵀJ_g/σ²), then as for −ELBO through z_n: the FAE encoder step's PFD part
  with weight 2 and without ½‖f_n‖²;
- m1, m2, m3 (each ½‖·‖² or ‖·‖² term scales as σ⁻⁴, the cross term as σ⁻², the trace −D/σ²):
  ∂/∂x_mean_n = (f_n, 2f_n − f̄, f̄ + ψ_n)/(σ² N B) and ∂/∂log σ² = −2Q − C + D/σ² for the
  quadratic part Q, the cross part C (f̄ the per-datum or, for the minibatch estimator, the
  per-minibatch mean of f);
- fae, per sample ½‖f_n‖² − D/σ² + ½‖ψ_n‖² + ½‖r_n‖² with the PFD residual
  r_n = z_n − (z_n − mu) e + J_gᵀ f_n and ψ_n = J_hᵀ c_n, the encoder h = (mu, raw)'s input-VJP of
  c_n = ∂ log q(z_n|x)/∂h = (δ_n, λ_n logvar'), δ_n = (z_n − mu) e, λ_n = ½(z_n − mu)² e − ½ (ψ at
  fixed z; the total derivative: δ = 0, λ = −½, one row per datum); everything below is divided
  by N B (by B for ψ's terms with the total derivative). Decoder step (z detached): ∂/∂x_mean_n =
  (f_n + J_g r_n)/σ² plus, for each weight, the product of f_n's backward signal and r_n's
  tangent; ∂/∂log σ² = −‖f_n‖² − f_n·J_g r_n + D/σ². Encoder step (z_n = mu + e^{logvar/2} ε_n),
  with (a_n, b_n) = J_h ψ_n split into its mu and raw halves, k_n = δ_n logvar' b_n:
  ∂/∂z_n = (1 − e) r_n + J_gᵀ(f_n + J_g r_n)/σ² + e a_n + k_n, then as for −ELBO through z_n, and
  directly ∂/∂mu = r_n e − e a_n − k_n, ∂/∂logvar = (z_n − mu)(r_n e − e a_n − ½ k_n),
  ∂/∂raw = λ_n logvar'' b_n (softplus head only), plus for each encoder weight the product of
  c_n's backward signal and ψ_n's tangent; the a_n and k_n terms only for ψ at fixed z (the
  total derivative's c does not depend on z, mu or logvar).
"""

from __future__ import annotations

import ctypes
import functools
import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..models import GaussianVAE, log_softplus
from .config import VariantOptions, split_objective
from .networks import Networks, OneModel, Params
from .replicas import Replicas, StackedVAE, _plan

__all__ = ["FastStep", "retain_freed_memory", "unsupported"]

_Layer = tuple[str, str, bool]  # (weight name, bias name, ReLU after it)


def _layers(module: nn.Module) -> list[_Layer] | None:
    """The MLP ``module`` as (weight, bias, relu) layers, or None if it is not one that
    :class:`FastStep` covers (``nn.Linear`` with bias, ``nn.ReLU`` after some, ``nn.Flatten``)."""
    plan = _plan(module)
    if plan is None:
        return None
    layers: list[_Layer] = []
    for step in plan:
        if step[0] == "linear":
            if step[2] is None:
                return None
            layers.append((step[1], step[2], False))
        elif step[0] == "apply":
            if type(step[1]) is not nn.ReLU or not layers or layers[-1][2]:
                return None
            layers[-1] = (layers[-1][0], layers[-1][1], True)
        # ("flatten", ...): the losses pass flat data already
    if not layers or layers[-1][2]:
        return None
    return layers


def unsupported(
    objective: str, *, k_bi: int, fd_reparam: bool, world_size: int, model: GaussianVAE
) -> str | None:
    """Why the fast path cannot run this configuration (None: it can). ``model``: the model,
    or the replicas' template. ``world_size`` and ``fd_reparam`` are accepted for callers and no
    longer decide anything: data-parallel runs and reparametrised FD samples take the fast path
    too. An unknown ``objective`` raises ValueError."""
    split_objective(objective)
    if k_bi > 0:
        return "the bi-level variant differentiates through unrolled encoder steps"
    if _layers(model.encoder) is None or _layers(model.decoder) is None:
        return "the model is not an MLP of nn.Linear and nn.ReLU layers"
    return None


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def retain_freed_memory() -> bool:
    """Keep memory that torch frees in glibc's heap (Linux): ``mallopt`` trim threshold 1 GiB,
    mmap threshold 32 MiB. True if both settings were applied.

    A step allocates and frees the same large activations every iteration; with glibc's defaults
    those above its (adaptive) mmap threshold, or freed at the top of the heap, go back to the
    kernel and come back as thousands of page faults per iteration (10 stacked replicas at the
    paper's 2-D shapes: ~2 000–9 000 minor faults per iteration, ~10 with these settings). The
    process then holds its peak heap instead of returning it. Process-wide; called once by
    :class:`vsm.train.Trainer` when the fast path runs on the CPU.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    trim = mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    mmap = mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    return bool(trim) and bool(mmap)


_F = TypeVar("_F", bound=Callable[..., Any])


def _compiled(fn: _F) -> _F:
    """``torch.compile(fn)`` (one graph, static shapes) that falls back to ``fn`` itself, with a
    warning, if compiling fails: e.g. no C++ compiler for inductor on this machine. An error that
    ``fn`` raises uncompiled too is raised as it is."""
    compiled = torch.compile(fn, dynamic=False, fullgraph=True)
    use = [compiled]

    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        try:
            return use[0](*args)
        except Exception as err:
            if use[0] is fn:
                raise
            out = fn(*args)  # raises if the error is not the compiler's
            use[0] = fn
            warnings.warn(
                f"compile_step: torch.compile failed ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}); training uncompiled",
                RuntimeWarning,
                stacklevel=2,
            )
            return out

    return cast(_F, call)


def _t(h: torch.Tensor) -> torch.Tensor:
    """Swap the last two axes (a view)."""
    return h.transpose(-1, -2)


class _MLP:
    """Forward and closed-form backward passes of one MLP given its parameters by name.

    Activations are kept feature-major, (…, F, M) contiguous for M rows: every product is then
    W (out, in) @ hᵀ (in, M) with the long axis M last, which MKL runs 1.2–2× faster at the
    paper's shapes (M = 1000–3000 rows, F = 2–100 features) than h (M, in) @ Wᵀ; callers see
    row-shaped (…, M, F) views.
    """

    def __init__(self, layers: list[_Layer]):
        self.layers = layers

    def forward(self, params: Params, h: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(output (…, M, out), each layer's input feature-major (…, in, M)) for h (…, M, in),
        (…) being () or the replica axis (S,)."""
        inputs = []
        ht = _t(h)
        for w, b, relu in self.layers:
            inputs.append(ht)
            wp, bp = params[w], params[b]
            if wp.dim() == 2:
                ht = torch.addmm(bp.unsqueeze(-1), wp, ht)
            else:
                ht = torch.baddbmm(bp.unsqueeze(-1), wp, ht)
            if relu:
                ht = torch.relu(ht)
        return _t(ht), inputs

    def backward(
        self,
        params: Params,
        inputs: list[torch.Tensor],
        dy: torch.Tensor,
        *,
        weights: bool,
        to_input: bool,
        signals: list[torch.Tensor] | None = None,
    ) -> tuple[Params, torch.Tensor | None]:
        """Gradients of Σ dy·output (dy (…, M, out)): by parameter name (if ``weights``) and for
        the input, (…, M, in) (if ``to_input``), from the forward pass's ``inputs``. ``signals``,
        if given, receives each layer's backward signal (the gradient at its output, after the
        ReLU mask; feature-major (…, out, M)), first layer first, for :meth:`vjp_weight_grads`."""
        grads: Params = {}
        dyt = _t(dy)
        for i in range(len(self.layers) - 1, -1, -1):
            w, b, _ = self.layers[i]
            ht = inputs[i]
            if signals is not None:
                signals.insert(0, dyt)
            if weights:
                grads[w] = dyt @ _t(ht)
                grads[b] = dyt.sum(-1)
            if i == 0 and not to_input:
                return grads, None
            dyt = _t(params[w]) @ dyt
            if i > 0:  # ht = relu(previous layer's output)
                dyt = torch.ops.aten.threshold_backward(dyt, ht, 0)
        return grads, _t(dyt)

    def jvp(
        self, params: Params, inputs: list[torch.Tensor], t: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(J t (…, M, out), the tangent into each layer feature-major (…, in, M)) for tangents
        t (…, M, in) at the inputs of :meth:`forward` (its ReLU patterns; biases do not enter)."""
        tangents = []
        tt = _t(t)
        for i, (w, _, relu) in enumerate(self.layers):
            tangents.append(tt)
            tt = params[w] @ tt
            if relu:  # the next layer's input is this layer's ReLU output
                tt = torch.ops.aten.threshold_backward(tt, inputs[i + 1], 0)
        return _t(tt), tangents

    def vjp_weight_grads(
        self, signals: list[torch.Tensor], tangents: list[torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """∂(uᵀ J r)/∂W per weight name, the weight derivative of the VJP Jᵀu contracted with r
        (at fixed ReLU patterns: the MLP is piecewise linear): u's backward ``signals`` of
        :meth:`backward` times r's ``tangents`` of :meth:`jvp`, layer by layer. Biases do not
        enter J."""
        return {
            w: s @ _t(t) for (w, _, _), s, t in zip(self.layers, signals, tangents, strict=True)
        }


def _sd_head(sd_head: str, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float]:
    """(logvar, d logvar / d raw) of :meth:`vsm.models.GaussianVAE.split`'s SD head."""
    if sd_head == "logvar":
        return raw, 1.0
    if sd_head == "logsd":
        return 2.0 * raw, 2.0
    low = raw < -30.0  # log_softplus's cut: log softplus(h) = h below it
    safe = torch.where(low, torch.zeros_like(raw), raw)
    e = torch.exp(safe)
    dsoftplus = torch.where(safe > 20.0, torch.ones_like(raw), e / (e + 1.0))  # torch's formula
    deriv = torch.where(low, torch.full_like(raw, 2.0), 2.0 * dsoftplus / F.softplus(safe))
    return 2.0 * log_softplus(raw), deriv


def _sd_head_curvature(sd_head: str, raw: torch.Tensor) -> torch.Tensor | None:
    """d² logvar / d raw² of the SD head (None where it is 0: "logvar", "logsd")."""
    if sd_head != "softplus":
        return None
    low = raw < -30.0
    safe = torch.where(low, torch.zeros_like(raw), raw)
    sig = torch.sigmoid(safe)
    big = safe > 20.0  # torch's softplus is the identity there
    d1 = torch.where(big, torch.ones_like(raw), sig)
    d2 = torch.where(big, torch.zeros_like(raw), sig * (1.0 - sig))
    sp = F.softplus(safe)
    return torch.where(low, torch.zeros_like(raw), 2.0 * (d2 / sp - (d1 / sp).pow(2)))


def _col(t: torch.Tensor, k: int) -> torch.Tensor:
    """A per-replica (or 0-dim) tensor with k trailing axes of size 1, to broadcast."""
    return t.reshape(*t.shape, *([1] * k))


def _through_z(
    dmu: torch.Tensor, dlv: torch.Tensor, dz: torch.Tensor, sd: torch.Tensor, eps: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(∂/∂mu, ∂/∂logvar) plus the chain through reparametrised z_n = mu + sd ε_n of ∂/∂z_n."""
    return dmu + dz.sum(-3), dlv + (dz * (0.5 * sd) * eps).sum(-3)


@dataclass
class _Encoded:
    mu: torch.Tensor
    raw: torch.Tensor  # the SD head's input
    logvar: torch.Tensor
    dlogvar_draw: torch.Tensor | float
    inputs: list[torch.Tensor]


@dataclass
class _Score:
    """ψ = ∇_x log q(z|x) by the encoder's input-VJP Jᵀc, c = ∂ log q/∂(mu, raw), on M rows:
    the N·B (sample, datum) pairs, sample-major, for the partial ψ, or the B data for the total
    derivative (the same for every sample)."""

    psi: torch.Tensor  # (…, M, D)
    dlogvar: torch.Tensor  # ∂ log q/∂ logvar, (…, M, L) (c's raw half is this times d logvar/d raw)
    inputs: list[torch.Tensor]  # the encoder's layer inputs for the M rows (their ReLU patterns)
    signals: list[torch.Tensor]  # the VJP's backward signals (MLP.backward)
    copies: int  # N, or 1 for the total derivative
    partial: bool  # ψ at fixed z (c depends on z, mu and logvar), else the total derivative


class FastStep:
    """Closed-form losses and gradients of Algorithm 1's two updates (module docstring).

    Args:
        objective, n_samples, eta, options: the run's settings (:class:`vsm.train.algorithm.Settings`).
        template: the model (one model) or the replicas' template: its architecture, SD head and
            noise parametrisation. :func:`unsupported` must have returned None for it.

    :meth:`inference` and :meth:`learning` take the layout
    (:class:`~vsm.train.networks.OneModel` or :class:`~vsm.train.replicas.Replicas`) and the minibatch, draw noise exactly as the plain path does (input noise,
    then posterior samples, from the same generators), set ``.grad`` of every parameter of the
    updated group (replicas: the gradient of the sum of their losses) and return the loss (0-dim,
    or one per replica), detached.
    """

    def __init__(
        self,
        objective: str,
        *,
        n_samples: int,
        eta: float,
        options: VariantOptions,
        template: GaussianVAE,
        compile_step: bool = False,
        fd_reparam: bool = False,
    ):
        self.inference_kind, self.learning_kind = split_objective(objective)
        self.fd_reparam = fd_reparam
        self.n = n_samples
        self.eta = eta
        self.opt = options
        self.latent = template.latent_dim
        self.sd_head = template.sd_head
        self.noise_scale = 1.0 if template.noise_param == "log_sigma2" else 2.0
        enc, dec = _layers(template.encoder), _layers(template.decoder)
        assert enc is not None and dec is not None
        self.enc, self.dec = _MLP(enc), _MLP(dec)
        if compile_step:
            self._inference_core = _compiled(self._inference_core)  # type: ignore[method-assign]
            self._learning_core = _compiled(self._learning_core)  # type: ignore[method-assign]

    # ------------------------------------------------------------------ layout

    @staticmethod
    def _params(nets: Networks) -> tuple[Params, Params, nn.Parameter]:
        """(encoder parameters, decoder parameters, noise parameter) by name."""
        if isinstance(nets, OneModel):
            m = nets.model
            return (
                dict(m.encoder.named_parameters()),
                dict(m.decoder.named_parameters()),
                m.noise_parameter,
            )
        assert isinstance(nets, Replicas)
        s: StackedVAE = nets.model
        return dict(s.enc), dict(s.dec), s.noise

    def _eps(self, nets: Networks, mu: torch.Tensor) -> torch.Tensor:
        """Posterior-sample noise ε (…, N, B, L), the draw of the layout's ``sample``."""
        if isinstance(nets, Replicas):
            shape = (self.n, *mu.shape[1:])
            return nets.noise.randn(shape, dtype=mu.dtype, device=mu.device)
        return torch.randn((self.n, *mu.shape), dtype=mu.dtype, device=mu.device)

    def _encode(self, params: Params, xt: torch.Tensor) -> _Encoded:
        h, inputs = self.enc.forward(params, xt)
        mu, raw = h[..., : self.latent], h[..., self.latent :]
        logvar, deriv = _sd_head(self.sd_head, raw)
        return _Encoded(mu, raw, logvar, deriv, inputs)

    def _decode(self, params: Params, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x_mean (…, N, B, D) and the decoder's layer inputs for z (…, N, B, L)."""
        lead = z.shape[:-3]
        out, inputs = self.dec.forward(params, z.reshape(*lead, -1, z.shape[-1]))
        return out.reshape(*z.shape[:-1], out.shape[-1]), inputs

    def _decoder_input_grad(
        self,
        params: Params,
        inputs: list[torch.Tensor],
        dxm: torch.Tensor,
        signals: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Σ dxm·x_mean differentiated w.r.t. z, shaped like z (``signals``: _MLP.backward's)."""
        lead = dxm.shape[:-1]
        _, dz = self.dec.backward(
            params,
            inputs,
            dxm.reshape(*dxm.shape[:-3], -1, dxm.shape[-1]),
            weights=False,
            to_input=True,
            signals=signals,
        )
        assert dz is not None
        return dz.reshape(*lead, dz.shape[-1])

    def _decoder_jvp(
        self, params: Params, inputs: list[torch.Tensor], t: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(J_g t shaped like x_mean, the tangents of _MLP.jvp) for tangents t shaped like z."""
        jt, tangents = self.dec.jvp(params, inputs, t.reshape(*t.shape[:-3], -1, t.shape[-1]))
        return jt.reshape(*t.shape[:-1], jt.shape[-1]), tangents

    def _encoder_grads(
        self,
        params: Params,
        e: _Encoded,
        dmu: torch.Tensor,
        dlogvar: torch.Tensor,
        draw: torch.Tensor | None = None,
    ) -> Params:
        """The encoder's parameter gradients for the gradients w.r.t. mu and logvar (and
        ``draw``, w.r.t. the SD head's input directly)."""
        draw_total = dlogvar * e.dlogvar_draw
        if draw is not None:
            draw_total = draw_total + draw
        dh = torch.cat([dmu, draw_total], -1)
        grads, _ = self.enc.backward(params, e.inputs, dh, weights=True, to_input=False)
        return grads

    @staticmethod
    def _assign(params: Params, grads: Params) -> None:
        for k, p in params.items():
            p.grad = grads[k]

    # ------------------------------------------------------------------ the two updates

    def inference(self, nets: Networks, x: torch.Tensor) -> torch.Tensor:
        """The encoder update's loss (−ELBO or mean_n PFD); sets the encoder's gradients."""
        with torch.no_grad():
            enc_p, dec_p, noise = self._params(nets)
            ls = nets.log_sigma2.detach()
            xt = nets.noisy(x, self.eta)
            eps = self._eps(nets, self._mu_like(xt))
            loss, grads = self._inference_core(enc_p, dec_p, ls, xt, eps)
            self._assign(enc_p, grads)
        return loss

    def _mu_like(self, xt: torch.Tensor) -> torch.Tensor:
        """An empty tensor shaped like the encoder's mean for ``xt`` (for :meth:`_eps`)."""
        return xt.new_empty((*xt.shape[:-1], self.latent))

    def _inference_core(
        self, enc_p: Params, dec_p: Params, ls: torch.Tensor, xt: torch.Tensor, eps: torch.Tensor
    ) -> tuple[torch.Tensor, Params]:
        """(loss, encoder gradients) of the inference update given the draws: pure tensor math."""
        if self.inference_kind == "fae":
            return self._fae_inference_core(enc_p, dec_p, ls, xt, eps)
        e = self._encode(enc_p, xt)
        mu3, lv3 = e.mu.unsqueeze(-3), e.logvar.unsqueeze(-3)
        sd = torch.exp(0.5 * lv3)
        z = mu3 + sd * eps
        xm, dec_in = self._decode(dec_p, z)
        inv = torch.exp(-_col(ls, 3))  # 1/σ², broadcast over (…, N, B, D)
        nb = self.n * xt.shape[-2]
        if self.inference_kind == "kl":
            sq = (xm - xt.unsqueeze(-3)).pow(2).sum(-1).mean(-2)
            d = xt.shape[-1]
            inv2 = torch.exp(-_col(ls, 1))
            nll = 0.5 * sq * inv2 + 0.5 * d * (math.log(2 * math.pi) + _col(ls, 1))
            kl = 0.5 * (torch.exp(e.logvar) + e.mu * e.mu - 1.0 - e.logvar).sum(-1)
            loss = (nll + kl).mean(-1)
            dz: torch.Tensor | None = self._decoder_input_grad(
                dec_p, dec_in, (xm - xt.unsqueeze(-3)) * (inv / nb)
            )
            b = xt.shape[-2]
            dmu = e.mu / b
            dlv = 0.5 * (torch.exp(e.logvar) - 1.0) / b
        else:  # fd: mean_n ‖r_n‖², z detached or (fd_reparam) reparametrised
            f = (xm - xt.unsqueeze(-3)) * inv
            einv, zc = torch.exp(-lv3), z - mu3
            r, dmu, dlv, dz = self._pfd_grads(
                dec_p, dec_in, z, zc, einv, f, inv, 2.0 / nb, reparam=self.fd_reparam
            )
            loss = r.pow(2).sum(-1).mean(-2).mean(-1)
        if dz is not None:
            dmu, dlv = _through_z(dmu, dlv, dz, sd, eps)
        return loss, self._encoder_grads(enc_p, e, dmu, dlv)

    def _pfd_grads(
        self,
        dec_p: Params,
        dec_in: list[torch.Tensor],
        z: torch.Tensor,
        zc: torch.Tensor,
        einv: torch.Tensor,
        f: torch.Tensor,
        inv: torch.Tensor,
        scale: float,
        *,
        reparam: bool,
        fit: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(r, ∂/∂mu, ∂/∂logvar, ∂/∂z) for PFD's residual r_n = z_n − zc_n e + J_gᵀ f_n
        (zc = z − mu, e = e^{−logvar}) and the loss scale·Σ_{n,b} ½‖r_n‖² (plus ½‖f_n‖² with
        ``fit``, the FAE's): mu's and logvar's derivatives at fixed z (through zc and e); z's,
        only if ``reparam`` (else None), (1 − e) r_n + J_gᵀ(J_g r_n (+ f_n))/σ² times scale (the
        ReLU decoder's second derivative vanishes)."""
        r = z - zc * einv + self._decoder_input_grad(dec_p, dec_in, f)
        dmu = (r * einv).sum(-3) * scale
        dlv = (r * zc * einv).sum(-3) * scale
        if not reparam:
            return r, dmu, dlv, None
        jr, _ = self._decoder_jvp(dec_p, dec_in, r)
        u = f + jr if fit else jr
        dz = ((1.0 - einv) * r + self._decoder_input_grad(dec_p, dec_in, u * inv)) * scale
        return r, dmu, dlv, dz

    def learning(self, nets: Networks, x: torch.Tensor) -> torch.Tensor:
        """The decoder update's loss (elbo, m1, m2 or m3); sets the decoder's and the noise
        parameter's gradients."""
        with torch.no_grad():
            enc_p, dec_p, noise = self._params(nets)
            ls = nets.log_sigma2.detach()
            xt = nets.noisy(x, self.eta)
            eps = self._eps(nets, self._mu_like(xt))
            loss, grads, dls = self._learning_core(enc_p, dec_p, ls, xt, eps)
            self._assign(dec_p, grads)
            noise.grad = dls * self.noise_scale
        return loss

    def _learning_core(
        self, enc_p: Params, dec_p: Params, ls: torch.Tensor, xt: torch.Tensor, eps: torch.Tensor
    ) -> tuple[torch.Tensor, Params, torch.Tensor]:
        """(loss, decoder gradients, log σ²-gradient before the noise parametrisation's factor) of
        the learning update given the draws: pure tensor math."""
        if self.learning_kind == "fae":
            return self._fae_learning_core(enc_p, dec_p, ls, xt, eps)
        e = self._encode(enc_p, xt)
        mu3, lv3 = e.mu.unsqueeze(-3), e.logvar.unsqueeze(-3)
        z = mu3 + torch.exp(0.5 * lv3) * eps
        xm, dec_in = self._decode(dec_p, z)
        x3 = xt.unsqueeze(-3)
        d = xt.shape[-1]
        nb = self.n * xt.shape[-2]
        inv = torch.exp(-_col(ls, 3))
        trace = -d * torch.exp(-ls)  # the trace term −D/σ² (its log σ²-derivative: −trace)
        kind = self.learning_kind
        if kind == "elbo":
            sq = (xm - x3).pow(2).sum(-1).mean(-2)
            kl = 0.5 * (torch.exp(e.logvar) + e.mu * e.mu - 1.0 - e.logvar).sum(-1)
            inv1 = torch.exp(-_col(ls, 1))
            nll = 0.5 * sq * inv1 + 0.5 * d * (math.log(2 * math.pi) + _col(ls, 1))
            loss = (nll + kl).mean(-1)
            dxm = (xm - x3) * (inv / nb)
            dls = (0.5 * d - 0.5 * sq * inv1).mean(-1)
        else:
            f = (xm - x3) * inv
            fsq = f.pow(2).sum(-1).mean(-2)  # mean_n ‖f_n‖², (…, B)
            if kind in ("m2", "m3"):
                estimator = self.opt.m2_estimator if kind == "m2" else self.opt.m3_estimator
                if estimator == "samples":
                    fbar = f.mean(-3, keepdim=True)  # (…, 1, B, D)
                    fbar_sq = fbar.pow(2).sum(-1).squeeze(-2).mean(-1)
                else:  # the minibatch mean over every sample of every datum
                    fbar = f.mean((-3, -2), keepdim=True)  # (…, 1, 1, D)
                    fbar_sq = fbar.pow(2).sum(-1).reshape(fbar.shape[:-3])
            if kind == "m1":
                quad, cross = 0.5 * fsq.mean(-1), None
                dxm = f * (inv / nb)
            elif kind == "m2":
                quad, cross = fsq.mean(-1) - 0.5 * fbar_sq, None
                dxm = (2.0 * f - fbar) * (inv / nb)
            else:  # m3
                psi = self._psi(enc_p, xt, e, z)
                if self.opt.m3_cross == "summed":
                    psi = psi.sum(-3, keepdim=True)
                cross = ((xm - x3) * psi).sum(-1).mean(-2) * torch.exp(-_col(ls, 1))
                cross = cross.mean(-1)
                quad = 0.5 * fbar_sq
                dxm = ((fbar + psi) * (inv / nb)).expand(f.shape)
            loss = quad + trace if cross is None else quad + cross + trace
            dls = -2.0 * quad - trace if cross is None else -2.0 * quad - cross - trace
        grads, _ = self.dec.backward(
            dec_p, dec_in, dxm.reshape(*dxm.shape[:-3], -1, d), weights=True, to_input=False
        )
        return loss, grads, dls

    def _psi(self, enc_p: Params, xt: torch.Tensor, e: _Encoded, z: torch.Tensor) -> torch.Tensor:
        """ψ (…, N, B, D) at the samples z for the L_B learning step (``m3_psi``)."""
        sc = self._x_score(enc_p, e, z, self.opt.m3_psi)
        lead = xt.shape[:-2]
        return sc.psi.reshape(*lead, sc.copies, *xt.shape[-2:]).expand(
            *lead, self.n, *xt.shape[-2:]
        )

    def _x_score(self, enc_p: Params, e: _Encoded, z: torch.Tensor, derivative: str) -> _Score:
        """ψ at the samples z: ∇_x log q(z_n|x) (the encoder's input-gradient; the N copies of x
        share the forward pass ``e``), or the total derivative −½∇_x Σ logvar (:class:`_Score`)."""
        partial = derivative != "total"
        if partial:
            mu3, lv3 = e.mu.unsqueeze(-3), e.logvar.unsqueeze(-3)
            einv = torch.exp(-lv3)
            zc = z - mu3
            dmu = zc * einv  # ∂ log q / ∂ mu
            dlv = 0.5 * zc.pow(2) * einv - 0.5  # ∂ log q / ∂ logvar
        else:
            dmu = torch.zeros_like(e.mu)
            dlv = torch.full_like(e.logvar, -0.5)
        d1 = e.dlogvar_draw  # (…, B, L) or a number
        if partial and isinstance(d1, torch.Tensor):
            d1 = d1.unsqueeze(-3)  # over the samples (not aligned with a replica axis)
        dh = torch.cat([dmu, dlv * d1], -1)
        inputs = e.inputs
        if partial:  # (…, N, B, 2L) → (…, N·B, 2L) through B-row activations repeated N times
            dh = dh.reshape(*dh.shape[:-3], -1, dh.shape[-1])
            dlv = dlv.reshape(*dh.shape[:-1], dlv.shape[-1])
        if partial and self.n > 1:  # (the first layer's input only enters weight gradients,
            # which ψ does not need)
            rest = [h.unsqueeze(-2).expand(*h.shape[:-1], self.n, h.shape[-1]) for h in inputs[1:]]
            inputs = [inputs[0], *(h.reshape(*h.shape[:-3], h.shape[-3], -1) for h in rest)]
        signals: list[torch.Tensor] = []
        _, dx = self.enc.backward(enc_p, inputs, dh, weights=False, to_input=True, signals=signals)
        assert dx is not None
        return _Score(dx, dlv, inputs, signals, self.n if partial else 1, partial)

    # ------------------------------------------------------------------ the Fisher autoencoder

    def _fae_inference_core(
        self, enc_p: Params, dec_p: Params, ls: torch.Tensor, xt: torch.Tensor, eps: torch.Tensor
    ) -> tuple[torch.Tensor, Params]:
        """(loss, encoder gradients) of the FAE encoder step (module docstring), z reparametrised."""
        e = self._encode(enc_p, xt)
        mu3, lv3 = e.mu.unsqueeze(-3), e.logvar.unsqueeze(-3)
        sd = torch.exp(0.5 * lv3)
        z = mu3 + sd * eps
        xm, dec_in = self._decode(dec_p, z)
        inv = torch.exp(-_col(ls, 3))
        b, nb = xt.shape[-2], self.n * xt.shape[-2]
        f = (xm - xt.unsqueeze(-3)) * inv
        einv, zc = torch.exp(-lv3), z - mu3
        r, dmu, dlv, dz = self._pfd_grads(
            dec_p, dec_in, z, zc, einv, f, inv, 1.0 / nb, reparam=True, fit=True
        )
        assert dz is not None
        # ½ mean ‖ψ‖², ψ = J_hᵀ c: c's derivative along w = J_h ψ, J_h's along (c, ψ)
        sc = self._x_score(enc_p, e, z, self.opt.fae_encoder_psi)
        psi_sq = sc.psi.pow(2).sum(-1).mean(-1)
        w, tangents = self.enc.jvp(enc_p, sc.inputs, sc.psi / sc.psi.shape[-2])
        extra = self.enc.vjp_weight_grads(sc.signals, tangents)
        lead = (*w.shape[:-2], sc.copies, b)
        w_mu = w[..., : self.latent].reshape(*lead, self.latent)
        w_raw = w[..., self.latent :].reshape(*lead, self.latent)
        if sc.partial:  # c depends on z, mu and logvar
            d1 = e.dlogvar_draw
            d1 = d1.unsqueeze(-3) if isinstance(d1, torch.Tensor) else d1
            a_mu = einv * w_mu
            a_raw = zc * einv * d1 * w_raw
            dz = dz + a_mu + a_raw
            dmu = dmu - (a_mu + a_raw).sum(-3)
            dlv = dlv - (zc * (a_mu + 0.5 * a_raw)).sum(-3)
        d2 = _sd_head_curvature(self.sd_head, e.raw)
        draw = None
        if d2 is not None:
            draw = (sc.dlogvar.reshape(lead + (self.latent,)) * w_raw).sum(-3) * d2
        dmu, dlv = _through_z(dmu, dlv, dz, sd, eps)
        grads = self._encoder_grads(enc_p, e, dmu, dlv, draw)
        for k, g in extra.items():
            grads[k] = grads[k] + g
        quad = (f.pow(2).sum(-1) + r.pow(2).sum(-1)).mean(-2).mean(-1)
        loss = 0.5 * (quad + psi_sq) - xt.shape[-1] * torch.exp(-ls)
        return loss, grads

    def _fae_learning_core(
        self, enc_p: Params, dec_p: Params, ls: torch.Tensor, xt: torch.Tensor, eps: torch.Tensor
    ) -> tuple[torch.Tensor, Params, torch.Tensor]:
        """(loss, decoder gradients, log σ²-gradient) of the FAE decoder step, z detached."""
        e = self._encode(enc_p, xt)
        mu3, lv3 = e.mu.unsqueeze(-3), e.logvar.unsqueeze(-3)
        z = mu3 + torch.exp(0.5 * lv3) * eps
        xm, dec_in = self._decode(dec_p, z)
        inv = torch.exp(-_col(ls, 3))
        nb = self.n * xt.shape[-2]
        f = (xm - xt.unsqueeze(-3)) * inv
        signals: list[torch.Tensor] = []
        r = z - (z - mu3) * torch.exp(-lv3) + self._decoder_input_grad(dec_p, dec_in, f, signals)
        # ½‖r‖² varies with θ through rᵀ J_gᵀ f: f's variation along J_g r, J_g's along (f, r)
        jr, tangents = self._decoder_jvp(dec_p, dec_in, r / nb)
        dxm = (f / nb + jr) * inv
        grads, _ = self.dec.backward(
            dec_p,
            dec_in,
            dxm.reshape(*dxm.shape[:-3], -1, dxm.shape[-1]),
            weights=True,
            to_input=False,
        )
        for k, g in self.dec.vjp_weight_grads(signals, tangents).items():
            grads[k] = grads[k] + g
        psi = self._x_score(enc_p, e, z, "partial").psi  # the decoder step's ψ (loss only)
        trace = -xt.shape[-1] * torch.exp(-ls)
        fsq = f.pow(2).sum(-1).mean(-2).mean(-1)
        quad = 0.5 * (fsq + r.pow(2).sum(-1).mean(-2).mean(-1) + psi.pow(2).sum(-1).mean(-1))
        dls = -fsq - (f * jr).sum((-3, -2, -1)) - trace
        return quad + trace, grads, dls
