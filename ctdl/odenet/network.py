"""The ODE-Net classifier as a plain module: lift, continuous blocks, head (Haber & Ruthotto 2017,
Chen et al. 2018).

    u(0) = K_in y,   du/dt = f(t, u; theta(t)) on [0, T]   (one ODE block per stage),
    logits = W pool(u(T)) + mu.

Stages after the first open with a linear map (a stride-2 convolution for images), as the
down-sampling layers between ResNet stages. Vector inputs use dense dynamics, image inputs
(C, H, W) convolutional ones (`ctdl.dynamics`); each block integrates with `ctdl.integrators.odeint`
(`ctdl.blocks.ODEBlock`).
"""

from __future__ import annotations

from torch import Tensor, nn

from ctdl.blocks import ODEBlock
from ctdl.dynamics import build_dynamics
from ctdl.integrators import known_methods


class ODENet(nn.Module):
    """Stages of (opening K_in, ODE block) and a linear classifier: `openings[i]` lifts (or, after the
    first stage, down-samples) the features, `blocks[i]` integrates them on [0, T], `classifier` maps
    the pooled u(T) of the last stage to class logits."""

    def __init__(
        self,
        input_shape: list[int] | tuple[int, ...] = (2,),
        num_classes: int = 5,
        width: int | list[int] = 8,
        dynamics: str = "resnet",
        method: str = "rk4",
        steps: int = 8,
        T: float = 1.0,
        pieces: int = 1,
        interpolation: str = "constant",
        act: str = "tanh",
        gamma: float = 1e-2,
        kernel_size: int = 3,
        stem_stride: int = 1,
        pool: int = 1,
        adjoint: bool = False,
    ) -> None:
        """
        Args:
            input_shape: shape of one sample, [d] for vectors or [C, H, W] for images.
            num_classes: number of classes.
            width: features (vectors) or channels (images) of each stage's ODE block.
            dynamics: "resnet", "antisymmetric" or "hamiltonian" (see ctdl.dynamics).
            method: integrator ("rk4", "euler", "leapfrog" for hamiltonian, or torchdiffeq's).
            steps: integration steps per block on [0, T].
            T: final time of each block.
            pieces: number of time pieces of theta(t) per block.
            interpolation: theta(t) "constant" on each piece or "linear" between nodes.
            act: activation sigma.
            gamma: damping of the antisymmetric layer.
            kernel_size: convolution size of image dynamics.
            stem_stride: stride of the opening convolution K_in (images).
            pool: images are average-pooled to pool x pool before the classifier.
            adjoint: gradients by the adjoint method instead of backprop through the steps.
        """
        super().__init__()
        if method not in known_methods():
            raise ValueError(f"unknown ODE method {method!r}; known methods: {', '.join(known_methods())}")
        self.input_shape = tuple(input_shape)
        if len(self.input_shape) not in (1, 3):
            raise ValueError(f"input_shape must be [d] or [C, H, W], got {list(input_shape)}")
        self.is_image = len(self.input_shape) == 3
        self.T = T
        widths = [width] if isinstance(width, int) else list(width)

        layer_kwargs = dict(pieces=pieces, T=T, act=act, interpolation=interpolation)
        if dynamics == "antisymmetric":
            layer_kwargs["gamma"] = gamma
        if self.is_image:
            layer_kwargs["kernel_size"] = kernel_size
        openings, blocks = [], []
        in_width = self.input_shape[0]
        for i, w in enumerate(widths):
            if self.is_image:
                stride = stem_stride if i == 0 else 2
                openings.append(nn.Conv2d(in_width, w, 3, stride=stride, padding=1))
            else:
                openings.append(nn.Linear(in_width, w))
            f = build_dynamics(dynamics, w, conv=self.is_image, **layer_kwargs)
            blocks.append(ODEBlock(f, T=T, steps=steps, method=method, adjoint=adjoint))
            in_width = w
        self.openings, self.blocks = nn.ModuleList(openings), nn.ModuleList(blocks)
        self.pool = nn.AdaptiveAvgPool2d(pool) if self.is_image else nn.Identity()
        self.classifier = nn.Linear(widths[-1] * (pool * pool if self.is_image else 1), num_classes)

    def check_input(self, x: Tensor) -> None:
        """Raise a clear error when a batch does not have the shape the network was built for."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"the data has samples of shape {list(x.shape[1:])} but the model was built for "
                f"input_shape={list(self.input_shape)}; set model.input_shape to the data's shape "
                f"(the datamodule's input_shape) in the config"
            )

    def features(self, x: Tensor, n_times: int | None = None) -> list[Tensor]:
        """Features through time, one (n_times, batch, ...) tensor per stage (for figures)."""
        self.check_input(x)
        trajectories, u = [], x
        for opening, block in zip(self.openings, self.blocks, strict=True):
            traj = block.trajectory(opening(u), n_times or 2)
            trajectories.append(traj)
            u = traj[-1]
        return trajectories

    def forward(self, x: Tensor) -> Tensor:
        """Class logits, shape (batch, num_classes)."""
        self.check_input(x)
        u = x
        for opening, block in zip(self.openings, self.blocks, strict=True):
            u = block(opening(u))
        return self.head(u)

    def head(self, u: Tensor) -> Tensor:
        """Class logits (batch, num_classes) from the last stage's final features u(T)."""
        return self.classifier(self.pool(u).flatten(1))
