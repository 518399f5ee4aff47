"""Wall time of the paper-length Figure 3 sweep, extrapolated from measured per-iteration costs.

The sweep is ``vsm.reproduce.fig3``'s full preset: both variants, both data sets, all eight
objectives, K_enc ∈ {1, 10} (kl-elbo at 1), 5 seeds batched per setting, batch 1000, the paper's
optimisers and widths (every setting's :class:`vsm.train.TrainConfig` comes from
``vsm.reproduce.fig3.config.train_config``), and ``--iters`` iterations (one decoder update and
K_enc encoder updates each; the paper's run length is 10⁴). For every setting this times
``--measure`` iterations (after one untimed) on each of ``--paths``: ``fast`` (the fast path),
``plain`` (``--no-fast-step``, the autograd path) and ``compiled`` (the fast path with
``compile_step``, as ``--paper`` runs it; its compilation, timed on the untimed first iteration,
is added once per setting), and reports the sum over settings, and that sum divided by ``--workers`` (the
settings spread over that many single-thread worker processes, one per core; the division
assumes balanced workers and one core each). Evaluation is not included.

    python benches/fig3_extrapolate.py                 # 2 workers, 10^4 iterations
    python benches/fig3_extrapolate.py --measure 3 --json out.json
    python benches/fig3_extrapolate.py --paths fast,compiled

Not a test; the load average is printed (per-iteration costs are the minimum over repeats of
``--measure`` iterations, so a busy machine inflates them less than it would a mean).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

os.environ.pop("TRITON_INTERPRET", None)

import torch
from vsm.reproduce.fig3.config import Fig3Config, settings, train_config
from vsm.train import make_trainer


def iteration_seconds(cfg: Any, k_enc: int, measure: int, repeats: int) -> tuple[float, float]:
    """(minimum over ``repeats`` of the mean seconds per iteration (K_enc train steps), seconds
    of the first, untimed iteration)."""
    tr = make_trainer(cfg, progress=False)
    t0 = time.perf_counter()
    for _ in range(k_enc):
        tr.train_step()
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(measure * k_enc):
            tr.train_step()
        best = min(best, (time.perf_counter() - t0) / measure)
    return best, first


PATHS = {"fast": {"fast_step": True}, "plain": {"fast_step": False}}
PATHS["compiled"] = {"fast_step": True, "compile_step": True}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iters", type=int, default=10_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--measure", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=None)
    p.add_argument("--paths", default="fast,plain", help=f"comma-separated, of {sorted(PATHS)}")
    args = p.parse_args(argv)
    paths = [x for x in args.paths.split(",") if x]
    if not paths or any(x not in PATHS for x in paths):
        p.error(f"--paths: expected names from {sorted(PATHS)}, got {args.paths!r}")
    torch.set_num_threads(1)
    fig = Fig3Config.full()
    print(f"load average {os.getloadavg()}")
    rows = []
    total = dict.fromkeys(paths, 0.0)
    for variant, ds, obj, k in settings(fig):
        row: dict[str, Any] = {"variant": variant, "dataset": ds, "objective": obj, "k_enc": k}
        for name in paths:
            cfg = train_config(variant, ds, obj, k, fig.seeds, fig)
            for field, value in PATHS[name].items():
                setattr(cfg, field, value)
            s, first = iteration_seconds(cfg, k, args.measure, args.repeats)
            row[f"{name}_s_per_iter"] = s
            total[name] += s * args.iters
            if name == "compiled":
                row["compile_s"] = max(first - s, 0.0)
                total[name] += row["compile_s"]
        rows.append(row)
        shown = ", ".join(f"{n} {1e3 * row[f'{n}_s_per_iter']:7.1f} ms/iter" for n in paths)
        print(f"{variant:5} {ds:7} {obj:7} K_enc={k:2}: {shown}", flush=True)
    hours = {k: v / 3600 / args.workers for k, v in total.items()}
    shown = ", ".join(f"{n} {h:.2f} h" for n, h in hours.items())
    print(
        f"{len(rows)} settings x {args.iters} iterations, {len(fig.seeds)} seeds batched, "
        f"{args.workers} workers: {shown} (load average now {os.getloadavg()})"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "hours": hours, "args": vars(args)}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
