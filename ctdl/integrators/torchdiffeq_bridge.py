"""Everything ctdl takes from torchdiffeq's private internals (`torchdiffeq._impl`), in one place.

An upgrade of torchdiffeq that moves these internals touches this file only. It registers the
classic RK4 tableau as a torchdiffeq fixed-grid solver, so that adjoint solves (which run in
torchdiffeq) use exactly the same RK4 as our own forward loop, and lists torchdiffeq's methods.
"""

from __future__ import annotations

import importlib

from torchdiffeq._impl.misc import Perturb
from torchdiffeq._impl.rk_common import rk4_step_func
from torchdiffeq._impl.solvers import FixedGridODESolver

# the module, not the function of the same name that torchdiffeq._impl re-exports
_SOLVERS: dict[str, type] = importlib.import_module("torchdiffeq._impl.odeint").SOLVERS

CLASSIC_RK4 = "ctdl_rk4"
"""torchdiffeq's name for our classic RK4 (its own "rk4" is Kutta's 3/8 rule)."""


class ClassicRK4Grid(FixedGridODESolver):
    """torchdiffeq fixed-grid solver with the classic RK4 tableau (1/6, 1/3, 1/3, 1/6)."""

    order = 4

    def _step_func(self, func, t0, dt, t1, y0):
        f0 = func(t0, y0, perturb=Perturb.NEXT if self.perturb else Perturb.NONE)
        return rk4_step_func(func, t0, dt, t1, y0, f0=f0, perturb=self.perturb), f0


_SOLVERS.setdefault(CLASSIC_RK4, ClassicRK4Grid)


def torchdiffeq_methods() -> set[str]:
    """The method names torchdiffeq.odeint accepts (without the classic RK4 registered here)."""
    return {name for name in _SOLVERS if name != CLASSIC_RK4}
