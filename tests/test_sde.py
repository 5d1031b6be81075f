"""Euler-Maruyama: strong order 1/2 on geometric Brownian motion, moments of Ornstein-Uhlenbeck."""

import math

import numpy as np
import pytest
import torch

from ctdl.integrators import sdeint

MU, SIGMA = 0.5, 0.8


def test_strong_order_one_half_on_geometric_brownian_motion():
    """dY = mu Y dt + sigma Y dW, Y(1) = Y0 exp((mu - sigma^2/2) + sigma W(1)) on the same path."""
    gen = torch.Generator().manual_seed(0)
    paths, fine = 4000, 512
    dW_fine = torch.randn(fine, paths, generator=gen, dtype=torch.float64) / math.sqrt(fine)
    y0 = torch.ones(paths, dtype=torch.float64)
    exact = y0 * torch.exp(torch.tensor(MU - SIGMA**2 / 2) + SIGMA * dW_fine.sum(0))
    errors, hs = [], []
    for steps in (16, 32, 64, 128, 256):
        coarse = dW_fine.view(steps, fine // steps, paths).sum(1)
        it = iter(coarse)
        yT = sdeint(lambda t, y: MU * y, lambda t, y: SIGMA * y, y0, torch.tensor([0.0, 1.0]),
                    steps=steps, increments=lambda h, y, it=it: next(it))[-1]
        errors.append((yT - exact).abs().mean().item())
        hs.append(1 / steps)
    slope = np.polyfit(np.log(hs), np.log(errors), 1)[0]
    assert slope == pytest.approx(0.5, abs=0.12)


def test_ornstein_uhlenbeck_mean_and_variance():
    """dY = -theta Y dt + s dW: E Y(T) = y0 e^{-theta T}, Var = s^2 (1 - e^{-2 theta T}) / (2 theta)."""
    theta, s, T = 2.0, 0.7, 1.0
    gen = torch.Generator().manual_seed(1)
    y0 = torch.full((50_000,), 1.5, dtype=torch.float64)
    yT = sdeint(lambda t, y: -theta * y, lambda t, y: torch.full_like(y, s), y0,
                torch.tensor([0.0, T], dtype=torch.float64), steps=200, generator=gen)[-1]
    assert yT.mean().item() == pytest.approx(1.5 * math.exp(-theta * T), abs=5e-3)
    assert yT.var().item() == pytest.approx(s**2 * (1 - math.exp(-2 * theta * T)) / (2 * theta), rel=2e-2)


def test_seeded_runs_repeat_and_unknown_method_is_named():
    run = lambda seed: sdeint(lambda t, y: -y, lambda t, y: y, torch.ones(3), torch.tensor([0.0, 1.0]),  # noqa: E731
                              steps=10, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(run(3), run(3)) and not torch.equal(run(3), run(4))
    with pytest.raises(ValueError, match="unknown SDE method 'milstein'; known methods: euler_maruyama"):
        sdeint(lambda t, y: y, lambda t, y: y, torch.ones(1), torch.tensor([0.0, 1.0]), method="milstein")
