"""The prior and the benchmark observation of the stochastic Lotka-Volterra model (Wang, Verma,
Baptista, Marzouk, Ruthotto 2023; Papamakarios, Sterratt, Murray 2019): log theta ~ U[-5, 2]^4."""

from __future__ import annotations

import numpy as np

PRIOR_LOW, PRIOR_HIGH = -5.0, 2.0
"""The prior: log theta_i ~ U[PRIOR_LOW, PRIOR_HIGH], independently for i = 1..4."""
THETA_STAR = np.array([0.01, 0.5, 1.0, 0.01])
"""The true parameter of the benchmark (rates, not log rates)."""
Y_STAR = np.array([28.887, 9.140, 8.203, 6.873, 0.99882, 0.97904, 0.96684, 0.89591, 0.52781])
"""The observation of the benchmark: the 9 summary statistics of one simulation at THETA_STAR."""


def sample_prior(n: int, rng: np.random.Generator | int) -> np.ndarray:
    """n draws (n, 4) of theta (rates, not log rates) from the prior log theta ~ U[-5, 2]^4."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    return np.exp(rng.uniform(PRIOR_LOW, PRIOR_HIGH, size=(n, 4)))
