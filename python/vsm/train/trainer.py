"""The training loop: :class:`Trainer` runs Algorithm 1 (:mod:`vsm.train.algorithm`) with data
parallelism, divergence checks, evaluation, checkpoints, logging and a clean stop on a signal.

Reading order: construction (data, config, process group, model, optimisers), one iteration
(:meth:`Trainer.train_step`: an encoder update and every ``k_enc``-th iteration a decoder update,
each through ``_update``), evaluation and checkpoints, then :meth:`Trainer.run`, the
loop itself. Training stops with :class:`TrainingDiverged` on a non-finite loss, and with
:class:`TrainingInterrupted` (after writing a checkpoint of the last completed iteration) on
SIGINT or SIGTERM.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from ..data import Dataset, load_dataset
from ..models import GaussianVAE
from . import algorithm as A
from . import distributed as D
from . import reporting as report
from .checkpoint import (
    check_resume_overrides,
    load_checkpoint,
    restore_trainer,
    save_checkpoint,
    trainer_state,
)
from .config import TrainConfig, build_model, make_optimizers, num_threads, variant_options
from .fast_step import FastStep, retain_freed_memory
from .fast_step import unsupported as fast_step_unsupported
from .networks import Networks, OneModel
from .stopping import StopRequest, TrainingDiverged, TrainingInterrupted, catch_signals

__all__ = ["Trainer"]


class Trainer:
    """Algorithm 1 / bi-level training of one model (see :mod:`vsm.train`).

    Args:
        cfg: the run's configuration (``None`` defaults are resolved here).
        data: a preloaded dataset (default: :func:`vsm.data.load_dataset` of ``cfg.dataset``).
        out_dir: where checkpoints, metrics JSON files and the loss curve go (None: nowhere).
        progress: show a tqdm bar (None: only when stderr is a terminal).
        log: where periodic loss lines go (None: silent), e.g. ``print``.
        checkpoint: the checkpoint file :meth:`run` writes (default ``out_dir/checkpoint.pt``;
            without either, :meth:`run` writes none).

    Construction seeds torch's global RNG with ``cfg.seed`` and builds the model from it; training
    draws its noise and posterior samples from the global RNG, whose state is checkpointed.

    A config with ``seeds`` (one replica per seed in one batched run) needs a
    :class:`vsm.train.SeedsTrainer`: :func:`vsm.train.make_trainer` builds whichever a config
    needs, :func:`vsm.train.trainer_from_checkpoint` whichever a checkpoint needs.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        *,
        data: Dataset | None = None,
        out_dir: str | None = None,
        progress: bool | None = None,
        log: Callable[[str], None] | None = None,
        checkpoint: str | None = None,
    ):
        if cfg.seeds is not None:
            raise ValueError(
                f"cfg: seeds={cfg.seeds!r} trains one replica per seed in a batched run, which "
                "Trainer does not: build it with vsm.train.make_trainer(cfg) (a SeedsTrainer), or "
                "vsm.train.trainer_from_checkpoint(path) for a checkpoint"
            )
        self.data = (
            data
            if data is not None
            else load_dataset(cfg.dataset, seed=cfg.seed, n_test=cfg.n_test, data_dir=cfg.data_dir)
        )
        self.cfg = cfg.resolved(self.data)
        self.rank, self.world_size, self.device = D.init_distributed(torch.device(self.cfg.device))
        lead = self.rank == 0
        if checkpoint is None and out_dir is not None:
            checkpoint = os.path.join(out_dir, "checkpoint.pt")
        self.checkpoint_path = checkpoint  # every rank knows it: saving is a collective
        self.out_dir = out_dir if lead else None
        self.progress = progress if lead else False
        self.log = log if lead else None
        self.dtype = getattr(torch, self.cfg.dtype)
        torch.manual_seed(self.cfg.seed)
        self.options = variant_options(self.cfg.variant, self.data)
        self.model = build_model(self.cfg, self.data.data_shape, self.options).to(
            self.device, self.dtype
        )
        self.enc_params = self.model.encoder_parameters()
        self.dec_params = self.model.decoder_parameters()
        self.enc_opt, self.dec_opt = make_optimizers(self.cfg, self.enc_params, self.dec_params)
        self._setup_fast_step(self.model)
        self._enc_objective = self._wrap_group(self.enc_params, self.inference_loss)
        self._dec_objective = self._wrap_group(self.dec_params, self._learning_step_loss)
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.evals: list[dict[str, Any]] = []
        self.wall_time = 0.0
        self._stop = StopRequest()  # replaced by run()'s signal handlers
        self._stop_agreed = False
        self._inner_bad: torch.Tensor | None = None
        if self.world_size > 1:
            D.reseed_rank(self.cfg.seed, self.rank, self.step)

    def _wrap_group(
        self, params: list[torch.nn.Parameter], loss_fn: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.nn.Module:
        """A group's objective module (:func:`vsm.train.distributed.wrap_group`)."""
        return D.wrap_group(
            params,
            loss_fn,
            world_size=self.world_size,
            device=self.device,
            find_unused=self.cfg.ddp_find_unused,
        )

    def _batch_options(self) -> dict[str, int]:
        """Keyword arguments of ``Dataset.batch`` for the variant (none for vsm's fresh batches,
        so that the call is the one a plain dataset, or a stand-in for one, takes)."""
        e = self.options.epoch_size
        return {} if e is None else {"epoch_size": e}

    @property
    def total_steps(self) -> int:
        """Iterations of the whole run: ``epochs`` × minibatches per epoch, else ``steps``."""
        if self.cfg.epochs is not None:
            per_epoch = self.data.steps_per_epoch(
                self.cfg.batch_size, epoch_size=self.options.epoch_size
            )
            return self.cfg.epochs * max(1, per_epoch // self.world_size)
        return self.cfg.steps

    # ------------------------------------------------------------------ one iteration

    def _settings(self) -> A.Settings:
        """The keyword arguments of the Algorithm 1 functions from this run's config."""
        c = self.cfg
        return A.Settings(
            objective=c.objective, n_samples=c.n_samples, eta=c.eta, options=self.options
        )

    def _networks(self) -> Networks:
        """What Algorithm 1's functions run on: this run's model (replicas for SeedsTrainer)."""
        return OneModel(self.model)

    def inference_loss(
        self, x: torch.Tensor, phi: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """:func:`vsm.train.algorithm.inference_loss` with this run's settings (one per replica
        for a :class:`vsm.train.SeedsTrainer`)."""
        return A.inference_loss(
            self._networks(), x, fd_reparam=self.cfg.fd_reparam, phi=phi, **self._settings()
        )

    def learning_loss(
        self, x: torch.Tensor, phi: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """:func:`vsm.train.algorithm.learning_loss` with this run's settings."""
        return A.learning_loss(self._networks(), x, phi=phi, **self._settings())

    def _learning_step_loss(self, x: torch.Tensor) -> torch.Tensor:
        """The θ-update's loss: Algorithm 1's learning loss, or the bi-level one (``k_bi`` > 0),
        after which the encoder continues from φ_K (averaged over the ranks)."""
        c = self.cfg
        if c.k_bi == 0:
            return self.learning_loss(x)
        nets = self._networks()
        res = A.bilevel_learning_loss(
            nets, x, k_bi=c.k_bi, bi_lr=c.bi_lr, fd_reparam=c.fd_reparam, **self._settings()
        )
        self._inner_bad = res.n_bad  # checked over all ranks by _update
        encoder = nets.encoder_params()
        A.warm_start(encoder, res.phi)
        D.average_(list(encoder.values()), self.world_size)
        return res.loss

    def _setup_fast_step(self, template: GaussianVAE) -> None:
        """:attr:`fast_step` (the closed-form updates of :mod:`vsm.train.fast_step`) when the
        config asks for it and covers this run, else None and :attr:`fast_step_off` says why."""
        c = self.cfg
        self.fast_step: FastStep | None = None
        self.fast_step_off: str | None = "fast_step=False" if not c.fast_step else None
        if c.fast_step:
            self.fast_step_off = fast_step_unsupported(
                c.objective,
                k_bi=c.k_bi,
                fd_reparam=c.fd_reparam,
                world_size=self.world_size,
                model=template,
            )
        if self.fast_step_off is None:
            self.fast_step = FastStep(
                c.objective,
                n_samples=c.n_samples,
                eta=c.eta,
                options=self.options,
                template=template,
                compile_step=c.compile_step,
                fd_reparam=c.fd_reparam,
            )
            if self.device.type == "cpu":
                retain_freed_memory()

    def _gradients(
        self,
        which: str,
        objective: Callable[[torch.Tensor], torch.Tensor],
        params: list[torch.nn.Parameter],
        x: torch.Tensor,
    ) -> torch.Tensor:
        """The update's loss (one per replica for a SeedsTrainer), with the group's gradients
        filled (those of the losses' sum): closed-form on the fast path, else by autograd."""
        if self.fast_step is not None:
            nets = self._networks()
            if which == "inference":
                loss = self.fast_step.inference(nets, x)
            else:
                loss = self.fast_step.learning(nets, x)
            D.average_grads_(params, self.world_size)  # data-parallel: the ranks' mean
            return loss
        loss = objective(x)
        A.group_backward(loss if loss.dim() == 0 else loss.sum(), params)
        return loss

    def _update(
        self,
        which: str,
        opt: torch.optim.Optimizer,
        params: list[torch.nn.Parameter],
        objective: torch.nn.Module,
        x: torch.Tensor,
    ) -> float:
        """One optimiser step of one group; returns the loss (mean over ranks).

        Under DDP, ``backward(inputs=params)`` lets its reducer average the group's gradients.
        The ranks' losses, divergence flags and stop requests travel in one ``all_reduce``, so
        every rank raises :class:`TrainingDiverged` (or stops) at the same step.
        """
        opt.zero_grad(set_to_none=True)
        self._inner_bad = None
        loss = self._gradients(which, objective, params, x)
        bad = self._inner_bad if self._inner_bad is not None else loss.new_zeros(())
        stop = float(self._stop.signum is not None)
        stats = torch.stack(
            [
                loss.detach().to(torch.float64),
                bad.to(torch.float64),
                loss.new_tensor(stop, dtype=torch.float64),
            ]
        )
        value, inner_bad, stops = D.reduce_stats(stats, self.world_size)
        self._stop_agreed = self._stop_agreed or stops > 0
        if inner_bad > 0 or not math.isfinite(value):
            what = "bi-level inner" if inner_bad > 0 else which
            shown = "non-finite" if inner_bad > 0 else value
            raise TrainingDiverged(
                f"training diverged: objective {self.cfg.objective} ({what} loss = {shown}) at "
                f"step {self.step + 1} (dataset {self.cfg.dataset}, seed {self.cfg.seed}); "
                "try smaller learning rates"
            )
        opt.step()
        return value

    def train_step(self) -> dict[str, float]:
        """One iteration: an encoder update and, every ``k_enc``-th iteration, a decoder update.

        Returns the losses of the iteration (``enc_loss`` and, when θ was updated, ``dec_loss``;
        means over ranks when data-parallel) and σ². Raises :class:`TrainingDiverged` on a
        non-finite loss or σ².
        """
        cfg = self.cfg
        index = self.step * self.world_size + self.rank
        x = self.data.batch(index, cfg.batch_size, cfg.seed, **self._batch_options()).to(
            self.device, self.dtype
        )
        self.model.train()
        rec: dict[str, float] = {"step": self.step + 1}
        rec["enc_loss"] = self._update(
            "inference", self.enc_opt, self.enc_params, self._enc_objective, x
        )
        if (self.step + 1) % cfg.k_enc == 0:
            rec["dec_loss"] = self._update(
                "learning", self.dec_opt, self.dec_params, self._dec_objective, x
            )
        rec["sigma2"] = float(torch.exp(self.model.log_sigma2.detach()))
        if not math.isfinite(rec["sigma2"]):
            raise TrainingDiverged(
                f"training diverged: objective {cfg.objective}: σ² = {rec['sigma2']} at step "
                f"{self.step + 1}"
            )
        self.step += 1
        self.history.append(rec)
        return rec

    # ------------------------------------------------------------------ evaluation & checkpoints

    def evaluate(self, n_is: int | None = None) -> dict[str, Any]:
        """Test metrics (:func:`vsm.metrics.evaluate`) with a fixed evaluation seed; training's
        RNG stream is left untouched."""
        res = self._evaluation(self.model, self.data.test, self.cfg.seed, n_is)
        self.evals.append(report.stored(res))
        return res

    def _evaluation(
        self, model: Any, test: torch.Tensor, run_seed: int, n_is: int | None, **extra: Any
    ) -> dict[str, Any]:
        """One model's test metrics under torch seed ``run_seed + 12345`` (the global RNG is forked,
        so training's streams are untouched), with the run's identification, ``extra`` and the
        wall time."""
        from ..metrics import evaluate

        cfg = self.cfg
        x = test.to(self.device, self.dtype)
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(run_seed + 12345)
            res = evaluate(
                model,
                x,
                eta=cfg.eta,
                n_is=cfg.n_is if n_is is None else n_is,
                is_proposal=cfg.is_proposal,
            )
        run = {"step": self.step, "objective": cfg.objective, "dataset": cfg.dataset}
        return {**run, "variant": cfg.variant, **extra, **res, "wall_time_s": self.wall_time}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (:mod:`vsm.train.checkpoint`).

        Data-parallel: a collective (every rank must call it); ``rng["ranks"]`` holds every
        rank's RNG state so that a resume with the same number of ranks is exact.
        """
        return trainer_state(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (model, optimisers, step, RNG, history)."""
        restore_trainer(self, state)

    def save(self, path: str) -> None:
        """Write a checkpoint atomically (temporary file + ``os.replace``).

        Data-parallel: every rank calls it (it gathers the ranks' RNG states); rank 0 writes.
        """
        save_checkpoint(self, path)

    def close(self) -> None:
        """End data-parallel training: drop the DDP wrappers and destroy the process group that
        the trainer joined, after every rank got here (:func:`vsm.train.distributed.shutdown`).
        Afterwards the trainer cannot train or save any more. A no-op for a single process.
        """
        if self.world_size == 1:
            return
        self._enc_objective = D.unwrap(self._enc_objective)
        self._dec_objective = D.unwrap(self._dec_objective)
        D.shutdown(barrier=True)

    @classmethod
    def from_checkpoint(
        cls, path: str, *, overrides: dict[str, Any] | None = None, **kwargs: Any
    ) -> Trainer:
        """Rebuild a trainer from a checkpoint; ``overrides`` may change e.g. ``steps``."""
        state = load_checkpoint(path)
        check_resume_overrides(state, overrides or {}, path)
        cfg = TrainConfig.from_dict({**state["config"], **(overrides or {})})
        trainer = cls(cfg, **kwargs)
        trainer.load_state_dict(state)
        return trainer

    # ------------------------------------------------------------------ the loop

    def run(self) -> dict[str, Any]:
        """Train up to :attr:`total_steps`, evaluating every ``eval_every`` iterations and at the
        end; returns the final metrics.

        Writes ``checkpoint_path`` (if any) at every evaluation, every ``save_every``
        iterations, at the end, and on SIGINT/SIGTERM, which then raise
        :class:`TrainingInterrupted` once the current iteration is complete. With ``out_dir``
        also ``metrics/step_*.json``, ``metrics.json`` (final), ``history.json`` and
        ``loss.png``. Runs with ``cfg.threads`` intra-op threads (restored afterwards).
        """
        from tqdm.auto import tqdm

        cfg = self.cfg
        total = self.total_steps
        show = self.progress if self.progress is not None else sys.stderr.isatty()
        threads_before = torch.get_num_threads()
        torch.set_num_threads(num_threads(cfg.threads))
        bar = tqdm(
            total=total, initial=self.step, disable=not show, desc=cfg.objective, dynamic_ncols=True
        )
        window: list[dict[str, float]] = []
        try:
            with catch_signals(defer=True) as self._stop:
                while self.step < total:
                    t0 = time.perf_counter()
                    rec = self.train_step()
                    self.wall_time += time.perf_counter() - t0
                    window.append(rec)
                    bar.update(1)
                    if self.step % max(1, cfg.log_every) == 0 or self.step == total:
                        msg = self._format_window(window, total)
                        bar.set_postfix_str(msg.split("  ", 1)[1] if "  " in msg else msg)
                        self._log(msg, bar)
                        window = []
                    if self._stop_agreed or (self.world_size == 1 and self._stop.signum):
                        self._interrupted()
                    if cfg.save_every and self.step % cfg.save_every == 0:
                        self._save()
                    if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < total:
                        res = self.evaluate(n_is=0)
                        self._write_eval(res)
                        self._log(self._format_eval(res), bar)
                        self._save()
                bar.close()
                res = self.evaluate()
                self._write_eval(res)
                self._log(self._format_eval(res), None)
                self._save()
        finally:
            bar.close()
            self._stop, self._stop_agreed = StopRequest(), False
            torch.set_num_threads(threads_before)
        if self.out_dir is not None:
            self._write_outputs(res)
        return res

    def _write_outputs(self, res: dict[str, Any]) -> None:
        """The end of a run with ``out_dir``: metrics.json, history.json and loss.png."""
        assert self.out_dir is not None
        title = f"{self.cfg.objective} on {self.cfg.dataset}"
        report.write_outputs(self.out_dir, res, self.history, title=title)

    def _save(self) -> None:
        if self.checkpoint_path is not None:
            self.save(self.checkpoint_path)

    def _interrupted(self) -> None:
        """Checkpoint the last completed iteration and raise :class:`TrainingInterrupted`."""
        self._save()
        signum = self._stop.signum if self._stop.signum is not None else signal.SIGTERM
        path = self.checkpoint_path if self.rank == 0 else None
        raise TrainingInterrupted(signum, step=self.step, checkpoint=path)

    def _write_eval(self, res: dict[str, Any]) -> None:
        report.write_eval(self.out_dir, res, self.step)

    def _log(self, msg: str, bar: Any) -> None:
        if self.log is None:
            return
        if bar is not None and not bar.disable:
            bar.write(msg)
        else:
            self.log(msg)

    def _format_window(self, window: list[dict[str, float]], total: int) -> str:
        return report.format_window(window, self.step, total)

    def _format_eval(self, res: dict[str, Any]) -> str:
        return report.format_eval(res)
