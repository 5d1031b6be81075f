"""ODE integrators with torchdiffeq's calling convention; see `odeint`."""

from .fixed_step import FIXED_STEP_METHODS, RK4, Euler, Leapfrog, SeparableField, Stepper
from .odeint import known_methods, odeint

__all__ = ["odeint", "known_methods", "FIXED_STEP_METHODS", "Stepper", "Euler", "RK4",
           "Leapfrog", "SeparableField"]
