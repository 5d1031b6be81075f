"""The Deep BSDE method (Han, Jentzen and E, PNAS 2018) as a baseline for the value network.

For one start point x0 it learns Y_0 = Phi(0, x0), P_0 = grad Phi(0, x0) (two parameters) and one
network per later grid time, P_k(x) = grad Phi(t_k, x), k = 1, ..., N - 1. Along the uncontrolled
paths X_{k+1} = X_k + sigma sqrt(h) xi_k Ito's formula and the HJB equation give

    Y_{k+1} = Y_k - H(t_k, X_k, P_k) h + P_k' sigma sqrt(h) xi_k,

and the loss is the terminal mismatch mean |Y_N - g(X_N)|^2. Its feedback control is
u_k = u*(t_k, x, P_k(x)); along the paths it controls, -H + P' f = -L, so the value is carried as

    Y_{k+1} = Y_k - L(t_k, X_k, u_k) h + P_k' sigma sqrt(h) xi_k,

which is how the value along controlled paths is compared with a reference. The gradient is known
only on the grid of training (N steps), and only near the paths of the uncontrolled dynamics from
x0; the value network of `ctdl.soc.ValueFunction` has neither limit.

Each network is the published shape (batch normalisation, two hidden layers of width d + 10, ReLU).
`train_deep_bsde` fits it by Adam with a cosine decay of the learning rate over an iteration count
or a wall-time budget (the budget a comparison with another method at equal time gives).
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..paths import Paths
from ..problems import ControlProblem


def gradient_network(dim: int, width: int) -> nn.Sequential:
    """x (n, d) -> P (n, d): normalise, two hidden layers of `width` with batch norm and ReLU."""
    return nn.Sequential(
        nn.BatchNorm1d(dim),
        nn.Linear(dim, width, bias=False),
        nn.BatchNorm1d(width),
        nn.ReLU(),
        nn.Linear(width, width, bias=False),
        nn.BatchNorm1d(width),
        nn.ReLU(),
        nn.Linear(width, dim),
    )


class DeepBSDE(nn.Module):
    """Y_0, P_0 and the per-step gradient networks for `problem` from its single start point."""

    def __init__(
        self,
        problem: ControlProblem,
        steps: int = 20,
        width: int | None = None,
        y0_range: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        super().__init__()
        if problem.deterministic:
            raise ValueError(f"the Deep BSDE method needs noise; the {problem.name} problem has sigma = 0")
        draws = problem.sample_start(2, torch.Generator().manual_seed(0))
        if not torch.equal(draws[0], draws[1]):
            raise ValueError(
                f"the Deep BSDE method solves for one start point; the {problem.name} problem's "
                "start law is random (for hjb_lq set start: origin)"
            )
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.problem, self.steps = problem, steps
        d = problem.dim
        self.register_buffer("x0", draws[0].float())
        self.y0 = nn.Parameter(torch.empty(()).uniform_(*y0_range))
        self.p0 = nn.Parameter(torch.empty(d).uniform_(-0.1, 0.1))
        self.nets = nn.ModuleList(gradient_network(d, width or d + 10) for _ in range(steps - 1))

    @property
    def h(self) -> float:
        return self.problem.horizon / self.steps

    def gradient(self, k: int, x: Tensor) -> Tensor:
        """P_k(x) = grad Phi(t_k, x), shape (n, d); k = 0 is the learned P_0 at x0."""
        if not 0 <= k < self.steps:
            raise ValueError(f"the grid has steps 0..{self.steps - 1}; got {k}")
        return self.p0.expand_as(x) if k == 0 else self.nets[k - 1](x)

    def control(self, k: int, x: Tensor) -> Tensor:
        """The feedback u*(t_k, x, P_k(x)), shape (n, control_dim)."""
        return self.problem.optimal_control(k * self.h, x, self.gradient(k, x))

    def _increment(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """sqrt(h) xi, xi ~ N(0, I) of x's shape."""
        return math.sqrt(self.h) * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)

    def loss(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """mean |Y_N - g(X_N)|^2 over n uncontrolled paths from x0."""
        problem, h = self.problem, self.h
        sigma = problem.sigma.to(self.x0)
        x = self.x0.expand(n, -1)
        y = self.y0.expand(n)
        for k in range(self.steps):
            dW = self._increment(x, generator) @ sigma.T
            p = self.gradient(k, x)
            y = y - problem.hamiltonian(k * h, x, p) * h + (p * dW).sum(-1)
            x = x + dW
        return (y - problem.terminal_cost(x)).square().mean()

    @torch.no_grad()
    def controlled_paths(self, n: int, generator: torch.Generator | None = None) -> tuple[Paths, Tensor]:
        """n paths under the feedback control (Euler-Maruyama on the training grid) and the value Y
        carried along them, (N + 1, n)."""
        problem, h = self.problem, self.h
        sigma = problem.sigma.to(self.x0)
        x, y, c = self.x0.expand(n, -1), self.y0.expand(n), self.x0.new_zeros(n)
        states, values, running = [x], [y], [c]
        for k in range(self.steps):
            dW = self._increment(x, generator) @ sigma.T
            p = self.gradient(k, x)
            u = problem.optimal_control(k * h, x, p)
            cost = problem.running_cost(k * h, x, u) * h
            y = y - cost + (p * dW).sum(-1)
            c = c + cost
            x = x + problem.drift(k * h, x, u) * h + dW
            states.append(x), values.append(y), running.append(c)
        times = torch.linspace(0.0, problem.horizon, self.steps + 1, dtype=x.dtype)
        return Paths(times, torch.stack(states), torch.stack(running)), torch.stack(values)


class Training(NamedTuple):
    """What `train_deep_bsde` did: Adam iterations and wall seconds."""

    iterations: int
    seconds: float


def train_deep_bsde(
    model: DeepBSDE,
    *,
    iterations: int | None = None,
    seconds: float | None = None,
    lr: float = 0.01,
    batch: int = 64,
    generator: torch.Generator | None = None,
) -> Training:
    """Minimise `model.loss(batch)` by Adam for `iterations` steps or for `seconds` of wall time
    (exactly one of the two), the learning rate decayed along the budget's progress p in [0, 1):
    lr_p = lr (1 + cos(pi p)) / 2, p = k / iterations or elapsed / seconds before step k."""
    if (iterations is None) == (seconds is None):
        raise ValueError("give the Deep BSDE training either iterations or seconds (a wall-time budget)")
    if (iterations is not None and iterations < 1) or (seconds is not None and not seconds > 0):
        raise ValueError(f"the budget must be positive, got iterations={iterations}, seconds={seconds}")
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    start, k = time.perf_counter(), 0
    while (progress := k / iterations if seconds is None else (time.perf_counter() - start) / seconds) < 1:
        for group in optimizer.param_groups:
            group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * progress))
        loss = model.loss(batch, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        k += 1
    return Training(k, time.perf_counter() - start)
