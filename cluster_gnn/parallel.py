"""Where per-cluster tasks run: a local process pool, or a Dask distributed cluster.

:func:`task_executor` gives a :class:`concurrent.futures.Executor` for either, so the
structure search (:func:`~cluster_gnn.search.search_many`) and batch prediction
(:func:`~cluster_gnn.predict.predict_files`) submit their tasks the same way.

Every local worker dies with its parent (:func:`die_with_parent`), even when the parent is
killed by SIGKILL, so no orphan keeps computing or writing; :class:`PidLock` keeps a
second writer off a checkpoint.
"""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import ClusterGNNError, LockedError

__all__ = ["task_executor", "dask_client", "executor_slots", "limit_threads", "compute_threads", "die_with_parent", "PidLock", "pid_alive"]

#: How often a worker checks that its parent still lives, in s.
PARENT_POLL_S = 0.2


def die_with_parent(pdeathsig: bool = False) -> None:
    """Worker start-up: one OpenMP thread, and exit as soon as the parent process is gone.

    A daemon thread polls ``os.getppid()`` every :data:`PARENT_POLL_S` s and ends the
    process when the parent changes (it was re-parented: the parent died, by SIGKILL too).
    Polling works whichever thread of the parent started the worker. ``pdeathsig`` also
    asks Linux for a SIGTERM at the parent's death (``PR_SET_PDEATHSIG``), which is
    immediate but fires when the *thread* that started the worker ends, so it is only for
    pools started from the main thread.
    """
    limit_threads()
    parent = os.getppid()
    if pdeathsig:
        try:
            import ctypes
            import signal

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    if parent == 1 or os.getppid() != parent:  # the parent is already gone
        os._exit(1)

    def watch():
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def pid_alive(pid: int) -> bool:
    """True if a process ``pid`` runs (it may belong to another user).

    A zombie is dead: a worker killed with its parent is re-parented, and until its new
    parent reaps it (a container's PID 1 may never) ``kill(pid, 0)`` still finds it, so
    the lock it held would look taken for good.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (not Linux): trust kill()


class PidLock:
    """A lock file holding the owner's pid, so a checkpoint never has two writers.

    ``with PidLock(path, "structure search"):`` creates ``path`` exclusively and writes this process's
    pid; a lock whose owner is dead (killed, say) is stale and taken over. A live owner
    makes ``__enter__`` raise ``error(message)`` (default
    :class:`~cluster_gnn.errors.LockedError`).
    """

    def __init__(self, path, what: str = "process", error=None):
        self.path, self.what, self.error = Path(path), what, error

    def _refuse(self, message: str):
        return (self.error or LockedError)(message)

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    owner = int(self.path.read_text().strip() or 0)
                except (OSError, ValueError):
                    owner = 0
                if owner and pid_alive(owner):
                    raise self._refuse(f"another {self.what} (pid {owner}) is writing to {self.path.parent} "
                                       f"({self.path.name}); wait for it or stop it") from None
                self.path.unlink(missing_ok=True)  # stale: its owner is gone
                continue
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            return self
        raise self._refuse(f"cannot take the lock {self.path}")

    def __exit__(self, *exc):
        try:
            if int(self.path.read_text().strip() or 0) == os.getpid():
                self.path.unlink(missing_ok=True)
        except (OSError, ValueError):
            pass


def limit_threads() -> None:
    """Worker start-up: one OpenMP thread per process (the pool is the parallelism). Set
    before the task imports torch or tblite, so both read it."""
    import os

    os.environ["OMP_NUM_THREADS"] = "1"


def compute_threads(most: int = 2) -> int:
    """Threads for one process's torch and sklearn work: ``OMP_NUM_THREADS`` when set (a test
    process per core sets 1: threads that spin against another busy process ran an
    evaluation more than 3x slower), else the cores, at most ``most``."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return max(1, min(most, os.cpu_count() or 1))


def executor_slots(executor) -> int:
    """How many tasks ``executor`` (from :func:`task_executor`) runs at once: a local pool's
    processes, or the threads of the Dask cluster's workers now (they may come and go)."""
    client = getattr(executor, "_client", None)  # a Dask ClientExecutor
    if client is not None:
        return max(1, sum(client.nthreads().values()))
    return max(1, int(getattr(executor, "_max_workers", 1)))


def _start_worker(initializer, initargs) -> None:
    die_with_parent()
    if initializer is not None:
        initializer(*initargs)


@contextmanager
def dask_client(scheduler):
    """Yield a ``dask.distributed.Client`` for ``scheduler`` (an address such as
    ``"tcp://host:8786"``, or a client, yielded as it is), or None when ``scheduler`` is None.
    A client made here from an address is closed on exit; an unreachable scheduler is a
    :class:`ClusterGNNError`."""
    if scheduler is None:
        yield None
        return
    from dask.distributed import Client

    try:
        client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    except (OSError, ValueError, TypeError) as e:  # unreachable, or not an address
        raise ClusterGNNError(f"cannot reach the Dask scheduler {scheduler!r}: {e}") from None
    try:
        yield client
    finally:
        if client is not scheduler:
            client.close()


@contextmanager
def task_executor(workers: int = 1, scheduler=None, initializer=None, initargs=()):
    """Yield an executor: with ``scheduler`` (an address such as ``"tcp://host:8786"`` or a
    ``dask.distributed.Client``) Dask's, otherwise a pool of ``workers`` spawned local
    processes (one thread each, dying with this process, then ``initializer(*initargs)``,
    local pools only). Shuts
    down what it started, cancelling pending tasks."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    if scheduler is not None:
        with dask_client(scheduler) as client:
            yield client.get_executor()
        return
    executor = ProcessPoolExecutor(max_workers=max(1, workers), mp_context=mp.get_context("spawn"),
                                   initializer=_start_worker, initargs=(initializer, tuple(initargs)))
    try:
        yield executor
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
