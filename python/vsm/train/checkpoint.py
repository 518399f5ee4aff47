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

The trainers' ``state_dict`` / ``load_state_dict`` are :func:`trainer_state` /
:func:`restore_trainer` and, for many seeds, :func:`seeds_state` / :func:`restore_seeds` (with
:func:`replica_state`, one seed's single-run state from the stacked replicas).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import TYPE_CHECKING, Any

import torch

from ..models import GaussianVAE, from_spec
from . import distributed as D
from .config import TrainConfig
from .seed_lists import format_seeds

if TYPE_CHECKING:
    from .seeds import SeedsTrainer
    from .trainer import Trainer

__all__ = [
    "FORMAT",
    "atomic_torch_save",
    "load_checkpoint",
    "model_from_checkpoint",
    "replica_checkpoint",
    "replica_state",
    "restore_seeds",
    "restore_trainer",
    "save_checkpoint",
    "seeds_state",
    "trainer_state",
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
    """Atomically write ``trainer``'s :meth:`vsm.train.Trainer.state_dict` to ``path`` (torch.save).

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


# ----------------------------------------------------------------------------- trainers' states


def _run_state(
    trainer: Trainer,
    config: dict[str, Any],
    model_spec: Any,
    model: dict[str, torch.Tensor],
    opt_states: tuple[dict[str, Any], dict[str, Any]],
    rng: dict[str, Any],
    history: list[dict[str, float]],
    evals: list[dict[str, Any]],
) -> dict[str, Any]:
    """A single run's checkpoint state at ``trainer``'s step and wall time."""
    return {
        "format": FORMAT,
        "config": config,
        "model_spec": model_spec,
        "model": model,
        "enc_opt": opt_states[0],
        "dec_opt": opt_states[1],
        "step": trainer.step,
        "rng": rng,
        "history": history,
        "evals": evals,
        "wall_time": trainer.wall_time,
    }


def trainer_state(t: Trainer) -> dict[str, Any]:
    """:meth:`vsm.train.Trainer.state_dict`: everything needed to resume.

    Data-parallel: a collective (every rank must call it); ``rng["ranks"]`` holds every rank's
    RNG state so that a resume with the same number of ranks is exact.
    """
    rng: dict[str, Any] = rng_state(t.device)
    ranks = D.gather_objects(rng_state(t.device), t.world_size)
    if ranks is not None:
        rng["ranks"] = ranks
    opts = (t.enc_opt.state_dict(), t.dec_opt.state_dict())
    config = dataclasses.asdict(t.cfg)
    return _run_state(
        t, config, t.model.spec(), t.model.state_dict(), opts, rng, t.history, t.evals
    )


def restore_trainer(t: Trainer, state: dict[str, Any]) -> None:
    """:meth:`vsm.train.Trainer.load_state_dict`: model, optimisers, step, RNG, history."""
    t.model.load_state_dict(state["model"])
    t.enc_opt.load_state_dict(state["enc_opt"])
    t.dec_opt.load_state_dict(state["dec_opt"])
    t.step = int(state["step"])
    t.history = list(state.get("history", []))
    t.evals = list(state.get("evals", []))
    t.wall_time = float(state.get("wall_time", 0.0))
    rng = state["rng"]
    if t.world_size > 1:
        ranks = rng.get("ranks")
        if ranks is None or len(ranks) != t.world_size:
            D.reseed_rank(t.cfg.seed, t.rank, t.step)  # valid, not a replay
            return
        rng = ranks[t.rank]
    set_rng_state(rng, t.device)


# Optimiser state shared by all replicas (they always step together): Adam's step counter. Every
# other tensor in Adam's or SGD's state is elementwise, shaped like its parameter.
_SHARED_STATE = ("step",)


def _stack_opt_states(states: list[dict[str, Any]]) -> dict[str, Any]:
    """One optimiser state_dict for stacked parameters from the replicas' single-run ones."""
    first = states[0]
    out: dict[str, Any] = {"param_groups": first["param_groups"], "state": {}}
    for idx, st in first["state"].items():
        out["state"][idx] = {
            k: (
                torch.stack([s["state"][idx][k] for s in states])
                if isinstance(v, torch.Tensor) and k not in _SHARED_STATE
                else v
            )
            for k, v in st.items()
        }
    return out


def _unstack_opt_state(state: dict[str, Any], r: int) -> dict[str, Any]:
    """Replica r's single-run optimiser state_dict from the stacked one (copies)."""
    out: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for idx, st in state["state"].items():
        out["state"][idx] = {
            k: (v.clone() if k in _SHARED_STATE else v[r].clone())
            if isinstance(v, torch.Tensor)
            else v
            for k, v in st.items()
        }
    return out


def replica_state(t: SeedsTrainer, seed: int) -> dict[str, Any]:
    """:meth:`vsm.train.SeedsTrainer.replica_state`: replica ``seed``'s complete single-run
    checkpoint state (what :func:`trainer_state` of the run with that seed would hold)."""
    r = t._index(seed)
    gen = t.noise.generators[r]
    # on the CPU the replica's generator is the single run's global RNG; on a GPU the latter
    # is left as model building left it and the noise comes from the device's generator
    rng: dict[str, Any] = (
        {"torch": gen.get_state()}
        if t.device.type == "cpu"
        else {"torch": t._cpu_rng[r].clone(), "cuda": gen.get_state()}
    )
    opts = (
        _unstack_opt_state(t.enc_opt.state_dict(), r),
        _unstack_opt_state(t.dec_opt.state_dict(), r),
    )
    config = dataclasses.asdict(t.replica_config(seed))
    history, evals = list(t.history[seed]), list(t.evals[seed])
    model = t.replicas.state_dict_of(r)
    return _run_state(t, config, t.replicas.template.spec(), model, opts, rng, history, evals)


def seeds_state(t: SeedsTrainer) -> dict[str, Any]:
    """:meth:`vsm.train.SeedsTrainer.state_dict`: ``replicas`` maps each surviving seed to its
    :func:`replica_state`; ``diverged`` lists the dropped ones (with ``history`` and ``evals``)."""
    dropped = [
        {**d, "history": list(t.history[d["seed"]]), "evals": list(t.evals[d["seed"]])}
        for d in t.diverged
    ]
    return {
        "format": FORMAT,
        "config": dataclasses.asdict(t.cfg),
        "model_spec": t.replicas.template.spec(),
        "step": t.step,
        "replicas": {s: replica_state(t, s) for s in t.seeds},
        "diverged": dropped,
        "wall_time": t.wall_time,
    }


def restore_seeds(t: SeedsTrainer, state: dict[str, Any]) -> None:
    """:meth:`vsm.train.SeedsTrainer.load_state_dict`: every replica's model, optimiser states,
    RNG and history (the dropped replicas stay dropped).

    Raises:
        ValueError: a single-run checkpoint, or one for other seeds.
    """
    if "replicas" not in state:
        raise ValueError("state: a single-run checkpoint (no replicas); resume it without seeds")
    saved = tuple(state["config"].get("seeds") or ())
    if tuple(t.cfg.seeds or ()) != saved:
        raise ValueError(
            f"seeds: the checkpoint holds seeds {format_seeds(saved)}, not "
            f"{format_seeds(tuple(t.cfg.seeds or ()))}"
        )
    t._keep_only([r for r, s in enumerate(t.seeds) if s in state["replicas"]])
    t.diverged = [{k: d[k] for k in ("seed", "step", "message")} for d in state.get("diverged", [])]
    reps = [state["replicas"][s] for s in t.seeds]
    for r, rep in enumerate(reps):
        t.replicas.load_replica(r, rep["model"])
    t.enc_opt.load_state_dict(_stack_opt_states([rep["enc_opt"] for rep in reps]))
    t.dec_opt.load_state_dict(_stack_opt_states([rep["dec_opt"] for rep in reps]))
    for r, rep in enumerate(reps):
        rng = rep["rng"]
        t._cpu_rng[r] = rng["torch"].clone()
        if t.device.type == "cpu":
            t.noise.generators[r].set_state(rng["torch"])
        elif "cuda" in rng:
            t.noise.generators[r].set_state(rng["cuda"])
    t.step = int(state["step"])
    t.wall_time = float(state.get("wall_time", 0.0))
    for d in state.get("diverged", []):
        t.history[d["seed"]] = list(d.get("history", []))
        t.evals[d["seed"]] = list(d.get("evals", []))
    for s, rep in zip(t.seeds, reps, strict=True):
        t.history[s] = list(rep.get("history", []))
        t.evals[s] = list(rep.get("evals", []))
