"""What the ODE-Net tests and benchmarks report: accuracy, the memory of one training step and the
time per step of `ctdl.integrators.odeint` against torchdiffeq on the same vector field."""

from __future__ import annotations

import resource
import statistics
import time

import torch
from torch import Tensor

from .network import ODENet


def accuracy(logits: Tensor, y: Tensor) -> Tensor:
    """The fraction of samples whose largest logit is their label."""
    return (logits.argmax(-1) == y).float().mean()


def training_step_memory_mib(
    steps: int, adjoint: bool, width: int = 256, batch: int = 1024, dim: int = 64, classes: int = 10
) -> float:
    """Peak resident-memory growth (MiB, `ru_maxrss`) of one forward + backward of a dense ODENet
    (RK4, `steps` steps, backprop or adjoint gradients) on a random batch, seeded. The peak only
    grows: call it once in a fresh process."""
    torch.manual_seed(0)
    net = ODENet(
        input_shape=[dim], num_classes=classes, width=width, steps=steps, method="rk4", adjoint=adjoint
    )
    x, y = torch.randn(batch, dim), torch.randint(0, classes, (batch,))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    torch.nn.functional.cross_entropy(net(x), y).backward()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (after - before) / 1024


def solver_overhead(batch: int, width: int, steps: int, repeats: int = 15) -> list[dict]:
    """Time per step of `ctdl.integrators.odeint(method="rk4")` and torchdiffeq's fixed-grid rk4 on
    the same `ResNetLayer(width, pieces=4)` from a random (batch, width) state, forward and
    forward + backward: the median of `repeats` interleaved rounds after 2 warm-up rounds. One row
    per mode with both times (microseconds) and their ratio ctdl / torchdiffeq."""
    import torchdiffeq

    from ctdl.dynamics import ResNetLayer
    from ctdl.integrators import odeint

    t = torch.tensor([0.0, 1.0])
    torch.manual_seed(0)
    f = ResNetLayer(width, pieces=4)
    y0 = torch.randn(batch, width)
    solvers = {
        "ctdl": lambda y: odeint(f, y, t, method="rk4", steps=steps),
        "torchdiffeq": lambda y: torchdiffeq.odeint(
            f, y, t, method="rk4", options={"step_size": 1.0 / steps}
        ),
    }
    rows = []
    for mode in ("forward", "forward+backward"):
        times = {name: [] for name in solvers}
        for r in range(repeats + 2):  # interleave contenders; the first 2 rounds warm up
            for name, solve in solvers.items():
                y = y0.clone().requires_grad_(mode != "forward")
                start = time.perf_counter()
                out = solve(y)[-1]
                if mode != "forward":
                    out.square().sum().backward()
                if r >= 2:
                    times[name].append((time.perf_counter() - start) / steps)
        med = {name: statistics.median(v) for name, v in times.items()}
        rows.append(
            {
                "batch": batch,
                "width": width,
                "steps": steps,
                "mode": mode,
                "ctdl_us_per_step": round(1e6 * med["ctdl"], 1),
                "torchdiffeq_us_per_step": round(1e6 * med["torchdiffeq"], 1),
                "ratio": round(med["ctdl"] / med["torchdiffeq"], 3),
            }
        )
    return rows
