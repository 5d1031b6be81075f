"""Resolution-free score networks: a 2-D spectral convolution and an FNO with per-sample time.

SpectralConv2d (Li et al., Fourier Neural Operator, ICLR 2021): with the forward-normalised
Fourier coefficients u_hat_k = fft2(u, norm="forward")_k (the convention of `priors`: a grid
holds point values of a function on the unit torus, so u_hat_k does not depend on the grid),

    (K u)(x) = sum_{|k1| <= modes, 0 <= k2 < modes} W_k u_hat_k e^{2 pi i k.x}   (real part by
    Hermitian symmetry: irfft2), with learned complex W_k (in x out channels) for k1 in
    {0, ..., modes - 1} and {-modes, ..., -1},

so one set of weights acts on every grid n1, n2 >= 2 * modes (even). FNOScore: lift (1x1 conv),
`layers` blocks h <- GELU(FiLM_t(K h + W h)), project (two 1x1 convs), time conditioning by
FiLM (per-channel scale and shift from a sinusoidal embedding of each sample's t).

Position (`position_frequencies` K > 0): the lift also sees the 4 K periodic coordinate features
sin(2 pi k x), cos(2 pi k x), sin(2 pi k y), cos(2 pi k y), k = 1..K, at the grid points
(x, y) = (i / n1, j / n2) of the unit torus. They are point values of fixed smooth functions, so they
are the same functions at every grid (resolution-free), and they break the circular-shift
equivariance that Fourier multipliers and pointwise maps alone impose (without them the law of the
samples is shift-invariant: objects at random places, wrapped across the border).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def check_grid(shape: tuple[int, ...], modes: int, who: str) -> None:
    """A clear error for grids the spectral layers cannot use: odd, or smaller than 2 * modes."""
    n1, n2 = shape[-2:]
    if n1 % 2 or n2 % 2 or n1 < 2 * modes or n2 < 2 * modes:
        raise ValueError(
            f"{who}: the grid {n1}x{n2} cannot hold modes={modes}; it needs an even grid "
            f"of at least 2*modes = {2 * modes} points per axis (use modes <= "
            f"{min(n1, n2) // 2} at this grid, or a finer, even grid)"
        )


class SpectralConv2d(nn.Module):
    """Multiplies the lowest `modes` Fourier modes (both signs of k1, k2 >= 0) by learned complex
    weights and drops the rest (FNO layer). Input (batch, in_channels, n1, n2), n_i even >= 2 modes."""

    def __init__(self, in_channels: int, out_channels: int, modes: int) -> None:
        super().__init__()
        if modes < 1:
            raise ValueError(f"modes must be a positive integer, got {modes}")
        self.in_channels, self.out_channels, self.modes = in_channels, out_channels, modes
        scale = 1.0 / (in_channels * out_channels)
        # real storage (..., 2) of the complex weights: optimisers and DDP see real tensors
        self.weight_pos = nn.Parameter(scale * torch.rand(in_channels, out_channels, modes, modes, 2))
        self.weight_neg = nn.Parameter(scale * torch.rand(in_channels, out_channels, modes, modes, 2))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"SpectralConv2d expects (batch, {self.in_channels}, n1, n2), got {tuple(x.shape)}"
            )
        check_grid(tuple(x.shape), self.modes, "SpectralConv2d")
        m, (n1, n2) = self.modes, x.shape[-2:]
        dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        x_hat = torch.fft.rfft2(x.to(dtype), norm="forward")
        w_pos = torch.view_as_complex(self.weight_pos.to(dtype))
        w_neg = torch.view_as_complex(self.weight_neg.to(dtype))
        out = x_hat.new_zeros(x.shape[0], self.out_channels, n1, n2 // 2 + 1)
        out[:, :, :m, :m] = torch.einsum("bixy,ioxy->boxy", x_hat[:, :, :m, :m], w_pos)
        out[:, :, -m:, :m] = torch.einsum("bixy,ioxy->boxy", x_hat[:, :, -m:, :m], w_neg)
        return torch.fft.irfft2(out, s=(n1, n2), norm="forward").to(x.dtype)


class TimeEmbedding(nn.Module):
    """Sinusoidal features of t (Vaswani et al. 2017; DDPM) then an MLP: t (batch,) -> (batch, dim)."""

    def __init__(self, dim: int, max_period: float = 1000.0) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"the time embedding's dim must be even and >= 2, got {dim}")
        self.dim, self.max_period = dim, max_period
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(self.max_period) * torch.arange(half, device=t.device) / half)
        angles = 1000.0 * t.float()[:, None] * freqs[None]  # t in [0, 1] spread like DDPM's steps
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=1).to(self.mlp[0].weight.dtype))


def per_sample_time(t: Tensor | float, x: Tensor) -> Tensor:
    """t as a (batch,) tensor on x's device: a float or 0-d tensor is broadcast, a (batch,) kept."""
    t = torch.as_tensor(t, dtype=x.dtype if x.is_floating_point() else None, device=x.device)
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must be a scalar or of shape (batch,) = ({x.shape[0]},), got {tuple(t.shape)}")
    return t


def periodic_coordinates(n1: int, n2: int, frequencies: int, dtype=None, device=None) -> Tensor:
    """(4 K, n1, n2) features sin / cos(2 pi k x), sin / cos(2 pi k y), k = 1..K, at x = i / n1,
    y = j / n2: the same smooth functions on the unit torus at every grid (needs n_i > 2 K)."""
    if n1 <= 2 * frequencies or n2 <= 2 * frequencies:
        raise ValueError(
            f"FNOScore: the grid {n1}x{n2} cannot resolve position_frequencies={frequencies}; it needs "
            f"more than 2 * {frequencies} points per axis (use fewer frequencies or a finer grid)"
        )
    k = torch.arange(1, frequencies + 1, dtype=dtype, device=device)[:, None, None]
    x = torch.arange(n1, dtype=dtype, device=device)[None, :, None] / n1
    y = torch.arange(n2, dtype=dtype, device=device)[None, None, :] / n2
    ax, ay = (2 * math.pi * k * x).expand(-1, n1, n2), (2 * math.pi * k * y).expand(-1, n1, n2)
    return torch.cat([ax.sin(), ax.cos(), ay.sin(), ay.cos()])


class FNOScore(nn.Module):
    """FNO score network s(x, t): (batch, channels, n1, n2), (batch,) -> (batch, channels, n1, n2).

    lift 1x1 -> `layers` x [SpectralConv2d + 1x1 conv, FiLM from t, GELU] -> project 1x1, GELU,
    1x1. Every operation is a Fourier multiplier on the lowest modes or pointwise, so the same
    weights run on any even grid with n_i >= 2 * modes. `position_frequencies` K > 0 feeds the lift
    the 4 K periodic coordinate features (`periodic_coordinates`) as well: still resolution-free, no
    longer circular-shift equivariant (K = 0: exactly equivariant).
    """

    def __init__(
        self,
        channels: int = 1,
        width: int = 32,
        modes: int = 8,
        layers: int = 4,
        time_dim: int = 64,
        position_frequencies: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(position_frequencies, int) or position_frequencies < 0:
            raise ValueError(
                f"position_frequencies must be an integer >= 0 (0: no position input), got "
                f"{position_frequencies!r}"
            )
        self.channels, self.width, self.modes = channels, width, modes
        self.position_frequencies = position_frequencies
        self.lift = nn.Conv2d(channels + 4 * position_frequencies, width, 1)
        self.spectral = nn.ModuleList(SpectralConv2d(width, width, modes) for _ in range(layers))
        self.pointwise = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(layers))
        self.time = TimeEmbedding(time_dim)
        self.film = nn.ModuleList(nn.Linear(time_dim, 2 * width) for _ in range(layers))
        self.project = nn.Sequential(
            nn.Conv2d(width, 2 * width, 1), nn.GELU(), nn.Conv2d(2 * width, channels, 1)
        )

    def forward(self, x: Tensor, t: Tensor | float) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"FNOScore expects images (batch, {self.channels}, n1, n2), got {tuple(x.shape)}"
            )
        check_grid(tuple(x.shape), self.modes, "FNOScore")
        emb = self.time(per_sample_time(t, x))
        if self.position_frequencies:
            pos = periodic_coordinates(*x.shape[-2:], self.position_frequencies, x.dtype, x.device)
            x = torch.cat([x, pos.expand(x.shape[0], -1, -1, -1)], dim=1)
        h = self.lift(x)
        for spectral, pointwise, film in zip(self.spectral, self.pointwise, self.film, strict=True):
            scale, shift = film(emb).chunk(2, dim=1)
            h = spectral(h) + pointwise(h)
            h = F.gelu(h * (1 + scale[:, :, None, None]) + shift[:, :, None, None])
        return self.project(h)
