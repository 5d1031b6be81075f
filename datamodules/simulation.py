"""Data for simulation-based inference: (parameter, statistic) pairs drawn from a prior and a
simulator, standardised with the training split's statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from .base import Splits, TensorDataModule


class SimulationData(TensorDataModule):
    """Pairs (theta, y) with theta ~ prior and y ~ simulator(theta), for learning pi(theta | y).

    Batches are (u, v) float32 pairs: u = (f(theta) - theta_mean) / theta_std with f = log when
    `log_params` (positive parameters, as Lotka-Volterra's rates) else the identity, and
    v = (y - y_mean) / y_std; the four statistics (float64, `ctdl.protocols.PosteriorData`) come
    from the training split, so a model that stores them takes raw y and returns raw theta.
    `num_simulations` pairs are split (1 - val_fraction) / val_fraction into training and
    validation; the test split is `n_test` further simulations. ``ctdl predict`` reads raw
    observations (one per row) from `observations` (.npy or .csv), or else uses the task's own.

    `extra_simulations` names an .npz file of further raw pairs (arrays `theta` (m, dim), `y`
    (m, cond_dim)), e.g. the truncated-prior rounds of sequential estimation
    (`ctdl.sbi.TruncatedPrior`): they are split like the budget and appended to its training and
    validation pairs, standardised with the budget's statistics (so a model warm-started from an
    earlier round keeps its units).

    A subclass sets `dim`, `cond_dim` (and `log_params`) in ``__init__`` and defines `simulate`,
    and for sequential rounds `sample_prior` and `simulate_at`.
    """

    log_params: bool = False

    def __init__(
        self,
        num_simulations: int,
        val_fraction: float = 0.1,
        n_test: int = 1000,
        observations: str | None = None,
        batch_size: int = 512,
        seed: int = 0,
        num_workers: int = 0,
        extra_simulations: str | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed, num_workers=num_workers)
        if num_simulations < 10:
            raise ValueError(f"num_simulations must be >= 10, got {num_simulations}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.num_simulations, self.val_fraction, self.n_test = num_simulations, val_fraction, n_test
        self.observations_file, self.extra_simulations = observations, extra_simulations
        self.theta_mean = self.theta_std = self.y_mean = self.y_std = None

    # ----------------------------------------------------------------- what a subclass defines
    def simulate(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """n pairs (theta (n, dim), y (n, cond_dim)), raw units, float64, from `seed` alone."""
        raise NotImplementedError(f"{type(self).__name__} must define simulate(n, seed)")

    def sample_prior(self, n: int, seed: int) -> torch.Tensor:
        """n prior draws theta (n, dim), raw units, float64, from `seed` alone."""
        raise NotImplementedError(
            f"{type(self).__name__} must define sample_prior(n, seed) for sequential rounds"
        )

    def simulate_at(self, theta: torch.Tensor, seed: int) -> torch.Tensor:
        """One simulation's statistics y (n, cond_dim), raw, float64, at each row of theta (n, dim)
        (raw), from `seed` alone; NaN rows for simulations that failed."""
        raise NotImplementedError(
            f"{type(self).__name__} must define simulate_at(theta, seed) for sequential rounds"
        )

    def task_observations(self) -> torch.Tensor | None:
        """The task's own observations (k, cond_dim) in raw units, if it has any."""
        return None

    # ------------------------------------------------------------------------------ splits
    def split_seeds(self) -> tuple[int, int, int]:
        """The seeds SeedSequence(seed) gives the budget's simulations, the test split's
        simulations and the training/validation permutation, in that order."""
        budget, test, split = np.random.SeedSequence(self.seed).generate_state(3)
        return int(budget), int(test), int(split)

    def simulate_budget(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The `num_simulations` pairs (theta, y), raw, that the training and validation splits are
        cut from: what a baseline trained on the same simulations gets."""
        return self.simulate(self.num_simulations, self.split_seeds()[0])

    def make_splits(self) -> Splits:
        _, test_seed, split_seed = self.split_seeds()
        theta, y = self.simulate_budget()
        order = torch.from_numpy(np.random.default_rng(split_seed).permutation(self.num_simulations))
        n_val = max(1, round(self.val_fraction * self.num_simulations))
        val_idx, train_idx = order[:n_val], order[n_val:]
        u = self.param_transform(theta)
        self.theta_mean, self.theta_std = _mean_std(u[train_idx])
        self.y_mean, self.y_std = _mean_std(y[train_idx])
        test_theta, test_y = self.simulate(self.n_test, test_seed)
        train_u, train_y, val_u, val_y = u[train_idx], y[train_idx], u[val_idx], y[val_idx]
        if self.extra_simulations is not None:
            extra_theta, extra_y = self.load_extra_simulations()
            extra_u = self.param_transform(extra_theta)
            order = torch.from_numpy(np.random.default_rng([split_seed, 1]).permutation(len(extra_u)))
            k = round(self.val_fraction * len(extra_u))
            val, train = order[:k], order[k:]
            train_u, train_y = torch.cat([train_u, extra_u[train]]), torch.cat([train_y, extra_y[train]])
            val_u, val_y = torch.cat([val_u, extra_u[val]]), torch.cat([val_y, extra_y[val]])

        def pairs(u: torch.Tensor, y: torch.Tensor) -> TensorDataset:
            u = (u - self.theta_mean) / self.theta_std
            v = (y - self.y_mean) / self.y_std
            return TensorDataset(u.float(), v.float())

        return (
            pairs(train_u, train_y),
            pairs(val_u, val_y),
            pairs(self.param_transform(test_theta), test_y),
        )

    def load_extra_simulations(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The raw pairs (theta (m, dim), y (m, cond_dim)) of the `extra_simulations` file."""
        path = Path(self.extra_simulations)
        if not path.is_file():
            raise FileNotFoundError(
                f"--data.extra_simulations: no file at {path} (an .npz with arrays theta (m, {self.dim}) "
                f"and y (m, {self.cond_dim}), raw units, as scripts/bench_sbi.py sequential writes)"
            )
        with np.load(path, allow_pickle=False) as saved:
            missing = {"theta", "y"} - set(saved.files)
            if missing:
                raise ValueError(f"{path}: needs arrays theta and y; missing {sorted(missing)}")
            theta, y = (torch.from_numpy(np.asarray(saved[k], dtype=np.float64)) for k in ("theta", "y"))
        if theta.ndim != 2 or theta.shape[1] != self.dim or y.ndim != 2 or y.shape[1] != self.cond_dim:
            raise ValueError(
                f"{path}: theta must be (m, {self.dim}) and y (m, {self.cond_dim}) for this task, "
                f"got {tuple(theta.shape)} and {tuple(y.shape)}"
            )
        if len(theta) != len(y):
            raise ValueError(f"{path}: {len(theta)} parameters but {len(y)} observations")
        if not (torch.isfinite(theta).all() and torch.isfinite(y).all()):
            raise ValueError(f"{path}: theta and y must be finite (leave failed simulations out)")
        return theta, y

    def param_transform(self, theta: torch.Tensor) -> torch.Tensor:
        """f(theta): log theta when `log_params`, else theta."""
        if self.log_params:
            if (theta <= 0).any():
                raise ValueError("log_params needs positive parameters; got theta <= 0")
            return theta.log()
        return theta

    # ------------------------------------------------------------------------ observations
    def check_observations(self, y: torch.Tensor, source: str) -> torch.Tensor:
        """Raw observations as a (k, cond_dim) float64 tensor; names the shapes when they do not fit."""
        y = torch.as_tensor(y, dtype=torch.float64)
        if y.ndim == 1:
            y = y[None]
        if y.ndim != 2 or y.shape[1] != self.cond_dim:
            raise ValueError(
                f"{source}: an observation has {self.cond_dim} statistics for this task, "
                f"got an array of shape {tuple(y.shape)} (one observation per row)"
            )
        if not torch.isfinite(y).all():
            rows = torch.nonzero(~torch.isfinite(y).all(1)).flatten().tolist()
            raise ValueError(f"{source}: observation rows {rows} hold NaN or inf values")
        return y

    def load_observations(self) -> torch.Tensor:
        """The observations ``ctdl predict`` conditions on, raw, (k, cond_dim)."""
        if self.observations_file is None:
            own = self.task_observations()
            if own is None:
                raise ValueError(
                    f"{type(self).__name__} has no observations of its own: pass "
                    "--data.observations PATH (.npy or .csv, raw units, one per row)"
                )
            return self.check_observations(own, type(self).__name__)
        path = Path(self.observations_file)
        if not path.is_file():
            raise FileNotFoundError(
                f"--data.observations: no file at {path} (a .npy array or a .csv "
                f"with {self.cond_dim} numbers per row, raw units)"
            )
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif path.suffix == ".csv":
            array = _read_csv(path)
        else:
            raise ValueError(f"--data.observations: {path.name} is neither .npy nor .csv")
        return self.check_observations(torch.from_numpy(np.asarray(array, dtype=np.float64)), str(path))

    def predict_dataloader(self) -> DataLoader:
        """The raw observations, one per item, in order."""
        return DataLoader(TensorDataset(self.load_observations()), batch_size=self.batch_size)


def _mean_std(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Column means and standard deviations (at least 1e-8, so constant columns stay finite)."""
    return a.mean(0), a.std(0).clamp_min(1e-8)


def _read_csv(path: Path) -> np.ndarray:
    """Numbers from a CSV file; a first row that is not numeric is taken as a header."""
    rows = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    try:
        float(rows[0].split(",")[0])
    except ValueError:
        rows = rows[1:]
    try:
        return np.array([[float(v) for v in row.split(",")] for row in rows], dtype=np.float64)
    except ValueError as error:
        raise ValueError(f"{path}: every row after the header must hold numbers only ({error})") from error
