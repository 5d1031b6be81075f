"""Speed of the stochastic Lotka-Volterra simulator: the vectorised exact simulator
(ctdl.simulators.lotka_volterra.simulate_statistics, all worker processes) against the plain-Python
one-chain Gillespie loop (simulate_reference), in one run on prior draws log theta ~ U[-5, 2]^4.

The reference loop runs on a random subset of the same draws, half before and half after the
vectorised run (so that a change in the machine's load hits both). Writes
benchmarks/lotka_volterra_sim.json and prints a markdown table.

    python scripts/bench_lotka_volterra.py [--n 50000] [--n-reference 400] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from ctdl.simulators.lotka_volterra import MAX_EVENTS, sample_prior, simulate_reference, simulate_statistics


def cpu_seconds() -> float:
    """CPU time of this process and of its finished child processes."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def reference_rate(theta: np.ndarray, seed: int) -> tuple[float, float, int, int]:
    """(seconds, CPU seconds, events, failures) of the plain-Python loop over the rows of theta."""
    t0, c0 = time.perf_counter(), cpu_seconds()
    events = failures = 0
    for i, row in enumerate(theta):
        sim = simulate_reference(row, seed + i)
        events += int(sim.events[0])
        failures += int(sim.failed[0])
    return time.perf_counter() - t0, cpu_seconds() - c0, events, failures


def main() -> None:
    from bench_common import save, table  # here: worker processes re-import this file and need no torch

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=50_000, help="simulations of the vectorised simulator")
    parser.add_argument("--n-reference", type=int, default=400, help="simulations of the plain-Python loop")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    theta = sample_prior(args.n, np.random.default_rng(args.seed))
    subset = theta[np.random.default_rng(args.seed + 1).choice(args.n, args.n_reference, replace=False)]
    half = args.n_reference // 2
    load_before = os.getloadavg()[0]

    ref_a = reference_rate(subset[:half], 10_000)
    t0, c0 = time.perf_counter(), cpu_seconds()
    stats = simulate_statistics(theta, args.seed, workers=args.workers)
    vec_s, vec_cpu = time.perf_counter() - t0, cpu_seconds() - c0
    ref_b = reference_rate(subset[half:], 20_000)
    ref_s, ref_cpu, ref_events, ref_failed = (a + b for a, b in zip(ref_a, ref_b, strict=True))
    cpu_ratio = (ref_cpu / args.n_reference) / (vec_cpu / args.n)

    vec_rate, ref_rate = args.n / vec_s, args.n_reference / ref_s
    workers = args.workers or len(os.sched_getaffinity(0))
    rows = [
        {
            "simulator": f"vectorised, {workers} worker process(es)",
            "simulations": args.n,
            "seconds": round(vec_s, 2),
            "sims_per_s": round(vec_rate),
            "failed_frac": round(float(np.isnan(stats[:, 0]).mean()), 4),
            "speed_up": round(vec_rate / ref_rate, 1),
            "cpu_ms_per_sim": round(vec_cpu / args.n * 1e3, 4),
            "cpu_speed_up": round(cpu_ratio, 1),
        },
        {
            "simulator": "plain-Python one-chain loop",
            "simulations": args.n_reference,
            "seconds": round(ref_s, 2),
            "sims_per_s": round(ref_rate, 1),
            "failed_frac": round(ref_failed / args.n_reference, 4),
            "speed_up": 1.0,
            "cpu_ms_per_sim": round(ref_cpu / args.n_reference * 1e3, 4),
            "cpu_speed_up": 1.0,
            "us_per_event": round(ref_s / ref_events * 1e6, 3),
        },
    ]
    result = {
        "target": "at least 100x the simulations per second of the plain-Python one-chain Gillespie loop",
        "setup": (
            f"prior draws log theta ~ U[-5, 2]^4 (seed {args.seed}), T = 30, 150 records, "
            f"failure after {MAX_EVENTS} events; the reference runs on a random subset of the "
            "same draws, half before and half after the vectorised run"
        ),
        "numpy": np.__version__,
        "workers": workers,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "speed_up": round(vec_rate / ref_rate, 1),
        "cpu_speed_up": round(cpu_ratio, 1),
        "note": (
            "speed_up: simulations per second (wall clock, all workers); cpu_speed_up: CPU time per "
            "simulation (all processes), i.e. the speed-up per core"
        ),
        "rows": rows,
    }
    save("lotka_volterra", "sim", result)
    print()
    print(table(rows))
    print(
        f"\nspeed-up {vec_rate / ref_rate:.1f}x (per core {cpu_ratio:.1f}x); numpy {np.__version__}; "
        f"load average {load_before:.1f} before, {result['load_average_after']:.1f} after"
    )


if __name__ == "__main__":
    main()
