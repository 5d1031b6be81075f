"""Conditional OT-Flow for posterior estimation: sbibm data, raw units, MAP, C2ST, predict."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ctdl.datamodules import SBIBMTask
from ctdl.models import ConditionalOTFlow
from ctdl.sbi import PosteriorScaling

from .helpers import ROOT, SMALL


def perturbed_model(dim=1, cond_dim=2, log_params=True, seed=0) -> ConditionalOTFlow:
    """A float64 model with a gentle random flow and a non-trivial standardisation."""
    torch.manual_seed(seed)
    model = ConditionalOTFlow(dim=dim, cond_dim=cond_dim, width=8).double()
    with torch.no_grad():
        model.potential.w.mul_(0.4), model.potential.A.mul_(0.5)
        model.potential.K0[:, dim + 1 :].add_(torch.randn(8, cond_dim, dtype=torch.float64))
    model.scaling.set(
        torch.full((dim,), -1.0),
        torch.full((dim,), 0.7),
        torch.zeros(cond_dim),
        torch.full((cond_dim,), 2.0),
        log_params,
    )
    return model


def test_raw_posterior_density_integrates_to_one_with_log_parameters():
    """log_prob in raw units carries the Jacobian of theta -> (log theta - m) / s."""
    model = perturbed_model()
    s = torch.linspace(math.log(1e-5), math.log(100.0), 4001, dtype=torch.float64)
    for y in ([0.0, 0.0], [3.0, -2.0]):  # integral of p(theta) d theta = integral of p(e^s) e^s ds
        p = model.log_prob(s.exp()[:, None], torch.tensor(y), steps=16).exp()
        mass = torch.trapezoid(p * s.exp(), s).item()
        assert mass == pytest.approx(1.0, abs=1e-4)


@pytest.mark.slow
def test_posterior_samples_are_raw_and_map_beats_every_sample():
    model = perturbed_model(dim=2)
    y = torch.tensor([1.0, -1.0], dtype=torch.float64)
    samples = model.sample_posterior(500, y, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (500, 2) and (samples > 0).all()  # theta = exp(...)
    v = model.scaling.observation(y)
    z = torch.randn(500, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    u = model.flow.inverse(z, v, steps=model.hparams.eval_steps)
    torch.testing.assert_close(samples, model.scaling.to_params(u))
    theta_map = model.map_estimate(y, iterations=40, starts=32)
    best = model.log_prob(samples, y).max()
    assert model.log_prob(theta_map[None], y).item() >= best.item() - 1e-6


def test_raw_unit_inputs_are_checked():
    model = perturbed_model(dim=2, cond_dim=3)
    with pytest.raises(ValueError, match=r"an observation y has 3 entries for this model, got shape \(4,\)"):
        model.sample_posterior(10, torch.zeros(4))
    with pytest.raises(ValueError, match="NaN or inf"):
        model.sample_posterior(10, torch.tensor([0.0, math.nan, 1.0]))
    with pytest.raises(ValueError, match=r"theta has 2 entries for this model, got shape \(5, 3\)"):
        model.log_prob(torch.ones(5, 3), torch.zeros(3))
    with pytest.raises(ValueError, match=r"theta_mean has shape \(3,\), the model expects \(2,\)"):
        PosteriorScaling(2, 3).set(torch.zeros(3), torch.ones(3), torch.zeros(3), torch.ones(3), False)


def test_sbibm_task_splits_are_seeded_and_standardised():
    data = SBIBMTask("two_moons", num_simulations=400, n_test=50, seed=3)
    assert (data.dim, data.cond_dim, data.num_observations) == (2, 2, 10)
    data.setup("fit")
    u, v = data.train_dataset.tensors
    assert len(u) == 360 and len(data.val_dataset) == 40 and len(data.test_dataset) == 50
    torch.testing.assert_close(u.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(v.std(0), torch.ones(2), atol=1e-5, rtol=0)
    again = SBIBMTask("two_moons", num_simulations=400, n_test=50, seed=3)
    again.setup("fit")
    assert torch.equal(again.train_dataset.tensors[1], v)
    assert data.reference_posterior(1).shape == (10_000, 2) and data.observation(10).shape == (2,)


def test_sbibm_task_errors_name_the_fix():
    with pytest.raises(ValueError, match="needs Julia.*stochastic Lotka-Volterra model is ctdl"):
        SBIBMTask("lotka_volterra")
    with pytest.raises(ValueError, match="unknown sbibm task 'moons'; known: two_moons, slcp"):
        SBIBMTask("moons")
    with pytest.raises(ValueError, match="observations 1..10, got 11"):
        SBIBMTask("two_moons").observation(11)


def test_observation_files(tmp_path):
    data = SBIBMTask("two_moons", num_simulations=100)
    (tmp_path / "obs.csv").write_text("y0,y1\n0.1,0.2\n0.3,0.4\n")
    np.save(tmp_path / "obs.npy", np.array([0.5, 0.6]))
    for name, rows in (("obs.csv", 2), ("obs.npy", 1)):
        data.observations_file = str(tmp_path / name)
        assert data.load_observations().shape == (rows, 2)
    np.save(tmp_path / "long.npy", np.zeros((2, 3)))
    data.observations_file = str(tmp_path / "long.npy")
    with pytest.raises(
        ValueError,
        match=r"an observation has 2 statistics for this task, got an array of "
        r"shape \(2, 3\)",
    ):
        data.load_observations()
    (tmp_path / "nan.csv").write_text("1.0,nan\n")
    data.observations_file = str(tmp_path / "nan.csv")
    with pytest.raises(ValueError, match=r"observation rows \[0\] hold NaN"):
        data.load_observations()
    data.observations_file = str(tmp_path / "missing.npy")
    with pytest.raises(FileNotFoundError, match="no file at"):
        data.load_observations()


@pytest.mark.slow
def test_fit_test_and_predict_through_the_cli(cli, tmp_path):
    """A short fit; test computes C2ST against sbibm's reference; predict writes raw samples."""
    config = [
        "--config",
        "configs/sbi/two_moons.yaml",
        "--data.num_simulations",
        "300",
        "--data.n_test",
        "50",
        "--model.width",
        "8",
        "--model.eval_steps",
        "4",
        "--model.posterior_samples",
        "200",
        "--model.c2st_observations",
        "[1]",
    ]
    config[1] = str(ROOT / config[1])
    fit = cli("fit", *config, "--trainer.max_steps", "4", "--trainer.val_check_interval", "2")
    ckpt = fit.trainer.checkpoint_callback.dirpath + "/last.ckpt"
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    assert state["scaling.y_std"].shape == (2,) and (state["scaling.y_std"] != 1).all()  # from the data
    test = cli("test", *config, "--ckpt_path", ckpt)
    assert 0.5 <= test.trainer.callback_metrics["test/c2st"].item() <= 1.0
    obs = tmp_path / "obs.csv"
    obs.write_text("a,b\n0.0,0.1\n0.2,-0.3\n0.5,0.5\n")
    cli("predict", *config, "--ckpt_path", ckpt, "--data.observations", str(obs))
    samples = np.load(next((tmp_path / "runs").rglob("predict/posterior_samples.npy")))
    assert samples.shape == (3, 200, 2) and np.isfinite(samples).all()


LV_SMALL = SMALL["sbi"]


@pytest.mark.slow
def test_lotka_volterra_resumes_with_its_standardisation(cli, tmp_path):
    cache = ["--data.cache_dir", str(tmp_path / "cache")]
    fit = cli("fit", *LV_SMALL, *cache, "--trainer.max_steps", "4")
    last = Path(fit.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    before = torch.load(last, weights_only=True)["state_dict"]
    resumed = cli("fit", *LV_SMALL, *cache, "--trainer.max_steps", "8", "--ckpt_path", last)
    assert resumed.trainer.global_step == 8 and bool(resumed.model.scaling.log_params)
    torch.testing.assert_close(resumed.model.scaling.y_mean, before["scaling.y_mean"])
    assert list((tmp_path / "cache").glob("lotka_volterra_*.npz"))  # simulated once, then read


def test_otflow_arguments_pass_through_and_checkpoints_without_them_load(tmp_path):
    """OTFlow's arguments reach it through **otflow and land in the hyperparameters; a checkpoint
    whose hyperparameters list only the arguments ConditionalOTFlow once spelled out still loads."""
    import lightning

    model = ConditionalOTFlow(dim=2, cond_dim=3, depth=3, alpha_R=1.0, rank=2)
    h = model.hparams
    assert (h.depth, h.alpha_R, h.rank, h.alpha_L, h.width, h.eval_steps) == (3, 1.0, 2, 1.0, 64, 32)
    assert (h.cond_dim, h.posterior_samples, h.log_params) == (3, 10_000, False)
    assert model.flow.cond_dim == 3 and model.flow.steps == 32
    with pytest.raises(ValueError, match="predict_samples does not apply to ConditionalOTFlow"):
        ConditionalOTFlow(predict_samples=True)
    with pytest.raises(ValueError, match="cond_dim must be >= 1, got 0"):
        ConditionalOTFlow(cond_dim=0)
    old = {k: v for k, v in h.items() if k != "predict_samples"}
    path = tmp_path / "old.ckpt"
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": old,
            "pytorch-lightning_version": lightning.__version__,
        },
        path,
    )
    loaded = ConditionalOTFlow.load_from_checkpoint(path, map_location="cpu")
    assert loaded.hparams.depth == 3 and not loaded.hparams.predict_samples
    theta, y = torch.rand(4, 2) + 0.5, torch.zeros(3)
    torch.testing.assert_close(loaded.log_prob(theta, y, steps=4), model.log_prob(theta, y, steps=4))


def test_print_config_shows_every_argument(capsys):
    from ctdl.cli import run_cli

    with pytest.raises(SystemExit):
        run_cli(["fit", "--model", "ConditionalOTFlow", "--print_config"])
    out = capsys.readouterr().out
    for name in (
        "width: 64",
        "eval_steps: 32",
        "alpha_R: 5.0",
        "depth: 2",
        "scheduler: cosine",
        "trace: exact",
    ):
        assert f"    {name}\n" in out, (name, out)
    for name in ("log_params", "posterior_samples", "c2st_observations", "clamp", "weight_decay"):
        assert f"    {name}:" in out, (name, out)
