"""ODE and SDE integrators on one time-grid loop, with torchdiffeq's calling convention.

`odeint` (ODEs; our fixed-step methods or torchdiffeq's), `sdeint` (SDEs, Brownian or coloured
noise), the steppers and their registries `FIXED_STEP_METHODS` and `SDE_METHODS`.
"""

from .grid import step_counts, time_grid, walk_grid
from .noise import BrownianNoise, CallableNoise, ColouredNoise, FixedIncrements, Noise
from .ode_steppers import FIXED_STEP_METHODS, RK4, Euler, Leapfrog, SeparableField, Stepper
from .odeint import known_methods, odeint
from .sde import sdeint
from .sde_problem import SDE
from .sde_steppers import SDE_METHODS, EulerMaruyama, SDEStepper, StochasticHeun

__all__ = [
    "odeint",
    "known_methods",
    "sdeint",
    "FIXED_STEP_METHODS",
    "Stepper",
    "Euler",
    "RK4",
    "Leapfrog",
    "SeparableField",
    "SDE_METHODS",
    "SDEStepper",
    "EulerMaruyama",
    "StochasticHeun",
    "SDE",
    "Noise",
    "BrownianNoise",
    "ColouredNoise",
    "CallableNoise",
    "FixedIncrements",
    "step_counts",
    "time_grid",
    "walk_grid",
]
