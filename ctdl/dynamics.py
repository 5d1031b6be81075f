"""Vector fields f(t, u; theta(t)) for ODE-Nets (Haber & Ruthotto 2017; Chen et al. 2018).

Every layer is a plain `nn.Module` called as f(t, u) (torchdiffeq's convention) whose weights
theta(t) = (K(t), b(t)) depend on time explicitly through `TimeParameter`:
piecewise constant on `pieces` equal sub-intervals of [0, T] (a ResNet with weight sharing
inside each piece), or piecewise linear between `pieces` nodes.

    ResNetLayer            f = sigma(K(t) u + b(t))                        (forward Euler = ResNet)
    AntisymmetricLayer     f = sigma((K - K^T - gamma I) u + b)          (Re lambda(J) <= 0: stable)
    HamiltonianLayer       dq = sigma(K p + b),  dp = -sigma(K^T q + b)   (two states, leapfrog)
    Conv*                  the same with K a convolution and K^T its transpose.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "identity": lambda x: x,
    "tanh": torch.tanh,
    "relu": F.relu,
    "leaky_relu": F.leaky_relu,
    "softplus": F.softplus,
    "gelu": F.gelu,
    "silu": F.silu,
}


def activation(name: str) -> Callable[[Tensor], Tensor]:
    """Look up an activation by name; the error lists the known ones."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known activations: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class TimeParameter(nn.Module):
    """A parameter theta(t), t in [0, T], stored at `pieces` points in time.

    interpolation="constant": theta(t) = theta_k for t in [k T/n, (k+1) T/n)   (n = pieces)
    interpolation="linear":   theta linear between nodes t_k = k T/(n-1)       (n >= 2)
    """

    def __init__(
        self,
        shape: tuple[int, ...],
        pieces: int = 1,
        T: float = 1.0,
        interpolation: str = "constant",
        init_std: float = 0.0,
    ) -> None:
        super().__init__()
        if interpolation not in ("constant", "linear"):
            raise ValueError(f"unknown interpolation {interpolation!r}; known: constant, linear")
        if pieces < 1 or (interpolation == "linear" and pieces < 2):
            raise ValueError(f"pieces={pieces} is too small for interpolation={interpolation!r}")
        self.pieces, self.T, self.interpolation = pieces, float(T), interpolation
        self.values = nn.Parameter(torch.randn(pieces, *shape) * init_std)

    def forward(self, t: Tensor | float) -> Tensor:
        if self.pieces == 1:
            return self.values[0]
        # the piece is found on the values' device: no host sync per evaluation on a GPU
        t = torch.as_tensor(t, dtype=self.values.dtype, device=self.values.device).reshape(1)
        if self.interpolation == "constant":
            k = (t / self.T * self.pieces).floor().clamp(0, self.pieces - 1).long()
            return self.values.index_select(0, k)[0]
        s = t / self.T * (self.pieces - 1)
        k = s.floor().clamp(0, self.pieces - 2)
        w = (s - k).clamp(0.0, 1.0)
        pair = self.values.index_select(0, torch.cat([k, k + 1]).long())
        return torch.lerp(pair[0], pair[1], w[0])

    def smoothness(self) -> Tensor:
        """sum_k ||theta_{k+1} - theta_k||^2 / dt: discrete H1 seminorm of theta in time
        (dt = T/pieces between piece centres, T/(pieces-1) between linear nodes)."""
        if self.pieces == 1:
            return self.values.new_zeros(())
        dt = self.T / (self.pieces if self.interpolation == "constant" else self.pieces - 1)
        return (self.values[1:] - self.values[:-1]).pow(2).sum() / dt


class TimeDependentLayer(nn.Module):
    """Base class: weights K(t), b(t) as TimeParameters and the activation sigma."""

    two_state = False

    def __init__(
        self,
        weight_shape: tuple[int, ...],
        bias_shape: tuple[int, ...],
        fan_in: int,
        pieces: int,
        T: float,
        act: str,
        interpolation: str,
    ) -> None:
        super().__init__()
        self.sigma = activation(act)
        self.K = TimeParameter(weight_shape, pieces, T, interpolation, init_std=1.0 / math.sqrt(fan_in))
        self.b = TimeParameter(bias_shape, pieces, T, interpolation)

    def smoothness(self) -> Tensor:
        """Regulariser of theta in time, summed over the layer's weights."""
        return self.K.smoothness() + self.b.smoothness()


class ResNetLayer(TimeDependentLayer):
    """f(t, u) = sigma(K(t) u + b(t)), u of shape (batch, width)."""

    def __init__(
        self, width: int, pieces: int = 1, T: float = 1.0, act: str = "tanh", interpolation: str = "constant"
    ) -> None:
        super().__init__((width, width), (width,), width, pieces, T, act, interpolation)
        self.width = width

    def forward(self, t: Tensor, u: Tensor) -> Tensor:
        return self.sigma(F.linear(u, self.K(t), self.b(t)))


class AntisymmetricLayer(ResNetLayer):
    """f(t, u) = sigma((K - K^T - gamma I) u + b): Jacobian eigenvalues have Re <= 0 (stable).

    The Jacobian is diag(sigma') (K - K^T - gamma I); with sigma' >= 0 its eigenvalues have
    non-positive real parts, so small perturbations of u are not amplified (Haber & Ruthotto 2017).
    """

    def __init__(
        self,
        width: int,
        pieces: int = 1,
        T: float = 1.0,
        act: str = "tanh",
        interpolation: str = "constant",
        gamma: float = 1e-2,
    ) -> None:
        super().__init__(width, pieces, T, act, interpolation)
        self.gamma = gamma

    def forward(self, t: Tensor, u: Tensor) -> Tensor:
        K = self.K(t)
        eye = torch.eye(self.width, dtype=K.dtype, device=K.device)
        return self.sigma(F.linear(u, K - K.T - self.gamma * eye, self.b(t)))


class HamiltonianLayer(ResNetLayer):
    """Two-state Hamiltonian network: dq/dt = sigma(K p + b), dp/dt = -sigma(K^T q + b).

    Separable, hence integrated symplectically by leapfrog (`method="leapfrog"`);
    the state is the tuple (q, p), both (batch, width); p(0) = 0 in the classifier.
    """

    two_state = True

    def dq(self, t: Tensor, p: Tensor) -> Tensor:
        return self.sigma(F.linear(p, self.K(t), self.b(t)))

    def dp(self, t: Tensor, q: Tensor) -> Tensor:
        return -self.sigma(F.linear(q, self.K(t).T, self.b(t)))

    def forward(self, t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        q, p = state
        return self.dq(t, p), self.dp(t, q)


class ConvResNetLayer(TimeDependentLayer):
    """f(t, u) = sigma(K(t) * u + b(t)), K a 'same'-padded convolution, u (batch, C, H, W)."""

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        pieces: int = 1,
        T: float = 1.0,
        act: str = "relu",
        interpolation: str = "constant",
    ) -> None:
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd to keep the image size, got {kernel_size}")
        super().__init__(
            (channels, channels, kernel_size, kernel_size),
            (channels,),
            channels * kernel_size**2,
            pieces,
            T,
            act,
            interpolation,
        )
        self.channels, self.padding = channels, kernel_size // 2

    def conv(self, t: Tensor, u: Tensor) -> Tensor:
        return F.conv2d(u, self.K(t), padding=self.padding)

    def conv_transpose(self, t: Tensor, u: Tensor) -> Tensor:
        """K^T u: the adjoint of `conv` (same weights, flipped and transposed)."""
        return F.conv_transpose2d(u, self.K(t), padding=self.padding)

    def bias(self, t: Tensor) -> Tensor:
        return self.b(t).view(1, -1, 1, 1)

    def forward(self, t: Tensor, u: Tensor) -> Tensor:
        return self.sigma(self.conv(t, u) + self.bias(t))


class ConvAntisymmetricLayer(ConvResNetLayer):
    """f(t, u) = sigma((K - K^T) * u - gamma u + b): the stable convolutional layer."""

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        pieces: int = 1,
        T: float = 1.0,
        act: str = "relu",
        interpolation: str = "constant",
        gamma: float = 1e-2,
    ) -> None:
        super().__init__(channels, kernel_size, pieces, T, act, interpolation)
        self.gamma = gamma

    def forward(self, t: Tensor, u: Tensor) -> Tensor:
        Ku = self.conv(t, u) - self.conv_transpose(t, u) - self.gamma * u
        return self.sigma(Ku + self.bias(t))


class ConvHamiltonianLayer(ConvResNetLayer):
    """dq/dt = sigma(K * p + b), dp/dt = -sigma(K^T * q + b) on images; state (q, p)."""

    two_state = True

    def dq(self, t: Tensor, p: Tensor) -> Tensor:
        return self.sigma(self.conv(t, p) + self.bias(t))

    def dp(self, t: Tensor, q: Tensor) -> Tensor:
        return -self.sigma(self.conv_transpose(t, q) + self.bias(t))

    def forward(self, t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        q, p = state
        return self.dq(t, p), self.dp(t, q)


DENSE_DYNAMICS: dict[str, type[ResNetLayer]] = {
    "resnet": ResNetLayer,
    "antisymmetric": AntisymmetricLayer,
    "hamiltonian": HamiltonianLayer,
}
CONV_DYNAMICS: dict[str, type[ConvResNetLayer]] = {
    "resnet": ConvResNetLayer,
    "antisymmetric": ConvAntisymmetricLayer,
    "hamiltonian": ConvHamiltonianLayer,
}


def build_dynamics(name: str, width: int, conv: bool = False, **kwargs) -> TimeDependentLayer:
    """Build dynamics `name` (resnet, antisymmetric, hamiltonian) of `width` features/channels."""
    registry = CONV_DYNAMICS if conv else DENSE_DYNAMICS
    if name not in registry:
        raise ValueError(f"unknown dynamics {name!r}; known dynamics: {', '.join(registry)}")
    return registry[name](width, **kwargs)
