"""The Ray half of tests/test_executors.py, run inside a network namespace that has only ``lo``.

``python tests/ray_namespace_checks.py OUT ARGS...`` (started by the test through ``unshare -n``)
starts a real Ray cluster on 127.0.0.1 (``ray start --head``), then against it:

1. ``vsm reproduce ARGS --executor ray --address 127.0.0.1:PORT --out OUT/ray``: the sweep;
2. the executor on its own, on the Ray instance it starts without an address (on 127.0.0.1): a
   unit that raises is reported with its error while the others finish, and an interrupt stops
   a running unit (through the sweep's stop flag) at once; the TCP sockets of the namespace (``/proc/net/tcp``,
   ``tcp6``) are listed while connected;
3. ``vsm reproduce ARGS --threads 2 ...`` stopped by SIGINT once ``results.json`` records a
   setting (2 threads per unit on the 2-CPU cluster: one unit at a time, so some are still queued
   or running), into ``OUT/stopped``;

stops the cluster and writes what it saw to ``OUT/checks.json`` (the test asserts on it).
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PORT = 6379  # the namespace is this script's own: the default port is free


def _sockets() -> list[tuple[str, str]]:
    """(local, remote) "address:port" of every TCP socket in this network namespace, from
    /proc/net/tcp and /proc/net/tcp6."""

    def decode(text: str) -> str:
        host, port = text.split(":")
        raw = bytes.fromhex(host)
        # the kernel prints each 32-bit word in host (little-endian) byte order
        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
        return f"{ipaddress.ip_address(raw)}:{int(port, 16)}"

    out = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(name) as f:
            next(f)
            for line in f:
                parts = line.split()
                out.append((decode(parts[1]), decode(parts[2])))
    return out


def spin(seconds: float) -> None:
    """Busy Python for ``seconds`` (a stopped Ray task stops between bytecodes, like a
    training loop; a sleep would run to its end). Defined in ``__main__``: Ray ships it by
    value."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        pass


def _executor_checks() -> dict[str, object]:
    """The executor's own Ray instance (no address, no RAY_ADDRESS: a new one on 127.0.0.1),
    opened once here; the executors of the two sweeps below find it running and use it."""
    from vsm.reproduce.executors import RayExecutor

    assert "RAY_ADDRESS" not in os.environ
    owner = RayExecutor(num_cpus=2).__enter__()
    try:
        return _on_ray()
    finally:
        owner.close()


def _on_ray() -> dict[str, object]:
    from vsm.reproduce.executors import RayExecutor, Unit, run_units

    done: dict[str, object] = {}
    failed: dict[str, str] = {}
    units = [Unit("ok", math.sqrt, (4.0,)), Unit("bad", math.sqrt, (-1.0,))]
    run_units(
        units,
        RayExecutor(),
        on_done=lambda u, v: done.__setitem__(u.key, v),
        on_failed=lambda u, e: failed.__setitem__(u.key, e),
    )
    seen: dict[str, object] = {}

    def stop_after_first(unit: Unit, value: object) -> None:
        seen[unit.key] = value
        seen["sockets"] = _sockets()  # connected to the cluster now
        raise KeyboardInterrupt

    t0 = time.perf_counter()
    interrupted = False
    try:
        run_units(
            [Unit("fast", math.sqrt, (9.0,), cost=2.0), Unit("slow", spin, (60.0,))],
            RayExecutor(),
            on_done=stop_after_first,
            on_failed=lambda u, e: None,
        )
    except KeyboardInterrupt:
        interrupted = True
    return {
        "done": done,
        "failed": failed,
        "interrupted": interrupted,
        "cancel_seconds": time.perf_counter() - t0,
        "fast": seen.get("fast"),
        "sockets": seen.get("sockets", []),
    }


def _stopped_run(out: Path, args: list[str], address: str, env: dict[str, str]) -> dict:
    """The sweep with 2 threads per unit, SIGINT once a setting is recorded."""
    cmd = [sys.executable, "-m", "vsm", "reproduce", *args, "--threads", "2"]
    cmd += ["--executor", "ray", "--address", address, "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env)
    results = out / "results.json"
    deadline = time.monotonic() + 300
    recorded = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if results.is_file():
            try:
                recorded = len(json.loads(results.read_text())["runs"])
            except (ValueError, KeyError):  # replaced while reading: try again
                recorded = 0
            if recorded:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(timeout=300)
    return {"rc": rc, "recorded_at_signal": recorded}


def main(out: Path, args: list[str]) -> int:
    # Ray ≥ 2.59 turns on token authentication for clusters on one machine, and a driver then
    # needs RAY_AUTH_MODE=token too; this cluster is reachable from this namespace only
    os.environ.update(TRITON_INTERPRET="0", RAY_AUTH_MODE="disabled")
    env = dict(os.environ)
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts"]
    address = f"127.0.0.1:{PORT}"
    checks: dict[str, object] = {"links": subprocess.check_output(["ip", "-o", "link"], text=True)}
    t0 = time.perf_counter()
    subprocess.run(
        [
            *ray_cli,
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={PORT}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    checks["ray_start_seconds"] = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        sweep = [sys.executable, "-m", "vsm", "reproduce", *args, "--executor", "ray"]
        rc = subprocess.run(
            [*sweep, "--address", address, "--out", str(out / "ray")], env=env
        ).returncode
        checks["sweep_rc"] = rc
        checks["sweep_seconds"] = time.perf_counter() - t0
        checks["executor"] = _executor_checks()
        checks["stopped"] = _stopped_run(out / "stopped", args, address, env)
    finally:
        subprocess.run([*ray_cli, "stop", "--force"], env=env, stdout=subprocess.DEVNULL)
    (out / "checks.json").write_text(json.dumps(checks, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2:]))
