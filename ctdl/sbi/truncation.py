"""The truncated prior of truncated sequential posterior estimation (TSNPE; Deistler, Goncalves and
Macke, NeurIPS 2022): later rounds simulate where the posterior of one observation y_o lives.

With a posterior estimate q(theta | y_o), the highest-probability region of mass 1 - epsilon is

    HPR = {theta : log q(theta | y_o) >= tau},   tau = the epsilon-quantile of log q(Theta | y_o), Theta ~ q,

and the proposal of the next round is the prior truncated to it, p~(theta) ∝ p(theta) 1[theta in HPR],
drawn by rejection from the prior. Training on prior and truncated-prior pairs with the plain
maximum-likelihood loss keeps the posterior correct inside the HPR: there the proposal is the prior
up to a constant, so the pairs' conditional law of theta given y is the posterior restricted to the
region (the truncation removes only mass q judged negligible).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

__all__ = ["DensityPosterior", "TruncatedPrior", "Round", "draw_round"]


class DensityPosterior(Protocol):
    """What the truncation needs of a posterior estimate (e.g. `ctdl.sbi.FlowPosterior`), raw units."""

    def sample(self, n: int, y: Tensor, *, generator: torch.Generator | None = None) -> Tensor: ...

    def log_prob(self, theta: Tensor, y: Tensor) -> Tensor: ...


class TruncatedPrior:
    """The prior truncated to the (1 - epsilon) highest-probability region of `posterior` at `y`.

    Args:
        posterior: the current posterior estimate.
        y: the observation (q,), raw units.
        sample_prior: (n, seed) -> n prior draws (n, d), raw units.
        epsilon: the posterior mass left outside the region (Deistler et al. use 1e-4).
        samples: posterior samples that set the threshold (at least 10 / epsilon).
        seed: seeds the threshold's samples.
        batch: prior draws per rejection batch.
    """

    def __init__(
        self,
        posterior: DensityPosterior,
        y: Tensor,
        sample_prior: Callable[[int, int], Tensor],
        epsilon: float = 1e-3,
        samples: int = 20_000,
        seed: int = 0,
        batch: int = 10_000,
    ) -> None:
        if not 0.0 < epsilon < 1.0:
            raise ValueError(f"epsilon must be in (0, 1) (the posterior mass left out), got {epsilon}")
        if samples * epsilon < 10:
            raise ValueError(
                f"{samples} posterior samples cannot place the {epsilon:g}-quantile: use at least "
                f"{math.ceil(10 / epsilon)} (10 / epsilon)"
            )
        self.posterior, self.y, self.sample_prior = posterior, y, sample_prior
        self.epsilon, self.batch = float(epsilon), int(batch)
        with torch.no_grad():
            draws = posterior.sample(samples, y, generator=torch.Generator().manual_seed(seed))
            log_q = posterior.log_prob(draws, y).double()
        self.threshold = float(torch.quantile(log_q, self.epsilon))
        self.accepted = self.drawn = 0

    @property
    def acceptance(self) -> float:
        """The share of prior draws inside the region so far (its prior mass); NaN before any draw."""
        return self.accepted / self.drawn if self.drawn else math.nan

    def contains(self, theta: Tensor) -> Tensor:
        """Whether each row of theta (n, d) lies in the region, (n,) bool."""
        with torch.no_grad():
            return self.posterior.log_prob(theta, self.y).double() >= self.threshold

    def sample(self, n: int, seed: int, max_draws: int = 10_000_000) -> Tensor:
        """n draws (n, d) of the truncated prior, by rejection from the prior in batches seeded from
        `seed`; a RuntimeError after `max_draws` prior draws (the region's prior mass is too small
        for rejection)."""
        kept, have, k = [], 0, 0
        while have < n:
            if self.drawn >= max_draws:
                raise RuntimeError(
                    f"the truncated prior accepted {have} of {self.drawn} prior draws (acceptance "
                    f"{self.acceptance:.2e}); its prior mass is too small for rejection sampling: "
                    "raise max_draws, raise epsilon, or train the first round on more simulations"
                )
            theta = self.sample_prior(self.batch, seed * 1_000_003 + k)
            inside = theta[self.contains(theta)]
            self.drawn += len(theta)
            self.accepted += len(inside)
            kept.append(inside)
            have += len(inside)
            k += 1
        return torch.cat(kept)[:n]


@dataclass
class Round:
    """One sequential round: its pairs (theta (n, d), y (n, q), raw), the simulations it ran (failed
    ones included), the failures, the region's threshold and the prior draws' acceptance."""

    theta: Tensor
    y: Tensor
    simulations: int
    failed: int
    threshold: float
    acceptance: float


def draw_round(
    truncated: TruncatedPrior, simulate_at: Callable[[Tensor, int], Tensor], n: int, seed: int
) -> Round:
    """n pairs from the truncated prior: draws, one simulation at each (simulate_at(theta, seed) ->
    y with NaN rows for failures), failed ones redrawn from the truncated prior and counted."""
    thetas, ys, simulations, k = [], [], 0, 0
    while sum(len(t) for t in thetas) < n:
        need = n - sum(len(t) for t in thetas)
        theta = truncated.sample(need, seed * 1_009 + k)
        y = simulate_at(theta, seed * 1_009 + k)
        finished = torch.isfinite(y).all(1)
        simulations += len(theta)
        thetas.append(theta[finished])
        ys.append(y[finished])
        k += 1
    theta, y = torch.cat(thetas), torch.cat(ys)
    return Round(theta, y, simulations, simulations - len(theta), truncated.threshold, truncated.acceptance)
