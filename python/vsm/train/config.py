"""Configuration of a training run: the objective registry, :class:`TrainConfig`, and the model
and optimisers it describes.

:class:`TrainConfig` is the one list of defaults. ``vsm train``'s options are generated from its
fields (:func:`vsm.cli`): the option ``--batch-size`` is the field ``batch_size``, its help text is
the field's ``metadata["help"]``, its type and choices come from the annotation (``Literal[...]``
gives the choices, ``X | None`` an optional X) or from ``metadata["choices"]``. A field with
``metadata["cli_default"]`` has a different default on the command line only (``device``: the GPU
when there is one), and ``metadata["group"]`` makes options mutually exclusive (``steps`` /
``epochs``).

The variants (``variant``: :class:`VariantOptions`, :func:`variant_options`) live in
:mod:`vsm.train.variants`, the ``seeds`` syntax (:func:`parse_seeds`, :func:`format_seeds`) in
:mod:`vsm.train.seed_lists`; both are re-exported here.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from .. import _validate as V
from ..data import CONV_DATASETS, DATASETS, IDX_DATASETS, TOY_DATASETS, Dataset
from ..importance import ISProposal
from ..models import MLPVAE, ConvVAE, GaussianVAE
from .seed_lists import checked_seeds, format_seeds, parse_seeds
from .variants import VARIANTS, Variant, VariantOptions, variant_options

__all__ = [
    "OBJECTIVES",
    "VARIANTS",
    "ResolvedConfig",
    "TrainConfig",
    "VariantOptions",
    "build_model",
    "format_seeds",
    "make_optimizers",
    "num_threads",
    "parse_seeds",
    "split_objective",
    "variant_options",
]

Objective = Literal["kl-elbo", "kl-m1", "fd-m1", "kl-m2", "fd-m2", "kl-m3", "fd-m3", "fae"]
OBJECTIVES: tuple[Objective, ...] = typing.get_args(Objective)
"""Objective names, "<inference>-<learning>" (MATH.md Part I), plus the Fisher autoencoder."""


def split_objective(objective: str) -> tuple[str, str]:
    """("kl" | "fd" | "fae", "elbo" | "m1" | "m2" | "m3" | "fae") for an objective name."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: expected one of {OBJECTIVES}, got {objective!r}")
    if objective == "fae":
        return "fae", "fae"
    inf, learn = objective.split("-")
    return inf, learn


def _meta(help: str, **meta: Any) -> dict[str, Any]:
    """A field's metadata: its command-line help (and optional ``choices``, ``group``,
    ``cli_default``, ``parse``: the command line's type, ``metavar``)."""
    return {"help": help, **meta}


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in checkpoints; ``vsm train``'s options).

    ``None`` fields take dataset-dependent defaults in :meth:`resolved`: 2-D toys use the paper's
    MLP (L = 2, η = 0, batch 1000, IS proposal = prior, 1 thread); images the conv VAE (L = 16,
    η = 0.1, batch 100, IS proposal = q, every core); MNIST-1D the MLP (L = 8, η = 0.1, batch 100,
    1 thread).

    Optimiser defaults are Adam at 1e-3 for both groups so that short CPU runs make visible
    progress; the paper's 2-D setting is ``dec_lr=1e-4, enc_optimizer="sgd", enc_lr=1e-2`` (KLD)
    or ``1e-3`` (FD), its image setting Adam 1e-4 for both with ``k_enc=5, n_samples=5``.

    ``seeds`` (e.g. ``(0, 1, 2)``, or the string ``"0-9"``) trains one replica per seed in one
    batched run (:class:`vsm.train.SeedsTrainer`, which :func:`vsm.train.make_trainer` builds
    for such a config); replica s is the run with ``seed=s`` and ``seeds=None``, and ``seed``
    itself is then unused.

    ``fast_step`` (default on; ``vsm train --no-fast-step`` turns it off) computes each update's
    gradients in closed form for the MLP models (:mod:`vsm.train.fast_step`: the same losses and
    gradients as autograd, in float64 to ~1e-12, in float32 to rounding) and uses the
    optimisers' fused kernels where torch has them; a configuration it does not cover
    (``k_bi > 0``, conv models) runs the autograd
    path whatever this says (``Trainer.fast_step_off`` gives the reason). ``compile_step``
    (default off) also runs the fast path's closed-form updates through ``torch.compile``: the
    first iteration compiles (seconds), later ones are ~1.1–1.25× faster on one CPU thread at the
    paper's 2-D shapes (docs/training.md, "The fast step").
    """

    objective: Objective = field(
        default="kl-m1", metadata=_meta("training objective: <inference>-<learning>, or fae")
    )
    dataset: str = field(default="sparse", metadata=_meta("data set", choices=DATASETS))
    steps: int = field(
        default=1000, metadata=_meta("iterations (minibatches) of the run", group="length")
    )
    epochs: int | None = field(
        default=None,
        metadata=_meta("epochs instead of --steps (toys: 100 iterations each)", group="length"),
    )
    batch_size: int | None = field(
        default=None, metadata=_meta("minibatch size (default: 1000 for 2-D toys, else 100)")
    )
    n_samples: int = field(default=1, metadata=_meta("posterior samples N per datum"))
    k_enc: int = field(default=1, metadata=_meta("encoder updates per decoder update (K_enc)"))
    k_bi: int = field(
        default=0,
        metadata=_meta("unrolled (bi-level) encoder SGD steps per decoder update (0: Algorithm 1)"),
    )
    bi_lr: float | None = field(
        default=None,
        metadata=_meta(
            "SGD rate of the unrolled steps (default: 1e-2 for kl inference, else 1e-3)"
        ),
    )
    eta: float | None = field(
        default=None, metadata=_meta("input-noise SD η (default: 0 for 2-D toys, else 0.1)")
    )
    fd_reparam: bool = field(
        default=False,
        metadata=_meta("reparametrised samples in the FD inference step (the paper: detached)"),
    )
    variant: Variant = field(
        default="vsm",
        metadata=_meta(
            "estimators and parametrisation: vsm's, or the paper code's (2-D data: minibatch L_S/L_B "
            "with a total-derivative ψ, log σ, softplus SD, 100000 fresh points per epoch; images: "
            "L_B cross term f_n·Σ_m ψ_m, log σ, exp SD head; FAE encoder step with the "
            "total-derivative ψ)"
        ),
    )
    model: Literal["mlp", "conv"] | None = field(
        default=None, metadata=_meta("architecture (default: conv for 32×32 images, else mlp)")
    )
    latent_dim: int | None = field(
        default=None,
        metadata=_meta("latent size L (default: 2 for 2-D toys, 16 for images, 8 for MNIST-1D)"),
    )
    width: int = field(default=30, metadata=_meta("MLP hidden width"))
    ngf: int = field(default=16, metadata=_meta("conv decoder base width"))
    ndf: int = field(default=16, metadata=_meta("conv encoder base width"))
    enc_optimizer: Literal["adam", "sgd"] = field(
        default="adam", metadata=_meta("encoder optimiser")
    )
    enc_lr: float = field(default=1e-3, metadata=_meta("encoder learning rate"))
    dec_lr: float = field(default=1e-3, metadata=_meta("decoder (and log σ²) Adam learning rate"))
    seed: int = field(default=0, metadata=_meta("random seed (initialisation, minibatches, noise)"))
    seeds: tuple[int, ...] | None = field(
        default=None,
        metadata=_meta(
            "train one replica per seed, all together in one batched run: A-B (inclusive) or a,b,c "
            "(replaces --seed; each replica equals the run with that --seed)",
            parse=parse_seeds,
            metavar="A-B|a,b,c",
        ),
    )
    dtype: Literal["float32", "float64"] = field(
        default="float32", metadata=_meta("parameter and data dtype")
    )
    device: str = field(
        default="cpu",
        metadata=_meta("cpu, cuda or cuda:K", cli_default="cuda if available, else cpu"),
    )
    n_test: int = field(default=5000, metadata=_meta("test-set size of the 2-D toys"))
    data_dir: str | None = field(
        default=None, metadata=_meta("folder of MNIST/Fashion-MNIST IDX files")
    )
    eval_every: int = field(
        default=0,
        metadata=_meta("evaluate (no IS) and checkpoint every N iterations (0: only at the end)"),
    )
    n_is: int = field(
        default=0,
        metadata=_meta("importance samples per test datum in the final evaluation (0: no IS)"),
    )
    is_proposal: ISProposal | None = field(
        default=None, metadata=_meta("IS proposal (default: prior for 2-D toys, else q)")
    )
    log_every: int = field(default=50, metadata=_meta("print the mean losses every N iterations"))
    save_every: int = field(
        default=0,
        metadata=_meta(
            "also write the checkpoint every N iterations (0: only at evaluations, at the end and "
            "on SIGINT/SIGTERM)"
        ),
    )
    threads: int | None = field(
        default=None,
        metadata=_meta(
            "intra-op CPU threads during the run (torch.set_num_threads); 0: every core, or "
            "OMP_NUM_THREADS if set (default: 1 for MLP models, 0 for conv models)"
        ),
    )
    fast_step: bool = field(
        default=True,
        metadata=_meta(
            "closed-form gradients for the MLP models' Algorithm-1 updates and fused Adam "
            "(vsm.train.fast_step; also under torchrun and with fd_reparam; bi-level and conv "
            "models use autograd anyway); --no-fast-step: autograd everywhere, the optimisers' default kernels"
        ),
    )
    compile_step: bool = field(
        default=False,
        metadata=_meta(
            "torch.compile the fast path's closed-form updates (inductor fuses their elementwise "
            "chains; ~1.1-1.25x per step on one CPU thread, 5-20 s of compilation at the start; "
            "no effect where the fast path does not run)"
        ),
    )
    ddp_find_unused: bool = field(
        default=False,
        metadata=_meta(
            "DDP find_unused_parameters under torchrun (for a custom model whose losses skip a "
            "parameter)"
        ),
    )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """The config stored in a checkpoint (older checkpoints' unused ``extra`` is ignored)."""
        d = {k: v for k, v in d.items() if k != "extra"}
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"config: unknown TrainConfig fields {unknown}")
        return cls(**d)

    def resolved(self, data: Dataset | None = None) -> ResolvedConfig:
        """A copy with every ``None`` default filled in (``data`` avoids reloading the dataset).

        The copy is a plain :class:`TrainConfig`; its static type, :class:`ResolvedConfig`, tells
        the type checker which fields are no longer ``None``.

        Raises:
            TypeError: an integer option that is not an int, a rate that is not a number.
            ValueError: an unknown objective or choice, a non-positive size, a negative count, a
                learning rate that is not finite and positive, a conv model for data that are
                not images, an IDX data set without ``data_dir``.
        """
        c = dataclasses.replace(self)
        inference = split_objective(c.objective)[0]
        toy = data.data_shape == (2,) if data is not None else c.dataset in TOY_DATASETS
        image = data.is_image if data is not None else c.dataset in CONV_DATASETS
        if c.model is None:
            c.model = "conv" if image else "mlp"
        if c.latent_dim is None:
            c.latent_dim = 2 if toy else (16 if image else 8)
        if c.eta is None:
            c.eta = 0.0 if toy else 0.1
        if c.batch_size is None:
            c.batch_size = 1000 if toy else 100
        if c.is_proposal is None:
            c.is_proposal = "prior" if toy else "q"
        if c.bi_lr is None:
            c.bi_lr = 1e-2 if inference == "kl" else 1e-3
        if c.threads is None:
            c.threads = 1 if c.model == "mlp" else 0
        if c.seeds is not None:
            c.seeds = checked_seeds(c.seeds)
        for name in ("steps", "n_samples", "k_enc", "batch_size", "latent_dim", "width"):
            V.positive_int(name, getattr(c, name))
        for name in ("k_bi", "save_every", "eval_every", "threads"):
            V.positive_int(name, getattr(c, name), minimum=0)
        if c.eta < 0:
            raise ValueError(f"eta: expected a non-negative noise SD, got {c.eta}")
        for name in ("enc_lr", "dec_lr", "bi_lr"):
            rate = getattr(c, name)
            if isinstance(rate, bool) or not isinstance(rate, (int, float)):
                raise TypeError(f"{name}: expected a float, got {type(rate).__name__}")
            if not (math.isfinite(rate) and rate > 0):
                raise ValueError(f"{name}: expected a finite positive learning rate, got {rate}")
        if not math.isfinite(c.eta):
            raise ValueError(f"eta: expected a finite noise SD, got {c.eta}")
        V.positive_int("n_test", c.n_test)
        V.positive_int("n_is", c.n_is, minimum=0)
        if data is None and c.model == "conv" and c.dataset not in CONV_DATASETS:
            raise ValueError(
                f"model: 'conv' needs 32×32 images, not {c.dataset!r} (one of {CONV_DATASETS})"
            )
        if data is None and c.dataset in IDX_DATASETS and c.data_dir is None:
            raise ValueError(f"data_dir: required for {c.dataset!r} (a folder with its IDX files)")
        hints = typing.get_type_hints(TrainConfig)
        for f in dataclasses.fields(c):
            allowed = choices(hints[f.name])
            if allowed and getattr(c, f.name) not in allowed:
                raise ValueError(f"{f.name}: expected one of {allowed}, got {getattr(c, f.name)!r}")
        return typing.cast("ResolvedConfig", c)


if typing.TYPE_CHECKING:

    class ResolvedConfig(TrainConfig):
        """A :class:`TrainConfig` after :meth:`TrainConfig.resolved`: the fields whose ``None``
        default it fills in, typed without ``None`` (for the type checker only)."""

        model: Literal["mlp", "conv"]
        latent_dim: int
        eta: float
        batch_size: int
        is_proposal: ISProposal
        bi_lr: float
        threads: int

else:
    # At run time a resolved config is a plain TrainConfig (same class, equality and
    # dataclasses.asdict, so checkpoints and comparisons are unchanged); the subclass above
    # exists for the type checker only.
    ResolvedConfig = TrainConfig


def choices(annotation: Any) -> tuple[Any, ...]:
    """The allowed values of a ``Literal[...]`` (or ``Literal[...] | None``) annotation, else ()."""
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    for arg in typing.get_args(annotation):
        if typing.get_origin(arg) is Literal:
            return typing.get_args(arg)
    return ()


def num_threads(threads: int) -> int:
    """The intra-op thread count a resolved ``threads`` setting asks for (0: every core this
    process may use, or ``OMP_NUM_THREADS`` when that is set to a positive int)."""
    if threads > 0:
        return threads
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def build_model(
    cfg: ResolvedConfig, data_shape: tuple[int, ...], options: VariantOptions | None = None
) -> GaussianVAE:
    """The model of a resolved config for data of ``data_shape`` (uses the global torch RNG),
    with the parametrisation of ``options`` (default: vsm's; see :func:`variant_options`)."""
    opt = options if options is not None else VariantOptions()
    if cfg.model == "conv":
        if len(data_shape) != 3 or tuple(data_shape[1:]) != (32, 32):
            raise ValueError(f"model: 'conv' needs (C, 32, 32) data, got {data_shape}")
        return ConvVAE(
            nc=data_shape[0],
            latent_dim=cfg.latent_dim,
            ngf=cfg.ngf,
            ndf=cfg.ndf,
            noise_param=opt.noise_param,
            sd_head=opt.sd_head,
        )
    init = math.log(0.01) if tuple(data_shape) == (2,) else 0.0
    return MLPVAE(
        data_shape,
        cfg.latent_dim,
        cfg.width,
        log_sigma2_init=init,
        noise_param=opt.noise_param,
        sd_head=opt.sd_head,
    )


def make_optimizers(
    cfg: TrainConfig, enc_params: list[torch.nn.Parameter], dec_params: list[torch.nn.Parameter]
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """The encoder optimiser (``enc_optimizer`` at ``enc_lr``) and the decoder's (Adam at
    ``dec_lr``) of a resolved config. Both are elementwise (no weight decay, no momentum), which
    :class:`vsm.train.SeedsTrainer`'s stacked replicas rely on.

    With ``cfg.fast_step`` on a CPU or CUDA device both use torch's fused kernels (``fused=True``:
    one kernel per parameter instead of about ten ops; the same update up to rounding), else
    torch's default implementation."""
    device = (enc_params + dec_params)[0].device.type if enc_params + dec_params else "cpu"
    kw: dict[str, Any] = {"fused": True} if cfg.fast_step and device in ("cpu", "cuda") else {}
    enc_opt: torch.optim.Optimizer
    if cfg.enc_optimizer == "adam":
        enc_opt = torch.optim.Adam(enc_params, lr=cfg.enc_lr, **kw)
    else:
        enc_opt = torch.optim.SGD(enc_params, lr=cfg.enc_lr, **kw)
    return enc_opt, torch.optim.Adam(dec_params, lr=cfg.dec_lr, **kw)
