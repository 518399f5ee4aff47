"""Checkpoints: atomic files and exact resumption.

A checkpoint (``format: vsm-checkpoint-1``, written with :func:`torch.save`) holds the config, the
model's spec and parameters, both optimisers, the iteration, the RNG states (every rank's under
torchrun), the loss history, the evaluations and the training wall time. Files are written
atomically (a temporary file in the same folder, then :func:`os.replace`), so an interruption
never leaves a truncated checkpoint. Because minibatches are a function of (seed, iteration) and
the RNG state is restored, resuming replays an uninterrupted run bit for bit (with a different
number of ranks each rank's noise is reseeded from (seed, rank, step) instead: valid, not a
replay).

A many-seeds run (:class:`vsm.train.SeedsTrainer`) writes the same format with ``replicas``: a
complete single-run checkpoint per surviving seed (:func:`replica_checkpoint`), plus ``diverged``.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import torch

from ..models import GaussianVAE, from_spec
from .config import TrainConfig

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = [
    "FORMAT",
    "atomic_torch_save",
    "load_checkpoint",
    "model_from_checkpoint",
    "replica_checkpoint",
    "save_checkpoint",
]

FORMAT = "vsm-checkpoint-1"


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save(obj, path)`` through a temporary file and :func:`os.replace`."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_json(obj: Any, path: str) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=1)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """This process's RNG state: torch's CPU generator and, on CUDA, the device's."""
    rng = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def set_rng_state(rng: dict[str, torch.Tensor], device: torch.device) -> None:
    """Restore an :func:`rng_state`."""
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device)


def save_checkpoint(trainer: Trainer, path: str) -> None:
    """Atomically write ``trainer``'s :meth:`Trainer.state_dict` to ``path`` (torch.save).

    Data-parallel: a collective; every rank calls it and rank 0 writes the file.
    """
    state = trainer.state_dict()
    if trainer.rank == 0:
        atomic_torch_save(state, os.fspath(path))


def load_checkpoint(path: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (raises ValueError if it is not one)."""
    state = torch.load(os.fspath(path), map_location=map_location, weights_only=False)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"path: {path} is not a vsm checkpoint")
    return state


def replica_checkpoint(state: dict[str, Any], seed: int) -> dict[str, Any]:
    """Replica ``seed``'s single-run checkpoint state from a many-seeds checkpoint (one written
    by :class:`vsm.train.SeedsTrainer`): what the run with ``seed=seed`` would have saved, for
    :func:`model_from_checkpoint`, ``Trainer.load_state_dict`` or ``vsm train --resume``
    (save it with :func:`atomic_torch_save`).

    Raises:
        ValueError: not a many-seeds checkpoint, or no (surviving) replica ``seed`` in it.
    """
    replicas = state.get("replicas")
    if replicas is None:
        raise ValueError("state: a single-run checkpoint, not one of many seeds")
    if seed not in replicas:
        dropped = [d["seed"] for d in state.get("diverged", [])]
        why = " (it diverged and was dropped)" if seed in dropped else ""
        raise ValueError(
            f"seed: no replica {seed} in the checkpoint{why}; it holds {sorted(replicas)}"
        )
    return replicas[seed]


def model_from_checkpoint(path: str, seed: int | None = None) -> tuple[GaussianVAE, TrainConfig]:
    """The trained model (CPU, its training dtype) and config stored in a checkpoint.

    A many-seeds checkpoint (``vsm train --seeds``) needs ``seed``, the replica to load (its
    config is that replica's single-run config); a single-run checkpoint ignores it.

    Raises:
        ValueError: not a checkpoint; a many-seeds checkpoint without a (surviving) ``seed``.
    """
    state = load_checkpoint(path)
    if "replicas" in state:
        if seed is None:
            raise ValueError(
                f"seed: {path} holds replicas for seeds {sorted(state['replicas'])}; say which one"
            )
        state = replica_checkpoint(state, seed)
    cfg = TrainConfig.from_dict(state["config"])
    model = from_spec(state["model_spec"]).to(getattr(torch, cfg.dtype))
    model.load_state_dict(state["model"])
    return model, cfg
