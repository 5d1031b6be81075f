"""Exponential moving average of the weights, kept in the precision the model trains in."""

import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging


class EMAWeights(EMAWeightAveraging):
    """Lightning's EMAWeightAveraging, theta_avg <- decay theta_avg + (1 - decay) theta after every
    optimiser step (validation, checkpoints and the end of training use theta_avg), with theta_avg
    in the model's own dtype.

    Lightning copies the model in ``setup``, before ``precision: 64-true`` converts it to float64,
    so its average would stay float32 in a float64 run; here it follows the model at fit start.
    """

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._average_model is not None:
            self._average_model.to(dtype=next(pl_module.parameters()).dtype)
