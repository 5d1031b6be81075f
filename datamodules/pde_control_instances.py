"""Random (velocity, source) instances of the source-mitigation PDE
(`ctdl.pde_control.AdvectionDiffusion`)."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from ctdl.pde_control import AdvectionDiffusion

from .base import Splits, TensorDataModule


class PDEInstances(TensorDataModule):
    """Draws of the parameters of (v, f) (`AdvectionDiffusion.sample_params`): `num_train` for training,
    `num_val` and `num_test` held out; batches are (params,) with params (B, P) float64. States the
    fact `pde_args`, which the `ctdl` command links into the model, so a config states the PDE once."""

    def __init__(
        self,
        pde_args: dict | None = None,
        num_train: int = 1024,
        num_val: int = 32,
        num_test: int = 100,
        batch_size: int = 16,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        """
        Args:
            pde_args: keywords of `ctdl.pde_control.AdvectionDiffusion` (cells, steps, kappa, actuators,
                a_max, ...).
            num_train, num_val, num_test: instances of the three splits.
            batch_size, seed, num_workers: as for every ctdl datamodule.
        """
        super().__init__(batch_size, seed, num_workers)
        for name, n in dict(num_train=num_train, num_val=num_val, num_test=num_test).items():
            if n < 1:
                raise ValueError(f"{name} must be >= 1, got {n}")
        self.pde = AdvectionDiffusion(**(pde_args or {}))  # checks the constants; assembles on first use
        self.pde_args = self.pde.args()
        self.num_train, self.num_val, self.num_test = num_train, num_val, num_test

    def make_splits(self) -> Splits:
        gens = [torch.Generator().manual_seed(int(rng.integers(2**62))) for rng in self.streams(3)]
        sizes = (self.num_train, self.num_val, self.num_test)
        return tuple(TensorDataset(self.pde.sample_params(n, g)) for n, g in zip(sizes, gens, strict=True))
