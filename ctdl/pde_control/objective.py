"""What the PDE policies are trained on: the realised cost J through the differentiable rollout, and for
a value function the dynamic-programming (discrete HJB) residual along the path.

For a value policy the coefficients of Phi at all N + 1 times come from one network call, and

    hjb = mean_b sum_n | Phi(t_n, u_n) - dt L(u_{n+1}, a_n) - Phi(t_{n+1}, u_{n+1}) |

on the detached path (the penalty shapes Phi; only J backpropagates through the states, as in
`ctdl.soc.ValueFunction`). The terminal condition Phi(T) = gamma ||u||^2 holds by construction
(`QuadraticValue`), so there is no terminal penalty.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor

from .problem import AdvectionDiffusion, Instances
from .rollout import Rollout, rollout, stage_cost

__all__ = ["PDEPolicy", "policy_rollout", "loss_terms"]


class PDEPolicy(Protocol):
    """A feedback policy: `feedback(inst, times)` is its law (n, t, u) -> a (B, K) at the n-th of the
    times (S,) (`QuadraticValue`, `DirectPolicy`, the PPO baseline's `PPOPolicy`); a value policy's
    law also carries its `coefficients`."""

    def feedback(self, inst: Instances, times: Tensor) -> Callable[[int, float, Tensor], Tensor]: ...


def policy_rollout(problem: AdvectionDiffusion, policy: PDEPolicy, inst: Instances) -> tuple[Rollout, object]:
    """The rollout under `policy`'s feedback, and the value's coefficients (None for a direct policy)."""
    times = torch.arange(problem.steps + 1, dtype=torch.float64) * problem.dt
    law = policy.feedback(inst, times)
    return rollout(problem, inst, law), getattr(law, "coefficients", None)


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
