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
import warnings
from typing import TYPE_CHECKING, Any

import torch

from .._errors import BadFileError
from ..models import GaussianVAE, from_spec
from . import distributed as D
from .config import TrainConfig
from .seed_lists import format_seeds

if TYPE_CHECKING:
    from .seeds import SeedsTrainer
    from .trainer import Trainer

__all__ = [
    "FIXED_ON_RESUME",
    "FORMAT",
    "atomic_torch_save",
    "check_resume_overrides",
    "check_state",
    "convert_checkpoint",
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
    """Read a checkpoint written by :func:`save_checkpoint` (or by a many-seeds run), as data.

    The file is read with ``torch.load(weights_only=True)``: tensors and plain containers only,
    so a file that would run code when unpickled (a class whose ``__reduce__`` calls
    ``os.system``, say) is refused before anything in it runs. A checkpoint of an older vsm that
    holds other Python objects (NumPy scalars, a config object) is refused the same way; if the
    user trusts it, ``vsm convert OLD NEW`` (:func:`convert_checkpoint`) rewrites it as data.

    Raises:
        OSError: the file cannot be opened (missing, a folder, no permission).
        BadFileError: (a ValueError) not a vsm checkpoint: junk, empty, truncated, another
            kind of torch file, a file that needs code to load, or missing parts.
    """
    path = os.fspath(path)
    with open(path, "rb"):  # a missing or unreadable file is an OSError, not a bad file
        pass
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": refused anyway
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # any failure to parse a readable file: the content is bad
        raise _unloadable(path, e) from e
    check_state(state, path)
    return state


def _unloadable(path: str, err: Exception) -> BadFileError:
    """The error for a file that ``torch.load(weights_only=True)`` refused or could not read."""
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not even a torch.save zip file
        unsafe = []
    if unsafe:
        shown = ", ".join(unsafe[:4]) + (", ..." if len(unsafe) > 4 else "")
        return BadFileError(
            path,
            f"refused to load: the file holds Python objects ({shown}) and loading them could "
            "run code",
            f"if you trust it (e.g. a checkpoint of an older vsm), convert it with: "
            f"vsm convert {path} NEW.pt",
        )
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head:
        why = "an empty file"
    elif head.startswith(b"PK"):  # a zip file: torch.save's format, cut short or damaged
        why = "a truncated or damaged torch file"
    else:
        why = "not a file written by torch.save"
    return BadFileError(path, f"not a vsm checkpoint ({why}: {type(err).__name__})")


# The parts of a single-run checkpoint and their types (a many-seeds one: _SEEDS_PARTS, and
# every replica a single-run checkpoint).
_RUN_PARTS: dict[str, type | tuple[type, ...]] = {
    "config": dict,
    "model_spec": dict,
    "model": dict,
    "enc_opt": dict,
    "dec_opt": dict,
    "step": int,
    "rng": dict,
}
_SEEDS_PARTS: dict[str, type | tuple[type, ...]] = {
    "config": dict,
    "model_spec": dict,
    "step": int,
    "replicas": dict,
}


def check_state(state: Any, path: str, where: str = "") -> None:
    """Check that a loaded ``state`` has the parts of a vsm checkpoint (BadFileError if not)."""
    if not isinstance(state, dict):
        raise BadFileError(path, f"not a vsm checkpoint (it holds a {type(state).__name__})")
    fmt = state.get("format")
    if fmt != FORMAT and not where:
        what = "no format tag" if fmt is None else f"format {fmt!r}, not {FORMAT!r}"
        raise BadFileError(path, f"not a vsm checkpoint ({what})")
    parts = _SEEDS_PARTS if "replicas" in state else _RUN_PARTS
    for key, typ in parts.items():
        if not isinstance(state.get(key), typ):
            got = "missing" if key not in state else f"a {type(state[key]).__name__}"
            raise BadFileError(path, f"incomplete vsm checkpoint: {where}{key!r} is {got}")
    try:
        TrainConfig.from_dict(state["config"])
    except (TypeError, ValueError) as e:
        raise BadFileError(path, f"vsm checkpoint with a bad {where}config: {e}") from e
    if "replicas" in state:
        for seed, rep in state["replicas"].items():
            check_state(rep, path, where=f"replica {seed}'s ")
    elif not isinstance(state["rng"].get("torch"), torch.Tensor):
        raise BadFileError(path, f"incomplete vsm checkpoint: {where}RNG state is missing")


def convert_checkpoint(src: str, dst: str) -> dict[str, Any]:
    """Rewrite a *trusted* checkpoint as plain data that :func:`load_checkpoint` accepts
    (``vsm convert SRC DST``); returns the converted state.

    ``src`` is unpickled in full (``weights_only=False``): only run this on files you trust, as
    unpickling can run code. NumPy scalars and arrays become Python numbers and tensors, a config
    object (a dataclass) becomes its dict; anything else that is not plain data is an error.

    Raises:
        OSError: ``src`` cannot be read or ``dst`` written.
        BadFileError: ``src`` is not a vsm checkpoint, or holds objects that have no plain form.
    """
    src, dst = os.fspath(src), os.fspath(dst)
    with open(src, "rb"):
        pass
    try:
        raw = torch.load(src, map_location="cpu", weights_only=False)
    except Exception as e:
        raise BadFileError(
            src, f"not a torch checkpoint ({type(e).__name__}: {e})", arg="src"
        ) from e
    state = _plain(raw, src, "")
    check_state(state, src)
    atomic_torch_save(state, dst)
    return load_checkpoint(dst)


def _plain(obj: Any, path: str, at: str) -> Any:
    """``obj`` as tensors, numbers, strings and containers only (:func:`convert_checkpoint`)."""
    import numpy as np

    if isinstance(obj, np.generic):  # before float: np.float64 is a float subclass
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor, torch.dtype)):
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {k: _plain(v, path, f"{at}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [_plain(v, path, f"{at}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    raise BadFileError(
        path, f"cannot convert: {type(obj).__module__}.{type(obj).__name__} at state{at}"
    )


FIXED_ON_RESUME = (
    "dataset",
    "model",
    "latent_dim",
    "width",
    "ngf",
    "ndf",
    "variant",
    "dtype",
    "enc_optimizer",
    "seed",
    "seeds",
)
"""Config fields a resume cannot change: they fix the model's architecture and parametrisation,
the data, the optimiser's kind and the random streams that the checkpoint continues."""


def check_resume_overrides(state: dict[str, Any], overrides: dict[str, Any], path: str) -> None:
    """Check that ``overrides`` (options given with ``--resume``) leave the :data:`FIXED_ON_RESUME`
    fields of the checkpoint's config as they are.

    Raises:
        ValueError: "<field>: ..." naming the checkpoint's value, the new one and the file.
    """
    saved = state["config"]
    for name in FIXED_ON_RESUME:
        if name not in overrides:
            continue
        old, new = saved.get(name), overrides[name]
        if isinstance(old, list):
            old = tuple(old)
        if new == old:
            continue
        if name == "seeds":
            raise ValueError(
                f"seeds: the checkpoint holds seeds {_seeds_text(old)}, not {_seeds_text(new)}; "
                f"a resume cannot change them (start a new run instead) ({path})"
            )
        raise ValueError(
            f"{name}: the checkpoint was trained with {name}={old!r}; a resume cannot change "
            f"it to {new!r} (start a new run instead) ({path})"
        )


def _seeds_text(seeds: Any) -> str:
    return "none (a single run)" if seeds is None else format_seeds(tuple(seeds))


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
