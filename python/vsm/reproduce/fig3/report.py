"""Figure 3's tables, claims, figure and markdown section (``python -m vsm.reproduce.fig3
render``)."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import claims as C
from .._common import plt, save_figure
from .config import OBJECTIVES, Fig3Config, settings

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
    NLL (and SM-loss) difference, its outcome, and the verdict (:func:`vsm.reproduce.claims.
    verdict`). Claims whose objectives were not run are left out."""
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


# ------------------------------------------------------------------------------ figure


def plot(path: Path, results: dict[str, Any]) -> None:
    """Rows: data sets; columns: test NLL, SM loss, σ²; x: K_enc; one colour per objective;
    vsm solid with filled markers, paper dashed with open markers; kl-elbo (K_enc-free) a
    horizontal line. Off-scale means are drawn at the top edge as ▲."""
    tab = results["table"]
    datasets = list(dict.fromkeys(r["dataset"] for r in tab))
    objectives = list(dict.fromkeys(r["objective"] for r in tab))
    variants = list(dict.fromkeys(r["variant"] for r in tab))
    ks = sorted({r["k_enc"] for r in tab})
    fig, axes = plt.subplots(
        max(1, len(datasets)), 3, figsize=(15, 3.9 * max(1, len(datasets))), squeeze=False
    )
    colors = dict(zip(OBJECTIVES, plt.cm.tab10(np.arange(len(OBJECTIVES))), strict=True))
    keys = (
        ("is_nll", "test NLL (nats; IS, prior proposal)"),
        ("sm_loss", ("test SM loss (FD − const)")),
        ("sigma2", "σ² (log scale)"),
    )
    xlo, xhi = min(ks) / 1.3, max(ks) * 1.3
    for i, ds in enumerate(datasets):
        for j, (key, label) in enumerate(keys):
            ax = axes[i, j]
            finite = [
                r[f"{key}_mean"]
                for r in tab
                if r["dataset"] == ds and math.isfinite(r[f"{key}_mean"])
            ]
            top = None
            if key != "sigma2" and finite:
                lo, med = float(np.min(finite)), float(np.median(finite))
                top = med + 2.0 * (med - lo) + 0.5
                ax.set_ylim(lo - 0.1 * abs(lo) - 0.1, top)
            for obj in objectives:
                for v in variants:
                    rows = sorted(
                        (
                            r
                            for r in tab
                            if (r["dataset"], r["objective"], r["variant"]) == (ds, obj, v)
                        ),
                        key=lambda r: r["k_enc"],
                    )
                    if not rows:
                        continue
                    m = np.array([r[f"{key}_mean"] for r in rows], dtype=float)
                    se = np.nan_to_num(np.array([r[f"{key}_se"] for r in rows], dtype=float))
                    x = np.array([r["k_enc"] for r in rows], dtype=float)
                    if obj == "kl-elbo":
                        x, m, se = np.array([xlo, xhi]), np.repeat(m[:1], 2), np.repeat(se[:1], 2)
                    ls, face = ("-", None) if v == "vsm" else ("--", "none")
                    lab = f"{obj} [{v}]"
                    if top is not None and np.any(m > top):
                        off = m > top
                        ax.plot(
                            x[off],
                            np.full(off.sum(), top),
                            "^",
                            color=colors[obj],
                            mfc=face or colors[obj],
                            ms=7,
                            clip_on=False,
                        )
                        m = np.where(off, np.nan, m)
                    ax.errorbar(
                        x,
                        m,
                        yerr=se,
                        fmt="o" + ls,
                        color=colors[obj],
                        mfc=face,
                        label=lab,
                        capsize=2,
                        ms=4,
                        lw=1.2,
                    )
            ax.set_xscale("log")
            if key == "sigma2":
                ax.set_yscale("log")
            ax.minorticks_off()
            ax.set_xlim(xlo, xhi)
            ax.set_xticks(ks)
            ax.set_xticklabels([str(k) for k in ks])
            ax.set_xlabel("K_enc (encoder updates per decoder update)")
            ax.set_ylabel(label, fontsize=8)
            ax.set_title(f"{ds}", fontsize=9)
            if i == 0 and j == 2:
                ax.legend(fontsize=6, ncol=2)
    fig.suptitle(
        "Figure 3: mean ± s.e. over seeds; solid = vsm estimators, dashed/open = the "
        "paper code's; ▲ = off-scale (values in results.json)",
        fontsize=9,
    )
    fig.tight_layout()
    save_figure(fig, path)


# ------------------------------------------------------------------------------ markdown

BEGIN, END = "<!-- fig3:begin -->", "<!-- fig3:end -->"


def _pm(d: dict[str, Any], digits: int = 3) -> str:
    s = C.fmt_pm(d["mean"], d["se"], digits)
    extra = f" (n={d['n']})" if d["n"] < d["n_seeds"] else ""
    if d.get("n_a_diverged"):
        extra += f", {d['n_a_diverged']} diverged"
    return s + extra


def markdown(results: dict[str, Any]) -> str:
    """The Figure 3 section of docs/RESULTS_reproduce.md, generated from ``results``."""
    cfg = results["config"]
    th = results.get("thresholds", {})
    variants = results.get("variants_run", cfg.get("variants", ["vsm"]))
    runs = results["runs"]
    n_seeds = len(cfg["seeds"])
    conv = sum(bool(r["converged"]) for r in runs)
    div = sum(bool(r["diverged"]) for r in runs)
    lines = [
        BEGIN,
        "## Figure 3 — the eight objectives on 2-D data, judged claim by claim",
        "",
        (
            "Generated by `python -m vsm.reproduce.fig3 render` from `results.json`; the settings and "
            "their sources are in the docstring of `vsm.reproduce.fig3` (MATH.md §9)."
        ),
        "",
        (
            f"- Variants: {', '.join(variants)}; data sets: {', '.join(cfg['datasets'])} (hidden width "
            f"{cfg['width_sparse']} on sparse, {cfg['width_mixture']} on mixture); seeds "
            f"{', '.join(map(str, cfg['seeds']))}; K_enc ∈ {{{', '.join(map(str, cfg['k_encs']))}}} "
            f"for {', '.join(o for o in cfg['sweep_objectives'] if o != 'kl-elbo')}, else K_enc = "
            f"{cfg['k_encs'][0]} "
            "(kl-elbo: the authors' joint Adam, K_enc-free)."
        ),
        (
            f"- Optimisers: decoder Adam {cfg['dec_lr']:g}; encoder SGD {cfg['enc_lr_kl']:g} (KLD) / "
            f"{cfg['enc_lr_fd']:g} (FD); FAE Adam {cfg['dec_lr']:g} and ELBO Adam "
            f"{cfg['elbo_lr']:g} for both networks; batch "
            f"{cfg['batch_size']}; N = {cfg['n_samples']} (vsm) / {cfg['paper_n_samples']} (paper)."
        ),
        (
            f"- Training: until converged (σ² relative change ≤ {cfg['tol_sigma2']:g} and decoder-loss "
            f"change ≤ {cfg['tol_loss']:g}·max(|loss|, 1) + 2 s.e. over the last "
            f"{100 * cfg['window']:g} % of iterations; checked every {cfg['check_every']} iterations "
            f"from {cfg['min_iters']}), cap {cfg['max_iters']} iterations. "
            f"{conv} of {len(runs)} runs converged, {div} diverged."
        ),
        (
            f"- Evaluation: {cfg['n_test']} test points, IS with {cfg['n_is']} prior samples shared by "
            "the test points (and by all objectives of a seed)."
        ),
        (
            f"- Verdicts from paired test-NLL differences over seeds: {int(100 * th.get('level', 0.95))} "
            f"% paired-t interval [lo, hi] against eq_tol = {th.get('eq_tol')} nats and fail_margin "
            f"= {th.get('fail_margin')} nats (`vsm/reproduce/claims.py`). Wall time: "
            f"{results.get('seconds', float('nan')):.0f} s."
        ),
        "",
        "### Claims (paper §5.1)",
        "",
        "| claim | verdict |",
        "|---|---|",
    ]
    for v in results.get("verdicts", []):
        lines.append(f"| {v['text']} | **{v['verdict']}** |")
    lines += [
        "",
        (
            "Per data set: paired difference A − B of the test NLL (nats; mean ± paired "
            "s.e.; SM loss likewise), the outcome per variant, and the verdict."
        ),
        "",
    ]
    head = "| claim | data | A − B (K_enc) |"
    sep = "|---|---|---|"
    for v in variants:
        head += f" NLL diff {v} | SM diff {v} | {v} |"
        sep += "---|---|---|"
    lines += [head + " verdict |", sep + "---|"]
    for row in results.get("claims", []):
        per = row["variants"]
        k = next(iter(per.values()))
        ab = f"{row['a']} ({k['k_a']}) − {row['b']} ({k['k_b']})"
        line = f"| {row['claim']} | {row['dataset']} | {ab} |"
        for v in variants:
            if v in per:
                p = per[v]
                line += f" {_pm(p['nll'])} | {_pm(p['sm'], 2)} | {p['outcome']} |"
            else:
                line += " — | — | not run |"
        lines.append(line + f" {row['verdict']} |")
    lines += [
        "",
        "### Every setting",
        "",
        (
            f"Mean ± s.e. over {n_seeds} seeds (diverged runs left out). Collapse diagnostics: "
            "active latent dims (Var_x μ_j > 0.01; of 2), mean posterior SD, smallest spread "
            "(SD over x) of the encoder means."
        ),
        "",
    ]
    head = "| data | objective | K_enc |"
    sep = "|---|---|---|"
    for v in variants:
        head += (
            f" NLL {v} | SM {v} | σ² {v} | active {v} | post. SD {v} | μ spread {v} | "
            f"converged, diverged {v} |"
        )
        sep += "---|---|---|---|---|---|---|"
    lines += [head, sep]
    tab = results.get("table", [])
    keys = list(dict.fromkeys((r["dataset"], r["objective"], r["k_enc"]) for r in tab))
    for ds, obj, k in keys:
        line = f"| {ds} | {obj} | {k} |"
        for v in variants:
            sel = [
                r
                for r in tab
                if (r["dataset"], r["objective"], r["k_enc"], r["variant"]) == (ds, obj, k, v)
            ]
            if not sel:
                line += " — |" * 7
                continue
            r = sel[0]
            line += (
                f" {C.fmt_pm(r['is_nll_mean'], r['is_nll_se'])} |"
                f" {C.fmt_pm(r['sm_loss_mean'], r['sm_loss_se'], 1)} |"
                f" {r['sigma2_mean']:.3g} | {r['active_dims_mean']:.1f} |"
                f" {r['post_sd_mean']:.3f} | {r['mu_spread_min_mean']:.3f} |"
                f" {r['n_converged']}, {r['n_diverged']} of {r['n_runs']} |"
            )
        lines.append(line)
    lines += ["", "![Figure 3](figures/fig3.png)", "", END]
    return "\n".join(lines) + "\n"


def splice(doc: str, section: str) -> str:
    """``doc`` with the text between the fig3 markers (inclusive) replaced by ``section``
    (appended when the markers are absent)."""
    i, j = doc.find(BEGIN), doc.find(END)
    if i < 0 or j < i:
        return doc.rstrip("\n") + "\n\n" + section
    return doc[:i] + section.rstrip("\n") + doc[j + len(END) :]


def main(argv: list[str] | None = None) -> int:
    """``python -m vsm.reproduce.fig3 render RESULTS [--doc PATH]``: print the markdown section
    of a results.json, or splice it into PATH between the fig3 markers."""
    import json

    p = argparse.ArgumentParser(prog="python -m vsm.reproduce.fig3")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="markdown of a fig3 results.json")
    r.add_argument("results", help="path of results.json written by vsm reproduce fig3")
    r.add_argument(
        "--doc",
        help="splice into this markdown file (e.g. docs/RESULTS_reproduce.md) instead of printing",
    )
    args = p.parse_args(argv)
    results = json.loads(Path(args.results).read_text())
    if results.get("figure") != "fig3" or not results.get("complete"):
        raise SystemExit(f"{args.results}: not a complete fig3 results.json")
    section = markdown(results)
    if args.doc:
        path = Path(args.doc)
        path.write_text(splice(path.read_text() if path.exists() else "", section))
        print(f"wrote {path}", file=sys.stderr)
    else:
        print(section, end="")
    return 0
