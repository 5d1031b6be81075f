"""Simulation-based inference: amortised posterior estimation with conditional OT-Flow (Wang,
Verma, Baptista, Marzouk, Ruthotto 2023), without Lightning.

- `posterior.FlowPosterior`: pi(theta | y) in raw units from a conditional `ctdl.flows.PotentialFlow`
  and its standardisation (`scaling.PosteriorScaling`): sample, log_prob, map_estimate.
- `evaluate`: C2ST against reference posteriors, posterior moments against another method's
  samples, sampling time.
- `truncation.TruncatedPrior`: the prior truncated to a posterior estimate's highest-probability
  region at one observation, the proposal of sequential (TSNPE) rounds.
- `baselines`: SMC-ABC (`baselines.smc_abc`) and sbi's NPE (`baselines.npe`).
- `lotka_volterra`: the stochastic Lotka-Volterra benchmark, an exact batch-vectorised simulator.
"""

from .posterior import FlowPosterior
from .scaling import PosteriorScaling
from .truncation import TruncatedPrior

__all__ = ["FlowPosterior", "PosteriorScaling", "TruncatedPrior"]
