"""The deterministic open-loop optimum of a control problem by direct optimisation (L-BFGS).

With sigma = 0 the best control from a given start is a sequence u_0, ..., u_{N-1} minimising the
discrete cost of the forward Euler path (the discretisation the value network's paths use):

    J_N(u) = sum_k L(t_k, x_k, u_k) h + g(x_N),   x_{k+1} = x_k + f(t_k, x_k, u_k) h,   h = T / N,

solved for every start at once (the costs add up; each start's controls only affect its own
term) by L-BFGS with a strong-Wolfe line search, gradients by backpropagation through the path.
For a deterministic problem it is the cost a feedback policy is compared with.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .evaluate import realised_cost
from .paths import Paths
from .problems import ControlProblem


class OpenLoopSolution(NamedTuple):
    """Per start: cost (n,), controls (N, n, m), states (N + 1, n, d); the optimiser's iterations."""

    cost: Tensor
    controls: Tensor
    states: Tensor
    iterations: int


def rollout(problem: ControlProblem, x0: Tensor, controls: Tensor) -> tuple[Tensor, Tensor]:
    """(cost J_N (n,), states (N + 1, n, d)) of the forward Euler path from x0 under `controls` (N, n, m)."""
    N = controls.shape[0]
    h = problem.horizon / N
    x, running, states, costs = x0, x0.new_zeros(len(x0)), [x0], [x0.new_zeros(len(x0))]
    for k in range(N):
        t = k * h
        running = running + h * problem.running_cost(t, x, controls[k])
        x = x + h * problem.drift(t, x, controls[k])
        states.append(x), costs.append(running)
    times = torch.linspace(0.0, problem.horizon, N + 1, dtype=x0.dtype, device=x0.device)
    paths = Paths(times, torch.stack(states), torch.stack(costs))
    return realised_cost(problem, paths), paths.states


def open_loop_optimum(
    problem: ControlProblem,
    x0: Tensor,
    steps: int = 50,
    iterations: int = 500,
    tolerance: float = 1e-9,
    initial: Tensor | None = None,
) -> OpenLoopSolution:
    """The L-BFGS optimum of J_N over the control sequence from each start in x0 (n, d), float64.

    Args:
        steps: N, the Euler steps on [0, T].
        iterations: the most L-BFGS iterations.
        tolerance: stop when the gradient's largest entry falls below it.
        initial: controls to start from (N, n, m); zeros by default.
    """
    problem.check_state(x0, "x0")
    x0 = x0.detach().to(torch.float64)
    shape = (steps, len(x0), problem.control_dim)
    if initial is not None and tuple(initial.shape) != shape:
        raise ValueError(f"initial controls must have shape {shape}, got {tuple(initial.shape)}")
    u = torch.zeros(shape, dtype=torch.float64) if initial is None else initial.detach().double().clone()
    u.requires_grad_()
    opt = torch.optim.LBFGS(
        [u],
        lr=1.0,
        max_iter=iterations,
        tolerance_grad=tolerance,
        tolerance_change=1e-14,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        cost = rollout(problem, x0, u)[0].sum()
        cost.backward()
        return cost

    opt.step(closure)
    with torch.no_grad():
        cost, states = rollout(problem, x0, u)
    return OpenLoopSolution(cost, u.detach(), states, opt.state[opt._params[0]]["n_iter"])
