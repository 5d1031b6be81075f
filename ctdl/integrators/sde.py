"""Fixed-step SDE solves, torchdiffeq style: `sdeint(drift, diffusion, y0, t, steps=...)`.

    dY = f(t, Y) dt + g(t, Y) * dW,   Y(t0) = y0,

with g acting element-wise on the increment dW (diagonal noise). Correlated or trace-class
noise (dW = sqrt(h) A xi) comes in through `increments(h, y)`, which returns the increment of
the driving process over a step of size h; the default is sqrt(h) * standard normal.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .fixed_step import step_counts, time_grid

Field = Callable[[Tensor, Tensor], Tensor]
Increments = Callable[[float, Tensor], Tensor]


def brownian_increments(generator: torch.Generator | None = None) -> Increments:
    """dW ~ N(0, |h| I), drawn with `generator` (seeded runs) on y's device and dtype."""

    def draw(h: float, y: Tensor) -> Tensor:
        return math.sqrt(abs(h)) * torch.randn(y.shape, generator=generator, dtype=y.dtype,
                                               device=y.device)

    return draw


def euler_maruyama_step(f: Field, g: Field, t: Tensor, h: float, y: Tensor, dW: Tensor) -> Tensor:
    """Y + f(t, Y) h + g(t, Y) dW: strong order 1/2, weak order 1."""
    return y + h * f(t, y) + g(t, y) * dW


SDE_METHODS = {"euler_maruyama": euler_maruyama_step}


def sdeint(
    drift: Field,
    diffusion: Field,
    y0: Tensor,
    t: Tensor,
    steps: int | None = None,
    method: str = "euler_maruyama",
    increments: Increments | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Solve the SDE on the grid of `steps` steps over [t[0], t[-1]]; return Y at the times t.

    Args:
        drift, diffusion: f(t, y) and g(t, y), each returning a tensor of y's shape.
        y0: initial state (batch, ...).
        t: 1-D tensor of output times.
        steps: total number of steps, spread over the output intervals (default one each).
        method: "euler_maruyama".
        increments: increments(h, y) -> dW; default Brownian, drawn with `generator`.
    Returns:
        Tensor of shape (len(t), *y0.shape).
    """
    if method not in SDE_METHODS:
        raise ValueError(f"unknown SDE method {method!r}; known methods: {', '.join(SDE_METHODS)}")
    if t.ndim != 1 or t.numel() < 2:
        raise ValueError(f"t must be a 1-D tensor of at least 2 output times, got shape {tuple(t.shape)}")
    step = SDE_METHODS[method]
    draw = increments or brownian_increments(generator)
    grid = time_grid(t, steps)
    grid_host = grid.detach().to("cpu", torch.float64).tolist()
    y, j, outs = y0, 0, [y0]
    for n in step_counts(t, steps):
        for _ in range(n):
            h = grid_host[j + 1] - grid_host[j]
            y = step(drift, diffusion, grid[j], h, y, draw(h, y))
            j += 1
        outs.append(y)
    return torch.stack(outs)
