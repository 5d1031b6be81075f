"""An amortised posterior pi(theta | y) in raw units: a conditional potential flow trained in
standardised units, and the standardisation that maps raw units to them.

The flow (`ctdl.flows.PotentialFlow` with a condition) models p_u(u | v) for u = (f(theta) - m) / s
and v = (y - m_y) / s_y (`PosteriorScaling`); in raw units

    log pi(theta | y) = log p_u(u | v) + log |du / dtheta|,

samples are theta = f^-1(m + s u) for u = F^-1(z | v), z ~ N(0, I), and the MAP estimate
argmax_theta log pi(theta | y) is found by Adam on u from the best of a set of posterior samples
(Wang, Verma, Baptista, Marzouk, Ruthotto 2023, conditional OT-Flow).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ctdl.flows import PotentialFlow

from .scaling import PosteriorScaling


class FlowPosterior(nn.Module):
    """pi(theta | y) in raw units from a conditional `PotentialFlow` and its `PosteriorScaling`:
    `sample(n, y)`, `log_prob(theta, y)`, `map_estimate(y)`. `steps` is the default number of
    RK4 steps of every method (each takes `steps=` to override it)."""

    def __init__(self, flow: PotentialFlow, scaling: PosteriorScaling, steps: int = 32) -> None:
        super().__init__()
        if flow.cond_dim != scaling.y_mean.numel() or flow.dim != scaling.theta_mean.numel():
            raise ValueError(
                f"the flow models {flow.dim} parameters given {flow.cond_dim} statistics, the scaling "
                f"{scaling.theta_mean.numel()} given {scaling.y_mean.numel()}"
            )
        self.flow, self.scaling, self.steps = flow, scaling, steps

    @property
    def device(self) -> torch.device:
        return self.scaling.theta_mean.device

    @torch.no_grad()
    def sample(
        self, n: int, y: Tensor, *, steps: int | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """n samples (n, dim) of pi(theta | y) for one raw observation y (q,)."""
        v = self.scaling.observation(y)
        if v.ndim != 1:
            raise ValueError(
                f"sample_posterior takes one observation (shape ({self.scaling.y_mean.numel()},)), "
                f"got shape {tuple(v.shape)}"
            )
        u = self.flow.sample(n, v, steps=steps or self.steps, generator=generator)
        return self.scaling.to_params(u)

    def log_prob(self, theta: Tensor, y: Tensor, *, steps: int | None = None) -> Tensor:
        """log pi(theta | y) in raw units (batch,): theta (batch, d); y (q,) or (batch, q)."""
        u = self.scaling.from_params(theta)
        v = self.scaling.observation(y)
        log_p = self.flow.log_prob(u, v, steps=steps or self.steps)
        return log_p + self.scaling.log_det(theta.to(u))

    def map_estimate(
        self, y: Tensor, *, iterations: int = 200, starts: int = 256, steps: int | None = None, seed: int = 0
    ) -> Tensor:
        """argmax_theta log pi(theta | y) (dim,): Adam on u from the best of `starts` posterior
        samples, maximising the raw-unit log density."""
        gen = torch.Generator(device=self.device).manual_seed(seed)
        candidates = self.sample(starts, y, steps=steps, generator=gen)
        with torch.no_grad():
            best = self.log_prob(candidates, y, steps=steps).argmax()
        u = self.scaling.from_params(candidates[best : best + 1]).clone().requires_grad_()
        opt = torch.optim.Adam([u], lr=0.02)
        v = self.scaling.observation(y)
        with torch.enable_grad():
            for _ in range(iterations):
                theta = self.scaling.to_params(u)
                loss = -(self.flow.log_prob(u, v, steps=steps or self.steps) + self.scaling.log_det(theta))
                opt.zero_grad()
                loss.sum().backward()
                opt.step()
        return self.scaling.to_params(u.detach())[0]
