"""Merging fig3 sweeps that ran different seeds of one configuration (:func:`merge`), e.g. seeds
0–4 on one machine and 5–9 on another, into one ``results.json``
(``python -m vsm.reproduce.fig3 merge A B … --out DIR``).

Each seed's runs depend only on the seed (its initialisation, data stream and evaluation
samples), so a setting's seeds may come from different sweeps, machines or executors. The
files must share every setting that changes the numbers (the configuration less ``seeds`` and
the free ``threads``, ``workers`` and ``compile_step``, as for ``--resume``) and may not hold the
same run twice. The merged file is ``complete`` when every setting has a run for every seed;
otherwise it is a partial one, reported with ``--partial``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..._errors import UsageError
from .config import settings, sort_runs
from .report import config_of, summarize

__all__ = ["merge"]

# configuration fields that may differ between the merged files (none changes the numbers)
FREE = ("seeds", "threads", "workers", "compile_step")
_RUN_ID = ("variant", "dataset", "objective", "k_enc", "seed")


def merge(parts: Sequence[dict[str, Any]], names: Sequence[str] | None = None) -> dict[str, Any]:
    """One fig3 ``results.json`` (summarised) from sweeps of the same configuration that ran
    different seeds.

    Args:
        parts: two or more fig3 results (as read from ``results.json``).
        names: what to call each part in errors (e.g. its path); default "results 1", ….

    Returns:
        The merged results: the runs of all parts (sorted by setting, then seed), the seeds'
        union in ``config.seeds``, ``seconds`` summed (machine time of all parts),
        ``variants_run`` of the first part, ``complete`` when every setting of those variants has
        a run for every seed, and the table, claims and verdicts of
        :func:`vsm.reproduce.fig3.report.summarize`.

    Raises:
        UsageError: fewer than two parts, configurations that differ in a field that changes
            the numbers, different estimator families run, or a run (setting and seed) in two
            parts.
    """
    names = list(names) if names is not None else [f"results {i + 1}" for i in range(len(parts))]
    if len(parts) < 2:
        raise UsageError(f"results: expected at least two files to merge, got {len(parts)}")
    if len(names) != len(parts):
        raise UsageError(f"names: expected {len(parts)} names, got {len(names)}")
    first = parts[0]
    base = {k: v for k, v in first.get("config", {}).items() if k not in FREE}
    for part, name in zip(parts[1:], names[1:], strict=True):
        other = {k: v for k, v in part.get("config", {}).items() if k not in FREE}
        if other != base:
            diff = sorted(k for k in set(other) | set(base) if other.get(k) != base.get(k))
            raise UsageError(
                f"results: {name} was made with other settings than {names[0]} "
                f"({', '.join(diff)}); only the seeds may differ"
            )
        if part.get("variants_run") != first.get("variants_run"):
            raise UsageError(
                f"results: {name} ran the estimator families {part.get('variants_run')}, "
                f"{names[0]} {first.get('variants_run')}"
            )
    runs: list[dict[str, Any]] = []
    origin: dict[tuple[Any, ...], str] = {}
    for part, name in zip(parts, names, strict=True):
        for r in part["runs"]:
            key = tuple(r[k] for k in _RUN_ID)
            if key in origin:
                raise UsageError(
                    f"results: {name} and {origin[key]} both hold the run {key[1]} {key[2]} "
                    f"K_enc={key[3]} [{key[0]}] seed {key[4]}; merge sweeps of different seeds"
                )
            origin[key] = name
            runs.append(r)
    seeds = sorted({int(s) for p in parts for s in p["config"]["seeds"]})
    config = {**first["config"], "seeds": seeds}
    merged: dict[str, Any] = {
        "figure": "fig3",
        "config": config,
        "runs": runs,
        "variants_run": list(first.get("variants_run", [])),
        "batched_seeds": all(bool(p.get("batched_seeds")) for p in parts),
        "seconds": sum(float(p.get("seconds", 0.0)) for p in parts),
        "merged_from": [
            {"name": n, "seeds": list(p["config"]["seeds"]), "seconds": p.get("seconds")}
            for p, n in zip(parts, names, strict=True)
        ],
    }
    failed = {k: v for p in parts for k, v in (p.get("failed") or {}).items()}
    if failed:
        merged["failed"] = failed
    cfg = config_of(merged)
    every = [st for st in settings(cfg) if st[0] in merged["variants_run"]]
    sort_runs(runs, cfg)
    have = {tuple(r[k] for k in _RUN_ID) for r in runs}
    missing = sum((*st, s) not in have for st in every for s in seeds)
    merged["complete"] = missing == 0
    if missing:
        merged["runs_missing"] = missing
    return summarize(merged, cfg)
