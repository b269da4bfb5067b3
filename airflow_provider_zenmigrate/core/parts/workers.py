"""Worker processes for multi-part dumps: forked, each with state of its own (a snapshot
session, a loading connection), given one task at a time and watched for death.

Forked, not spawned: a worker inherits the caller's engine configuration and store
clients, which need not be picklable. It drops the inherited connection pool
(``Engine.dispose(close=False)``) before connecting, and the caller drops the idle
connections of its store clients before forking (:func:`.storage.drop_idle_connections`),
so no socket is ever shared. Processes, not threads: the client's work (JSON, digests,
compression) is bound by the GIL.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Generic, TypeVar

from .. import errors
from ..errors import WorkerDied, WorkerStopped, ZenMigrateError

logger = logging.getLogger(__name__)

State = TypeVar("State")
Task = TypeVar("Task")

#: Seconds the workers have to start (connect, join the snapshot) before the caller gives up.
READY_TIMEOUT = 120.0


@dataclass
class WorkerReport:
    """What the pool learnt: each worker's peak memory (MB, counted from its start)."""

    peak_mb: float = 0.0


def _status_mb(field: str) -> float:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _restart_peak() -> None:
    """Count this process's peak memory from now (VmHWM is inherited from the parent)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def _error_message(exc: BaseException) -> tuple[str, str]:
    """(class name, message) of an error, to be raised again in the caller: ours by their
    class, others as a ZenMigrateError naming theirs (messages are already scrubbed)."""
    return type(exc).__name__, str(exc)


def _raise(kind: str, message: str, worker: int) -> None:
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, ZenMigrateError):
        try:
            raise cls(message)
        except TypeError:
            pass
    raise ZenMigrateError(f"worker {worker}: {kind}: {message}")


def _stopped(_signum: int, _frame: Any) -> None:
    raise WorkerStopped


def _worker_main(
    conn: Connection,
    open_state: Callable[[], AbstractContextManager[Any]],
    run: Callable[[Any, Any], Any],
) -> None:
    """A worker's life: open its state, say ready, run tasks until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller decides when to stop
    signal.signal(signal.SIGTERM, _stopped)  # unwinds: an upload in hand is aborted
    _restart_peak()
    code = 0
    try:
        with open_state() as state:
            conn.send(("ready", None))
            while (task := conn.recv()) is not None:
                try:
                    result = run(state, task)
                except Exception as exc:  # noqa: BLE001 - reported to the caller, who stops
                    logger.debug("worker task failed:\n%s", traceback.format_exc())
                    conn.send(("error", _error_message(exc)))
                    break
                conn.send(("done", result))
    except Exception as exc:  # noqa: BLE001 - reported to the caller
        code = 1
        with suppress(OSError):
            conn.send(("error", _error_message(exc)))
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # ending anyway: no second unwinding
        with suppress(OSError):
            conn.send(("peak", _status_mb("VmHWM")))
        conn.close()
        os._exit(code)  # no atexit handlers of the parent (Airflow's) in a worker


def jobs_allowed(spare: int | None, jobs: int, action: str) -> int:
    """``jobs``, or fewer when the server has only ``spare`` connections left (said in the
    log): a worker the server refused would fail the whole run."""
    if spare is None or spare >= jobs or jobs <= 1:
        return jobs
    allowed = max(1, spare)
    logger.warning(
        "%s with %d worker process(es), not %d: the server accepts only %d more connections",
        action,
        allowed,
        jobs,
        spare,
    )
    return allowed


class Scheduler(Generic[Task]):
    """Hands out tasks as workers become free, and hears of each one done."""

    def next_task(self) -> Task | None:
        """The next task to start now, or None when none can start yet (or is left)."""
        raise NotImplementedError

    def done(self, task: Task, result: Any) -> None:
        raise NotImplementedError

    def finished(self) -> bool:
        raise NotImplementedError


@contextmanager
def worker_pool(
    jobs: int,
    open_state: Callable[[], AbstractContextManager[Any]],
    run: Callable[[Any, Any], Any],
    report: WorkerReport,
) -> Iterator[Callable[[Scheduler[Any]], None]]:
    """Fork ``jobs`` workers and wait until each has opened its state (``open_state()``,
    in the worker). Yields ``drive(scheduler)``, which runs every task the scheduler hands
    out, ``run(state, task)`` in a worker, until the scheduler is finished; the first
    failure of a task or of a worker stops all of them and is raised. On leaving, the
    workers are told to stop (killed if they do not)."""
    context = multiprocessing.get_context("fork")
    pipes: list[Connection] = []
    processes: list[Any] = []
    try:
        for _ in range(jobs):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_worker_main, args=(theirs, open_state, run), daemon=True
            )
            process.start()
            theirs.close()
            pipes.append(ours)
            processes.append(process)
        deadline = time.monotonic() + READY_TIMEOUT
        for n, pipe in enumerate(pipes):
            kind, value = _receive(pipe, processes[n], n, deadline, report)
            if kind != "ready":
                _raise(value[0], value[1], n)

        def drive(scheduler: Scheduler[Any]) -> None:
            _drive(scheduler, pipes, processes, report)

        yield drive
    except BaseException:
        # A failed run: no worker finishes (publishes) its task. Asked first, so each
        # aborts the upload in hand; killed if it does not end.
        for process in processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + 5
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
        raise
    finally:
        _stop(pipes, processes, report)


def _receive(
    pipe: Connection, process: Any, n: int, deadline: float, report: WorkerReport
) -> tuple[str, Any]:
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise WorkerDied(f"worker {n} did not start within {READY_TIMEOUT:.0f} s")
        ready = wait([pipe, process.sentinel], timeout=left)
        if pipe in ready:
            try:
                kind, value = pipe.recv()
            except EOFError:
                raise WorkerDied(f"worker {n} ended (exit code {process.exitcode})") from None
            if kind == "peak":
                report.peak_mb = max(report.peak_mb, float(value))
                continue
            return kind, value
        if process.sentinel in ready:
            process.join()
            raise WorkerDied(f"worker {n} ended (exit code {process.exitcode})")


def _drive(
    scheduler: Scheduler[Any], pipes: list[Connection], processes: list[Any], report: WorkerReport
) -> None:
    busy: dict[int, Any] = {}
    while not scheduler.finished():
        for n in range(len(pipes)):
            if n in busy:
                continue
            task = scheduler.next_task()
            if task is None:
                break
            pipes[n].send(task)
            busy[n] = task
        if not busy:
            if scheduler.finished():
                return
            raise ZenMigrateError("the scheduler has tasks left but none can start")
        ready = wait([pipes[n] for n in busy] + [processes[n].sentinel for n in busy])
        for n in list(busy):
            if pipes[n] in ready:
                try:
                    kind, value = pipes[n].recv()
                except EOFError:
                    processes[n].join()
                    raise WorkerDied(
                        f"worker {n} ended (exit code {processes[n].exitcode})"
                    ) from None
                if kind == "peak":
                    report.peak_mb = max(report.peak_mb, float(value))
                    continue
                task = busy.pop(n)
                if kind != "done":
                    _raise(value[0], value[1], n)
                scheduler.done(task, value)
            elif processes[n].sentinel in ready:
                processes[n].join()
                raise WorkerDied(f"worker {n} ended (exit code {processes[n].exitcode})")


def _stop(pipes: list[Connection], processes: list[Any], report: WorkerReport) -> None:
    for pipe in pipes:
        with suppress(OSError):
            pipe.send(None)
    deadline = time.monotonic() + 10
    for n, process in enumerate(processes):
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
        try:
            while pipes[n].poll():
                kind, value = pipes[n].recv()
                if kind == "peak":
                    report.peak_mb = max(report.peak_mb, float(value))
        except (EOFError, OSError):
            pass
        pipes[n].close()
