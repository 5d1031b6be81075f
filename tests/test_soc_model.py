"""StochasticOptimalControl through the `ctdl` command: float64, resume, test metrics, DDP, bad input."""

from pathlib import Path

import numpy as np
import pytest
import torch

from .helpers import ROOT, SMALL

LQR_SMALL = SMALL["soc"]


def test_float64_fit_resume_and_test_against_riccati(cli):
    fit = cli("fit", *LQR_SMALL, "--trainer.max_steps", "4", "--trainer.precision", "64-true")
    assert fit.model.value_function.potential.K0.dtype == torch.float64
    last = fit.trainer.checkpoint_callback.dirpath + "/last.ckpt"
    resumed = cli(
        "fit", *LQR_SMALL, "--trainer.max_steps", "8", "--trainer.precision", "64-true", "--ckpt_path", last
    )
    assert resumed.trainer.global_step == 8
    test = cli("test", *LQR_SMALL, "--trainer.precision", "64-true", "--ckpt_path", last)
    metrics = test.trainer.callback_metrics
    assert {
        "test/phi0_rel_err",
        "test/traj_rel_l2",
        "test/cost",
        "test/cost_ref",
        "test/cost_ref_feedback",
        "test/cost_same_noise",
        "test/cost_zero",
    } <= set(metrics)
    assert metrics["test/cost_zero"] > metrics["test/cost_ref_feedback"]  # Riccati's feedback beats u = 0
    assert abs(metrics["test/cost_ref"].item() - 4.7154) < 0.6  # Riccati's E[Phi(0, X_0)] over 32 starts
    assert all(torch.isfinite(v) for v in metrics.values())
    cli("predict", *LQR_SMALL, "--trainer.precision", "64-true", "--ckpt_path", last)
    folder = next(Path.cwd().rglob("predict/value.npy")).parent
    value, control = np.load(folder / "value.npy"), np.load(folder / "control.npy")
    assert value.shape == (32,) and control.shape == (32, 2) and np.isfinite(control).all()


def test_a_checkpoint_tests_on_other_starts_through_init_from(cli):
    fit = cli("fit", *LQR_SMALL, "--trainer.max_steps", "2")
    last = fit.trainer.checkpoint_callback.dirpath + "/last.ckpt"
    other = ("--data.problem_args", "{start: [0.0, 0.0]}")
    # --ckpt_path keeps the checkpoint's problem (its start law) and so contradicts the new data
    with pytest.raises(ValueError, match="contradicts the data"):
        cli("test", *LQR_SMALL, *other, "--ckpt_path", last)
    moved = cli("test", *LQR_SMALL, *other, "--init_from", last)
    trained = torch.load(last, weights_only=True)["state_dict"]
    assert all(torch.equal(v, trained[k]) for k, v in moved.model.state_dict().items())
    here = cli("test", *LQR_SMALL, "--ckpt_path", last).trainer.callback_metrics["test/cost_ref"]
    # Riccati's E[Phi(0, X_0)] over the new starts near the origin is below that over starts near (1, 1)
    assert moved.trainer.callback_metrics["test/cost_ref"] < here


def test_a_problem_without_reference_still_reports_its_cost(cli):
    run = cli(
        "fit",
        "--config",
        ROOT / "configs" / "soc" / "quadcopter.yaml",
        "--trainer.max_steps",
        "2",
        "--data.num_train",
        "32",
        "--data.num_val",
        "8",
        "--data.num_test",
        "8",
        "--data.batch_size",
        "8",
        "--model.eval_steps",
        "5",
        "--trainer.val_check_interval",
        "1",
    )
    metrics = run.trainer.callback_metrics
    assert torch.isfinite(metrics["val/cost"]) and "val/phi0_rel_err" not in metrics


def test_bad_input_names_the_fix(cli):
    with pytest.raises(ValueError, match="model.dim = 5 contradicts the data: ControlStarts has dim = 100"):
        cli("fit", "--config", ROOT / "configs" / "soc" / "hjb_lq.yaml", "--model.dim", "5")
    from ctdl.models import StochasticOptimalControl

    with pytest.raises(ValueError, match="dim = 5 does not match the hjb_lq problem's dimension 100"):
        StochasticOptimalControl(problem="hjb_lq", problem_args={"dim": 100}, dim=5)
    with pytest.raises(SystemExit):  # jsonargparse reports the problem's own message and exits
        cli("fit", *LQR_SMALL, "--data.problem_args", "{sigma: [1, 2, 3]}")
    with pytest.raises(
        ValueError,
        match=r"sigma must be a scalar, a \(2,\) diagonal or a \(2, 2\) matrix .* got shape \(3,\)",
    ):
        StochasticOptimalControl(problem="lqr", problem_args={"sigma": [1, 2, 3]})
    with pytest.raises(
        ValueError, match="unknown control problem 'foo'; known problems: hjb_lq, lqr, obstacle"
    ):
        StochasticOptimalControl(problem="foo")
    with pytest.raises(ValueError, match="unknown sampling 'walk'; known: pmp, random_walk"):
        StochasticOptimalControl(problem="lqr", sampling="walk")
