"""The trainer for a config or a checkpoint: :func:`make_trainer` builds a
:class:`~vsm.train.SeedsTrainer` when the config has ``seeds`` (one replica per seed, batched),
else a :class:`~vsm.train.Trainer`; :func:`trainer_from_checkpoint` does the same for a checkpoint.

The choice lives here, not in :class:`~vsm.train.Trainer`, because :mod:`vsm.train.seeds`
subclasses the trainer: the trainer choosing its subclass would make the two modules import each
other (``tests/test_import_graph.py`` checks that no module of vsm does).
"""

from __future__ import annotations

from typing import Any

from .checkpoint import load_checkpoint
from .config import TrainConfig
from .seeds import SeedsTrainer
from .trainer import Trainer

__all__ = ["make_trainer", "trainer_class", "trainer_from_checkpoint"]


def trainer_class(cfg: TrainConfig) -> type[Trainer]:
    """:class:`~vsm.train.SeedsTrainer` when ``cfg.seeds`` is set, else
    :class:`~vsm.train.Trainer`."""
    return SeedsTrainer if cfg.seeds is not None else Trainer


def make_trainer(cfg: TrainConfig, **kwargs: Any) -> Trainer:
    """The trainer of ``cfg`` (:func:`trainer_class`), built with ``kwargs`` (``data``,
    ``out_dir``, ``progress``, ``log``, ``checkpoint``: see :class:`~vsm.train.Trainer`; an
    example is in :mod:`vsm.train`)."""
    return trainer_class(cfg)(cfg, **kwargs)


def trainer_from_checkpoint(
    path: str, *, overrides: dict[str, Any] | None = None, **kwargs: Any
) -> Trainer:
    """Rebuild the trainer of a checkpoint, a many-seeds one included, ready to continue;
    ``overrides`` may change config fields (e.g. ``steps``), ``kwargs`` as for
    :func:`make_trainer`. (:meth:`Trainer.from_checkpoint` builds its own class.)"""
    state = load_checkpoint(path)
    cfg = TrainConfig.from_dict({**state["config"], **(overrides or {})})
    trainer = make_trainer(cfg, **kwargs)
    trainer.load_state_dict(state)
    return trainer
