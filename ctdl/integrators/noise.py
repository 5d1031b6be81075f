"""Noise objects: the increments dW of the driving process over one step of an SDE solve.

The interface is one method, `increment(t, h, like) -> Tensor`: the increment over the step
[t, t + h] for the state part `like` (same shape, dtype and device as `like`). h < 0 in a
backward solve; the increment's covariance is always proportional to |h|.

- `BrownianNoise`: dW = sqrt(|h|) xi, xi ~ N(0, I): standard Brownian motion.
- `ColouredNoise`: dW = sqrt(|h|) A(xi), a Q-Wiener process with covariance Q = A A^T, e.g. a
  trace-class noise in function space with A a Fourier multiplier (Da Prato & Zabczyk 2014, 4.1).
- `CallableNoise`: wraps a function (t, h, like) -> dW.
- `FixedIncrements`: replays given increments (fixed Brownian paths, e.g. for order tests).

`as_noise` turns what `sdeint` receives into one of these.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

IncrementFn = Callable[[Tensor, float, Tensor], Tensor]


@runtime_checkable
class Noise(Protocol):
    """Draws the increment of the driving process over [t, t + h] for the state part `like`."""

    def increment(self, t: Tensor, h: float, like: Tensor) -> Tensor: ...


def _check_increment(dW: Tensor, like: Tensor, source: str) -> Tensor:
    if not isinstance(dW, Tensor) or dW.shape != like.shape:
        got = tuple(dW.shape) if isinstance(dW, Tensor) else type(dW).__name__
        raise ValueError(
            f"{source} gave an increment of shape {got}; expected the state part's shape {tuple(like.shape)}"
        )
    return dW


class BrownianNoise:
    """Standard Brownian increments dW = sqrt(|h|) xi, xi ~ N(0, I) with like's shape.

    Args:
        seed: seeds a generator of this noise's own, created on the state's device at the first
            draw (reproducible runs without touching the global RNG).
        generator: a torch.Generator to draw with (keep it on the state's device: one on
            another device draws there and copies). Default: the global RNG.
    """

    def __init__(self, seed: int | None = None, generator: torch.Generator | None = None) -> None:
        if seed is not None and generator is not None:
            raise ValueError("pass either seed or generator to the noise, not both")
        self.seed, self.generator = seed, generator

    def standard_normal(self, like: Tensor) -> Tensor:
        """xi ~ N(0, I) with like's shape, dtype and device."""
        if self.generator is None and self.seed is not None:
            self.generator = torch.Generator(device=like.device).manual_seed(self.seed)
        gen = self.generator
        device = like.device if gen is None else gen.device
        xi = torch.randn(like.shape, generator=gen, dtype=like.dtype, device=device)
        return xi.to(like.device)

    def increment(self, t: Tensor, h: float, like: Tensor) -> Tensor:
        return math.sqrt(abs(h)) * self.standard_normal(like)


class ColouredNoise(BrownianNoise):
    """Coloured (e.g. trace-class) increments dW = sqrt(|h|) A(xi), xi ~ N(0, I), Cov dW = A A^T |h|.

    Args:
        sqrt_cov: the linear map A, a square root of the covariance Q = A A^T, applied to a
            tensor of the state part's shape (e.g. a Fourier multiplier over the grid axes:
            A xi = irfft(lambda_k rfft(xi)) with sum_k lambda_k^2 < infinity for trace-class Q).
        seed, generator: as for `BrownianNoise`.
    """

    def __init__(
        self,
        sqrt_cov: Callable[[Tensor], Tensor],
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if not callable(sqrt_cov):
            raise TypeError(f"sqrt_cov must be a callable xi -> A xi, got {type(sqrt_cov).__name__}")
        super().__init__(seed=seed, generator=generator)
        self.sqrt_cov = sqrt_cov

    def increment(self, t: Tensor, h: float, like: Tensor) -> Tensor:
        dW = self.sqrt_cov(self.standard_normal(like))
        return math.sqrt(abs(h)) * _check_increment(dW, like, "ColouredNoise's sqrt_cov")


class CallableNoise:
    """A function (t, h, like) -> dW used as a noise object; its output shape is checked."""

    def __init__(self, fn: IncrementFn) -> None:
        self.fn = fn

    def increment(self, t: Tensor, h: float, like: Tensor) -> Tensor:
        return _check_increment(self.fn(t, h, like), like, "the noise callable")


class FixedIncrements:
    """Replays given increments in order, one per draw (one draw per step and noisy state part).

    Coarse steps on a fixed Brownian path: sum groups of fine increments, e.g.
    `dW_fine.view(steps, fine // steps, *shape).sum(1)`.
    """

    def __init__(self, increments: Tensor | Iterable[Tensor]) -> None:
        self.increments = increments if isinstance(increments, Tensor) else list(increments)
        self.drawn = 0

    def increment(self, t: Tensor, h: float, like: Tensor) -> Tensor:
        if self.drawn >= len(self.increments):
            raise ValueError(
                f"the fixed increments ran out after {self.drawn} draws; the solve "
                "needs one per step and noisy state part"
            )
        dW = self.increments[self.drawn]
        self.drawn += 1
        return _check_increment(dW, like, f"fixed increment number {self.drawn}")

    def unused(self) -> int:
        """How many given increments no step has drawn yet."""
        return len(self.increments) - self.drawn


def as_noise(
    noise: Noise | IncrementFn | Tensor | Iterable[Tensor] | None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> Noise:
    """The noise object for `sdeint`'s `noise` argument.

    None -> BrownianNoise(seed, generator); a noise object -> itself; a callable (t, h, like) -> dW
    -> CallableNoise; a tensor (first axis: draws) or a sequence of tensors -> FixedIncrements.
    """
    if noise is None:
        return BrownianNoise(seed=seed, generator=generator)
    if seed is not None or generator is not None:
        raise ValueError(
            "seed and generator are for the default Brownian noise; give them to the "
            f"noise object instead (got noise={type(noise).__name__})"
        )
    if isinstance(noise, Noise):
        return noise
    if isinstance(noise, Tensor | list | tuple):
        return FixedIncrements(noise)
    if callable(noise):
        return CallableNoise(noise)
    raise TypeError(
        "noise must be a noise object with increment(t, h, like), a callable "
        f"(t, h, like) -> dW, or a tensor of fixed increments; got {type(noise).__name__}"
    )
