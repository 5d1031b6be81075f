"""The one time-grid loop that fixed-step ODE and SDE solves share.

The output times t_0, ..., t_m are refined into a uniform grid per output interval
(`step_counts`, `time_grid`); `walk_grid` applies a stepper's `step(problem, t_j, h_j, y)`
from grid point to grid point, h_j = t_{j+1} - t_j (negative when t decreases), and stacks the
states at the output times along a new first axis, as torchdiffeq's `odeint` does.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor

State = Tensor | tuple[Tensor, ...]


class GridStepper(Protocol):
    """Anything with `step(problem, t, h, y) -> y(t + h)`: an ODE or an SDE stepper."""

    def step(self, problem: Any, t: Tensor, h: float, y: Any) -> Any: ...


def step_counts(t: Tensor, steps: int | None) -> list[int]:
    """Steps per output interval: exactly `steps` in total, spread over [t0, t_end] in proportion
    to the intervals' lengths (largest remainder), at least one per interval."""
    n_intervals = t.numel() - 1
    if steps is None:
        return [1] * n_intervals
    if steps < n_intervals:
        raise ValueError(f"steps={steps} is smaller than the number of output intervals {n_intervals}")
    lengths = (t[1:] - t[:-1]).abs().tolist()
    total = sum(lengths)
    spare = steps - n_intervals  # one step per interval first, the rest by length
    shares = [spare * length / total for length in lengths]
    counts = [1 + int(share) for share in shares]
    by_remainder = sorted(range(n_intervals), key=lambda i: shares[i] - int(shares[i]), reverse=True)
    for i in by_remainder[: steps - sum(counts)]:
        counts[i] += 1
    return counts


def time_grid(t: Tensor, steps: int | None) -> Tensor:
    """The full grid of step times (output times included), as torchdiffeq's grid_constructor."""
    pieces = [t[:1]]
    for i, n in enumerate(step_counts(t, steps)):
        pieces.append(torch.linspace(t[i].item(), t[i + 1].item(), n + 1, dtype=t.dtype, device=t.device)[1:])
    return torch.cat(pieces)


def walk_grid(stepper: GridStepper, problem: Any, y0: State, t: Tensor, steps: int | None) -> State:
    """Step `problem` over the grid of `steps` steps and return the states at the output times t.

    The step times stay on t's device and the step sizes are Python floats computed once, so the
    loop itself never waits for the device.
    """
    counts = step_counts(t, steps)
    grid = time_grid(t, steps)
    grid_host = grid.detach().to("cpu", torch.float64).tolist()
    y, j = y0, 0
    outs = [y0]
    for n in counts:
        for _ in range(n):
            y = stepper.step(problem, grid[j], grid_host[j + 1] - grid_host[j], y)
            j += 1
        outs.append(y)
    if isinstance(y0, Tensor):
        return torch.stack(outs)
    return tuple(torch.stack(parts) for parts in zip(*outs, strict=True))
