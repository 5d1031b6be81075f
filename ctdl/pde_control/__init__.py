"""Amortized control of an advection-diffusion PDE.

- `problem`: the PDE, its DOLFINx assembly, random (v, f) instances and their images;
- `rollout`: the differentiable IMEX Euler rollout (its backward is the discrete adjoint) and the
  Hamiltonian's feedback law;
- `networks`: the plain policies, `QuadraticValue` (a value function and its feedback) and
  `DirectPolicy`, over a shared convolutional encoder;
- `objective`: the losses, J through the rollout and the discrete HJB residual;
- `evaluate`: test costs against no control and the oracle, decision timing;
- `baselines`: the open-loop oracle, the untrained terminal-value feedback, PPO (`baselines.ppo`);
- `env`: the gymnasium environment over the same solver (imports gymnasium).
"""

from .baselines import OpenLoopOptimum, open_loop_optimum, terminal_value_feedback
from .networks import DirectPolicy, QuadraticValue
from .objective import loss_terms, policy_rollout
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
    "terminal_value_feedback",
]
