"""Fixed-step SDE solves on the same grid loop as odeint: `sdeint(drift, diffusion, y0, t, ...)`.

    dY = f(t, Y) dt + g(t, Y) * dW,   Y(t[0]) = y0   (Ito),

with g acting element-wise on the increment dW of the driving noise (Brownian by default,
coloured / trace-class through `ColouredNoise`). The state is a tensor or a tuple of tensors,
as in odeint; a part whose diffusion is None has no noise (a running cost, say). When t
decreases the steps are negative, h < 0, and the increments still have covariance ~ |h|.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from .grid import State, walk_grid
from .noise import FixedIncrements, IncrementFn, Noise, as_noise
from .sde_problem import SDE, Diffusion, Drift
from .sde_steppers import SDE_METHODS


def _check_inputs(y0: State, t: Tensor, method: str, steps: int | None) -> None:
    if method not in SDE_METHODS:
        raise ValueError(f"unknown SDE method {method!r}; known methods: {', '.join(sorted(SDE_METHODS))}")
    if not isinstance(t, Tensor) or t.ndim != 1 or t.numel() < 2:
        shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"t must be a 1-D tensor of at least 2 output times, got shape {shape}")
    if not t.is_floating_point():
        raise TypeError(f"t must be a floating-point tensor, got dtype {t.dtype}")
    parts = (y0,) if isinstance(y0, Tensor) else y0
    if not isinstance(parts, tuple | list) or not all(isinstance(p, Tensor) for p in parts):
        raise TypeError(f"y0 must be a tensor or a tuple of tensors, got {type(y0).__name__}")
    for i, p in enumerate(parts):
        if not p.is_floating_point():
            raise TypeError(f"y0's part {i} must be a floating-point tensor, got dtype {p.dtype}")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")


def sdeint(
    drift: Drift,
    diffusion: Diffusion,
    y0: State,
    t: Tensor,
    method: str = "euler_maruyama",
    steps: int | None = None,
    noise: Noise | IncrementFn | Tensor | Iterable[Tensor] | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> State:
    """Solve the SDE on the grid of `steps` steps over [t[0], t[-1]]; return Y at the times t.

    Args:
        drift: f(t, y), a tensor of y's shape, or a tuple matching y's parts.
        diffusion: g(t, y), the same structure; a part may be None (no noise on that part).
            Shapes that broadcast to the state part's shape are fine (a scalar g(t), say).
        y0: initial state, a tensor (batch, ...) or a tuple of such tensors.
        t: 1-D tensor of output times, increasing or decreasing.
        method: "euler_maruyama" (strong 1/2, weak 1) or "heun" (additive noise only; weak 2).
        steps: total number of uniform steps, spread over the output intervals (default: one each).
        noise: a noise object with increment(t, h, like) -> dW (BrownianNoise, ColouredNoise),
            a callable (t, h, like) -> dW, or fixed increments (a tensor whose first axis runs
            over the draws, one per step and noisy part); default BrownianNoise(seed, generator).
        seed, generator: seed the default Brownian noise (give either, not both).

    Returns:
        A tensor of shape (len(t), *y0.shape), or a tuple of such tensors for a tuple state.
    """
    _check_inputs(y0, t, method, steps)
    tuple_state = not isinstance(y0, Tensor)
    parts = tuple(y0) if tuple_state else (y0,)
    draws = as_noise(noise, seed=seed, generator=generator)
    sde = SDE(drift, diffusion, draws, tuple_state)
    out = walk_grid(SDE_METHODS[method](), sde, parts, t, steps)
    if isinstance(draws, FixedIncrements) and draws.unused():
        raise ValueError(
            f"{draws.unused()} of the {len(draws.increments)} fixed increments were not "
            f"used; the solve drew {draws.drawn} (one per step and noisy state part)"
        )
    return out if tuple_state else out[0]
