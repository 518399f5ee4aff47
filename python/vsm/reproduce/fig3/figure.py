"""Figure 3's figure (``fig3.png``, :func:`plot`): per data set, the eight objectives along the
x-axis with their test NLL against the ELBO (paired over seeds), σ² and active latent dimensions;
the two estimator families side by side and each K_enc with its own marker."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import NullLocator

from .. import claims as C
from .._common import plt, save_figure
from .config import OBJECTIVES
from .report import _values

VARIANT_COLORS = {"vsm": "tab:blue", "paper": "tab:orange"}
K_MARKERS = ("o", "s", "^", "D", "v")
PANELS = (
    ("nll", "test NLL − ELBO's, same seed (nats; symlog)"),
    ("sigma2", "σ² (log scale)"),
    ("active_dims", "active latent dims (Var_x μ_j > 0.01)"),
)


def _row(tab: list[dict[str, Any]], v: str, ds: str, obj: str, k: int) -> dict[str, Any] | None:
    for r in tab:
        if (r["variant"], r["dataset"], r["objective"], r["k_enc"]) == (v, ds, obj, k):
            return r
    return None


def plot(path: Path, results: dict[str, Any]) -> None:
    """Rows: data sets; columns: (1) test NLL minus the ELBO's on the same seed, mean and 95 %
    paired-t interval over seeds (symlog axis; grey band |Δ| ≤ eq_tol, dashed line at
    fail_margin; the kl-elbo slot gives the ELBO's own NLL); (2) σ² and (3) active latent dims,
    mean ± s.e. over seeds. x: the objectives; colour: estimator family (vsm, the paper code's),
    left and right of each slot; marker and offset: K_enc. Settings whose runs all diverged are
    marked "div" at the top."""
    tab = results["table"]
    runs = results["runs"]
    th = results.get("thresholds", {})
    eq_tol = float(th.get("eq_tol", 0.1))
    fail = float(th.get("fail_margin", 0.5))
    level = float(th.get("level", 0.95))
    datasets = list(dict.fromkeys(r["dataset"] for r in tab))
    present = {r["objective"] for r in tab}
    objectives = [o for o in OBJECTIVES if o in present]
    variants = list(dict.fromkeys(r["variant"] for r in tab))
    ks = sorted({r["k_enc"] for r in tab})
    n_seeds = len(results.get("config", {}).get("seeds", [])) or len({r["seed"] for r in runs})
    fig, axes = plt.subplots(
        max(1, len(datasets)), 3, figsize=(17, 4.4 * max(1, len(datasets))), squeeze=False
    )
    x_of = {o: i for i, o in enumerate(objectives)}

    def offset(iv: int, ik: int) -> float:
        return (iv - (len(variants) - 1) / 2) * 0.4 + (ik - (len(ks) - 1) / 2) * 0.14

    for i, ds in enumerate(datasets):
        for j, (key, label) in enumerate(PANELS):
            ax = axes[i, j]
            diverged: list[tuple[float, str]] = []
            for iv, v in enumerate(variants):
                color = VARIANT_COLORS.get(v, f"C{iv + 2}")
                for ik, k in enumerate(ks):
                    marker = K_MARKERS[ik % len(K_MARKERS)]
                    for obj in objectives:
                        row = _row(tab, v, ds, obj, k)
                        if row is None:
                            continue
                        x = x_of[obj] + offset(iv, ik)
                        if key == "nll":
                            if obj == "kl-elbo":
                                continue
                            p = C.paired(
                                _values(runs, v, ds, obj, k, "is_nll"),
                                _values(runs, v, ds, "kl-elbo", 1, "is_nll"),
                                level=level,
                            )
                            m, lo, hi = p.mean, p.lo, p.hi
                        else:
                            m, se = row[f"{key}_mean"], row[f"{key}_se"]
                            se = se if math.isfinite(se) else 0.0
                            lo, hi = m - se, m + se
                        if not math.isfinite(m):
                            diverged.append((x, color))
                            continue
                        yerr = None
                        if math.isfinite(lo) and math.isfinite(hi):
                            yerr = [[max(m - lo, 0.0)], [max(hi - m, 0.0)]]
                        ax.errorbar(
                            [x],
                            [m],
                            yerr=yerr,
                            fmt=marker,
                            color=color,
                            ms=5,
                            capsize=2,
                            lw=1.1,
                        )
            if key == "nll":
                ax.set_yscale("symlog", linthresh=1.0)
                ax.axhspan(-eq_tol, eq_tol, color="0.85", zorder=0)
                ax.axhline(0.0, color="0.4", lw=0.8, zorder=0)
                ax.axhline(fail, color="0.4", lw=0.8, ls="--", zorder=0)
                _symlog_ticks(ax)
                elbo = []
                for v in variants:
                    row = _row(tab, v, ds, "kl-elbo", 1)
                    if row is not None and math.isfinite(row["is_nll_mean"]):
                        elbo.append(f"{v}: {row['is_nll_mean']:.3g}")
                if "kl-elbo" in x_of and elbo:
                    ax.text(
                        x_of["kl-elbo"],
                        0.5,
                        "ELBO's NLL\n" + "\n".join(elbo),
                        transform=ax.get_xaxis_transform(),
                        ha="center",
                        va="center",
                        fontsize=7,
                    )
            elif key == "sigma2":
                ax.set_yscale("log")
            else:
                ax.set_ylim(-0.2, 2.2)
                ax.set_yticks([0, 1, 2])
            for x, color in diverged:
                ax.text(
                    x,
                    0.98,
                    "div",
                    transform=ax.get_xaxis_transform(),
                    color=color,
                    fontsize=6,
                    ha="center",
                    va="top",
                    rotation=90,
                )
            for b in range(1, len(objectives)):
                ax.axvline(b - 0.5, color="0.9", lw=0.8, zorder=0)
            ax.set_xlim(-0.5, len(objectives) - 0.5)
            ax.set_xticks(range(len(objectives)))
            ax.set_xticklabels(objectives, fontsize=8)
            ax.set_ylabel(label, fontsize=8)
            ax.set_title(f"{ds}", fontsize=9)
    handles: list[Any] = [
        Patch(color=VARIANT_COLORS.get(v, f"C{iv + 2}"), label=f"{v} estimators")
        for iv, v in enumerate(variants)
    ]
    handles += [
        Line2D(
            [], [], marker=K_MARKERS[ik % len(K_MARKERS)], color="0.3", ls="", label=f"K_enc = {k}"
        )
        for ik, k in enumerate(ks)
    ]
    handles += [
        Patch(color="0.85", label=f"|Δ| ≤ {eq_tol:g} (equal)"),
        Line2D([], [], color="0.4", ls="--", label=f"Δ = {fail:g} (fails)"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    # a diverged run stops where it diverged: the title gives the others' length
    iters = sorted({int(r["iterations"]) for r in runs if not r["diverged"]}) or sorted(
        {int(r["iterations"]) for r in runs}
    )
    its = f"{iters[0]}" if len(iters) == 1 else f"{iters[0]}–{iters[-1]}"
    head = f"{its} iterations, {n_seeds} seeds"
    if "settings_total" in results and not results.get("complete", True):
        head += f"; partial: {results['settings_recorded']} of {results['settings_total']} settings"
    fig.suptitle(
        f"Figure 3 ({head}): test NLL minus the ELBO's on the same seed "
        f"(mean, {int(100 * level)} % paired-t interval), σ² and active latent dims (mean ± s.e.)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    save_figure(fig, path)


def _symlog_ticks(ax: Any) -> None:
    """Readable ticks on the symlog NLL axis: the limits widened to [−0.5, 1] at least, ticks at
    0, ±0.5 and ±1, ±10, ±100, … within them, labelled as plain numbers."""
    lo, hi = ax.get_ylim()
    lo, hi = min(lo, -0.5), max(hi, 1.0)
    ax.set_ylim(lo, hi)
    ticks = [0.0, 0.5, -0.5]
    mag = 1.0
    while mag <= max(hi, -lo):
        ticks += [mag, -mag]
        mag *= 10
    ticks = sorted(t for t in ticks if lo <= t <= hi)
    ax.set_yticks(ticks)
    ax.set_yticklabels([f"{t:g}" for t in ticks], fontsize=7)
    ax.yaxis.set_minor_locator(NullLocator())


def plot_curves(path: Path, results: dict[str, Any]) -> None:
    """σ² against iterations, one panel per setting (data set, objective, K_enc) and one line
    per run, coloured by estimator family: the whole run, continuation included
    (``--set continue_iters``), from each run's ``sigma2_curve`` (60 points). A dotted line
    marks ``max_iters`` (where the continuation began), a cross the end of a run that diverged,
    and the legend gives each family's mean test NLL at ``max_iters`` and at the end."""
    runs = results["runs"]
    cfg = results.get("config", {})
    keys = list(dict.fromkeys((r["dataset"], r["objective"], r["k_enc"]) for r in runs))
    if not keys:
        raise ValueError("results: no runs to draw")
    ncol = min(len(keys), 4)
    nrow = math.ceil(len(keys) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    for ax, (ds, obj, k) in zip(axes.flat, keys, strict=False):
        sel = [r for r in runs if (r["dataset"], r["objective"], r["k_enc"]) == (ds, obj, k)]
        handles = []
        variants = list(dict.fromkeys(r["variant"] for r in sel))
        for iv, v in enumerate(variants):
            color = VARIANT_COLORS.get(v, f"C{iv + 2}")
            mine = [r for r in sel if r["variant"] == v]
            for r in mine:
                last = r.get("continued", r)
                curve = last.get("sigma2_curve") or r.get("sigma2_curve") or []
                if not curve:
                    continue
                xs, ys = zip(*curve, strict=True)
                ax.plot(xs, ys, color=color, lw=1.0, alpha=0.8)
                if last.get("diverged"):
                    ax.plot(xs[-1], ys[-1], "x", color=color, ms=7)
            nll = [r["is_nll"] for r in mine if not r["diverged"]]
            end = [r.get("continued", r) for r in mine]
            nll_end = [e["is_nll"] for e in end if not e["diverged"]]
            first = f"{sum(nll) / len(nll):.3f}" if nll else "diverged"
            final = f"{sum(nll_end) / len(nll_end):.3f}" if nll_end else "diverged"
            its = max(int(e["iterations"]) for e in end)
            handles.append(
                Line2D([], [], color=color, label=f"{v}: NLL {first} → {final} ({its} it.)")
            )
        if cfg.get("max_iters"):
            ax.axvline(cfg["max_iters"], color="0.4", ls=":", lw=1.0)
        ax.set_yscale("log")
        ax.set_title(f"{ds}: {obj}, K_enc = {k}", fontsize=10)
        ax.set_xlabel("iteration")
        ax.set_ylabel("σ²")
        ax.legend(handles=handles, fontsize=7, loc="best")
    for ax in list(axes.flat)[len(keys) :]:
        ax.set_visible(False)
    title = (
        f"σ² per run (one line per seed); dotted: {cfg.get('max_iters')} iterations, where "
        "the continuation began; legend: mean test NLL there → at the end"
    )
    fig.suptitle(textwrap.fill(title, width=55 * ncol), fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
