"""Controlled paths of a control problem: Euler-Maruyama under a feedback control.

On the grid t_k = k h, h = T / N,

    X_{k+1} = X_k + f(t_k, X_k, u_k) h + sigma sqrt(h) xi_k,     C_{k+1} = C_k + L(t_k, X_k, u_k) h,

with u_k = control(t_k, X_k) (u = 0 without a control): the states and the running costs C that
the realised cost J = C_N + g(X_N) (`ctdl.soc.evaluate.realised_cost`) is read from.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ctdl.integrators import sdeint
from ctdl.integrators.noise import ColouredNoise

from .problems import ControlProblem


class Paths(NamedTuple):
    """Paths on the grid `times` (N + 1,): states (N + 1, n, d) and running costs C (N + 1, n)."""

    times: Tensor
    states: Tensor
    running: Tensor

    def double(self) -> Paths:
        """The same paths in float64."""
        return Paths(*(v.double() for v in self))

    def first(self, n: int) -> Paths:
        """The first n paths."""
        return Paths(self.times, self.states[:, :n], self.running[:, :n])


def controlled_paths(
    problem: ControlProblem, control, x0: Tensor, steps: int, generator: torch.Generator | None = None
) -> Paths:
    """Euler-Maruyama paths of `problem` from x0 (n, d) under the feedback control(t, x) -> (n, m)
    (None: u = 0), `steps` steps on [0, T]. Two calls with equally seeded generators draw the same
    noise, so two feedbacks can be compared path by path."""
    problem.check_state(x0, "x0")
    times = torch.linspace(0.0, problem.horizon, steps + 1, dtype=x0.dtype, device=x0.device)

    def drift(t, state):
        x, _ = state
        u = x.new_zeros(len(x), problem.control_dim) if control is None else control(t, x).to(x)
        return problem.drift(t, x, u), problem.running_cost(t, x, u)

    noisy = None if problem.deterministic else x0.new_ones(())
    sigma = problem.sigma.to(x0)
    noise = ColouredNoise(lambda xi: xi @ sigma.T, generator=generator)
    start = (x0, x0.new_zeros(len(x0)))
    states, running = sdeint(drift, lambda t, s: (noisy, None), start, times, steps=steps, noise=noise)
    return Paths(times, states, running)
