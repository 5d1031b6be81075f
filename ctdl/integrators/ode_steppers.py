"""ODE steppers for the grid loop: forward Euler (= ResNet), classic RK4, leapfrog/Verlet.

Each stepper maps (func, t, h, y) -> y(t + h) for a state y that is a tensor or a tuple of
tensors (torchdiffeq's convention for multi-part states such as [z, log-det, costs]).
`FIXED_STEP_METHODS` maps a method name to its class, as torchdiffeq's SOLVERS does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from .grid import State

VectorField = Callable[[Tensor, State], State]


def axpy(y: State, h: float, k: State) -> State:
    """y + h k, component-wise for tuple states."""
    if isinstance(y, Tensor):
        return y.add(k, alpha=h)
    return tuple(a.add(b, alpha=h) for a, b in zip(y, k, strict=True))


def _rk4_combine(k1: Tensor, k2: Tensor, k3: Tensor, k4: Tensor) -> Tensor:
    return k1 + 2.0 * (k2 + k3) + k4


class Stepper:
    """One step of a fixed-step method, `step(problem, t, h, y) -> y(t + h)`.

    The problem is the vector field func(t, y) for ODE steppers and an `SDE` (drift, diffusion,
    noise) for SDE steppers; subclasses set `name` and `order` and implement `step`.
    """

    order: float = 0
    name: str = ""

    def step(self, func: Any, t: Tensor, h: float, y: State) -> State:
        raise NotImplementedError


class Euler(Stepper):
    """Forward Euler, y + h f(t, y): one ResNet layer per step (order 1)."""

    order, name = 1, "euler"

    def step(self, func, t, h, y):
        return axpy(y, h, func(t, y))


class RK4(Stepper):
    """Classic Runge-Kutta (1/6, 1/3, 1/3, 1/6), order 4.

    k1 = f(t, y), k2 = f(t + h/2, y + h/2 k1), k3 = f(t + h/2, y + h/2 k2),
    k4 = f(t + h, y + h k3), y' = y + h/6 (k1 + 2 k2 + 2 k3 + k4).
    (torchdiffeq's "rk4" is Kutta's 3/8 rule, a different order-4 method.)
    """

    order, name = 4, "rk4"

    def step(self, func, t, h, y):
        half = t + 0.5 * h
        k1 = func(t, y)
        k2 = func(half, axpy(y, 0.5 * h, k1))
        k3 = func(half, axpy(y, 0.5 * h, k2))
        k4 = func(t + h, axpy(y, h, k3))
        if isinstance(y, Tensor):
            return y.add(_rk4_combine(k1, k2, k3, k4), alpha=h / 6.0)
        incr = tuple(map(_rk4_combine, k1, k2, k3, k4))
        return axpy(y, h / 6.0, incr)


@runtime_checkable
class SeparableField(Protocol):
    """A two-part field (q, p) with dq/dt = dq(t, p) and dp/dt = dp(t, q), as leapfrog needs."""

    def dq(self, t: Tensor, p: Tensor) -> Tensor: ...

    def dp(self, t: Tensor, q: Tensor) -> Tensor: ...


class Leapfrog(Stepper):
    """Leapfrog / velocity Verlet (kick-drift-kick) for separable two-state systems, order 2.

    p_half = p + h/2 dp(t, q);  q' = q + h dq(t + h/2, p_half);  p' = p_half + h/2 dp(t + h, q').
    Symplectic and time-reversible (Haber & Ruthotto 2017, Hamiltonian networks).
    """

    order, name = 2, "leapfrog"

    def step(self, func, t, h, y):
        if not isinstance(func, SeparableField):
            raise TypeError(
                "method='leapfrog' needs a separable two-state field with methods dq(t, p) and "
                f"dp(t, q) (e.g. ctdl.dynamics.HamiltonianLayer); got {type(func).__name__}"
            )
        if isinstance(y, Tensor) or len(y) != 2:
            raise ValueError("method='leapfrog' needs a state (q, p), a tuple of two tensors")
        q, p = y
        p = p.add(func.dp(t, q), alpha=0.5 * h)
        q = q.add(func.dq(t + 0.5 * h, p), alpha=h)
        p = p.add(func.dp(t + h, q), alpha=0.5 * h)
        return q, p


FIXED_STEP_METHODS: dict[str, type[Stepper]] = {
    "euler": Euler,
    "rk4": RK4,
    "leapfrog": Leapfrog,
    "verlet": Leapfrog,
}
