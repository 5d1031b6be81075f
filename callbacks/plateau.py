"""Validation-driven training: halve the learning rate on a plateau, stop after a few halvings.

The protocol of the COT-Flow and OT-Flow code (Wang et al. 2023; Onken et al. 2021): after every
validation, a monitored value that has not improved on the best by more than `min_delta` for
`patience` validations in a row multiplies every learning rate by `factor`; after `halvings` such
reductions without a new best the run stops. The best checkpoint is the ModelCheckpoint's (same
monitor). The run still stops at the trainer's max_steps, so a config gives the same model on any
machine: the budget is in steps and validations, never in seconds.
"""

from __future__ import annotations

import math

import lightning as L
from lightning.pytorch.callbacks import Callback


class PlateauHalving(Callback):
    """lr <- factor * lr after `patience` validations without a new best of `monitor` (mode min or
    max); training stops after `halvings` reductions. State (best, bad count, reductions) is saved
    in checkpoints, so a resumed run continues the same schedule."""

    def __init__(
        self,
        monitor: str = "val/loss",
        mode: str = "min",
        patience: int = 5,
        factor: float = 0.5,
        halvings: int = 3,
        min_delta: float = 0.0,
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"PlateauHalving mode must be 'min' or 'max', got {mode!r}")
        if patience < 1 or halvings < 1:
            raise ValueError(
                f"PlateauHalving needs patience >= 1 and halvings >= 1, got {patience}, {halvings}"
            )
        if not 0.0 < factor < 1.0:
            raise ValueError(f"PlateauHalving factor must be in (0, 1), got {factor}")
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.factor, self.halvings, self.min_delta = factor, halvings, min_delta
        self.best = math.inf if mode == "min" else -math.inf
        self.bad = 0
        self.reductions = 0
        self.stopped_step: int | None = None  # the step at which it ended the run, if it did

    def improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.lr_scheduler_configs:
            raise ValueError(
                "PlateauHalving sets the learning rate itself; a scheduler would overwrite it: "
                "set --model.scheduler none"
            )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if self.monitor not in trainer.callback_metrics:
            known = ", ".join(sorted(trainer.callback_metrics)) or "none"
            raise KeyError(f"PlateauHalving monitors {self.monitor!r}, which was not logged; logged: {known}")
        value = float(trainer.callback_metrics[self.monitor])
        if not math.isfinite(value):
            return
        if self.improved(value):
            self.best, self.bad = value, 0
            return
        self.bad += 1
        if self.bad < self.patience:
            return
        self.bad = 0
        if self.reductions >= self.halvings:
            self.stopped_step = trainer.global_step
            trainer.should_stop = True
            return
        self.reductions += 1
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] *= self.factor

    def state_dict(self) -> dict:
        return {"best": self.best, "bad": self.bad, "reductions": self.reductions}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best, self.bad = state_dict["best"], state_dict["bad"]
        self.reductions = state_dict["reductions"]
