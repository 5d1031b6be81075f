"""PlateauHalving: the learning rate halves after `patience` validations without a new best, the run
stops after `halvings` reductions, and a scheduler next to it is refused."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from ctdl.callbacks import PlateauHalving


class Scripted(L.LightningModule):
    """A linear model whose validation logs a scripted sequence of values (one per validation)."""

    def __init__(self, values: list[float], scheduler: bool = False) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.values, self.scheduler, self.calls, self.lrs = values, scheduler, 0, []

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        pass

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking:
            return
        value = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        self.log("val/nll", value)
        self.lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=1.0)
        if not self.scheduler:
            return opt
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 10)}


def run(module: Scripted, callback: PlateauHalving, max_steps: int = 200) -> L.Trainer:
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(8, 1)), batch_size=1)
    trainer = L.Trainer(
        max_steps=max_steps,
        val_check_interval=2,
        check_val_every_n_epoch=None,
        limit_val_batches=1,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, data, data)
    return trainer


def test_halves_after_patience_and_stops_after_the_last_halving():
    # improves for 3 validations, then flat: halvings at validations 5 and 7, stop at 9
    module = Scripted([3.0, 2.0, 1.0, 1.0])
    callback = PlateauHalving(monitor="val/nll", patience=2, halvings=2)
    trainer = run(module, callback)
    # lr as seen by validation k (before its own update): 1 until the 5th reduces it
    assert module.lrs == [1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert callback.reductions == 2
    assert callback.stopped_step == trainer.global_step == 18
    assert callback.best == 1.0


def test_a_new_best_resets_the_patience_and_max_mode():
    module = Scripted([1.0, 0.5, 2.0, 0.5, 3.0, 4.0, 5.0, 6.0])
    callback = PlateauHalving(monitor="val/nll", mode="max", patience=3, halvings=1)
    run(module, callback, max_steps=16)
    # max mode: every rise is a new best, so the lr never changes
    assert set(module.lrs) == {1.0} and callback.reductions == 0 and callback.stopped_step is None


def test_refuses_a_scheduler_and_bad_settings():
    with pytest.raises(ValueError, match="scheduler none"):
        run(Scripted([1.0], scheduler=True), PlateauHalving(monitor="val/nll"))
    with pytest.raises(KeyError, match="val/missing"):
        run(Scripted([1.0]), PlateauHalving(monitor="val/missing"))
    with pytest.raises(ValueError, match="factor"):
        PlateauHalving(factor=1.5)
    with pytest.raises(ValueError, match="mode"):
        PlateauHalving(mode="low")


def test_state_survives_a_checkpoint():
    callback = PlateauHalving(monitor="val/nll", patience=2, halvings=2)
    callback.best, callback.bad, callback.reductions = 0.3, 1, 1
    restored = PlateauHalving(monitor="val/nll")
    restored.load_state_dict(callback.state_dict())
    assert (restored.best, restored.bad, restored.reductions) == (0.3, 1, 1)
