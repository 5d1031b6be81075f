"""A small DDPM-style U-Net score network (Ho et al., NeurIPS 2020): the resolution-bound baseline.

conv in -> per level: residual block (GroupNorm, SiLU, 3x3 conv, time embedding added) and a
stride-2 downsampling conv -> middle residual block -> per level: nearest upsampling + 3x3 conv,
concatenated skip, residual block -> GroupNorm, SiLU, 3x3 conv out. Its kernels span a fixed
number of pixels, so the function it represents changes with the grid (unlike FNOScore).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .spectral import TimeEmbedding, per_sample_time


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    """x + conv(SiLU(norm(conv(SiLU(norm(x))) + time))) with a 1x1 skip when channels change."""

    def __init__(self, c_in: int, c_out: int, time_dim: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(time_dim, c_out)
        self.norm2, self.conv2 = _norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.time(emb)[:, :, None, None]
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class UNetScore(nn.Module):
    """U-Net s(x, t): (batch, channels, n1, n2), (batch,) -> same shape; n_i divisible by 2^levels.

    Args:
        channels: image channels. base: channels at the first level, doubled per level.
        levels: number of down/up sampling steps (2 fits 28x28: 28 -> 14 -> 7).
        time_dim: size of the time embedding.
    """

    def __init__(self, channels: int = 1, base: int = 32, levels: int = 2, time_dim: int = 64) -> None:
        super().__init__()
        self.channels, self.levels = channels, levels
        widths = [base * 2**i for i in range(levels + 1)]
        self.time = TimeEmbedding(time_dim)
        self.inp = nn.Conv2d(channels, base, 3, padding=1)
        self.down_blocks = nn.ModuleList(ResBlock(widths[i], widths[i], time_dim) for i in range(levels))
        self.downs = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1) for i in range(levels)
        )
        self.middle = ResBlock(widths[-1], widths[-1], time_dim)
        self.ups = nn.ModuleList(nn.Conv2d(widths[i + 1], widths[i], 3, padding=1) for i in range(levels))
        self.up_blocks = nn.ModuleList(ResBlock(2 * widths[i], widths[i], time_dim) for i in range(levels))
        self.out = nn.Sequential(_norm(base), nn.SiLU(), nn.Conv2d(base, channels, 3, padding=1))

    def forward(self, x: Tensor, t: Tensor | float) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"UNetScore expects images (batch, {self.channels}, n1, n2), got {tuple(x.shape)}"
            )
        factor = 2**self.levels
        if x.shape[-2] % factor or x.shape[-1] % factor:
            raise ValueError(
                f"UNetScore with levels={self.levels} needs a grid divisible by {factor}, got "
                f"{x.shape[-2]}x{x.shape[-1]}"
            )
        emb = self.time(per_sample_time(t, x))
        h, skips = self.inp(x), []
        for block, down in zip(self.down_blocks, self.downs, strict=True):
            h = block(h, emb)
            skips.append(h)
            h = down(h)
        h = self.middle(h, emb)
        for i in reversed(range(self.levels)):
            h = self.ups[i](F.interpolate(h, scale_factor=2, mode="nearest"))
            h = self.up_blocks[i](torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)
