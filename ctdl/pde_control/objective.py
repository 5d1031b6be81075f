"""What the PDE policies are trained on: the realised cost J through the differentiable rollout, and for
a value function the dynamic-programming (discrete HJB) residual along the path.

For a value policy the coefficients of Phi at all N + 1 times come from one network call, and

    hjb = mean_b sum_n | Phi(t_n, u_n) - dt L(u_{n+1}, a_n) - Phi(t_{n+1}, u_{n+1}) |

on the detached path (the penalty shapes Phi; only J backpropagates through the states, as in
`ctdl.soc.ValueFunction`). The terminal condition Phi(T) = gamma ||u||^2 holds by construction
(`QuadraticValue`), so there is no terminal penalty.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .networks import DirectPolicy, QuadraticValue
from .problem import AdvectionDiffusion, Instances
from .rollout import Rollout, rollout, stage_cost

__all__ = ["PDEPolicy", "policy_rollout", "loss_terms"]

PDEPolicy = QuadraticValue | DirectPolicy
"""A value policy, or a direct one: anything with `control(inst, u, t) -> a (B, K)` (as DirectPolicy or
the PPO baseline's `ctdl.pde_control.baselines.ppo.PPOPolicy`)."""


def policy_rollout(problem: AdvectionDiffusion, policy: PDEPolicy, inst: Instances) -> tuple[Rollout, object]:
    """The rollout under `policy`'s feedback, and the value's coefficients (None for a direct policy)."""
    if isinstance(policy, QuadraticValue):
        times = torch.arange(problem.steps + 1, dtype=torch.float64) * problem.dt
        coef = policy.coefficients(inst, times)
        return rollout(problem, inst, lambda n, t, u: policy.control(inst, coef.at(n), u)), coef
    return rollout(problem, inst, lambda n, t, u: policy.control(inst, u, t)), None


def loss_terms(
    problem: AdvectionDiffusion, policy: PDEPolicy, inst: Instances
) -> tuple[dict[str, Tensor], Rollout]:
    """Per-instance terms {cost (B,), hjb (B,)} (hjb only for a value policy) and the rollout."""
    path, coef = policy_rollout(problem, policy, inst)
    terms = {"cost": path.cost}
    if coef is not None:
        u, a = path.states.detach(), path.controls.detach()
        phi = torch.stack([policy.value(coef.at(n), u[n]) for n in range(problem.steps + 1)])
        stage = torch.stack([stage_cost(problem, u[n + 1], a[n]) for n in range(problem.steps)])
        terms["hjb"] = (phi[:-1] - stage - phi[1:]).abs().sum(0)
    return terms, path
