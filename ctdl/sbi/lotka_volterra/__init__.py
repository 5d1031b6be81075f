"""The stochastic Lotka-Volterra predator-prey model: an exact, batch-vectorised simulator.

X predators and Y prey form a Markov jump process started at (X, Y) = (50, 100) with four reactions

    theta_1 X Y:  X -> X + 1   (a predator is born),     theta_2 X:    X -> X - 1   (a predator dies),
    theta_3 Y:    Y -> Y + 1   (a prey is born),         theta_4 X Y:  Y -> Y - 1   (a prey is eaten).

The state is recorded at t = 0, 0.2, ..., 29.8 (150 points; the state at a record time is the state
after the last event at or before it) and the process runs to T = 30: more than 10,000 events
before T is a failed simulation (the rule fires at event 10,001). The prior is log theta ~ U[-5, 2]^4
and the data are 9 summary statistics of the recorded series (`summary_statistics`). This is the
benchmark of Wang, Verma, Baptista, Marzouk and Ruthotto (2023, conditional OT-Flow for
simulation-based inference), after Papamakarios, Sterratt and Murray (2019).

The package: `jump_process` (the exact simulation kernels and the one-chain reference), `prior`
(the prior box, theta* and y*), `statistics` (the 9 summary statistics), `pool` (the worker
processes a batch is shared among) and `simulator` (`simulate_series`, `simulate_statistics`: the
front door that cuts a batch into chunks and gathers them).
"""

from .jump_process import (
    CHUNK_SIZE,
    INITIAL_STATE,
    MAX_EVENTS,
    T_END,
    T_RECORD,
    Simulation,
    simulate_reference,
)
from .prior import PRIOR_HIGH, PRIOR_LOW, THETA_STAR, Y_STAR, sample_prior
from .simulator import SIMULATOR_VERSION, simulate_series, simulate_statistics
from .statistics import STATISTICS, summary_statistics

__all__ = [
    "CHUNK_SIZE",
    "INITIAL_STATE",
    "MAX_EVENTS",
    "PRIOR_HIGH",
    "PRIOR_LOW",
    "SIMULATOR_VERSION",
    "STATISTICS",
    "T_END",
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
