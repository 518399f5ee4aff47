"""Stress run (not collected by pytest, not in CI): the DDP and signal/resume tests, N times each,
beside busy processes that hold the CPU cores.

Issue 20 item 3: ``tests/test_ddp.py`` sometimes lost rank 0 to SIGABRT ("terminate called without
an active exception") while two ``python -c "while True: pass"`` processes kept the two cores
busy. This script repeats such suites and counts the failures, keeping the output of each failing
trial (``--keep DIR``), so that a fix can be judged by a count instead of by luck.

Usage (from the repository root)::

    python tests/stress/ddp_stress.py --suite ddp -n 20 --busy 2 --keep /tmp/ddp-stress
    python tests/stress/ddp_stress.py --suite interrupt -n 10 --busy 2

``--suite``: ``ddp`` (all of tests/test_ddp.py: five torchrun launches), ``ddp-one`` (its
one-launch test: more trials per hour), ``interrupt`` (the signal/resume tests of
tests/test_interrupt.py). Prints
one line per trial and a JSON summary (``--json FILE`` also writes it): trials, failures, aborts
(outputs with "terminate called" or SIGABRT), seconds per trial and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SUITES = {
    "ddp": ["tests/test_ddp.py"],
    # one torchrun launch per trial (the abort was at a rank's exit: any launch exercises it)
    "ddp-one": ["tests/test_ddp.py", "-k", "nan_on_one_rank"],
    "interrupt": [
        "tests/test_interrupt.py",
        "-k",
        "sigint or sigterm or resume",
    ],
}

ABORT_MARKS = ("terminate called", "SIGABRT", "Signals.SIGABRT", "exitcode  : -6")


def busy_processes(n: int) -> list[subprocess.Popen[bytes]]:
    """``n`` processes that spin forever (one core each)."""
    return [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(n)
    ]


def run_trial(args: list[str], timeout: float) -> tuple[int, str, float]:
    """One pytest run of ``args``; (exit status, output, seconds). A timeout counts as 124."""
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *args]
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
        rc, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        rc = 124
        out = f"timeout after {timeout} s\n" + str(e.stdout or "") + str(e.stderr or "")
    return rc, out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", choices=sorted(SUITES), default="ddp")
    ap.add_argument("-n", type=int, default=20, help="trials (default 20)")
    ap.add_argument("--busy", type=int, default=2, help="spinning processes beside (default 2)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per trial")
    ap.add_argument("--keep", default=None, help="folder for the output of failing trials")
    ap.add_argument("--json", default=None, help="also write the summary here")
    a = ap.parse_args(argv)
    keep = Path(a.keep) if a.keep else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    spinners = busy_processes(a.busy)
    trials = []
    try:
        for i in range(a.n):
            rc, out, secs = run_trial(SUITES[a.suite], a.timeout)
            abort = any(m in out for m in ABORT_MARKS)
            trials.append({"trial": i, "rc": rc, "abort": abort, "seconds": round(secs, 1)})
            status = "ok" if rc == 0 else ("ABORT" if abort else f"FAIL rc={rc}")
            print(f"trial {i + 1}/{a.n}: {status} ({secs:.0f} s)", flush=True)
            if rc != 0 and keep is not None:
                (keep / f"{a.suite}-trial{i + 1}.log").write_text(out)
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    summary = {
        "suite": a.suite,
        "busy": a.busy,
        "trials": len(trials),
        "failures": sum(t["rc"] != 0 for t in trials),
        "aborts": sum(t["abort"] for t in trials),
        "loadavg_end": os.getloadavg(),
        "runs": trials,
    }
    text = json.dumps(summary, indent=1)
    print(text)
    if a.json:
        Path(a.json).write_text(text + "\n")
    return 0 if summary["failures"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
