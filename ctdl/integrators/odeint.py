"""One front door for ODE solves: `odeint(func, y0, t, method=..., steps=..., adjoint=...)`.

Calling convention is torchdiffeq's: `func(t, y)` with `t` a 0-d tensor, `t` (the argument)
a 1-D tensor of output times, `y0` a tensor or a tuple of tensors; the result stacks the
states at the output times along a new first axis.

Our own fixed-step methods (euler, rk4 = classic RK4, leapfrog; `ode_steppers`) run on the
grid loop `grid.walk_grid`; every other method name and every `adjoint=True` solve go to
torchdiffeq (its private parts only through `torchdiffeq_bridge`).
"""

from __future__ import annotations

from typing import Any

import torch
import torchdiffeq
from torch import Tensor

from .grid import State, time_grid, walk_grid
from .ode_steppers import FIXED_STEP_METHODS, VectorField
from .torchdiffeq_bridge import CLASSIC_RK4, torchdiffeq_methods

# Our names -> torchdiffeq names for the adjoint route.
_ADJOINT_NAMES = {"euler": "euler", "rk4": CLASSIC_RK4}
# torchdiffeq's own fixed-grid methods, which also honour `steps`.
_TORCHDIFFEQ_FIXED = {"midpoint", "heun2", "heun3", "explicit_adams", "implicit_adams", "fixed_adams"}


def _grid_within(grid: Tensor):
    """torchdiffeq grid_constructor: the points of `grid` between tt[0] and tt[-1], in tt's order."""

    def construct(func, y0, tt: Tensor) -> Tensor:
        lo, hi = torch.minimum(tt[0], tt[-1]), torch.maximum(tt[0], tt[-1])
        tol = 1e-9 * (1.0 + hi.abs())
        g = grid.to(tt)
        g = g[(g >= lo - tol) & (g <= hi + tol)]
        if tt[0] > tt[-1]:
            g = g.flip(0)
        g = g.clone()
        g[0], g[-1] = tt[0], tt[-1]
        return g

    return construct


def known_methods() -> list[str]:
    """All method names `odeint` accepts."""
    theirs = torchdiffeq_methods()
    theirs.discard("rk4")  # our "rk4" is the classic tableau
    return sorted(set(FIXED_STEP_METHODS) | theirs)


def _check_inputs(y0: State, t: Tensor, method: str, steps: int | None) -> None:
    if method not in known_methods():
        raise ValueError(f"unknown ODE method {method!r}; known methods: {', '.join(known_methods())}")
    if not isinstance(t, Tensor) or t.ndim != 1 or t.numel() < 2:
        shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"t must be a 1-D tensor of at least 2 output times, got shape {shape}")
    parts = (y0,) if isinstance(y0, Tensor) else y0
    if not all(isinstance(p, Tensor) for p in parts):
        raise TypeError("y0 must be a tensor or a tuple of tensors")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps}")


def odeint(
    func: VectorField,
    y0: State,
    t: Tensor,
    method: str = "rk4",
    steps: int | None = None,
    adjoint: bool = False,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    options: dict[str, Any] | None = None,
    **adjoint_kwargs: Any,
) -> State:
    """Solve dy/dt = func(t, y), y(t[0]) = y0, and return y at the times t.

    Args:
        func: vector field f(t, y); an `nn.Module` when `adjoint=True`.
        y0: initial state, a tensor (batch, ...) or a tuple of such tensors.
        t: 1-D tensor of output times (increasing or decreasing).
        method: "euler", "rk4" (classic), "leapfrog" (separable two-state fields), or any
            torchdiffeq method (dopri5, bosh3, midpoint, ...).
        steps: fixed-step methods only: total number of uniform steps over [t[0], t[-1]],
            spread over the output intervals (default: one step per interval).
        adjoint: gradients by the adjoint ODE (torchdiffeq.odeint_adjoint): memory O(1) in
            the number of steps, at the price of a backward solve.
        rtol, atol: tolerances of adaptive methods.
        options: extra solver options passed to torchdiffeq.
        **adjoint_kwargs: passed to torchdiffeq.odeint_adjoint (adjoint_params, adjoint_method, ...).

    Returns:
        A tensor of shape (len(t), *y0.shape), or a tuple of such tensors.
    """
    _check_inputs(y0, t, method, steps)
    if method in FIXED_STEP_METHODS and not adjoint:
        return walk_grid(FIXED_STEP_METHODS[method](), func, y0, t, steps)

    options = dict(options or {})
    if method in FIXED_STEP_METHODS or method in _TORCHDIFFEQ_FIXED:
        if method in FIXED_STEP_METHODS and method not in _ADJOINT_NAMES:
            raise ValueError(
                f"method={method!r} has no adjoint here; use adjoint=False (backprop through the "
                f"steps) or one of {sorted(_ADJOINT_NAMES)} or an adaptive method"
            )
        options.setdefault("grid_constructor", _grid_within(time_grid(t, steps)))
        method = _ADJOINT_NAMES.get(method, method)
    elif steps is not None:
        raise ValueError(f"steps is for fixed-step methods; {method!r} is adaptive (use rtol/atol)")

    if adjoint:
        if not isinstance(func, torch.nn.Module) and "adjoint_params" not in adjoint_kwargs:
            raise TypeError("adjoint=True needs func to be an nn.Module, or pass adjoint_params=...")
        if "grid_constructor" in options:  # the backward solve walks the same grid in reverse
            adjoint_kwargs.setdefault("adjoint_options", {"grid_constructor": options["grid_constructor"]})
        return torchdiffeq.odeint_adjoint(
            func, y0, t, rtol=rtol, atol=atol, method=method, options=options, **adjoint_kwargs
        )
    return torchdiffeq.odeint(func, y0, t, rtol=rtol, atol=atol, method=method, options=options)
