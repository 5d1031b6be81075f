"""SourceMitigation through `ctdl`: both configs, resume, test metrics, predict, bad input."""

from pathlib import Path

import numpy as np
import pytest
import torch

from . import helpers
from .helpers import ROOT

SMALL = helpers.SMALL["pde_control"][2:]  # the small run without its config (direct.yaml)


def config(name: str) -> list[str]:
    return ["--config", str(ROOT / "configs" / "pde_control" / f"{name}.yaml")]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["value", "direct"])
def test_every_config_runs_fast_dev_run(cli, name):
    run = cli(
        "fit",
        *config(name),
        "--trainer.fast_dev_run",
        "true",
        "--data.num_train",
        "16",
        "--data.batch_size",
        "4",
        "--data.num_val",
        "4",
    )
    metrics = run.trainer.callback_metrics
    assert torch.isfinite(metrics["train/cost"]) and 0 < metrics["val/cost_ratio"] < 1.5
    assert metrics["train/pde_solves"] > 0
    assert next(Path.cwd().rglob("pde_control_final.png")).stat().st_size > 10_000


@pytest.mark.slow
def test_fit_resume_test_and_predict(cli):
    fit = cli("fit", *config("value"), *SMALL, "--trainer.max_steps", "3")
    solves = fit.model.train_solves
    assert solves > 0
    last = fit.trainer.checkpoint_callback.dirpath + "/last.ckpt"
    resumed = cli("fit", *config("value"), *SMALL, "--trainer.max_steps", "6", "--ckpt_path", last)
    assert resumed.trainer.global_step == 6 and resumed.model.train_solves > solves  # the count carries over
    test = cli("test", *config("value"), *SMALL, "--ckpt_path", last)
    metrics = test.trainer.callback_metrics
    assert {"test/cost", "test/cost_ratio", "test/cost_uncontrolled", "test/decision_ms"} <= set(metrics)
    assert metrics["test/cost"] < metrics["test/cost_uncontrolled"]
    cli("predict", *config("value"), *SMALL, "--ckpt_path", last)
    folder = next(Path.cwd().rglob("predict/rates.npy")).parent
    rates, cost = np.load(folder / "rates.npy"), np.load(folder / "cost.npy")
    assert rates.shape == (4, 12, 4) and cost.shape == (4,)
    assert rates.min() >= 0 and rates.max() <= 10


def test_bad_input_names_the_fix(cli):
    with pytest.raises(
        ValueError, match=r"input grid is 20 x 20 but the problem's 8 x 8 mesh gives 9 x 9 images"
    ):
        cli("fit", *config("value"), *SMALL, "--model.grid", "20")
    from ctdl.models import SourceMitigation

    with pytest.raises(ValueError, match="unknown policy 'ppo'; known policies: value, direct"):
        SourceMitigation(policy="ppo")
    with pytest.raises(SystemExit):  # jsonargparse reports the constructor's message and exits
        cli("fit", *config("value"), *SMALL, "--data.pde_args", "{a_max: -1}")
    with pytest.raises(ValueError, match="a_max must be > 0"):
        SourceMitigation(pde_args={"a_max": -1})
    with pytest.raises(ValueError, match="lies outside the domain"):
        SourceMitigation(pde_args={"actuators": [[0.5, 0.5], [0.5, -0.1]]})
