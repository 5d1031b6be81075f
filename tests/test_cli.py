"""The `ctdl` command end to end: configs, run folders, resume, test, precision, bad input."""

import pickle
from fractions import Fraction
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ctdl.callbacks import FiniteLossGuard, NonFiniteLossError
from ctdl.models import ODENetClassifier

from .helpers import ROOT, SMALL, fast_dev_run_overrides, metrics_rows

CONFIGS = sorted((ROOT / "configs").glob("*/*.yaml"))
PEAKS = ROOT / "configs" / "odenet" / "peaks.yaml"
SMALL_PEAKS = SMALL["odenet"]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_config_runs_fast_dev_run(cli, config, tmp_path):
    extra = fast_dev_run_overrides(config, tmp_path)
    run = cli("fit", "--config", config, "--trainer.fast_dev_run", "true", *extra)
    assert run.trainer.state.finished
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "figures").exists()  # all under runs/
    assert torch.isfinite(run.trainer.callback_metrics["train/loss"])
    assert any(k.startswith("val/") for k in run.trainer.callback_metrics)


def test_short_class_names_and_print_config(cli, capsys):
    run = cli(
        "fit",
        "--model",
        "ODENetClassifier",
        "--data",
        "Toy2DClassification",
        "--trainer.fast_dev_run",
        "true",
    )
    assert type(run.model).__name__ == "ODENetClassifier" and run.trainer.state.finished
    with pytest.raises(SystemExit) as exit_info:
        cli("fit", "--config", PEAKS, "--print_config")
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "class_path: ctdl.models.ODENetClassifier" in printed and "dataset: peaks" in printed


@pytest.mark.slow
def test_run_folder_resume_and_evaluation_of_a_saved_checkpoint(cli, tmp_path):
    fit = cli("fit", *SMALL_PEAKS, "--trainer.max_epochs", "2")
    run_dir = Path(fit.trainer.log_dir)
    assert run_dir == tmp_path / "runs" / "odenet" / "peaks" / "version_0"
    for name in ("config.yaml", "metrics.csv", "checkpoints/last.ckpt", "figures/transport_final.png"):
        assert (run_dir / name).is_file(), name
    assert list(run_dir.glob("checkpoints/best-*.ckpt")) and list(run_dir.glob("events.out.tfevents.*"))
    steps_per_epoch = fit.trainer.global_step // 2

    # resume from last.ckpt continues the same run in the same folder
    last = run_dir / "checkpoints" / "last.ckpt"
    resumed = cli("fit", *SMALL_PEAKS, "--trainer.max_epochs", "3", "--ckpt_path", last)
    assert Path(resumed.trainer.log_dir) == run_dir
    assert resumed.trainer.global_step == 3 * steps_per_epoch
    assert not (run_dir.parent / "version_1").exists()
    rows = metrics_rows(run_dir)
    val_rows = [r for r in rows if r["val/acc"]]
    # the old rows are kept and the new epoch is appended (Lightning re-validates the restored epoch)
    assert sorted({int(r["epoch"]) for r in val_rows}) == [0, 1, 2] and val_rows[-1]["epoch"] == "2"
    assert [int(r["step"]) for r in rows] == sorted(int(r["step"]) for r in rows)

    # validate on last.ckpt reproduces the val/acc logged at the end of the run
    val = cli("validate", *SMALL_PEAKS, "--ckpt_path", last)
    assert val.trainer.callback_metrics["val/acc"].item() == pytest.approx(float(val_rows[-1]["val/acc"]))
    assert Path(val.trainer.log_dir) == run_dir / "validate"

    # test on a saved checkpoint: reproducible, and equal to the accuracy computed by hand
    test1 = cli("test", *SMALL_PEAKS, "--ckpt_path", last).trainer.callback_metrics["test/acc"].item()
    test2 = cli("test", *SMALL_PEAKS, "--ckpt_path", last).trainer.callback_metrics["test/acc"].item()
    model = ODENetClassifier.load_from_checkpoint(last)
    data = resumed.datamodule
    x, y = data.test_dataset.tensors
    with torch.no_grad():
        by_hand = (model(x).argmax(-1) == y).float().mean().item()
    assert test1 == test2 == pytest.approx(by_hand)
    assert (run_dir / "test" / "metrics.csv").is_file()


@pytest.mark.parametrize("precision, dtype", [("64-true", torch.float64), ("bf16-mixed", torch.float32)])
def test_precision_on_cpu(cli, precision, dtype):
    run = cli(
        "fit",
        *SMALL_PEAKS,
        "--trainer.max_steps",
        "6",
        "--trainer.limit_val_batches",
        "1",
        "--trainer.precision",
        precision,
    )
    assert run.trainer.precision == precision
    assert next(run.model.parameters()).dtype == dtype
    assert torch.isfinite(run.trainer.callback_metrics["train/loss"])
    assert run.trainer.callback_metrics["val/acc"] > 0


# ---------------------------------------------------------------------------------- bad input
def test_data_shape_that_does_not_match_the_model_names_both(cli):
    with pytest.raises(
        ValueError,
        match=r"input_shape = \[3\] contradicts the data: Toy2DClassification has "
        r"input_shape = \[2\]",
    ):
        cli("fit", *SMALL_PEAKS, "--model.input_shape", "[3]", "--trainer.fast_dev_run", "true")


@pytest.mark.parametrize(
    "config, model, data, linked, absent",
    [
        ("otflow/digits", "OTFlow", "DigitsDensity", {"dim": 64}, ["input_shape", "num_classes"]),
        ("otflow/power", "OTFlow", "TabularDensity", {"dim": 6}, ["input_shape", "num_classes"]),
        (
            "odenet/digits",
            "ODENetClassifier",
            "ImageClassification",
            {"input_shape": [1, 8, 8], "num_classes": 10},
            ["dim"],
        ),
        (
            "odenet/ellipses",
            "ODENetClassifier",
            "Toy2DClassification",
            {"input_shape": [2], "num_classes": 2},
            ["dim"],
        ),
    ],
)
def test_the_data_facts_are_written_once_and_linked_into_the_model(
    tmp_path, monkeypatch, config, model, data, linked, absent
):
    from ctdl.cli import run_cli

    monkeypatch.chdir(tmp_path)
    path = ROOT / "configs" / f"{config}.yaml"
    assert not any(f"{fact}:" in path.read_text() for fact in linked)  # the config does not say them
    built = run_cli(["--config", str(path)], run=False)
    assert type(built.model).__name__ == model and type(built.datamodule).__name__ == data
    hparams = dict(built.model.hparams)
    assert {fact: hparams[fact] for fact in linked} == linked
    assert not set(absent) & set(hparams)  # facts the model does not take are not slipped into it
    fact, value = next(iter(linked.items()))
    wrong = "3" if fact != "input_shape" else "[3]"
    with pytest.raises(ValueError, match=rf"model.{fact} = \[?3\]? contradicts the data: {data} has {fact}"):
        run_cli(["--config", str(path), f"--model.{fact}", wrong], run=False)
    again = run_cli(["--config", str(path), f"--model.{fact}", str(value)], run=False)  # agreeing is fine
    assert dict(again.model.hparams)[fact] == value


def test_trainer_default_root_dir_says_where_run_folders_go(tmp_path, monkeypatch, cli):
    from ctdl.cli import run_cli

    monkeypatch.chdir(tmp_path)
    built = run_cli(
        ["--config", str(PEAKS), "--trainer.default_root_dir", str(tmp_path / "elsewhere")], run=False
    )
    assert Path(built.trainer.log_dir) == tmp_path / "elsewhere" / "odenet" / "peaks" / "version_0"
    same = str(tmp_path / "same")
    both = run_cli(
        ["--config", str(PEAKS), "--trainer.default_root_dir", same, "--runs_dir", same], run=False
    )
    assert Path(both.trainer.log_dir) == tmp_path / "same" / "odenet" / "peaks" / "version_0"
    # the cli fixture passes --runs_dir <tmp_path>/runs
    disagree = r"--runs_dir \S*runs and --trainer.default_root_dir \S*other disagree"
    with pytest.raises(ValueError, match=disagree):
        cli("fit", *SMALL_PEAKS, "--trainer.default_root_dir", tmp_path / "other")


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("--model.method", "rk5", "unknown ODE method 'rk5'; known methods: .*dopri5.*rk4"),
        (
            "--model.dynamics",
            "parabolic",
            "unknown dynamics 'parabolic'; known dynamics: resnet, antisymmetric",
        ),
    ],
)
def test_unknown_names_list_the_known_ones(cli, key, value, message):
    with pytest.raises(ValueError, match=message):
        cli("fit", *SMALL_PEAKS, key, value, "--trainer.fast_dev_run", "true")


def test_missing_data_directory_says_how_to_get_the_files(cli, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as info:
        cli(
            "fit",
            "--config",
            ROOT / "configs/odenet/fashion_mnist.yaml",
            "--data.data_dir",
            missing,
            "--trainer.fast_dev_run",
            "true",
        )
    message = str(info.value)
    assert str(missing) in message and "apt install dataset-fashion-mnist" in message
    assert "download" in message


@pytest.mark.slow
def test_last_checkpoint_is_the_latest_state_when_the_best_is_older(cli):
    # monitoring "step" in mode min makes the first validation the best forever after
    fit = cli(
        "fit",
        *SMALL_PEAKS,
        "--trainer.max_epochs",
        "3",
        "--checkpoint.monitor",
        "step",
        "--checkpoint.mode",
        "min",
    )
    checkpoints = Path(fit.trainer.log_dir) / "checkpoints"
    best = torch.load(fit.trainer.checkpoint_callback.best_model_path, weights_only=False)
    last = torch.load(checkpoints / "last.ckpt", weights_only=False)
    assert 0 < best["global_step"] < last["global_step"] == fit.trainer.global_step
    assert last["epoch"] == 2


@pytest.mark.slow
def test_init_from_starts_a_new_run_from_a_checkpoints_weights(cli, tmp_path):
    first = cli("fit", *SMALL_PEAKS, "--trainer.max_epochs", "1")
    last = Path(first.trainer.log_dir) / "checkpoints" / "last.ckpt"
    weights = torch.load(last, weights_only=False)["state_dict"]
    # zero epochs: the model is exactly what --init_from loaded, in a new run folder at step 0
    second = cli("fit", *SMALL_PEAKS, "--trainer.max_epochs", "0", "--init_from", last)
    assert Path(second.trainer.log_dir).name == "version_1" and second.trainer.global_step == 0
    loaded = second.model.state_dict()
    assert weights.keys() == loaded.keys()
    assert all(torch.equal(weights[k], loaded[k]) for k in weights)

    with pytest.raises(ValueError, match=r"(?s)do not fit this model.*size mismatch"):
        cli("fit", *SMALL_PEAKS, "--model.width", "8", "--init_from", last)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        cli("fit", *SMALL_PEAKS, "--init_from", tmp_path / "missing.ckpt")


class WritesAFile:
    """Unpickling this object creates the file `path`: a stand-in for a checkpoint that runs code."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_checkpoint_that_would_run_code_is_refused_and_nothing_runs(cli, tmp_path):
    from ctdl.cli import UntrustedCheckpointError, run_cli

    state = {k: v + 1 for k, v in run_cli(["--config", str(PEAKS)], run=False).model.state_dict().items()}
    marker, harmful = tmp_path / "code_ran", tmp_path / "harmful.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": {"note": WritesAFile(marker)}}, harmful)
    refused = r"(?s)refused to load \S*harmful.ckpt.*names _io.open.*could run code.*--init_from_trusted true"
    with pytest.raises(UntrustedCheckpointError, match=refused):
        cli("fit", *SMALL_PEAKS, "--trainer.max_epochs", "0", "--init_from", harmful)
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):  # resume / evaluate
        cli("test", *SMALL_PEAKS, "--ckpt_path", harmful)
    assert not marker.exists()

    # an object that is not a tensor nor a plain container is refused too, but a trusted file loads
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": {"ratio": Fraction(1, 3)}}, other)
    with pytest.raises(UntrustedCheckpointError, match="fractions.Fraction"):
        cli("fit", *SMALL_PEAKS, "--trainer.max_epochs", "0", "--init_from", other)
    trusted = cli(
        "fit", *SMALL_PEAKS, "--trainer.max_epochs", "0", "--init_from", other, "--init_from_trusted", "true"
    )
    assert all(torch.equal(state[k], v) for k, v in trusted.model.state_dict().items())


class PoisonWeightsAt(L.Callback):
    """Test helper: turn one weight into NaN just before training step `step`."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            with torch.no_grad():
                pl_module.net.classifier.weight[0, 0] = float("nan")


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(256, 2), torch.randint(0, 5, (256,))
    loader = DataLoader(TensorDataset(x, y), batch_size=32)
    ckpt = L.pytorch.callbacks.ModelCheckpoint(tmp_path / "ckpt", every_n_train_steps=2, save_last=True)
    trainer = L.Trainer(
        max_epochs=3,
        callbacks=[FiniteLossGuard(), PoisonWeightsAt(5), ckpt],
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
    )
    with pytest.raises(NonFiniteLossError, match=r"became nan at step 5 .*last finite loss .* at step 4"):
        trainer.fit(ODENetClassifier(), loader)
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)
    assert saved["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values())


def test_the_cli_always_has_the_nan_guard_and_checkpointing(tmp_path, monkeypatch):
    from ctdl.cli import run_cli

    monkeypatch.chdir(tmp_path)
    built = run_cli(["--config", str(PEAKS)], run=False)
    kinds = {type(c).__name__ for c in built.trainer.callbacks}
    assert {"FiniteLossGuard", "RunCheckpoint", "TransportFigure"} <= kinds
    assert built.trainer.checkpoint_callback.monitor == "val/acc"


@pytest.mark.slow
def test_otflow_fit_and_test_log_the_density_metrics(cli):
    config = ROOT / "configs" / "otflow" / "8gaussians.yaml"
    small = [
        "--config",
        config,
        "--data.n_train",
        "2048",
        "--data.n_val",
        "512",
        "--data.n_test",
        "512",
        "--data.batch_size",
        "512",
        "--model.eval_steps",
        "4",
        "--model.test_steps",
        "8",
    ]
    fit = cli("fit", *small, "--trainer.max_steps", "8", "--trainer.val_check_interval", "4")
    run_dir = Path(fit.trainer.log_dir)
    assert (run_dir / "figures" / "density_final.png").is_file()
    logged = set(fit.trainer.callback_metrics)
    assert {"train/loss", "train/nll", "train/transport", "train/hjb", "val/nll"} <= logged
    assert "val/nll_train_steps" in logged  # training uses 8 RK4 steps, validation 4 here
    test = cli("test", *small, "--ckpt_path", run_dir / "checkpoints" / "last.ckpt")
    metrics = test.trainer.callback_metrics
    assert {"test/nll", "test/transport", "test/hjb", "test/inv_err"} <= set(metrics)
    assert next(test.model.parameters()).dtype == torch.float64  # the toys run in float64
    assert metrics["test/inv_err"] < 1e-2 and torch.isfinite(metrics["test/nll"])
    x = test.datamodule.test_dataset.tensors[0].double()  # 8gaussians: the true density is known
    assert metrics["test/nll_true"].item() == pytest.approx(-test.datamodule.log_density(x).mean().item())
    gap = metrics["test/nll"] - metrics["test/nll_true"]
    assert metrics["test/gap"].item() == pytest.approx(gap.item())


@pytest.mark.slow
@pytest.mark.parametrize(
    "callback", ["ctdl.callbacks.EMAWeights", "lightning.pytorch.callbacks.EMAWeightAveraging"]
)
def test_otflow_with_weight_averaging_keeps_the_average_in_the_box_and_in_checkpoints(cli, callback):
    # the staged checkerboard run's last stages: EMA weights are what validation sees, what the
    # checkpoints hold and what --init_from starts from (the 8gaussians config trains in float64)
    config = ROOT / "configs" / "otflow" / "8gaussians.yaml"
    small = [
        "--config",
        config,
        "--data.n_train",
        "1024",
        "--data.n_val",
        "256",
        "--data.batch_size",
        "256",
        "--model.eval_steps",
        "2",
        "--model.steps",
        "2",
        "--model.lr",
        "0.2",
        "--model.clamp",
        "0.3",
        "--trainer.callbacks",
        "[]",
    ]
    ema = ["--trainer.callbacks+", callback, "--trainer.callbacks.decay", "0.5"]
    fit = cli("fit", *small, *ema, "--trainer.max_steps", "6", "--trainer.val_check_interval", "3")
    saved = torch.load(Path(fit.trainer.log_dir) / "checkpoints" / "last.ckpt", weights_only=False)
    average, current = saved["state_dict"], saved["current_model_state"]
    assert any(not torch.equal(average[k], current[k]) for k in average)
    # lr 0.2 pushes weights onto the walls of the box [-0.3, 0.3]: the clamp runs right after the
    # optimiser's step, before the average is updated, so the average stays inside
    assert max(v.abs().max().item() for v in current.values()) == pytest.approx(0.3)
    assert max(v.abs().max().item() for v in average.values()) <= torch.tensor(0.3).item()  # float32's 0.3
    # Lightning's own callback averages in float32 when the model trains in float64; ctdl's follows
    float64 = {k: v.dtype == torch.float64 for k, v in average.items()}
    assert all(float64.values()) if callback.startswith("ctdl") else not any(float64.values())
    again = cli(
        "fit",
        *small,
        "--trainer.max_epochs",
        "0",
        "--init_from",
        Path(fit.trainer.log_dir) / "checkpoints" / "last.ckpt",
    )
    assert all(torch.equal(average[k], v) for k, v in again.model.state_dict().items())


@pytest.mark.slow
@pytest.mark.parametrize("trace", ["autograd", "hutchinson"])
def test_otflow_other_traces_validate_and_test_through_the_cli(cli, trace):
    config = ROOT / "configs" / "otflow" / "8gaussians.yaml"
    small = [
        "--config",
        config,
        "--data.n_train",
        "512",
        "--data.n_val",
        "256",
        "--data.n_test",
        "256",
        "--data.batch_size",
        "256",
        "--model.eval_steps",
        "2",
        "--model.test_steps",
        "2",
        "--model.trace",
        trace,
        "--trainer.callbacks",
        "[]",
    ]
    fit = cli("fit", *small, "--trainer.max_steps", "2", "--trainer.val_check_interval", "2")
    assert torch.isfinite(fit.trainer.callback_metrics["val/nll"])
    test = cli("test", *small, "--ckpt_path", Path(fit.trainer.log_dir) / "checkpoints" / "last.ckpt")
    assert torch.isfinite(test.trainer.callback_metrics["test/nll"])


class _Line(L.LightningModule):
    """One weight w, loss (w - 1)^2 with plain SGD: the weight after every step is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen = []

    def training_step(self, batch, batch_idx):
        return (self.w - 1).pow(2).sum()

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.seen.append(self.w.item())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("warmup", [True, False])
def test_ema_weights_follow_the_warmup_recursion(tmp_path, warmup):
    from ctdl.callbacks import EMAWeights

    model, loader = _Line(), DataLoader(TensorDataset(torch.zeros(12, 1)), batch_size=1)
    ema = EMAWeights(decay=0.99, warmup=warmup)
    trainer = L.Trainer(
        max_steps=12,
        callbacks=[ema],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, loader)
    average = model.seen[0]  # the first update copies the weights
    for n, w in enumerate(model.seen[1:], start=1):
        d = min(0.99, (1 + n) / (10 + n)) if warmup else 0.99
        average = d * average + (1 - d) * w
    assert model.w.item() == pytest.approx(average, rel=1e-6)  # the end of fit loads the average
    # the warm-up forgets the start (w = 0.1 after one step) much faster than decay 0.99 does
    assert (average > 0.5) == warmup


def test_ema_weights_reject_a_decay_outside_0_1():
    from ctdl.callbacks import EMAWeights

    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\), got 1.5"):
        EMAWeights(decay=1.5)
