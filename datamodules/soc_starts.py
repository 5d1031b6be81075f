"""Start points of a control problem, with the reference value Phi(0, x0) of each evaluation start."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from ctdl.soc import make_problem, reference_value

from .base import Splits, TensorDataModule


class ControlStarts(TensorDataModule):
    """Draws of X_0 from a control problem's start law (`ctdl.soc.PROBLEMS`): `num_train` for
    training, batches (x0,); `num_val` and `num_test` for evaluation, batches (x0, Phi_ref(0, x0))
    with the problem's reference value (`ctdl.soc.reference_value`; NaN where there is none,
    as for the quadcopter). States the facts `dim`, `problem` and `problem_args`, which the `ctdl`
    command links into the model, so a config names the problem once, here."""

    def __init__(
        self,
        problem: str = "hjb_lq",
        problem_args: dict | None = None,
        num_train: int = 16384,
        num_val: int = 256,
        num_test: int = 1024,
        batch_size: int = 64,
        seed: int = 0,
        num_workers: int = 0,
        reference_samples: int | None = None,
        fem_mesh: int = 149,
        fem_dt: float = 1e-3,
    ) -> None:
        """
        Args:
            problem: the problem's name; an unknown name lists the known ones.
            problem_args: the problem's constructor keywords (e.g. {dim: 100, lam: 1.0, target: 0.5}).
            num_train, num_val, num_test: start points of the three splits.
            batch_size, seed, num_workers: as for every ctdl datamodule.
            reference_samples: None: the exact Cole-Hopf quadrature (hjb_lq); a number: Monte Carlo
                with that many draws per point (a check).
            fem_mesh, fem_dt: cells per side and time step of the finite-element reference (obstacle).
        """
        super().__init__(batch_size, seed, num_workers)
        for name, n in dict(num_train=num_train, num_val=num_val, num_test=num_test).items():
            if n < 1:
                raise ValueError(f"{name} must be >= 1, got {n}")
        self.problem, self.problem_args = problem, dict(problem_args or {})
        self.control_problem = make_problem(problem, **self.problem_args)
        self.dim = self.control_problem.dim
        self.num_train, self.num_val, self.num_test = num_train, num_val, num_test
        self.reference_samples, self.fem_mesh, self.fem_dt = reference_samples, fem_mesh, fem_dt

    def reference(self, x0: Tensor) -> Tensor:
        """Phi_ref(0, x0) (n,) float64, computed once per distinct start; NaN without a reference."""
        value = reference_value(
            self.control_problem, samples=self.reference_samples, mesh=self.fem_mesh, dt=self.fem_dt
        )
        if value is None:
            return torch.full((len(x0),), math.nan, dtype=torch.float64)
        unique, inverse = torch.unique(x0, dim=0, return_inverse=True)
        return value(0.0, unique)[inverse]

    def make_splits(self) -> Splits:
        gens = [torch.Generator().manual_seed(int(rng.integers(2**62))) for rng in self.streams(3)]
        draw = self.control_problem.sample_start
        train = draw(self.num_train, gens[0], torch.float32)
        val, test = draw(self.num_val, gens[1]), draw(self.num_test, gens[2])
        return (
            TensorDataset(train),
            TensorDataset(val.float(), self.reference(val)),
            TensorDataset(test.float(), self.reference(test)),
        )
