"""Training of Gaussian VAEs by the paper's Algorithm 1 and its bi-level variant (MATH.md §7).

One file per concern, in the order a reader needs them:

- :mod:`~vsm.train.config`: the objective registry (:data:`OBJECTIVES`), :class:`TrainConfig`
  (the one list of defaults; ``vsm train``'s options are generated from it), the model and the
  optimisers; :mod:`~vsm.train.variants` (vsm's or the paper code's estimators,
  :func:`variant_options`) and :mod:`~vsm.train.seed_lists` (the ``seeds`` syntax);
- :mod:`~vsm.train.algorithm`: Algorithm 1 as plain functions of (model, minibatch):
  :func:`inference_loss`, :func:`learning_loss`, :func:`bilevel_learning_loss`, and one whole
  single-process :func:`iteration`; written once against :mod:`~vsm.train.networks`, the
  operations they need from one model or from stacked replicas;
- :mod:`~vsm.train.distributed`: torchrun / DistributedDataParallel plumbing;
- :mod:`~vsm.train.checkpoint`: atomic checkpoints with RNG state, exact resumption, the
  trainers' states;
- :mod:`~vsm.train.stopping`: :class:`TrainingDiverged`, :class:`TrainingInterrupted` and the
  SIGINT/SIGTERM handling;
- :mod:`~vsm.train.reporting`: log lines, evaluation summaries and output files;
- :mod:`~vsm.train.trainer`: :class:`Trainer`, the loop with evaluation and logging;
- :mod:`~vsm.train.replicas`: S replicas of a model stacked into one batched computation
  (:class:`~vsm.train.replicas.Replicas`, Algorithm 1's other layout);
- :mod:`~vsm.train.seeds`: :class:`SeedsTrainer`, many seeds in one run
  (``TrainConfig(seeds=...)``);
- :mod:`~vsm.train.factory`: :func:`make_trainer` and :func:`trainer_from_checkpoint`, which
  build a :class:`SeedsTrainer` for a config with ``seeds`` and a :class:`Trainer` otherwise.

Example::

    from vsm.train import TrainConfig, make_trainer
    cfg = TrainConfig(objective="fd-m1", dataset="mixture", steps=50, n_test=200, n_is=100)
    make_trainer(cfg, out_dir="runs/x").run()  # a Trainer
    # three seeds in one batched run (a SeedsTrainer): per-replica metrics and a summary
    make_trainer(TrainConfig(**{**vars(cfg), "seeds": "0-2"}), out_dir="runs/y").run()
"""

from __future__ import annotations

from .algorithm import (
    Unrolled,
    bilevel_learning_loss,
    group_backward,
    inference_loss,
    iteration,
    learning_loss,
)
from .checkpoint import (
    load_checkpoint,
    model_from_checkpoint,
    replica_checkpoint,
    save_checkpoint,
)
from .config import OBJECTIVES, TrainConfig, build_model, num_threads, split_objective
from .factory import make_trainer, trainer_class, trainer_from_checkpoint
from .seed_lists import format_seeds, parse_seeds
from .seeds import SeedsTrainer
from .stopping import TrainingDiverged, TrainingInterrupted
from .trainer import Trainer
from .variants import VARIANTS, VariantOptions, variant_options

__all__ = [
    "OBJECTIVES",
    "VARIANTS",
    "SeedsTrainer",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "TrainingInterrupted",
    "Unrolled",
    "VariantOptions",
    "bilevel_learning_loss",
    "build_model",
    "format_seeds",
    "group_backward",
    "inference_loss",
    "iteration",
    "learning_loss",
    "load_checkpoint",
    "make_trainer",
    "model_from_checkpoint",
    "num_threads",
    "parse_seeds",
    "replica_checkpoint",
    "save_checkpoint",
    "split_objective",
    "trainer_class",
    "trainer_from_checkpoint",
    "variant_options",
]
