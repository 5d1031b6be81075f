"""Shared fixtures: the repository root, small fake IDX files, the CLI runner, figure checks."""

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


def figure_trainer(
    tmp_path: Path, callbacks: list, max_epochs: int = 1, precision: str = "32-true", **kwargs
):
    """A quiet Trainer for the figure callbacks: TensorBoard logs under tmp_path, no checkpoints."""
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger

    return L.Trainer(
        max_epochs=max_epochs,
        precision=precision,
        callbacks=callbacks,
        default_root_dir=tmp_path,
        logger=TensorBoardLogger(tmp_path),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        **kwargs,
    )


def check_png(path: Path, min_colours: int) -> None:
    """The PNG exists, is larger than 100 x 100 pixels and has more than min_colours colours."""
    import matplotlib.image as mpimg

    assert path.is_file(), f"missing {path}"
    img = mpimg.imread(path)
    assert img.shape[0] > 100 and img.shape[1] > 100, img.shape
    colours = np.unique((img[..., :3] * 255).round().reshape(-1, 3), axis=0)
    assert len(colours) > min_colours, f"{path.name} has only {len(colours)} colours"


def tensorboard_image_tags(log_dir: str) -> list[str]:
    """The image tags in the TensorBoard event files under log_dir."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(log_dir, size_guidance={"images": 0})
    acc.Reload()
    return acc.Tags()["images"]
