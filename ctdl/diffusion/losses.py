"""Denoising score matching with C never inverted, and the preconditioned score it implies.

The forward VP SDE gives, in closed form,

    x_t = alpha(t) x0 + sqrt(v(t)) n,   n = C^(1/2) xi,  xi ~ N(0, I) grid white noise,

so grad log p(x_t | x0) = -(v C)^(-1) sqrt(v) n and C grad log p(x_t | x0) = -n / sqrt(v). The network
eps_theta(x_t, t) predicts the NOISE n; the loss

    loss = E_{t ~ U(t_min, T), x0, xi} mean_pixels (eps_theta(x_t, t) - C^(1/2) xi)^2

(the mean over grid points is ||.||^2 in L2 of the unit torus, the same at every resolution) is
minimised by eps*(x, t) = E[n | x_t = x], and then C grad log p_t(x) = -eps*(x, t) / sqrt(v(t)): the
preconditioned score that the samplers take (`preconditioned=True`). Only C^(1/2) is applied (to
draw n), never C^(-1) or C^(-1/2). This is the loss 1/2 || a sqrt(v)/g + A xi ||^2 of Hagemann et al.
(arXiv 2303.04772) with the network output a = -g n / sqrt(v) rescaled to the noise.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .priors import FourierPrior
from .sde import VPSDE


def dsm_loss(
    net: nn.Module,
    sde: VPSDE,
    prior: FourierPrior,
    x0: Tensor,
    t_min: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """mean over batch and grid of (eps_theta(x_t, t) - C^(1/2) xi)^2, t ~ U(t_min, 1), for images x0
    (batch, channels, n, n); `generator` seeds t and xi (a fixed one makes the loss comparable)."""
    x0 = x0.float() if not x0.is_floating_point() else x0
    gen_device = x0.device if generator is None else generator.device
    u = torch.rand(x0.shape[0], generator=generator, dtype=x0.dtype, device=gen_device).to(x0.device)
    t = t_min + (1 - t_min) * u
    x_t, noise = sde.perturb(x0, t, prior, generator=generator)
    out = net(x_t, t)
    return (out.float() - noise.float()).pow(2).mean()


def preconditioned_score(net: nn.Module, sde: VPSDE, x: Tensor, t: Tensor | float) -> Tensor:
    """C grad log p_t(x) = -eps_theta(x, t) / sqrt(v(t)) (t a float or per-sample (batch,))."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    t = t.expand(x.shape[0]) if t.ndim == 0 else t
    v = sde.variance(t).to(x.dtype).reshape(-1, 1, 1, 1)
    return -net(x, t) / v.sqrt()
