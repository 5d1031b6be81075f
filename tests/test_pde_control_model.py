"""SourceMitigation through `ctdl`: both configs, resume, test metrics, predict, DDP, bad input."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from .helpers import ROOT

SMALL = [
    "--data.pde_args",
    "{cells: 8, steps: 12}",
    "--data.num_train",
    "16",
    "--data.num_val",
    "4",
    "--data.num_test",
    "4",
    "--data.batch_size",
    "4",
    "--model.width",
    "4",
    "--trainer.val_check_interval",
    "2",
]


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


def test_two_cpu_processes(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "WORLD_SIZE", "RANK")}
    cmd = [
        sys.executable,
        "-m",
        "ctdl",
        "fit",
        *config("direct"),
        *SMALL,
        "--trainer.max_steps",
        "2",
        "--trainer.strategy",
        "ddp",
        "--trainer.devices",
        "2",
        "--trainer.accelerator",
        "cpu",
        "--trainer.enable_progress_bar",
        "false",
        "--runs_dir",
        str(tmp_path / "runs"),
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "distributed_backend=gloo" in log
    assert (
        tmp_path / "runs" / "pde_control" / "direct" / "version_0" / "checkpoints" / "last.ckpt"
    ).is_file()
