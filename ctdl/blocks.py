"""ODE blocks: a vector field plus an integrator, used as a layer u(0) -> u(T)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .integrators import odeint


class ODEBlock(nn.Module):
    """u(T) where du/dt = f(t, u), u(0) = u0, solved by `method` with `steps` steps on [0, T].

    With `method="euler"` this IS a ResNet: u_{k+1} = u_k + h f(t_k, u_k), h = T/steps.
    For two-state (Hamiltonian) dynamics the state is (q, p) with q(0) = u0, p(0) = 0,
    and the block returns q(T).
    """

    def __init__(
        self, dynamics: nn.Module, T: float = 1.0, steps: int = 8, method: str = "rk4", adjoint: bool = False
    ) -> None:
        super().__init__()
        self.dynamics, self.T, self.steps, self.method, self.adjoint = dynamics, T, steps, method, adjoint
        self.two_state = bool(getattr(dynamics, "two_state", False))

    def _initial_state(self, u0: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        return (u0, torch.zeros_like(u0)) if self.two_state else u0

    def trajectory(self, u0: Tensor, n_times: int = 2) -> Tensor:
        """States at n_times equally spaced times in [0, T]: shape (n_times, *u0.shape)."""
        t = torch.linspace(0.0, self.T, n_times, dtype=u0.dtype, device=u0.device)
        steps = max(self.steps, n_times - 1)
        out = odeint(
            self.dynamics, self._initial_state(u0), t, method=self.method, steps=steps, adjoint=self.adjoint
        )
        return out[0] if self.two_state else out

    def forward(self, u0: Tensor) -> Tensor:
        return self.trajectory(u0, 2)[-1]

    def smoothness(self) -> Tensor:
        """Smoothness-in-time regulariser of the dynamics' weights (0 if it has none)."""
        fn = getattr(self.dynamics, "smoothness", None)
        return fn() if fn is not None else _zero_like_params(self)

    def extra_repr(self) -> str:
        return f"T={self.T}, steps={self.steps}, method={self.method!r}, adjoint={self.adjoint}"


def _zero_like_params(module: nn.Module) -> Tensor:
    p = next(module.parameters(), None)
    return torch.zeros(()) if p is None else p.new_zeros(())
