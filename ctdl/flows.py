"""The potential flow of OT-Flow as a plain module, with an optional condition y.

A potential Phi(x, t, y) defines the velocity v = -grad_x Phi. OT-Flow (Onken, Wu Fung, Li,
Ruthotto, AAAI 2021) integrates the characteristics of the HJB-regularised transport problem on
[0, 1] for the state (x, l, L, R), started at (x0, 0, 0, 0):

    dx/dt = -grad_x Phi(x, t, y),       dl/dt = -tr Hess_x Phi(x, t, y)     (= div v),
    dL/dt = 1/2 |grad_x Phi|^2,         dR/dt = | -d_t Phi + 1/2 |grad_x Phi|^2 |   (HJB residual).

x(1) = F(x0; y) is the flow map to the latent N(0, I), l(1) = log |det dF/dx0|, so

    -log p(x0 | y) = 1/2 |x(1)|^2 + d/2 log(2 pi) - l(1),

L(1) is the transport cost and R(1) the HJB penalty. Samples are F^{-1}(z; y) with z ~ N(0, I),
integrating dx/dt = -grad_x Phi backwards from t = 1 to 0. The condition y enters Phi only (the
trace is over x), which makes this the conditional OT-Flow of Wang, Wu Fung, Ruthotto et al.
(2023): one flow per condition, a density over x for every fixed y. Classic RK4, fixed steps.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .integrators import odeint
from .potential import Potential, check_trace, potential_derivatives

FlowState = tuple[Tensor, Tensor, Tensor, Tensor]


class PotentialFlow(nn.Module):
    """x -> z along v = -grad_x Phi(x, t, y): `log_prob`, `sample`, `forward`, `inverse`, `integrate`.

    Every method has the signature (x, y=None, *, steps=None): the condition y second, of shape
    (batch, q) or (q,) for one condition shared by the whole batch (q = potential.cond_dim; leave
    y out when q = 0), and keyword-only options: `steps` is the number of classic RK4 steps on
    [0, 1] (default `self.steps`).
    """

    def __init__(self, potential: Potential, trace: str = "exact", steps: int = 16) -> None:
        """
        Args:
            potential: Phi(x, t, y), with `dim` and `cond_dim`.
            trace: how tr Hess_x Phi is computed: "exact" (hand-derived sweeps), "autograd"
                (d backward passes) or "hutchinson" (one probe per solve, unbiased).
            steps: default number of RK4 steps.
        """
        super().__init__()
        check_trace(trace)
        if steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps}")
        self.potential = potential
        # The flow sees Phi only through its derivatives: the constant b is frozen, so that no
        # parameter is left without a gradient (DDP refuses those).
        potential.c0.requires_grad_(False)
        self.trace = trace
        self.steps = steps

    @property
    def dim(self) -> int:
        return self.potential.dim

    @property
    def cond_dim(self) -> int:
        return self.potential.cond_dim

    # -------------------------------------------------------------------------- input checks
    def check_input(self, x: Tensor) -> None:
        """x must be (batch, dim) in the potential's dtype."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(
                f"the data has samples of shape {list(x.shape[1:])} but the model was built for "
                f"dim={self.dim}; set model.dim to the data's dimension (the datamodule's dim)"
            )
        dtype = self.potential.A.dtype
        if x.dtype != dtype:
            raise TypeError(
                f"x is {x.dtype} but the model's parameters are {dtype}; "
                f"pass x.to({dtype}) or convert the model with .to({x.dtype})"
            )

    def condition(self, y: Tensor | None, batch: int, like: Tensor) -> Tensor | None:
        """y as a (batch, q) tensor in like's dtype and device: (q,) is broadcast over the batch."""
        q = self.cond_dim
        if isinstance(y, int | float) and not isinstance(y, bool):
            raise TypeError(
                f"y must be a condition tensor, got the number {y!r}; options are keyword-only: "
                f"pass steps={y!r}"
            )
        if q == 0:
            if y is not None:
                raise ValueError(
                    f"this flow is unconditional (cond_dim=0) but a condition y of shape "
                    f"{tuple(y.shape)} was given; build the potential with cond_dim=q"
                )
            return None
        if y is None:
            raise ValueError(f"this flow is conditional: pass y of shape ({batch}, {q}) or ({q},)")
        y = torch.as_tensor(y, dtype=like.dtype, device=like.device)
        if y.shape == (q,):
            return y.expand(batch, q)
        if y.shape != (batch, q):
            raise ValueError(
                f"y must have shape ({batch}, {q}) or ({q},) for a batch of {batch}, got {tuple(y.shape)}"
            )
        return y

    # ------------------------------------------------------------------------- the dynamics
    def characteristics(self, y: Tensor | None = None, noise: Tensor | None = None):
        """The right-hand side f(t, (x, l, L, R)) of the system above; `noise` is Hutchinson's
        probe (batch, d), drawn once per solve."""

        def f(t: Tensor, state: FlowState) -> FlowState:
            x = state[0]
            grad, d_t, lap = potential_derivatives(self.potential, x, t, y, trace=self.trace, noise=noise)
            kinetic = 0.5 * grad.pow(2).sum(1)
            return -grad, -lap, kinetic, (kinetic - d_t).abs()

        return f

    def velocity(self, y: Tensor | None = None):
        """v(t, x) = -grad_x Phi(x, t, y): the gradient only, no trace (enough to move points)."""

        def v(t: Tensor, x: Tensor) -> Tensor:
            return -self.potential.gradient(x, t, y)[0]

        return v

    def integrate(self, x: Tensor, y: Tensor | None = None, *, steps: int | None = None) -> FlowState:
        """(x(1), l(1), L(1), R(1)) from (x, 0, 0, 0) at t = 0."""
        self.check_input(x)
        y = self.condition(y, x.shape[0], x)
        zeros = x.new_zeros(x.shape[0])
        noise = torch.randn_like(x) if self.trace == "hutchinson" else None
        t = torch.tensor([0.0, 1.0], dtype=x.dtype, device=x.device)
        out = odeint(
            self.characteristics(y, noise),
            (x, zeros, zeros, zeros),
            t,
            method="rk4",
            steps=steps or self.steps,
        )
        return tuple(part[-1] for part in out)

    def _map(self, x: Tensor, y: Tensor | None, steps: int | None, t0: float, t1: float) -> Tensor:
        """x(t1) from x(t0) = x along v = -grad_x Phi (the gradient only)."""
        self.check_input(x)
        y = self.condition(y, x.shape[0], x)
        t = torch.tensor([t0, t1], dtype=x.dtype, device=x.device)
        return odeint(self.velocity(y), x, t, method="rk4", steps=steps or self.steps)[-1]

    def forward(self, x: Tensor, y: Tensor | None = None, *, steps: int | None = None) -> Tensor:
        """The flow map F(x; y): data -> latent z = x(1)."""
        return self._map(x, y, steps, 0.0, 1.0)

    def inverse(self, z: Tensor, y: Tensor | None = None, *, steps: int | None = None) -> Tensor:
        """F^{-1}(z; y): latent -> data, integrating from t = 1 back to 0."""
        return self._map(z, y, steps, 1.0, 0.0)

    # ----------------------------------------------------------------------- the density
    def nll_terms(
        self, x: Tensor, y: Tensor | None = None, *, steps: int | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Per-sample (C, L, R): -log p(x | y) in nats, transport cost, HJB penalty."""
        z, l, cost_L, cost_R = self.integrate(x, y, steps=steps)
        C = 0.5 * z.pow(2).sum(1) + 0.5 * self.dim * math.log(2 * math.pi) - l
        return C, cost_L, cost_R

    def log_prob(self, x: Tensor, y: Tensor | None = None, *, steps: int | None = None) -> Tensor:
        """log p(x | y) in nats, shape (batch,)."""
        return -self.nll_terms(x, y, steps=steps)[0]

    @torch.no_grad()
    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        *,
        steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """n samples (n, dim) of p(x | y): z ~ N(0, I) drawn with `generator`, pushed through F^{-1}.

        y: (q,) for n samples of one condition, or (n, q) for one sample per condition."""
        p = self.potential.A
        z = torch.randn(n, self.dim, generator=generator, dtype=p.dtype, device=p.device)
        return self.inverse(z, y, steps=steps)
