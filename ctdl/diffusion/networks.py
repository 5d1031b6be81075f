"""The score networks by name and the grids each can run on.

`NETWORKS` maps a config name to its class: "fno" (`FNOScore`, one set of weights for every even grid
with n >= 2 * modes) and "unet" (`UNetScore`, the resolution-bound baseline: n divisible by 2^levels).
"""

from __future__ import annotations

from torch import nn

from .spectral import FNOScore, check_grid
from .unet import UNetScore

NETWORKS: dict[str, type[nn.Module]] = {"fno": FNOScore, "unet": UNetScore}


def check_network(name: str) -> None:
    """A clear error for an unknown score network name."""
    if name not in NETWORKS:
        raise ValueError(f"unknown score network {name!r}; known networks: {', '.join(sorted(NETWORKS))}")


def build_score_network(name: str, **args) -> nn.Module:
    """The score network `name` of `NETWORKS` built with its keywords (channels, width, modes, ...)."""
    check_network(name)
    return NETWORKS[name](**args)


def check_network_grid(name: str, net: nn.Module, n: int, who: str = "MultilevelDiffusion") -> None:
    """A clear error for a grid n x n the score network `net` (built as `name`) cannot run on:
    the FNO needs an even grid of at least 2 * modes points, the U-Net a grid divisible by 2^levels."""
    if name == "fno":
        check_grid((n, n), net.modes, f"{who}(network='fno', modes={net.modes})")
        return
    factor = 2**net.levels
    if n % factor:
        raise ValueError(
            f"{who}(network='unet', levels={net.levels}): the grid "
            f"{n}x{n} is not divisible by 2^levels = {factor}; use a grid divisible by "
            f"{factor} or fewer levels"
        )
