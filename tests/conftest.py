"""Shared fixtures: small fake IDX files and the CLI runner (helpers live in tests/helpers.py)."""

from pathlib import Path

import pytest

from .helpers import write_fake_mnist


@pytest.fixture
def fake_mnist_dir(tmp_path: Path) -> Path:
    """A data directory with small random MNIST-format IDX files (train 600, test 100)."""
    return write_fake_mnist(tmp_path / "idx")


@pytest.fixture
def cli(tmp_path: Path, monkeypatch):
    """Run `ctdl <args>` in this process with run folders under tmp_path; returns the CLI."""
    from ctdl.cli import run_cli

    monkeypatch.chdir(tmp_path)

    def run(*args: str):
        args = [str(a) for a in args]
        return run_cli(
            [
                *args,
                "--runs_dir",
                str(tmp_path / "runs"),
                "--trainer.enable_progress_bar",
                "false",
                "--trainer.enable_model_summary",
                "false",
            ]
        )

    return run
