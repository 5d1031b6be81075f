"""TransportFigure: PNGs of 2-D features through time and decision regions; silent on images."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ctdl.callbacks import TransportFigure
from ctdl.models import ODENetClassifier

from .helpers import check_png, figure_trainer, mode_probe, tensorboard_image_tags


class TinyData(L.LightningDataModule):
    """Train/val/test TensorDatasets; 2-D points labelled by a circle, or random 1x8x8 images."""

    def __init__(self, image: bool = False, n: int = 240, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)

        def make(m: int) -> TensorDataset:
            if image:
                return TensorDataset(
                    torch.randn(m, 1, 8, 8, generator=g), torch.randint(0, 2, (m,), generator=g)
                )
            x = torch.rand(m, 2, generator=g) * 4 - 2
            return TensorDataset(x, (x.norm(dim=1) > 1.2).long())

        self.train_dataset, self.val_dataset = make(n), make(n // 2)
        self.test_dataset = make(n // 2)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_dataset, batch_size=60, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_dataset, batch_size=120)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_dataset, batch_size=120)


def test_width2_fit_and_test_write_figures(tmp_path, capsys):
    torch.manual_seed(0)
    model = ODENetClassifier(input_shape=[2], num_classes=2, width=2, steps=4, lr=5e-2)
    probe = mode_probe()
    trainer = figure_trainer(tmp_path, [TransportFigure(n_points=200, grid_size=60, dpi=80), probe])
    dm = TinyData()
    trainer.fit(model, datamodule=dm)
    figures = Path(trainer.log_dir) / "figures"
    check_png(figures / "transport_epoch000.png", min_colours=20)
    check_png(figures / "transport_final.png", min_colours=20)
    assert str(figures / "transport_final.png") in capsys.readouterr().out
    assert probe.training_at_fit_end == probe.training_at_fit_start  # mode restored after drawing

    trainer.test(model, datamodule=dm)
    check_png(figures / "transport_test.png", min_colours=20)
    assert "transport" in tensorboard_image_tags(trainer.log_dir)


def test_width4_pca_every_epoch_float64(tmp_path):
    torch.manual_seed(0)
    model = ODENetClassifier(input_shape=[2], num_classes=2, width=4, steps=4)
    callback = TransportFigure(every_n_epochs=1, n_points=150, n_times=3, grid_size=50, dpi=80)
    trainer = figure_trainer(tmp_path, [callback], max_epochs=2, precision="64-true")
    trainer.fit(model, datamodule=TinyData(n=120))
    figures = Path(trainer.log_dir) / "figures"
    assert sorted(p.name for p in figures.glob("*.png")) == [
        "transport_epoch000.png",
        "transport_epoch001.png",
        "transport_final.png",
    ]
    for p in figures.glob("*.png"):
        check_png(p, min_colours=20)
    assert model.dtype == torch.float64
    assert math.isfinite(float(trainer.callback_metrics["val/acc"]))


def test_image_model_draws_nothing_and_warns_once(tmp_path):
    torch.manual_seed(0)
    model = ODENetClassifier(input_shape=[1, 8, 8], num_classes=2, width=2, steps=2, pool=1)
    trainer = figure_trainer(tmp_path, [TransportFigure(every_n_epochs=1)], max_epochs=2)
    dm = TinyData(image=True, n=60)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(model, datamodule=dm)
        trainer.test(model, datamodule=dm)
    ours = [w for w in caught if "TransportFigure draws nothing" in str(w.message)]
    assert len(ours) == 1 and "not 2-D vectors" in str(ours[0].message)
    assert not list(Path(tmp_path).rglob("*.png"))


class NoFeatures(L.LightningModule):
    """A classifier without features(x, n_times): no transport to draw."""

    def __init__(self) -> None:
        super().__init__()
        self.classifier = torch.nn.Linear(2, 2)

    def training_step(self, batch, batch_idx):
        return torch.nn.functional.cross_entropy(self.classifier(batch[0]), batch[1])

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", torch.nn.functional.cross_entropy(self.classifier(batch[0]), batch[1]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_model_that_is_not_a_transport_model_warns_with_what_it_lacks(tmp_path):
    trainer = figure_trainer(tmp_path, [TransportFigure(every_n_epochs=1)], max_epochs=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(NoFeatures(), datamodule=TinyData(n=60))
    ours = [str(w.message) for w in caught if "TransportFigure draws nothing" in str(w.message)]
    assert len(ours) == 1 and "is not a TransportModel" in ours[0] and "T / features / head" in ours[0]
    assert not list(Path(tmp_path).rglob("*.png"))


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_times"):
        TransportFigure(n_times=1)
    with pytest.raises(ValueError, match="every_n_epochs"):
        TransportFigure(every_n_epochs=-1)
