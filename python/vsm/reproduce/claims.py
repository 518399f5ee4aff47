"""Judging a paper's claims from paired per-seed numbers: statistics, outcomes and verdicts.

A claim compares two settings A and B that were run with the same seeds (same initialisation,
data stream and evaluation samples, so the seed-to-seed variation largely cancels in A − B).
Its numbers are the paired differences d_s = A_s − B_s of a metric where lower is better (test
NLL). :func:`paired` summarises them as mean ± paired standard error and a two-sided Student-t
interval [lo, hi] at level ``Thresholds.level`` (n − 1 degrees of freedom).

:func:`outcome` turns that interval into ``"holds"``, ``"fails"`` or ``"inconclusive"`` for one
*kind* of claim, with two stated thresholds (:class:`Thresholds`, in the metric's units):

==================  ============================================  ===============================
kind                holds when                                    fails when
==================  ============================================  ===============================
``equal``           −eq_tol ≤ lo and hi ≤ eq_tol                  lo > eq_tol or hi < −eq_tol
``better``          lo > 0 (A − B: B is the improved setting)     hi < eq_tol
``slightly_worse``  lo > 0 and hi < fail_margin                   hi < eq_tol or lo ≥ fail_margin
``much_worse``      lo > fail_margin                              hi < fail_margin
==================  ============================================  ===============================

Everything else is ``inconclusive``: the interval is too wide for the seeds available. A run of
A that diverged counts as a failed fit, worse than any margin: when at least half of A's seeds
diverged, ``much_worse`` ("A fits badly") holds and ``slightly_worse`` ("A is slightly worse")
fails, whatever the others show. Runs that diverged are otherwise left out (pairs with a
diverged member are dropped); fewer than two pairs is ``inconclusive``.

:func:`verdict` combines the outcomes of the two estimator families (``vsm`` and ``paper``)
into the table's verdict: ``agrees`` (holds for every family run), ``does not`` (fails for every
family), ``depends on the estimator`` (holds for one family and fails for the other), else
``inconclusive``. :func:`overall` does the same across data sets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["KINDS", "Paired", "Thresholds", "outcome", "overall", "paired", "verdict"]

Kind = Literal["equal", "better", "slightly_worse", "much_worse"]
KINDS: tuple[str, ...] = ("equal", "better", "slightly_worse", "much_worse")
Outcome = Literal["holds", "fails", "inconclusive"]


@dataclass(frozen=True)
class Thresholds:
    """The stated thresholds of :func:`outcome` (metric units; nats for the test NLL).

    Attributes:
        eq_tol: differences within ±eq_tol count as "equal" (and an improvement below it as
            none).
        fail_margin: "fits badly" means worse than the reference by more than this.
        level: two-sided confidence level of the paired-t interval.
    """

    eq_tol: float = 0.1
    fail_margin: float = 0.5
    level: float = 0.95

    def __post_init__(self) -> None:
        if not (self.eq_tol > 0 and math.isfinite(self.eq_tol)):
            raise ValueError(f"eq_tol: expected a positive finite number, got {self.eq_tol}")
        if not (self.fail_margin > self.eq_tol and math.isfinite(self.fail_margin)):
            raise ValueError(
                f"fail_margin: expected a finite number > eq_tol = {self.eq_tol}, "
                f"got {self.fail_margin}"
            )
        if not 0.5 <= self.level < 1:
            raise ValueError(f"level: expected a confidence level in [0.5, 1), got {self.level}")

    def as_dict(self) -> dict[str, float]:
        """The thresholds as a plain dict (for results.json)."""
        return asdict(self)


@dataclass(frozen=True)
class Paired:
    """Paired differences A − B over seeds.

    Attributes:
        n: pairs with both runs finite.
        mean: mean difference (NaN when n = 0).
        se: paired standard error SD(d)/√n (NaN when n < 2).
        lo, hi: the level-``level`` Student-t interval (NaN when n < 2).
        n_a_diverged: seeds whose A run diverged (or gave a non-finite value).
        n_seeds: seeds of A considered.
    """

    n: int
    mean: float
    se: float
    lo: float
    hi: float
    n_a_diverged: int
    n_seeds: int

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for results.json)."""
        return asdict(self)


def _t_quantile(level: float, dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, dof))


def paired(
    a: Mapping[int, float | None], b: Mapping[int, float | None], *, level: float = 0.95
) -> Paired:
    """Paired summary of ``a[s] − b[s]`` over the seeds s of ``a``.

    ``a``, ``b``: {seed: value}; None or a non-finite value marks a diverged run. A seed missing
    from ``b`` (or diverged there) is left out of the pairs.
    """

    def ok(v: float | None) -> bool:
        return v is not None and math.isfinite(v)

    n_a_div = sum(1 for v in a.values() if not ok(v))
    d = [
        float(a[s]) - float(b[s])  # type: ignore[arg-type]
        for s in a
        if ok(a[s]) and ok(b.get(s))
    ]
    n = len(d)
    if n == 0:
        nan = float("nan")
        return Paired(0, nan, nan, nan, nan, n_a_div, len(a))
    mean = sum(d) / n
    if n < 2:
        nan = float("nan")
        return Paired(n, mean, nan, nan, nan, n_a_div, len(a))
    var = sum((x - mean) ** 2 for x in d) / (n - 1)
    se = math.sqrt(var / n)
    half = _t_quantile(level, n - 1) * se
    return Paired(n, mean, se, mean - half, mean + half, n_a_div, len(a))


def outcome(kind: str, p: Paired, th: Thresholds) -> Outcome:
    """ "holds" / "fails" / "inconclusive" for a claim of ``kind`` on the paired summary ``p``
    (module docstring's table)."""
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    if p.n_seeds > 0 and 2 * p.n_a_diverged >= p.n_seeds:  # most of A's runs diverged
        if kind == "much_worse":
            return "holds"
        if kind == "slightly_worse":
            return "fails"
    if p.n < 2 or not (math.isfinite(p.lo) and math.isfinite(p.hi)):
        return "inconclusive"
    lo, hi, eq, fail = p.lo, p.hi, th.eq_tol, th.fail_margin
    if kind == "equal":
        if -eq <= lo and hi <= eq:
            return "holds"
        return "fails" if (lo > eq or hi < -eq) else "inconclusive"
    if kind == "better":
        if lo > 0:
            return "holds"
        return "fails" if hi < eq else "inconclusive"
    if kind == "slightly_worse":
        if lo > 0 and hi < fail:
            return "holds"
        return "fails" if (hi < eq or lo >= fail) else "inconclusive"
    if lo > fail:  # much_worse
        return "holds"
    return "fails" if hi < fail else "inconclusive"


VERDICTS = ("agrees", "does not", "depends on the estimator", "inconclusive")


def _unanimous(outcomes: Sequence[str]) -> str | None:
    """The verdict that needs no weighing: "inconclusive" without outcomes, "agrees" when every
    outcome holds, "does not" when every one fails; None otherwise."""
    if not outcomes:
        return "inconclusive"
    if all(o == "holds" for o in outcomes):
        return "agrees"
    if all(o == "fails" for o in outcomes):
        return "does not"
    return None


def verdict(outcomes: Mapping[str, str]) -> str:
    """The verdict from each estimator family's outcome ({"vsm": ..., "paper": ...}; a family
    that was not run is simply absent). See the module docstring."""
    vals = [v for v in outcomes.values() if v is not None]
    unanimous = _unanimous(vals)
    if unanimous is not None:
        return unanimous
    if "holds" in vals and "fails" in vals and "inconclusive" not in vals:
        return "depends on the estimator"
    return "inconclusive"


def overall(per_dataset: Mapping[str, Mapping[str, str]]) -> str:
    """One verdict across data sets from {dataset: {family: outcome}}: :func:`verdict` of every
    (data set, family) outcome, where "depends on the estimator" needs each family to behave the
    same on every data set; otherwise mixed results read ``"depends on the data set"``."""
    by_family: dict[str, set[str]] = {}
    for outs in per_dataset.values():
        for fam, o in outs.items():
            by_family.setdefault(fam, set()).add(o)
    flat = [o for outs in per_dataset.values() for o in outs.values()]
    unanimous = _unanimous(flat)
    if unanimous is not None:
        return unanimous
    if "inconclusive" in flat:
        return "inconclusive"
    if all(len(s) == 1 for s in by_family.values()):
        return verdict({f: next(iter(s)) for f, s in by_family.items()})
    return "depends on the data set"


def fmt_pm(mean: float, se: float, digits: int = 3) -> str:
    """ "mean ± se" for a table ("—" for NaN, "mean" alone when se is NaN)."""
    if not math.isfinite(mean):
        return "—" if math.isnan(mean) else f"{mean}"
    if not math.isfinite(se):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


def mean_se(values: Iterable[float | None]) -> tuple[float, float, int]:
    """Mean, standard error and count of the finite ``values`` (NaN where undefined)."""
    v = [float(x) for x in values if x is not None and math.isfinite(x)]
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), 0
    m = sum(v) / n
    if n < 2:
        return m, float("nan"), n
    return m, math.sqrt(sum((x - m) ** 2 for x in v) / (n - 1) / n), n


def seeds_of(runs: Sequence[Mapping[str, Any]]) -> list[int]:
    """The distinct seeds of ``runs`` in first-seen order."""
    out: list[int] = []
    for r in runs:
        if r["seed"] not in out:
            out.append(r["seed"])
    return out
