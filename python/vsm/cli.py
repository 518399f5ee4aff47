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
import traceback
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

from ._errors import BadFileError, OutDirBusy, UsageError

__all__ = ["ArgumentParser", "main", "report_errors"]


class ArgumentParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose errors raise :class:`UsageError` (one line from
    :func:`report_errors`, exit status 2) instead of printing the usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


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


@contextmanager
def _usage() -> Iterator[None]:
    """Inside the block, a ValueError/TypeError of option checking is a :class:`UsageError`
    (a field name at the start of the message becomes its option, ``dec_lr:`` → ``--dec-lr:``)."""
    try:
        yield
    except BadFileError:
        raise
    except (TypeError, ValueError) as e:
        name, sep, rest = str(e).partition(": ")
        if sep and name.isidentifier() and name not in ("path", "out", "state", "config"):
            raise UsageError(f"--{name.replace('_', '-')}: {rest}") from e
        raise UsageError(str(e)) from e


def _resume_config(args: argparse.Namespace, given: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(config, checkpoint state) of ``vsm train --resume``, checked before any work starts."""
    from .train import TrainConfig, load_checkpoint
    from .train.checkpoint import check_resume_overrides

    state = load_checkpoint(args.resume)
    with _usage():
        if "steps" in given:  # --steps replaces the checkpoint's length, even if it was epochs
            given.setdefault("epochs", None)
        check_resume_overrides(state, given, args.resume)
        cfg = TrainConfig.from_dict({**state["config"], **given})
        cfg.resolved()
    return cfg, state


def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .train import (
        TrainConfig,
        TrainingDiverged,
        format_seeds,
        make_trainer,
    )

    given = _config_args(args)
    progress = False if args.quiet else None
    log = functools.partial(print, flush=True)
    # every check before the data set is built: options, the checkpoint, the output folder
    if args.resume:
        cfg, state = _resume_config(args, given)
        out = args.out or os.path.dirname(os.path.abspath(args.resume))
    else:
        given.setdefault("device", "cuda" if torch.cuda.is_available() else "cpu")
        with _usage():
            cfg = TrainConfig(**given)
            cfg.resolved()
        tag = cfg.seed if cfg.seeds is None else format_seeds(cfg.seeds)
        out = args.out or os.path.join("runs", f"{cfg.objective}-{cfg.dataset}-s{tag}")
    from ._outdir import claim_out_dir

    with claim_out_dir(out, lock=int(os.environ.get("RANK", "0")) == 0):
        trainer = make_trainer(cfg, out_dir=out, progress=progress, log=log)
        if args.resume:
            trainer.load_state_dict(state)
            if trainer.rank == 0:
                print(f"resumed {args.resume} at step {trainer.step}", flush=True)
        try:
            res = trainer.run()
        except TrainingDiverged as e:  # every rank stops at the same step
            trainer.close()
            raise _RunFailed(str(e)) from e
        trainer.close()  # data-parallel: the process group ends while Python is alive
    if trainer.rank != 0:  # data-parallel (torchrun): rank 0 reports
        return 0
    print(json.dumps(_without_histograms(res), indent=1))
    print(f"wrote {out}/checkpoint.pt, {out}/metrics.json, {out}/loss.png")
    return 0


class _RunFailed(RuntimeError):
    """A run that stopped for a reason the user can act on (e.g. divergence): exit status 1."""


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

    with _usage():
        _check_counts(n_is=(args.n_is, 0), n_test=(args.n_test, 1))
    if args.out:
        _check_writable_file(args.out)
    state = load_checkpoint(args.checkpoint)
    if "replicas" in state:  # a many-seeds checkpoint (vsm train --seeds): every replica, or one
        seeds = sorted(state["replicas"]) if args.replica is None else [args.replica]
        try:
            for s in seeds:
                replica_checkpoint(state, s)
        except ValueError as e:
            raise UsageError(f"--replica: {str(e).partition(': ')[2]} ({args.checkpoint})") from e
        reps = {str(s): _eval_one(replica_checkpoint(state, s), args) for s in seeds}
        res: dict[str, Any] = (
            reps[str(seeds[0])]
            if args.replica is not None
            else {"checkpoint": args.checkpoint, "replicas": reps}
        )
    elif args.replica is not None:
        raise UsageError(f"--replica: a single-run checkpoint has no replicas ({args.checkpoint})")
    else:
        res = _eval_one(state, args)
    text = json.dumps(res, indent=1)
    if args.out:
        from .train.checkpoint import atomic_json

        atomic_json(res, args.out)
    print(text)
    return 0


def _check_counts(**values: tuple[int | None, int]) -> None:
    """Each ``name=(value, minimum)``: an int ≥ minimum, or None (ValueError otherwise)."""
    for name, (v, least) in values.items():
        if v is not None and v < least:
            raise ValueError(f"{name}: expected an int ≥ {least}, got {v}")


def _check_writable_file(path: str) -> None:
    """An OSError now, rather than after the work, if ``path`` cannot be written: its folder
    must exist and be writable, and ``path`` must not be a folder."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(21, "Is a directory", path)
    if not os.path.isdir(folder):
        raise FileNotFoundError(2, "No such folder", folder)
    if not os.access(folder, os.W_OK):
        raise PermissionError(13, "Permission denied", folder)


def _cmd_convert(args: argparse.Namespace) -> int:
    """``vsm convert SRC DST``: a trusted checkpoint of an older vsm rewritten as plain data."""
    from .train.checkpoint import convert_checkpoint

    if os.path.abspath(args.src) == os.path.abspath(args.dst):
        raise UsageError(f"convert: DST must differ from SRC ({args.dst})")
    _check_writable_file(args.dst)
    state = convert_checkpoint(args.src, args.dst)
    print(f"wrote {args.dst} (step {state['step']}); vsm loads it as data")
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
    parser = ArgumentParser(prog="vsm", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an error (also: VSM_DEBUG=1); anywhere on the line",
    )
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
    c = sub.add_parser(
        "convert",
        help="rewrite a trusted older checkpoint as plain data",
        description="Rewrite a checkpoint that vsm refuses to load because it holds Python "
        "objects (e.g. one written by an older vsm) as plain data. SRC is unpickled in full, "
        "which can run code: only convert files you trust.",
    )
    c.add_argument("src", help="the checkpoint to convert (trusted)")
    c.add_argument("dst", help="where to write the converted checkpoint")
    sub.add_parser("reproduce", help="paper figures (vsm.reproduce)", add_help=False)
    sub.add_parser(
        "bench", help="benchmark table; --check: the acceptance run (vsm.bench)", add_help=False
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``vsm`` command line with ``argv`` (default ``sys.argv[1:]``); returns the status.

    Errors are reported by :func:`report_errors`: one line for a user error (exit status 2 for
    a usage error, 1 for a runtime one), a traceback for a bug; ``--debug`` (anywhere in
    ``argv``) or ``VSM_DEBUG=1`` shows the traceback of every error.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    return report_errors(lambda: _run(argv), debug=debug)


def _run(argv: list[str]) -> int:
    if argv and argv[0] in ("reproduce", "bench"):
        return _delegate(argv[0], argv[1:])
    from .train.stopping import TrainingInterrupted, catch_signals

    try:
        with catch_signals(defer=False):
            args = build_parser().parse_args(argv)
            if args.command == "train":
                return _cmd_train(args)
            if args.command == "convert":
                return _cmd_convert(args)
            return _cmd_eval(args)
    except TrainingInterrupted as e:
        hint = f"; continue with: vsm train --resume {e.checkpoint}" if e.checkpoint else ""
        print(f"vsm: {e}{hint}", file=sys.stderr)
        return e.exit_code


def report_errors(run: Callable[[], int], *, debug: bool = False) -> int:
    """``run()``'s exit status, with its errors reported on stderr.

    A user error prints ``vsm: error: <what> (<value or file>)`` on one line: a bad option
    (:class:`UsageError`, argparse's errors; status 2), a bad file (:class:`BadFileError`), a
    file or folder that cannot be read or written (:class:`OSError`), a busy output folder or a
    run that failed for a reason the user can act on (status 1). Any other exception is a bug:
    its traceback and a line saying so (status 1). ``debug`` (or ``VSM_DEBUG=1``) adds the
    traceback to every error. Ctrl-C outside a run prints ``vsm: interrupted`` (status 130).
    """
    debug = debug or os.environ.get("VSM_DEBUG", "") not in ("", "0")
    try:
        return run()
    except KeyboardInterrupt:
        print("vsm: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 (every error ends here, as one line or a bug report)
        line, status = _user_error(e)
        if line is None:
            traceback.print_exc()
            print(
                f"vsm: internal error: {type(e).__name__}: {e}\n"
                "vsm: this is a bug in vsm; please report it with the traceback above",
                file=sys.stderr,
            )
            return 1
        if debug:
            traceback.print_exc()
        print(f"vsm: error: {line}", file=sys.stderr)
        return status


def _user_error(e: BaseException) -> tuple[str | None, int]:
    """(one-line message, exit status) of a user error; (None, 1) for a bug."""
    if isinstance(e, UsageError):
        return _one_line(str(e)), 2
    if isinstance(e, BadFileError):
        return _one_line(e.line), 1
    if isinstance(e, OSError) and not isinstance(e, (ConnectionError, TimeoutError)):
        if e.filename is not None:
            where = f"{e.filename}" + (f" -> {e.filename2}" if e.filename2 else "")
            return _one_line(f"{e.strerror or e} ({where})"), 1
        return _one_line(str(e)), 1
    if isinstance(e, (OutDirBusy, _RunFailed)):
        return _one_line(str(e)), 1
    return None, 1


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
