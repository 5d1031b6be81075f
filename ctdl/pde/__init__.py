"""Amortized control of an advection-diffusion PDE: DOLFINx assembly, the differentiable IMEX Euler
rollout with its discrete adjoint, the Hamiltonian's feedback law, the open-loop oracle and a
gymnasium environment over the same solver (`ctdl.pde.env`, which imports gymnasium)."""

from .networks import DirectPolicy, QuadraticValue
from .objective import loss_terms, policy_rollout
from .oracle import OpenLoopOptimum, open_loop_optimum
from .problem import DEFAULT_ACTUATORS, AdvectionDiffusion, Instances
from .rollout import Policy, Rollout, discrete_hamiltonian, feedback_law, rollout, solve, stage_cost, step

__all__ = [
    "DEFAULT_ACTUATORS",
    "AdvectionDiffusion",
    "DirectPolicy",
    "Instances",
    "OpenLoopOptimum",
    "Policy",
    "QuadraticValue",
    "Rollout",
    "discrete_hamiltonian",
    "feedback_law",
    "loss_terms",
    "open_loop_optimum",
    "policy_rollout",
    "rollout",
    "solve",
    "stage_cost",
    "step",
]
