"""Stochastic optimal control: problems (f, L, g, sigma, start law, u*) and reference solutions."""

from .problems import PROBLEMS, HJBLQ, LQR, ControlProblem, Obstacle, Problem2D, Quadcopter, make_problem
from .references import RiccatiSolution, hjb_lq_value

__all__ = ["PROBLEMS", "HJBLQ", "LQR", "ControlProblem", "Obstacle", "Problem2D", "Quadcopter",
           "RiccatiSolution", "hjb_lq_value", "make_problem"]
