"""Many seeds in one run: :class:`SeedsTrainer` trains S independent replicas as one batched
computation (``TrainConfig(seeds=...)``, ``vsm train --seeds 0-9``).

Replica s is the run ``TrainConfig(seed=s)`` would make, up to floating-point rounding:

- its model is built from ``torch.manual_seed(s)`` exactly as :class:`vsm.train.Trainer` builds
  it, and its noise comes from its own generator continuing that seed's stream
  (:class:`vsm.train.replicas.ReplicaNoise`);
- its minibatches are ``data.batch(step, batch_size, s)``, from its own copy of the data set (a
  toy's test set and MNIST-1D depend on the seed; other data sets are loaded once and shared);
- its optimiser state is its slice of the stacked parameters' state. Adam and SGD (the
  optimisers :class:`TrainConfig` offers, one parameter group each) are elementwise (so would be
  their weight decay, momentum or AMSGrad options), so a stacked step is S independent steps
  with the same hyper-parameters; Adam's step counter is shared, which is exact because every
  surviving replica steps at every update. Nothing couples replicas: the trainer clips no
  gradients and takes no norm over all parameters (such a step would have to be per replica);
- every loss, σ² and evaluation is per replica; the loss that is differentiated is the sum over
  replicas, whose gradient w.r.t. replica r's parameters is replica r's own gradient.

A replica whose loss (or bi-level inner loss, or σ²) becomes non-finite is reported through
``log``, recorded in :attr:`SeedsTrainer.diverged` and dropped before the optimiser step, exactly
where the single run would raise :class:`~vsm.train.TrainingDiverged`; the others go on
unchanged. Only when every replica has diverged does training raise.

Outputs (``out_dir``): ``metrics.json`` with every replica's final metrics (``replicas``, one
entry per surviving seed), the dropped ones (``diverged``) and a ``summary`` (mean, SD and count
over replicas of each metric); ``history.json`` (per-seed loss records, keyed by seed);
``loss.png`` (every replica's curves); ``metrics/step_*.json`` at evaluations; and one checkpoint
holding all replicas. In that checkpoint ``replicas[seed]`` is a complete single-run checkpoint
of that seed (:func:`vsm.train.replica_checkpoint` extracts it, so ``vsm train --resume`` or
:func:`vsm.train.model_from_checkpoint` can use one replica alone), and ``--resume`` of the whole
file continues all replicas exactly.

Not with torchrun (replicas already fill one process); ``TrainConfig.seed`` is unused.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..data import TOY_DATASETS, Dataset, load_dataset
from . import replicas as R
from . import reporting as report
from .checkpoint import replica_state, restore_seeds, seeds_state
from .config import (
    ResolvedConfig,
    TrainConfig,
    build_model,
    format_seeds,
    make_optimizers,
    variant_options,
)
from .seed_lists import checked_seeds
from .stopping import StopRequest, TrainingDiverged
from .trainer import Trainer

__all__ = ["SeedsTrainer"]

# Data sets whose content depends on the seed given to load_dataset (a toy's test set, MNIST-1D's
# generated split); the others are loaded once and shared by the replicas.
_SEEDED_DATA = (*TOY_DATASETS, "mnist1d")


def _datasets(
    cfg: TrainConfig, seeds: Sequence[int], data: Dataset | Sequence[Dataset] | None
) -> list[Dataset]:
    """One data set per replica (own permutation cache; tensors shared where they are equal)."""
    if isinstance(data, Dataset):
        data = [data] * len(seeds)
    if data is not None:
        data = list(data)
        if len(data) != len(seeds):
            raise ValueError(
                f"data: expected one Dataset or {len(seeds)} (one per seed), got {len(data)}"
            )
        if not all(isinstance(d, Dataset) for d in data):
            raise TypeError("data: expected vsm.data.Dataset objects")
    elif cfg.dataset in _SEEDED_DATA:
        data = [
            load_dataset(cfg.dataset, seed=s, n_test=cfg.n_test, data_dir=cfg.data_dir)
            for s in seeds
        ]
    else:
        shared = load_dataset(cfg.dataset, seed=seeds[0], n_test=cfg.n_test, data_dir=cfg.data_dir)
        data = [shared] * len(seeds)
    # Dataset.batch caches one epoch permutation: a copy per replica keeps each cache warm
    return [dataclasses.replace(d, _perm_cache={}) for d in data]


def _under_torchrun() -> bool:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return True
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class SeedsTrainer(Trainer):
    """Algorithm 1 / bi-level training of one replica per seed of ``cfg.seeds``, batched
    (module docstring). :func:`vsm.train.make_trainer` builds one when ``cfg.seeds`` is set.

    Args:
        cfg: the run's configuration, with ``seeds``.
        data: one preloaded data set for every replica, or one per seed (default: loaded per
            seed where the data depend on it, else once).
        out_dir, progress, log, checkpoint: as for :class:`vsm.train.Trainer`.

    Attributes:
        seeds: the surviving replicas' seeds, in replica order.
        replicas: their :class:`vsm.train.replicas.StackedVAE`.
        history: per-seed lists of loss records (dropped seeds included).
        evals: per-seed lists of evaluations (dropped seeds included).
        diverged: one ``{"seed", "step", "message"}`` per dropped replica.

    The global RNG is left as it was: each replica has its own generator.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        *,
        data: Dataset | Sequence[Dataset] | None = None,
        out_dir: str | None = None,
        progress: bool | None = None,
        log: Callable[[str], None] | None = None,
        checkpoint: str | None = None,
    ):
        if cfg.seeds is None:
            raise ValueError("cfg: SeedsTrainer needs TrainConfig.seeds (use Trainer for one seed)")
        seeds = checked_seeds(cfg.seeds)
        if _under_torchrun():
            raise ValueError(
                "seeds: replicas train together in one process; run without "
                "torchrun, or without seeds"
            )
        self.datasets = _datasets(cfg, seeds, data)
        self.data = self.datasets[0]
        self.cfg = cfg.resolved(self.data)
        self.rank, self.world_size = 0, 1
        self.device = torch.device(self.cfg.device)
        if checkpoint is None and out_dir is not None:
            checkpoint = os.path.join(out_dir, "checkpoint.pt")
        self.checkpoint_path = checkpoint
        self.out_dir = out_dir
        self.progress = progress
        self.log = log
        self.dtype = getattr(torch, self.cfg.dtype)
        # (Trainer.__init__ is not called: it builds one model and joins torchrun)
        self.seeds: list[int] = list(seeds)
        self.options = variant_options(self.cfg.variant, self.data)
        models, generators, self._cpu_rng = [], [], []
        for s in seeds:
            model, gen, cpu_state = self._build_replica(s)
            models.append(model)
            generators.append(gen)
            self._cpu_rng.append(cpu_state)
        self.replicas = R.StackedVAE(models)
        self.noise = R.ReplicaNoise(generators)
        self.enc_params = self.replicas.encoder_parameters()
        self.dec_params = self.replicas.decoder_parameters()
        self.enc_opt, self.dec_opt = make_optimizers(self.cfg, self.enc_params, self.dec_params)
        self._setup_fast_step(self.replicas.template)
        self.step = 0
        self.history: dict[int, list[dict[str, float]]] = {s: [] for s in seeds}  # type: ignore[assignment]
        self.evals: dict[int, list[dict[str, Any]]] = {s: [] for s in seeds}  # type: ignore[assignment]
        self.diverged: list[dict[str, Any]] = []
        self.wall_time = 0.0
        self._stop = StopRequest()
        self._stop_agreed = False
        self._inner_bad: torch.Tensor | None = None
        self._x: torch.Tensor | None = None

    def replica_config(self, seed: int) -> ResolvedConfig:
        """The single-run config of replica ``seed`` (``seed=seed``, ``seeds=None``)."""
        return dataclasses.replace(self.cfg, seed=seed, seeds=None)

    def _build_replica(self, seed: int) -> tuple[Any, torch.Generator, torch.Tensor]:
        """Replica ``seed``'s model, noise generator and CPU RNG state, as a single run has them
        after ``torch.manual_seed(seed)`` and :func:`build_model` (the global RNG is restored)."""
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            model = build_model(self.replica_config(seed), self.data.data_shape, self.options)
            model = model.to(self.device, self.dtype)
            cpu_state = torch.get_rng_state()
        if self.device.type == "cpu":
            gen = torch.Generator()
            gen.set_state(cpu_state)
        else:  # the single run's device generator, seeded and not yet drawn from
            gen = torch.Generator(device=self.device)
            gen.manual_seed(seed)
        return model, gen, cpu_state

    @property
    def model(self) -> Any:  # type: ignore[override]
        raise AttributeError(
            "model: a SeedsTrainer holds one model per seed; use model_of(seed) (or .replicas)"
        )

    def model_of(self, seed: int) -> Any:
        """A stand-alone copy of replica ``seed``'s current model (a GaussianVAE)."""
        return self.replicas.replica(self._index(seed))

    def _index(self, seed: int) -> int:
        if seed not in self.seeds:
            dropped = [d["seed"] for d in self.diverged]
            why = " (it diverged)" if seed in dropped else ""
            raise ValueError(f"seed: no replica {seed}{why}; replicas: {self.seeds}")
        return self.seeds.index(seed)

    # ------------------------------------------------------------------ one iteration

    def _networks(self) -> R.Replicas:
        """The stacked replicas with their noise (Algorithm 1's functions give (S,) losses)."""
        return R.Replicas(self.replicas, self.noise)

    def _update(  # type: ignore[override]
        self,
        which: str,
        opt: torch.optim.Optimizer,
        params: list[torch.nn.Parameter],
        objective: Callable[[torch.Tensor], torch.Tensor],
    ) -> dict[int, float]:
        """One optimiser step of one group for every replica; returns {seed: loss} of the
        replicas that stepped (a replica with a non-finite loss is dropped first)."""
        assert self._x is not None
        opt.zero_grad(set_to_none=True)
        self._inner_bad = None
        losses = self._gradients(which, objective, params, self._x)
        values = losses.detach().to(torch.float64).cpu().tolist()
        inner = (
            self._inner_bad.cpu().tolist() if self._inner_bad is not None else [0.0] * len(values)
        )
        bad: dict[int, str] = {}
        for r, (v, n_bad) in enumerate(zip(values, inner, strict=True)):
            if n_bad > 0:
                bad[r] = "bi-level inner loss = non-finite"
            elif not math.isfinite(v):
                bad[r] = f"{which} loss = {v}"
        seeds = list(self.seeds)
        if bad:
            self._drop(bad)
        opt.step()
        return {s: v for r, (s, v) in enumerate(zip(seeds, values, strict=True)) if r not in bad}

    def _drop(self, bad: dict[int, str]) -> None:
        """Report and remove the replicas ``bad`` ({replica index: reason}); raise
        :class:`TrainingDiverged` when none is left."""
        c = self.cfg
        for r, why in sorted(bad.items()):
            msg = (
                f"training diverged: objective {c.objective} ({why}) at step {self.step + 1} "
                f"(dataset {c.dataset}, seed {self.seeds[r]})"
            )
            self.diverged.append({"seed": self.seeds[r], "step": self.step + 1, "message": msg})
            if self.log is not None:
                left = len(self.seeds) - len(bad)
                self.log(f"{msg}; replica dropped, {left} go on")
        keep = [r for r in range(len(self.seeds)) if r not in bad]
        if not keep:
            seeds = format_seeds(tuple(sorted(d["seed"] for d in self.diverged)))
            last = "; ".join(d["message"] for d in self.diverged[-len(bad) :])
            raise TrainingDiverged(
                f"training diverged: every replica (seeds {seeds}) diverged; "
                f"the last: {last}; try smaller learning rates"
            )
        self._keep_only(keep)

    def _keep_only(self, keep: list[int]) -> None:
        """Keep the replicas ``keep`` (indices, in order): parameters, gradients, optimiser
        states, generators, data sets and the current minibatch."""
        index = torch.tensor(keep, dtype=torch.long)
        old_shapes = {id(p): p.shape for p in self.replicas.parameters()}
        self.replicas.keep(index)
        for opt in (self.enc_opt, self.dec_opt):
            R.slice_optimizer_state(opt, old_shapes, index)
        self.noise.keep(keep)
        self.seeds = [self.seeds[r] for r in keep]
        self.datasets = [self.datasets[r] for r in keep]
        self._cpu_rng = [self._cpu_rng[r] for r in keep]
        if self._x is not None:
            self._x = self._x[index.to(self._x.device)]

    def train_step(self) -> dict[str, float]:
        """One iteration for every replica (an encoder update and every ``k_enc``-th iteration a
        decoder update). Appends each replica's record to :attr:`history` and returns the means
        over the replicas (``enc_loss``, ``dec_loss`` when θ was updated, ``sigma2``) and their
        count ``replicas``. Replicas that diverge are dropped; raises
        :class:`TrainingDiverged` when every replica has."""
        cfg = self.cfg
        self._x = torch.stack(
            [
                d.batch(self.step, cfg.batch_size, s, **self._batch_options())
                for d, s in zip(self.datasets, self.seeds, strict=True)
            ]
        ).to(self.device, self.dtype)
        enc = self._update("inference", self.enc_opt, self.enc_params, self.inference_loss)
        dec: dict[int, float] = {}
        if (self.step + 1) % cfg.k_enc == 0:
            dec = self._update("learning", self.dec_opt, self.dec_params, self._learning_step_loss)
        sigma2 = torch.exp(self.replicas.log_sigma2.detach()).cpu().tolist()
        bad = {r: f"σ² = {v}" for r, v in enumerate(sigma2) if not math.isfinite(v)}
        seeds = list(self.seeds)
        if bad:
            self._drop(bad)
        self._x = None
        self.step += 1
        out: dict[str, float] = {"step": self.step}
        for r, s in enumerate(seeds):
            if r in bad:
                continue
            rec = {"step": self.step, "enc_loss": enc[s]}
            if dec:
                rec["dec_loss"] = dec[s]
            rec["sigma2"] = sigma2[r]
            self.history[s].append(rec)
        recs = [self.history[s][-1] for s in self.seeds]
        for key in ("enc_loss", "dec_loss", "sigma2"):
            if key in recs[0]:
                out[key] = statistics.fmean(r[key] for r in recs)
        out["replicas"] = len(self.seeds)
        return out

    # ------------------------------------------------------------------ evaluation & checkpoints

    def evaluate(self, n_is: int | None = None) -> dict[str, Any]:
        """Every surviving replica's test metrics (:func:`vsm.metrics.evaluate` with the single
        run's evaluation seed, on its own test set); training's RNG streams are untouched.

        Returns ``{"step", "objective", "dataset", "seeds", "replicas": [one result per seed,
        with "seed"], "diverged", "summary": {metric: {"mean", "sd", "n"}}, "wall_time_s"}``.
        """
        cfg = self.cfg
        results = []
        for r, s in enumerate(self.seeds):
            model = self.replicas.replica(r)
            res = self._evaluation(model, self.datasets[r].test, s, n_is, seed=s)
            self.evals[s].append(report.stored(res))
            results.append(res)
        return {
            "step": self.step,
            "objective": cfg.objective,
            "dataset": cfg.dataset,
            "variant": cfg.variant,
            "seeds": list(cfg.seeds or ()),
            "replicas": results,
            "diverged": list(self.diverged),
            "summary": report.summary(results),
            "wall_time_s": self.wall_time,
        }

    def _format_eval(self, res: dict[str, Any]) -> str:
        return report.format_replicas_eval(res)

    def _format_window(self, window: list[dict[str, float]], total: int) -> str:
        return f"{super()._format_window(window, total)}  replicas {len(self.seeds)}"

    def replica_state(self, seed: int) -> dict[str, Any]:
        """Replica ``seed``'s complete single-run checkpoint state (what
        :meth:`vsm.train.Trainer.state_dict` of the run with that seed would hold)."""
        return replica_state(self, seed)

    def state_dict(self) -> dict[str, Any]:
        """All replicas: ``replicas`` maps each surviving seed to its :meth:`replica_state`;
        ``diverged`` lists the dropped ones (with their ``history`` and ``evals``)."""
        return seeds_state(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (every replica's model, optimiser states, RNG, history;
        the dropped replicas stay dropped).

        Raises:
            ValueError: a single-run checkpoint, or one for other seeds.
        """
        restore_seeds(self, state)

    def _write_outputs(self, res: dict[str, Any]) -> None:
        assert self.out_dir is not None
        c = self.cfg
        title = f"{c.objective} on {c.dataset}, seeds {format_seeds(tuple(c.seeds or ()))}"
        report.write_replica_outputs(self.out_dir, res, self.history, title=title)
