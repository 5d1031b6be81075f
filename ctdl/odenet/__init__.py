"""Supervised ODE-Nets: the plain classifier network (network.py: lift, continuous blocks over
`ctdl.dynamics` layers integrated by `ctdl.integrators.odeint`, head), its loss (losses.py) and what
its tests and benchmarks report (evaluate.py: accuracy, the memory of a training step, the overhead
of odeint against torchdiffeq).

Haber & Ruthotto, "Stable architectures for deep neural networks", Inverse Problems 2017;
Chen, Rubanova, Bettencourt, Duvenaud, "Neural ordinary differential equations", NeurIPS 2018.
"""

from .evaluate import accuracy, solver_overhead, training_step_memory_mib
from .losses import classification_loss, regularizer
from .network import ODENet

__all__ = [
    "ODENet",
    "classification_loss",
    "regularizer",
    "accuracy",
    "training_step_memory_mib",
    "solver_overhead",
]
