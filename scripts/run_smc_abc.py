"""SMC-ABC (ctdl.abc.smc_abc) on the stochastic Lotka-Volterra model at the observation y*: the
reference posterior that amortised inference is compared with, and its cost in simulations.

Settings of Wang et al. (2023) by default: 2,000 particles, eps_0 = 10, eps_{k+1} = 0.85 eps_k,
Euclidean distance on statistics z-scored with the mean and std of a set of prior simulations
(--scale-simulations, failed ones left out), Gaussian perturbation in log theta with twice the
weighted covariance, resampling at ESS < 0.5 N. It stops at --eps-final, --max-simulations or
--max-rounds, whichever comes first (the record says which). Every simulation is counted: the
prior set, failed simulations (rejected) and the surplus of a batch; proposals outside the prior
are dropped without simulating and counted apart.

Writes the final population to --out (log theta, (N, 4)), with <out stem>_theta.npy (theta) and
<out stem>_weights.npy (importance weights) next to it, and the record (simulations, wall time,
tolerances, acceptance rates, posterior means and standard deviations) to --json. When the budget
runs out in the middle of a round, that round is dropped (its simulations stay in `simulations`;
`simulations_to_final_population` leaves them out).

    python scripts/run_smc_abc.py [--particles 2000] [--max-simulations 5000000] [--eps-final E]
        [--max-rounds R] [--workers N] [--seed 0] [--out data/abc/lotka_volterra_abc.npy]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from ctdl.abc import smc_abc
from ctdl.simulators.lotka_volterra import (
    MAX_EVENTS,
    PRIOR_HIGH,
    PRIOR_LOW,
    SIMULATOR_VERSION,
    STATISTICS,
    THETA_STAR,
    Y_STAR,
    sample_prior,
    simulate_statistics,
)

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--particles", type=int, default=2000)
    parser.add_argument("--eps0", type=float, default=10.0)
    parser.add_argument("--decay", type=float, default=0.85)
    parser.add_argument(
        "--eps-final", type=float, default=None, help="stop after the round at this tolerance"
    )
    parser.add_argument(
        "--max-simulations",
        type=int,
        default=5_000_000,
        help="simulation budget, all simulations counted (0: none)",
    )
    parser.add_argument(
        "--max-rounds", type=int, default=None, help="stop after this many rounds (round 0 included)"
    )
    parser.add_argument(
        "--scale-simulations",
        type=int,
        default=10_000,
        help="prior simulations whose statistics' mean and std z-score the distance",
    )
    parser.add_argument("--min-batch", type=int, default=4000, help="fewest candidates per simulator call")
    parser.add_argument("--max-batch", type=int, default=40_000, help="most candidates per simulator call")
    parser.add_argument("--workers", type=int, default=None, help="simulator processes (default: all cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "data/abc/lotka_volterra_abc.npy",
        help="where the samples (log theta) go",
    )
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/lotka_volterra_abc.json")
    args = parser.parse_args()

    def simulator(theta: np.ndarray, seed: int) -> np.ndarray:
        return simulate_statistics(theta, seed, workers=args.workers)

    def report(r: dict) -> None:
        print(
            f"round {r['round']:2d}  eps {r['eps']:.4f}  simulations {r['simulations']:>9,d}  "
            f"total {r['total_simulations']:>10,d}  acceptance {r['acceptance_rate']:.4f}  "
            f"ESS {r['ess']:7.1f}{' (resampled)' if r['resampled'] else ''}  failed {r['failed']:,d}  "
            f"outside prior {r['outside_prior']:,d}  {r['seconds']:.0f} s",
            flush=True,
        )

    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    res = smc_abc(
        simulator,
        sample_prior,
        (PRIOR_LOW, PRIOR_HIGH),
        Y_STAR,
        particles=args.particles,
        eps0=args.eps0,
        decay=args.decay,
        eps_final=args.eps_final,
        max_simulations=args.max_simulations or None,
        max_rounds=args.max_rounds,
        scale_simulations=args.scale_simulations,
        min_batch=args.min_batch,
        max_batch=args.max_batch,
        seed=args.seed,
        callback=report,
    )
    wall = time.perf_counter() - t0

    args.out.parent.mkdir(parents=True, exist_ok=True)
    paths = {
        "log_theta": args.out,
        "theta": args.out.with_name(args.out.stem + "_theta.npy"),
        "weights": args.out.with_name(args.out.stem + "_weights.npy"),
    }
    for key, value in (("log_theta", res.samples), ("theta", res.theta), ("weights", res.weights)):
        np.save(paths[key], value)

    from bench_common import environment  # here: the simulator's worker processes need no torch

    summary = res.summary()
    theta_mean = res.weights @ res.theta
    result = {
        "env": environment(),
        "numpy": np.__version__,
        "setup": (
            f"SMC-ABC at y* on the stochastic Lotka-Volterra model (simulator version "
            f"{SIMULATOR_VERSION}, failure after {MAX_EVENTS} events); prior log theta ~ "
            f"U[{PRIOR_LOW}, {PRIOR_HIGH}]^4; distance: Euclidean on the 9 statistics z-scored with "
            f"the mean and std of {res.scale_simulations} prior simulations (seeded from --seed; "
            "failed ones left out of the mean and std, counted); Gaussian perturbation in log theta "
            "with 2x the weighted covariance; tolerances max(eps0 * decay^k, eps_final); "
            "resampling at ESS < 0.5 N"
        ),
        "counting": (
            "simulations counts every simulation run: the prior set for the z-score, failed "
            "simulations (rejected) and those of a batch after its N-th acceptance; proposals "
            "outside the prior box are dropped without simulating and counted apart "
            "(record.outside_prior_per_round)"
        ),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "command": "python scripts/run_smc_abc.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in vars(args).items()
            if v is not None and k not in ("out", "json")
        ),
        "workers": args.workers or len(os.sched_getaffinity(0)),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "simulations": res.simulations,
        "simulations_to_final_population": res.simulations - (res.unfinished or {}).get("simulations", 0),
        "wall_time_s": round(wall, 2),
        "simulations_per_s": round(res.simulations / wall),
        "stop_reason": res.stop_reason,
        "final_eps": summary["final_eps"],
        "statistics": list(STATISTICS),
        "observation": Y_STAR.tolist(),
        "log_theta_star": np.log(THETA_STAR).tolist(),
        "posterior_mean_log_theta": res.mean().tolist(),
        "posterior_std_log_theta": res.std().tolist(),
        "posterior_mean_theta": theta_mean.tolist(),
        "posterior_std_theta": np.sqrt(res.weights @ (res.theta - theta_mean) ** 2).tolist(),
        "samples": {
            k: str(v.resolve().relative_to(ROOT) if v.resolve().is_relative_to(ROOT) else v)
            for k, v in paths.items()
        },
        "record": summary,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k not in ("record", "env")}, indent=2))


if __name__ == "__main__":
    main()
