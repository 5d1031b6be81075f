"""DensityFigure: PNGs of data against a flow's samples, density and latent codes."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ctdl.callbacks import DensityFigure
from ctdl.models import OTFlow

from .helpers import bare_module, check_png, figure_trainer, mode_probe, tensorboard_image_tags


class PointData(L.LightningDataModule):
    """Train/val/test TensorDatasets of 1-tuples (x,): a noisy ring in 2-D, correlated Gaussians in 5-D."""

    def __init__(self, dim: int = 2, n: int = 256, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        mix = torch.randn(dim, dim, generator=g) / dim**0.5 + torch.eye(dim)

        def make(m: int) -> TensorDataset:
            if dim == 2:
                phi = torch.rand(m, generator=g) * 2 * torch.pi
                x = 2 * torch.stack([phi.cos(), phi.sin()], 1) + 0.2 * torch.randn(m, 2, generator=g)
            else:
                x = torch.randn(m, dim, generator=g) @ mix
            return TensorDataset(x)

        self.train_dataset, self.val_dataset, self.test_dataset = make(n), make(n // 2), make(n // 2)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_dataset, batch_size=64, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_dataset, batch_size=128)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.test_dataset, batch_size=128)


def _tiny_flow(dim: int) -> OTFlow:
    torch.manual_seed(0)
    return OTFlow(dim=dim, width=8, steps=2, eval_steps=2, lr=1e-2)


def _trainer(tmp_path: Path, callbacks: list[L.Callback], precision: str = "32-true") -> L.Trainer:
    return figure_trainer(tmp_path, callbacks, precision=precision, limit_train_batches=2)


def test_2d_float64_fit_and_test(tmp_path, capsys):
    model, dm = _tiny_flow(2), PointData(dim=2)
    figure, probe = DensityFigure(every_n_epochs=1, n_samples=300, grid_size=40, dpi=80), mode_probe()
    trainer = _trainer(tmp_path, [figure, probe], precision="64-true")
    trainer.fit(model, datamodule=dm)
    assert model.dtype == torch.float64
    figures = Path(trainer.log_dir) / "figures"
    check_png(figures / "density_epoch000.png", min_colours=50)
    check_png(figures / "density_final.png", min_colours=50)
    assert capsys.readouterr().out.count(str(figures / "density_final.png")) == 1
    assert probe.training_at_epoch_end and probe.training_at_fit_end  # mode restored

    trainer.test(model, datamodule=dm)
    check_png(figures / "density_test.png", min_colours=50)
    assert sorted(p.name for p in figures.glob("*.png")) == [
        "density_epoch000.png",
        "density_final.png",
        "density_test.png",
    ]
    assert "density" in tensorboard_image_tags(trainer.log_dir)

    # seeded: the same samples each time, and the global random stream is left alone
    state = torch.random.get_rng_state()
    a, b = figure._sample(model, 7), figure._sample(model, 7)
    assert a.dtype == torch.float64 and torch.equal(a, b)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_5d_corner_plot_only_at_fit_end_and_test(tmp_path):
    model, dm = _tiny_flow(5), PointData(dim=5)
    probe = mode_probe()
    trainer = _trainer(tmp_path, [DensityFigure(n_samples=300, coords=[0, 2, 4], dpi=80), probe])
    trainer.fit(model, datamodule=dm)
    assert probe.training_at_fit_end
    trainer.test(model, datamodule=dm)
    figures = Path(trainer.log_dir) / "figures"
    assert sorted(p.name for p in figures.glob("*.png")) == ["density_final.png", "density_test.png"]
    for p in figures.glob("*.png"):
        check_png(p, min_colours=50)


def test_model_without_sample_warns_once_and_draws_nothing(tmp_path):
    dm = PointData(dim=2, n=128)
    trainer = _trainer(tmp_path, [DensityFigure(every_n_epochs=1)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(bare_module(), datamodule=dm)
        trainer.test(trainer.lightning_module, datamodule=dm)
    ours = [w for w in caught if "DensityFigure draws nothing" in str(w.message)]
    assert len(ours) == 1 and "is not a Flow" in str(ours[0].message)
    assert "inverse / log_prob / sample" in str(ours[0].message)
    assert not list(Path(tmp_path).rglob("*.png"))


def test_bad_arguments():
    with pytest.raises(ValueError, match="every_n_epochs"):
        DensityFigure(every_n_epochs=-1)
    with pytest.raises(ValueError, match="coords"):
        DensityFigure(coords=[1, 1])
    with pytest.raises(ValueError, match="grid_size"):
        DensityFigure(grid_size=1)
