"""What several test files share: the small run of each task, the fast-dev-run overrides of every
config folder, fake data files, and readers of run folders and figures."""

from __future__ import annotations

import csv
import gzip
import struct
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def config(task: str, name: str) -> list[str]:
    return ["--config", str(CONFIGS / task / f"{name}.yaml")]


TABULAR = {"power", "gas", "hepmass", "miniboone", "bsds300"}

# The data-size overrides that make `ctdl fit --trainer.fast_dev_run true` cheap, per config folder.
FAST_DEV_RUN: dict[str, list[str]] = {
    "sbi": ["--data.num_simulations", "400", "--data.n_test", "40"],
    "soc": [
        *("--data.num_val", "8", "--data.num_test", "8"),
        *("--data.fem_mesh", "32", "--data.fem_dt", "0.02"),
    ],
    "diffusion": [
        "--data.num_train",
        "64",
        "--data.num_val",
        "16",
        "--data.num_test",
        "16",
        "--data.batch_size",
        "16",
    ],
}


# A few training steps of one config per task: small data, a small network, validation every 2 steps.
SMALL: dict[str, list[str]] = {
    "odenet": [
        *config("odenet", "peaks"),
        "--data.n_train",
        "500",
        "--data.n_val",
        "200",
        "--data.n_test",
        "200",
    ],
    "sbi": [
        *config("sbi", "lotka_volterra"),
        *FAST_DEV_RUN["sbi"],
        "--data.batch_size",
        "64",
        *("--model.width", "8", "--model.eval_steps", "4", "--trainer.val_check_interval", "2"),
    ],
    "soc": [
        *config("soc", "lqr"),
        *("--data.num_train", "256", "--data.num_val", "16", "--data.num_test", "32"),
        *("--model.width", "8", "--model.eval_steps", "10", "--trainer.val_check_interval", "2"),
    ],
    "pde_control": [
        *config("pde_control", "direct"),
        *("--data.pde_args", "{cells: 8, steps: 12}", "--data.num_train", "16", "--data.num_val", "4"),
        *("--data.num_test", "4", "--data.batch_size", "4", "--model.width", "4"),
        *("--trainer.val_check_interval", "2"),
    ],
    "diffusion": [
        *config("diffusion", "gaussian_fields"),
        *FAST_DEV_RUN["diffusion"],
        *("--data.resolution", "16", "--model.resolutions", "[8, 16]"),
        *("--model.network_args", "{width: 8, modes: 4, layers: 1, time_dim: 16}"),
        *("--trainer.callbacks", "[]", "--trainer.log_every_n_steps", "1"),
    ],
}


def fast_dev_run_overrides(config_path: Path, tmp_path: Path) -> list[str]:
    """The overrides of one shipped config for a fast-dev-run: the folder's row of FAST_DEV_RUN, and
    small fake data files for the configs that read files (IDX images, the MAF tabular sets)."""
    from .maf_files import write_maf_archive

    task, name = config_path.parent.name, config_path.stem
    if "mnist" in name or (task == "diffusion" and name.startswith("fashion")):
        extra = ["--data.data_dir", str(write_fake_mnist(tmp_path / "idx")), "--data.n_val", "100"]
        return extra + (["--data.batch_size", "16"] if task == "diffusion" else [])
    if task == "otflow" and name in TABULAR:
        return ["--data.data_dir", str(write_maf_archive(tmp_path / "maf")), "--data.batch_size", "16"]
    return list(FAST_DEV_RUN.get(task, []))


# ------------------------------------------------------------------------------------ data files
def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an unsigned-byte IDX file (magic 0x0000080N), gzipped if the name ends in .gz."""
    header = struct.pack(">I", 0x800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def write_fake_mnist(folder: Path) -> Path:
    """Small random MNIST-format IDX files (train 600, test 100) in folder."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 600), ("t10k", 100)):
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,)))
    return folder


# ------------------------------------------------------------------------------ run folders
def bare_module():
    """A LightningModule with a linear layer on 2-D inputs and nothing a figure callback looks for
    (no sample, log_prob, sample_posterior or features): the callbacks must warn and draw nothing."""
    import lightning as L
    import torch

    class Bare(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).pow(2).mean()

        def validation_step(self, batch, batch_idx):
            self.log("val/loss", self.layer(batch[0]).pow(2).mean())

        def test_step(self, batch, batch_idx):
            self.log("test/loss", self.layer(batch[0]).pow(2).mean())

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    return Bare()


def mode_probe():
    """A callback (listed after the others) that records the model's training mode at fit start,
    at each training epoch's end and at fit end, after the other callbacks' hooks ran."""
    import lightning as L

    class ModeProbe(L.Callback):
        def on_fit_start(self, trainer, pl_module):
            self.training_at_fit_start = pl_module.training

        def on_train_epoch_end(self, trainer, pl_module):
            self.training_at_epoch_end = pl_module.training

        def on_fit_end(self, trainer, pl_module):
            self.training_at_fit_end = pl_module.training

    return ModeProbe()


def metrics_rows(run_dir: Path) -> list[dict]:
    """The rows of a run's metrics.csv."""
    with open(Path(run_dir) / "metrics.csv") as file:
        return list(csv.DictReader(file))


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
