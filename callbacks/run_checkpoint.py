"""ModelCheckpoint whose last.ckpt is the run's latest state, so resuming loses nothing."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that rewrites last.ckpt wherever it checks for a best-k checkpoint (after
    each validation, or at each training epoch's end when it saves there) and at the end of training.

    Lightning (>= 2.5) rewrites last.ckpt only when a best-k checkpoint is saved, so once the
    monitored metric stops improving, `fit --ckpt_path last.ckpt` would restart from the best
    step rather than the latest one. The best-k checkpoints are kept exactly as Lightning keeps them.
    """

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_latest(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_latest(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._save_latest(trainer)

    def _save_latest(self, trainer: L.Trainer) -> None:
        # skipped in sanity checks, fast_dev_run, outside fit, and when this step is already saved
        if self.save_last is True and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
