"""An SDE as the SDE steppers see it: drift, diffusion and noise over a state of parts.

    dY = f(t, Y) dt + g(t, Y) * dW,

for a state Y that is a tensor or a tuple of tensors (say a state and its running costs). The
user's drift and diffusion take and return the user's structure; here a state is always a
tuple of parts. g acts element-wise (diagonal noise; correlated noise enters through the noise
object, dW = sqrt(|h|) A xi) and a part of g may be None: that part has no noise (a running
cost, say), and no increment is drawn for it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .grid import State
from .noise import Noise

Parts = tuple[Tensor, ...]
NoiseParts = tuple[Tensor | None, ...]
Drift = Callable[[Tensor, State], State]
Diffusion = Callable[[Tensor, State], Tensor | None | tuple[Tensor | None, ...]]


class SDE:
    """Evaluates f, g and dW over a state of parts and checks what the user's functions return.

    Args:
        drift: f(t, y) -> a tensor of y's shape, or a tuple of tensors matching y's parts.
        diffusion: g(t, y) -> the same structure, where a part may be None (no noise there).
        noise: draws dW for each part whose g is not None.
        tuple_state: whether the user's state is a tuple (else a single tensor, one part here).
    """

    def __init__(self, drift: Drift, diffusion: Diffusion, noise: Noise, tuple_state: bool) -> None:
        self.drift, self.diffusion, self.noise = drift, diffusion, noise
        self.tuple_state = tuple_state

    def _user(self, y: Parts) -> State:
        return y if self.tuple_state else y[0]

    def _parts(self, out, y: Parts, name: str, none_ok: bool) -> tuple:
        """out as a tuple of parts, each broadcastable to y's part (or None where allowed)."""
        parts = out if self.tuple_state else (out,)
        if not isinstance(parts, tuple) or len(parts) != len(y):
            want = f"a tuple of {len(y)} parts" if self.tuple_state else "a tensor"
            got = f"a tuple of {len(parts)}" if isinstance(parts, tuple) else type(out).__name__
            raise ValueError(f"{name} must return {want} matching the state; got {got}")
        for i, (p, yi) in enumerate(zip(parts, y, strict=True)):
            if p is None and none_ok:
                continue
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"{name}'s part {i} must be a tensor{' or None' if none_ok else ''}, "
                    f"got {type(p).__name__}"
                )
            try:
                ok = torch.broadcast_shapes(p.shape, yi.shape) == yi.shape
            except RuntimeError:
                ok = False
            if not ok:
                raise ValueError(
                    f"{name}'s part {i} has shape {tuple(p.shape)}; expected the state "
                    f"part's shape {tuple(yi.shape)} (or one that broadcasts to it)"
                )
        return parts

    def f(self, t: Tensor, y: Parts) -> Parts:
        """The drift's parts at (t, y)."""
        return self._parts(self.drift(t, self._user(y)), y, "drift", none_ok=False)

    def g(self, t: Tensor, y: Parts) -> NoiseParts:
        """The diffusion's parts at (t, y), None for parts without noise."""
        return self._parts(self.diffusion(t, self._user(y)), y, "diffusion", none_ok=True)

    def dW(self, t: Tensor, h: float, y: Parts, g: NoiseParts) -> NoiseParts:
        """Increments over [t, t + h] for the parts with noise, None for the others."""
        return tuple(
            None if gi is None else self.noise.increment(t, h, yi) for yi, gi in zip(y, g, strict=True)
        )
