"""Shared fixtures: the repository root, small fake IDX files, the CLI runner."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an unsigned-byte IDX file (magic 0x0000080N), gzipped if the name ends in .gz."""
    header = struct.pack(">I", 0x800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


@pytest.fixture
def fake_mnist_dir(tmp_path: Path) -> Path:
    """A data directory with small random MNIST-format IDX files (train 600, test 100)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "idx"
    folder.mkdir()
    for split, n in (("train", 600), ("t10k", 100)):
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,)))
    return folder


@pytest.fixture
def cli(tmp_path: Path, monkeypatch):
    """Run `ctdl <args>` in this process with run folders under tmp_path; returns the CLI."""
    from ctdl.cli import run_cli

    monkeypatch.chdir(tmp_path)

    def run(*args: str):
        args = [str(a) for a in args]
        return run_cli([*args, "--runs_dir", str(tmp_path / "runs"),
                        "--trainer.enable_progress_bar", "false",
                        "--trainer.enable_model_summary", "false"])

    return run
