"""Supervised learning with ODE-Nets: a continuous ResNet classifier (Haber & Ruthotto 2017,
Chen et al. 2018).

    u(0) = K_in y,   du/dt = f(t, u; theta(t)) on [0, T]   (one ODE block per stage),
    p(y) = softmax(W pool(u(T)) + mu),
    loss = cross-entropy + alpha/2 ||theta||^2 + beta * sum_k ||theta_{k+1} - theta_k||^2 / dt.

Stages after the first open with a linear map (a stride-2 convolution for images), as the
down-sampling layers between ResNet stages. Vector inputs use dense dynamics, image inputs
(C, H, W) convolutional ones.
"""

from __future__ import annotations

import lightning as L
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from ctdl.blocks import ODEBlock
from ctdl.dynamics import build_dynamics
from ctdl.integrators import known_methods

from .optim import adamw_with_schedule, check_scheduler


class ODENetClassifier(L.LightningModule):
    """Classifier made of ODE blocks; logs train/loss, val/loss, val/acc, test/loss, test/acc."""

    def __init__(
        self,
        input_shape: list[int] = [2],  # noqa: B006 (jsonargparse needs a literal default)
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
        alpha: float = 1e-4,
        smoothness: float = 0.0,
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        scheduler: str = "cosine",
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
            alpha: weight of alpha/2 ||theta||^2.
            smoothness: weight of the smoothness of theta in time.
            lr: Adam learning rate.
            weight_decay: AdamW decoupled weight decay.
            scheduler: "cosine" (per step, to zero at max_steps or max_time) or "none".
        """
        super().__init__()
        self.save_hyperparameters()
        if method not in known_methods():
            raise ValueError(f"unknown ODE method {method!r}; known methods: {', '.join(known_methods())}")
        check_scheduler(scheduler)
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
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    # ----------------------------------------------------------------------------- model
    def check_input(self, x: Tensor) -> None:
        """Raise a clear error when a batch does not have the shape the model was built for."""
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

    def regularizer(self) -> Tensor:
        """alpha/2 ||theta||^2 + smoothness * sum of the blocks' smoothness in time."""
        reg = 0.5 * self.hparams.alpha * sum(p.pow(2).sum() for p in self.parameters())
        if self.hparams.smoothness > 0:
            reg = reg + self.hparams.smoothness * sum(b.smoothness() for b in self.blocks)
        return reg

    # -------------------------------------------------------------------------- training
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        logits = self(x)
        ce = F.cross_entropy(logits, y)
        loss = ce + self.regularizer()
        acc = (logits.argmax(-1) == y).float().mean()
        self.log_dict(
            {"train/loss": loss, "train/ce": ce, "train/acc": acc},
            prog_bar=True,
            on_step=True,
            on_epoch=False,
            batch_size=len(y),
        )
        return loss

    def _eval_step(self, batch: tuple[Tensor, Tensor], stage: str, metric: MulticlassAccuracy) -> None:
        x, y = batch
        logits = self(x)
        metric.update(logits, y)
        self.log(
            f"{stage}/loss", F.cross_entropy(logits, y), on_epoch=True, batch_size=len(y), sync_dist=True
        )
        self.log(f"{stage}/acc", metric, on_epoch=True, prog_bar=True, batch_size=len(y))

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val", self.val_acc)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test", self.test_acc)

    def predict_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> dict[str, Tensor]:
        """`ctdl predict`: class probabilities `probs` (batch, num_classes), the predicted class
        `label` (batch,) and, when the batch carries labels, the data's own label `target` (batch,)."""
        probs = self(batch[0]).softmax(-1)
        out = {"probs": probs, "label": probs.argmax(-1)}
        if len(batch) > 1:
            out["target"] = batch[1]
        return out

    def configure_optimizers(self):
        return adamw_with_schedule(self)
