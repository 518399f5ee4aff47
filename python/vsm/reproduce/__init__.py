"""``vsm reproduce``: regenerate the paper's figures as PNGs plus a ``results.json`` of numbers.

One module per figure (``fig1``, ``fig2``, ``fig3``, ``images``); each exposes a config dataclass
(a :class:`~vsm.reproduce._common.FigureConfig`: one list of fields with their values per mode,
``quick()`` / ``full()`` and, for fig3, ``medium()`` and ``paper()``) and ``run(out, config) ->
dict``; the figures made of independent units (fig2, fig3, images) also take ``executor=``
(:mod:`vsm.reproduce.executors`: local processes or Ray). :func:`main` is the command-line entry
point that ``vsm reproduce`` delegates to.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from ._common import FigureConfig
from .executors import EXECUTORS, UnitsFailed, make_executor

FIGURES = ("fig1", "fig2", "fig3", "images")


def _parser() -> argparse.ArgumentParser:
    from ..cli import ArgumentParser

    p = ArgumentParser(
        prog="vsm reproduce",
        description="Reproduce a figure of 'On the failure of variational score matching for VAE "
        "models': writes PNG figures and results.json into --out. SIGINT/SIGTERM stop it with a "
        "one-line message (exit 130/143); --resume continues.",
    )
    p.add_argument("name", choices=FIGURES, help="which figure to reproduce")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick", action="store_true", help="small settings, minutes on a CPU (the default)"
    )
    mode.add_argument(
        "--medium",
        action="store_true",
        help="between the two: fig3's claims in about 30 minutes on a quiet 2-core CPU (fig3 only)",
    )
    mode.add_argument("--full", action="store_true", help="paper-like settings (slow)")
    mode.add_argument(
        "--paper",
        action="store_true",
        help="the paper's own run, where a figure defines one (fig3: 10^4 iterations at the "
        "authors' settings, 10 seeds; many CPU hours: see docs/ray.md)",
    )
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="intra-op CPU threads (default: 1; images: every core, or "
        "OMP_NUM_THREADS if set; 0: every core)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="skip the runs already recorded in "
        "--out's results.json and continue an interrupted run from its checkpoint",
    )
    p.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="where the independent units (fig2 fits, fig3 settings, images objectives) run: "
        "local (this process, or fig3's worker processes; the default) or ray (one Ray task "
        'per unit; needs pip install "vsm[ray]"; see docs/ray.md)',
    )
    p.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="with --executor ray: the Ray cluster's address (default: RAY_ADDRESS, else a new "
        "local Ray instance on 127.0.0.1)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a field of the figure's config, e.g. --set steps=200 or "
        "--set seeds=0,1,2 (tuples comma-separated); repeatable",
    )
    return p


def _config_class(mod: ModuleType) -> type[FigureConfig]:
    """The figure module's config dataclass (its subclass of :class:`FigureConfig`)."""
    return next(
        v
        for v in vars(mod).values()
        if isinstance(v, type) and issubclass(v, FigureConfig) and v is not FigureConfig
    )


def _parse_value(name: str, typ: Any, text: str) -> Any:
    """``text`` as a value of the annotation ``typ`` (a ``Literal[...]`` must be one of its
    values)."""
    if typing.get_origin(typ) is typing.Literal:
        allowed = typing.get_args(typ)
        if text not in allowed:
            raise ValueError(f"set: {name}: expected one of {allowed}, got {text!r}")
        return text
    if typ is bool:
        return text.lower() in ("1", "true", "yes")
    try:
        return typ(text)
    except ValueError:
        raise ValueError(
            f"set: {name}: expected {getattr(typ, '__name__', typ)}, got {text!r}"
        ) from None


def _apply_overrides(cfg: Any, overrides: Sequence[str]) -> None:
    """Set ``NAME=VALUE`` overrides on a figure config, parsed by the field's annotation."""
    hints = typing.get_type_hints(type(cfg))
    for item in overrides:
        name, sep, text = item.partition("=")
        if not sep or name not in hints:
            names = ", ".join(f.name for f in dataclasses.fields(cfg))
            raise ValueError(f"set: expected NAME=VALUE with NAME one of {names}, got {item!r}")
        typ = hints[name]
        if typing.get_origin(typ) is tuple:
            elem = typing.get_args(typ)[0]
            value: Any = tuple(_parse_value(name, elem, v) for v in text.split(",") if v)
        else:
            value = _parse_value(name, typ, text)
        setattr(cfg, name, value)


def configure(
    name: str,
    *,
    full: bool = False,
    medium: bool = False,
    paper: bool = False,
    seed: int = 0,
    threads: int | None = None,
    overrides: Sequence[str] = (),
) -> tuple[ModuleType, FigureConfig]:
    """(figure module, config) of figure ``name`` in its mode with ``overrides``, checked.

    Raises:
        UsageError: (a ValueError) an unknown figure or mode, a bad ``NAME=VALUE`` override,
            or a config that the figure's ``check_config`` (where it has one) refuses.
    """
    from .._errors import UsageError

    if name not in FIGURES:
        raise UsageError(f"name must be one of {FIGURES}, got {name!r}")
    mod = importlib.import_module(f"vsm.reproduce.{name}")
    cls = _config_class(mod)
    chosen = [m for m, on in (("full", full), ("medium", medium), ("paper", paper)) if on]
    if len(chosen) > 1:
        raise UsageError(f"{', '.join(chosen)}: choose one mode")
    mode = chosen[0] if chosen else "quick"
    if mode not in cls.modes():
        raise UsageError(f"{mode}: figure {name!r} has no {mode} mode (fig3 has one)")
    cfg = cls.preset(mode)
    cfg.seed = seed
    try:
        _apply_overrides(cfg, overrides)
    except (TypeError, ValueError) as e:
        raise UsageError(str(e)) from e
    if threads is not None and hasattr(cfg, "threads"):
        cfg.threads = threads
    check = getattr(mod, "check_config", None)
    if check is not None:
        try:
            check(cfg)
        except (TypeError, ValueError) as e:
            raise UsageError(str(e)) from e
    return mod, cfg


def run(
    name: str,
    out: str,
    *,
    full: bool = False,
    medium: bool = False,
    paper: bool = False,
    seed: int = 0,
    threads: int | None = None,
    resume: bool = False,
    overrides: Sequence[str] = (),
    executor: str = "local",
    address: str | None = None,
) -> dict:
    """Run figure ``name`` in quick (default), medium or paper mode (figures that have one) or
    full mode into folder ``out``; return results.

    ``threads``: intra-op CPU threads (None: the figure's default, 1 except for ``images``);
    ``resume``: skip what ``out/results.json`` already records; ``overrides``: ``NAME=VALUE``
    settings of the figure's config; ``executor``/``address``: where the figure's independent
    units run (:func:`vsm.reproduce.executors.make_executor`; figures without units, fig1, run
    here).
    """
    from .._errors import UsageError
    from ..train.config import num_threads
    from ._common import prepare_out, previous_results

    mod, cfg = configure(
        name,
        full=full,
        medium=medium,
        paper=paper,
        seed=seed,
        threads=threads,
        overrides=overrides,
    )
    accepts = inspect.signature(mod.run).parameters
    if executor != "local" and "executor" not in accepts:
        raise UsageError(
            f"executor: figure {name!r} runs as one piece (no independent units); "
            "use --executor local"
        )
    ex = make_executor(executor, workers=1, address=address)
    # the workloads are many small tensor ops: one thread avoids oversubscription (measured
    # 7 ms vs 60 ms per 2-D training step on a loaded 2-core machine)
    torch.set_num_threads(num_threads(getattr(cfg, "threads", 1 if threads is None else threads)))
    if executor == "local":
        ex = make_executor("local", workers=int(getattr(cfg, "workers", 1)))
    if "executor" in accepts:
        return mod.run(out, cfg, resume=resume, executor=ex)
    if "resume" in accepts:
        return mod.run(out, cfg, resume=resume)
    if resume:  # one-piece figures: skip when complete
        prev = previous_results(prepare_out(out), name, cfg)
        if prev is not None and "seconds" in prev:
            print(f"{name}: already in {out}/results.json (--resume)", file=sys.stderr)
            return prev
    return mod.run(out, cfg)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status (128 + signal number when
    stopped by SIGINT/SIGTERM)."""
    from .._outdir import claim_out_dir
    from ..train.stopping import TrainingInterrupted, catch_signals

    args = _parser().parse_args(argv)
    configure(  # options checked before the folder is touched
        args.name,
        full=args.full,
        medium=args.medium,
        paper=args.paper,
        seed=args.seed,
        threads=args.threads,
        overrides=args.set,
    )
    try:
        with catch_signals(defer=False), claim_out_dir(args.out):
            results = run(
                args.name,
                args.out,
                full=args.full,
                medium=args.medium,
                paper=args.paper,
                seed=args.seed,
                threads=args.threads,
                resume=args.resume,
                overrides=args.set,
                executor=args.executor,
                address=args.address,
            )
    except TrainingInterrupted as e:
        again = " ".join(["vsm reproduce", *(argv if argv is not None else sys.argv[2:])])
        again += "" if args.resume else " --resume"
        kept = Path(args.out) / "results.json"
        where = f"finished runs are in {kept}" if kept.is_file() else "no run had finished yet"
        print(f"vsm reproduce: {e}; {where}; continue with: {again}", file=sys.stderr)
        return e.exit_code
    except UnitsFailed as e:
        again = " ".join(["vsm reproduce", *(argv if argv is not None else sys.argv[2:])])
        again += "" if args.resume else " --resume"
        print(
            f"vsm reproduce: {e}; the finished units are in {args.out}/results.json; run the "
            f"failed ones again with: {again}",
            file=sys.stderr,
        )
        return 1
    summary = {k: v for k, v in results.items() if k in ("figure", "seconds", "summary")}
    print(json.dumps(summary, indent=1, default=str))
    print(f"wrote {args.out}/results.json", file=sys.stderr)
    return 0
