"""The stochastic Lotka-Volterra benchmark (Wang, Verma, Baptista, Marzouk, Ruthotto 2023) as
simulation data: prior draws, their 9 summary statistics, the observation y*, cached on disk."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from tqdm.auto import tqdm

from ctdl.sbi.lotka_volterra import (
    MAX_EVENTS,
    SIMULATOR_VERSION,
    THETA_STAR,
    Y_STAR,
    sample_prior,
    simulate_statistics,
)

from .simulation import SimulationData


class LotkaVolterra(SimulationData):
    """Pairs (theta, y): theta from the prior log theta ~ U[-5, 2]^4, y the 9 summary statistics of
    one exact simulation of the stochastic Lotka-Volterra process (`ctdl.sbi.lotka_volterra`).

    Batches are (theta_z, y_z): log theta and y z-scored with the training split's means and
    standard deviations (`theta_mean`, `theta_std`, `y_mean`, `y_std`, float64 tensors, so that a
    model can keep them in its checkpoint and take raw y, return raw theta). `num_simulations`
    pairs are split 90/10 into training and validation; the test split is `n_test` further
    simulations. `dim` = 4, `cond_dim` = 9; `observation()` is the benchmark's y*.

    Failed simulations (more than 10,000 events before t = 30) have no statistics. They are
    redrawn from the prior until every pair has one, and counted: `n_failed` (all splits) and
    `failed_counts` ((n, seed) of each batch of simulations -> failures), also printed. Redrawing
    truncates the prior to the parameters whose simulation finishes: the pairs follow
    p(theta | finished) p(y | theta, finished). The posterior of any y a simulation can produce is
    unchanged by this, since observing y implies the simulation finished:
    p(theta) P(finished | theta) p(y | theta, finished) = p(theta) p(y | theta).

    Simulating shows a progress bar, uses every core (`workers`) and is cached in `cache_dir` as
    ``lotka_volterra_v<SIMULATOR_VERSION>_n<n>_seed<seed>.npz``: a second construction with the
    same settings loads the pairs instead of simulating them. Under DDP ``prepare_data`` (rank 0)
    simulates, and every rank reads the cache.
    """

    log_params = True

    def __init__(
        self,
        num_simulations: int = 50_000,
        val_fraction: float = 0.1,
        n_test: int = 1000,
        cache_dir: str | None = "data/cache",
        workers: int | None = None,
        observations: str | None = None,
        batch_size: int = 512,
        seed: int = 0,
        num_workers: int = 0,
        extra_simulations: str | None = None,
    ) -> None:
        """
        Args:
            num_simulations: the simulation budget (training + validation pairs).
            val_fraction: share of the budget held out for validation.
            n_test: further simulations for the test split (not counted in the budget).
            cache_dir: folder of the cached simulations (created if missing); None: no cache.
            workers: simulator processes (default: every usable core); results do not depend on it.
            observations: raw observations for ``ctdl predict`` (.npy or .csv, one per row);
                default: y*.
            batch_size, seed, num_workers: as every ctdl datamodule.
            extra_simulations: an .npz of further raw pairs (theta rates, y) appended to training and
                validation (sequential rounds; `SimulationData`).
        """
        super().__init__(
            num_simulations,
            val_fraction,
            n_test,
            observations,
            batch_size,
            seed,
            num_workers,
            extra_simulations,
        )
        self.save_hyperparameters()
        self.dim, self.cond_dim = 4, 9
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.workers = workers
        self.failed_counts: dict[tuple[int, int], int] = {}

    @property
    def n_failed(self) -> int:
        """Failed simulations redrawn so far, over every batch simulated or loaded."""
        return sum(self.failed_counts.values())

    def observation(self, i: int = 1) -> torch.Tensor:
        """The benchmark's observation y* (9,), raw: the statistics of one simulation at THETA_STAR."""
        if i != 1:
            raise ValueError(f"LotkaVolterra has one observation (i = 1), got {i}")
        return torch.from_numpy(Y_STAR.copy())

    def task_observations(self) -> torch.Tensor:
        return self.observation()[None]

    @staticmethod
    def true_parameters() -> torch.Tensor:
        """theta* (4,), the rates y* was simulated at."""
        return torch.from_numpy(THETA_STAR.copy())

    def sample_prior(self, n: int, seed: int) -> torch.Tensor:
        """n prior draws (n, 4) rates (log theta ~ U[-5, 2]^4), float64."""
        return torch.from_numpy(sample_prior(n, np.random.default_rng(seed)))

    def simulate_at(self, theta: torch.Tensor, seed: int) -> torch.Tensor:
        """The 9 statistics (n, 9) of one simulation at each row of theta (n, 4) rates; NaN rows for
        failed simulations (more than 10,000 events)."""
        rates = torch.as_tensor(theta).double().cpu().numpy()
        return torch.from_numpy(simulate_statistics(rates, seed, workers=self.workers))

    def simulate_series(self, theta: torch.Tensor, seed: int):
        """The recorded (X, Y) series (n, 150, 2) of one simulation at each row of theta (n, 4) rates,
        NaN rows for failed ones (`ctdl.protocols.PredictiveSimulator`, posterior predictive checks)."""
        from ctdl.protocols import SimulatedSeries
        from ctdl.sbi import lotka_volterra as simulator

        sim = simulator.simulate_series(
            torch.as_tensor(theta).double().cpu().numpy(), seed, workers=self.workers
        )
        return SimulatedSeries(
            torch.from_numpy(simulator.T_RECORD.copy()),
            torch.from_numpy(sim.series),
            torch.from_numpy(sim.failed),
            ("X (predators)", "Y (prey)"),
        )

    def prepare_data(self) -> None:
        """Simulate (or find) every split's pairs once, on one process, into the cache."""
        if self.cache_dir is not None:
            self.make_splits()

    def simulate(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n pairs (theta (n, 4) rates, y (n, 9)), float64, from `seed` alone; cached."""
        path = (
            None
            if self.cache_dir is None
            else (self.cache_dir / f"lotka_volterra_v{SIMULATOR_VERSION}_n{n}_seed{seed}.npz")
        )
        if path is not None and path.is_file():
            with np.load(path) as saved:
                theta, y, failed = saved["theta"], saved["y"], int(saved["n_failed"])
            source = f"loaded from {path}"
        else:
            theta, y, failed = simulate_pairs(n, seed, self.workers)
            source = "simulated"
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npz")
                np.savez(partial, theta=theta, y=y, n_failed=failed)
                os.replace(partial, path)
                source += f", cached in {path}"
        self.failed_counts[(n, seed)] = failed
        rank_zero_info(
            f"LotkaVolterra: {n} pairs (seed {seed}) {source}; {failed} simulations failed "
            f"(more than {MAX_EVENTS} events) and were redrawn from the prior"
        )
        return torch.from_numpy(theta), torch.from_numpy(y)


def simulate_pairs(
    n: int, seed: int, workers: int | None = None, progress: bool = True
) -> tuple[np.ndarray, np.ndarray, int]:
    """n prior draws theta whose simulations finish, their statistics y, and the failures redrawn.

    Candidates are drawn from the prior and simulated in rounds (each round asks for a few more than
    the failure rate so far says it needs) and taken in order until n have finished: a sequential
    redraw of each failure. The failures counted are those among the candidates taken (up to the
    n-th finished one). Everything comes from `seed`.
    """
    prior = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    thetas, ys, failed, done, rounds = [], [], 0, 0, 0
    with tqdm(
        total=n, desc=f"Lotka-Volterra simulations (seed {seed})", unit="sim", disable=not progress
    ) as bar:
        while done < n:
            need = n - done
            share = 1.0 if rounds == 0 else max((done + 1) / (done + failed + 1), 0.05)
            m = need if rounds == 0 else math.ceil(1.2 * need / share) + 8
            theta = sample_prior(m, prior)
            sim_seed = int(np.random.SeedSequence(seed, spawn_key=(1, rounds)).generate_state(1)[0])
            if rounds:
                bar.total += m
            y = simulate_statistics(theta, sim_seed, workers=workers, progress=bar.update)
            ok = ~np.isnan(y).any(axis=1)
            take = np.flatnonzero(ok)[:need]
            last = take[-1] + 1 if take.size == need else m  # candidates consumed in order
            failed += int((~ok[:last]).sum())
            thetas.append(theta[take])
            ys.append(y[take])
            done += take.size
            rounds += 1
        bar.set_postfix(failed=failed)
    return np.concatenate(thetas), np.concatenate(ys), failed
