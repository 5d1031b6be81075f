"""Convolutional networks over the PDE's fields: a value function with its Hamiltonian feedback, a
direct policy, and the encoder both (and an RL library's policy) share.

Inputs are the `observe` images (B, 5, g, g): the concentration u / u_scale, the velocity
(v_x, v_y) / velocity_scale, the source f / max rate and the time t / T as a constant channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .problem import AdvectionDiffusion, Instances
from .rollout import feedback_law

__all__ = [
    "OBSERVATION_CHANNELS",
    "Coefficients",
    "instance_channels",
    "observe",
    "check_grid",
    "FieldEncoder",
    "FieldNet",
    "QuadraticValue",
    "ValueFeedback",
    "DirectPolicy",
    "StateFeedback",
]

OBSERVATION_CHANNELS = 5
STATE_SCALE = 10.0  # typical peak concentration of the default problem


def instance_channels(problem: AdvectionDiffusion, inst: Instances, t: float | Tensor) -> Tensor:
    """(B, 4, g, g) float32 images [v_x, v_y, f, t] of the instances at time t (or at times t (B,))."""
    images = inst.images
    scale = torch.tensor([problem.velocity_scale, problem.velocity_scale, max(problem.source_rate)])[
        :, None, None
    ]
    time = torch.as_tensor(t, dtype=torch.float32).reshape(-1, 1, 1, 1) / problem.horizon
    return torch.cat([images / scale, time.expand(len(images), 1, *images.shape[-2:])], 1)


def observe(problem: AdvectionDiffusion, inst: Instances, u: Tensor, t: float) -> Tensor:
    """The policies' view of the state: (B, 5, g, g) float32 images [u, v_x, v_y, f, t]."""
    state = (problem.to_image(u) / STATE_SCALE).float().unsqueeze(1)
    return torch.cat([state, instance_channels(problem, inst, t)], 1)


def check_grid(problem: AdvectionDiffusion, grid: int | None) -> None:
    """A network built for `grid` x `grid` images must meet the problem's mesh (names both)."""
    if grid is not None and grid != problem.grid:
        raise ValueError(
            f"the network's input grid is {grid} x {grid} but the problem's {problem.cells} x "
            f"{problem.cells} mesh gives {problem.grid} x {problem.grid} images; set the network's grid "
            f"to cells + 1 or the problem's cells to grid - 1"
        )


class FieldEncoder(nn.Module):
    """Images (B, C, g, g) -> features (B, features): three stride-2 3x3 convolutions (SiLU), then a
    2 x 2 average pool."""

    def __init__(self, in_channels: int = OBSERVATION_CHANNELS, width: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(4 * width, 4 * width, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
        )
        self.features = 16 * width

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class FieldNet(nn.Module):
    """Images (B, C, g, g) -> fields (B, out, g, g) and scalars (B, scalars): a two-level
    convolutional encoder-decoder with skips (any g); both outputs start at zero."""

    def __init__(self, in_channels: int, out_channels: int, width: int = 16, scalars: int = 1) -> None:
        super().__init__()
        w = width
        self.inp = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1), nn.SiLU(), nn.Conv2d(w, w, 3, padding=1), nn.SiLU()
        )
        self.down1 = nn.Sequential(nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.SiLU())
        self.down2 = nn.Sequential(
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=2, dilation=2),
            nn.SiLU(),
        )
        self.up2 = nn.Sequential(nn.Conv2d(4 * w, 2 * w, 3, padding=1), nn.SiLU())
        self.up1 = nn.Sequential(nn.Conv2d(3 * w, w, 3, padding=1), nn.SiLU())
        self.out = nn.Conv2d(w, out_channels, 1)
        self.scalar = nn.Linear(2 * w, scalars)
        for layer in (self.out, self.scalar):  # start from the terminal structure
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h0 = self.inp(x)
        h1 = self.down1(h0)
        h2 = self.down2(h1)
        u1 = self.up2(torch.cat([h1, F.interpolate(h2, size=h1.shape[-2:], mode="bilinear")], 1))
        u0 = self.up1(torch.cat([h0, F.interpolate(u1, size=h0.shape[-2:], mode="bilinear")], 1))
        return self.out(u0), self.scalar(h2.mean((-2, -1)))


class Coefficients(NamedTuple):
    """The value's p, q (S, B, n) and c (S, B) at S times; `at(n)` gives time n's."""

    p: Tensor
    q: Tensor
    c: Tensor

    def at(self, n: int) -> Coefficients:
        return Coefficients(self.p[n], self.q[n], self.c[n])


class QuadraticValue(nn.Module):
    """Phi(t, u; v, f) = (p . u)' M u + q' M u + c, the form of the value of a linear system with
    quadratic cost, with fields p, q and a scalar c from one `FieldNet` call over the instance's
    images (v_x, v_y, f), expanded in `time_basis` Chebyshev polynomials T_j(2 t / T - 1):

        p = gamma + (T - t) sum_j T_j p~_j,   q = (T - t) sum_j T_j q~_j,   c = (T - t) sum_j T_j c~_j,

    so Phi(T, u) = gamma ||u||^2 = g(u) exactly (no terminal penalty is needed). The feedback is the
    Hamiltonian's minimiser (`ctdl.pde_control.feedback_law`) at g = grad_u Phi.
    """

    def __init__(
        self, problem: AdvectionDiffusion, width: int = 16, output_scale: float = 1.0, time_basis: int = 6
    ) -> None:
        super().__init__()
        if time_basis < 1:
            raise ValueError(f"time_basis must be >= 1, got {time_basis}")
        self.problem, self.output_scale, self.time_basis = problem, output_scale, time_basis
        self.net = FieldNet(OBSERVATION_CHANNELS - 2, 2 * time_basis, width, scalars=time_basis)

    def coefficients(self, inst: Instances, times: Tensor) -> Coefficients:
        """p, q (S, B, n) and c (S, B), float64, at S times (one network call)."""
        x = instance_channels(self.problem, inst, 0.0)[:, :-1]  # the time enters through the basis
        w = next(self.parameters())
        fields, c = self.net(x.to(w.device, w.dtype))
        fields = (fields * self.output_scale).double().cpu().unflatten(1, (2, self.time_basis))
        c = (c * self.output_scale).double().cpu()
        s = (2 * times.double() / self.problem.horizon - 1).clamp(-1, 1)
        basis = torch.cos(
            torch.arange(self.time_basis, dtype=torch.float64) * torch.arccos(s)[:, None]
        )  # (S, m)
        rest = (self.problem.horizon - times.double())[:, None]  # (S, 1)
        p = self.problem.gamma + rest[..., None] * self.problem.from_image(
            torch.einsum("sj,bjxy->sbxy", basis, fields[:, 0])
        )
        q = rest[..., None] * self.problem.from_image(torch.einsum("sj,bjxy->sbxy", basis, fields[:, 1]))
        return Coefficients(p, q, rest * (basis @ c.T))

    def value(self, coef: Coefficients, u: Tensor) -> Tensor:
        """Phi = (p . u + q)' M u + c for coefficients of one time (B, n) and states u (B, n); (B,)."""
        return ((coef.p * u + coef.q) * self.problem.M(u)).sum(-1) + coef.c

    def gradient(self, coef: Coefficients, u: Tensor) -> Tensor:
        """grad_u Phi = M (p . u) + p . (M u) + M q, (B, n) (M symmetric)."""
        return self.problem.M(coef.p * u + coef.q) + coef.p * self.problem.M(u)

    def control(self, inst: Instances, coef: Coefficients, u: Tensor) -> Tensor:
        """a*(t, u) = clip((B_k u)' S^{-T} grad Phi / alpha, 0, a_max), (B, K)."""
        return feedback_law(self.problem, inst, u, self.gradient(coef, u))

    def feedback(self, inst: Instances, times: Tensor) -> ValueFeedback:
        """The feedback law at the times (S,) for these instances (one network call for all S)."""
        return ValueFeedback(self, inst, self.coefficients(inst, times))

    def forward(self, inst: Instances, u: Tensor, t: float) -> Tensor:
        """Phi(t, u), (B,) float64."""
        return self.value(self.coefficients(inst, torch.tensor([float(t)])).at(0), u)


@dataclass
class ValueFeedback:
    """A value policy's feedback for given instances: `(n, t, u) -> a (B, K)` at the n-th of the times
    its `coefficients` were computed at."""

    value: QuadraticValue
    inst: Instances
    coefficients: Coefficients

    def __call__(self, n: int, t: float, u: Tensor) -> Tensor:
        return self.value.control(self.inst, self.coefficients.at(n), u)


@dataclass
class StateFeedback:
    """The feedback of a policy with `control(inst, u, t)` (a direct network, an RL agent) for given
    instances: `(n, t, u) -> a (B, K)`; n is not needed, the time t is an input."""

    policy: object
    inst: Instances

    def __call__(self, n: int, t: float, u: Tensor) -> Tensor:
        return self.policy.control(self.inst, u, t)


class DirectPolicy(nn.Module):
    """a(t, u; v, f) = a_max sigmoid(head(encoder(observe(u)))), (B, K)."""

    def __init__(self, problem: AdvectionDiffusion, width: int = 16) -> None:
        super().__init__()
        self.problem = problem
        self.encoder = FieldEncoder(OBSERVATION_CHANNELS, width)
        self.head = nn.Sequential(
            nn.Linear(self.encoder.features, 64), nn.SiLU(), nn.Linear(64, problem.num_actuators)
        )

    def feedback(self, inst: Instances, times: Tensor) -> StateFeedback:
        """The feedback law for these instances (any times)."""
        return StateFeedback(self, inst)

    def control(self, inst: Instances, u: Tensor, t: float) -> Tensor:
        w = next(self.parameters())
        obs = observe(self.problem, inst, u, t).to(w.device, w.dtype)
        return (self.problem.a_max * torch.sigmoid(self.head(self.encoder(obs)))).double().cpu()
