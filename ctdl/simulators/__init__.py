"""Simulators for simulation-based inference, in plain numpy (no Lightning).

`lotka_volterra`: the stochastic Lotka-Volterra predator-prey Markov jump process, simulated exactly
and vectorised over a batch of parameters, with its prior, summary statistics and observation.
"""

from .lotka_volterra import (
    MAX_EVENTS,
    PRIOR_HIGH,
    PRIOR_LOW,
    SIMULATOR_VERSION,
    STATISTICS,
    T_RECORD,
    THETA_STAR,
    Y_STAR,
    Simulation,
    sample_prior,
    simulate_reference,
    simulate_series,
    simulate_statistics,
    summary_statistics,
)

__all__ = [
    "MAX_EVENTS",
    "PRIOR_HIGH",
    "PRIOR_LOW",
    "SIMULATOR_VERSION",
    "STATISTICS",
    "T_RECORD",
    "THETA_STAR",
    "Y_STAR",
    "Simulation",
    "sample_prior",
    "simulate_reference",
    "simulate_series",
    "simulate_statistics",
    "summary_statistics",
]
