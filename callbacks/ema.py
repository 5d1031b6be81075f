"""Exponential moving average of the weights, with a warm-up, kept in the precision the model trains in."""

import lightning as L
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging


def ema_decay(decay: float, n_averaged: int | torch.Tensor, warmup: bool = True):
    """The decay of the update that follows n_averaged earlier ones: min(decay, (1 + n) / (10 + n))
    with the warm-up (so that the average forgets the random initialisation within ~10/(1 - decay)
    steps instead of carrying decay^n of it), else the constant decay."""
    if not warmup:
        return decay
    return torch.clamp((1 + n_averaged) / (10 + n_averaged), max=decay)


class EMAWeights(EMAWeightAveraging):
    """Lightning's EMAWeightAveraging, theta_avg <- d_n theta_avg + (1 - d_n) theta after the n-th
    optimiser step (validation, checkpoints and the end of training use theta_avg), with
    d_n = min(decay, (1 + n) / (10 + n)) when ``warmup`` (the default) and d_n = decay otherwise.

    Without the warm-up the average still holds decay^n of the initial weights after n steps (37% at
    n = 1000 for decay 0.999), and validation measures that lag rather than the training.
    The average is kept in the model's own dtype: Lightning copies the model in ``setup``, before
    ``precision: 64-true`` converts it to float64, so here it follows the model at fit start.
    The count n is a buffer of the averaged model and is restored on resume.
    """

    def __init__(self, decay: float = 0.999, warmup: bool = True, **kwargs) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        super().__init__(decay=decay, **kwargs)
        self.decay, self.warmup = decay, warmup

        def average(avg: torch.Tensor, current: torch.Tensor, n_averaged: torch.Tensor) -> torch.Tensor:
            d = ema_decay(decay, n_averaged, warmup)
            return d * avg + (1 - d) * current

        self._kwargs["avg_fn"] = average

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._average_model is not None:
            self._average_model.to(dtype=next(pl_module.parameters()).dtype)
