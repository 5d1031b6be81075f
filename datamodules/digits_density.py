"""scikit-learn's 1,797 8x8 digits as a 64-d density, uniformly dequantised and standardised
per pixel (ships with the package: no download)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from .base import Splits, TensorDataModule


class DigitsDensity(TensorDataModule):
    """scikit-learn's 8x8 digits as a 64-d density: dequantised and standardised per pixel.

    u = (v + e) / 17 with v in {0..16} and e ~ U[0, 1) drawn once from the seed (so u is a
    continuous variable in [0, 1)), then x = (u - mean) / std with the training split's
    per-pixel mean and std (std at least 1e-3). A seeded permutation splits the 1,797 images
    into train / n_val / n_test. ``mean`` and ``std`` (64,) map samples back:
    u = x * std + mean; a density in x converts to one in u by log p_u = log p_x - sum(log std)
    (``log_det_standardise`` holds -sum(log std)).
    """

    def __init__(
        self,
        batch_size: int = 256,
        n_val: int = 180,
        n_test: int = 360,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        """Configure the data set.

        Args:
            batch_size: mini-batch size of every loader.
            n_val: validation images.
            n_test: test images.
            seed: the only source of randomness (split, dequantisation noise, shuffling).
            num_workers: DataLoader worker processes.
        """
        super().__init__(batch_size=batch_size, seed=seed, num_workers=num_workers)
        self.save_hyperparameters()
        if n_val < 0 or n_test < 0 or n_val + n_test >= 1797:
            raise ValueError(f"n_val={n_val} and n_test={n_test} leave no digits for training (1,797 in all)")
        self.name = "digits"
        self.n_val, self.n_test = n_val, n_test
        self.dim = 64
        self.input_shape = [64]
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None
        self.log_det_standardise: float | None = None

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """Map standardised points (n, 64) back to the dequantised pixel scale [0, 1) (not clipped)."""
        if self.mean is None or self.std is None:
            raise RuntimeError("call setup() before to_unit()")
        return x * self.std.to(x) + self.mean.to(x)

    def make_splits(self) -> Splits:
        """Load, dequantise, split and standardise."""
        from sklearn.datasets import load_digits

        v = load_digits().data.astype(np.float64)  # (1797, 64), values 0..16
        split_rng, noise_rng = self.streams(2)
        u = (v + noise_rng.uniform(size=v.shape)) / 17.0
        perm = split_rng.permutation(len(u))
        test_idx, val_idx = perm[: self.n_test], perm[self.n_test : self.n_test + self.n_val]
        train_idx = perm[self.n_test + self.n_val :]
        mean = u[train_idx].mean(axis=0)
        std = np.maximum(u[train_idx].std(axis=0), 1e-3)
        self.mean = torch.from_numpy(mean).float()
        self.std = torch.from_numpy(std).float()
        self.log_det_standardise = float(-np.log(std).sum())

        def tensor(idx: np.ndarray) -> TensorDataset:
            return TensorDataset(torch.from_numpy((u[idx] - mean) / std).float())

        return tensor(train_idx), tensor(val_idx), tensor(test_idx)
