"""PosteriorFigure: PNGs of posterior samples against reference samples, and posterior predictive series."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ctdl.callbacks import PosteriorFigure
from ctdl.datamodules import SBIBMTask
from ctdl.datamodules.lotka_volterra import LotkaVolterra
from ctdl.models import ConditionalOTFlow
from ctdl.protocols import PredictiveSimulator
from ctdl.sbi.lotka_volterra import THETA_STAR

from .helpers import bare_module, check_png, figure_trainer, tensorboard_image_tags


def _tiny_model(dim: int, cond_dim: int) -> ConditionalOTFlow:
    torch.manual_seed(0)
    return ConditionalOTFlow(
        dim=dim,
        cond_dim=cond_dim,
        width=8,
        steps=2,
        eval_steps=2,
        posterior_samples=100,
        c2st_observations=[1],
    )


def _trainer(tmp_path: Path, callbacks: list[L.Callback], **kwargs) -> L.Trainer:
    return figure_trainer(tmp_path, callbacks, limit_train_batches=2, limit_val_batches=1, **kwargs)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.png"))


@pytest.mark.slow
def test_two_moons_against_the_reference_posterior(tmp_path, capsys):
    data = SBIBMTask("two_moons", num_simulations=200, n_test=20, batch_size=64)
    model = _tiny_model(2, 2)
    figure = PosteriorFigure(every_n_epochs=1, observations=[1, 3], n_samples=300, dpi=80)
    trainer = _trainer(tmp_path, [figure])
    trainer.fit(model, datamodule=data)
    figures = Path(trainer.log_dir) / "figures"
    assert _names(figures) == [
        "posterior_obs1_epoch000.png",
        "posterior_obs1_final.png",
        "posterior_obs3_epoch000.png",
        "posterior_obs3_final.png",
    ]
    assert str(figures / "posterior_obs3_final.png") in capsys.readouterr().out
    trainer.test(model, datamodule=data)
    for name in ("posterior_obs1_final.png", "posterior_obs3_final.png", "posterior_obs1_test.png"):
        check_png(figures / name, min_colours=50)
    assert {"posterior_obs1", "posterior_obs3"} <= set(tensorboard_image_tags(trainer.log_dir))

    # seeded per observation, in the model's dtype, and the global random stream is left alone
    state = torch.random.get_rng_state()
    a, b = figure._sample(model, data.observation(1), 1), figure._sample(model, data.observation(1), 1)
    assert a.dtype == model.dtype and a.shape == (300, 2) and torch.equal(a, b)
    assert not torch.equal(a, figure._sample(model, data.observation(1), 3))
    assert torch.equal(torch.random.get_rng_state(), state)


def test_lotka_volterra_log_axes_abc_file_and_predictive_series(tmp_path):
    data = LotkaVolterra(
        num_simulations=40, n_test=10, cache_dir=str(tmp_path / "cache"), workers=1, batch_size=16
    )
    assert isinstance(data, PredictiveSimulator)
    abc = THETA_STAR * np.exp(0.1 * np.random.default_rng(0).standard_normal((500, 4)))
    np.save(tmp_path / "abc.npy", abc)
    model = _tiny_model(4, 9)
    figure = PosteriorFigure(
        n_samples=200,
        reference=str(tmp_path / "abc.npy"),
        reference_label="SMC-ABC",
        predictive_draws=20,
        dpi=70,
    )
    trainer = _trainer(tmp_path, [figure], precision="64-true")
    trainer.fit(model, datamodule=data)
    figures = Path(trainer.log_dir) / "figures"
    assert _names(figures) == ["posterior_obs1_final.png", "posterior_predictive_obs1_final.png"]
    for path in figures.glob("*.png"):
        check_png(path, min_colours=50)

    context = figure._inputs(trainer, model, "val")
    assert context.log_params and context.predictive
    (_, corner), (_, predictive) = figure._figures(trainer, model, context, 1, "val", None)
    labels = [ax.get_xlabel() for ax in corner.axes if ax.get_xlabel()]
    assert labels == ["log theta_1", "log theta_2", "log theta_3", "log theta_4"]
    legend = [t.get_text() for t in corner.legends[0].get_texts()]
    assert legend[1:] == ["SMC-ABC (200 samples)", "true parameters"]
    assert "its own series is not part of the data" in " ".join(predictive.get_suptitle().split())
    assert [ax.get_title() for ax in predictive.axes] == ["X (predators)", "Y (prey)"]


def test_missing_or_misshapen_reference_file_is_named(tmp_path):
    data = SBIBMTask("two_moons", num_simulations=50, n_test=10)
    trainer = _trainer(tmp_path, [PosteriorFigure(reference=str(tmp_path / "abc.npy"))], max_steps=1)
    with pytest.raises(FileNotFoundError, match="no reference file at .*abc.npy"):
        trainer.fit(_tiny_model(2, 2), datamodule=data)
    np.save(tmp_path / "abc.npy", np.zeros((10, 3)))
    trainer = _trainer(tmp_path, [PosteriorFigure(reference=str(tmp_path / "abc.npy"))], max_steps=1)
    with pytest.raises(ValueError, match=r"shape \(10, 3\); expected \(m, 2\)"):
        trainer.fit(_tiny_model(2, 2), datamodule=data)


class Observed(L.LightningDataModule):
    """Pairs in R^2 x R^2 and one observation."""

    def __init__(self) -> None:
        super().__init__()
        self.dataset = TensorDataset(torch.randn(64, 2), torch.randn(64, 2))

    def observation(self, i: int) -> torch.Tensor:
        return torch.zeros(2)

    def train_dataloader(self):
        return DataLoader(self.dataset, batch_size=32)

    val_dataloader = test_dataloader = train_dataloader


def test_model_without_sample_posterior_warns_once_and_draws_nothing(tmp_path):
    trainer = _trainer(tmp_path, [PosteriorFigure(every_n_epochs=1)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(bare_module(), datamodule=Observed())
        trainer.test(trainer.lightning_module, datamodule=Observed())
    ours = [w for w in caught if "PosteriorFigure draws nothing" in str(w.message)]
    assert len(ours) == 1 and "is not a PosteriorModel" in str(ours[0].message)
    assert "lacks sample_posterior" in str(ours[0].message)
    assert not list(Path(tmp_path).rglob("*.png"))


def test_bad_arguments():
    with pytest.raises(ValueError, match="observations"):
        PosteriorFigure(observations=[0])
    with pytest.raises(ValueError, match="one reference file is the posterior of one observation"):
        PosteriorFigure(observations=[1, 2], reference="abc.npy")
    with pytest.raises(ValueError, match=r"reference files for observations \[4\]"):
        PosteriorFigure(observations=[1], reference={4: "abc.npy"})
    with pytest.raises(ValueError, match="n_samples"):
        PosteriorFigure(n_samples=1)
