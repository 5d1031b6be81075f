"""Stochastic optimal control: problems (f, L, g, sigma, start law, u*), reference solutions, and the
value network with its feedback control, controlled paths and HJB loss terms; the Deep BSDE
baseline."""

from .deep_bsde import DeepBSDE
from .open_loop import OpenLoopSolution, open_loop_optimum, rollout
from .problems import HJBLQ, LQR, PROBLEMS, ControlProblem, Obstacle, Problem2D, Quadcopter, make_problem
from .references import RiccatiSolution, hjb_lq_value, reference_control, reference_value
from .value_function import LOSS_TERMS, SAMPLING, Paths, ValueFunction, controlled_paths

__all__ = [
    "PROBLEMS",
    "HJBLQ",
    "LQR",
    "ControlProblem",
    "Obstacle",
    "Problem2D",
    "Quadcopter",
    "RiccatiSolution",
    "hjb_lq_value",
    "make_problem",
    "reference_control",
    "reference_value",
    "LOSS_TERMS",
    "SAMPLING",
    "Paths",
    "ValueFunction",
    "controlled_paths",
    "DeepBSDE",
    "OpenLoopSolution",
    "open_loop_optimum",
    "rollout",
]
