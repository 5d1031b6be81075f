"""scripts/harness.py, the benchmark harness: row upserts, tables, curves, generated doc tables,
and fit -> test on a small config with the training clock."""

import json
import sys

import pytest

from .helpers import ROOT, SMALL

sys.path.insert(0, str(ROOT / "scripts"))
import harness  # noqa: E402


@pytest.fixture
def out(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "OUT", tmp_path)
    return tmp_path


def test_upsert_replaces_rows_by_key_and_keeps_the_rest(out):
    harness.upsert("t", "p", [{"label": "a", "v": 1}, {"label": "b", "v": 2}], setup="first")
    rows = harness.upsert("t", "p", [{"label": "a", "v": 3}, {"label": "c", "v": 4}], target="t")
    assert [(r["label"], r["v"]) for r in rows] == [("b", 2), ("a", 3), ("c", 4)]
    stored = json.loads((out / "t_p.json").read_text())
    assert stored["setup"] == "first" and stored["target"] == "t" and stored["env"]["torch"]
    rows = harness.upsert("t", "q", [{"x": 1, "y": 1, "v": 0}, {"x": 1, "y": 2, "v": 0}], ("x", "y"))
    rows = harness.upsert("t", "q", [{"x": 1, "y": 2, "v": 5}], ("x", "y"))
    assert [(r["y"], r["v"]) for r in rows] == [(1, 0), (2, 5)]


def test_table_and_report(out):
    text = harness.table([{"a": 0.5, "b": 1e-5, "c": [1, 2], "run_dir": "x"}, {"a": 12.0}])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 0.5000 | 1.00e-05 |", "| 12.0 | - |"]
    harness.upsert("t", "p", [{"label": "a", "v": 1}])
    assert "| a | 1 |" in harness.report("t", "T") and (out / "t.md").is_file()


def test_docs_table_spec_picks_columns_and_rows(out):
    harness.upsert("t", "p", [{"label": "a", "v": 1, "w": 2}, {"label": "b", "v": 3, "w": 4}])
    assert harness.table_from_spec("t_p.json columns=label,w where=label:b").splitlines() == [
        "| label | w |",
        "|---|---|",
        "| b | 4 |",
    ]
    with pytest.raises(SystemExit, match="does not exist; run its bench part first"):
        harness.table_from_spec("t_missing.json")


def test_curve_reads_the_logged_keys(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,step,train/loss,val/loss\n0,9,1.5,\n0,9,,2.0\n1,19,1.0,\n")
    assert harness.curve(tmp_path, ["val/loss"]) == [{"step": 9, "val/loss": 2.0}]
    assert [r["step"] for r in harness.curve(tmp_path, ["train/loss"])] == [9, 19]
    with pytest.raises(SystemExit, match="no metrics.csv"):
        harness.curve(tmp_path / "missing", ["val/loss"])


def test_fit_then_test_with_the_training_clock(tmp_path):
    run = harness.fit(
        SMALL["odenet"][1], "smoke", [*SMALL["odenet"][2:], "--trainer.max_epochs", "2"], tmp_path
    )
    assert run.steps == 8 and 0 < run.train_s < run.wall_s
    assert [v["step"] for v in run.validations] == [4, 8] and "val_acc" in run.validations[0]
    assert run.checkpoint and run.row()["s_per_1000_steps"] > 0
    metrics = harness.test(run)
    assert 0.0 <= metrics["acc"] <= 1.0
