"""The stochastic Lotka-Volterra simulator's front door: `simulate_series` and `simulate_statistics`
cut a batch of parameters into chunks (`jump_process.run_chunks`), share contiguous runs of chunks
among worker processes (`pool.run_pool`) and gather the results."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from .jump_process import (
    CHUNK_SIZE,
    INITIAL_STATE,
    MAX_EVENTS,
    N_RECORD,
    Simulation,
    check_initial,
    check_theta,
    run_chunks,
)
from .pool import run_pool

SIMULATOR_VERSION = 1
"""Changes whenever the simulator's output for a given (theta, seed) changes (caches key on it)."""


def simulate_series(
    theta: np.ndarray,
    seed: int,
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    initial: tuple[int, int] = INITIAL_STATE,
    max_events: int = MAX_EVENTS,
) -> Simulation:
    """Simulate the process at each row of theta (n, 4) (rates >= 0): the recorded series.

    Args:
        theta: (n, 4) rates (theta_1, ..., theta_4), not log rates; a (4,) vector is one simulation.
        seed: the only source of randomness (non-negative int); equal seeds give equal results.
        workers: processes to share the chunks among (default: the usable CPU cores); the
            results do not depend on it.
        progress: called with the number of simulations finished since its last call.
        initial: (X, Y) at t = 0.
        max_events: more events than this before T_END is a failed simulation.
    """
    theta = check_theta(theta)
    series, failed, events = _simulate(theta, seed, workers, progress, initial, max_events, statistics=False)
    out = series.astype(np.float64)
    out[failed] = np.nan
    return Simulation(out, failed, events)


def simulate_statistics(
    theta: np.ndarray,
    seed: int,
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    initial: tuple[int, int] = INITIAL_STATE,
    max_events: int = MAX_EVENTS,
) -> np.ndarray:
    """The (n, 9) summary statistics (`summary_statistics`) of one simulation at each row of theta
    (n, 4) (rates, not log rates); NaN rows for failed simulations. Arguments as `simulate_series`
    (the same seed gives the statistics of the same series)."""
    theta = check_theta(theta)
    stats, failed, _ = _simulate(theta, seed, workers, progress, initial, max_events, statistics=True)
    stats[failed] = np.nan
    return stats


def _simulate(theta, seed, workers, progress, initial, max_events, statistics):
    """Cut theta into chunks, share contiguous runs of chunks among worker processes, gather."""
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    check_initial(initial, max_events)
    n = theta.shape[0]
    n_chunks = -(-n // CHUNK_SIZE)
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    groups = [g for g in np.array_split(np.arange(n_chunks), min(workers, max(n_chunks, 1))) if g.size]
    jobs = [
        (
            theta[g[0] * CHUNK_SIZE : min((g[-1] + 1) * CHUNK_SIZE, n)],
            int(seed),
            int(g[0]),
            tuple(int(v) for v in initial),
            int(max_events),
            statistics,
        )
        for g in groups
    ]
    if len(jobs) <= 1:
        results = [run_chunks(*job, report=progress) for job in jobs]
    else:
        results = run_pool(run_chunks, jobs, progress)
    width = 9 if statistics else (N_RECORD, 2)
    if not results:
        return (np.empty((0, width) if statistics else (0, *width)), np.zeros(0, bool), np.zeros(0, np.int64))
    return tuple(np.concatenate(parts) for parts in zip(*results, strict=True))
