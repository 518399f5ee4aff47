"""Figure 3's figure (``fig3.png``): test NLL, SM loss and σ² against K_enc per data set and
objective, both variants (:func:`plot`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .._common import plt, save_figure
from .config import OBJECTIVES


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
