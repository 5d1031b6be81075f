"""FFJORD's 2-D toy densities as a LightningDataModule. The densities themselves (samplers and
closed-form log densities) are plain functions in `ctdl.otflow.toys`."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from ctdl.otflow.toys import TOY_NAMES, TOYS_WITH_DENSITY, check_toy, make_toy_density, toy_log_density

from .base import Splits, TensorDataModule

__all__ = ["TOY_NAMES", "TOYS_WITH_DENSITY", "Toy2DDensity", "make_toy_density", "toy_log_density"]


class Toy2DDensity(TensorDataModule):
    """FFJORD's 2-D toy densities held in memory: batches are 1-tuples (x,) of float32 (b, 2).

    Train, validation and test come from independent child streams of ``SeedSequence(seed)``.
    ``log_density(x)`` is the true log density where it is known (8gaussians, checkerboard, circles,
    rings; `ctdl.protocols.KnownDensity`). Fresh points beyond the splits: ``make_toy_density``.
    """

    def __init__(
        self,
        dataset: str = "8gaussians",
        n_train: int = 100_000,
        n_val: int = 10_000,
        n_test: int = 10_000,
        batch_size: int = 4096,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        """Configure the data set.

        Args:
            dataset: one of 8gaussians, checkerboard, swissroll, pinwheel, 2spirals, circles,
                moons, rings.
            n_train: number of training points.
            n_val: number of validation points.
            n_test: number of test points.
            batch_size: mini-batch size of every loader.
            seed: the only source of randomness (data and training-loader shuffling).
            num_workers: DataLoader worker processes.
        """
        super().__init__(batch_size=batch_size, seed=seed, num_workers=num_workers)
        check_toy(dataset)
        self.save_hyperparameters()
        self.name = dataset
        self.n_train, self.n_val, self.n_test = n_train, n_val, n_test
        self.dim = 2
        self.input_shape = [2]

    @property
    def has_log_density(self) -> bool:
        """Whether the true density of this toy is known in closed form."""
        return self.name in TOYS_WITH_DENSITY

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        """True log density at x (n, 2), shape (n,); see toy_log_density."""
        return toy_log_density(self.name, x)

    def make_splits(self) -> Splits:
        """The three splits (float32), each from its own child stream of the seed."""
        sizes = (self.n_train, self.n_val, self.n_test)
        return tuple(
            TensorDataset(torch.from_numpy(make_toy_density(self.name, n, rng)).float())
            for n, rng in zip(sizes, self.streams(3), strict=True)
        )
