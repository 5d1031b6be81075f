"""The metrics the control task reports: the realised cost, the value against a reference at the
starts and along controlled paths, the reference feedback flown on the same noise.

- realised cost of a path: J = C_N + g(X_N) = sum_k L(t_k, X_k, u_k) h + g(X_N);
- relative error of Phi(0, x0): |Phi(0, x0) - Phi_ref(0, x0)| / |Phi_ref(0, x0)| per start;
- trajectory error: ||Phi - Phi_ref|| / ||Phi_ref|| over every grid point (t_k, X_k) of a set of
  paths, where the reference is finite (a finite-element reference lives on its box only);
- reference-feedback cost: the mean J of the reference feedback u*(t, x, grad Phi_ref) flown from
  the same starts with the same noise as the learned one, over the paths where both J are finite
  (free of the Monte Carlo noise and of the Euler grid's bias of a comparison with E[Phi_ref(0, X_0)]);
- zero-control cost: J of u = 0 from the same starts with the same noise, the trivial baseline (on
  HJB-LQ, E[g(x0 + sigma W_T)], within 0.22% of the optimum at d = 100);
- paired costs: J of several feedbacks path by path on the same starts and noise, and the mean of
  a difference with its paired standard error sd(J_a - J_b) / sqrt(n), far smaller than the
  spread of J itself: what a claim that one feedback beats another needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .paths import Paths, controlled_paths
from .problems import ControlProblem

ValueFn = Callable[[Tensor | float, Tensor], Tensor]


def realised_cost(problem: ControlProblem, paths: Paths) -> Tensor:
    """J = C_N + g(X_N) of each path, (n,); differentiable where the paths are."""
    return paths.running[-1] + problem.terminal_cost(paths.states[-1])


def relative_error(value: Tensor, reference: Tensor) -> Tensor:
    """|value - reference| / |reference|, elementwise."""
    return (value - reference).abs() / reference.abs()


def relative_gap(value: float, reference: float) -> float:
    """(value - reference) / |reference|: how much a cost exceeds its reference."""
    return (value - reference) / abs(reference)


def mean_and_se(x: Tensor) -> tuple[float, float]:
    """The mean of n samples and its standard error std / sqrt(n)."""
    return float(x.mean()), float(x.std() / math.sqrt(len(x)))


def values_along(value: ValueFn, paths: Paths) -> Tensor:
    """value(t_k, X_k) at every grid point of the paths, (N + 1, n)."""
    N1, n, d = paths.states.shape
    return value(paths.times.repeat_interleave(n), paths.states.reshape(-1, d)).view(N1, n)


def trajectory_error(reference: ValueFn, paths: Paths, values: Tensor) -> Tensor | None:
    """||values - Phi_ref|| / ||Phi_ref|| (float64) over the grid points of the paths where the
    reference is finite, with `values` (N + 1, n) the value under test at those points; None where
    the reference is finite nowhere."""
    N1, n, d = paths.states.shape
    phi = values.reshape(-1).detach().double().cpu()
    ref = reference(paths.times.repeat_interleave(n).cpu(), paths.states.reshape(-1, d).cpu()).to(phi)
    known = torch.isfinite(ref)
    if not known.any():
        return None
    return torch.linalg.vector_norm(phi[known] - ref[known]) / torch.linalg.vector_norm(ref[known])


def reference_feedback_cost(
    problem: ControlProblem,
    control: ValueFn,
    x0: Tensor,
    steps: int,
    generator: torch.Generator,
    learned_cost: Tensor,
) -> tuple[Tensor, Tensor] | None:
    """(mean J of the reference feedback `control`, mean `learned_cost`) over the paths where both
    are finite, the reference flown from x0 on `steps` steps with `generator` (seed it as the learned
    paths' was: the same noise); None where no path has both."""
    with torch.no_grad():
        ref_cost = realised_cost(problem, controlled_paths(problem, control, x0, steps, generator))
    known = torch.isfinite(ref_cost) & torch.isfinite(learned_cost)
    if not known.any():
        return None
    return ref_cost[known].mean(), learned_cost[known].mean()


def zero_control_cost(problem: ControlProblem, x0: Tensor, steps: int, generator: torch.Generator) -> Tensor:
    """J of each path (n,) flown from x0 with u = 0 on `steps` steps, the noise from `generator`
    (seed it as the learned paths' was: the same noise)."""
    with torch.no_grad():
        return realised_cost(problem, controlled_paths(problem, None, x0, steps, generator))


def position_miss(problem: ControlProblem, states: Tensor) -> Tensor:
    """|x[:3] - target[:3]| of each final state (n, d): how far the quadcopter lands from its target."""
    return torch.linalg.vector_norm(states[:, :3] - problem.target[:3].to(states), dim=1)


def paired_costs(
    problem: ControlProblem, controls: dict[str, ValueFn | None], x0: Tensor, steps: int, seed: int = 0
) -> dict[str, Tensor]:
    """{name: J of each path (n,)} of each feedback (None: u = 0) flown from x0 on `steps` steps,
    every one on the same noise (a generator seeded with `seed` for each)."""
    out = {}
    for name, control in controls.items():
        generator = torch.Generator(device=x0.device).manual_seed(seed)
        with torch.no_grad():
            out[name] = realised_cost(problem, controlled_paths(problem, control, x0, steps, generator))
    return out


def paired_difference(a: Tensor, b: Tensor) -> tuple[float, float, int]:
    """The mean of a - b over the paths where both are finite, its paired standard error, and the
    number of those paths."""
    known = torch.isfinite(a) & torch.isfinite(b)
    d = (a[known] - b[known]).double()
    if len(d) < 2:
        raise ValueError(
            f"a paired difference needs at least 2 paths where both costs are finite, got {len(d)}"
        )
    return float(d.mean()), float(d.std() / math.sqrt(len(d))), int(len(d))
