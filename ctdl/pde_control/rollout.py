"""The differentiable IMEX Euler rollout of `AdvectionDiffusion` and the Hamiltonian's feedback law.

One step, for a batch of instances b with factorised S_b = M + dt (kappa K + A(v_b)):

    u_{n+1} = S^{-1} (M u_n - dt sum_k a_{n,k} B_k u_n + dt F).

`solve` is a torch autograd Function around the sparse LU factors: its backward is one transposed
solve S^{-T} g per step and instance, so backpropagating the cost J through the rollout *is* the
discrete adjoint method (the adjoint of the linear recursion, exact to round-off). The backward is
itself a `solve`, so second derivatives (a policy that uses grad Phi) work too. Every solve,
forward or transposed, is counted in `problem.solves`.

Feedback law. For a value function Phi(t, u), the discrete Hamiltonian of step n,

    H_n(a) = dt alpha/2 |a|^2 + g' u_{n+1}(a),    g = grad_u Phi(t_n, u_n),

is a separable convex quadratic in a (u_{n+1} is affine in a with d u_{n+1}/d a_k = -dt S^{-1} B_k u_n),
so its minimiser over the box [0, a_max]^K is

    a_k* = clip( (B_k u_n)' S^{-T} g / alpha, 0, a_max ),

the discrete form of a* = clip(B(u)' grad Phi / alpha) with B(u) = [b_k u]_k (one transposed solve).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .problem import AdvectionDiffusion, Instances

__all__ = ["Policy", "Rollout", "solve", "step", "rollout", "feedback_law", "discrete_hamiltonian"]

Policy = Callable[[int, float, Tensor], Tensor]
"""A feedback policy: (step n, time t_n, states u_n (B, n) float64) -> rates a_n (B, K)."""


class _FactorSolve(torch.autograd.Function):
    @staticmethod
    def forward(ctx, rhs: Tensor, problem: AdvectionDiffusion, factors: list, transpose: bool) -> Tensor:
        ctx.problem, ctx.factors, ctx.transpose = problem, factors, transpose
        trans = "T" if transpose else "N"
        r = rhs.detach().to("cpu", torch.float64).numpy()
        out = np.stack(
            [f.solve(np.ascontiguousarray(ri), trans=trans) for f, ri in zip(factors, r, strict=True)]
        )
        problem.solves += len(factors)
        return torch.from_numpy(out).to(rhs)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return _FactorSolve.apply(grad, ctx.problem, ctx.factors, not ctx.transpose), None, None, None


def solve(problem: AdvectionDiffusion, inst: Instances, rhs: Tensor, transpose: bool = False) -> Tensor:
    """S_b^{-1} rhs_b (or S_b^{-T} rhs_b) for each instance b; rhs (B, n); differentiable."""
    if rhs.shape != (len(inst), problem.size):
        raise ValueError(
            f"the right-hand side must have shape (B, n) = {(len(inst), problem.size)}; "
            f"got {tuple(rhs.shape)}"
        )
    return _FactorSolve.apply(rhs, problem, inst.factors, transpose)


def _sink(problem: AdvectionDiffusion, u: Tensor, a: Tensor) -> Tensor:
    """sum_k a_k B_k u, (B, n)."""
    return sum(a[:, k : k + 1] * Bk(u) for k, Bk in enumerate(problem.B))


def step(problem: AdvectionDiffusion, inst: Instances, u: Tensor, a: Tensor) -> Tensor:
    """One IMEX Euler step u_n -> u_{n+1} under rates a (B, K)."""
    if a.shape != (len(u), problem.num_actuators):
        raise ValueError(
            f"the rates must have shape (B, K) = {(len(u), problem.num_actuators)}; got {tuple(a.shape)}"
        )
    a = a.to(u)
    rhs = problem.M(u) - problem.dt * _sink(problem, u, a) + problem.dt * inst.load
    return solve(problem, inst, rhs)


@dataclass
class Rollout:
    """A controlled trajectory of a batch of B instances over N steps.

    Attributes:
        states: (N + 1, B, n) u_0, ..., u_N.
        controls: (N, B, K) a_0, ..., a_{N-1}.
        stage_costs: (N, B) dt (u_{n+1}' M u_{n+1} + alpha/2 |a_n|^2).
        terminal_cost: (B,) gamma u_N' M u_N.
    """

    states: Tensor
    controls: Tensor
    stage_costs: Tensor
    terminal_cost: Tensor

    @property
    def cost(self) -> Tensor:
        """J per instance, (B,)."""
        return self.stage_costs.sum(0) + self.terminal_cost


def stage_cost(problem: AdvectionDiffusion, u_next: Tensor, a: Tensor) -> Tensor:
    """dt (u_{n+1}' M u_{n+1} + alpha/2 |a_n|^2), (B,)."""
    return problem.dt * (problem.norm2(u_next) + 0.5 * problem.alpha * (a.to(u_next) ** 2).sum(-1))


def rollout(
    problem: AdvectionDiffusion, inst: Instances, controls: Tensor | Policy, u0: Tensor | None = None
) -> Rollout:
    """Roll the PDE out over [0, T] under open-loop `controls` (N, B, K) or a feedback `Policy`.

    u0 defaults to zero. The result is differentiable in the controls, the policy's parameters and u0.
    """
    B, N = len(inst), problem.steps
    u = torch.zeros(B, problem.size, dtype=torch.float64) if u0 is None else u0.to(torch.float64)
    if u.shape != (B, problem.size):
        raise ValueError(f"u0 must have shape (B, n) = {(B, problem.size)}; got {tuple(u.shape)}")
    if isinstance(controls, Tensor) and controls.shape != (N, B, problem.num_actuators):
        raise ValueError(
            f"open-loop controls must have shape (steps, B, K) = {(N, B, problem.num_actuators)}; "
            f"got {tuple(controls.shape)}"
        )
    states, rates, costs = [u], [], []
    for n in range(N):
        a = controls[n] if isinstance(controls, Tensor) else controls(n, n * problem.dt, u)
        a = a.to(u)
        u = step(problem, inst, u, a)
        states.append(u)
        rates.append(a)
        costs.append(stage_cost(problem, u, a))
    terminal = problem.gamma * problem.norm2(u)
    return Rollout(torch.stack(states), torch.stack(rates), torch.stack(costs), terminal)


def feedback_law(problem: AdvectionDiffusion, inst: Instances, u: Tensor, grad: Tensor) -> Tensor:
    """a_k* = clip((B_k u)' S^{-T} g / alpha, 0, a_max), (B, K): the minimiser of `discrete_hamiltonian`."""
    q = solve(problem, inst, grad.to(u), transpose=True)
    a = torch.stack([(Bk(u) * q).sum(-1) for Bk in problem.B], -1) / problem.alpha
    return a.clamp(0.0, problem.a_max)


def discrete_hamiltonian(
    problem: AdvectionDiffusion, inst: Instances, u: Tensor, grad: Tensor, a: Tensor
) -> Tensor:
    """H_n(a) = dt alpha/2 |a|^2 + g' u_{n+1}(a), (B,)."""
    return 0.5 * problem.dt * problem.alpha * (a**2).sum(-1) + (grad * step(problem, inst, u, a)).sum(-1)
