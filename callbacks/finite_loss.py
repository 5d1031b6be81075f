"""Stop training the moment the loss stops being finite, before it can touch the weights."""

from __future__ import annotations

import math

import lightning as L
from torch import Tensor


class NonFiniteLossError(FloatingPointError):
    """Raised by FiniteLossGuard; the message names the step and the last finite loss."""


class FiniteLossGuard(L.Callback):
    """Raise `NonFiniteLossError` when the training loss is NaN or inf.

    The check runs before backward, so the bad step never updates the weights and no
    checkpoint is written from it: the checkpoints already on disk (last.ckpt, best) are the
    last good state.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.last_finite: tuple[int, float] | None = None

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor) -> None:
        if not self.enabled:
            return
        value = float(loss.detach())
        bad = not math.isfinite(value)
        if trainer.world_size > 1:  # every rank must stop together, or the others hang in all-reduce
            bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if not bad:
            self.last_finite = (trainer.global_step, value)
            return
        last = (
            f"the last finite loss was {self.last_finite[1]:.6g} at step {self.last_finite[0]}"
            if self.last_finite
            else "no finite loss was seen before"
        )
        ckpt_dir = getattr(trainer.checkpoint_callback, "dirpath", None)
        kept = f"the last good checkpoint is kept in {ckpt_dir}" if ckpt_dir else "no checkpoint was written"
        what = value if not math.isfinite(value) else "non-finite on another rank"
        raise NonFiniteLossError(
            f"training loss became {what} at step {trainer.global_step} (epoch {trainer.current_epoch}); "
            f"{last}; training stopped and {kept}. Try a smaller learning rate, more integration "
            f"steps, or float64 (--trainer.precision 64-true)."
        )
