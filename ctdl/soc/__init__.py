"""Stochastic optimal control: problems (f, L, g, sigma, start law, u*), reference solutions
(Cole-Hopf, Riccati, finite elements), controlled paths, the value network with its feedback
control and HJB loss terms (the plain model), the open-loop optimum, the metrics (`evaluate`) and
the comparators (`baselines`: Deep BSDE)."""

from . import evaluate
from .baselines import DeepBSDE, train_deep_bsde
from .open_loop import OpenLoopSolution, open_loop_optimum, rollout
from .paths import Paths, controlled_paths
from .problems import HJBLQ, LQR, PROBLEMS, ControlProblem, Obstacle, Problem2D, Quadcopter, make_problem
from .references import (
    RiccatiSolution,
    hjb_lq_gradient,
    hjb_lq_value,
    hjb_lq_value_quadrature,
    reference_control,
    reference_value,
)
from .value_function import LOSS_TERMS, SAMPLING, ValueFunction

__all__ = [
    "PROBLEMS",
    "HJBLQ",
    "LQR",
    "ControlProblem",
    "Obstacle",
    "Problem2D",
    "Quadcopter",
    "RiccatiSolution",
    "hjb_lq_gradient",
    "hjb_lq_value",
    "hjb_lq_value_quadrature",
    "make_problem",
    "reference_control",
    "reference_value",
    "LOSS_TERMS",
    "SAMPLING",
    "Paths",
    "ValueFunction",
    "controlled_paths",
    "DeepBSDE",
    "train_deep_bsde",
    "OpenLoopSolution",
    "open_loop_optimum",
    "rollout",
    "evaluate",
]
