"""The ``vsm`` command line (API.md "Command line"); also ``python -m vsm``.

Subcommands:

- ``vsm train --objective kl-m1 --dataset sparse [--steps N | --epochs E] ...``: trains with
  :class:`vsm.train.Trainer` (progress bar on a terminal, periodic loss lines, checkpoints,
  metrics JSON per evaluation, loss-curve PNG in ``--out``). Its options are generated from
  :class:`vsm.train.TrainConfig`'s fields (:func:`add_config_options`). SIGINT/SIGTERM write a
  checkpoint of the last completed iteration and exit with 130/143 and a one-line message;
  ``--resume CKPT`` continues exactly; ``--seeds 0-9`` (or ``0,3,7``) trains one replica per seed
  in one batched run (:class:`vsm.train.SeedsTrainer`);
- ``vsm eval CHECKPOINT [--n-is K]``: test metrics of a checkpoint as JSON (−ELBO, MSE, MMD²,
  posterior FD, and with K > 0 the IS NLL, ESS and SM loss);
- ``vsm reproduce ...`` and ``vsm bench ...``: delegated to :func:`vsm.reproduce.main` and
  :func:`vsm.bench.main` (imported only when used).

:func:`main` takes an argv list (tests call it in-process) and returns the exit status.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import types
import typing
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]


def add_config_options(p: argparse.ArgumentParser, config_cls: type) -> None:
    """Add one ``--field-name`` option per field of the dataclass ``config_cls``.

    Help text from the field's ``metadata["help"]`` (plus its default); type from the annotation
    (``int``, ``float``, ``str``, ``bool`` → ``--x/--no-x``; ``X | None`` as X); choices from a
    ``Literal[...]`` annotation or ``metadata["choices"]``; ``metadata["group"]`` makes options
    mutually exclusive; ``metadata["cli_default"]`` describes a command-line-only default;
    ``metadata["parse"]`` (with ``metadata["metavar"]``) parses a field's own syntax. Every
    option defaults to ``argparse.SUPPRESS``: only the options given appear in the namespace, and
    the dataclass's own defaults apply to the rest (one list of defaults).
    """
    from .train.config import choices

    hints = typing.get_type_hints(config_cls)
    groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for f in dataclasses.fields(config_cls):
        meta = f.metadata
        typ = hints[f.name]
        allowed = choices(typ) or tuple(meta.get("choices", ()))
        if typing.get_origin(typ) in (types.UnionType, typing.Union):
            typ = next(a for a in typing.get_args(typ) if a is not type(None))
        shown = meta.get("cli_default", f.default)
        help_text = meta.get("help", "")
        if shown is not None and "default" not in help_text:
            help_text += f" (default: {shown})"
        kw: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text, "dest": f.name}
        if typ is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif "parse" in meta:  # a field with its own text syntax (``seeds``: "0-9", "0,3,7")
            kw["type"] = _argparse_type(meta["parse"])
            kw["metavar"] = meta.get("metavar", f.name.upper())
        else:
            kw["type"] = typ if typing.get_origin(typ) is None else type(allowed[0])
            if allowed:
                kw["choices"] = allowed
            kw["metavar"] = None if allowed else f.name.upper()
        target: Any = p
        if "group" in meta:
            if meta["group"] not in groups:
                groups[meta["group"]] = p.add_mutually_exclusive_group()
            target = groups[meta["group"]]
        target.add_argument("--" + f.name.replace("_", "-"), **kw)


def _argparse_type(parse: Any) -> Any:
    """``parse`` as an argparse type whose ValueError/TypeError messages reach the user."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except (TypeError, ValueError) as e:
            raise argparse.ArgumentTypeError(str(e)) from e

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def _train_parser(sub: argparse._SubParsersAction) -> None:
    from .train import TrainConfig

    p = sub.add_parser(
        "train",
        help="train a Gaussian VAE (Algorithm 1 / bi-level)",
        description="Train a Gaussian VAE. Every option but the last four is a "
        "field of vsm.train.TrainConfig (dashes → underscores).",
    )
    add_config_options(p, TrainConfig)
    p.add_argument(
        "--out",
        default=None,
        help="output folder (default: runs/<objective>-<data>"
        "-s<seed>, or the checkpoint's folder with --resume)",
    )
    p.add_argument(
        "--resume",
        default=None,
        metavar="CKPT",
        help="continue from a checkpoint, exactly (the options given override its "
        "config, e.g. --steps)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _config_args(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields given on the command line."""
    from .train import TrainConfig

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return {k: v for k, v in vars(args).items() if k in names}


def _without_histograms(res: Any) -> Any:
    """``res`` without its ``posterior_sd_*`` entries, at any depth (a many-seeds result nests
    one result per replica)."""
    if isinstance(res, dict):
        return {
            k: _without_histograms(v) for k, v in res.items() if not k.startswith("posterior_sd_")
        }
    if isinstance(res, list):
        return [_without_histograms(v) for v in res]
    return res


def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .train import (
        TrainConfig,
        TrainingDiverged,
        format_seeds,
        make_trainer,
        trainer_from_checkpoint,
    )

    given = _config_args(args)
    progress = False if args.quiet else None
    log = functools.partial(print, flush=True)
    if args.resume:
        out = args.out or os.path.dirname(os.path.abspath(args.resume))
        if "steps" in given:  # --steps replaces the checkpoint's length, even if it was epochs
            given.setdefault("epochs", None)
        trainer = trainer_from_checkpoint(
            args.resume, overrides=given, out_dir=out, progress=progress, log=log
        )
        if trainer.rank == 0:
            print(f"resumed {args.resume} at step {trainer.step}", flush=True)
    else:
        given.setdefault("device", "cuda" if torch.cuda.is_available() else "cpu")
        cfg = TrainConfig(**given)
        tag = cfg.seed if cfg.seeds is None else format_seeds(cfg.seeds)
        out = args.out or os.path.join("runs", f"{cfg.objective}-{cfg.dataset}-s{tag}")
        trainer = make_trainer(cfg, out_dir=out, progress=progress, log=log)
    try:
        res = trainer.run()
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if trainer.rank != 0:  # data-parallel (torchrun): rank 0 reports
        return 0
    print(json.dumps(_without_histograms(res), indent=1))
    print(f"wrote {out}/checkpoint.pt, {out}/metrics.json, {out}/loss.png")
    return 0


def _eval_one(state: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Metrics of one single-run checkpoint state (``vsm eval``)."""
    import torch

    from .metrics import evaluate
    from .train import TrainConfig, Trainer

    cfg = TrainConfig.from_dict(state["config"])
    cfg.device = "cpu" if not torch.cuda.is_available() else cfg.device
    if args.n_test is not None:
        cfg.n_test = args.n_test
    trainer = Trainer(cfg, progress=False)
    trainer.load_state_dict(state)
    x = trainer.data.test.to(trainer.device, trainer.dtype)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        res = evaluate(
            trainer.model,
            x,
            eta=trainer.cfg.eta,
            n_is=args.n_is,
            is_proposal=args.is_proposal or trainer.cfg.is_proposal,
            histograms=not args.no_hist,
        )
    return {
        "checkpoint": args.checkpoint,
        "step": trainer.step,
        "objective": cfg.objective,
        "dataset": cfg.dataset,
        "seed": cfg.seed,
        **res,
    }


def _cmd_eval(args: argparse.Namespace) -> int:
    from .train import load_checkpoint, replica_checkpoint

    state = load_checkpoint(args.checkpoint)
    if "replicas" in state:  # a many-seeds checkpoint (vsm train --seeds): every replica, or one
        seeds = sorted(state["replicas"]) if args.replica is None else [args.replica]
        reps = {str(s): _eval_one(replica_checkpoint(state, s), args) for s in seeds}
        res: dict[str, Any] = (
            reps[str(seeds[0])]
            if args.replica is not None
            else {"checkpoint": args.checkpoint, "replicas": reps}
        )
    elif args.replica is not None:
        raise SystemExit(f"vsm eval: --replica: {args.checkpoint} is a single-run checkpoint")
    else:
        res = _eval_one(state, args)
    text = json.dumps(res, indent=1)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    print(text)
    return 0


def _delegate(module: str, argv: list[str]) -> int:
    import importlib

    mod = importlib.import_module(f"vsm.{module}")
    rc = mod.main(argv)
    return int(rc or 0)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``vsm`` (train and eval; reproduce/bench are passed through)."""
    from .train.config import TrainConfig, choices

    hints = typing.get_type_hints(TrainConfig)
    parser = argparse.ArgumentParser(prog="vsm", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    e = sub.add_parser("eval", help="evaluate a checkpoint → JSON")
    e.add_argument("checkpoint")
    e.add_argument("--n-is", type=int, default=1000, help="IS samples per datum (0: skip IS)")
    e.add_argument("--is-proposal", choices=choices(hints["is_proposal"]), default=None)
    e.add_argument("--n-test", type=int, default=None)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--no-hist", action="store_true", help="omit the posterior-SD histograms")
    e.add_argument(
        "--replica",
        type=int,
        default=None,
        metavar="SEED",
        help="of a many-seeds checkpoint (vsm train --seeds), evaluate only this "
        "replica (default: every replica)",
    )
    e.add_argument("--out", default=None, help="also write the JSON here")
    sub.add_parser("reproduce", help="paper figures (vsm.reproduce)", add_help=False)
    sub.add_parser(
        "bench", help="benchmark table; --check: the acceptance run (vsm.bench)", add_help=False
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``vsm`` command line with ``argv`` (default ``sys.argv[1:]``); returns the status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("reproduce", "bench"):
        return _delegate(argv[0], argv[1:])
    from .train.stopping import TrainingInterrupted, catch_signals

    try:
        with catch_signals(defer=False):
            args = build_parser().parse_args(argv)
            if args.command == "train":
                return _cmd_train(args)
            return _cmd_eval(args)
    except TrainingInterrupted as e:
        hint = f"; continue with: vsm train --resume {e.checkpoint}" if e.checkpoint else ""
        print(f"vsm: {e}{hint}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("vsm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
