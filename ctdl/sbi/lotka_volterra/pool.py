"""The process pool the Lotka-Volterra simulator shares its chunks with: each job runs in a worker
process, and a counter in shared memory carries the finished simulations back to a progress
callback while the jobs run."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context

_counter = None  # the finished-simulation counter shared with the worker processes


def _init_worker(counter) -> None:
    global _counter
    _counter = counter


def _report_to_counter(k: int) -> None:
    with _counter.get_lock():
        _counter.value += k


def _pool_job(fn: Callable, job: tuple):
    return fn(*job, report=_report_to_counter if _counter is not None else None)


def run_pool(fn: Callable, jobs: list[tuple], progress: Callable[[int], None] | None) -> list:
    """``[fn(*job, report=...) for job in jobs]``, each job in its own worker process; `fn` (a
    module-level function) calls ``report(k)`` when it has finished k simulations, and the sums
    reach `progress` while the jobs run.

    On Linux the workers are forked: they start at once and run numpy code only, so the threads a
    parent may hold (torch's) do not matter to them. Elsewhere they are spawned, which re-imports
    the caller's main module in every worker.
    """
    ctx = get_context("fork" if sys.platform.startswith("linux") else "spawn")
    counter = ctx.Value("q", 0)
    reported = 0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*multi-threaded, use of fork", DeprecationWarning)
        pool = ProcessPoolExecutor(len(jobs), mp_context=ctx, initializer=_init_worker, initargs=(counter,))
        with pool:
            futures = [pool.submit(_pool_job, fn, job) for job in jobs]
            pending = set(futures)
            while pending:
                _, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                if progress is not None and counter.value > reported:
                    progress(counter.value - reported)
                    reported = counter.value
            return [f.result() for f in futures]
