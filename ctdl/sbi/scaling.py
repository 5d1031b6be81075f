"""Raw units <-> the standardised units a posterior flow is trained in.

Parameters: u = (f(theta) - m_theta) / s_theta with f = log (positive parameters, e.g. rates) or
the identity; observations: v = (y - m_y) / s_y. A density in u converts to one in theta by the
change of variables

    log p(theta | y) = log p_u(u | v) - sum log s_theta - [f = log] sum log theta.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class PosteriorScaling(nn.Module):
    """The four standardisation vectors and the log flag as buffers (so they live in checkpoints)."""

    def __init__(self, dim: int, cond_dim: int, log_params: bool = False) -> None:
        super().__init__()
        self.register_buffer("theta_mean", torch.zeros(dim))
        self.register_buffer("theta_std", torch.ones(dim))
        self.register_buffer("y_mean", torch.zeros(cond_dim))
        self.register_buffer("y_std", torch.ones(cond_dim))
        self.register_buffer("log_params", torch.tensor(log_params))

    @torch.no_grad()
    def set(
        self, theta_mean: Tensor, theta_std: Tensor, y_mean: Tensor, y_std: Tensor, log_params: bool
    ) -> None:
        """Copy the statistics in (shapes must match the buffers)."""
        for name, value in (
            ("theta_mean", theta_mean),
            ("theta_std", theta_std),
            ("y_mean", y_mean),
            ("y_std", y_std),
        ):
            buffer = getattr(self, name)
            if tuple(value.shape) != tuple(buffer.shape):
                raise ValueError(
                    f"{name} has shape {tuple(value.shape)}, the model expects "
                    f"{tuple(buffer.shape)}: do the model's dim and cond_dim fit the data?"
                )
            buffer.copy_(value)
        self.log_params.fill_(log_params)

    def observation(self, y: Tensor) -> Tensor:
        """Raw y (q,) or (b, q) -> v, checked: names both lengths, refuses NaN."""
        y = torch.as_tensor(y, dtype=self.y_mean.dtype, device=self.y_mean.device)
        q = self.y_mean.numel()
        if y.shape[-1:] != (q,) or y.ndim > 2:
            raise ValueError(f"an observation y has {q} entries for this model, got shape {tuple(y.shape)}")
        if not torch.isfinite(y).all():
            raise ValueError("the observation y holds NaN or inf values")
        return (y - self.y_mean) / self.y_std

    def to_params(self, u: Tensor) -> Tensor:
        """u -> raw theta."""
        a = u * self.theta_std + self.theta_mean
        return a.exp() if self.log_params else a

    def from_params(self, theta: Tensor) -> Tensor:
        """Raw theta -> u."""
        theta = torch.as_tensor(theta, dtype=self.theta_mean.dtype, device=self.theta_mean.device)
        if theta.shape[-1:] != self.theta_mean.shape:
            raise ValueError(
                f"theta has {self.theta_mean.numel()} entries for this model, got shape {tuple(theta.shape)}"
            )
        a = theta.log() if self.log_params else theta
        return (a - self.theta_mean) / self.theta_std

    def log_det(self, theta: Tensor) -> Tensor:
        """log |du / dtheta| per sample, (batch,)."""
        out = -self.theta_std.log().sum().expand(theta.shape[0])
        return out - theta.log().sum(1) if self.log_params else out
