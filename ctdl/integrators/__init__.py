"""ODE integrators with torchdiffeq's calling convention; see `odeint`."""

from .fixed_step import FIXED_STEP_METHODS, RK4, Euler, Leapfrog, SeparableField, Stepper
from .odeint import known_methods, odeint
from .sde import SDE_METHODS, brownian_increments, sdeint

__all__ = [
    "odeint", "known_methods", "sdeint", "brownian_increments", "SDE_METHODS",
    "FIXED_STEP_METHODS", "Stepper", "Euler", "RK4", "Leapfrog", "SeparableField",
]
