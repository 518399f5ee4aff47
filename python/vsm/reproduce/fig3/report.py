"""Figure 3's tables and claims: the per-setting :func:`table`, the paper's claims
(:class:`Claim`, :func:`judge`), their :func:`overall_verdicts`, and :func:`summarize`, which
adds all of them to a (complete or partial) ``results.json``. The figure is in
:mod:`.figure`, the markdown section and ``python -m vsm.reproduce.fig3 render`` in
:mod:`.markdown`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import claims as C
from .config import Fig3Config, settings

# ------------------------------------------------------------------------------ tables & claims


def _values(
    runs: Sequence[dict[str, Any]], variant: str, dataset: str, objective: str, k_enc: int, key: str
) -> dict[int, float | None]:
    """{seed: value} of one setting (None for a diverged run); kl-elbo ignores ``k_enc``."""
    out: dict[int, float | None] = {}
    for r in runs:
        if (r["variant"], r["dataset"], r["objective"]) != (variant, dataset, objective):
            continue
        if objective != "kl-elbo" and r["k_enc"] != k_enc:
            continue
        out[r["seed"]] = None if r.get("diverged") else r.get(key)
    return out


def table(runs: Sequence[dict[str, Any]], cfg: Fig3Config) -> list[dict[str, Any]]:
    """One row per (variant, dataset, objective, K_enc): mean ± s.e. over seeds of the NLL and
    SM loss, σ² and the collapse diagnostics, and how many runs converged / diverged."""
    rows = []
    for v, ds, obj, k in settings(cfg):
        sel = [
            r
            for r in runs
            if (r["variant"], r["dataset"], r["objective"], r["k_enc"]) == (v, ds, obj, k)
        ]
        if not sel:
            continue
        ok = [r for r in sel if not r["diverged"]]
        row: dict[str, Any] = {
            "variant": v,
            "dataset": ds,
            "objective": obj,
            "k_enc": k,
            "n_runs": len(sel),
            "n_diverged": len(sel) - len(ok),
            "n_converged": sum(bool(r["converged"]) for r in sel),
            "iterations": [r["iterations"] for r in sel],
        }
        for key in ("is_nll", "sm_loss", "sigma2", "active_dims"):
            m, se, _ = C.mean_se(r[key] for r in ok)
            row[f"{key}_mean"], row[f"{key}_se"] = m, se
        row["post_sd_mean"] = C.mean_se(float(np.mean(r["post_sd"])) for r in ok)[0]
        row["mu_spread_min_mean"] = C.mean_se(float(np.min(r["mu_spread"])) for r in ok)[0]
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Claim:
    """One claim of the paper's §5.1: ``a`` versus ``b`` (objective names) compared by ``kind``
    (:mod:`vsm.reproduce.claims`) on the paired test-NLL differences A − B. ``k`` says which
    K_enc: "max" (the largest run for both), or "min-vs-max" (A at the smallest K_enc, B at the
    largest, same objective)."""

    id: str
    text: str
    kind: str
    a: str
    b: str
    k: str = "max"


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "elbo-m1",
        "“The ELBO objective (kl-ELBO) and kl-L_θ produced almost equally good results”",
        "equal",
        "kl-m1",
        "kl-elbo",
    ),
    Claim(
        "k-enc",
        "“both the NLL and FD decrease as the number of encoder updates increases” (kl-L_θ)",
        "better",
        "kl-m1",
        "kl-m1",
        "min-vs-max",
    ),
    Claim("fd-m1", "“fd-L_θ is slightly worse”", "slightly_worse", "fd-m1", "kl-m1"),
    Claim(
        "kl-m2",
        "“The objectives involving L_S … could not fit the model well” (kl-L_S)",
        "much_worse",
        "kl-m2",
        "kl-m1",
    ),
    Claim("fd-m2", "… (fd-L_S)", "much_worse", "fd-m2", "kl-m1"),
    Claim(
        "kl-m3",
        "“The objectives involving … L_B could not fit the model well” (kl-L_B)",
        "much_worse",
        "kl-m3",
        "kl-m1",
    ),
    Claim("fd-m3", "… (fd-L_B)", "much_worse", "fd-m3", "kl-m1"),
    Claim(
        "fae",
        "§5: “optimizing the joint FD as in Fisher autoencoder [7] did not give any "
        "reasonable results”",
        "much_worse",
        "fae",
        "kl-m1",
    ),
)
"""The paper's §5.1 claims about Figure 3 that :func:`judge` tests, in table order."""


def _ks(runs: Sequence[dict[str, Any]], variant: str, dataset: str, objective: str) -> list[int]:
    return sorted(
        {
            r["k_enc"]
            for r in runs
            if (r["variant"], r["dataset"], r["objective"]) == (variant, dataset, objective)
        }
    )


def judge(runs: Sequence[dict[str, Any]], cfg: Fig3Config) -> list[dict[str, Any]]:
    """The claim table: for every claim of :data:`CLAIMS` and data set, each variant's paired
    NLL (and SM-loss) difference, its outcome, and the verdict (:func:`vsm.reproduce.claims.verdict`). Claims whose objectives were not run are left out."""
    th = cfg.thresholds()
    rows = []
    for cl in CLAIMS:
        for ds in cfg.datasets:
            per: dict[str, Any] = {}
            for v in cfg.variants:
                ka_all, kb_all = _ks(runs, v, ds, cl.a), _ks(runs, v, ds, cl.b)
                if not ka_all or not kb_all:
                    continue
                if cl.k == "min-vs-max":  # the same objective at its smallest and largest K_enc
                    if len(ka_all) < 2:
                        continue
                    ka, kb = ka_all[0], ka_all[-1]
                elif cl.b == "kl-elbo":  # the K_enc-free baseline
                    ka, kb = ka_all[-1], 1
                else:  # the largest K_enc run for both
                    common = sorted(set(ka_all) & set(kb_all))
                    if not common:
                        continue
                    ka = kb = common[-1]
                nll = C.paired(
                    _values(runs, v, ds, cl.a, ka, "is_nll"),
                    _values(runs, v, ds, cl.b, kb, "is_nll"),
                    level=th.level,
                )
                sm = C.paired(
                    _values(runs, v, ds, cl.a, ka, "sm_loss"),
                    _values(runs, v, ds, cl.b, kb, "sm_loss"),
                    level=th.level,
                )
                per[v] = {
                    "k_a": ka,
                    "k_b": kb,
                    "nll": nll.as_dict(),
                    "sm": sm.as_dict(),
                    "outcome": C.outcome(cl.kind, nll, th),
                }
            if not per:
                continue
            rows.append(
                {
                    "claim": cl.id,
                    "text": cl.text,
                    "kind": cl.kind,
                    "a": cl.a,
                    "b": cl.b,
                    "dataset": ds,
                    "variants": per,
                    "verdict": C.verdict({v: p["outcome"] for v, p in per.items()}),
                }
            )
    return rows


def overall_verdicts(claim_rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One verdict per claim across data sets (:func:`vsm.reproduce.claims.overall`)."""
    out = []
    for cl in CLAIMS:
        rows = [r for r in claim_rows if r["claim"] == cl.id]
        if rows:
            per = {r["dataset"]: {v: p["outcome"] for v, p in r["variants"].items()} for r in rows}
            out.append({"claim": cl.id, "text": cl.text, "verdict": C.overall(per)})
    return out


def claim_settings(cfg: Fig3Config) -> set[tuple[str, str, str, int]]:
    """The (variant, dataset, objective, K_enc) settings that :func:`judge` needs for some claim
    of :data:`CLAIMS`, as :func:`judge` picks them: both K_enc of a "min-vs-max" claim, K_enc = 1
    for kl-elbo, else the largest K_enc the two objectives share. The other settings of
    :func:`~vsm.reproduce.fig3.config.settings` only add to the figure and the table."""
    need: set[tuple[str, str, str, int]] = set()
    for cl in CLAIMS:
        if cl.a not in cfg.objectives or cl.b not in cfg.objectives:
            continue
        ka_all, kb_all = cfg.k_encs_of(cl.a), cfg.k_encs_of(cl.b)
        if cl.k == "min-vs-max":
            if len(ka_all) < 2:
                continue
            pairs = [(cl.a, min(ka_all)), (cl.a, max(ka_all))]
        elif cl.b == "kl-elbo":
            pairs = [(cl.a, max(ka_all)), (cl.b, 1)]
        else:
            common = set(ka_all) & set(kb_all)
            if not common:
                continue
            pairs = [(cl.a, max(common)), (cl.b, max(common))]
        need |= {(v, ds, obj, k) for v in cfg.variants for ds in cfg.datasets for obj, k in pairs}
    return need


def config_of(results: dict[str, Any]) -> Fig3Config:
    """The :class:`Fig3Config` recorded in a fig3 ``results.json`` (fields of a newer or older
    vsm that this one lacks are ignored; JSON lists become tuples)."""
    known = {f.name for f in dataclasses.fields(Fig3Config)}
    rec = results.get("config", {})
    fields: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in rec.items() if k in known
    }
    return Fig3Config(**fields)


def summarize(results: dict[str, Any], cfg: Fig3Config | None = None) -> dict[str, Any]:
    """``results`` with the per-setting ``table``, the ``thresholds``, the ``claims`` and the
    ``verdicts`` computed from its ``runs`` (and ``table_continued``/``claims_continued``/
    ``verdicts_continued`` from the later numbers when runs were continued), plus ``settings_recorded``/``settings_total``.

    Also for a partial ``results.json`` (a sweep still running or interrupted): the claims whose
    settings are not recorded yet are left out, and the others may still change as settings are
    added (a claim row needs only its two settings, so it is final once both are recorded).
    """
    cfg = cfg or config_of(results)
    runs = results["runs"]
    out = dict(results)
    out["table"] = table(runs, cfg)
    out["thresholds"] = cfg.thresholds().as_dict()
    out["claims"] = judge(runs, cfg)
    out["verdicts"] = overall_verdicts(out["claims"])
    if any("continued" in r for r in runs):  # the claims again after the continuation
        later = [{**r, **r.get("continued", {})} for r in runs]
        out["table_continued"] = table(later, cfg)
        out["claims_continued"] = judge(later, cfg)
        out["verdicts_continued"] = overall_verdicts(out["claims_continued"])
    variants = results.get("variants_run", list(cfg.variants))
    every = [st for st in settings(cfg) if st[0] in variants]
    have = {(r["variant"], r["dataset"], r["objective"], r["k_enc"]) for r in runs}
    out["settings_recorded"] = sum(st in have for st in every)
    out["settings_total"] = len(every)
    return out
