"""The ``vsm`` command line (API.md "Command line"); also ``python -m vsm``.

Subcommands:
- ``vsm train --objective kl-m1 --dataset sparse [--steps N | --epochs E] ...``: trains with
  :class:`vsm.train.Trainer` (progress bar on a terminal, periodic loss lines, checkpoints,
  metrics JSON per evaluation, loss-curve PNG in ``--out``);
- ``vsm eval CHECKPOINT [--n-is K]``: test metrics of a checkpoint as JSON (−ELBO, MSE, MMD²,
  posterior FD, and with K > 0 the IS NLL, ESS and SM loss);
- ``vsm reproduce ...`` and ``vsm bench ...``: delegated to :func:`vsm.reproduce.main` and
  :func:`vsm.bench.main` (imported only when used).

:func:`main` takes an argv list (tests call it in-process) and returns the exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _train_parser(sub: argparse._SubParsersAction) -> None:
    from .data import DATASETS
    from .train import OBJECTIVES

    p = sub.add_parser("train", help="train a Gaussian VAE (Algorithm 1 / bi-level)")
    p.add_argument("--objective", choices=OBJECTIVES, default="kl-m1")
    p.add_argument("--dataset", choices=DATASETS, default="sparse")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, default=None, help="iterations (minibatches); default 1000")
    g.add_argument("--epochs", type=int, default=None, help="epochs (toys: 100 iterations each)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--k-enc", type=int, default=1, help="encoder updates per decoder update")
    p.add_argument("--k-bi", type=int, default=0, help="unrolled (bi-level) encoder steps")
    p.add_argument("--bi-lr", type=float, default=None, help="SGD rate of the unrolled steps")
    p.add_argument("--n-samples", type=int, default=1, help="posterior samples N per datum")
    p.add_argument("--eta", type=float, default=None, help="input-noise SD (toys 0, images 0.1)")
    p.add_argument("--fd-reparam", action="store_true", help="reparametrised FD inference")
    p.add_argument("--width", type=int, default=30, help="MLP hidden width")
    p.add_argument("--latent-dim", type=int, default=None)
    p.add_argument("--ngf", type=int, default=16)
    p.add_argument("--ndf", type=int, default=16)
    p.add_argument("--enc-optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument("--enc-lr", type=float, default=1e-3)
    p.add_argument("--dec-lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--n-test", type=int, default=5000, help="toy test-set size")
    p.add_argument("--data-dir", default=None, help="folder of MNIST/Fashion-MNIST IDX files")
    p.add_argument("--eval-every", type=int, default=0, help="evaluate every N iterations")
    p.add_argument("--n-is", type=int, default=0, help="IS samples for the final evaluation")
    p.add_argument("--is-proposal", choices=("q", "prior"), default=None)
    p.add_argument("--log-every", type=int, default=50, help="print the mean loss every N steps")
    p.add_argument("--out", default=None, help="output folder (default runs/<objective>-<data>)")
    p.add_argument("--resume", default=None, metavar="CKPT", help="continue from a checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .train import TrainConfig, Trainer, TrainingDiverged

    out = args.out or os.path.join("runs", f"{args.objective}-{args.dataset}-s{args.seed}")
    progress = False if args.quiet else None
    if args.resume:
        overrides = {}
        if args.steps is not None:
            overrides["steps"] = args.steps
        if args.epochs is not None:
            overrides["epochs"] = args.epochs
        trainer = Trainer.from_checkpoint(
            args.resume, overrides=overrides, out_dir=out, progress=progress, log=print
        )
        if trainer.rank == 0:
            print(f"resumed {args.resume} at step {trainer.step}")
    else:
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        cfg = TrainConfig(
            objective=args.objective,
            dataset=args.dataset,
            steps=args.steps if args.steps is not None else 1000,
            epochs=args.epochs,
            batch_size=args.batch_size,
            n_samples=args.n_samples,
            k_enc=args.k_enc,
            k_bi=args.k_bi,
            bi_lr=args.bi_lr,
            eta=args.eta,
            fd_reparam=args.fd_reparam,
            latent_dim=args.latent_dim,
            width=args.width,
            ngf=args.ngf,
            ndf=args.ndf,
            enc_optimizer=args.enc_optimizer,
            enc_lr=args.enc_lr,
            dec_lr=args.dec_lr,
            seed=args.seed,
            dtype=args.dtype,
            device=device,
            n_test=args.n_test,
            data_dir=args.data_dir,
            eval_every=args.eval_every,
            n_is=args.n_is,
            is_proposal=args.is_proposal,
            log_every=args.log_every,
        )
        trainer = Trainer(cfg, out_dir=out, progress=progress, log=print)
    try:
        res = trainer.run()
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if trainer.rank != 0:  # data-parallel (torchrun): rank 0 reports
        return 0
    summary = {k: v for k, v in res.items() if not k.startswith("posterior_sd_")}
    print(json.dumps(summary, indent=1))
    print(f"wrote {out}/checkpoint.pt, {out}/metrics.json, {out}/loss.png")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from .metrics import evaluate
    from .train import TrainConfig, Trainer, load_checkpoint

    state = load_checkpoint(args.checkpoint)
    cfg = TrainConfig(**state["config"])
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
    res = {"checkpoint": args.checkpoint, "step": trainer.step, "objective": cfg.objective,
           "dataset": cfg.dataset, **res}
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
    parser = argparse.ArgumentParser(prog="vsm", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    e = sub.add_parser("eval", help="evaluate a checkpoint → JSON")
    e.add_argument("checkpoint")
    e.add_argument("--n-is", type=int, default=1000, help="IS samples per datum (0: skip IS)")
    e.add_argument("--is-proposal", choices=("q", "prior"), default=None)
    e.add_argument("--n-test", type=int, default=None)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--no-hist", action="store_true", help="omit the posterior-SD histograms")
    e.add_argument("--out", default=None, help="also write the JSON here")
    sub.add_parser("reproduce", help="paper figures (vsm.reproduce)", add_help=False)
    sub.add_parser("bench", help="benchmark table; --check: the acceptance run (vsm.bench)",
                   add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``vsm`` command line with ``argv`` (default ``sys.argv[1:]``); returns the status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("reproduce", "bench"):
        return _delegate(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "train":
        return _cmd_train(args)
    return _cmd_eval(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
