"""Where the independent units of a ``vsm reproduce`` sweep run, and how their results come back.

A figure whose work splits into independent units (fig2: one fit per toy likelihood and kind;
fig3: one setting; images: one objective) describes each as a :class:`Unit` (a module-level
function, its arguments and its CPU threads) and hands them to :func:`run_units` with an
:class:`Executor`:

- :class:`LocalExecutor` (``--executor local``, the default): in this process when ``workers``
  is 1, else in a pool of ``workers`` spawned processes;
- :class:`RayExecutor` (``--executor ray``): each unit one ``ray.remote`` task asking for
  ``num_cpus`` = its threads, on the Ray cluster at ``--address`` (or ``RAY_ADDRESS``), else on a
  new local Ray instance bound to 127.0.0.1. Ray is imported only here, and only when used
  (``pip install "vsm[ray]"``).

:func:`run_units` submits every unit (by priority, then the most expensive first), hands each
result to the figure as it arrives (``on_done``, where the figure rewrites its ``results.json``;
a unit that raised goes to ``on_failed`` with its error and the others go on), shows a progress bar of units
done / running / queued with an ETA, and on SIGINT/SIGTERM (:class:`KeyboardInterrupt`, e.g.
:class:`vsm.train.TrainingInterrupted`) cancels the outstanding units, hands over those that
finished meanwhile, and re-raises (on Ray through a stop flag each task waits on, not
``ray.cancel``, whose race with a finishing task can crash the driver: ``RayExecutor.cancel``).
The numbers do not depend on the executor: a unit is the same function call with the same
arguments and thread count wherever it runs.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

from .._errors import UsageError

EXECUTORS = ("local", "ray")
"""The executors ``vsm reproduce --executor`` offers."""

CANCEL_GRACE_S = 120.0
"""How long a cancelled sweep waits for running units to stop (they checkpoint first)."""


@dataclass(frozen=True)
class Unit:
    """One independent piece of a sweep: ``fn(*args)`` with ``threads`` intra-op CPU threads.

    ``fn`` must be a module-level function of an importable module (it is pickled by reference
    to reach a worker process or a Ray node); ``key`` names the unit in ``results.json``;
    ``cost`` is a rough relative cost; units are submitted by ``priority`` (higher first), then
    the most expensive first.
    """

    key: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    threads: int = 1
    cost: float = 1.0
    priority: int = 0


def call_unit(fn: Callable[..., Any], args: tuple[Any, ...], threads: int) -> Any:
    """Run ``fn(*args)`` with ``threads`` torch intra-op threads (what every executor runs)."""
    import torch

    torch.set_num_threads(max(1, int(threads)))
    return fn(*args)


# ---- the local pool's workers: stop after SIGTERM/SIGINT instead of taking the next unit
#
# A pool worker whose unit was stopped by a signal would otherwise take the next unit already
# in the pool's call queue (ProcessPoolExecutor queues one more than it has workers) and train
# it for hours while the parent waits, and a worker killed by the signal while idle breaks the
# pool (whose bookkeeping then fails on the cancelled futures on Python 3.11). So each worker
# notes the signal (and stops a unit that does not catch signals itself, with
# KeyboardInterrupt) and refuses every unit after it.

_stop_requested = False
_unit_running = False


class UnitCancelled(RuntimeError):
    """A unit that a pool worker refused because the sweep is stopping."""


def _on_stop_signal(signum: int, frame: FrameType | None) -> None:
    global _stop_requested
    _stop_requested = True
    if _unit_running:  # a unit without its own handler: stop it (training units checkpoint)
        raise KeyboardInterrupt


def _init_pool_worker() -> None:
    """Pool-worker initialiser: note SIGTERM and SIGINT (:func:`_on_stop_signal`)."""
    signal.signal(signal.SIGTERM, _on_stop_signal)
    signal.signal(signal.SIGINT, _on_stop_signal)


def _pool_call_unit(fn: Callable[..., Any], args: tuple[Any, ...], threads: int) -> Any:
    """:func:`call_unit` in a local pool worker: refused once a stop was signalled, and a unit
    stopped by a signal (its own handler's KeyboardInterrupt included) marks the worker
    stopping."""
    global _stop_requested, _unit_running
    if _stop_requested:
        raise UnitCancelled("the sweep is stopping; the unit did not start")
    _unit_running = True
    try:
        return call_unit(fn, args, threads)
    except KeyboardInterrupt:
        _stop_requested = True
        raise
    finally:
        _unit_running = False


def describe_error(exc: BaseException) -> str:
    """``"Type: message"`` of an exception (the cause of a Ray task error), one line."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:500]


Outcome = tuple[Unit, Any, "str | None"]
"""What :meth:`Executor.wait_one` returns: the unit, its value, and its error (None: success)."""


class Executor(ABC):
    """Runs :class:`Unit` s somewhere and returns them as they finish (used as a context
    manager: resources are set up on entry, released on exit)."""

    name: str = ""

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @abstractmethod
    def close(self) -> None:
        """Release what ``__enter__`` set up."""

    @abstractmethod
    def submit(self, unit: Unit) -> None:
        """Queue ``unit``."""

    @abstractmethod
    def wait_one(self) -> Outcome:
        """Block until a queued unit has finished and return it; raises IndexError when none is
        left."""

    @abstractmethod
    def counts(self) -> tuple[int, int]:
        """(running, queued) among the units not yet returned (running may be an estimate)."""

    @abstractmethod
    def cancel(self) -> list[tuple[Unit, Any]]:
        """Cancel every unit not yet returned; returns those that finished successfully before
        the cancellation reached them (after waiting up to :data:`CANCEL_GRACE_S`)."""


class LocalExecutor(Executor):
    """Units in this process (``workers`` ≤ 1, one after another) or in a pool of ``workers``
    spawned processes (today's ``vsm reproduce`` behaviour)."""

    name = "local"

    def __init__(self, workers: int = 1):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers: expected a positive int, got {workers!r}")
        self.workers = workers
        self._queue: list[Unit] = []
        self._pool: Any = None
        self._futures: dict[Any, Unit] = {}

    def __enter__(self) -> LocalExecutor:
        if self.workers > 1:
            import concurrent.futures as cf
            import multiprocessing as mp

            self._pool = cf.ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=mp.get_context("spawn"),
                initializer=_init_pool_worker,
            )
        return self

    def close(self) -> None:
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        procs = list(getattr(pool, "_processes", {}).values())
        # the pool's own bookkeeping thread may be gone (a broken pool): then no worker gets
        # its shutdown sentinel, and joining them would hang this process at exit
        broken = bool(getattr(pool, "_broken", False))
        pool.shutdown(wait=not broken, cancel_futures=True)
        for proc in procs:
            proc.join(timeout=5.0 if broken else CANCEL_GRACE_S)
            if proc.is_alive():
                proc.kill()
                proc.join()

    def submit(self, unit: Unit) -> None:
        if self._pool is None:
            self._queue.append(unit)
        else:
            fut = self._pool.submit(_pool_call_unit, unit.fn, unit.args, unit.threads)
            self._futures[fut] = unit

    def wait_one(self) -> Outcome:
        if self._pool is None:
            unit = self._queue.pop(0)
            try:
                return unit, call_unit(unit.fn, unit.args, unit.threads), None
            except Exception as e:  # a failed unit is reported; KeyboardInterrupt is not caught
                traceback.print_exc(file=sys.stderr)
                return unit, None, describe_error(e)
        import concurrent.futures as cf

        if not self._futures:
            raise IndexError("wait_one: no unit is queued")
        done, _ = cf.wait(list(self._futures), return_when=cf.FIRST_COMPLETED)
        fut = next(iter(done))
        unit = self._futures.pop(fut)
        exc = fut.exception()
        return (
            unit,
            None if exc is not None else fut.result(),
            None if exc is None else (describe_error(exc)),
        )

    def counts(self) -> tuple[int, int]:
        if self._pool is None:
            n = len(self._queue)
            return min(n, 1), max(n - 1, 0)
        running = min(sum(f.running() for f in self._futures), self.workers)
        return running, len(self._futures) - running

    def cancel(self) -> list[tuple[Unit, Any]]:
        self._queue.clear()
        if self._pool is None:
            return []
        import concurrent.futures as cf

        for f in self._futures:  # the queued units no worker has taken yet
            f.cancel()
        # the workers checkpoint their unit on SIGTERM (vsm.train.stopping) and refuse the
        # units still in the pool's call queue (_pool_call_unit)
        for p in list(getattr(self._pool, "_processes", {}).values()):
            try:
                os.kill(p.pid, signal.SIGTERM)
            except (ProcessLookupError, OSError):
                pass
        cf.wait(list(self._futures), timeout=CANCEL_GRACE_S)
        out = [
            (unit, f.result())
            for f, unit in self._futures.items()
            if f.done() and not f.cancelled() and f.exception() is None
        ]
        self._futures.clear()
        return out


# ---- Ray tasks: stopped through a flag, not ray.cancel (RayExecutor.cancel says why)

STOP_POLL_S = 10.0
"""How long one wait of a running Ray task on its sweep's stop flag lasts (a long poll: the
flag answers at once when set)."""


class _StopFlag:
    """A Ray actor (asyncio, no CPU): set once when the sweep stops; each task of the sweep waits
    on it (:func:`_ray_call_unit`)."""

    def __init__(self) -> None:
        import asyncio

        self._event = asyncio.Event()

    async def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """True once the flag is set; waits up to ``timeout`` seconds for that."""
        import asyncio

        if timeout > 0:
            try:
                await asyncio.wait_for(self._event.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        return self._event.is_set()


def _ray_call_unit(fn: Callable[..., Any], args: tuple[Any, ...], threads: int, stop: Any) -> Any:
    """:func:`call_unit` in a Ray task of a sweep whose stop flag is ``stop`` (a
    :class:`_StopFlag` handle). A unit whose sweep is already stopping does not start
    (:class:`UnitCancelled`). While it runs, a thread waits on the flag and, once it is set (or
    gone with the sweep's driver), interrupts the task as Ctrl-C would (``interrupt_main``, what
    ``ray.cancel`` itself does): a training unit checkpoints at the end of its step and stops;
    the task then raises :class:`UnitCancelled`. An interrupt that arrives after the unit
    returned is ignored, so a finished value is never lost."""
    import _thread

    import ray

    if ray.get(stop.wait.remote(0.0)):
        raise UnitCancelled("the sweep is stopping; the unit did not start")
    if threading.current_thread() is not threading.main_thread():  # no signals here
        return call_unit(fn, args, threads)
    lock = threading.Lock()
    running = True
    finished = threading.Event()

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        if running:  # (read without the lock: the main thread may hold it)
            raise KeyboardInterrupt

    def watch() -> None:
        while not finished.is_set():
            try:
                stopping = bool(ray.get(stop.wait.remote(STOP_POLL_S)))
            except Exception:  # the flag died with the sweep's driver: stop too
                stopping = True
            if stopping:
                with lock:
                    if running:
                        _thread.interrupt_main(signal.SIGINT)
                return

    previous = signal.signal(signal.SIGINT, on_interrupt)
    threading.Thread(target=watch, name="vsm-stop-flag", daemon=True).start()
    try:
        return call_unit(fn, args, threads)
    except KeyboardInterrupt as e:  # TrainingInterrupted included: the checkpoint is written
        raise UnitCancelled(f"the sweep is stopping; the unit stopped ({e})") from None
    finally:
        with lock:
            running = False
        finished.set()
        # (signal.signal runs a pending handler first: on_interrupt, which now ignores it)
        signal.signal(signal.SIGINT, previous)


class RayExecutor(Executor):
    """Each unit a ``ray.remote`` task with ``num_cpus`` = its threads (capped at the largest
    node's CPUs), on the cluster at ``address`` (else ``RAY_ADDRESS``, else a new local Ray
    instance on 127.0.0.1 with ``num_cpus`` CPUs, default every core). A Ray session already
    initialised in this process is used as it is and left running."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.num_cpus = num_cpus
        self._ray: Any = None
        self._owned = False
        self._remote: Any = None
        self._pending: dict[Any, Unit] = {}
        self._node_cpus = 1
        self._mean_threads = 1.0
        self._signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._stop: Any = None

    def __enter__(self) -> RayExecutor:
        try:
            import ray
        except ImportError as e:
            raise UsageError(
                'executor: --executor ray needs Ray; install vsm[ray] (pip install "vsm[ray]")'
            ) from e
        self._ray = ray
        if not ray.is_initialized():
            previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
            if self.address is not None:
                ray.init(address=self.address)
            else:  # only this machine: keep Ray's traffic on the loopback interface
                ray.init(
                    address="local",
                    num_cpus=self.num_cpus,
                    include_dashboard=False,
                    _node_ip_address="127.0.0.1",
                )
            for s, h in previous.items():  # ray.init replaces the SIGTERM handler
                if h is not None:
                    signal.signal(s, h)
            self._owned = True
        self._catch_signals()
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        self._node_cpus = max([int(n.get("Resources", {}).get("CPU", 0)) for n in nodes] + [1])
        self._stop = ray.remote(num_cpus=0)(_StopFlag).remote()
        self._remote = ray.remote(_ray_call_unit)
        return self

    def _catch_signals(self) -> None:
        """While the executor is open, SIGINT and SIGTERM raise
        :class:`vsm.train.TrainingInterrupted` with their number. (Ray's blocking calls check
        for signals themselves and turn whatever the handler raised into a bare
        KeyboardInterrupt; :meth:`wait_one` restores the signal from here.)"""
        from ..train.stopping import SIGNALS, TrainingInterrupted

        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            self._signum = signum
            raise TrainingInterrupted(signum)

        self._previous = {s: signal.signal(s, handler) for s in SIGNALS}

    def close(self) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous = {}
        if self._ray is not None and self._stop is not None:
            try:  # a task still running after the grace period stops when its flag dies
                self._ray.kill(self._stop)
            except Exception:  # already gone with its node
                pass
            self._stop = None
        if self._ray is not None and self._owned:
            self._ray.shutdown()
            self._owned = False

    def _interrupted(self) -> BaseException:
        from ..train.stopping import TrainingInterrupted

        return TrainingInterrupted(self._signum or signal.SIGINT)

    def submit(self, unit: Unit) -> None:
        n = max(1, min(int(unit.threads), self._node_cpus))
        ref = self._remote.options(num_cpus=n, name=f"vsm:{unit.key}").remote(
            unit.fn, unit.args, n, self._stop
        )
        self._pending[ref] = unit
        self._mean_threads = sum(u.threads for u in self._pending.values()) / len(self._pending)

    def wait_one(self) -> Outcome:
        ray = self._ray
        if not self._pending:
            raise IndexError("wait_one: no unit is queued")
        ready: list[Any] = []
        try:
            while not ready:  # short waits: signals are handled between them too
                ready, _ = ray.wait(list(self._pending), num_returns=1, timeout=1.0)
        except KeyboardInterrupt as e:
            raise self._interrupted() from e
        ref = ready[0]
        unit = self._pending.pop(ref)
        try:
            return unit, ray.get(ref), None
        except ray.exceptions.RayError as e:
            print(f"{unit.key}: {e}", file=sys.stderr)
            return unit, None, describe_error(e)

    def counts(self) -> tuple[int, int]:
        n = len(self._pending)
        try:
            used = self._ray.cluster_resources().get(
                "CPU", 0.0
            ) - self._ray.available_resources().get("CPU", 0.0)
        except Exception:  # the estimate is only for the progress bar
            used = 0.0
        running = min(n, max(0, round(used / max(self._mean_threads, 1.0))))
        return running, n - running

    def cancel(self) -> list[tuple[Unit, Any]]:
        ray = self._ray
        refs = list(self._pending)
        # No ray.cancel: cancelling a task whose reply is already on its way crashes this
        # process inside Ray (2.60: "Check failed: it != submissible_tasks_.end() Tried to
        # complete task that was not pending", measured 2 in 12 interrupts under load). The
        # tasks stop themselves instead (_ray_call_unit): the running ones as on Ctrl-C (they
        # checkpoint), the queued ones before they start.
        if self._stop is not None:
            try:
                ray.get(self._stop.set.remote(), timeout=30)
            except Exception as e:  # the flag is gone: the tasks stop with this driver
                print(
                    f"ray: could not signal the tasks to stop ({describe_error(e)})",
                    file=sys.stderr,
                )
        out: list[tuple[Unit, Any]] = []
        ready, _ = (
            ray.wait(refs, num_returns=len(refs), timeout=CANCEL_GRACE_S) if refs else ([], [])
        )
        for ref in ready:
            try:
                out.append((self._pending[ref], ray.get(ref)))
            except ray.exceptions.RayError:  # stopped (UnitCancelled) or failed
                pass
        self._pending.clear()
        return out


class UnitsFailed(RuntimeError):
    """Some units of a sweep raised (the others finished and are recorded); ``failed`` maps each
    failed unit's key to its error. ``--resume`` runs the failed units again."""

    def __init__(self, figure: str, failed: dict[str, str]):
        self.figure = figure
        self.failed = dict(failed)
        lines = "; ".join(f"{k}: {v}" for k, v in self.failed.items())
        super().__init__(f"{figure}: {len(self.failed)} unit(s) failed ({lines})")


def make_executor(name: str, *, workers: int = 1, address: str | None = None) -> Executor:
    """The executor called ``name`` (:data:`EXECUTORS`): ``local`` with ``workers`` processes
    (``address`` must be None), or ``ray`` on the cluster at ``address``."""
    if name == "local":
        if address is not None:
            raise UsageError("address: --address is for --executor ray")
        return LocalExecutor(workers)
    if name == "ray":
        return RayExecutor(address)
    raise UsageError(f"executor: expected one of {EXECUTORS}, got {name!r}")


def log(message: str) -> None:
    """Print a line to stderr without breaking the progress bar."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


def run_units(
    units: Sequence[Unit],
    executor: Executor,
    *,
    on_done: Callable[[Unit, Any], None],
    on_failed: Callable[[Unit, str], None],
    desc: str = "units",
) -> None:
    """Run ``units`` on ``executor`` and hand each result to ``on_done`` (or its error to
    ``on_failed``) as soon as it arrives (module docstring). On KeyboardInterrupt (e.g.
    SIGINT/SIGTERM turned into :class:`vsm.train.TrainingInterrupted`) the outstanding units are
    cancelled, the ones that finished meanwhile go to ``on_done``, and the interrupt is
    re-raised."""
    from tqdm import tqdm

    keys = [u.key for u in units]
    if len(set(keys)) != len(keys):
        raise ValueError(f"units: keys must be unique, got {keys}")
    if not units:
        return
    with executor:
        for u in sorted(units, key=lambda u: (-u.priority, -u.cost)):
            executor.submit(u)
        bar = tqdm(
            total=len(units),
            desc=f"{desc} [{executor.name}]",
            unit="unit",
            file=sys.stderr,
            smoothing=0.0,
            mininterval=1.0,
        )

        def show() -> None:
            running, queued = executor.counts()
            bar.set_postfix_str(f"running {running}, queued {queued}", refresh=True)

        try:
            show()
            for _ in range(len(units)):
                unit, value, error = executor.wait_one()
                if error is None:
                    on_done(unit, value)
                else:
                    log(f"{desc}: {unit.key} failed: {error}")
                    on_failed(unit, error)
                bar.update(1)
                show()
        except KeyboardInterrupt:
            bar.close()
            log(f"{desc}: stopping: cancelling the units still queued or running")
            for unit, value in executor.cancel():
                on_done(unit, value)
            raise
        bar.close()
