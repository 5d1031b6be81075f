"""Supervised learning with ODE-Nets (Haber & Ruthotto 2017, Chen et al. 2018) as a thin
LightningModule over the plain `ctdl.odenet.ODENet` (lift, continuous blocks, head):

    loss = cross-entropy + alpha/2 ||theta||^2 + beta * sum_k ||theta_{k+1} - theta_k||^2 / dt
    (`ctdl.odenet.classification_loss`).
"""

from __future__ import annotations

import lightning as L
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.classification import MulticlassAccuracy

from ctdl.odenet import ODENet, accuracy, classification_loss, regularizer

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
        check_scheduler(scheduler)
        self.net = ODENet(
            input_shape=input_shape,
            num_classes=num_classes,
            width=width,
            dynamics=dynamics,
            method=method,
            steps=steps,
            T=T,
            pieces=pieces,
            interpolation=interpolation,
            act=act,
            gamma=gamma,
            kernel_size=kernel_size,
            stem_stride=stem_stride,
            pool=pool,
            adjoint=adjoint,
        )
        self.input_shape, self.is_image, self.T = self.net.input_shape, self.net.is_image, T
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        # checkpoints written before the network became its own module keep it at the top level
        self._register_load_state_dict_pre_hook(_rename_legacy_keys)

    # ----------------------------------------------------------------------------- model
    def features(self, x: Tensor, n_times: int | None = None) -> list[Tensor]:
        """Features through time, one (n_times, batch, ...) tensor per stage (for figures)."""
        return self.net.features(x, n_times)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits, shape (batch, num_classes)."""
        return self.net(x)

    def head(self, u: Tensor) -> Tensor:
        """Class logits (batch, num_classes) from the last stage's final features u(T)."""
        return self.net.head(u)

    def regularizer(self) -> Tensor:
        """alpha/2 ||theta||^2 + smoothness * sum of the blocks' smoothness in time."""
        return regularizer(self.net, self.hparams.alpha, self.hparams.smoothness)

    # -------------------------------------------------------------------------- training
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        logits = self(x)
        loss, ce = classification_loss(self.net, logits, y, self.hparams.alpha, self.hparams.smoothness)
        acc = accuracy(logits, y)
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


LEGACY_PREFIXES = ("openings.", "blocks.", "classifier.")


def _rename_legacy_keys(state_dict: dict, prefix: str, *args) -> None:
    """Load-state-dict pre-hook: "<prefix>openings.*", "blocks.*", "classifier.*" -> "<prefix>net.*"."""
    for key in [k for k in state_dict if k.startswith(tuple(prefix + p for p in LEGACY_PREFIXES))]:
        state_dict[prefix + "net." + key[len(prefix) :]] = state_dict.pop(key)
