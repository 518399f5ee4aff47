"""Fault trials (not collected by pytest, not in CI): ``kill -9`` a ``vsm reproduce fig3`` run at
random moments, continue it with ``--resume``, and compare its ``results.json`` with an
uninterrupted run's (issue 20, "faults in long runs").

One trial: start ``vsm reproduce fig3 --quick --out DIR [--set ...]``; SIGKILL it after a random
time in (0, ``--max-wait``) seconds (default: the uninterrupted run's duration); then restart it
with ``--resume`` and kill it again, ``--kills`` times in all; then ``--resume`` to the end. After
every kill, ``results.json`` (if any) must be readable by the next ``--resume``
(:func:`vsm.reproduce._common.read_results`). At the end, every number in ``results.json`` must
equal the uninterrupted run's, except wall times (``seconds``, ``train_wall_s``).

Usage (from the repository root)::

    python tests/stress/kill_resume.py --trials 10 --kills 2 --json /tmp/kill.json
    python tests/stress/kill_resume.py --trials 10 --set variants=vsm --set datasets=mixture

Prints one line per trial and a JSON summary (trials, kills, mismatches, unreadable files).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WALL_KEYS = {"seconds", "train_wall_s"}


def _cmd(out: Path, sets: list[str], resume: bool) -> list[str]:
    cmd = [sys.executable, "-m", "vsm", "reproduce", "fig3", "--quick", "--out", str(out)]
    cmd += [a for s in sets for a in ("--set", s)]
    return cmd + (["--resume"] if resume else [])


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TRITON_INTERPRET": "0"}


def _numbers(obj: Any) -> Any:
    """``obj`` without its wall-time entries (what must be identical)."""
    if isinstance(obj, dict):
        return {k: _numbers(v) for k, v in obj.items() if k not in WALL_KEYS}
    if isinstance(obj, list):
        return [_numbers(v) for v in obj]
    return obj


def _diff(a: Any, b: Any, at: str = "") -> str | None:
    """The first path where ``a`` and ``b`` differ (None if equal; NaN equals NaN)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = _diff(a.get(k), b.get(k), f"{at}.{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{at}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d = _diff(x, y, f"{at}[{i}]")
            if d:
                return d
        return None
    if a != b and not (a != a and b != b):  # NaN == NaN here
        return f"{at}: {a!r} vs {b!r}"
    return None


def _readable(out: Path) -> str | None:
    """None if ``out/results.json`` is absent or readable by --resume, else the error."""
    from vsm.reproduce._common import read_results

    path = out / "results.json"
    if not path.exists():
        return None
    try:
        read_results(path)
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


def run_trial(
    out: Path, sets: list[str], kills: int, max_wait: float, rng: random.Random
) -> dict[str, Any]:
    """Kill ``kills`` times at random moments, then resume to the end."""
    events = []
    for k in range(kills):
        proc = subprocess.Popen(
            _cmd(out, sets, resume=k > 0),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=_env(),
        )
        wait = rng.uniform(0.5, max_wait)
        try:
            rc = proc.wait(timeout=wait)
            events.append({"kill": k, "after_s": round(wait, 1), "finished_first": True, "rc": rc})
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            events.append({"kill": k, "after_s": round(wait, 1), "finished_first": False})
        bad = _readable(out)
        if bad:
            return {"events": events, "unreadable": bad}
    proc = subprocess.run(
        _cmd(out, sets, resume=True), capture_output=True, text=True, env=_env(), check=False
    )
    return {
        "events": events,
        "unreadable": None,
        "rc": proc.returncode,
        "stderr_tail": proc.stderr[-1500:] if proc.returncode else "",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--kills", type=int, default=2, help="kills per trial before the last resume")
    ap.add_argument(
        "--max-wait",
        type=float,
        default=None,
        help="latest kill moment, seconds after a start (default: the uninterrupted run's time; "
        "give it when the load changes, or the kills come after the end)",
    )
    ap.add_argument("--set", action="append", default=[], help="fig3 override NAME=VALUE")
    ap.add_argument("--seed", type=int, default=0, help="of the random kill moments")
    ap.add_argument("--json", default=None)
    ap.add_argument("--keep", action="store_true", help="keep the output folders")
    a = ap.parse_args(argv)
    rng = random.Random(a.seed)
    work = Path(tempfile.mkdtemp(prefix="vsm-kill-"))
    t0 = time.perf_counter()
    base = subprocess.run(
        _cmd(work / "base", a.set, resume=False), capture_output=True, text=True, env=_env()
    )
    base_s = time.perf_counter() - t0
    if base.returncode != 0:
        print(base.stderr[-3000:], file=sys.stderr)
        return 2
    want = _numbers(json.loads((work / "base" / "results.json").read_text()))
    print(f"uninterrupted run: {base_s:.0f} s", flush=True)
    trials = []
    for i in range(a.trials):
        out = work / f"t{i}"
        t1 = time.perf_counter()
        res = run_trial(out, a.set, a.kills, a.max_wait or base_s, rng)
        if res["unreadable"] is None and res["rc"] == 0:
            got = _numbers(json.loads((out / "results.json").read_text()))
            res["mismatch"] = _diff(want, got)
        else:
            res["mismatch"] = "did not finish"
        res["seconds"] = round(time.perf_counter() - t1, 1)
        trials.append(res)
        kills = [e["after_s"] for e in res["events"] if not e["finished_first"]]
        status = "identical" if res["mismatch"] is None else f"MISMATCH {res['mismatch']}"
        print(f"trial {i + 1}/{a.trials}: killed at {kills} s; {status}", flush=True)
        if not a.keep:
            shutil.rmtree(out, ignore_errors=True)
    summary = {
        "sets": a.set,
        "baseline_s": round(base_s, 1),
        "trials": len(trials),
        "kills": sum(not e["finished_first"] for t in trials for e in t["events"]),
        "mismatches": sum(t["mismatch"] is not None for t in trials),
        "unreadable": sum(t["unreadable"] is not None for t in trials),
        "loadavg_end": os.getloadavg(),
        "runs": trials,
    }
    text = json.dumps(summary, indent=1)
    print(text)
    if a.json:
        Path(a.json).write_text(text + "\n")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if summary["mismatches"] == 0 and summary["unreadable"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
