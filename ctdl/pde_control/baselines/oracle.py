"""The per-instance open-loop optimum: the best rates a (N, K) for one known (v, f).

For a deterministic problem with the instance known, the open-loop optimum is the optimal cost, so
it bounds every feedback policy from below. The controls are found by L-BFGS-B over the box
[0, a_max]^(N K) (SciPy), with the gradient dJ/da from the discrete adjoint (one backward pass
through `rollout`: one transposed solve per step).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor

from ..problem import AdvectionDiffusion
from ..rollout import rollout

__all__ = ["OpenLoopOptimum", "cost_and_gradient", "open_loop_optimum"]


@dataclass
class OpenLoopOptimum:
    """controls (N, K), cost J, L-BFGS-B iterations, PDE solves and wall seconds of one oracle solve."""

    controls: Tensor
    cost: float
    iterations: int
    solves: int
    seconds: float
    converged: bool


def cost_and_gradient(problem: AdvectionDiffusion, params: Tensor, controls: Tensor) -> tuple[float, Tensor]:
    """J and dJ/da (N, K) of one instance (params (P,) or (1, P)) under open-loop rates (N, K)."""
    inst = problem.instances(params.reshape(1, -1))
    a = controls.detach().to(torch.float64).reshape(problem.steps, 1, problem.num_actuators).requires_grad_()
    J = rollout(problem, inst, a).cost.sum()
    (grad,) = torch.autograd.grad(J, a)
    return J.item(), grad.reshape(problem.steps, problem.num_actuators)


def open_loop_optimum(
    problem: AdvectionDiffusion, params: Tensor, max_iterations: int = 200, tolerance: float = 1e-9
) -> OpenLoopOptimum:
    """Minimise J over open-loop rates for one instance, from a = 0 (`tolerance`: relative change of J)."""
    inst = problem.instances(torch.as_tensor(params).reshape(1, -1))
    shape = (problem.steps, 1, problem.num_actuators)
    solves0, start = problem.solves, time.perf_counter()

    def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
        a = torch.from_numpy(z).reshape(shape).requires_grad_()
        J = rollout(problem, inst, a).cost.sum()
        (grad,) = torch.autograd.grad(J, a)
        return J.item(), grad.numpy().ravel()

    res = minimize(
        fun,
        np.zeros(int(np.prod(shape))),
        jac=True,
        method="L-BFGS-B",
        bounds=[(0.0, problem.a_max)] * int(np.prod(shape)),
        options=dict(maxiter=max_iterations, ftol=tolerance, gtol=1e-10),
    )
    return OpenLoopOptimum(
        torch.from_numpy(res.x).reshape(problem.steps, problem.num_actuators),
        float(res.fun),
        int(res.nit),
        problem.solves - solves0,
        time.perf_counter() - start,
        bool(res.success),
    )
