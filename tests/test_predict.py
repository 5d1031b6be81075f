"""`ctdl predict` through the CLI: the prediction writer's files, for a classifier and a flow."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from ctdl.callbacks.prediction_writer import check_predictions

from .helpers import ROOT

PEAKS = [
    "--config",
    ROOT / "configs" / "odenet" / "peaks.yaml",
    "--data.n_train",
    "256",
    "--data.n_val",
    "128",
    "--data.n_test",
    "200",
    "--data.batch_size",
    "64",
]
GAUSSIANS = [
    "--config",
    ROOT / "configs" / "otflow" / "8gaussians.yaml",
    "--data.n_train",
    "512",
    "--data.n_val",
    "128",
    "--data.n_test",
    "300",
    "--data.batch_size",
    "128",
    "--model.steps",
    "2",
    "--model.eval_steps",
    "2",
    "--model.test_steps",
    "4",
    "--trainer.callbacks",
    "[]",
]


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    return rows[0], rows[1:]


def test_classifier_predict_writes_probabilities_and_labels(cli, capsys):
    fit = cli("fit", *PEAKS, "--trainer.max_epochs", "1")
    run_dir = Path(fit.trainer.log_dir)
    cli("predict", *PEAKS, "--ckpt_path", run_dir / "checkpoints" / "last.ckpt")
    out = run_dir / "predict"
    assert f"ctdl predict: 200 samples -> {out}" in capsys.readouterr().out
    probs, label, target = (np.load(out / f"{name}.npy") for name in ("probs", "label", "target"))
    assert probs.shape == (200, 5) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert label.shape == (200,) and np.array_equal(label, probs.argmax(1))
    assert np.array_equal(target, fit.datamodule.test_dataset.tensors[1].numpy())  # the test split, in order
    header, rows = read_csv(out / "predictions.csv")
    assert header == ["index", *(f"probs_{k}" for k in range(5)), "label", "target"]
    assert len(rows) == 200 and [int(r[0]) for r in rows] == list(range(200))
    assert np.allclose([[float(v) for v in r[1:6]] for r in rows], probs)
    assert [int(r[6]) for r in rows] == label.tolist()


def test_flow_predict_writes_log_densities_and_seeded_samples(cli):
    fit = cli("fit", *GAUSSIANS, "--trainer.max_steps", "2", "--trainer.val_check_interval", "2")
    last = Path(fit.trainer.log_dir) / "checkpoints" / "last.ckpt"
    out = Path(fit.trainer.log_dir) / "predict"
    # the checkpoint was trained without predict_samples: the command line's flag wins over it
    first = cli("predict", *GAUSSIANS, "--ckpt_path", last, "--model.predict_samples", "true")
    assert first.model.hparams.predict_samples
    log_prob, sample = np.load(out / "log_prob.npy"), np.load(out / "sample.npy")
    assert log_prob.shape == (300,) and log_prob.dtype == np.float64 and np.isfinite(log_prob).all()
    assert sample.shape == (300, 2) and np.isfinite(sample).all()
    header, rows = read_csv(out / "predictions.csv")
    assert header == ["index", "log_prob", "sample_0", "sample_1"] and len(rows) == 300
    assert float(rows[5][1]) == log_prob[5]  # 17 significant digits: float64 round-trips

    # log_prob is the test split's density at test_steps: its mean is -test/nll
    test = cli("test", *GAUSSIANS, "--ckpt_path", last)
    assert -log_prob.mean() == pytest.approx(test.trainer.callback_metrics["test/nll"].item(), rel=1e-6)
    cli("predict", *GAUSSIANS, "--ckpt_path", last, "--model.predict_samples", "true")
    assert np.array_equal(np.load(out / "sample.npy"), sample)  # seeded: the same samples again
    cli("predict", *GAUSSIANS, "--ckpt_path", last)  # without samples: the earlier ones are gone
    assert sorted(p.name for p in out.glob("*.npy")) == ["log_prob.npy"]
    assert read_csv(out / "predictions.csv")[0] == ["index", "log_prob"]


@pytest.mark.parametrize(
    "returned, message",
    [
        (torch.zeros(3), "returned a Tensor; ctdl predict expects it to return a dict of named tensors"),
        ({}, "returned an empty dict"),
        ({"index": torch.zeros(3)}, "named 'index'"),
        ({"a b": torch.zeros(3)}, "named 'a b'"),
        ({"p": torch.tensor(1.0)}, "returned a 0-d tensor for 'p'"),
        ({"p": torch.zeros(3), "q": torch.zeros(4, 2)}, "different batch sizes"),
    ],
)
def test_outputs_that_break_the_contract_are_named(returned, message):
    with pytest.raises((TypeError, ValueError), match=message):
        check_predictions(returned, "Model")
