"""Where per-cluster tasks run: a local process pool, or a Dask distributed cluster.

:func:`task_executor` gives a :class:`concurrent.futures.Executor` for either, so the
structure search (:func:`~cluster_gnn.search.search_many`) and batch prediction
(:func:`~cluster_gnn.predict.predict_files`) submit their tasks the same way.
"""
from __future__ import annotations

from contextlib import contextmanager

__all__ = ["task_executor", "limit_threads"]


def limit_threads() -> None:
    """Worker start-up: one OpenMP thread per process (the pool is the parallelism). Set
    before the task imports torch or tblite, so both read it."""
    import os

    os.environ["OMP_NUM_THREADS"] = "1"


def _start_worker(initializer, initargs) -> None:
    limit_threads()
    if initializer is not None:
        initializer(*initargs)


@contextmanager
def task_executor(workers: int = 1, scheduler=None, initializer=None, initargs=()):
    """Yield an executor: with ``scheduler`` (an address such as ``"tcp://host:8786"`` or a
    ``dask.distributed.Client``) Dask's, otherwise a pool of ``workers`` spawned local
    processes (one thread each, then ``initializer(*initargs)``, local pools only). Shuts
    down what it started, cancelling pending tasks."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    if scheduler is not None:
        from dask.distributed import Client

        client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
        try:
            yield client.get_executor()
        finally:
            if client is not scheduler:  # a client made here from an address
                client.close()
        return
    executor = ProcessPoolExecutor(max_workers=max(1, workers), mp_context=mp.get_context("spawn"),
                                   initializer=_start_worker, initargs=(initializer, tuple(initargs)))
    try:
        yield executor
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
